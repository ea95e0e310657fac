"""Writes to the registry: access grants, identifier reveals, the publication sweep, marks,
corrections and merges of records. The configuration an administrator edits is in
`records.configuration`.

Bulk import lives in `records.imports`.
"""

from __future__ import annotations

from datetime import date
from typing import TYPE_CHECKING, Any

from django.utils import timezone
from guardian.shortcuts import assign_perm, remove_perm

from audit.services import audit_record, audited
from records import content
from records.crypto import identifier_decrypt
from records.models import (
    CatalogueEntry,
    CreditRecord,
    CreditRecordVersion,
    ImportConflict,
    Jurisdiction,
    Subject,
    SubjectUserObjectPermission,
)
from records.selectors import ACT_FOR_SUBJECT
from scs_cases.errors import Conflict

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
def subject_identifier_reveal(
    *, subject: Subject, actor: User, reason: str, case_reference: str = ""
) -> str:
    """The full identifier, for a permitted user; every reveal is audited with its reason, and
    with the case it was asked for from (so that it shows in that case's history and exports)."""
    audit_record(
        actor=actor,
        action="subject.revealed",
        target=subject,
        case_reference=case_reference,
        data={"reason": reason[:500]},
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
        statuses=(CreditRecord.Status.PUBLISHED, CreditRecord.Status.CORRECTED),
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

CORRECTABLE_FIELDS = content.CORRECTABLE_FIELDS
# The fields that make a record's content, as an import row or a version holds them.
CONTENT_FIELDS = (
    "subject_id",
    "category_id",
    "title",
    "facts",
    "decision_document_number",
    "decision_date",
    "conduct_ended_on",
    "publication_start",
    "publication_end",
    "retention_end",
)


def _locked_record(record_id: int) -> CreditRecord:
    return (
        CreditRecord.objects.select_for_update(of=("self",))
        .select_related("subject", "category", "agency__jurisdiction")
        .get(pk=record_id)
    )


def _periods_after(record: CreditRecord, *, months: int) -> tuple[date, date, date]:
    jurisdiction = record.agency.jurisdiction
    return content.record_periods(
        decision_date=record.decision_date,
        conduct_ended_on=record.conduct_ended_on,
        months=months,
        retention_months=jurisdiction.retention_years * 12,
        retention_from_conduct=(
            jurisdiction.retention_starts_from == Jurisdiction.RetentionStart.CONDUCT_ENDED
        ),
    )


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


def _archive(record: CreditRecord, *, batch_id: int | None = None) -> None:
    CreditRecordVersion.objects.create(
        record=record,
        version=record.version,
        content_hash=record.content_hash,
        superseded_by_batch_id=batch_id,
        **{name: getattr(record, name) for name in CONTENT_FIELDS if name != "subject_id"},
    )


def _content_update(
    record: CreditRecord,
    changes: dict[str, Any],
    *,
    status: str,
    batch_id: int | None = None,
    months: int | None = None,
) -> list[str]:
    """Archive `record`'s content, then apply `changes` as its next version. The publication
    and retention periods follow from the dates as an import computes them, over `months` of
    publication (by default the record's). Returns the fields saved."""
    if months is None:
        months = content.publication_months(record.publication_start, record.publication_end)
    _archive(record, batch_id=batch_id)
    for name, value in changes.items():
        setattr(record, name, value)
    record.publication_start, record.publication_end, record.retention_end = _periods_after(
        record, months=months
    )
    if "category_id" in changes or "subject_id" in changes:
        # Reload what the content hash names, by id.
        record.category = CatalogueEntry.objects.get(pk=record.category_id)
        record.subject = Subject.objects.get(pk=record.subject_id)
    record.version += 1
    record.status = status
    record.content_hash = content.record_content_hash(record)
    return [*CONTENT_FIELDS, "version", "status", "content_hash", "decided_fields", "updated_at"]


def record_correction_check(
    record: CreditRecord, changes: object, *, today: date
) -> content.CheckedCorrection:
    """`changes` checked as an import row's values would be, on this record: each field, and
    the periods its dates would give, which an import refuses when the retention would end
    before the decision or has ended already (such a record is not corrected but deleted)."""
    checked = content.correction_check(changes, today=today)
    dated = {name: checked.values[name] for name in content.DATE_FIELDS if name in checked.values}
    if not dated:
        return checked
    decision_date = dated.get("decision_date", record.decision_date)
    conduct_ended_on = dated.get("conduct_ended_on", record.conduct_ended_on)
    jurisdiction = record.agency.jurisdiction
    _, _, retention_end = content.record_periods(
        decision_date=decision_date,
        conduct_ended_on=conduct_ended_on,
        months=content.publication_months(record.publication_start, record.publication_end),
        retention_months=jurisdiction.retention_years * 12,
        retention_from_conduct=(
            jurisdiction.retention_starts_from == Jurisdiction.RetentionStart.CONDUCT_ENDED
        ),
    )
    if retention_end < decision_date or retention_end <= today:
        reason = (
            f"would end the retention period on {retention_end.isoformat()}: the record could "
            "no longer be kept, so it is deleted, not corrected"
        )
        errors = {name: reason for name in dated}
        raise content.ContentInvalid(
            f"The correction cannot be applied: {', '.join(sorted(dated))} {reason}.",
            errors=errors,
        )
    return checked


@audited()
def record_correct(
    *,
    record_id: int,
    changes: dict[str, Any],
    actor: User | None,
    case_reference: str,
    today: date | None = None,
) -> CreditRecord:
    """Apply a decided correction as a new version; the previous content is kept. `changes` are
    checked like an import row's values (dates as `date` or ISO text). The fields it sets are
    locked to the case: an import may not change them back (see `record_import_merge`)."""
    record = _locked_record(record_id)
    checked = record_correction_check(
        record,
        {
            name: value.isoformat() if isinstance(value, date) else value
            for name, value in changes.items()
        },
        today=today or timezone.localdate(),
    )
    # Only a published record becomes "corrected" (still published); one whose publication has
    # ended, or that is deleted or expired, keeps its status.
    status = (
        CreditRecord.Status.CORRECTED
        if record.status == CreditRecord.Status.PUBLISHED
        else record.status
    )
    fields = _content_update(record, checked.values, status=status)
    record.decided_fields = {
        **(record.decided_fields or {}),
        **{name: case_reference for name in checked.values},
    }
    record.save(update_fields=fields)
    audit_record(
        actor=actor,
        action="record.corrected",
        target=record,
        case_reference=case_reference,
        data={"fields": sorted(checked.values), "version": record.version},
    )
    return record


class ContentDrifted(Conflict):
    code = "record_changed"


def _comparable(value: object) -> object:
    return value.isoformat() if isinstance(value, date) else value


@audited()
def record_import_merge(
    *,
    record_id: int,
    staged: dict[str, Any],
    batch_id: int,
    line: int,
    actor: User | None,
) -> tuple[bool, list[ImportConflict]]:
    """Apply an import row to a record some of whose fields a decided case set.

    The fields the decisions did not set update as the import would update them; those they set
    keep the decided value, and a row that would change one is held as an ImportConflict per
    deciding case (one per record, agency content and decision: a file sent again does not
    repeat it, but a later decision on the same fields gets its own). Returns whether the
    record changed, and the conflicts.
    """
    record = _locked_record(record_id)
    decided: dict[str, str] = record.decided_fields or {}
    held: dict[str, dict[str, dict[str, object]]] = {}
    for name in sorted(decided):
        agency_value, decided_value = _comparable(staged[name]), _comparable(getattr(record, name))
        if name in staged and agency_value != decided_value:
            held.setdefault(decided[name], {})[name] = {
                "agency": agency_value,
                "decided": decided_value,
            }
    changes = {
        name: staged[name]
        for name in ("subject_id", "category_id", *content.TEXT_FIELDS, *content.DATE_FIELDS)
        if name not in decided and staged[name] != getattr(record, name)
    }
    months = content.publication_months(staged["publication_start"], staged["publication_end"])
    if months != content.publication_months(record.publication_start, record.publication_end):
        changes.setdefault("title", record.title)  # a new period alone is a new version too
    changed = False
    if changes:
        fields = _content_update(
            record, changes, status=record.status, batch_id=batch_id, months=months
        )
        record.save(update_fields=fields)
        changed = True
        audit_record(
            actor=actor,
            action="record.updated_around_decision",
            target=record,
            data={"fields": sorted(changes), "version": record.version, "batch": batch_id},
        )
    conflicts = []
    for reference, fields_held in held.items():
        conflict, created = ImportConflict.objects.get_or_create(
            record=record,
            agency_content_hash=staged["content_hash"],
            case_reference=reference,
            defaults={"batch_id": batch_id, "line": line, "fields": fields_held},
        )
        conflicts.append(conflict)
        if created:
            audit_record(
                actor=actor,
                action="record.import_conflict",
                target=conflict,
                case_reference=reference,
                data={
                    "record": record.pk,
                    "fields": sorted(fields_held),
                    "batch": batch_id,
                    "line": line,
                },
            )
    return changed, conflicts


@audited()
def record_conflict_accept(
    *, conflict: ImportConflict, actor: User, today: date | None = None
) -> CreditRecord:
    """Apply the agency's values an import conflict held back, as a new version; those fields
    are no longer locked to the decision. The caller (`import_conflict_resolve`) checks who may."""
    values = {name: held["agency"] for name, held in conflict.fields.items()}
    checked = content.correction_check(values, today=today or timezone.localdate())
    record = _locked_record(conflict.record_id)
    decided = record.decided_fields or {}
    drifted = sorted(
        name
        for name, held in conflict.fields.items()
        if decided.get(name) != conflict.case_reference
        or _comparable(getattr(record, name)) != held["decided"]
    )
    if drifted:
        raise ContentDrifted(
            "The record changed since this conflict was held (a later decision or import); "
            f"these fields no longer hold the decided value it names: {', '.join(drifted)}.",
            fields=drifted,
        )
    fields = _content_update(record, checked.values, status=record.status)
    remaining = {
        name: reference
        for name, reference in (record.decided_fields or {}).items()
        if name not in checked.values
    }
    record.decided_fields = remaining or None
    record.save(update_fields=fields)
    audit_record(
        actor=actor,
        action="record.decision_overridden",
        target=record,
        case_reference=conflict.case_reference,
        data={"fields": sorted(checked.values), "version": record.version, "conflict": conflict.pk},
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
