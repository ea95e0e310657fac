"""The pure workflow engine and the built-in definitions (no database).

The validation tests build a small valid definition, break one thing, and assert the exact
problem line; the built-in tests pin the legal numbers of regulations.md §7.3.
"""

from __future__ import annotations

import copy
from dataclasses import FrozenInstanceError
from pathlib import Path
from typing import Any

import pytest
import yaml

from objections.workflow import (
    EFFECTS,
    ROLES,
    Definition,
    DefinitionError,
    InvalidTransition,
    UnknownName,
    definition_hash,
    definition_to_yaml,
    load_builtin,
    load_builtin_sources,
    parse_definition,
    validate,
)

BUILTIN = load_builtin()
BUILTIN_KEYS = sorted(BUILTIN)
SOURCE = {"citation": "Test Regulations, Art 1", "verified": True}


def base() -> dict[str, Any]:
    """A small valid definition: intake, review with a pausable, extendable clock, a decision."""
    return copy.deepcopy(
        {
            "key": "test-objection",
            "jurisdiction": "test",
            "case_kind": "objection",
            "title_zh": "测试",
            "title_en": "Test",
            "parameters_verified": True,
            "initial": "received",
            "states": {
                "received": {"zh": "已收到", "en": "Received"},
                "under_review": {"zh": "核查中", "en": "Under review"},
                "awaiting_material": {"zh": "待补正", "en": "Awaiting material", "untimed": True},
                "closed": {"zh": "已办结", "en": "Closed", "terminal": True},
            },
            "transitions": [
                {
                    "name": "accept",
                    "from": "received",
                    "to": "under_review",
                    "roles": ["system", "caseworker"],
                    "effects": ["mark_record"],
                },
                {
                    "name": "request_material",
                    "from": "under_review",
                    "to": "awaiting_material",
                    "roles": ["caseworker"],
                    "requires": ["material_request"],
                    "pauses_clock": True,
                },
                {
                    "name": "supply_material",
                    "from": "awaiting_material",
                    "to": "under_review",
                    "roles": ["citizen"],
                    "resumes_clock": True,
                },
                {
                    "name": "extend",
                    "from": "under_review",
                    "to": "under_review",
                    "roles": ["caseworker"],
                    "requires": ["extension_reason"],
                    "second_person": True,
                    "approver_roles": ["supervisor"],
                    "extends_clock": True,
                },
                {
                    "name": "decide",
                    "from": "under_review",
                    "to": "closed",
                    "roles": ["caseworker"],
                    "requires": ["outcome", "reasons"],
                    "outcomes": ["granted", "refused"],
                    "effects": ["unmark_record", "notify_applicant"],
                },
            ],
            "timers": [
                {
                    "name": "accept_deadline",
                    "state": "received",
                    "amount": 1,
                    "unit": "working",
                    "starts_on": "filed",
                    "on_expiry": "escalate",
                    "source": SOURCE,
                },
                {
                    "name": "decision_deadline",
                    "state": "under_review",
                    "amount": 5,
                    "unit": "working",
                    "starts_on": "accept",
                    "on_expiry": "escalate",
                    "pausable": True,
                    "extension_cap": 20,
                    "source": SOURCE,
                },
            ],
        }
    )


def dump(data: dict[str, Any]) -> str:
    return yaml.safe_dump(data, allow_unicode=True, sort_keys=False)


def problems_of(data: dict[str, Any]) -> tuple[str, ...]:
    with pytest.raises(DefinitionError) as caught:
        parse_definition(dump(data), origin="test.yaml")
    return caught.value.problems


def transition(data: dict[str, Any], name: str) -> dict[str, Any]:
    return next(t for t in data["transitions"] if t["name"] == name)


def timer(data: dict[str, Any], name: str) -> dict[str, Any]:
    return next(t for t in data["timers"] if t["name"] == name)


def timer_numbers(definition: Definition) -> dict[str, tuple[int, str, int | None]]:
    return {t.name: (t.amount, t.unit, t.extension_cap) for t in definition.timers}


# --- the base definition and the parser ------------------------------------------------------


def test_base_definition_is_valid() -> None:
    # given a definition that breaks no rule / when it is parsed
    definition = parse_definition(dump(base()), origin="test.yaml")

    # then states, transitions and timers come out as typed, frozen values
    assert definition.key == "test-objection"
    assert definition.initial == "received"
    assert set(definition.states) == {"received", "under_review", "awaiting_material", "closed"}
    assert definition.states["awaiting_material"].untimed is True
    assert definition.is_terminal("closed") is True
    extend = definition.step(state="under_review", transition="extend", role="caseworker")
    assert extend.second_person is True
    assert extend.approver_roles == frozenset({"supervisor"})
    assert extend.requires == ("extension_reason",)
    [deadline] = definition.timers_for("under_review")
    assert (deadline.amount, deadline.unit, deadline.starts_on) == (5, "working", "accept")
    assert deadline.extension_cap == 20
    assert deadline.reminder_at == 0.8
    assert deadline.source.verified is True


def test_validate_accepts_plain_data_like_a_stored_version() -> None:
    definition = validate(base(), origin="row 7")

    assert definition.key == "test-objection"


def test_every_problem_is_reported_not_just_the_first() -> None:
    # given a definition with three unrelated mistakes
    data = base()
    transition(data, "accept")["roles"] = ["clerk"]
    timer(data, "accept_deadline")["unit"] = "hours"
    data["initial"] = "draft"

    # when / then all three are listed
    problems = problems_of(data)
    assert "test.yaml: transition 'accept' from 'received': unknown role 'clerk'" in problems
    assert "test.yaml: timer 'accept_deadline': unknown unit 'hours' (working or calendar)" in (
        problems
    )
    assert "test.yaml: initial: unknown state 'draft'" in problems


def test_invalid_yaml_is_a_definition_error() -> None:
    with pytest.raises(DefinitionError) as caught:
        parse_definition("key: [unclosed", origin="test.yaml")

    assert caught.value.problems[0].startswith("test.yaml: not valid YAML:")


def test_duplicate_yaml_keys_are_reported() -> None:
    # given a state defined twice (plain YAML would keep the second one silently)
    text = dump(base()).replace(
        "  received:\n", "  received:\n    zh: 重复\n    en: Again\n  received:\n", 1
    )

    with pytest.raises(DefinitionError) as caught:
        parse_definition(text, origin="test.yaml")

    assert any(
        p.startswith("test.yaml: line ") and p.endswith(": key 'received' appears more than once")
        for p in caught.value.problems
    )


def test_unknown_and_missing_fields_are_reported() -> None:
    data = base()
    timer(data, "decision_deadline")["pausible"] = True
    del transition(data, "decide")["to"]

    problems = problems_of(data)

    assert "test.yaml: timer 'decision_deadline': unknown field 'pausible'" in problems
    assert "test.yaml: transition 'decide': missing field 'to'" in problems


# --- one test per validation rule ------------------------------------------------------------


def test_rule_unknown_state_in_a_transition() -> None:
    data = base()
    transition(data, "decide")["to"] = "decided"
    transition(data, "accept")["from"] = "filed"

    problems = problems_of(data)

    assert "test.yaml: transition 'decide' from 'under_review': unknown target state 'decided'" in (
        problems
    )
    assert "test.yaml: transition 'accept' from 'filed': unknown source state 'filed'" in problems


def test_rule_unknown_state_in_a_timer() -> None:
    data = base()
    timer(data, "accept_deadline")["state"] = "intake"

    assert "test.yaml: timer 'accept_deadline': unknown state 'intake'" in problems_of(data)


def test_rule_unknown_initial_state() -> None:
    data = base()
    data["initial"] = "draft"

    assert "test.yaml: initial: unknown state 'draft'" in problems_of(data)


def test_rule_unreachable_state() -> None:
    data = base()
    data["states"]["archived"] = {"zh": "已归档", "en": "Archived", "terminal": True}

    assert problems_of(data) == (
        "test.yaml: state 'archived': unreachable from initial state 'received'",
    )


def test_rule_terminal_state_with_an_outgoing_transition() -> None:
    data = base()
    data["transitions"].append(
        {"name": "reopen", "from": "closed", "to": "under_review", "roles": ["citizen"]}
    )

    assert problems_of(data) == (
        "test.yaml: transition 'reopen' from 'closed': "
        "leaves terminal state 'closed' but is not listed in reopen_by_review",
    )


def test_rule_terminal_state_may_reopen_only_by_a_listed_review() -> None:
    # given the same transition, allowed by name
    data = base()
    data["transitions"].append(
        {"name": "reopen", "from": "closed", "to": "under_review", "roles": ["citizen"]}
    )
    data["reopen_by_review"] = ["reopen"]

    definition = parse_definition(dump(data), origin="test.yaml")

    assert definition.reopen_by_review == ("reopen",)
    assert [t.name for t in definition.available(state="closed", role="citizen")] == ["reopen"]


def test_rule_reopen_by_review_must_name_a_transition_out_of_a_terminal_state() -> None:
    data = base()
    data["reopen_by_review"] = ["decide"]

    assert problems_of(data) == (
        "test.yaml: reopen_by_review: 'decide' is not a transition out of a terminal state",
    )


def test_rule_non_terminal_state_without_a_way_out() -> None:
    data = base()
    data["states"]["stuck"] = {"zh": "停滞", "en": "Stuck"}
    data["transitions"].append(
        {"name": "park", "from": "under_review", "to": "stuck", "roles": ["caseworker"]}
    )
    data["timers"].append({**timer(data, "accept_deadline"), "name": "stuck_for", "state": "stuck"})

    assert problems_of(data) == (
        "test.yaml: state 'stuck': not terminal but has no outgoing transition",
    )


def test_rule_states_that_cannot_reach_a_terminal_state() -> None:
    # given two states that only lead to each other
    data = base()
    data["states"]["loop_a"] = {"zh": "甲", "en": "A"}
    data["states"]["loop_b"] = {"zh": "乙", "en": "B"}
    data["transitions"] += [
        {"name": "park", "from": "under_review", "to": "loop_a", "roles": ["caseworker"]},
        {"name": "flip", "from": "loop_a", "to": "loop_b", "roles": ["caseworker"]},
        {"name": "flop", "from": "loop_b", "to": "loop_a", "roles": ["caseworker"]},
    ]
    for name in ("loop_a", "loop_b"):
        data["timers"].append(
            {**timer(data, "accept_deadline"), "name": f"t_{name}", "state": name}
        )

    assert problems_of(data) == (
        "test.yaml: state 'loop_a': no terminal state can be reached from it",
        "test.yaml: state 'loop_b': no terminal state can be reached from it",
    )


def test_rule_duplicate_transition_name_from_the_same_state() -> None:
    data = base()
    data["transitions"].append(
        {
            "name": "decide",
            "from": "under_review",
            "to": "closed",
            "roles": ["supervisor"],
            "requires": ["reasons"],
        }
    )

    assert problems_of(data) == (
        "test.yaml: transition 'decide' from 'under_review': "
        "defined more than once from this state",
    )


def test_rule_duplicate_edge_under_two_names() -> None:
    data = base()
    data["transitions"].append(
        {
            "name": "close",
            "from": "under_review",
            "to": "closed",
            "roles": ["supervisor"],
            "effects": ["unmark_record", "notify_applicant"],
        }
    )

    assert problems_of(data) == (
        "test.yaml: transition 'close' from 'under_review': "
        "same target 'closed' and effects as transition 'decide'",
    )


def test_rule_unknown_role() -> None:
    data = base()
    transition(data, "accept")["roles"] = ["clerk"]
    transition(data, "extend")["approver_roles"] = ["boss"]

    problems = problems_of(data)

    assert "test.yaml: transition 'accept' from 'received': unknown role 'clerk'" in problems
    assert "test.yaml: transition 'extend' from 'under_review': unknown approver role 'boss'" in (
        problems
    )


def test_rule_unknown_effect() -> None:
    data = base()
    transition(data, "accept")["effects"] = ["mark_record", "publish"]

    assert problems_of(data) == (
        "test.yaml: transition 'accept' from 'received': unknown effect 'publish'",
    )


def test_rule_unknown_unit() -> None:
    data = base()
    timer(data, "accept_deadline")["unit"] = "hours"

    assert problems_of(data) == (
        "test.yaml: timer 'accept_deadline': unknown unit 'hours' (working or calendar)",
    )


def test_rule_timer_without_a_legal_source() -> None:
    data = base()
    del timer(data, "accept_deadline")["source"]

    assert problems_of(data) == (
        "test.yaml: timer 'accept_deadline': "
        "no legal source (every number needs source.citation and source.verified)",
    )


def test_rule_source_needs_citation_and_verified() -> None:
    data = base()
    timer(data, "accept_deadline")["source"] = {"citation": " ", "verified": "yes"}
    timer(data, "decision_deadline")["source"] = {"citation": "Art 1"}

    problems = problems_of(data)

    assert "test.yaml: timer 'accept_deadline': source: citation must be a non-empty string" in (
        problems
    )
    assert "test.yaml: timer 'accept_deadline': source.verified must be true or false" in problems
    assert "test.yaml: timer 'decision_deadline': source: missing field 'verified'" in problems


def test_rule_unverified_source_needs_a_note() -> None:
    data = base()
    data["parameters_verified"] = False
    timer(data, "accept_deadline")["source"] = {"citation": "Art 1", "verified": False}
    timer(data, "accept_deadline")["on_expiry"] = "remind"  # an unverified number only reminds

    assert problems_of(data) == (
        "test.yaml: timer 'accept_deadline': "
        "an unverified source needs a note saying what is not verified",
    )


@pytest.mark.parametrize("amount", [0, -3, 1.5, True, "5"])
def test_rule_amount_must_be_positive(amount: object) -> None:
    data = base()
    timer(data, "accept_deadline")["amount"] = amount

    assert problems_of(data) == (
        "test.yaml: timer 'accept_deadline': "
        f"amount must be a positive whole number, got {amount!r}",
    )


@pytest.mark.parametrize("action", ["grant", "refuse", "approve", "close"])
def test_rule_expiry_may_not_decide_the_case(action: str) -> None:
    data = base()
    timer(data, "decision_deadline")["on_expiry"] = action

    assert problems_of(data) == (
        f"test.yaml: timer 'decision_deadline': on_expiry {action!r} is not allowed: "
        "a timer may only escalate or remind, never decide the case",
    )


def test_rule_second_person_needs_approver_roles() -> None:
    data = base()
    transition(data, "decide")["second_person"] = True

    assert problems_of(data) == (
        "test.yaml: transition 'decide' from 'under_review': second_person needs approver_roles",
    )


def test_rule_approvers_without_second_person() -> None:
    data = base()
    transition(data, "decide")["approver_roles"] = ["supervisor"]

    assert problems_of(data) == (
        "test.yaml: transition 'decide' from 'under_review': "
        "approver_roles given but second_person is false",
    )


@pytest.mark.parametrize("role", ["citizen", "system"])
def test_rule_citizen_and_system_cannot_approve(role: str) -> None:
    data = base()
    transition(data, "extend")["approver_roles"] = [role]

    assert problems_of(data) == (
        f"test.yaml: transition 'extend' from 'under_review': role {role!r} cannot approve",
    )


def test_rule_unknown_required_field() -> None:
    data = base()
    transition(data, "decide")["requires"] = ["outcome", "reasons", "signature"]

    assert problems_of(data) == (
        "test.yaml: transition 'decide' from 'under_review': unknown required field 'signature'",
    )


def test_rule_system_cannot_take_a_decision() -> None:
    data = base()
    transition(data, "decide")["roles"] = ["caseworker", "system"]

    assert problems_of(data) == (
        "test.yaml: transition 'decide' from 'under_review': "
        "requires an outcome, so it is a decision the system cannot take",
    )


def test_rule_every_non_terminal_state_has_a_timer_or_is_untimed() -> None:
    data = base()
    data["timers"] = [t for t in data["timers"] if t["name"] != "accept_deadline"]

    assert problems_of(data) == (
        "test.yaml: state 'received': not terminal, has no timer and is not marked untimed",
    )


def test_rule_no_timer_in_an_untimed_or_terminal_state() -> None:
    data = base()
    data["timers"].append(
        {**timer(data, "accept_deadline"), "name": "wait", "state": "awaiting_material"}
    )
    data["timers"].append({**timer(data, "accept_deadline"), "name": "after", "state": "closed"})

    assert problems_of(data) == (
        "test.yaml: timer 'wait': state 'awaiting_material' is marked untimed",
        "test.yaml: timer 'after': state 'closed' is terminal",
    )


def test_rule_pausing_and_resuming_go_with_untimed_states() -> None:
    # given a pause into a timed state, a resume out of a timed one, and an untimed state left
    # and entered without touching the clock
    data = base()
    transition(data, "request_material")["pauses_clock"] = False
    transition(data, "supply_material")["resumes_clock"] = False
    transition(data, "extend")["pauses_clock"] = True
    transition(data, "accept")["resumes_clock"] = True

    problems = problems_of(data)

    assert problems == (
        "test.yaml: transition 'accept' from 'received': "
        "resumes the clock but source 'received' is not untimed",
        "test.yaml: transition 'request_material' from 'under_review': "
        "enters untimed state 'awaiting_material' without pausing the clock",
        "test.yaml: transition 'supply_material' from 'awaiting_material': "
        "leaves untimed state 'awaiting_material' for 'under_review' without resuming the clock",
        "test.yaml: transition 'extend' from 'under_review': "
        "pauses the clock but target 'under_review' is not untimed",
    )


def test_rule_a_pause_stops_only_pausable_timers() -> None:
    data = base()
    timer(data, "decision_deadline")["pausable"] = False

    assert problems_of(data) == (
        "test.yaml: transition 'request_material' from 'under_review': "
        "pauses the clock but timer 'decision_deadline' is not pausable",
    )


def test_rule_a_transition_cannot_pause_and_resume() -> None:
    data = base()
    transition(data, "request_material")["resumes_clock"] = True

    assert (
        "test.yaml: transition 'request_material' from 'under_review': "
        "cannot both pause and resume the clock"
    ) in problems_of(data)


def test_rule_starts_on_must_be_an_event_or_a_transition() -> None:
    data = base()
    timer(data, "decision_deadline")["starts_on"] = "acceptance"

    assert problems_of(data) == (
        "test.yaml: timer 'decision_deadline': "
        "starts_on 'acceptance' is neither 'entered', 'filed' nor a transition",
    )


def test_rule_starting_transition_must_precede_every_entry_to_the_state() -> None:
    # given a timer in under_review that starts on supply_material, which a case need not take
    data = base()
    timer(data, "decision_deadline")["starts_on"] = "supply_material"

    assert problems_of(data) == (
        "test.yaml: timer 'decision_deadline': state 'under_review' can be reached without "
        "transition 'supply_material', so the timer may have no start",
    )


def test_rule_a_period_starting_on_a_transition_runs_where_it_leads() -> None:
    # given a second review state after under_review whose timer starts on accept, which
    # leads to under_review, not to it
    data = base()
    data["states"]["second_review"] = {"zh": "复查", "en": "Second review"}
    data["transitions"] += [
        {
            "name": "escalate_review",
            "from": "under_review",
            "to": "second_review",
            "roles": ["caseworker"],
        },
        {
            "name": "decide",
            "from": "second_review",
            "to": "closed",
            "roles": ["supervisor"],
            "requires": ["outcome", "reasons"],
            "outcomes": ["granted", "refused"],
            "effects": ["notify_applicant"],
        },
    ]
    data["timers"].append(
        {
            **timer(data, "accept_deadline"),
            "name": "second_deadline",
            "state": "second_review",
            "starts_on": "accept",
        }
    )

    assert problems_of(data) == (
        "test.yaml: timer 'second_deadline': "
        "starts on 'accept' but does not run in 'under_review', where it leads",
    )


def test_rule_extension_cap_must_exceed_the_amount() -> None:
    data = base()
    timer(data, "decision_deadline")["extension_cap"] = 5

    assert problems_of(data) == (
        "test.yaml: timer 'decision_deadline': extension_cap 5 must exceed amount 5",
    )


def test_rule_an_extension_needs_a_cap_a_reason_and_an_approver() -> None:
    data = base()
    del timer(data, "decision_deadline")["extension_cap"]
    extend = transition(data, "extend")
    extend["requires"] = []
    extend["second_person"] = False
    extend["approver_roles"] = []

    assert problems_of(data) == (
        "test.yaml: transition 'extend' from 'under_review': "
        "an extension needs a second person's approval",
        "test.yaml: transition 'extend' from 'under_review': "
        "an extension needs requires: [extension_reason]",
        "test.yaml: transition 'extend' from 'under_review': "
        "extends the clock but no timer in 'under_review' has an extension_cap",
    )


@pytest.mark.parametrize("parameters_verified", [True, False])
def test_rule_an_unverified_number_cannot_escalate(parameters_verified: bool) -> None:
    data = base()
    data["parameters_verified"] = parameters_verified
    timer(data, "decision_deadline")["source"] = {
        "citation": "Art 1",
        "verified": False,
        "note": "read in a summary",
    }

    assert problems_of(data) == (
        "test.yaml: timer 'decision_deadline': "
        "escalates on an unverified source (an unverified number only reminds)",
    )


def test_rule_timers_sharing_a_name_are_one_period() -> None:
    data = base()
    data["timers"].append(
        {**timer(data, "accept_deadline"), "state": "under_review", "amount": 2, "pausable": True}
    )
    data["timers"].append(dict(timer(data, "accept_deadline")))

    problems = problems_of(data)

    assert problems == (
        "test.yaml: timer 'accept_deadline': "
        "entries with this name differ in more than their state",
        "test.yaml: timer 'accept_deadline': defined more than once for state 'received'",
    )


def test_rule_guards_are_typed_and_sourced() -> None:
    data = base()
    data["guards"] = {
        "min_publication_months_by_severity": {
            "value": {"minor": 0, "general": -1, "serious": 12},
            "source": SOURCE,
        },
        "serious_list_blocks_repair": {"value": "yes", "source": SOURCE},
        "max_reviews": {"value": 1},
        "deemed_approval": {"value": True, "source": SOURCE},
        "wait_for_timer": {"value": {"decide": "notice_period"}, "source": SOURCE},
    }

    assert problems_of(data) == (
        "test.yaml: guard 'min_publication_months_by_severity': "
        "general must be a whole number of months >= 0",
        "test.yaml: guard 'serious_list_blocks_repair': value must be true or false",
        "test.yaml: guard 'max_reviews': missing field 'source'",
        "test.yaml: guard 'deemed_approval': unknown guard (known: "
        "max_publication_months_by_severity, max_reviews, min_publication_months_by_severity, "
        "no_new_record_of_same_type, penalty_min_publication_months_by_severity, "
        "serious_list_blocks_repair, wait_for_timer)",
        "test.yaml: guard 'wait_for_timer': no timer 'notice_period' runs in 'under_review', "
        "the source of 'decide'",
    )


def test_rule_names_and_kinds() -> None:
    data = base()
    data["key"] = "Test Objection"
    data["case_kind"] = "appeal"
    data["states"]["Under Review"] = data["states"].pop("under_review")

    problems = problems_of(data)

    assert (
        "test.yaml: key: 'Test Objection' must be a lowercase slug such as 'shanghai-objection'"
        in (problems)
    )
    assert (
        "test.yaml: case_kind: unknown case kind 'appeal' (deletion, objection, repair, review)"
        in problems
    )
    assert "test.yaml: state 'Under Review': name must match [a-z][a-z0-9_]*" in problems


def test_rule_states_need_both_labels() -> None:
    data = base()
    del data["states"]["closed"]["en"]
    data["states"]["received"]["zh"] = ""

    assert problems_of(data) == (
        "test.yaml: state 'received': zh must be a non-empty string",
        "test.yaml: state 'closed': missing field 'en'",
    )


def test_rule_filed_and_entered_are_not_transition_names() -> None:
    data = base()
    transition(data, "accept")["name"] = "filed"
    timer(data, "decision_deadline")["starts_on"] = "entered"

    assert problems_of(data) == (
        "test.yaml: transition 'filed' from 'received': "
        "the name 'filed' is reserved for timers' starts_on",
    )


def test_effective_from_must_be_a_date() -> None:
    data = base()
    data["effective_from"] = "1 April 2026"

    assert problems_of(data) == (
        "test.yaml: effective_from: '1 April 2026' is not a date (YYYY-MM-DD)",
    )


def test_load_builtin_sources_returns_each_definition_with_its_text() -> None:
    sources = load_builtin_sources()

    assert sorted(sources) == BUILTIN_KEYS
    for key, (definition, text) in sources.items():
        assert definition == BUILTIN[key]
        assert text.startswith("# ")  # the file as written, comments included
        assert definition_hash(text) == definition_hash(definition_to_yaml(definition))


def test_load_builtin_reports_a_key_that_does_not_match_the_file(tmp_path: Path) -> None:
    (tmp_path / "other-name.yaml").write_text(dump(base()), encoding="utf-8")
    broken = base()
    broken["initial"] = "draft"
    (tmp_path / "test-broken.yaml").write_text(dump(broken), encoding="utf-8")

    with pytest.raises(DefinitionError) as caught:
        load_builtin(tmp_path)

    assert caught.value.problems == (
        "other-name.yaml: key: 'test-objection' does not match the file name",
        "test-broken.yaml: initial: unknown state 'draft'",
    )


# --- canonical form and hash ------------------------------------------------------------------


@pytest.mark.parametrize("key", BUILTIN_KEYS)
def test_canonical_yaml_round_trips(key: str) -> None:
    canonical = definition_to_yaml(BUILTIN[key])

    again = parse_definition(canonical, origin=f"{key} (canonical)")

    assert definition_to_yaml(again) == canonical
    assert again.states == BUILTIN[key].states
    assert set(again.transitions) == set(BUILTIN[key].transitions)
    assert set(again.timers) == set(BUILTIN[key].timers)
    assert again.guards == BUILTIN[key].guards


def test_hash_ignores_comments_and_order_but_not_meaning() -> None:
    text = dump(base())
    reordered = base()
    reordered["transitions"].reverse()
    reordered["timers"].reverse()
    changed = base()
    timer(changed, "decision_deadline")["amount"] = 6

    assert definition_hash("# a comment\n" + text) == definition_hash(text)
    assert definition_hash(dump(reordered)) == definition_hash(text)
    assert definition_hash(dump(changed)) != definition_hash(text)
    assert len(definition_hash(text)) == 64


# --- queries ----------------------------------------------------------------------------------

SHANGHAI = BUILTIN["shanghai-objection"]


@pytest.mark.parametrize(
    ("state", "role", "expected"),
    [
        ("received", "system", {"mark"}),
        ("received", "caseworker", {"mark"}),
        ("received", "citizen", {"withdraw"}),
        ("received", "agency_caseworker", set()),
        ("marked", "caseworker", {"start_review", "forward"}),
        ("marked", "citizen", {"withdraw"}),
        ("marked", "system", set()),
        ("under_review", "caseworker", {"grant", "refuse", "forward"}),
        ("under_review", "agency_caseworker", set()),
        ("under_review", "citizen", {"withdraw"}),
        ("provider_review", "agency_caseworker", {"grant", "refuse"}),
        ("provider_review", "caseworker", set()),
        ("provider_review", "citizen", {"withdraw"}),
        ("decided_granted", "caseworker", {"execute_correction", "execute_deletion"}),
        ("decided_granted", "system", {"execute_correction", "execute_deletion"}),
        ("decided_granted", "citizen", set()),
        ("decided_refused", "caseworker", {"notify_refusal"}),
        ("executing", "system", {"complete"}),
        ("closed", "citizen", set()),
        ("closed", "caseworker", set()),
        ("withdrawn", "citizen", set()),
    ],
)
def test_shanghai_available(state: str, role: str, expected: set[str]) -> None:
    assert {t.name for t in SHANGHAI.available(state=state, role=role)} == expected


@pytest.mark.parametrize("role", ["supervisor", "auditor", "administrator"])
def test_shanghai_gives_supervisor_auditor_and_administrator_no_step(role: str) -> None:
    assert all(SHANGHAI.available(state=s, role=role) == () for s in SHANGHAI.states)


def test_step_returns_the_transition_with_what_follows() -> None:
    step = SHANGHAI.step(state="marked", transition="forward", role="caseworker")

    assert (step.source, step.target, step.effects) == (
        "marked",
        "provider_review",
        ("notify_agency",),
    )


def test_step_refuses_a_role_that_may_not_take_it() -> None:
    with pytest.raises(InvalidTransition) as caught:
        SHANGHAI.step(state="under_review", transition="grant", role="citizen")

    assert str(caught.value) == (
        "role 'citizen' may not take transition 'grant' from state 'under_review' "
        "in workflow 'shanghai-objection'"
    )
    assert caught.value.reason == "role_not_allowed"


def test_step_refuses_a_transition_from_the_wrong_state() -> None:
    with pytest.raises(InvalidTransition) as caught:
        SHANGHAI.step(state="received", transition="grant", role="caseworker")

    assert str(caught.value) == (
        "transition 'grant' is not allowed from state 'received' in workflow 'shanghai-objection'"
    )
    assert caught.value.reason == "wrong_state"


def test_step_refuses_an_unknown_transition() -> None:
    with pytest.raises(InvalidTransition) as caught:
        SHANGHAI.step(state="under_review", transition="approve", role="caseworker")

    assert str(caught.value) == "unknown transition 'approve' in workflow 'shanghai-objection'"
    assert caught.value.reason == "unknown_transition"


def test_step_refuses_anything_from_a_closed_shanghai_case() -> None:
    # Shanghai has no internal review: nothing leaves closed, not even for the citizen
    with pytest.raises(InvalidTransition) as caught:
        SHANGHAI.step(state="closed", transition="withdraw", role="citizen")

    assert str(caught.value) == (
        "transition 'withdraw' is not allowed from state 'closed' in workflow 'shanghai-objection'"
    )


def test_step_refuses_an_unknown_state_and_role() -> None:
    with pytest.raises(InvalidTransition) as unknown_state:
        SHANGHAI.step(state="draft", transition="mark", role="system")
    with pytest.raises(InvalidTransition) as unknown_role:
        SHANGHAI.step(state="received", transition="mark", role="robot")

    assert str(unknown_state.value) == "unknown state 'draft' in workflow 'shanghai-objection'"
    assert unknown_state.value.reason == "unknown_state"
    assert str(unknown_role.value) == "unknown role 'robot'"
    assert unknown_role.value.reason == "unknown_role"


def test_queries_refuse_unknown_names() -> None:
    with pytest.raises(UnknownName, match="unknown state 'draft'"):
        SHANGHAI.timers_for("draft")
    with pytest.raises(UnknownName, match="unknown role 'robot'"):
        SHANGHAI.available(state="received", role="robot")


def test_definitions_are_frozen() -> None:
    with pytest.raises(FrozenInstanceError):
        SHANGHAI.__setattr__("initial", "closed")
    with pytest.raises(TypeError):
        SHANGHAI.states["closed"] = SHANGHAI.states["received"]  # type: ignore[index]


# --- the built-in definitions -----------------------------------------------------------------


def test_all_built_in_definitions_load() -> None:
    assert BUILTIN_KEYS == [
        "credit-china-objection",
        "hubei-objection",
        "hubei-repair",
        "national-list-removal",
        "national-repair",
        "national-repair-2023",
        "pboc-objection",
        "shanghai-credit-service-objection",
        "shanghai-objection",
        "shanghai-repair",
        "shanghai-revocation-deletion",
        "zhejiang-objection",
        "zhejiang-repair",
    ]


@pytest.mark.parametrize("key", BUILTIN_KEYS)
def test_every_timer_has_a_source_and_only_escalates_or_reminds(key: str) -> None:
    for timer_ in BUILTIN[key].timers:
        assert timer_.on_expiry in {"escalate", "remind"}, timer_
        assert timer_.source.citation.strip(), timer_
        assert timer_.source.verified or timer_.source.note.strip(), timer_


@pytest.mark.parametrize("key", BUILTIN_KEYS)
def test_every_state_has_both_labels(key: str) -> None:
    for state in BUILTIN[key].states.values():
        assert state.label_zh.strip()
        assert state.label_en.strip()


@pytest.mark.parametrize("key", BUILTIN_KEYS)
def test_decisions_need_reasons_and_a_person(key: str) -> None:
    # Decisions (an outcome) and refusals carry reasons; no decision is left to the system role.
    for t in BUILTIN[key].transitions:
        if "outcome" in t.requires or t.name.startswith(("refuse", "dismiss", "uphold")):
            assert "reasons" in t.requires, t
            assert "system" not in t.roles, t
        assert set(t.roles) <= ROLES
        assert set(t.effects) <= EFFECTS


@pytest.mark.parametrize("key", BUILTIN_KEYS)
def test_citizens_withdraw_supply_material_and_request_review_only(key: str) -> None:
    citizen_steps = {t.name for t in BUILTIN[key].transitions if "citizen" in t.roles}

    assert citizen_steps <= {"withdraw", "supply_material", "request_review", "withdraw_review"}
    # A deletion after revocation is started by the providing unit, not by the subject.
    assert ("withdraw" in citizen_steps) == (BUILTIN[key].case_kind != "deletion")


@pytest.mark.parametrize("key", ["hubei-objection", "hubei-repair"])
def test_hubei_is_marked_unverified_throughout(key: str) -> None:
    definition = BUILTIN[key]

    assert definition.parameters_verified is False
    sources = [t.source for t in definition.timers]
    sources += list(definition.guard_sources.values()) + list(definition.legal_basis)
    assert sources
    for source in sources:
        assert source.verified is False
        assert "not checked" in source.note
    # unverified numbers only remind; they must not read as breaches
    assert {t.on_expiry for t in definition.timers} == {"remind"}


def test_shanghai_numbers() -> None:
    assert timer_numbers(SHANGHAI) == {
        "marking_deadline": (1, "working", None),
        "forward_deadline": (2, "working", None),
        "centre_decision_deadline": (5, "working", None),
        "provider_decision_deadline": (5, "working", None),
        "execution_deadline": (3, "working", None),
        "refusal_notice_reminder": (1, "working", None),
    }
    starts = {t.name: t.starts_on for t in SHANGHAI.timers}
    assert starts["marking_deadline"] == "filed"
    assert starts["forward_deadline"] == "filed"
    assert starts["centre_decision_deadline"] == "filed"
    assert starts["provider_decision_deadline"] == "forward"
    assert SHANGHAI.parameters_verified is True
    assert SHANGHAI.reopen_by_review == ()
    assert SHANGHAI.transitions_from("closed") == ()


def test_zhejiang_objection_numbers_and_review() -> None:
    zhejiang = BUILTIN["zhejiang-objection"]

    assert timer_numbers(zhejiang) == {
        "acceptance_reminder": (1, "working", None),
        "handling_deadline": (5, "working", 20),
        "review_deadline": (5, "working", 20),
    }
    assert zhejiang.reopen_by_review == ("request_review",)
    review = zhejiang.step(state="closed", transition="request_review", role="citizen")
    assert review.target == "drc_review"
    # Art 30 ¶2: the provincial DRC reviews; Art 31: its responsible person approves extensions.
    for role in ("drc_caseworker", "drc_supervisor"):
        assert {t.name for t in zhejiang.available(state="drc_review", role=role)} == {
            "extend",
            "uphold",
            "revise_correction",
            "revise_deletion",
            "revise_end_publication",
        }
    assert zhejiang.available(state="drc_review", role="supervisor") == ()
    extend = zhejiang.step(state="under_review", transition="extend", role="caseworker")
    assert extend.extends_clock is True
    assert extend.second_person is True
    assert extend.approver_roles == frozenset({"drc_supervisor"})


def test_zhejiang_repair_numbers_pause_and_guards() -> None:
    repair = BUILTIN["zhejiang-repair"]

    assert timer_numbers(repair) == {
        "completeness_notice": (2, "working", None),
        "verification_deadline": (10, "working", None),
        "public_notice_period": (5, "working", None),
        "annotation_reminder": (5, "working", None),
    }
    assert repair.step(
        state="received", transition="request_material", role="agency_caseworker"
    ).pauses_clock
    assert repair.step(
        state="awaiting_material", transition="supply_material", role="citizen"
    ).resumes_clock
    assert repair.guards["serious_list_blocks_repair"] is True
    assert repair.guards["min_publication_months_by_severity"] == {
        "minor": 12,
        "general": 12,
        "serious": 12,
    }
    assert repair.guards["wait_for_timer"] == {"confirm": "public_notice_period"}
    assert repair.parameters_verified is False


def test_national_repair_tiers_and_numbers() -> None:
    national = BUILTIN["national-repair"]

    assert national.effective_from == "2026-04-01"
    assert national.guards["min_publication_months_by_severity"] == {
        "minor": 0,
        "general": 3,
        "serious": 12,
    }
    assert national.guards["max_publication_months_by_severity"] == {
        "minor": 3,
        "general": 12,
        "serious": 36,
    }
    assert timer_numbers(national) == {
        "credit_china_response": (10, "working", None),
        "authority_decision": (3, "working", None),
    }
    assert all(not t.source.verified for t in national.timers)


def test_pboc_numbers() -> None:
    pboc = BUILTIN["pboc-objection"]

    assert timer_numbers(pboc) == {
        "objection_deadline": (20, "calendar", None),
        "complaint_deadline": (30, "calendar", None),
        "ordered_correction_reminder": (5, "working", None),
    }
    assert {t.state for t in pboc.timers if t.name == "objection_deadline"} == {
        "received",
        "under_review",
        "decided_granted",
        "decided_refused",
        "decided_unresolved",
        "executing",
    }
    assert all(t.source.verified == (t.on_expiry == "escalate") for t in pboc.timers), (
        "the statutory periods escalate, the reminder with no period in the text only reminds"
    )
    assert pboc.reopen_by_review == ("request_review",)
    # Art 26: the PBoC branch decides the complaint and orders the institution to correct.
    for role in ("pboc_branch_caseworker", "pboc_branch_supervisor"):
        assert {t.name for t in pboc.available(state="complaint_review", role=role)} == {
            "grant_complaint",
            "dismiss_complaint",
        }
    grant = pboc.step(
        state="complaint_review", transition="grant_complaint", role="pboc_branch_caseworker"
    )
    assert "apply_correction" not in grant.effects
    assert pboc.responsible == "record_agency"
    execute = pboc.step(
        state="correction_ordered", transition="execute_ordered_correction", role="caseworker"
    )
    assert "apply_correction" in execute.effects
    assert "system" not in execute.roles
    assert pboc.available(state="complaint_review", role="supervisor") == ()


def test_rule_a_chosen_outcome_needs_outcomes_to_choose_from() -> None:
    data = base()
    del transition(data, "decide")["outcomes"]

    assert problems_of(data) == (
        "test.yaml: transition 'decide': requires an outcome, so it must list at least two "
        "outcomes to choose from",
    )


def test_rule_outcomes_are_known() -> None:
    data = base()
    transition(data, "decide")["outcomes"] = ["granted", "approved"]

    assert "test.yaml: transition 'decide': unknown outcome 'approved'" in problems_of(data)
