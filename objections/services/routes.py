"""Which workflow runs a jurisdiction's cases, and the prefix of their references: rows an
administrator edits (`WorkflowRoute`, `CaseReferencePrefix`), seeded from objections/routes.yaml
for a jurisdiction the first time one of its cases needs them."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml
from django.core.exceptions import ValidationError

from audit.services import audit_record, audited
from objections.exceptions import FilingRefused
from objections.models import CaseReferencePrefix, WorkflowRoute
from records.models import CreditRecord, Jurisdiction
from scs_cases.errors import Conflict

if TYPE_CHECKING:
    from accounts.models import User

ROUTES_FILE = Path(__file__).resolve().parent.parent / "routes.yaml"
KINDS = ("objection", "repair", "deletion")


@dataclass(frozen=True)
class RouteDefault:
    kind: str
    workflow: str
    information: str = ""
    holder: str = ""


@dataclass(frozen=True)
class JurisdictionDefaults:
    prefix: str
    routes: tuple[RouteDefault, ...]


@functools.cache
def builtin_routes() -> dict[str, JurisdictionDefaults]:
    """The defaults of objections/routes.yaml, per jurisdiction code."""
    data: Any = yaml.safe_load(ROUTES_FILE.read_text(encoding="utf-8"))
    return {
        str(code): JurisdictionDefaults(
            prefix=str(entry["prefix"]),
            routes=tuple(
                RouteDefault(
                    kind=str(route["kind"]),
                    workflow=str(route["workflow"]),
                    information=str(route.get("information", "")),
                    holder=str(route.get("holder", "")),
                )
                for route in entry.get("routes", [])
            ),
        )
        for code, entry in data.items()
    }


@audited()
def routes_seed(*, jurisdiction: Jurisdiction, actor: User | None = None) -> int:
    """Store the defaults for a jurisdiction that has no route and no prefix yet (once stored,
    the rows are the administrator's). Returns the rows created."""
    defaults = builtin_routes().get(jurisdiction.code)
    if defaults is None:
        return 0
    created = 0
    if not WorkflowRoute.objects.filter(jurisdiction=jurisdiction).exists():
        for route in defaults.routes:
            _, made = WorkflowRoute.objects.get_or_create(
                jurisdiction=jurisdiction,
                kind=route.kind,
                information_kind=route.information,
                holder_kind=route.holder,
                defaults={"workflow_key": route.workflow},
            )
            created += made
    if not CaseReferencePrefix.objects.filter(jurisdiction=jurisdiction).exists():
        CaseReferencePrefix.objects.create(jurisdiction=jurisdiction, prefix=defaults.prefix)
        created += 1
    if created:
        audit_record(
            actor=actor,
            action="workflow.routes_seeded",
            target=jurisdiction,
            data={"jurisdiction": jurisdiction.code, "rows": created},
        )
    return created


@audited()
def workflow_route_set(
    *,
    jurisdiction: Jurisdiction,
    kind: str,
    workflow_key: str,
    actor: User | None,
    information_kind: str = "",
    holder_kind: str = "",
) -> WorkflowRoute:
    """Point a jurisdiction's cases of `kind` (narrowed to records of `information_kind` or held
    by agencies of `holder_kind`, when given) at another workflow; cases already routed stay on
    theirs. The key must name a workflow of that kind and jurisdiction."""
    from objections.services.definitions import route_problem

    problem = route_problem(jurisdiction_code=jurisdiction.code, kind=kind, key=workflow_key)
    if problem:
        raise FilingRefused(problem)
    route, created = WorkflowRoute.objects.select_for_update().get_or_create(
        jurisdiction=jurisdiction,
        kind=kind,
        information_kind=information_kind,
        holder_kind=holder_kind,
        defaults={"workflow_key": workflow_key},
    )
    before = None if created else route.workflow_key
    route.workflow_key = workflow_key
    route.save(update_fields=["workflow_key", "updated_at"])
    narrowed = {"information": information_kind, "holder": holder_kind}
    audit_record(
        actor=actor,
        action="workflow.route_set",
        target=route,
        data={
            "jurisdiction": jurisdiction.code,
            "kind": kind,
            **{key: value for key, value in narrowed.items() if value},
            "from": before,
            "to": workflow_key,
        },
    )
    return route


@audited()
def workflow_route_delete(*, route_id: int, actor: User | None) -> None:
    """Remove a narrowed route (one naming a kind of information or of holder); its records'
    cases then follow the jurisdiction's route for the kind. The route for a kind as a whole
    stays (point it at another workflow instead): without it such cases could not be filed.
    Cases already routed keep their workflow."""
    route = (
        WorkflowRoute.objects.select_for_update().select_related("jurisdiction").get(pk=route_id)
    )
    if not (route.information_kind or route.holder_kind):
        raise FilingRefused(
            f"The route for {route.jurisdiction.code}'s {route.kind} cases as a whole cannot be "
            "removed; point it at another workflow instead."
        )
    audit_record(
        actor=actor,
        action="workflow.route_removed",
        target=route,
        data={
            "jurisdiction": route.jurisdiction.code,
            "kind": route.kind,
            "information": route.information_kind,
            "holder": route.holder_kind,
            "from": route.workflow_key,
            "to": None,
        },
    )
    route.delete()


@audited()
def case_reference_prefix_set(
    *, jurisdiction: Jurisdiction, prefix: str, actor: User | None
) -> CaseReferencePrefix:
    """Give a jurisdiction's new case references another prefix; references already given keep
    theirs (numbers count per prefix and year, so a prefix used before never repeats one)."""
    row = CaseReferencePrefix.objects.select_for_update().filter(jurisdiction=jurisdiction).first()
    before = row.prefix if row is not None else None
    if before == prefix:
        return row  # type: ignore[return-value]
    if (
        CaseReferencePrefix.objects.filter(prefix=prefix)
        .exclude(jurisdiction=jurisdiction)
        .exists()
    ):
        raise Conflict(f"Another jurisdiction's references begin with {prefix}.")
    if row is None:
        row = CaseReferencePrefix(jurisdiction=jurisdiction)
    row.prefix = prefix
    try:
        row.full_clean(exclude=["jurisdiction"], validate_unique=False)
    except ValidationError as error:
        raise FilingRefused("; ".join(error.messages)) from error
    row.save()
    audit_record(
        actor=actor,
        action="workflow.reference_prefix_set",
        target=row,
        data={"jurisdiction": jurisdiction.code, "before": before, "after": prefix},
    )
    return row


def route_key(jurisdiction: Jurisdiction, kind: str, record: CreditRecord | None = None) -> str:
    """The key of the workflow that runs `jurisdiction`'s cases of `kind` about `record`: the
    narrowest route matching the record's kind of information and the kind of its holder."""
    rows = list(
        WorkflowRoute.objects.filter(jurisdiction=jurisdiction, kind=kind).values_list(
            "information_kind", "holder_kind", "workflow_key"
        )
    )
    if not rows and routes_seed(jurisdiction=jurisdiction):
        return route_key(jurisdiction, kind, record)
    information = record.category.information_kind if record is not None else ""
    holder = record.agency.kind if record is not None else ""
    matching = [
        ((bool(info) + bool(held), bool(held)), key)
        for info, held, key in rows
        if info in ("", information) and held in ("", holder)
    ]
    if not matching:
        raise FilingRefused(
            f"No {kind} procedure is configured for jurisdiction {jurisdiction.code!r}."
        )
    return max(matching)[1]


def reference_prefix(jurisdiction: Jurisdiction) -> str:
    prefix = (
        CaseReferencePrefix.objects.filter(jurisdiction=jurisdiction)
        .values_list("prefix", flat=True)
        .first()
    )
    if prefix is None and routes_seed(jurisdiction=jurisdiction):
        return reference_prefix(jurisdiction)
    return prefix or jurisdiction.code[:2].upper()
