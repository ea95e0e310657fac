"""The append-only, hash-chained audit log.

Each event stores `canonical`, the exact JSON text that was hashed; its hash is
sha256(previous_hash + "\\n" + sequence + "\\n" + canonical). The columns beside it (action, actor
and role, target, case reference, time, request id) are copies for searching, and `audit_verify`
checks each against `canonical`, so the hash covers every column. The database itself refuses
UPDATE, DELETE and TRUNCATE on this table (see the migrations), and `AuditChainHead` is the single
row that hands out gap-free sequence numbers.
"""

from __future__ import annotations

import json
from typing import Any

from django.conf import settings
from django.contrib.auth.signals import user_logged_in
from django.db import models
from django.dispatch import receiver
from django.utils.translation import gettext_lazy as _

GENESIS_HASH = "0" * 64


class AuditEvent(models.Model):
    # Every index here is paid by every audited change, so there are few: the sequence is the
    # primary key, case histories and object histories have theirs, and time ranges use a BRIN
    # index on PostgreSQL (migration 0002; the log is appended in time order).
    sequence = models.BigIntegerField(primary_key=True)
    recorded_at = models.DateTimeField()
    actor_id = models.BigIntegerField(null=True, blank=True)
    actor_role = models.CharField(max_length=32)
    action = models.CharField(max_length=64)
    target_type = models.CharField(max_length=64, blank=True)
    target_id = models.CharField(max_length=64, blank=True)
    case_reference = models.CharField(max_length=32, blank=True)
    request_id = models.CharField(max_length=64, blank=True)
    canonical = models.TextField()
    previous_hash = models.CharField(max_length=64)
    hash = models.CharField(max_length=64)

    class Meta:
        ordering = ["sequence"]
        indexes = [
            models.Index(fields=["target_type", "target_id"], name="audit_target"),
            models.Index(
                fields=["case_reference"],
                condition=~models.Q(case_reference=""),
                name="audit_case",
            ),
        ]

    def __str__(self) -> str:
        return f"#{self.sequence} {self.action}"

    @property
    def payload(self) -> dict[str, Any]:
        data: dict[str, Any] = json.loads(self.canonical)["data"]
        return data


class AuditChainHead(models.Model):
    """The one row holding the last sequence number and hash; locking it orders the chain."""

    sequence = models.BigIntegerField(default=0)
    previous_hash = models.CharField(max_length=64, default=GENESIS_HASH)
    hash = models.CharField(max_length=64, default=GENESIS_HASH)

    class Meta:
        constraints = [
            models.CheckConstraint(condition=models.Q(id=1), name="audit_head_single_row")
        ]

    def __str__(self) -> str:
        return f"audit chain head at event {self.sequence}"


class AuditEventSeal(models.Model):
    """The application's seal on the events one transaction appended, `first_sequence` to
    `last_sequence`: HMAC-SHA256, with SCS_AUDIT_SEAL_KEY (held by the application, never sent
    to the database), over the range and the chain hash of its last event, which commits to
    every event before it. Written in that transaction (audit.services). The ranges tile the
    log: an event appended some other way, even through audit_append() by the database's owner,
    lies in no range, and audit_verify says so. Append-only."""

    last_sequence = models.BigIntegerField(primary_key=True)
    first_sequence = models.BigIntegerField(unique=True)
    mac = models.CharField(max_length=64)

    def __str__(self) -> str:
        return f"seal of events {self.first_sequence} to {self.last_sequence}"


class AuditSealStart(models.Model):
    """The one row naming the first sealed event (events before the seals existed are not
    sealed), itself sealed so that it cannot be moved to excuse a forged event."""

    sequence = models.BigIntegerField()
    mac = models.CharField(max_length=64)

    class Meta:
        constraints = [
            models.CheckConstraint(condition=models.Q(id=1), name="audit_seal_start_single_row")
        ]

    def __str__(self) -> str:
        return f"events sealed from {self.sequence}"


class AuditCheckpoint(models.Model):
    """A signed tree head over the first `tree_size` events (audit.checkpoints): the Merkle root
    of their chain hashes, the chain hash of the last of them, and an Ed25519 signature over
    `statement`. Each is also written outside the database (a file, the auditors' mailbox), so
    that an auditor holds heads the database cannot take back. Append-only, as the events are."""

    created_at = models.DateTimeField()
    tree_size = models.BigIntegerField()
    root_hash = models.CharField(max_length=64)
    last_hash = models.CharField(max_length=64)
    key_id = models.CharField(max_length=16)
    signature = models.CharField(max_length=128)

    class Meta:
        ordering = ["tree_size", "id"]

    def __str__(self) -> str:
        return f"checkpoint at event {self.tree_size}"


class AuditExport(models.Model):
    """An auditor's export of part of the log as a bundle that verifies offline (audit.exports).

    `filters` holds exactly one selection: {"case_reference": ...}, {"from": day, "to": day}
    (Asia/Shanghai days, inclusive), {"agency": code} or {"actor_id": id}. The zip is written
    under SCS_DATA_DIR/exports (never served directly) as `file_name`; `progress` counts the
    events written of `total`, which is counted before writing starts.
    """

    class Status(models.TextChoices):
        QUEUED = "queued", "queued"
        RUNNING = "running", "running"
        DONE = "done", "done"
        FAILED = "failed", "failed"

    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="audit_exports"
    )
    created_at = models.DateTimeField()
    filters = models.JSONField()
    status = models.CharField(max_length=8, choices=Status.choices, default=Status.QUEUED)
    progress = models.BigIntegerField(default=0)
    total = models.BigIntegerField(default=0)
    file_name = models.CharField(max_length=255, blank=True)
    sha256 = models.CharField(max_length=64, blank=True)
    size = models.BigIntegerField(default=0)
    error = models.TextField(blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-id"]
        indexes = [models.Index(fields=["requested_by", "-id"], name="audit_export_owner")]

    def __str__(self) -> str:
        return f"audit export {self.pk} ({self.status})"


class AuditIntegrityCheck(models.Model):
    """One run of the whole log's verification against its stored signed checkpoints
    (`audit.checkpoints.audit_log_verify`), requested by an auditor or by beat (no one:
    `requested_by` empty), run by a worker (audit.integrity). A failed check names the first
    broken event and why."""

    class Status(models.TextChoices):
        QUEUED = "queued", _("queued")
        RUNNING = "running", _("running")
        PASSED = "passed", _("passed")
        FAILED = "failed", _("failed")

    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="audit_integrity_checks",
    )
    created_at = models.DateTimeField()
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    status = models.CharField(max_length=8, choices=Status.choices, default=Status.QUEUED)
    events_checked = models.BigIntegerField(default=0)
    last_sequence = models.BigIntegerField(default=0)
    checkpoints_checked = models.IntegerField(default=0)
    broken_sequence = models.BigIntegerField(null=True, blank=True)
    broken_reason = models.TextField(blank=True)

    class Meta:
        ordering = ["-id"]

    def __str__(self) -> str:
        return f"audit integrity check {self.pk} ({self.status})"


AUDIT_PAGES_SESSION_KEY = "scs_audit_pages"


@receiver(user_logged_in, dispatch_uid="audit.remember_auditor_pages")
def remember_auditor_pages(sender: Any, request: Any, user: Any, **kwargs: Any) -> None:
    """Keep in the session whether the user may use the auditor pages, so that the navigation
    can offer the link without a query on every page. Only the link depends on it: the pages
    check the role themselves on every request."""
    from audit.exports import audit_export_allowed

    if request is not None and hasattr(request, "session"):
        request.session[AUDIT_PAGES_SESSION_KEY] = audit_export_allowed(user)
