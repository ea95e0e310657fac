"""Typed fields of a definition file: each reader reports what is wrong to `Problems` and
returns what it could read, so that one report lists every problem."""

from __future__ import annotations

from collections.abc import Mapping

from objections.workflow.model import LegalSource
from objections.workflow.rules import Problems

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
