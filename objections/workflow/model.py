"""The workflow model: its vocabulary, the validated definition and the queries on it."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Final, TypeAlias

EFFECTS: Final = frozenset(
    {
        "mark_record",
        "unmark_record",
        "apply_correction",
        "delete_record",
        "end_publication",
        "annotate_repaired",
        "notify_applicant",
        "notify_agency",
        "escalate",
    }
)
# What a decision may conclude; each deciding step names the ones it may record.
OUTCOMES: Final = frozenset({"granted", "partly_granted", "refused", "kept_with_note"})
REQUIRED_FIELDS: Final = frozenset(
    {"reasons", "outcome", "material_request", "statement", "extension_reason"}
)
# Who holds each staff role on a case (objections.selectors.case_roles_for): the responsible
# agency's staff (the credit centre, or the record's agency where the workflow says
# `responsible: record_agency`), the staff of the agency that provided the record, and the
# staff of the jurisdiction's development and reform commission or PBoC branch.
STAFF_ROLES: Final = frozenset(
    {
        "caseworker",
        "supervisor",
        "agency_caseworker",
        "agency_supervisor",
        "drc_caseworker",
        "drc_supervisor",
        "pboc_branch_caseworker",
        "pboc_branch_supervisor",
    }
)
ROLES: Final = STAFF_ROLES | {"citizen", "auditor", "administrator", "system"}
# The agency that is responsible for a case (its `caseworker` and `supervisor`).
RESPONSIBLE: Final = frozenset({"credit_centre", "record_agency"})
# `deletion`: started by the providing unit, not the subject (Shanghai Regulations Art 37).
CASE_KINDS: Final = frozenset({"objection", "repair", "review", "deletion"})
UNITS: Final = frozenset({"working", "calendar"})
# None of the rules studied deems silence an approval or a refusal (regulations.md §7.2), so a
# timer can only make people act; it can never move the case by itself.
EXPIRY_ACTIONS: Final = frozenset({"escalate", "remind"})
START_EVENTS: Final = frozenset({"entered", "filed"})
SEVERITIES: Final = ("minor", "general", "serious")
# An approval is a person vouching for a decision: neither the applicant nor the machine can.
NON_APPROVER_ROLES: Final = frozenset({"citizen", "system"})
WORKFLOWS_DIR: Final = Path(__file__).resolve().parent.parent / "workflows"

_NAME = re.compile(r"[a-z][a-z0-9_]*\Z")
_KEY = re.compile(r"[a-z][a-z0-9]*(-[a-z0-9]+)*\Z")

GuardScalar: TypeAlias = bool | int | float | str
GuardValue: TypeAlias = GuardScalar | Mapping[str, GuardScalar]


class DefinitionError(Exception):
    """A definition is invalid; `problems` lists every problem found, one readable line each."""

    def __init__(self, problems: Iterable[str]) -> None:
        self.problems: tuple[str, ...] = tuple(problems)
        super().__init__("invalid workflow definition:\n" + "\n".join(self.problems))


class InvalidTransition(Exception):
    """A step was refused. `reason` is one of unknown_state, unknown_transition, wrong_state,
    unknown_role, role_not_allowed, so a caller can tell a 403 (role) from a 409 (state)."""

    def __init__(self, message: str, *, reason: str, state: str, transition: str, role: str):
        super().__init__(message)
        self.reason = reason
        self.state = state
        self.transition = transition
        self.role = role


class UnknownName(LookupError):
    """A query named a state or role the definition does not know (a bug in the caller)."""


@dataclass(frozen=True)
class LegalSource:
    citation: str
    verified: bool
    note: str = ""


@dataclass(frozen=True)
class Body:
    """The body that holds a workflow role in this procedure, as the rules name it."""

    role: str
    label_zh: str
    label_en: str
    source: LegalSource | None = None


@dataclass(frozen=True)
class Document:
    """A document a step needs (a credit commitment, proof that an obligation was performed):
    the step is refused until the case's checklist has it."""

    key: str
    label_zh: str
    label_en: str
    source: LegalSource


@dataclass(frozen=True)
class Appeal:
    """The routes of appeal stated to the applicant with a decision."""

    text_zh: str
    text_en: str
    source: LegalSource


@dataclass(frozen=True)
class Timer:
    """A deadline that runs while the case is in `state`.

    The deadline is `amount` `unit` days after `starts_on`: "entered" (the case entered the
    state), "filed" (the case was filed) or the name of a transition (when the case took it;
    validation guarantees that every way into `state` passes through that transition).
    Several timers may share a name across states: that is one legal period spanning several
    states (e.g. "5 WD from receipt" while the case is marked and under review), which keeps
    running from one of those states to the next.
    """

    name: str
    state: str
    amount: int
    unit: str
    starts_on: str
    on_expiry: str
    pausable: bool
    source: LegalSource
    extension_cap: int | None = None
    reminder_at: float = 0.8
    # Transitions after which the period no longer applies (Shanghai: the 2-WD forwarding limit
    # once the centre decides the objection itself, so nothing was to be forwarded). The clock
    # ends "cancelled": neither kept nor missed.
    cancelled_by: tuple[str, ...] = ()


@dataclass(frozen=True)
class Transition:
    name: str
    source: str
    target: str
    roles: frozenset[str]
    requires: tuple[str, ...] = ()
    second_person: bool = False
    approver_roles: frozenset[str] = frozenset()
    effects: tuple[str, ...] = ()
    pauses_clock: bool = False
    resumes_clock: bool = False
    extends_clock: bool = False
    # The outcomes this step may record. With one, it is implied; with several, the person
    # taking the step chooses (and `requires` lists "outcome"). None: the step decides nothing.
    outcomes: tuple[str, ...] = ()
    # Keys of the definition's `documents` the case must hold before this step is taken.
    documents: tuple[str, ...] = ()


@dataclass(frozen=True)
class State:
    name: str
    terminal: bool
    label_zh: str
    label_en: str
    # No deadline runs here because the case waits on the applicant and the clock is paused.
    untimed: bool = False


def _empty_guards() -> Mapping[str, GuardValue]:
    return MappingProxyType({})


def _empty_sources() -> Mapping[str, LegalSource]:
    return MappingProxyType({})


def _empty_bodies() -> Mapping[str, Body]:
    return MappingProxyType({})


def _empty_documents() -> Mapping[str, Document]:
    return MappingProxyType({})


@dataclass(frozen=True)
class Definition:
    """A validated workflow. Build it with `parse_definition` or `validate`, which check it."""

    key: str
    jurisdiction: str
    case_kind: str
    title_zh: str
    title_en: str
    initial: str
    states: Mapping[str, State]
    transitions: tuple[Transition, ...]
    timers: tuple[Timer, ...]
    parameters_verified: bool
    guards: Mapping[str, GuardValue] = field(default_factory=_empty_guards)
    guard_sources: Mapping[str, LegalSource] = field(default_factory=_empty_sources)
    reopen_by_review: tuple[str, ...] = ()
    legal_basis: tuple[LegalSource, ...] = ()
    effective_from: str | None = None
    # The definition this one replaced: a case filed before `effective_from` runs under it.
    supersedes: str | None = None
    responsible: str = "credit_centre"
    bodies: Mapping[str, Body] = field(default_factory=_empty_bodies)
    documents: Mapping[str, Document] = field(default_factory=_empty_documents)
    appeal: Appeal | None = None

    def _state(self, state: str) -> State:
        try:
            return self.states[state]
        except KeyError:
            raise UnknownName(f"unknown state {state!r} in workflow {self.key!r}") from None

    def transitions_from(self, state: str) -> tuple[Transition, ...]:
        self._state(state)
        return tuple(t for t in self.transitions if t.source == state)

    def available(self, *, state: str, role: str) -> tuple[Transition, ...]:
        """What `role` may take now. Second-person transitions are included: taking one starts
        an approval, which the service completes when an approver agrees."""
        if role not in ROLES:
            raise UnknownName(f"unknown role {role!r}")
        return tuple(t for t in self.transitions_from(state) if role in t.roles)

    def step(self, *, state: str, transition: str, role: str) -> Transition:
        """The transition `role` takes from `state`, or InvalidTransition saying why not."""

        def refuse(reason: str, message: str) -> InvalidTransition:
            return InvalidTransition(
                message, reason=reason, state=state, transition=transition, role=role
            )

        where = f"in workflow {self.key!r}"
        if state not in self.states:
            raise refuse("unknown_state", f"unknown state {state!r} {where}")
        if not any(t.name == transition for t in self.transitions):
            raise refuse("unknown_transition", f"unknown transition {transition!r} {where}")
        found = [t for t in self.transitions if t.source == state and t.name == transition]
        if not found:
            raise refuse(
                "wrong_state",
                f"transition {transition!r} is not allowed from state {state!r} {where}",
            )
        if role not in ROLES:
            raise refuse("unknown_role", f"unknown role {role!r}")
        if role not in found[0].roles:
            raise refuse(
                "role_not_allowed",
                f"role {role!r} may not take transition {transition!r} "
                f"from state {state!r} {where}",
            )
        return found[0]

    def timers_for(self, state: str) -> tuple[Timer, ...]:
        self._state(state)
        return tuple(t for t in self.timers if t.state == state)

    def is_terminal(self, state: str) -> bool:
        return self._state(state).terminal
