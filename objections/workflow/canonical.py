"""The canonical form of a definition (the text stored and hashed as a version)."""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Mapping

import yaml

from objections.workflow.model import (
    Definition,
    GuardValue,
    LegalSource,
)
from objections.workflow.parsing import parse_definition

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
    if definition.supersedes is not None:
        data["supersedes"] = definition.supersedes
    if definition.responsible != "credit_centre":
        data["responsible"] = definition.responsible
    data["legal_basis"] = [_source_data(s) for s in definition.legal_basis]
    if definition.bodies:
        data["bodies"] = {
            role: {
                "zh": body.label_zh,
                "en": body.label_en,
                **({"source": _source_data(body.source)} if body.source else {}),
            }
            for role, body in sorted(definition.bodies.items())
        }
    if definition.documents:
        data["documents"] = {
            key: {"zh": doc.label_zh, "en": doc.label_en, "source": _source_data(doc.source)}
            for key, doc in sorted(definition.documents.items())
        }
    if definition.appeal is not None:
        data["appeal"] = {
            "zh": definition.appeal.text_zh,
            "en": definition.appeal.text_en,
            "source": _source_data(definition.appeal.source),
        }
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
            **({"documents": list(t.documents)} if t.documents else {}),
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
        if timer.cancelled_by:
            entry["cancelled_by"] = list(timer.cancelled_by)
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
