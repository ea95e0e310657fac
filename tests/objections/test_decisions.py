"""Decisions carry the outcome: the remedy and the exact values a grant applies, checked like an
import row; execution applies the decision (never the applicant's request); the statement of
dispute after a refusal; correction payloads at filing, fuzzed, and bodies too deep to parse.

Cases are filed and decided through the API (`/api/v1/cases/`); routing, which a Celery task
runs after commit, is called directly (`case_route`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

import pytest
from django.core.cache import cache
from django.db import transaction
from django.urls import reverse
from hypothesis import HealthCheck, event, example, given, settings
from hypothesis import strategies as st

from audit.models import AuditEvent
from objections.models import Case, Decision, DisputeStatement
from objections.services import case_route
from records.content import (
    CORRECTABLE_FIELDS,
    DATE_FIELDS,
    MAX_LENGTHS,
    OPTIONAL_CORRECTABLE,
)
from records.dates import add_months
from records.models import CreditRecord, CreditRecordVersion
from tests.clock import test_date as suite_date
from tests.objections.conftest import World, case_snapshot
from tests.objections.test_case_api import (
    CASES,
    api,
    file_case,
    filing,
    nothing_filed,
    transition,
)

REASONS = "The penalty was revoked on reconsideration on 2024-03-01."


@pytest.fixture(autouse=True)
def _fresh_throttle(db: None) -> None:
    # The filing throttle counts per user id in the cache, which outlives each test's rollback.
    cache.clear()


def shown(value: object) -> object:
    return value.isoformat() if isinstance(value, date) else value


def reviewed(world: World, record: CreditRecord, **changes: Any) -> Case:
    """A Shanghai objection filed through the API, routed and taken to `under_review`."""
    case = file_case(world.citizen, record, **changes)
    response = transition(world.caseworker, case, "start_review")
    assert response.status_code == 200, response.json()
    return Case.objects.get(pk=case.pk)


def record_now(record: CreditRecord) -> CreditRecord:
    return CreditRecord.objects.get(pk=record.pk)


def steps_taken(case: Case) -> list[str]:
    return [
        step.payload["transition"]
        for step in AuditEvent.objects.filter(
            case_reference=case.reference, action="case.transitioned"
        )
    ]


def detail(user: Any, case: Case) -> dict[str, Any]:
    response = api(user).get(f"{CASES}{case.reference}/")
    assert response.status_code == 200
    return response.json()


# ---------------------------------------------------------------------------------------------
# Arbitrary corrections at filing: a 400 naming the field, or a case whose grant applies them


@dataclass(frozen=True)
class Entry:
    """One value of a generated correction and what the rules make of it for its field:
    "valid", "invalid", or "either" (arbitrary text the test does not judge in advance)."""

    value: Any
    verdict: str


# Text that can be neither blank nor a prohibited term, nor hold a forbidden character.
PLAIN = st.text(
    alphabet="已撤销处罚更正记录决定书号第年月日ABCxyz0123456789", min_size=1, max_size=30
)
# Whitespace a correction loses, as an import row's values do.
PADDING = st.sampled_from(["", " ", "\n", "\t ", "\u3000"])
ODD_CHARACTERS = st.sampled_from(
    ["\x00", "\x01", "\x1f", "\x7f", "\x85", "\x9f", "\ud800", "\udfff", "\x0b"]
)
ANY_TEXT = st.text(
    alphabet=st.one_of(
        st.characters(),
        ODD_CHARACTERS,
        st.sampled_from(["\t", "\n", "\r", " ", "\u200b", "宗", "教"]),
    ),
    max_size=20,
)
NOT_TEXT = st.one_of(
    st.integers(min_value=-(2**53), max_value=2**53),
    st.booleans(),
    st.lists(st.integers(), max_size=2),
    st.dictionaries(st.sampled_from(["a", "title"]), st.integers(), max_size=1),
)
EARLIEST, TODAY = date(1990, 1, 1), suite_date()


def _padded(pad: str, text: str) -> str:
    return f"{pad}{text}{pad}"


def _spoilt(text: str, odd: str) -> str:
    # Inside the text, where trimming cannot take it away.
    return f"{text}{odd}{text}"


def valid_entries_for(name: str) -> st.SearchStrategy[Entry]:
    """Values the rules accept for field `name`."""
    if name in DATE_FIELDS:
        # A well-formed date may still be refused on this record: one that would end the
        # retention before the decision or already (the record is then deleted, not corrected).
        days = st.dates(min_value=EARLIEST, max_value=TODAY).map(date.isoformat)
        valid = st.builds(_padded, PADDING, days).map(lambda value: Entry(value, "either"))
        if name in OPTIONAL_CORRECTABLE:  # empty, blank or null clears it
            return st.one_of(
                valid, st.sampled_from(["", " ", None]).map(lambda v: Entry(v, "either"))
            )
        return valid
    return st.builds(_padded, PADDING, PLAIN).map(lambda value: Entry(value, "valid"))


def entries_for(name: str) -> st.SearchStrategy[Entry]:
    """The values tried for field `name`, each with its verdict: "invalid" ones must be named
    in the answer, "either" ones (arbitrary text) may be."""
    invalid = [
        NOT_TEXT.map(lambda value: Entry(value, "invalid")),
        st.builds(_spoilt, PLAIN, ODD_CHARACTERS).map(lambda value: Entry(value, "invalid")),
    ]
    if name not in OPTIONAL_CORRECTABLE:
        invalid.append(st.sampled_from(["", " ", "\n\t ", None]).map(lambda v: Entry(v, "invalid")))
    if name in DATE_FIELDS:
        invalid.append(
            st.sampled_from(
                ["2099-01-01", "20240101", "2024-02-30", "2024-1-5", "2024-01-10T00:00:00"]
            ).map(lambda value: Entry(value, "invalid"))
        )
        invalid.append(PLAIN.map(lambda value: Entry(value, "invalid")))  # no dashes: no date
        if name == "decision_date":
            invalid.append(st.just(Entry("1989-12-31", "invalid")))
    else:
        limit = MAX_LENGTHS[name]
        invalid += [
            PLAIN.map(lambda value: Entry(f"{value}宗教", "invalid")),
            PLAIN.map(lambda value: Entry(f'=HYPERLINK("x") {value} Religion', "invalid")),
            st.just(Entry("号" * (limit + 1), "invalid")),
        ]
    return st.one_of(
        valid_entries_for(name),
        *invalid,
        ANY_TEXT.map(lambda value: Entry(value, "either")),
    )


UNKNOWN_NAMES = ["status", "record_number", "subject_name", "Title", "", "title ", "\x00", "\ud800"]


@st.composite
def corrections(draw: st.DrawFn) -> dict[str, Entry]:
    """About half well-formed (correctable fields, accepted values), half anything."""
    correctable = st.sampled_from(sorted(CORRECTABLE_FIELDS))
    if draw(st.booleans()):
        names = draw(st.lists(correctable, min_size=1, max_size=5, unique=True))
        return {name: draw(valid_entries_for(name)) for name in names}
    names = draw(
        st.lists(
            st.one_of(correctable, st.sampled_from(UNKNOWN_NAMES), st.text(max_size=8)),
            min_size=1,
            max_size=5,
            unique=True,
        )
    )
    return {
        name: draw(entries_for(name))
        if name in CORRECTABLE_FIELDS
        else Entry(draw(st.one_of(PLAIN, NOT_TEXT, st.none())), "invalid")
        for name in names
    }


def stored(value: str | None) -> str | None:
    """A valid value as the record holds it: trimmed; empty clears an optional date."""
    return (value or "").strip() or None


def raw_json(body: dict[str, Any]) -> str:
    # ASCII-escaped: a lone surrogate travels as "\ud800", as a client could send it.
    return json.dumps(body)


@settings(
    max_examples=60,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(entries=corrections())
# A conduct end so early that the retention counted from it (Shanghai) ends before the decision.
@example(entries={"conduct_ended_on": Entry("2000-01-01", "invalid")})
def test_any_correction_at_filing_is_refused_naming_the_field_or_applied_exactly_on_grant(
    world: World, entries: dict[str, Entry]
):
    proposal = {name: entry.value for name, entry in entries.items()}
    unknown = {name for name in proposal if name not in CORRECTABLE_FIELDS}
    invalid = {name for name, entry in entries.items() if entry.verdict == "invalid"} - unknown
    undecided = {name for name, entry in entries.items() if entry.verdict == "either"}
    # Each example files on the same record and is rolled back afterwards.
    savepoint = transaction.savepoint()
    try:
        cache.clear()
        record = record_now(world.sh_record)
        before = nothing_filed()

        response = api(world.citizen).post(
            CASES,
            data=raw_json(filing(record, correction=proposal)),
            content_type="application/json",
        )

        assert response.status_code in (201, 400), response.content
        event(f"filing answered {response.status_code}")
        if response.status_code == 400:
            body = response.json()
            assert body["code"] == "content_invalid", body
            named = set(body["errors"])
            assert invalid <= named
            assert ("correction" in named) == bool(unknown)
            assert named - {"correction"} <= invalid | undecided
            assert nothing_filed() == before
            assert record_now(record).under_objection is False
            return
        assert not unknown
        assert not invalid
        case = case_route(case_id=Case.objects.get(reference=response.json()["reference"]).pk)
        assert transition(world.caseworker, case, "start_review").status_code == 200

        granted = api(world.caseworker).post(
            f"{CASES}{case.reference}/transitions/",
            data=raw_json(
                {
                    "transition": "grant",
                    "outcome": "granted",
                    "reasons": REASONS,
                    "correction": proposal,
                }
            ),
            content_type="application/json",
        )

        assert granted.status_code == 200, granted.json()
        assert granted.json()["state"] == "closed"
        corrected = record_now(record)
        assert {name: shown(getattr(corrected, name)) for name in proposal} == {
            name: stored(value) for name, value in proposal.items()
        }
        assert (corrected.version, corrected.status) == (
            record.version + 1,
            CreditRecord.Status.CORRECTED,
        )
        decision = Decision.objects.get(case=case)
        assert (
            decision.correction
            == decision.proposed
            == {name: stored(value) for name, value in proposal.items()}
        )
    finally:
        transaction.savepoint_rollback(savepoint)


# ---------------------------------------------------------------------------------------------
# What a grant applies: the decided values, not the proposal


def test_a_partly_granted_correction_applies_only_the_decided_fields(world: World):
    record = world.sh_record
    proposal = {"title": "已撤销的处罚", "facts": "处罚决定已于2024年3月1日撤销。"}
    case = reviewed(world, record, fields_objected=["title", "facts"], correction=proposal)

    response = transition(
        world.caseworker,
        case,
        "grant",
        outcome="partly_granted",
        reasons="The title is wrong; the facts are as found.",
        correction={"title": "已部分撤销的处罚"},
    )

    assert response.status_code == 200, response.json()
    corrected = record_now(record)
    assert (corrected.title, corrected.facts, corrected.version, corrected.status) == (
        "已部分撤销的处罚",
        record.facts,
        record.version + 1,
        CreditRecord.Status.CORRECTED,
    )
    decision = Decision.objects.get(case=case)
    assert (decision.outcome, decision.remedy, decision.transition) == (
        "partly_granted",
        "correct",
        "grant",
    )
    assert (decision.correction, decision.proposed) == ({"title": "已部分撤销的处罚"}, proposal)
    assert (decision.decided_by, decision.approved_by) == (world.caseworker, None)
    shown_decision = detail(world.citizen, case)["decision"]
    shown_decision.pop("approved")  # test_a_decision_no_one_had_to_approve_shows_approved_false
    assert shown_decision == {
        "outcome": "partly_granted",
        "remedy": "correct",
        "reasons": "The title is wrong; the facts are as found.",
        "transition": "grant",
        "decided_at": shown_decision["decided_at"],
        "changes": [
            {
                "field": "facts",
                "current": record.facts,
                "proposed": "处罚决定已于2024年3月1日撤销。",
                "decided": None,
            },
            {
                "field": "title",
                "current": "已部分撤销的处罚",
                "proposed": "已撤销的处罚",
                "decided": "已部分撤销的处罚",
            },
        ],
    }
    assert steps_taken(case) == ["mark", "start_review", "grant", "execute_correction", "complete"]
    corrected_event = AuditEvent.objects.get(
        case_reference=case.reference, action="record.corrected"
    )
    assert corrected_event.payload == {"fields": ["title"], "version": record.version + 1}


def test_the_record_gets_the_deciders_amended_value_not_the_applicants(world: World):
    record = world.sh_record
    case = reviewed(world, record, correction={"title": "申请人提出的标题"})

    response = transition(
        world.caseworker,
        case,
        "grant",
        outcome="granted",
        reasons=REASONS,
        correction={"title": "中心核定的标题"},
    )

    assert response.status_code == 200, response.json()
    corrected = record_now(record)
    assert (corrected.title, corrected.version) == ("中心核定的标题", record.version + 1)
    kept = CreditRecordVersion.objects.get(record=record)
    assert (kept.version, kept.title) == (record.version, record.title)
    decision = Decision.objects.get(case=case)
    assert (decision.proposed, decision.correction) == (
        {"title": "申请人提出的标题"},
        {"title": "中心核定的标题"},
    )
    assert Case.objects.get(pk=case.pk).correction == {"title": "申请人提出的标题"}
    body = response.json()
    assert (body["state"], body["outcome"], body["decision"]["changes"]) == (
        "closed",
        "granted",
        [
            {
                "field": "title",
                "current": "中心核定的标题",
                "proposed": "申请人提出的标题",
                "decided": "中心核定的标题",
            }
        ],
    )
    assert body["record_content"]["title"] == "中心核定的标题"


def test_a_decision_no_one_had_to_approve_shows_approved_false(world: World):
    case = reviewed(world, world.sh_record)
    granted = transition(
        world.caseworker,
        case,
        "grant",
        outcome="granted",
        reasons=REASONS,
        correction={"title": "已撤销的处罚"},
    )
    assert granted.status_code == 200, granted.json()
    assert Decision.objects.get(case=case).approved_by is None

    shown_decision = detail(world.citizen, case)["decision"]

    # DecisionOutput.approved is a boolean (not nullable in the schema)
    assert shown_decision["approved"] is False


def test_a_grant_may_correct_a_date_and_clear_the_optional_one(world: World):
    # A decision a year before the suite's day: its retention, counted from it once the conduct
    # end is cleared, runs for years yet, whatever day the suite runs on.
    decided = TODAY - timedelta(days=365)
    record = world.sh_record
    case = reviewed(
        world, record, correction={"decision_date": decided.isoformat(), "conduct_ended_on": None}
    )

    response = transition(
        world.caseworker,
        case,
        "grant",
        outcome="granted",
        reasons=REASONS,
        correction={"decision_date": decided.isoformat(), "conduct_ended_on": None},
    )

    assert response.status_code == 200, response.json()
    corrected = record_now(record)
    assert (corrected.decision_date, corrected.conduct_ended_on, corrected.version) == (
        decided,
        None,
        record.version + 1,
    )
    assert corrected.retention_end == add_months(decided, 60)  # Shanghai: five years
    assert Decision.objects.get(case=case).correction == {
        "decision_date": decided.isoformat(),
        "conduct_ended_on": None,
    }


# ---------------------------------------------------------------------------------------------
# Decisions the rules refuse change nothing


@pytest.mark.parametrize(
    ("name", "data", "answer"),
    [
        pytest.param(
            "grant",
            {"outcome": "granted"},
            {
                "detail": "A correction decides the values to apply: send 'correction' with each "
                "field's value (take the applicant's proposal, amend it, or write your own).",
                "code": "missing_fields",
                "fields": ["correction"],
            },
            id="grant-to-correct-without-values",
        ),
        pytest.param(
            "grant",
            {"outcome": "granted", "remedy": "correct", "correction": {}},
            {
                "detail": "A correction decides the values to apply: send 'correction' with each "
                "field's value (take the applicant's proposal, amend it, or write your own).",
                "code": "missing_fields",
                "fields": ["correction"],
            },
            id="grant-to-correct-with-empty-values",
        ),
        pytest.param(
            "refuse",
            {"correction": {"title": "已撤销的处罚"}},
            {
                "detail": "A decision 'refused' leaves the record as it is: it takes no remedy "
                "or correction.",
                "code": "missing_fields",
                "fields": ["correction"],
            },
            id="refusal-with-values",
        ),
        pytest.param(
            "refuse",
            {"remedy": "delete"},
            {
                "detail": "A decision 'refused' leaves the record as it is: it takes no remedy "
                "or correction.",
                "code": "missing_fields",
                "fields": ["remedy"],
            },
            id="refusal-with-a-remedy",
        ),
        pytest.param(
            "grant",
            {"outcome": "granted", "remedy": "end_publication"},
            {
                "detail": "'grant' can decide one of these remedies: correct, delete.",
                "code": "missing_fields",
                "fields": ["remedy"],
                "allowed": ["correct", "delete"],
            },
            id="remedy-the-workflow-cannot-execute",
        ),
        pytest.param(
            "grant",
            {"outcome": "granted", "remedy": "delete", "correction": {"title": "已撤销的处罚"}},
            {
                "detail": "Decided values go with the remedy 'correct'.",
                "code": "missing_fields",
                "fields": ["correction", "remedy"],
            },
            id="deletion-with-values",
        ),
        pytest.param(
            "grant",
            {"outcome": "granted", "correction": {"title": '=HYPERLINK("x") 宗教'}},
            {
                "detail": "The correction cannot be applied: title mentions prohibited personal "
                "data (宗教).",
                "code": "content_invalid",
                "errors": {"title": "mentions prohibited personal data (宗教)"},
            },
            id="decided-text-with-a-prohibited-term",
        ),
        pytest.param(
            "grant",
            {"outcome": "partly_granted", "correction": {"decision_date": "2099-01-01"}},
            {
                "detail": "The correction cannot be applied: decision_date is in the future.",
                "code": "content_invalid",
                "errors": {"decision_date": "is in the future"},
            },
            id="decided-date-in-the-future",
        ),
        pytest.param(
            "grant",
            {"outcome": "granted", "correction": {"title": "已撤销", "status": "deleted"}},
            {
                "detail": "The correction cannot be applied: correction cannot change status; it "
                "may change: conduct_ended_on, decision_date, decision_document_number, facts, "
                "title.",
                "code": "content_invalid",
                "errors": {
                    "correction": "cannot change status; it may change: conduct_ended_on, "
                    "decision_date, decision_document_number, facts, title"
                },
            },
            id="decided-field-that-cannot-be-corrected",
        ),
    ],
)
def test_a_decision_the_rules_refuse_is_400_and_changes_nothing(
    world: World, name: str, data: dict[str, Any], answer: dict[str, Any]
):
    case = reviewed(world, world.sh_record)
    before = case_snapshot(case)

    response = transition(world.caseworker, case, name, reasons=REASONS, **data)

    assert response.status_code == 400
    assert response.json() == answer
    assert case_snapshot(case) == before
    assert record_now(world.sh_record).version == world.sh_record.version
    assert not Decision.objects.filter(case=case).exists()


def test_a_decided_conduct_end_that_would_end_retention_before_the_decision_is_400(world: World):
    # Shanghai counts the 5-year retention from the end of the conduct: ending it in 2000 would
    # end the retention in 2005, before the decision of 2024-01-10, which no record may hold
    # (an import refuses a row whose retention has ended).
    case = reviewed(world, world.sh_record)
    before = case_snapshot(case)

    response = transition(
        world.caseworker,
        case,
        "grant",
        outcome="granted",
        reasons=REASONS,
        correction={"conduct_ended_on": "2000-01-01"},
    )

    assert response.status_code == 400
    assert response.json()["code"] == "content_invalid"
    assert response.json()["errors"] == {"conduct_ended_on": RETENTION_ENDED_2005}
    assert case_snapshot(case) == before
    assert not Decision.objects.filter(case=case).exists()


RETENTION_ENDED_2005 = (
    "would end the retention period on 2005-01-01: the record could no longer be kept, so it "
    "is deleted, not corrected"
)


def test_a_proposed_conduct_end_that_would_end_retention_is_refused_at_filing(world: World):
    before = nothing_filed()

    response = api(world.citizen).post(
        CASES, filing(world.sh_record, correction={"conduct_ended_on": "2000-01-01"}), format="json"
    )

    assert response.status_code == 400
    assert response.json()["errors"] == {"conduct_ended_on": RETENTION_ENDED_2005}
    assert nothing_filed() == before


# ---------------------------------------------------------------------------------------------
# The remedy the decision chose is the one executed


def test_a_grant_to_delete_runs_the_deletion_although_a_correction_was_asked_for(world: World):
    record = world.sh_record
    case = reviewed(world, record)
    assert case.requested_remedy == "correct"

    response = transition(
        world.caseworker,
        case,
        "grant",
        outcome="granted",
        remedy="delete",
        reasons="The penalty decision was revoked: the record has no basis.",
    )

    assert response.status_code == 200, response.json()
    assert (response.json()["state"], response.json()["decision"]["remedy"]) == (
        "closed",
        "delete",
    )
    deleted = record_now(record)
    assert (deleted.status, deleted.title, deleted.version, deleted.under_objection) == (
        CreditRecord.Status.DELETED,
        record.title,
        record.version,
        False,
    )
    decision = Decision.objects.get(case=case)
    assert (decision.remedy, decision.correction, decision.proposed) == (
        "delete",
        {},
        {"title": "已撤销的处罚"},
    )
    assert steps_taken(case) == ["mark", "start_review", "grant", "execute_deletion", "complete"]
    assert not AuditEvent.objects.filter(
        case_reference=case.reference, action="record.corrected"
    ).exists()


def test_a_grant_without_a_remedy_executes_the_one_asked_for(world: World):
    record = world.sh_record
    case = reviewed(world, record, requested_remedy="delete", correction={})

    response = transition(world.caseworker, case, "grant", outcome="granted", reasons=REASONS)

    assert response.status_code == 200, response.json()
    assert record_now(record).status == CreditRecord.Status.DELETED
    assert Decision.objects.get(case=case).remedy == "delete"
    assert steps_taken(case) == ["mark", "start_review", "grant", "execute_deletion", "complete"]


# ---------------------------------------------------------------------------------------------
# The statement of dispute


STATEMENT = "处罚决定已被撤销，中心仍不予更正；本人对此记录持有异议。"


def dispute_url(case: Case) -> str:
    return f"{CASES}{case.reference}/dispute-statement/"


@pytest.fixture
def refused_case(world: World) -> Case:
    """A Shanghai objection refused and closed: refuse, then notify_refusal."""
    case = reviewed(world, world.sh_record)
    refused = transition(world.caseworker, case, "refuse", reasons="The record is accurate.")
    assert refused.status_code == 200, refused.json()
    closed = transition(world.caseworker, case, "notify_refusal")
    assert closed.status_code == 200, closed.json()
    case = Case.objects.get(pk=case.pk)
    assert (case.state, case.is_open, case.outcome) == ("closed", False, "refused")
    return case


def stored_statements() -> dict[str, int]:
    return {
        "statements": DisputeStatement.objects.count(),
        "audit_events": AuditEvent.objects.count(),
    }


def test_the_applicant_adds_a_statement_of_dispute_after_a_refusal(
    world: World, refused_case: Case, client: Any
):
    response = api(world.citizen).post(
        dispute_url(refused_case), {"text": STATEMENT}, format="json"
    )

    assert response.status_code == 201
    statement = DisputeStatement.objects.get()
    assert response.json() == {
        "case": refused_case.reference,
        "text": STATEMENT,
        "created_at": response.json()["created_at"],
    }
    assert (statement.case, statement.record, statement.author, statement.text) == (
        refused_case,
        world.sh_record,
        world.citizen,
        STATEMENT,
    )
    event = AuditEvent.objects.filter(case_reference=refused_case.reference).last()
    assert (event.action, event.actor_id, event.payload) == (
        "record.dispute_added",
        world.citizen.pk,
        {"statement": statement.pk},
    )
    shown_statement = {"case": refused_case.reference, "text": STATEMENT}
    records = api(world.citizen).get("/api/v1/me/records/").json()["results"]
    listed = {row["id"]: row["dispute_statements"] for row in records}
    assert [
        {"case": s["case"], "text": s["text"]} for s in listed[str(world.sh_record.public_id)]
    ] == [shown_statement]
    assert listed[str(world.zj_record.public_id)] == []
    in_detail = detail(world.citizen, refused_case)["dispute_statement"]
    assert {"case": in_detail["case"], "text": in_detail["text"]} == shown_statement
    client.force_login(world.citizen)
    page = client.get(reverse("portal:record", args=[world.sh_record.public_id]))
    assert page.status_code == 200
    assert STATEMENT in page.content.decode()
    assert refused_case.reference in page.content.decode()


def test_a_second_statement_of_dispute_is_409(world: World, refused_case: Case):
    first = api(world.citizen).post(dispute_url(refused_case), {"text": STATEMENT}, format="json")
    assert first.status_code == 201
    before = stored_statements()

    response = api(world.citizen).post(
        dispute_url(refused_case), {"text": "再补充一句。"}, format="json"
    )

    assert response.status_code == 409
    assert response.json() == {
        "detail": "This case already has a statement of dispute.",
        "code": "case_conflict",
    }
    assert stored_statements() == before
    assert DisputeStatement.objects.get().text == STATEMENT


def test_a_caseworker_may_not_add_a_statement_of_dispute(world: World, refused_case: Case):
    before = stored_statements()

    response = api(world.caseworker).post(
        dispute_url(refused_case), {"text": STATEMENT}, format="json"
    )

    assert response.status_code == 403
    assert response.json() == {
        "detail": "Only the applicant may add a statement of dispute.",
        "code": "role_not_allowed",
    }
    assert stored_statements() == before


def test_another_citizen_adding_a_statement_of_dispute_gets_404(world: World, refused_case: Case):
    before = stored_statements()

    response = api(world.other_citizen).post(
        dispute_url(refused_case), {"text": STATEMENT}, format="json"
    )

    assert response.status_code == 404
    assert response.json() == {"detail": "Not found."}
    assert stored_statements() == before


@pytest.mark.parametrize("text", ["", "   \n "], ids=["empty", "blank"])
def test_an_empty_statement_of_dispute_is_400(world: World, refused_case: Case, text: str):
    before = stored_statements()

    response = api(world.citizen).post(dispute_url(refused_case), {"text": text}, format="json")

    assert response.status_code == 400
    assert response.json() == {"text": ["This field may not be blank."]}
    assert stored_statements() == before


def test_a_statement_of_dispute_on_a_granted_case_is_409(world: World):
    case = reviewed(world, world.sh_record)
    granted = transition(
        world.caseworker,
        case,
        "grant",
        outcome="granted",
        reasons=REASONS,
        correction={"title": "已撤销的处罚"},
    )
    assert granted.status_code == 200, granted.json()
    before = stored_statements()
    snapshot = case_snapshot(case)

    response = api(world.citizen).post(dispute_url(case), {"text": STATEMENT}, format="json")

    assert response.status_code == 409
    assert response.json() == {
        "detail": "A statement of dispute follows a refused, closed case.",
        "code": "transition_not_available",
    }
    assert stored_statements() == before
    assert case_snapshot(case) == snapshot
    assert detail(world.citizen, case)["dispute_statement"] is None


def test_a_statement_of_dispute_on_an_open_case_is_409(world: World):
    case = reviewed(world, world.sh_record)
    before = stored_statements()

    response = api(world.citizen).post(dispute_url(case), {"text": STATEMENT}, format="json")

    assert response.status_code == 409
    assert response.json()["code"] == "transition_not_available"
    assert stored_statements() == before


# ---------------------------------------------------------------------------------------------
# Bodies that cannot be parsed or stored


@pytest.mark.parametrize(
    "raw",
    [
        pytest.param("[" * 100_000 + "]" * 100_000, id="nested-lists"),
        pytest.param(
            '{"correction": {"title": ' + '{"a": ' * 100_000 + "1" + "}" * 100_001 + "}",
            id="nested-objects-in-the-correction",
        ),
    ],
)
def test_a_body_nested_too_deep_is_400_and_files_nothing(world: World, raw: str):
    before = nothing_filed()

    response = api(world.citizen).post(CASES, data=raw, content_type="application/json")

    assert response.status_code == 400
    assert response.json() == {"detail": "JSON parse error - the document is nested too deeply."}
    assert nothing_filed() == before


@pytest.mark.parametrize(
    ("field", "value", "reason"),
    [
        ("title", "已撤销\\u0000的处罚", "contains a NUL character"),
        ("facts", "经查\\u0000", "contains a NUL character"),
        ("title", "已撤销\\ud800的处罚", "contains the control or invalid character U+D800"),
        (
            "decision_document_number",
            "号\\u001f号",
            "contains the control or invalid character U+001F",
        ),
    ],
)
def test_a_correction_with_a_forbidden_character_is_400_naming_the_field(
    world: World, field: str, value: str, reason: str
):
    before = nothing_filed()
    body = json.dumps(filing(world.sh_record, correction={}))
    raw = body.replace('"correction": {}', f'"correction": {{"{field}": "{value}"}}')
    assert f'"{field}": "{value}"' in raw

    response = api(world.citizen).post(CASES, data=raw, content_type="application/json")

    assert response.status_code == 400
    assert response.json() == {
        "detail": f"The correction cannot be applied: {field} {reason}.",
        "code": "content_invalid",
        "errors": {field: reason},
    }
    assert nothing_filed() == before
    assert record_now(world.sh_record).under_objection is False


def test_a_correction_keeps_an_ended_publication_ended(world: World):
    record = world.sh_record
    CreditRecord.objects.filter(pk=record.pk).update(status=CreditRecord.Status.PUBLICATION_ENDED)
    case = reviewed(world, record)

    response = transition(
        world.caseworker,
        case,
        "grant",
        outcome="granted",
        reasons=REASONS,
        correction={"title": "更正后的标题"},
    )

    assert response.status_code == 200, response.json()
    corrected = record_now(record)
    assert (corrected.title, corrected.status) == ("更正后的标题", "publication_ended")
