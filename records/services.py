"""Writes to the registry: access grants, identifier reveals and the publication sweep.

Bulk import lives in `records.imports`.
"""

from __future__ import annotations

import hashlib
from datetime import date
from typing import TYPE_CHECKING, Any

from django.utils import timezone
from guardian.shortcuts import assign_perm, remove_perm

from audit.services import audit_record, audited
from records.crypto import identifier_decrypt
from records.models import CreditRecord, CreditRecordVersion, Subject, SubjectUserObjectPermission
from records.selectors import ACT_FOR_SUBJECT

if TYPE_CHECKING:
    from accounts.models import User

SWEEP_CHUNK = 1_000
_PERMISSION = f"records.{ACT_FOR_SUBJECT}"


@audited()
def subject_access_grant(*, subject: Subject, user: User, actor: User | None) -> bool:
    """Let `user` see and act for `subject`. Returns False if the grant already existed."""
    exists = SubjectUserObjectPermission.objects.filter(
        content_object=subject, user=user, permission__codename=ACT_FOR_SUBJECT
    ).exists()
    if exists:
        return False
    assign_perm(_PERMISSION, user, subject)
    audit_record(
        actor=actor,
        action="subject.access_granted",
        target=subject,
        data={"user": user.pk},
    )
    return True


@audited()
def subject_access_revoke(*, subject: Subject, user: User, actor: User | None) -> bool:
    deleted = SubjectUserObjectPermission.objects.filter(
        content_object=subject, user=user, permission__codename=ACT_FOR_SUBJECT
    ).exists()
    if not deleted:
        return False
    remove_perm(_PERMISSION, user, subject)
    audit_record(
        actor=actor, action="subject.access_revoked", target=subject, data={"user": user.pk}
    )
    return True


@audited()
def subject_dishonesty_flag_set(
    *, subject: Subject, flagged: bool, actor: User | None, reason: str = ""
) -> bool:
    """Put `subject` on (or take it off) the list of seriously dishonest subjects, which blocks
    repair applications. Returns False when nothing changed."""
    row = Subject.objects.select_for_update().get(pk=subject.pk)
    if row.on_serious_dishonesty_list == flagged:
        return False
    row.on_serious_dishonesty_list = flagged
    row.save(update_fields=["on_serious_dishonesty_list", "updated_at"])
    subject.on_serious_dishonesty_list = flagged
    audit_record(
        actor=actor,
        action="subject.dishonesty_flag_set",
        target=row,
        data={"before": not flagged, "after": flagged, "reason": reason[:500]},
    )
    return True


@audited()
def subject_identifier_reveal(*, subject: Subject, actor: User, reason: str) -> str:
    """The full identifier, for a permitted user; every reveal is audited with its reason."""
    audit_record(
        actor=actor, action="subject.revealed", target=subject, data={"reason": reason[:500]}
    )
    return identifier_decrypt(subject.identifier_encrypted)


def _sweep(
    *, statuses: tuple[str, ...], date_field: str, new_status: str, action: str, today: date
) -> int:
    changed = 0
    while True:
        with audited():
            ids = list(
                CreditRecord.objects.select_for_update(skip_locked=True)
                .filter(status__in=statuses, **{f"{date_field}__lte": today})
                .order_by("id")
                .values_list("id", flat=True)[:SWEEP_CHUNK]
            )
            if not ids:
                return changed
            CreditRecord.objects.filter(pk__in=ids).update(
                status=new_status, updated_at=timezone.now()
            )
            audit_record(
                actor=None,
                action=action,
                target_type="records.creditrecord",
                data={"records": ids, "status": new_status, "as_of": today.isoformat()},
            )
            changed += len(ids)


def record_publication_sweep(*, today: date | None = None) -> tuple[int, int]:
    """End publication and retention that are due. Returns (publication ended, expired).

    Idempotent: a record already moved is not selected again. One audit event per chunk.
    """
    today = today or timezone.localdate()
    ended = _sweep(
        statuses=(CreditRecord.Status.PUBLISHED,),
        date_field="publication_end",
        new_status=CreditRecord.Status.PUBLICATION_ENDED,
        action="record.publication_ended",
        today=today,
    )
    expired = _sweep(
        statuses=(
            CreditRecord.Status.PUBLISHED,
            CreditRecord.Status.PUBLICATION_ENDED,
            CreditRecord.Status.CORRECTED,
        ),
        date_field="retention_end",
        new_status=CreditRecord.Status.EXPIRED,
        action="record.expired",
        today=today,
    )
    return ended, expired


# Changes a case decision makes to a record. Called by the objection services inside their own
# transaction; each writes its audit event with the case reference.

CORRECTABLE_FIELDS = frozenset(
    {"title", "facts", "decision_document_number", "decision_date", "conduct_ended_on"}
)


def _locked_record(record_id: int) -> CreditRecord:
    return CreditRecord.objects.select_for_update().get(pk=record_id)


@audited()
def record_mark(
    *, record_id: int, under_objection: bool, actor: User | None, case_reference: str
) -> CreditRecord:
    """Set or clear the "under objection" mark. Idempotent: no change, no event."""
    record = _locked_record(record_id)
    if record.under_objection == under_objection:
        return record
    record.under_objection = under_objection
    record.save(update_fields=["under_objection", "updated_at"])
    audit_record(
        actor=actor,
        action="record.marked" if under_objection else "record.unmarked",
        target=record,
        case_reference=case_reference,
        data={"under_objection": under_objection},
    )
    return record


def _archive(record: CreditRecord) -> None:
    CreditRecordVersion.objects.create(
        record=record,
        version=record.version,
        category_id=record.category_id,
        title=record.title,
        facts=record.facts,
        decision_document_number=record.decision_document_number,
        decision_date=record.decision_date,
        conduct_ended_on=record.conduct_ended_on,
        publication_start=record.publication_start,
        publication_end=record.publication_end,
        retention_end=record.retention_end,
        content_hash=record.content_hash,
    )


@audited()
def record_correct(
    *, record_id: int, changes: dict[str, Any], actor: User | None, case_reference: str
) -> CreditRecord:
    """Apply a decided correction as a new version; the previous content is kept."""
    unknown = set(changes) - CORRECTABLE_FIELDS
    if unknown:
        raise ValueError(f"fields that a correction cannot change: {sorted(unknown)}")
    record = _locked_record(record_id)
    _archive(record)
    for name, value in changes.items():
        setattr(record, name, value)
    record.version += 1
    record.status = CreditRecord.Status.CORRECTED
    record.content_hash = hashlib.sha256(
        f"{record.content_hash}:{record.version}:{sorted(changes.items())}".encode()
    ).hexdigest()
    record.save(update_fields=[*changes, "version", "status", "content_hash", "updated_at"])
    audit_record(
        actor=actor,
        action="record.corrected",
        target=record,
        case_reference=case_reference,
        data={"fields": sorted(changes), "version": record.version},
    )
    return record


@audited()
def record_status_set(
    *, record_id: int, status: str, actor: User | None, case_reference: str
) -> CreditRecord:
    """Delete a record or end its publication by decision (the row itself is kept)."""
    record = _locked_record(record_id)
    if record.status == status:
        return record
    previous = record.status
    record.status = status
    record.save(update_fields=["status", "updated_at"])
    audit_record(
        actor=actor,
        action=f"record.{status}",
        target=record,
        case_reference=case_reference,
        data={"from": previous, "to": status},
    )
    return record


@audited()
def record_annotate_repaired(
    *, record_id: int, actor: User | None, case_reference: str
) -> CreditRecord:
    record = _locked_record(record_id)
    if record.repaired_at is not None:
        return record
    record.repaired_at = timezone.now()
    record.status = CreditRecord.Status.PUBLICATION_ENDED
    record.save(update_fields=["repaired_at", "status", "updated_at"])
    audit_record(
        actor=actor,
        action="record.repaired",
        target=record,
        case_reference=case_reference,
        data={"status": record.status},
    )
    return record
