"""Writes to the registry: access grants, identifier reveals and the publication sweep.

Bulk import lives in `records.imports`.
"""

from __future__ import annotations

from datetime import date
from typing import TYPE_CHECKING

from django.db import transaction
from django.utils import timezone
from guardian.shortcuts import assign_perm, remove_perm

from audit.services import audit_record
from records.crypto import identifier_decrypt
from records.models import CreditRecord, Subject, SubjectUserObjectPermission
from records.selectors import ACT_FOR_SUBJECT

if TYPE_CHECKING:
    from accounts.models import User

SWEEP_CHUNK = 1_000
_PERMISSION = f"records.{ACT_FOR_SUBJECT}"


@transaction.atomic
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


@transaction.atomic
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


@transaction.atomic
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
        with transaction.atomic():
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
