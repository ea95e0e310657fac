"""Routing a filed case: the workflow version, the responsible agency, the least-loaded
caseworker, the automatic first steps and the clocks; and the re-drive of lost routing messages.
"""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING

from django.utils import timezone

from audit.services import audit_record, audited
from objections.models import (
    Case,
)
from objections.services import clocks
from objections.services.assignment import least_loaded_caseworker
from objections.services.definitions import definition_of
from objections.services.filing import definition_row_in_force
from objections.services.notifications import notify
from objections.services.routes import route_key
from objections.services.transitions import automatic_steps_run
from records.models import Agency

if TYPE_CHECKING:
    pass


ROUTING_GRACE_SECONDS = 60


@audited()
def case_route(*, case_id: int) -> Case:
    """Choose the workflow version, the responsible agency and the assignee; start the clocks.

    Idempotent: a routed case is returned unchanged, so a duplicated message does nothing.
    """
    case = (
        Case.objects.select_for_update(of=("self",))
        .select_related("record__agency__jurisdiction", "record__category", "jurisdiction")
        .get(pk=case_id)
    )
    if case.routed_at is not None:
        return case
    filed_on = timezone.localdate(case.filed_at)
    row = definition_row_in_force(route_key(case.jurisdiction, case.kind, case.record), filed_on)
    definition = definition_of(row)
    centre = (
        Agency.objects.filter(jurisdiction=case.jurisdiction, kind=Agency.Kind.CREDIT_CENTRE)
        .order_by("id")
        .first()
        if definition.responsible == "credit_centre"
        else None
    )
    agency = centre or case.record.agency
    case.workflow = row
    case.responsible_agency = agency
    case.assignee = least_loaded_caseworker(agency.pk)
    case.state = definition.initial
    case.routed_at = timezone.now()
    today = timezone.localdate()
    clocks.clocks_start(case=case, definition=definition, state=case.state, today=today)
    case.next_due_on = clocks.case_next_due(case)
    case.lock_version += 1
    case.save(
        update_fields=[
            "workflow",
            "responsible_agency",
            "assignee",
            "state",
            "routed_at",
            "next_due_on",
            "lock_version",
            "updated_at",
        ]
    )
    audit_record(
        actor=None,
        action="case.routed",
        target=case,
        case_reference=case.reference,
        data={
            "workflow": row.key,
            "version": row.version,
            "agency": agency.pk,
            "assignee": case.assignee_id,
            "state": case.state,
        },
    )
    automatic_steps_run(case, definition)
    notify(case_id=case.pk, event="routed")
    return case


def cases_unrouted_redrive(*, older_than_seconds: int = ROUTING_GRACE_SECONDS) -> list[int]:
    """Queue routing again for cases whose message was lost (a killed worker, a flushed Redis)."""
    from objections.tasks import case_route_task

    cutoff = timezone.now() - timedelta(seconds=older_than_seconds)
    ids = list(
        Case.objects.filter(routed_at__isnull=True, filed_at__lte=cutoff).values_list(
            "id", flat=True
        )
    )
    for case_id in ids:
        case_route_task.delay(case_id=case_id)
    return ids
