"""The workflow engine: parse, validate and query a workflow definition.

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

import functools
import hashlib
import re
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import date, datetime
from pathlib import Path
from types import MappingProxyType
from typing import Final, TypeAlias

import yaml

ROLES: Final = frozenset(
    {
        "citizen",
        "caseworker",
        "supervisor",
        "agency_caseworker",
        "auditor",
        "administrator",
        "system",
    }
)
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
CASE_KINDS: Final = frozenset({"objection", "repair", "review"})
UNITS: Final = frozenset({"working", "calendar"})
# None of the rules studied deems silence an approval or a refusal (regulations.md §7.2), so a
# timer can only make people act; it can never move the case by itself.
EXPIRY_ACTIONS: Final = frozenset({"escalate", "remind"})
START_EVENTS: Final = frozenset({"entered", "filed"})
SEVERITIES: Final = ("minor", "general", "serious")
# An approval is a person vouching for a decision: neither the applicant nor the machine can.
NON_APPROVER_ROLES: Final = frozenset({"citizen", "system"})
WORKFLOWS_DIR: Final = Path(__file__).resolve().parent / "workflows"

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


# --- reading YAML -------------------------------------------------------------------------------


class _Loader(yaml.SafeLoader):
    """A safe loader that remembers duplicate mapping keys: plain PyYAML keeps the last one
    silently, which would hide a second definition of a state under the first."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self.duplicates: list[str] = []


def _construct_mapping(loader: _Loader, node: yaml.MappingNode) -> dict[object, object]:
    seen: set[object] = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node)
        try:
            duplicate = key in seen
            seen.add(key)
        except TypeError:  # an unhashable key; construct_mapping reports it
            continue
        if duplicate:
            loader.duplicates.append(
                f"line {key_node.start_mark.line + 1}: key {key!r} appears more than once"
            )
    return loader.construct_mapping(node)


_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


# --- validation ---------------------------------------------------------------------------------


class _Problems:
    def __init__(self, origin: str) -> None:
        self.origin = origin
        self.items: list[str] = []

    def add(self, element: str, message: str) -> None:
        self.items.append(f"{self.origin}: {element}: {message}")


_TOP_REQUIRED = (
    "key",
    "jurisdiction",
    "case_kind",
    "title_zh",
    "title_en",
    "parameters_verified",
    "initial",
    "states",
    "transitions",
    "timers",
)
_TOP_OPTIONAL = ("effective_from", "legal_basis", "reopen_by_review", "guards")
_STATE_FIELDS = (("zh", "en"), ("terminal", "untimed"))
_TRANSITION_FIELDS = (
    ("name", "from", "to", "roles"),
    (
        "requires",
        "second_person",
        "approver_roles",
        "effects",
        "pauses_clock",
        "resumes_clock",
        "extends_clock",
        "outcomes",
    ),
)
_TIMER_FIELDS = (
    ("name", "amount", "unit", "starts_on", "on_expiry"),
    ("state", "states", "pausable", "source", "extension_cap", "reminder_at"),
)
_SOURCE_FIELDS = (("citation", "verified"), ("note",))


def _fields(
    problems: _Problems,
    element: str,
    raw: object,
    spec: tuple[tuple[str, ...], tuple[str, ...]],
) -> dict[str, object] | None:
    """The mapping `raw` with its known fields, after reporting unknown and missing ones."""
    required, optional = spec
    if not isinstance(raw, dict):
        problems.add(element, "must be a mapping")
        return None
    known = set(required) | set(optional)
    for key in raw:
        if key not in known:
            problems.add(element, f"unknown field {key!r}")
    for key in required:
        if key not in raw:
            problems.add(element, f"missing field {key!r}")
    return {key: value for key, value in raw.items() if isinstance(key, str) and key in known}


def _text(problems: _Problems, element: str, data: Mapping[str, object], key: str) -> str | None:
    value = data.get(key)
    if key not in data:
        return None  # reported as missing already, or optional
    if not isinstance(value, str) or not value.strip():
        problems.add(element, f"{key} must be a non-empty string")
        return None
    return value


def _flag(problems: _Problems, element: str, data: Mapping[str, object], key: str) -> bool:
    value = data.get(key, False)
    if not isinstance(value, bool):
        problems.add(element, f"{key} must be true or false")
        return False
    return value


def _names(
    problems: _Problems,
    element: str,
    data: Mapping[str, object],
    key: str,
    *,
    single: bool = False,
) -> tuple[str, ...]:
    """A list of strings (or, with `single`, also one string) under `key`; () if absent."""
    value = data.get(key, [])
    if single and isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        problems.add(element, f"{key} must be a list of names")
        return ()
    return tuple(value)


def _element(kind: str, plural: str, index: int, body: object) -> str:
    """How a problem names a list entry: by its name when it has one, else by position."""
    name = body.get("name") if isinstance(body, dict) else None
    return f"{kind} {name!r}" if isinstance(name, str) else f"{plural}[{index}]"


def _whole(value: object) -> bool:
    # bool is an int in Python; `amount: true` is a typo, not a number.
    return isinstance(value, int) and not isinstance(value, bool)


def _source(problems: _Problems, element: str, raw: object) -> LegalSource | None:
    data = _fields(problems, f"{element}: source", raw, _SOURCE_FIELDS)
    if data is None:
        return None
    citation = _text(problems, f"{element}: source", data, "citation")
    verified = data.get("verified")
    if "verified" in data and not isinstance(verified, bool):
        problems.add(element, "source.verified must be true or false")
    note = data.get("note", "")
    if not isinstance(note, str):
        problems.add(element, "source.note must be a string")
        note = ""
    if verified is False and not note.strip():
        problems.add(element, "an unverified source needs a note saying what is not verified")
    if citation is None or not isinstance(verified, bool):
        return None
    return LegalSource(citation=citation, verified=verified, note=note)


def _parse_states(problems: _Problems, raw: object) -> dict[str, State]:
    states: dict[str, State] = {}
    if not isinstance(raw, dict) or not raw:
        problems.add("states", "must be a non-empty mapping of state name to labels")
        return states
    for name, body in raw.items():
        if not isinstance(name, str) or not _NAME.match(name):
            problems.add(f"state {name!r}", "name must match [a-z][a-z0-9_]*")
            continue
        element = f"state {name!r}"
        data = _fields(problems, element, body, _STATE_FIELDS) or {}
        label_zh = _text(problems, element, data, "zh") or ""
        label_en = _text(problems, element, data, "en") or ""
        terminal = _flag(problems, element, data, "terminal")
        untimed = _flag(problems, element, data, "untimed")
        if terminal and untimed:
            problems.add(element, "a terminal state has no clock to pause; drop untimed")
        # Kept even when its labels are broken, so that the transitions and timers naming it
        # are not reported again as naming an unknown state.
        states[name] = State(name, terminal, label_zh, label_en, untimed)
    return states


def _parse_transitions(problems: _Problems, raw: object) -> list[Transition]:
    transitions: list[Transition] = []
    if not isinstance(raw, list):
        problems.add("transitions", "must be a list")
        return transitions
    for index, body in enumerate(raw):
        element = _element("transition", "transitions", index, body)
        data = _fields(problems, element, body, _TRANSITION_FIELDS)
        if data is None:
            continue
        name = _text(problems, element, data, "name")
        if name is not None and not _NAME.match(name):
            problems.add(element, "name must match [a-z][a-z0-9_]*")
            name = None
        sources = _names(problems, element, data, "from", single=True)
        if "from" in data and not sources:
            problems.add(element, "from must name at least one state")
        target = _text(problems, element, data, "to")
        roles = _names(problems, element, data, "roles")
        if "roles" in data and not roles:
            problems.add(element, "roles must name at least one role")
        requires = _names(problems, element, data, "requires")
        approver_roles = _names(problems, element, data, "approver_roles")
        effects = _names(problems, element, data, "effects")
        outcomes = _names(problems, element, data, "outcomes")
        for outcome in outcomes:
            if outcome not in OUTCOMES:
                problems.add(element, f"unknown outcome {outcome!r}")
        if "outcome" in requires and len(outcomes) < 2:
            problems.add(
                element, "requires an outcome, so it must list at least two outcomes to choose from"
            )
        flags = {
            key: _flag(problems, element, data, key)
            for key in (
                "second_person",
                "pauses_clock",
                "resumes_clock",
                "extends_clock",
            )
        }
        if name is None or target is None:
            continue
        transitions.extend(
            Transition(
                name=name,
                source=source,
                target=target,
                roles=frozenset(roles),
                requires=requires,
                second_person=flags["second_person"],
                approver_roles=frozenset(approver_roles),
                effects=effects,
                pauses_clock=flags["pauses_clock"],
                resumes_clock=flags["resumes_clock"],
                extends_clock=flags["extends_clock"],
                outcomes=outcomes,
            )
            for source in sources
        )
    return transitions


def _parse_timers(problems: _Problems, raw: object) -> tuple[list[Timer], set[str]]:
    """The timers, one per state they run in, and every state named by a timer entry, broken
    or not (so that a broken timer is reported once, not again as a state without a timer)."""
    timers: list[Timer] = []
    named_states: set[str] = set()
    if not isinstance(raw, list):
        problems.add("timers", "must be a list")
        return timers, named_states
    for index, body in enumerate(raw):
        element = _element("timer", "timers", index, body)
        data = _fields(problems, element, body, _TIMER_FIELDS)
        if data is None:
            continue
        name = _text(problems, element, data, "name")
        if name is not None and not _NAME.match(name):
            problems.add(element, "name must match [a-z][a-z0-9_]*")
            name = None
        if ("state" in data) == ("states" in data):
            problems.add(element, "give exactly one of state or states")
            states: tuple[str, ...] = ()
        else:
            states = _names(
                problems, element, data, "states" if "states" in data else "state", single=True
            )
            if not states:
                problems.add(element, "states must name at least one state")
            named_states.update(states)

        amount = data.get("amount")
        if "amount" in data and (not _whole(amount) or not isinstance(amount, int) or amount <= 0):
            problems.add(element, f"amount must be a positive whole number, got {amount!r}")
            amount = None
        unit = _text(problems, element, data, "unit")
        if unit is not None and unit not in UNITS:
            problems.add(element, f"unknown unit {unit!r} (working or calendar)")
        starts_on = _text(problems, element, data, "starts_on")
        on_expiry = _text(problems, element, data, "on_expiry")
        if on_expiry is not None and on_expiry not in EXPIRY_ACTIONS:
            problems.add(
                element,
                f"on_expiry {on_expiry!r} is not allowed: a timer may only escalate or remind, "
                "never decide the case",
            )
        pausable = _flag(problems, element, data, "pausable")

        source: LegalSource | None = None
        if "source" not in data:
            problems.add(
                element, "no legal source (every number needs source.citation and source.verified)"
            )
        else:
            source = _source(problems, element, data["source"])

        cap = data.get("extension_cap")
        if cap is not None and (not _whole(cap) or not isinstance(cap, int)):
            problems.add(element, f"extension_cap must be a whole number, got {cap!r}")
            cap = None
        if isinstance(cap, int) and isinstance(amount, int) and cap <= amount:
            problems.add(element, f"extension_cap {cap} must exceed amount {amount}")
        reminder_at = data.get("reminder_at", 0.8)
        if (
            isinstance(reminder_at, bool)
            or not isinstance(reminder_at, int | float)
            or not 0 < reminder_at < 1
        ):
            problems.add(
                element, f"reminder_at must be a number between 0 and 1, got {reminder_at!r}"
            )
            reminder_at = 0.8

        if (
            name is None
            or not isinstance(amount, int)
            or unit is None
            or starts_on is None
            or on_expiry is None
            or source is None
        ):
            continue
        timers.extend(
            Timer(
                name=name,
                state=state,
                amount=amount,
                unit=unit,
                starts_on=starts_on,
                on_expiry=on_expiry,
                pausable=pausable,
                source=source,
                extension_cap=cap if isinstance(cap, int) else None,
                reminder_at=float(reminder_at),
            )
            for state in states
        )
    return timers, named_states


def _severity_months(
    problems: _Problems, element: str, value: object, *, minimum: int
) -> Mapping[str, GuardScalar] | None:
    if not isinstance(value, dict) or set(value) != set(SEVERITIES):
        problems.add(element, "value must map each of minor, general, serious to months")
        return None
    result: dict[str, GuardScalar] = {}
    for severity in SEVERITIES:
        months = value[severity]
        if not _whole(months) or not isinstance(months, int) or months < minimum:
            problems.add(element, f"{severity} must be a whole number of months >= {minimum}")
            return None
        result[severity] = months
    return MappingProxyType(result)


def _guard_value(problems: _Problems, name: str, value: object) -> GuardValue | None:
    """Check one guard's value against the type the service expects for that guard."""
    element = f"guard {name!r}"
    if name == "serious_list_blocks_repair":
        if not isinstance(value, bool):
            problems.add(element, "value must be true or false")
            return None
        return value
    if name == "max_reviews":
        if not _whole(value) or not isinstance(value, int) or value < 1:
            problems.add(element, "value must be a whole number >= 1")
            return None
        return value
    if name == "min_publication_months_by_severity":
        return _severity_months(problems, element, value, minimum=0)
    if name == "max_publication_months_by_severity":
        return _severity_months(problems, element, value, minimum=1)
    if name == "wait_for_timer":
        if (
            not isinstance(value, dict)
            or not value
            or not all(isinstance(k, str) and isinstance(v, str) for k, v in value.items())
        ):
            problems.add(element, "value must map transition names to timer names")
            return None
        return MappingProxyType(dict(value))
    problems.add(element, f"unknown guard (known: {', '.join(sorted(_GUARDS))})")
    return None


_GUARDS: Final = frozenset(
    {
        # Zhejiang Regs Art 32: a subject on a serious-dishonesty list cannot apply for repair.
        "serious_list_blocks_repair",
        # Months a record must have been published before repair, per severity tier.
        "min_publication_months_by_severity",
        # Months after which publication ends by itself, per severity tier.
        "max_publication_months_by_severity",
        # How many times a closed case may be reopened by review.
        "max_reviews",
        # transition -> timer in its source state that must have run out before it may be taken
        # (e.g. a repair is confirmed only after the public notice period).
        "wait_for_timer",
    }
)


def _parse_guards(
    problems: _Problems, raw: object
) -> tuple[dict[str, GuardValue], dict[str, LegalSource]]:
    guards: dict[str, GuardValue] = {}
    sources: dict[str, LegalSource] = {}
    if raw is None:
        return guards, sources
    if not isinstance(raw, dict):
        problems.add("guards", "must be a mapping of guard name to {value, source}")
        return guards, sources
    for name, body in raw.items():
        element = f"guard {name!r}"
        data = _fields(problems, element, body, (("value", "source"), ()))
        if data is None or not isinstance(name, str):
            continue
        value = _guard_value(problems, name, data["value"]) if "value" in data else None
        source = _source(problems, element, data["source"]) if "source" in data else None
        if value is not None and source is not None:
            guards[name] = value
            sources[name] = source
    return guards, sources


def _reachable(initial: str, transitions: Iterable[Transition], *, skip: str = "") -> set[str]:
    """States reachable from `initial`, optionally never taking transitions named `skip`."""
    edges: dict[str, set[str]] = {}
    for t in transitions:
        if t.name != skip:
            edges.setdefault(t.source, set()).add(t.target)
    seen = {initial}
    queue = deque([initial])
    while queue:
        for target in edges.get(queue.popleft(), ()):
            if target not in seen:
                seen.add(target)
                queue.append(target)
    return seen


def _check_graph(
    problems: _Problems,
    initial: str | None,
    states: Mapping[str, State],
    transitions: list[Transition],
    reopen: tuple[str, ...],
) -> list[Transition]:
    """Check states and transitions together; return the transitions between known states."""
    if initial is not None and initial not in states:
        problems.add("initial", f"unknown state {initial!r}")
    if initial is not None and initial in states and states[initial].terminal:
        problems.add("initial", f"state {initial!r} is terminal")

    sound: list[Transition] = []
    seen_names: dict[tuple[str, str], Transition] = {}
    seen_edges: dict[tuple[str, str, tuple[str, ...]], Transition] = {}
    for t in transitions:
        element = f"transition {t.name!r} from {t.source!r}"
        known = True
        if t.name in START_EVENTS:
            problems.add(element, f"the name {t.name!r} is reserved for timers' starts_on")
        if t.source not in states:
            problems.add(element, f"unknown source state {t.source!r}")
            known = False
        if t.target not in states:
            problems.add(element, f"unknown target state {t.target!r}")
            known = False
        for role in sorted(t.roles - ROLES):
            problems.add(element, f"unknown role {role!r}")
        for role in sorted(t.approver_roles - ROLES):
            problems.add(element, f"unknown approver role {role!r}")
        for role in sorted(t.approver_roles & NON_APPROVER_ROLES):
            problems.add(element, f"role {role!r} cannot approve")
        for effect in t.effects:
            if effect not in EFFECTS:
                problems.add(element, f"unknown effect {effect!r}")
        if len(set(t.effects)) != len(t.effects):
            problems.add(element, "an effect is listed twice")
        for required in t.requires:
            if required not in REQUIRED_FIELDS:
                problems.add(element, f"unknown required field {required!r}")
        if t.second_person and not t.approver_roles:
            problems.add(element, "second_person needs approver_roles")
        if t.approver_roles and not t.second_person:
            problems.add(element, "approver_roles given but second_person is false")
        # A decision has an outcome and reasons that a person answers for; letting the system
        # role take it would let a timer or a batch job decide a case.
        if "outcome" in t.requires and "system" in t.roles:
            problems.add(element, "requires an outcome, so it is a decision the system cannot take")
        if t.pauses_clock and t.resumes_clock:
            problems.add(element, "cannot both pause and resume the clock")
        if t.extends_clock:
            if not t.second_person:
                problems.add(element, "an extension needs a second person's approval")
            if "extension_reason" not in t.requires:
                problems.add(element, "an extension needs requires: [extension_reason]")

        name_key = (t.source, t.name)
        if name_key in seen_names:
            problems.add(element, "defined more than once from this state")
        else:
            seen_names[name_key] = t
        # Two names for one step (same source, target and effects) is a copy-paste slip.
        edge_key = (t.source, t.target, t.effects)
        first = seen_edges.setdefault(edge_key, t)
        if first.name != t.name:
            problems.add(
                element, f"same target {t.target!r} and effects as transition {first.name!r}"
            )
        if known:
            sound.append(t)

    for t in sound:
        element = f"transition {t.name!r} from {t.source!r}"
        source, target = states[t.source], states[t.target]
        if source.terminal and t.name not in reopen:
            problems.add(
                element,
                f"leaves terminal state {t.source!r} but is not listed in reopen_by_review",
            )
        if t.pauses_clock and not target.untimed:
            problems.add(element, f"pauses the clock but target {t.target!r} is not untimed")
        if target.untimed and not t.pauses_clock:
            problems.add(element, f"enters untimed state {t.target!r} without pausing the clock")
        if t.resumes_clock and not source.untimed:
            problems.add(element, f"resumes the clock but source {t.source!r} is not untimed")
        if source.untimed and not target.untimed and not target.terminal and not t.resumes_clock:
            problems.add(
                element,
                f"leaves untimed state {t.source!r} for {t.target!r} without resuming the clock",
            )

    for name in reopen:
        if not any(t.name == name and states[t.source].terminal for t in sound):
            problems.add(
                "reopen_by_review", f"{name!r} is not a transition out of a terminal state"
            )

    if initial is not None and initial in states:
        reachable = _reachable(initial, sound)
        for name in states:
            if name not in reachable:
                problems.add(f"state {name!r}", f"unreachable from initial state {initial!r}")
    terminals = {name for name, s in states.items() if s.terminal}
    for name, state in states.items():
        if state.terminal:
            continue
        if not any(t.source == name for t in sound):
            problems.add(f"state {name!r}", "not terminal but has no outgoing transition")
        elif not _reachable(name, sound) & terminals:
            problems.add(f"state {name!r}", "no terminal state can be reached from it")
    return sound


def _check_timers(
    problems: _Problems,
    initial: str | None,
    states: Mapping[str, State],
    transitions: list[Transition],
    timers: list[Timer],
    timed_states: set[str],
    parameters_verified: bool,
) -> None:
    transition_names = {t.name for t in transitions}
    seen: set[tuple[str, str]] = set()
    by_name: dict[str, Timer] = {}
    for timer in timers:
        element = f"timer {timer.name!r}"
        if (timer.name, timer.state) in seen:
            problems.add(element, f"defined more than once for state {timer.state!r}")
        seen.add((timer.name, timer.state))
        # One name is one legal period; entries sharing it may differ only in their state.
        first = by_name.setdefault(timer.name, timer)
        if first is not timer and replace(first, state=timer.state) != timer:
            problems.add(element, "entries with this name differ in more than their state")

        state = states.get(timer.state)
        if state is None:
            problems.add(element, f"unknown state {timer.state!r}")
        elif state.terminal:
            problems.add(element, f"state {timer.state!r} is terminal")
        elif state.untimed:
            problems.add(element, f"state {timer.state!r} is marked untimed")

        if timer.starts_on not in START_EVENTS:
            if timer.starts_on not in transition_names:
                problems.add(
                    element,
                    f"starts_on {timer.starts_on!r} is neither 'entered', 'filed' nor a transition",
                )
            # The anchor must exist whenever the timer runs: every path into the state passes
            # through the starting transition.
            elif (
                state is not None
                and initial is not None
                and initial in states
                and timer.state in _reachable(initial, transitions, skip=timer.starts_on)
            ):
                problems.add(
                    element,
                    f"state {timer.state!r} can be reached without transition "
                    f"{timer.starts_on!r}, so the timer may have no start",
                )
        if parameters_verified and timer.on_expiry == "escalate" and not timer.source.verified:
            problems.add(
                element, "escalates on an unverified source while parameters_verified is true"
            )

    # A period that starts on a transition opens in the state that transition leads to, so the
    # clock can be started as the case arrives there (and not later, in some state further on).
    runs_in: dict[str, set[str]] = {}
    for timer in timers:
        runs_in.setdefault(timer.name, set()).add(timer.state)
    for name, timer_states in runs_in.items():
        anchor = next(t.starts_on for t in timers if t.name == name)
        if anchor in START_EVENTS:
            continue
        for t in transitions:
            if t.name == anchor and t.target not in timer_states:
                problems.add(
                    f"timer {name!r}",
                    f"starts on {anchor!r} but does not run in {t.target!r}, where it leads",
                )

    extendable = {t.state for t in timers if t.extension_cap is not None}
    for t in transitions:
        if t.extends_clock and t.source not in extendable:
            problems.add(
                f"transition {t.name!r} from {t.source!r}",
                f"extends the clock but no timer in {t.source!r} has an extension_cap",
            )
        # A pause stops every clock running when it is taken, so each must allow it.
        if t.pauses_clock:
            for timer in timers:
                if timer.state == t.source and not timer.pausable:
                    problems.add(
                        f"transition {t.name!r} from {t.source!r}",
                        f"pauses the clock but timer {timer.name!r} is not pausable",
                    )
    for name, s in states.items():
        if not s.terminal and not s.untimed and name not in timed_states:
            problems.add(f"state {name!r}", "not terminal, has no timer and is not marked untimed")


def _check_wait_guard(
    problems: _Problems,
    guards: Mapping[str, GuardValue],
    transitions: list[Transition],
    timers: list[Timer],
) -> None:
    waits = guards.get("wait_for_timer")
    if not isinstance(waits, Mapping):
        return
    for transition_name, timer_name in waits.items():
        sources = {t.source for t in transitions if t.name == transition_name}
        if not sources:
            problems.add("guard 'wait_for_timer'", f"unknown transition {transition_name!r}")
            continue
        for source in sorted(sources):
            if not any(t.name == timer_name and t.state == source for t in timers):
                problems.add(
                    "guard 'wait_for_timer'",
                    f"no timer {timer_name!r} runs in {source!r}, "
                    f"the source of {transition_name!r}",
                )


def validate(data: object, *, origin: str = "<string>") -> Definition:
    """Check a definition given as plain data (parsed YAML or JSON from a stored version) and
    build it; raise DefinitionError listing every problem."""
    problems = _Problems(origin)
    top = _fields(problems, "definition", data, (_TOP_REQUIRED, _TOP_OPTIONAL))
    if top is None:
        raise DefinitionError(problems.items)

    key = _text(problems, "key", top, "key")
    if key is not None and not _KEY.match(key):
        problems.add("key", f"{key!r} must be a lowercase slug such as 'shanghai-objection'")
    jurisdiction = _text(problems, "jurisdiction", top, "jurisdiction")
    if jurisdiction is not None and not _NAME.match(jurisdiction):
        problems.add("jurisdiction", f"{jurisdiction!r} must match [a-z][a-z0-9_]*")
    case_kind = _text(problems, "case_kind", top, "case_kind")
    if case_kind is not None and case_kind not in CASE_KINDS:
        problems.add("case_kind", f"unknown case kind {case_kind!r} (objection, repair, review)")
    title_zh = _text(problems, "title_zh", top, "title_zh")
    title_en = _text(problems, "title_en", top, "title_en")
    initial = _text(problems, "initial", top, "initial")
    parameters_verified = _flag(problems, "parameters_verified", top, "parameters_verified")

    effective_from: str | None = None
    raw_date = top.get("effective_from")
    if isinstance(raw_date, date) and not isinstance(raw_date, datetime):
        effective_from = raw_date.isoformat()
    elif raw_date is not None:
        try:
            effective_from = date.fromisoformat(str(raw_date)).isoformat()
        except ValueError:
            problems.add("effective_from", f"{raw_date!r} is not a date (YYYY-MM-DD)")

    legal_basis: list[LegalSource] = []
    raw_basis = top.get("legal_basis", [])
    if not isinstance(raw_basis, list):
        problems.add("legal_basis", "must be a list of sources")
    else:
        for index, raw_source in enumerate(raw_basis):
            source = _source(problems, f"legal_basis[{index}]", raw_source)
            if source is not None:
                legal_basis.append(source)
    reopen = _names(problems, "reopen_by_review", top, "reopen_by_review")

    states = _parse_states(problems, top.get("states"))
    transitions = _parse_transitions(problems, top.get("transitions"))
    timers, timed_states = _parse_timers(problems, top.get("timers"))
    guards, guard_sources = _parse_guards(problems, top.get("guards"))

    sound = _check_graph(problems, initial, states, transitions, reopen)
    _check_timers(problems, initial, states, sound, timers, timed_states, parameters_verified)
    _check_wait_guard(problems, guards, transitions, timers)

    if (
        problems.items
        or key is None
        or jurisdiction is None
        or case_kind is None
        or title_zh is None
        or title_en is None
        or initial is None
    ):
        raise DefinitionError(problems.items)
    return Definition(
        key=key,
        jurisdiction=jurisdiction,
        case_kind=case_kind,
        title_zh=title_zh,
        title_en=title_en,
        initial=initial,
        states=MappingProxyType(dict(states)),
        transitions=tuple(transitions),
        timers=tuple(timers),
        parameters_verified=parameters_verified,
        guards=MappingProxyType(guards),
        guard_sources=MappingProxyType(guard_sources),
        reopen_by_review=reopen,
        legal_basis=tuple(legal_basis),
        effective_from=effective_from,
    )


def parse_definition(text: str, *, origin: str = "<string>") -> Definition:
    """YAML text -> a validated Definition; DefinitionError lists every problem found."""
    loader = _Loader(text)
    try:
        data = loader.get_single_data()
    except yaml.YAMLError as error:
        raise DefinitionError([f"{origin}: not valid YAML: {error}"]) from error
    finally:
        loader.dispose()
    duplicates = [f"{origin}: {message}" for message in loader.duplicates]
    try:
        definition = validate(data, origin=origin)
    except DefinitionError as error:
        raise DefinitionError([*duplicates, *error.problems]) from None
    if duplicates:
        raise DefinitionError(duplicates)
    return definition


def load_builtin_sources(directory: Path = WORKFLOWS_DIR) -> dict[str, tuple[Definition, str]]:
    """Every definition file in `directory` with its text (the text is what a stored version
    keeps), keyed by definition key. DefinitionError lists the problems of all files together,
    so one broken file does not hide another."""
    loaded: dict[str, tuple[Definition, str]] = {}
    problems: list[str] = []
    for path in sorted(directory.glob("*.yaml")):
        text = path.read_text(encoding="utf-8")
        try:
            definition = parse_definition(text, origin=path.name)
        except DefinitionError as error:
            problems.extend(error.problems)
            continue
        if definition.key != path.stem:
            problems.append(f"{path.name}: key: {definition.key!r} does not match the file name")
        else:
            loaded[definition.key] = (definition, text)
    if problems:
        raise DefinitionError(problems)
    return loaded


def load_builtin(directory: Path = WORKFLOWS_DIR) -> dict[str, Definition]:
    """Every built-in definition, keyed by key; raises DefinitionError on any invalid one."""
    return {key: definition for key, (definition, _) in load_builtin_sources(directory).items()}


# --- canonical form -----------------------------------------------------------------------------


def _source_data(source: LegalSource) -> dict[str, object]:
    data: dict[str, object] = {"citation": source.citation, "verified": source.verified}
    if source.note:
        data["note"] = source.note
    return data


def _guard_data(value: GuardValue) -> object:
    if isinstance(value, Mapping):
        return {k: value[k] for k in sorted(value)}
    return value


def definition_to_dict(definition: Definition) -> dict[str, object]:
    """Plain data in a canonical order: what `validate` accepts, and what a stored version
    holds. States, transitions and timers are sorted, so reordering a file changes nothing;
    effects keep their order, which is the order the service runs them in."""
    data: dict[str, object] = {
        "key": definition.key,
        "jurisdiction": definition.jurisdiction,
        "case_kind": definition.case_kind,
        "title_zh": definition.title_zh,
        "title_en": definition.title_en,
        "parameters_verified": definition.parameters_verified,
    }
    if definition.effective_from is not None:
        data["effective_from"] = definition.effective_from
    data["legal_basis"] = [_source_data(s) for s in definition.legal_basis]
    data["initial"] = definition.initial
    data["reopen_by_review"] = sorted(definition.reopen_by_review)
    data["guards"] = {
        name: {
            "value": _guard_data(definition.guards[name]),
            "source": _source_data(definition.guard_sources[name]),
        }
        for name in sorted(definition.guards)
    }
    states: dict[str, object] = {}
    for name in sorted(definition.states):
        state = definition.states[name]
        states[name] = {
            "zh": state.label_zh,
            "en": state.label_en,
            "terminal": state.terminal,
            "untimed": state.untimed,
        }
    data["states"] = states
    data["transitions"] = [
        {
            "name": t.name,
            "from": t.source,
            "to": t.target,
            "roles": sorted(t.roles),
            "requires": sorted(t.requires),
            "second_person": t.second_person,
            "approver_roles": sorted(t.approver_roles),
            "effects": list(t.effects),
            "pauses_clock": t.pauses_clock,
            "resumes_clock": t.resumes_clock,
            "extends_clock": t.extends_clock,
            "outcomes": list(t.outcomes),
        }
        for t in sorted(definition.transitions, key=lambda t: (t.source, t.name))
    ]
    timers: list[object] = []
    for timer in sorted(definition.timers, key=lambda t: (t.name, t.state)):
        entry: dict[str, object] = {
            "name": timer.name,
            "state": timer.state,
            "amount": timer.amount,
            "unit": timer.unit,
            "starts_on": timer.starts_on,
            "on_expiry": timer.on_expiry,
            "pausable": timer.pausable,
        }
        if timer.extension_cap is not None:
            entry["extension_cap"] = timer.extension_cap
        entry["reminder_at"] = timer.reminder_at
        entry["source"] = _source_data(timer.source)
        timers.append(entry)
    data["timers"] = timers
    return data


def definition_to_yaml(definition: Definition) -> str:
    """The canonical YAML text of a definition: same meaning, same text (comments dropped)."""
    return yaml.safe_dump(
        definition_to_dict(definition),
        allow_unicode=True,
        sort_keys=False,
        default_flow_style=False,
        width=1000,
    )


@functools.lru_cache(maxsize=128)  # parsing is the cost; the same texts are hashed repeatedly
def definition_hash(text: str) -> str:
    """sha256 of the canonical form of a definition's YAML text, so that two versions can be
    compared by meaning rather than by formatting. Raises DefinitionError if `text` is invalid."""
    canonical = definition_to_yaml(parse_definition(text))
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()
