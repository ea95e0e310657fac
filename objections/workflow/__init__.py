"""The workflow engine: parse, validate and query a workflow definition.

A package along its seams: `model` (the vocabulary, the definition and its queries), `parsing`
(reading YAML, the states, transitions and timers, and the built-in files), `fields` (typed
fields), `sections` (guards, bodies, documents, appeal), `rules` (the legal rule checks),
`canonical` (the stored form).

Workflows are data (docs/architecture.md): one YAML file per jurisdiction and case kind in
`objections/workflows/`, the same text stored as versioned rows. This module is pure on purpose
(stdlib and PyYAML only, no Django): it answers "which transitions may this role take now" and
"what follows from this step". The service applies the answer under `select_for_update`, writes
the audit event, manages the clocks and queues the effects.

Schema of a definition file (see the built-in files for commented examples)::

    key: zhejiang-objection            # slug; the built-in file is named <key>.yaml
    jurisdiction: zhejiang
    case_kind: objection               # objection | repair | review
    title_zh: ...
    title_en: ...
    parameters_verified: true          # false while any deadline is not checked against the text
    effective_from: "2018-01-01"       # optional
    legal_basis: [{citation: ..., verified: true}]
    initial: received
    reopen_by_review: [request_review] # the only transitions allowed out of a terminal state
    guards:                            # typed parameters the service enforces, each with a source
      max_reviews: {value: 1, source: {citation: ..., verified: false, note: ...}}
    states:
      received: {zh: 已收到, en: Received}
      awaiting_material: {zh: ..., en: ..., untimed: true}   # clock paused, waits on the applicant
      closed: {zh: 已办结, en: Closed, terminal: true}
    transitions:
      - name: grant
        from: under_review             # or a list of states
        to: decided_granted
        roles: [caseworker]
        requires: [outcome, reasons]
        second_person: false           # true needs approver_roles
        approver_roles: []
        effects: [notify_applicant]
        pauses_clock: false
        resumes_clock: false
        extends_clock: false
    timers:
      - name: handling_deadline
        states: [under_review]         # or state: under_review
        amount: 5
        unit: working                  # working | calendar
        starts_on: accept              # entered | filed | the name of a transition
        on_expiry: escalate            # escalate | remind; never a decision
        pausable: false
        extension_cap: 20              # optional: total cap in the same unit
        reminder_at: 0.8               # optional: share of the period after which to remind
        source: {citation: ..., verified: true, note: ...}

Every problem in a definition is reported, not just the first, so that an administrator editing
a definition sees the whole list at once.

Public API: `parse_definition` (YAML text), `validate` (plain data), `load_builtin` /
`load_builtin_sources` (the files in `workflows/`), `definition_to_dict` / `definition_to_yaml`
(canonical form), `definition_hash`; `Definition.transitions_from`, `.available`, `.step`,
`.timers_for`, `.is_terminal`; errors `DefinitionError`, `InvalidTransition`, `UnknownName`.
"""

from __future__ import annotations

from objections.workflow.canonical import (
    definition_hash,
    definition_to_dict,
    definition_to_yaml,
)
from objections.workflow.model import (
    CASE_KINDS,
    EFFECTS,
    EXPIRY_ACTIONS,
    NON_APPROVER_ROLES,
    OUTCOMES,
    REQUIRED_FIELDS,
    ROLES,
    SEVERITIES,
    START_EVENTS,
    UNITS,
    WORKFLOWS_DIR,
    Definition,
    DefinitionError,
    GuardScalar,
    GuardValue,
    InvalidTransition,
    LegalSource,
    State,
    Timer,
    Transition,
    UnknownName,
)
from objections.workflow.parsing import (
    load_builtin,
    load_builtin_sources,
    parse_definition,
    validate,
)

__all__ = [
    "CASE_KINDS",
    "EFFECTS",
    "EXPIRY_ACTIONS",
    "NON_APPROVER_ROLES",
    "OUTCOMES",
    "REQUIRED_FIELDS",
    "ROLES",
    "SEVERITIES",
    "START_EVENTS",
    "UNITS",
    "WORKFLOWS_DIR",
    "Definition",
    "DefinitionError",
    "GuardScalar",
    "GuardValue",
    "InvalidTransition",
    "LegalSource",
    "State",
    "Timer",
    "Transition",
    "UnknownName",
    "definition_hash",
    "definition_to_dict",
    "definition_to_yaml",
    "load_builtin",
    "load_builtin_sources",
    "parse_definition",
    "validate",
]
