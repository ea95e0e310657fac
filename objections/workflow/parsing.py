"""Reading a definition: YAML without duplicate keys, typed fields, then the legal rule checks."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date, datetime
from pathlib import Path
from types import MappingProxyType
from typing import Final

import yaml

from objections.workflow.model import (
    _KEY,
    _NAME,
    CASE_KINDS,
    EXPIRY_ACTIONS,
    OUTCOMES,
    RESPONSIBLE,
    SEVERITIES,
    STAFF_ROLES,
    UNITS,
    WORKFLOWS_DIR,
    Appeal,
    Body,
    Definition,
    DefinitionError,
    Document,
    GuardScalar,
    GuardValue,
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
_BODY_FIELDS = (("zh", "en"), ("source",))
_DOCUMENT_FIELDS = (("zh", "en", "source"), ())
_APPEAL_FIELDS = (("zh", "en", "source"), ())
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
_SOURCE_FIELDS = (("citation", "verified"), ("note",))


def _fields(
    problems: Problems,
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


def _text(problems: Problems, element: str, data: Mapping[str, object], key: str) -> str | None:
    value = data.get(key)
    if key not in data:
        return None  # reported as missing already, or optional
    if not isinstance(value, str) or not value.strip():
        problems.add(element, f"{key} must be a non-empty string")
        return None
    return value


def _flag(problems: Problems, element: str, data: Mapping[str, object], key: str) -> bool:
    value = data.get(key, False)
    if not isinstance(value, bool):
        problems.add(element, f"{key} must be true or false")
        return False
    return value


def _names(
    problems: Problems,
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


def _source(problems: Problems, element: str, raw: object) -> LegalSource | None:
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


def _severity_months(
    problems: Problems, element: str, value: object, *, minimum: int
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


def _guard_value(problems: Problems, name: str, value: object) -> GuardValue | None:
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
    if name == "penalty_min_publication_months_by_severity":
        return _severity_months(problems, element, value, minimum=0)
    if name == "no_new_record_of_same_type":
        if not isinstance(value, bool):
            problems.add(element, "value must be true or false")
            return None
        return value
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
        # The same for administrative-penalty information, where it follows other rules than
        # the rest of the adverse information (Zhejiang: the national tiers).
        "penalty_min_publication_months_by_severity",
        # No adverse record of the same category published since the one to repair.
        "no_new_record_of_same_type",
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
    problems: Problems, raw: object
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


def _labelled(
    problems: Problems,
    what: str,
    raw: object,
    spec: tuple[tuple[str, ...], tuple[str, ...]],
) -> dict[str, tuple[str, str, LegalSource | None]]:
    """A mapping of name -> {zh, en, source?}: the bodies and the documents of a definition."""
    found: dict[str, tuple[str, str, LegalSource | None]] = {}
    if raw is None:
        return found
    if not isinstance(raw, dict):
        problems.add(what, "must be a mapping of name to {zh, en, source}")
        return found
    for name, body in raw.items():
        element = f"{what[:-1]} {name!r}"
        if not isinstance(name, str) or not _NAME.match(name):
            problems.add(element, "name must match [a-z][a-z0-9_]*")
            continue
        data = _fields(problems, element, body, spec)
        if data is None:
            continue
        label_zh = _text(problems, element, data, "zh")
        label_en = _text(problems, element, data, "en")
        source = _source(problems, element, data["source"]) if "source" in data else None
        if label_zh and label_en and ("source" not in data or source is not None):
            found[name] = (label_zh, label_en, source)
    return found


def _parse_extras(
    problems: Problems, top: Mapping[str, object]
) -> tuple[dict[str, Body], dict[str, Document], Appeal | None]:
    bodies = {
        role: Body(role, zh, en, source)
        for role, (zh, en, source) in _labelled(
            problems, "bodies", top.get("bodies"), _BODY_FIELDS
        ).items()
    }
    for role in bodies:
        if role not in STAFF_ROLES:
            problems.add(f"body {role!r}", "is not a staff role")
    documents = {
        key: Document(key, zh, en, source)
        for key, (zh, en, source) in _labelled(
            problems, "documents", top.get("documents"), _DOCUMENT_FIELDS
        ).items()
        if source is not None
    }
    appeal = None
    if "appeal" in top:
        data = _fields(problems, "appeal", top["appeal"], _APPEAL_FIELDS) or {}
        text_zh = _text(problems, "appeal", data, "zh")
        text_en = _text(problems, "appeal", data, "en")
        source = _source(problems, "appeal", data["source"]) if "source" in data else None
        if text_zh and text_en and source:
            appeal = Appeal(text_zh, text_en, source)
    return bodies, documents, appeal


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
