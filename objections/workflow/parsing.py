"""Reading a definition: YAML without duplicate keys, typed fields, then the legal rule checks."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date, datetime
from pathlib import Path
from types import MappingProxyType

import yaml

from objections.workflow.fields import (
    _element,
    _fields,
    _flag,
    _names,
    _source,
    _text,
    _whole,
)
from objections.workflow.model import (
    _KEY,
    _NAME,
    CASE_KINDS,
    EXPIRY_ACTIONS,
    OUTCOMES,
    RESPONSIBLE,
    UNITS,
    WORKFLOWS_DIR,
    Definition,
    DefinitionError,
    LegalSource,
    State,
    Timer,
    Transition,
)
from objections.workflow.rules import (
    Problems,
    _check_bodies,
    _check_graph,
    _check_timers,
    _check_wait_guard,
)
from objections.workflow.sections import _parse_extras, _parse_guards

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
_TOP_OPTIONAL = (
    "effective_from",
    "legal_basis",
    "reopen_by_review",
    "guards",
    "supersedes",
    "responsible",
    "bodies",
    "documents",
    "appeal",
)
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
        "documents",
    ),
)
_TIMER_FIELDS = (
    ("name", "amount", "unit", "starts_on", "on_expiry"),
    ("state", "states", "pausable", "source", "extension_cap", "reminder_at", "cancelled_by"),
)


def _parse_states(problems: Problems, raw: object) -> dict[str, State]:
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


def _parse_transitions(problems: Problems, raw: object) -> list[Transition]:
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
        documents = _names(problems, element, data, "documents")
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
                documents=documents,
            )
            for source in sources
        )
    return transitions


def _parse_timers(problems: Problems, raw: object) -> tuple[list[Timer], set[str]]:
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
        cancelled_by = _names(problems, element, data, "cancelled_by")

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
                cancelled_by=cancelled_by,
            )
            for state in states
        )
    return timers, named_states


def validate(data: object, *, origin: str = "<string>") -> Definition:
    """Check a definition given as plain data (parsed YAML or JSON from a stored version) and
    build it; raise DefinitionError listing every problem."""
    problems = Problems(origin)
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
        kinds = ", ".join(sorted(CASE_KINDS))
        problems.add("case_kind", f"unknown case kind {case_kind!r} ({kinds})")
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
    supersedes = _text(problems, "supersedes", top, "supersedes")
    if supersedes is not None and (not _KEY.match(supersedes) or supersedes == key):
        problems.add("supersedes", f"{supersedes!r} must be the key of another definition")
    if supersedes is not None and effective_from is None:
        problems.add("supersedes", "a definition that replaces another needs effective_from")
    responsible = _text(problems, "responsible", top, "responsible") or "credit_centre"
    if responsible not in RESPONSIBLE:
        problems.add("responsible", f"must be one of {', '.join(sorted(RESPONSIBLE))}")
    bodies, documents, appeal = _parse_extras(problems, top)

    states = _parse_states(problems, top.get("states"))
    transitions = _parse_transitions(problems, top.get("transitions"))
    timers, timed_states = _parse_timers(problems, top.get("timers"))
    guards, guard_sources = _parse_guards(problems, top.get("guards"))

    sound = _check_graph(problems, initial, states, transitions, reopen)
    _check_timers(problems, initial, states, sound, timers, timed_states)
    _check_wait_guard(problems, guards, transitions, timers)
    _check_bodies(problems, sound, bodies, documents, declared="bodies" in top)

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
        supersedes=supersedes,
        responsible=responsible,
        bodies=MappingProxyType(bodies),
        documents=MappingProxyType(documents),
        appeal=appeal,
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
    problems.extend(_builtin_problems({key: d for key, (d, _) in loaded.items()}))
    if problems:
        raise DefinitionError(problems)
    return loaded


def _builtin_problems(definitions: Mapping[str, Definition]) -> list[str]:
    """What only the built-in set as a whole can get wrong: each file names the body that takes
    each step, and a definition supersedes an earlier one of its own kind and jurisdiction."""
    problems = []
    for key, definition in definitions.items():
        origin = f"{key}.yaml"
        if not definition.bodies:
            problems.append(f"{origin}: bodies: a built-in workflow names the body of each role")
        earlier = definition.supersedes
        if earlier is None:
            continue
        before = definitions.get(earlier)
        if before is None:
            problems.append(f"{origin}: supersedes: no built-in workflow {earlier!r}")
        elif (before.case_kind, before.jurisdiction) != (
            definition.case_kind,
            definition.jurisdiction,
        ) or not (before.effective_from or "") < (definition.effective_from or ""):
            problems.append(
                f"{origin}: supersedes: {earlier!r} must be an earlier definition of the same "
                "kind and jurisdiction"
            )
    return problems


def load_builtin(directory: Path = WORKFLOWS_DIR) -> dict[str, Definition]:
    """Every built-in definition, keyed by key; raises DefinitionError on any invalid one."""
    return {key: definition for key, (definition, _) in load_builtin_sources(directory).items()}
