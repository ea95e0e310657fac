"""Filing a case: the reference, the repair guards, the workflow that will run it.

`case_file` stores the case and queues its routing after commit.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date
from functools import partial
from typing import TYPE_CHECKING, Any

from django.db import IntegrityError, transaction
from django.utils import timezone

from accounts.models import User
from audit.services import audit_record, audited
from objections import workflow
from objections.exceptions import (
    CaseConflict,
    FilingRefused,
)
from objections.models import (
    Case,
    CaseReferenceCounter,
)
from objections.services.definitions import definition_of
from objections.services.notifications import notify
from objections.services.routes import reference_prefix, route_key
from records import services as record_services
from records.dates import add_months
from records.models import CreditRecord, Jurisdiction

if TYPE_CHECKING:
    from objections.models import WorkflowDefinition


def current_definition_row(key: str) -> WorkflowDefinition:
    """The current stored version of a workflow. The built-in definitions are stored here, the
    one place that seeds them, the first time a jurisdiction's case needs one (a jurisdiction may
    be configured long after the last migration); `load_demo` calls the same sync."""
    from objections.models import WorkflowDefinition
    from objections.services.definitions import workflow_definitions_sync

    row = WorkflowDefinition.objects.filter(key=key, is_current=True).first()
    if row is None:
        workflow_definitions_sync()
        row = WorkflowDefinition.objects.get(key=key, is_current=True)
    return row


def _next_reference(jurisdiction: Jurisdiction, year: int) -> str:
    prefix = reference_prefix(jurisdiction)
    counter, _ = CaseReferenceCounter.objects.select_for_update().get_or_create(
        prefix=prefix, year=year
    )
    counter.last += 1
    counter.save(update_fields=["last"])
    return f"{prefix}-{year}-{counter.last:06d}"


# Guards a workflow may declare. One it does not declare has no known basis in its rules: it is
# not enforced, and the filing says so (`guards_not_enforced` in its audit event).
REPAIR_GUARDS = ("serious_list_blocks_repair",)


def _repair_guards(record: CreditRecord, definition: workflow.Definition, today: date) -> list[str]:
    """Repair needs a repairable category, the minimum period passed (the catalogue's, or the
    workflow's own when longer), and no serious-dishonesty listing where the rules say so.
    Returns the guards not enforced because the workflow does not declare them."""
    category = record.category
    if not category.repairable:
        raise FilingRefused("Records of this category cannot be repaired.")
    if definition.guards.get("serious_list_blocks_repair", False) and (
        record.subject.on_serious_dishonesty_list
    ):
        raise FilingRefused(
            "A subject on a serious-dishonesty list cannot apply for repair until removed from it."
        )
    months = category.publication_min_months
    by_severity = definition.guards.get("min_publication_months_by_severity")
    if isinstance(by_severity, Mapping):
        months = max(months, int(by_severity.get(category.severity, 0)))
    earliest = add_months(record.decision_date, months)
    if today < earliest:
        raise FilingRefused(
            f"Repair may be applied for from {earliest.isoformat()}: the minimum period for a "
            f"{category.severity} record is {months} months.",
            earliest=earliest.isoformat(),
        )
    return [name for name in REPAIR_GUARDS if name not in definition.guards]


@audited()
def case_file(
    *,
    actor: User,
    record: CreditRecord,
    kind: str,
    grounds: str,
    statement: str,
    requested_remedy: str,
    fields_objected: list[str] | None = None,
    correction: dict[str, Any] | None = None,
    representative: User | None = None,
) -> Case:
    """File an objection or repair application about one record the actor may act for."""
    if kind not in (Case.Kind.OBJECTION, Case.Kind.REPAIR):
        raise FilingRefused("A case is an objection or a repair application.")
    record = CreditRecord.objects.select_related("subject", "category", "agency__jurisdiction").get(
        pk=record.pk
    )
    today = timezone.localdate()
    jurisdiction = record.agency.jurisdiction
    unenforced: list[str] = []
    if kind == Case.Kind.REPAIR:
        row = current_definition_row(route_key(jurisdiction, kind))
        unenforced = _repair_guards(record, definition_of(row), today)
    # Checked as an import row would be: nothing reaches a decision that cannot be applied.
    proposed = record_services.record_correction_check(
        record, correction or {}, today=today
    ).as_json()
    if Case.objects.filter(record=record, kind=kind, is_open=True).exists():
        raise CaseConflict(f"An open {kind} case about this record already exists.")
    now = timezone.now()
    try:
        with transaction.atomic():
            case = Case.objects.create(
                reference=_next_reference(jurisdiction, today.year),
                kind=kind,
                subject=record.subject,
                record=record,
                fields_objected=fields_objected or [],
                grounds=grounds,
                statement=statement,
                requested_remedy=requested_remedy,
                correction=proposed,
                filed_by=actor,
                representative=representative,
                jurisdiction=jurisdiction,
                filed_at=now,
            )
    except IntegrityError as error:  # a concurrent filing won the unique constraint
        raise CaseConflict(f"An open {kind} case about this record already exists.") from error
    audit_record(
        actor=actor,
        action="case.filed",
        target=case,
        case_reference=case.reference,
        data={
            "kind": kind,
            "record": record.pk,
            "grounds": grounds,
            "remedy": requested_remedy,
            **({"guards_not_enforced": unenforced} if unenforced else {}),
        },
    )
    from objections.tasks import case_route_task

    transaction.on_commit(partial(case_route_task.delay, case_id=case.pk))
    notify(case_id=case.pk, event="filed")
    return case
