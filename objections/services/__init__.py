"""Every write of the objections app. Import from the sub-modules; this package re-exports."""

from objections.selectors import case_roles_for, case_transitions_available
from objections.services.clocks import clocks_sweep
from objections.services.conflicts import import_conflict_resolve
from objections.services.definitions import (
    definition_of,
    workflow_definition_publish,
    workflow_definitions_sync,
)
from objections.services.disputes import case_dispute_statement_add
from objections.services.filing import case_file
from objections.services.routing import case_route, cases_unrouted_redrive
from objections.services.transitions import (
    TransitionInput,
    case_approval_decide,
    case_transition,
)

__all__ = [
    "TransitionInput",
    "case_approval_decide",
    "case_dispute_statement_add",
    "case_file",
    "case_roles_for",
    "case_route",
    "case_transition",
    "case_transitions_available",
    "cases_unrouted_redrive",
    "clocks_sweep",
    "definition_of",
    "import_conflict_resolve",
    "workflow_definition_publish",
    "workflow_definitions_sync",
]
