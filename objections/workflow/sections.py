"""The optional sections of a definition: the guards the service enforces, the bodies that hold
its roles, the documents its steps need, and the routes of appeal it states."""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Final

from objections.workflow.fields import _fields, _source, _text, _whole
from objections.workflow.model import (
    _NAME,
    SEVERITIES,
    STAFF_ROLES,
    Appeal,
    Body,
    Document,
    GuardScalar,
    GuardValue,
    LegalSource,
)
from objections.workflow.rules import Problems

_BODY_FIELDS = (("zh", "en"), ("source",))
_DOCUMENT_FIELDS = (("zh", "en", "source"), ())
_APPEAL_FIELDS = (("zh", "en", "source"), ())


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
