"""Auditors' exports of the audit log: requested, built by a worker, downloaded (issue 12).

`audit_export_request` validates the selection and queues `audit_export_run` after commit. The
run makes sure a signed checkpoint covers the log (`audit_checkpoint_create`), takes the latest
stored one, counts the selected events it covers, and streams them into a bundle (format in
`audit.bundle`) under SCS_DATA_DIR/exports, updating `progress` after every chunk in its own
short transaction. Events recorded after that checkpoint are left for a later export. A failed
run is marked failed with its error and leaves no file behind.

A selection (`filters`) is exactly one of:

- {"case_reference": "SH-2026-000123"}: the events recorded with that case reference;
- {"from": "2026-06-01", "to": "2026-06-30"}: the events recorded on those days (Asia/Shanghai,
  both inclusive);
- {"agency": "shanghai-market"}: the events of the cases for which that agency is responsible or
  whose record it provided (by case reference), and the events whose target is the agency itself
  (`records.agency`), one of its credit records (`records.creditrecord`), one of its imports
  (`records.importbatch`, and `records.importjob` for files pushed through the API) or one of its
  members (`accounts.user`: its staff and agency systems, so their sign-ins and membership
  changes). Membership is read when the export runs: the events about a user who moved to another
  agency go with them, the move included. Events are not selected by their actor here (that is
  the actor_id selection): what its staff did to its cases, records or imports is already in, and
  what they did to anything else belongs to another selection;
- {"actor_id": 42}: the events recorded by that user.

Only auditors and administrators export; each sees only their own exports.
"""

from __future__ import annotations

import hashlib
import logging
import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date, datetime, time, timedelta
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from django.apps import apps
from django.conf import settings
from django.db import connection, transaction
from django.db.models import CharField, Q, QuerySet
from django.db.models.functions import Cast
from django.http import Http404
from django.utils import timezone

from accounts.roles import ADMINISTRATOR, AUDITOR, has_role
from audit.bundle import bundle_write
from audit.checkpoints import SignedHead, audit_checkpoint_create, public_keys_pem
from audit.models import AuditCheckpoint, AuditEvent, AuditExport
from audit.services import audit_record, audited, recorded_at_text
from scs_cases.errors import Conflict, DomainError, NotPermitted

if TYPE_CHECKING:
    from accounts.models import User

logger = logging.getLogger(__name__)

SHANGHAI = ZoneInfo("Asia/Shanghai")
_LOCK_CLASS = 0x5C5E  # the advisory-lock namespace of export runs


class ExportFiltersInvalid(DomainError):
    code = "export_filters_invalid"


class ExportFailed(Exception):
    """The log cannot be exported as it stands (no checkpoint, or it does not match one)."""


def exports_folder() -> Path:
    folder = Path(settings.DATA_DIR) / "exports"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def audit_export_allowed(user: User) -> bool:
    return bool(
        user.is_authenticated and (has_role(user, AUDITOR) or has_role(user, ADMINISTRATOR))
    )


def export_filters_clean(filters: object) -> dict[str, Any]:
    """The one selection `filters` gives, normalised; ExportFiltersInvalid (400) otherwise."""
    if not isinstance(filters, dict):
        raise ExportFiltersInvalid("The filters are a JSON object.")
    keys = set(filters)
    if keys == {"case_reference"}:
        reference = filters["case_reference"]
        if not isinstance(reference, str) or not 0 < len(reference.strip()) <= 32:
            raise ExportFiltersInvalid("case_reference is a case reference such as SH-2026-000123.")
        return {"case_reference": reference.strip()}
    if keys == {"from", "to"}:
        first, last = _day(filters["from"], "from"), _day(filters["to"], "to")
        if first > last:
            raise ExportFiltersInvalid("from is after to.")
        return {"from": first.isoformat(), "to": last.isoformat()}
    if keys == {"agency"}:
        code = filters["agency"]
        agency_model = apps.get_model("records", "Agency")
        if not isinstance(code, str) or not agency_model.objects.filter(code=code).exists():
            raise ExportFiltersInvalid("agency is the code of an agency.")
        return {"agency": code}
    if keys == {"actor_id"}:
        actor_id = filters["actor_id"]
        if isinstance(actor_id, bool) or not isinstance(actor_id, int) or actor_id < 1:
            raise ExportFiltersInvalid("actor_id is a user's id.")
        return {"actor_id": actor_id}
    raise ExportFiltersInvalid(
        "Give exactly one selection: case_reference; from and to; agency; or actor_id."
    )


def _day(value: object, name: str) -> date:
    if isinstance(value, str):
        try:
            return date.fromisoformat(value)
        except ValueError:
            pass
    raise ExportFiltersInvalid(f"{name} is a day, YYYY-MM-DD.")


# The rows an agency's export holds the events of by target (target_type is the model's lower
# label), with the lookup from each to the agency's code; its cases' it holds by case reference.
_AGENCY_TARGETS = (
    ("records.Agency", "code"),
    ("records.CreditRecord", "agency__code"),
    ("records.ImportBatch", "agency__code"),
    ("records.ImportJob", "agency__code"),
    ("accounts.User", "agency__code"),
)


def export_events(filters: dict[str, Any]) -> QuerySet[AuditEvent]:
    """The events a (clean) selection covers, unordered."""
    events = AuditEvent.objects.all()
    if "case_reference" in filters:
        return events.filter(case_reference=filters["case_reference"])
    if "from" in filters:
        start = datetime.combine(date.fromisoformat(filters["from"]), time.min, tzinfo=SHANGHAI)
        end = datetime.combine(
            date.fromisoformat(filters["to"]) + timedelta(days=1), time.min, tzinfo=SHANGHAI
        )
        return events.filter(recorded_at__gte=start, recorded_at__lt=end)
    if "agency" in filters:
        code = filters["agency"]
        case_model = apps.get_model("objections", "Case")
        references = case_model.objects.filter(
            Q(responsible_agency__code=code) | Q(record__agency__code=code)
        ).values("reference")
        targets = Q()
        for label, lookup in _AGENCY_TARGETS:
            model = apps.get_model(label)
            ids = (
                model.objects.filter(**{lookup: code})
                .annotate(key=Cast("id", CharField()))
                .values("key")
            )
            targets |= Q(target_type=model._meta.label_lower, target_id__in=ids)
        return events.filter(Q(case_reference__in=references) | targets)
    return events.filter(actor_id=filters["actor_id"])


@audited()
def audit_export_request(*, actor: User, filters: object) -> AuditExport:
    """Queue an export of the events `filters` selects (see the module's docstring)."""
    if not audit_export_allowed(actor):
        raise NotPermitted("Only auditors export the audit log.")
    cleaned = export_filters_clean(filters)
    export = AuditExport.objects.create(
        requested_by=actor, created_at=timezone.now(), filters=cleaned
    )
    audit_record(
        actor=actor, action="audit.export_requested", target=export, data={"filters": cleaned}
    )
    from audit.tasks import audit_export_task

    transaction.on_commit(partial(audit_export_task.delay, export_id=export.pk))
    return export


@contextmanager
def _run_lock(export_id: int) -> Iterator[bool]:
    """Whether this process may run the export: one runner at a time, and a run left `running`
    by a worker that died is taken over (its session lock died with it)."""
    if connection.vendor != "postgresql":
        yield True
        return
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_try_advisory_lock(%s, %s)", [_LOCK_CLASS, export_id])
        locked = bool(cursor.fetchone()[0])
    try:
        yield locked
    finally:
        if locked:
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_advisory_unlock(%s, %s)", [_LOCK_CLASS, export_id])


def audit_export_run(*, export_id: int) -> AuditExport:
    """Build a queued export's bundle. Idempotent: a finished export, or one another process is
    building, is returned as it is; one left running by a dead worker is started again."""
    with _run_lock(export_id) as locked:
        export = AuditExport.objects.get(pk=export_id)
        if not locked or export.status in (AuditExport.Status.DONE, AuditExport.Status.FAILED):
            return export
        AuditExport.objects.filter(pk=export_id).update(
            status=AuditExport.Status.RUNNING, progress=0, total=0
        )
        path: Path | None = None
        try:
            path, head, written = _build(export)
            return _finish(export_id=export_id, path=path, head=head, written=written)
        except Exception as error:
            if path is not None:
                path.unlink(missing_ok=True)
            logger.exception("audit export %s failed", export_id)
            return _fail(export_id=export_id, error=error)


def _build(export: AuditExport) -> tuple[Path, SignedHead, int]:
    audit_checkpoint_create()  # a no-op when the log has not grown since the last one
    checkpoint = AuditCheckpoint.objects.order_by("-tree_size", "-id").first()
    if checkpoint is None:
        raise ExportFailed("the audit log is empty: there is no checkpoint to export against")
    head = SignedHead.of(checkpoint)
    events = export_events(export.filters).filter(sequence__lte=head.tree_size)
    total = events.count()
    AuditExport.objects.filter(pk=export.pk).update(total=total)
    folder = exports_folder()
    name = f"audit-export-{export.pk}-{secrets.token_hex(8)}.zip"
    part = folder / f".{name}.part"
    earlier = (
        SignedHead.of(c)
        for c in AuditCheckpoint.objects.filter(tree_size__lt=head.tree_size)
        .order_by("tree_size", "id")
        .iterator()
    )
    try:
        written = bundle_write(
            path=part,
            events=events,
            head=head,
            earlier=earlier,
            public_keys_pem=public_keys_pem(),
            description={
                "export": export.pk,
                "created_at": recorded_at_text(export.created_at),
                "requested_by": export.requested_by_id,
                "filters": export.filters,
            },
            progress=partial(_progress, export.pk),
        )
        os.replace(part, folder / name)
    finally:
        part.unlink(missing_ok=True)
    return folder / name, head, written


def _progress(export_id: int, written: int) -> None:
    # Its own statement, committed at once (autocommit), so that pollers see it.
    AuditExport.objects.filter(pk=export_id).update(progress=written)


def _digest(path: Path) -> tuple[str, int]:
    digest = hashlib.sha256()
    size = 0
    with path.open("rb") as handle:
        while block := handle.read(1 << 20):
            digest.update(block)
            size += len(block)
    return digest.hexdigest(), size


@audited()
def _finish(*, export_id: int, path: Path, head: SignedHead, written: int) -> AuditExport:
    sha256, size = _digest(path)
    export = AuditExport.objects.select_for_update().get(pk=export_id)
    export.status = AuditExport.Status.DONE
    export.file_name = path.name
    export.sha256 = sha256
    export.size = size
    export.progress = written
    export.error = ""
    export.finished_at = timezone.now()
    export.save(
        update_fields=["status", "file_name", "sha256", "size", "progress", "error", "finished_at"]
    )
    audit_record(
        actor=None,
        action="audit.export_completed",
        target=export,
        data={"events": written, "sha256": sha256, "checkpoint": head.tree_size},
    )
    return export


@audited()
def _fail(*, export_id: int, error: Exception) -> AuditExport:
    export = AuditExport.objects.select_for_update().get(pk=export_id)
    export.status = AuditExport.Status.FAILED
    export.error = f"{type(error).__name__}: {error}"[:2000]
    export.file_name = ""
    export.finished_at = timezone.now()
    export.save(update_fields=["status", "error", "file_name", "finished_at"])
    audit_record(
        actor=None,
        action="audit.export_failed",
        target=export,
        data={"error": type(error).__name__},
    )
    return export


def audit_exports_redrive(*, older_than_seconds: int = 300) -> list[int]:
    """Queue again the exports a lost message or a killed worker left queued or running. One
    still being built is safe to queue: its run finds the lock taken and returns."""
    from audit.tasks import audit_export_task

    cutoff = timezone.now() - timedelta(seconds=older_than_seconds)
    ids = list(
        AuditExport.objects.filter(
            status__in=[AuditExport.Status.QUEUED, AuditExport.Status.RUNNING],
            created_at__lte=cutoff,
        ).values_list("id", flat=True)
    )
    for export_id in ids:
        audit_export_task.delay(export_id=export_id)
    return ids


def audit_export_list_for_user(*, user: User) -> QuerySet[AuditExport]:
    """The user's own exports, newest first; nothing for a user who may not export."""
    if not audit_export_allowed(user):
        return AuditExport.objects.none()
    return AuditExport.objects.filter(requested_by=user).order_by("-id")


def audit_export_get_for_user(*, user: User, export_id: int) -> AuditExport:
    """One of the user's own exports; any other (or any, for a non-auditor) is a 404."""
    export = audit_export_list_for_user(user=user).filter(pk=export_id).first()
    if export is None:
        raise Http404("No such export.")
    return export


def audit_export_path(export: AuditExport) -> Path:
    return exports_folder() / export.file_name


@audited()
def audit_export_download(*, actor: User, export_id: int) -> tuple[AuditExport, Path]:
    """The finished bundle of one of the actor's exports, the download recorded in the log.

    Not the actor's: 404; not finished (or its file gone): Conflict (409), nothing recorded."""
    export = audit_export_get_for_user(user=actor, export_id=export_id)
    if export.status != AuditExport.Status.DONE:
        raise Conflict(f"The export is {export.status}; it can be downloaded once done.")
    path = audit_export_path(export)
    if not path.is_file():
        raise Conflict("The export's file is no longer there; request the export again.")
    audit_record(
        actor=actor,
        action="audit.export_downloaded",
        target=export,
        data={"sha256": export.sha256},
    )
    return export, path
