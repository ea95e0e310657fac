"""Which workflow runs a jurisdiction's cases, and the prefix of their references: rows an
administrator edits (`WorkflowRoute`, `CaseReferencePrefix`), seeded from objections/routes.yaml
for a jurisdiction the first time one of its cases needs them."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from audit.services import audit_record, audited
from objections.exceptions import FilingRefused
from objections.models import CaseReferencePrefix, WorkflowRoute
from records.models import Jurisdiction

if TYPE_CHECKING:
    from accounts.models import User

ROUTES_FILE = Path(__file__).resolve().parent.parent / "routes.yaml"
KINDS = ("objection", "repair")


@functools.cache
def builtin_routes() -> dict[str, dict[str, str]]:
    """The defaults of objections/routes.yaml: per jurisdiction code, `prefix` and the workflow
    key of each kind."""
    data: Any = yaml.safe_load(ROUTES_FILE.read_text(encoding="utf-8"))
    return {str(code): {str(k): str(v) for k, v in entry.items()} for code, entry in data.items()}


@audited()
def routes_seed(*, jurisdiction: Jurisdiction, actor: User | None = None) -> int:
    """Store the defaults for `jurisdiction` that have no row yet. Returns the rows created."""
    defaults = builtin_routes().get(jurisdiction.code)
    if defaults is None:
        return 0
    created = 0
    for kind in KINDS:
        if kind in defaults:
            _, made = WorkflowRoute.objects.get_or_create(
                jurisdiction=jurisdiction, kind=kind, defaults={"workflow_key": defaults[kind]}
            )
            created += made
    if (
        "prefix" in defaults
        and not CaseReferencePrefix.objects.filter(jurisdiction=jurisdiction).exists()
    ):
        CaseReferencePrefix.objects.create(jurisdiction=jurisdiction, prefix=defaults["prefix"])
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
    *, jurisdiction: Jurisdiction, kind: str, workflow_key: str, actor: User | None
) -> WorkflowRoute:
    """Point a jurisdiction's cases of `kind` at another workflow (cases already routed stay on
    theirs). The key must name a workflow of that kind and jurisdiction."""
    from objections.services.definitions import route_problem

    problem = route_problem(jurisdiction_code=jurisdiction.code, kind=kind, key=workflow_key)
    if problem:
        raise FilingRefused(problem)
    route, _ = WorkflowRoute.objects.select_for_update().get_or_create(
        jurisdiction=jurisdiction, kind=kind, defaults={"workflow_key": workflow_key}
    )
    before = route.workflow_key
    route.workflow_key = workflow_key
    route.save(update_fields=["workflow_key", "updated_at"])
    audit_record(
        actor=actor,
        action="workflow.route_set",
        target=route,
        data={"jurisdiction": jurisdiction.code, "kind": kind, "from": before, "to": workflow_key},
    )
    return route


def route_key(jurisdiction: Jurisdiction, kind: str) -> str:
    """The key of the workflow that runs `jurisdiction`'s cases of `kind`."""
    key = (
        WorkflowRoute.objects.filter(jurisdiction=jurisdiction, kind=kind)
        .values_list("workflow_key", flat=True)
        .first()
    )
    if key is None and routes_seed(jurisdiction=jurisdiction):
        return route_key(jurisdiction, kind)
    if key is None:
        raise FilingRefused(
            f"No {kind} procedure is configured for jurisdiction {jurisdiction.code!r}."
        )
    return key


def reference_prefix(jurisdiction: Jurisdiction) -> str:
    prefix = (
        CaseReferencePrefix.objects.filter(jurisdiction=jurisdiction)
        .values_list("prefix", flat=True)
        .first()
    )
    if prefix is None and routes_seed(jurisdiction=jurisdiction):
        return reference_prefix(jurisdiction)
    return prefix or jurisdiction.code[:2].upper()
