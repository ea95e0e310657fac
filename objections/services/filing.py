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

from accounts import roles
from accounts.models import User
from audit.services import audit_record, audited
from objections import workflow
from objections.exceptions import (
    CaseConflict,
    FilingRefused,
)
from objections.models import (
    Case,
    CaseDocument,
    CaseReferenceCounter,
)
from objections.services.definitions import definition_of, documents_checked
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


def definition_row_in_force(key: str, on: date) -> WorkflowDefinition:
    """The stored definition that governs a case filed on `on` under the route to `key`: the
    current version of `key`, or, when `on` is before its `effective_from`, the definition it
    superseded (and so on back). A day before every one of them is refused."""
    row = current_definition_row(key)
    definition = definition_of(row)
    seen = {key}
    while definition.effective_from is not None and on < date.fromisoformat(
        definition.effective_from
    ):
        earlier = definition.supersedes
        if earlier is None or earlier in seen:
            raise FilingRefused(
                f"No procedure was in force on {on.isoformat()}: {definition.key!r} applies "
                f"from {definition.effective_from}."
            )
        seen.add(earlier)
        row = current_definition_row(earlier)
        definition = definition_of(row)
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
REPAIR_GUARDS = ("serious_list_blocks_repair", "no_new_record_of_same_type")


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
    if definition.guards.get("no_new_record_of_same_type", False):
        newer = (
            CreditRecord.objects.filter(
                subject_id=record.subject_id,
                category_id=record.category_id,
                status__in=[CreditRecord.Status.PUBLISHED, CreditRecord.Status.CORRECTED],
                decision_date__gt=record.decision_date,
            )
            .exclude(pk=record.pk)
            .values_list("decision_date", flat=True)
            .first()
        )
        if newer is not None:
            raise FilingRefused(
                "Repair is not available: an adverse record of the same category was decided "
                f"after this one (on {newer.isoformat()})."
            )
    months = category.publication_min_months
    by_severity = definition.guards.get("min_publication_months_by_severity")
    if category.information_kind == category.InformationKind.PENALTY:
        by_severity = definition.guards.get(
            "penalty_min_publication_months_by_severity", by_severity
        )
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
    documents: Mapping[str, str] | None = None,
) -> Case:
    """File an objection or repair application about one record the actor may act for, or, for
    the unit that provided the record, a deletion after the act it rests on was revoked.
    `documents` are entries for the case's checklist (document key -> reference)."""
    if kind not in (Case.Kind.OBJECTION, Case.Kind.REPAIR, Case.Kind.DELETION):
        raise FilingRefused("A case is an objection, a repair application or a deletion.")
    record = CreditRecord.objects.select_related("subject", "category", "agency__jurisdiction").get(
        pk=record.pk
    )
    if kind == Case.Kind.DELETION and not (
        actor.agency_id == record.agency_id
        and {roles.CASEWORKER, roles.SUPERVISOR} & roles.role_names(actor)
    ):
        raise FilingRefused("Only the unit that provided the record can notify its revocation.")
    today = timezone.localdate()
    jurisdiction = record.agency.jurisdiction
    row = definition_row_in_force(route_key(jurisdiction, kind, record), today)
    definition = definition_of(row)
    unenforced: list[str] = []
    if kind == Case.Kind.REPAIR:
        unenforced = _repair_guards(record, definition, today)
    checklist = documents_checked(definition, documents or {})
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
            CaseDocument.objects.bulk_create(
                CaseDocument(
                    case=case, key=key, reference=reference, recorded_by=actor, transition="filed"
                )
                for key, reference in checklist.items()
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
            **({"documents": sorted(checklist)} if checklist else {}),
            **({"guards_not_enforced": unenforced} if unenforced else {}),
        },
    )
    from objections.tasks import case_route_task

    transaction.on_commit(partial(case_route_task.delay, case_id=case.pk))
    notify(case_id=case.pk, event="filed")
    return case
