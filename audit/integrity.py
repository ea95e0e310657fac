"""Integrity checks of the whole audit log, on demand and daily (issue 12, auditor pages).

`audit_integrity_check_request` records the request (audited) and queues the run after commit;
`audit_integrity_check_run` verifies the chain, the application's seals and the log against every
stored signed checkpoint (`audit.checkpoints.audit_log_verify`) and stores the result: passed, or
failed with the first broken event and the reason. Beat requests one every day.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from functools import partial
from typing import TYPE_CHECKING

from django.db import transaction
from django.db.models import QuerySet
from django.utils import timezone

from audit.checkpoints import audit_log_verify, checkpoint_heads
from audit.exports import audit_export_allowed
from audit.models import AuditIntegrityCheck
from audit.services import audit_record, audited
from audit.verify import ChainBreak, VerifyResult
from scs_cases.errors import NotPermitted

if TYPE_CHECKING:
    from accounts.models import User

logger = logging.getLogger(__name__)

# A check queued or running for less than this is not queued again: pressing the button twice,
# or beat firing while an auditor's check runs, makes one check. One left behind by a dead
# worker for longer does not block the next.
PENDING_WINDOW = timedelta(hours=1)

Status = AuditIntegrityCheck.Status


@audited()
def audit_integrity_check_request(*, actor: User | None) -> AuditIntegrityCheck:
    """Queue a check of the whole log (actor None: beat). A check already queued or running
    within the last hour is returned instead of a new one, and nothing is recorded."""
    if actor is not None and not audit_export_allowed(actor):
        raise NotPermitted("Only auditors check the audit log's integrity.")
    pending = (
        AuditIntegrityCheck.objects.select_for_update()
        .filter(
            status__in=[Status.QUEUED, Status.RUNNING],
            created_at__gte=timezone.now() - PENDING_WINDOW,
        )
        .order_by("-id")
        .first()
    )
    if pending is not None:
        return pending
    check = AuditIntegrityCheck.objects.create(requested_by=actor, created_at=timezone.now())
    audit_record(actor=actor, action="audit.integrity_check_requested", target=check)
    from audit.tasks import audit_integrity_check_task

    transaction.on_commit(partial(audit_integrity_check_task.delay, check_id=check.pk))
    return check


def audit_integrity_check_run(*, check_id: int) -> AuditIntegrityCheck:
    """Run a queued check and store its result. Idempotent: a check that is not queued (taken
    by another worker, or finished) is returned as it is."""
    claimed = AuditIntegrityCheck.objects.filter(pk=check_id, status=Status.QUEUED).update(
        status=Status.RUNNING, started_at=timezone.now()
    )
    if not claimed:
        return AuditIntegrityCheck.objects.get(pk=check_id)
    # The checkpoints, read once, so that the count shown is the set verified against.
    try:
        heads, problem = checkpoint_heads()
        result = (
            VerifyResult(0, 0, "", ChainBreak(0, problem))
            if problem
            else audit_log_verify(heads=heads)
        )
    except Exception as error:
        logger.exception("audit integrity check %s did not finish", check_id)
        return _finish(
            check_id=check_id,
            status=Status.FAILED,
            events_checked=0,
            last_sequence=0,
            checkpoints_checked=0,
            broken_sequence=None,
            broken_reason=f"the check did not finish: {type(error).__name__}",
        )
    broken = result.broken
    return _finish(
        check_id=check_id,
        status=Status.PASSED if broken is None else Status.FAILED,
        events_checked=result.events_checked,
        last_sequence=result.last_sequence,
        checkpoints_checked=len(heads),
        broken_sequence=None if broken is None else broken.sequence,
        broken_reason="" if broken is None else broken.reason,
    )


@audited()
def _finish(
    *,
    check_id: int,
    status: str,
    events_checked: int,
    last_sequence: int,
    checkpoints_checked: int,
    broken_sequence: int | None,
    broken_reason: str,
) -> AuditIntegrityCheck:
    check = AuditIntegrityCheck.objects.select_for_update().get(pk=check_id)
    check.status = status
    check.events_checked = events_checked
    check.last_sequence = last_sequence
    check.checkpoints_checked = checkpoints_checked
    check.broken_sequence = broken_sequence
    check.broken_reason = broken_reason[:2000]
    check.finished_at = timezone.now()
    check.save(
        update_fields=[
            "status",
            "events_checked",
            "last_sequence",
            "checkpoints_checked",
            "broken_sequence",
            "broken_reason",
            "finished_at",
        ]
    )
    audit_record(
        actor=None,
        action="audit.integrity_checked",
        target=check,
        data={
            "status": status,
            "events_checked": events_checked,
            "last_sequence": last_sequence,
            "checkpoints_checked": checkpoints_checked,
            "broken_sequence": broken_sequence,
        },
    )
    return check


def audit_integrity_check_list(*, user: User, limit: int = 10) -> QuerySet[AuditIntegrityCheck]:
    """The latest checks (anyone's and beat's), newest first; nothing for a non-auditor."""
    if not audit_export_allowed(user):
        return AuditIntegrityCheck.objects.none()
    return AuditIntegrityCheck.objects.select_related("requested_by").order_by("-id")[:limit]
