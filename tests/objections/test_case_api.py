"""The REST API of cases (/api/v1/cases/): filing, scoped reads, transitions and approvals.

Routing runs in a Celery task after commit; here it is called directly (`case_route`) once the
filing is in, and Celery itself never runs. Every object outside the caller's scope is a 404.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date, timedelta
from typing import Any

import pytest
from django.core.cache import cache
from django.db import connection, reset_queries, transaction
from django.utils import timezone
from django.utils.dateparse import parse_datetime
from rest_framework.test import APIClient
from time_machine import TimeMachineFixture

from accounts.models import User
from audit.models import AuditEvent
from objections.calendar import add
from objections.models import Case, Clock, Notification, PendingApproval
from objections.services import (
    TransitionInput,
    case_file,
    case_route,
    case_transition,
    workflow_definitions_sync,
)
from objections.services.calendars import working_calendar
from records import demo
from records.dates import add_months
from records.models import Agency, CatalogueEntry, CreditRecord, CreditRecordVersion
from records.services import subject_access_grant
from tests.clock import test_start as suite_start
from tests.conftest import FLUSHABLE_APPS
from tests.factories import (
    CatalogueEntryFactory,
    CreditRecordFactory,
    SubjectFactory,
    UserFactory,
    registry_record,
)
from tests.objections.conftest import World, case_snapshot

CASES = "/api/v1/cases/"


@pytest.fixture(autouse=True)
def _fresh_throttle(db: None) -> None:
    # The filing throttle counts per user id in the cache, which outlives each test's rollback.
    cache.clear()


def api(user: User | None = None) -> APIClient:
    client = APIClient(headers={"accept-language": "en"})
    if user is not None:
        client.force_authenticate(user)
    return client


def filing(record: CreditRecord, /, **changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "record": str(record.public_id),
        "kind": "objection",
        "grounds": "inaccurate",
        "statement": "The penalty was revoked on reconsideration.",
        "requested_remedy": "correct",
        "fields_objected": ["title"],
        "correction": {"title": "已撤销的处罚"},
    }
    body.update(changes)
    return body


def file_case(user: User, record: CreditRecord, **changes: Any) -> Case:
    """File through the API as `user`, then route as the worker would after commit."""
    response = api(user).post(CASES, filing(record, **changes), format="json")
    assert response.status_code == 201, response.json()
    case = Case.objects.get(reference=response.json()["reference"])
    return case_route(case_id=case.pk)


def transition(user: User, case: Case, name: str, **data: Any) -> Any:
    return api(user).post(
        f"{CASES}{case.reference}/transitions/", {"transition": name, **data}, format="json"
    )


def nothing_filed() -> dict[str, int]:
    return {"cases": Case.objects.count(), "audit_events": AuditEvent.objects.count()}


def zhejiang_record(world: World, number: str) -> CreditRecord:
    return registry_record("zhejiang-market", world.subject, number)


def shanghai_record(world: World, number: str, **fields: Any) -> CreditRecord:
    return registry_record("shanghai-market", world.subject, number, **fields)


# ---------------------------------------------------------------------------------------------
# Filing


def test_citizen_files_an_objection_to_their_own_record(
    world: World, django_capture_on_commit_callbacks, time_machine: TimeMachineFixture
):
    time_machine.move_to(suite_start(), tick=False)
    year = timezone.localdate().year
    client = api(world.citizen)

    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = client.post(CASES, filing(world.sh_record), format="json")

    assert response.status_code == 201
    body = response.json()
    case = Case.objects.get()
    assert body == {
        "reference": f"SH-{year}-000001",
        "kind": "objection",
        "state": "filed",
        "is_open": True,
        "record": str(world.sh_record.public_id),
        "record_title": world.sh_record.title,
        "agency": "shanghai-market",
        "responsible_agency": None,
        "next_due_on": None,
        "filed_at": body["filed_at"],
        "lock_version": 1,
        "grounds": "inaccurate",
        "statement": "The penalty was revoked on reconsideration.",
        "requested_remedy": "correct",
        "fields_objected": ["title"],
        "outcome": "",
        "reasons": "",
        "subject": {
            "id": str(world.subject.public_id),
            "kind": world.subject.kind,
            "name": world.subject.name,
            "identifier": world.subject.identifier_masked,
        },
        "record_content": body["record_content"],
        "proposed_changes": [
            {
                "field": "title",
                "current": world.sh_record.title,
                "proposed": "已撤销的处罚",
                "decided": None,
            }
        ],
        "decision": None,
        "dispute_statement": None,
        "import_conflicts": [],
        "workflow": None,
        "documents": [],
        "appeal": None,
        "available_transitions": [],
        "clocks": [],
        "pending_approval": None,
    }
    assert (body["record_content"]["facts"], body["record_content"]["version"]) == (
        world.sh_record.facts,
        world.sh_record.version,
    )
    assert parse_datetime(body["filed_at"]) == case.filed_at
    assert (case.reference, case.subject, case.filed_by, case.correction) == (
        f"SH-{year}-000001",
        world.subject,
        world.citizen,
        {"title": "已撤销的处罚"},
    )
    events = AuditEvent.objects.filter(case_reference=case.reference)
    assert [(e.action, e.actor_id) for e in events] == [("case.filed", world.citizen.pk)]
    assert events.get().payload == {
        "kind": "objection",
        "record": world.sh_record.pk,
        "grounds": "inaccurate",
        "remedy": "correct",
    }
    routing = [c for c in callbacks if c.func.__self__.name == "objections.tasks.case_route_task"]
    assert [(c.func.__name__, c.keywords) for c in routing] == [("delay", {"case_id": case.pk})]


def test_filing_queues_routing_and_the_filing_notice_and_nothing_else(
    world: World, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = api(world.citizen).post(CASES, filing(world.sh_record), format="json")

    case_id = Case.objects.get(reference=response.json()["reference"]).pk
    [notice] = Notification.objects.filter(case_id=case_id)
    assert (notice.event, notice.recipient, notice.status) == ("filed", world.citizen, "pending")
    assert [(c.func.__self__.name, c.keywords) for c in callbacks] == [
        ("objections.tasks.case_route_task", {"case_id": case_id}),
        ("objections.tasks.notifications_send_task", {"notification_ids": [notice.pk]}),
    ]


def test_filing_about_another_subjects_record_is_404_and_files_nothing(world: World):
    before = nothing_filed()

    response = api(world.citizen).post(CASES, filing(world.other_record), format="json")

    assert response.status_code == 404
    assert response.json() == {"detail": "Not found."}
    assert nothing_filed() == before


def test_filing_with_a_malformed_record_id_is_400_and_files_nothing(world: World):
    before = nothing_filed()

    response = api(world.citizen).post(
        CASES, filing(world.sh_record, record="not-a-uuid"), format="json"
    )

    assert response.status_code == 400
    assert response.json() == {"record": ["Must be a valid UUID."]}
    assert nothing_filed() == before


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("grounds", "i_dont_like_it"),
        ("kind", "review"),
        ("kind", "complaint"),
        ("requested_remedy", "compensation"),
    ],
)
def test_filing_with_an_invalid_choice_is_400_naming_the_field(
    world: World, field: str, value: str
):
    before = nothing_filed()

    response = api(world.citizen).post(
        CASES, filing(world.sh_record, **{field: value}), format="json"
    )

    assert response.status_code == 400
    assert response.json() == {field: [f'"{value}" is not a valid choice.']}
    assert nothing_filed() == before
    assert CreditRecord.objects.get(pk=world.sh_record.pk).under_objection is False


def test_filing_a_correction_of_a_field_that_cannot_be_corrected_is_refused(world: World):
    before = nothing_filed()

    response = api(world.citizen).post(
        CASES, filing(world.sh_record, correction={"status": "deleted"}), format="json"
    )

    assert response.status_code == 400
    assert response.json() == {
        "detail": "The correction cannot be applied: correction cannot change status; it may "
        "change: conduct_ended_on, decision_date, decision_document_number, facts, title.",
        "code": "content_invalid",
        "errors": {
            "correction": "cannot change status; it may change: conduct_ended_on, "
            "decision_date, decision_document_number, facts, title"
        },
    }
    assert nothing_filed() == before


def test_a_second_open_objection_on_the_same_record_is_409(world: World):
    first = file_case(world.citizen, world.sh_record)
    before = nothing_filed()
    first_before = case_snapshot(first)

    response = api(world.citizen).post(CASES, filing(world.sh_record), format="json")

    assert response.status_code == 409
    assert response.json() == {
        "detail": "An open objection case about this record already exists.",
        "code": "case_conflict",
    }
    assert nothing_filed() == before
    assert case_snapshot(first) == first_before


def test_repair_of_a_record_whose_category_is_not_repairable_is_refused(world: World):
    category = CatalogueEntryFactory(
        code="tests-unrepairable",
        severity=CatalogueEntry.Severity.SERIOUS,
        repairable=False,
        publication_min_months=3,
        publication_max_months=36,
    )
    record = shanghai_record(
        world, "SH-UNREPAIRABLE", category=category, decision_date=date(2020, 1, 10)
    )
    before = nothing_filed()

    response = api(world.citizen).post(
        CASES,
        filing(
            record,
            kind="repair",
            grounds="obligation_fulfilled",
            requested_remedy="end_publication",
            correction={},
        ),
        format="json",
    )

    assert response.status_code == 400
    assert response.json() == {
        "detail": "Records of this category cannot be repaired.",
        "code": "filing_refused",
    }
    assert nothing_filed() == before


def test_repair_before_the_minimum_publication_period_is_refused(
    world: World, time_machine: TimeMachineFixture
):
    time_machine.move_to(suite_start(), tick=False)
    today = timezone.localdate()
    category = CatalogueEntryFactory(
        code="tests-repairable-6-months",
        severity=CatalogueEntry.Severity.GENERAL,
        repairable=True,
        publication_min_months=6,
        publication_max_months=36,
    )
    record = shanghai_record(
        world,
        "SH-TOO-EARLY",
        category=category,
        decision_date=today,
        conduct_ended_on=today,
        publication_start=today,
        publication_end=today + timedelta(days=730),
        retention_end=today + timedelta(days=1826),
    )
    before = nothing_filed()

    response = api(world.citizen).post(
        CASES,
        filing(
            record,
            kind="repair",
            grounds="obligation_fulfilled",
            requested_remedy="end_publication",
            correction={},
        ),
        format="json",
    )

    # the catalogue's 6 months beat national-repair.yaml's 3 months for a general record
    earliest = add_months(today, 6).isoformat()
    assert response.status_code == 400
    assert response.json() == {
        "detail": (
            f"Repair may be applied for from {earliest}: the minimum period for a general record "
            "is 6 months."
        ),
        "code": "filing_refused",
        "earliest": earliest,
    }
    assert nothing_filed() == before


# ---------------------------------------------------------------------------------------------
# Listing: each role sees exactly its own rows


@pytest.fixture
def three_cases(world: World) -> dict[str, str]:
    """A Shanghai and a Zhejiang case of `citizen`, a Shanghai case of `other_citizen`, routed."""
    return {
        "sh": file_case(world.citizen, world.sh_record).reference,
        "zj": file_case(world.citizen, world.zj_record).reference,
        "other": file_case(world.other_citizen, world.other_record).reference,
    }


def listed(user: User | None) -> Any:
    return api(user).get(CASES)


def references(response: Any) -> set[str]:
    assert response.status_code == 200
    assert response.json()["next"] is None
    return {row["reference"] for row in response.json()["results"]}


def test_citizen_lists_only_their_own_cases(world: World, three_cases: dict[str, str]):
    assert references(listed(world.citizen)) == {three_cases["sh"], three_cases["zj"]}


def test_other_citizen_lists_none_of_the_citizens_cases(world: World, three_cases: dict[str, str]):
    assert references(listed(world.other_citizen)) == {three_cases["other"]}


def test_shanghai_caseworker_lists_shanghai_cases_only(world: World, three_cases: dict[str, str]):
    assert references(listed(world.caseworker)) == {three_cases["sh"], three_cases["other"]}


def test_zhejiang_caseworker_lists_zhejiang_cases_only(world: World, three_cases: dict[str, str]):
    assert references(listed(world.zj_caseworker)) == {three_cases["zj"]}


def test_an_auditor_lists_only_the_cases_granted_to_them(world: World, three_cases: dict[str, str]):
    from datetime import timedelta

    from django.utils import timezone

    from objections.services.grants import case_access_grant

    assert references(listed(world.auditor)) == set()
    granted = Case.objects.get(reference=three_cases["zj"])
    case_access_grant(
        case=granted,
        user=world.auditor,
        actor=world.zj_supervisor,
        reason="年度审计",
        expires_at=timezone.now() + timedelta(days=1),
    )
    assert references(listed(world.auditor)) == {three_cases["zj"]}


def test_anonymous_listing_is_401(world: World, three_cases: dict[str, str]):
    response = listed(None)

    assert response.status_code == 401
    assert response.json() == {
        "detail": "Authentication is required.",
        "code": "not_authenticated",
    }


def test_case_list_row_shows_the_routed_case(world: World):
    case = file_case(world.citizen, world.sh_record)

    rows = listed(world.caseworker).json()["results"]

    assert rows == [
        {
            "reference": case.reference,
            "kind": "objection",
            "state": "marked",
            "is_open": True,
            "record": str(world.sh_record.public_id),
            "record_title": world.sh_record.title,
            "agency": "shanghai-market",
            "responsible_agency": "shanghai-credit-centre",
            "next_due_on": case.next_due_on.isoformat(),
            "filed_at": rows[0]["filed_at"],
            "lock_version": case.lock_version,
        }
    ]


@contextmanager
def queries_counted() -> Iterator[list[str]]:
    """The SQL run inside the block. (CaptureQueriesContext miscounts across a request: Django
    empties the query log when a request starts.)"""
    statements: list[str] = []

    def record(execute: Any, sql: str, params: Any, many: bool, context: Any) -> Any:
        statements.append(sql)
        return execute(sql, params, many, context)

    with connection.execute_wrapper(record):
        yield statements


def test_case_list_issues_the_same_queries_for_one_case_and_for_five(
    world: World, django_assert_num_queries
):
    file_case(world.citizen, world.sh_record)
    # A fresh user object per request, as a session would load it (roles are cached on it).
    caseworker = User.objects.get(pk=world.caseworker.pk)
    with queries_counted() as one:
        assert len(api(caseworker).get(CASES).json()["results"]) == 1
    for number in range(4):
        file_case(world.citizen, shanghai_record(world, f"SH-MORE-{number}"))
    caseworker = User.objects.get(pk=world.caseworker.pk)
    reset_queries()

    with django_assert_num_queries(len(one)):
        assert len(api(caseworker).get(CASES).json()["results"]) == 5

    # the caseworker's groups, their agency's kind and jurisdiction, then the scoped list
    assert len(one) == 3


# ---------------------------------------------------------------------------------------------
# Reading one case


def test_citizen_reads_a_routed_shanghai_objection(world: World):
    case = file_case(world.citizen, world.sh_record)

    response = api(world.citizen).get(f"{CASES}{case.reference}/")

    assert response.status_code == 200
    body = response.json()
    assert (body["state"], body["is_open"], body["responsible_agency"]) == (
        "marked",
        True,
        "shanghai-credit-centre",
    )
    assert body["workflow"] == {
        "key": "shanghai-objection",
        "version": case.workflow.version,
        "parameters_verified": True,
    }
    assert body["available_transitions"] == [
        {
            "name": "withdraw",
            "to": "withdrawn",
            "requires": [],
            "documents": [],
            "second_person": False,
        }
    ]
    assert body["pending_approval"] is None


def test_clocks_of_a_marked_shanghai_case_show_due_date_unit_trace_and_legal_source(
    world: World,
):
    case = file_case(world.citizen, world.sh_record)
    clocks = {clock.timer: clock for clock in Clock.objects.filter(case=case)}
    citation = (
        "上海市社会信用条例（2017）第三十六条第二款 / "
        "Shanghai Social Credit Regulations 2017, Art 36 ¶2"
    )

    body = api(world.citizen).get(f"{CASES}{case.reference}/").json()

    assert [(c["timer"], c["state"], c["status"], c["amount"]) for c in body["clocks"]] == [
        ("marking_deadline", "received", "stopped", 1),
        ("forward_deadline", "marked", "running", 2),
        ("centre_decision_deadline", "marked", "running", 5),
    ]
    for clock in body["clocks"]:
        assert clock["unit"] == "working"
        assert clock["due_on"] == clocks[clock["timer"]].due_on.isoformat()
        assert f"due: {clock['due_on']}" in clock["trace"]
        assert clock["trace"] == clocks[clock["timer"]].trace
        assert clock["legal_source"] == citation
        assert clock["source_verified"] is True
        assert clock["extended_by"] == 0
        assert clock["escalated"] is False
    assert body["next_due_on"] == clocks["forward_deadline"].due_on.isoformat()


def test_shanghai_caseworker_may_take_what_the_definition_allows_from_marked(world: World):
    case = file_case(world.citizen, world.sh_record)

    body = api(world.caseworker).get(f"{CASES}{case.reference}/").json()

    # shanghai-objection.yaml, from `marked` for `caseworker`: start_review and forward
    assert body["available_transitions"] == [
        {
            "name": "start_review",
            "to": "under_review",
            "requires": [],
            "documents": [],
            "second_person": False,
        },
        {
            "name": "forward",
            "to": "provider_review",
            "requires": [],
            "documents": [],
            "second_person": False,
        },
    ]


@pytest.mark.parametrize("outsider", ["other_citizen", "zj_caseworker", "zj_supervisor"])
def test_a_case_outside_the_callers_scope_is_404(world: World, outsider: str):
    case = file_case(world.citizen, world.sh_record)

    response = api(getattr(world, outsider)).get(f"{CASES}{case.reference}/")

    assert response.status_code == 404
    assert response.json() == {"detail": "Not found."}


def test_an_unknown_reference_is_404(world: World):
    response = api(world.auditor).get(f"{CASES}SH-1999-000001/")

    assert response.status_code == 404
    assert response.json() == {"detail": "Not found."}


# ---------------------------------------------------------------------------------------------
# Transitions (Shanghai objection)


@pytest.fixture
def marked_case(world: World) -> Case:
    return file_case(world.citizen, world.sh_record)


@pytest.fixture
def reviewed_case(world: World, marked_case: Case) -> Case:
    response = transition(world.caseworker, marked_case, "start_review")
    assert response.status_code == 200, response.json()
    return Case.objects.get(pk=marked_case.pk)


def test_caseworker_starts_the_review(world: World, marked_case: Case):
    events = AuditEvent.objects.count()

    response = transition(
        world.caseworker, marked_case, "start_review", lock_version=marked_case.lock_version
    )

    assert response.status_code == 200
    body = response.json()
    assert (body["state"], body["is_open"], body["lock_version"]) == (
        "under_review",
        True,
        marked_case.lock_version + 1,
    )
    assert [t["name"] for t in body["available_transitions"]] == ["forward", "grant", "refuse"]
    event = AuditEvent.objects.last()
    assert AuditEvent.objects.count() == events + 1
    assert (event.action, event.actor_id, event.actor_role, event.case_reference) == (
        "case.transitioned",
        world.caseworker.pk,
        "caseworker",
        marked_case.reference,
    )
    assert (event.payload["transition"], event.payload["from"], event.payload["to"]) == (
        "start_review",
        "marked",
        "under_review",
    )


def test_grant_without_reasons_is_400_and_changes_nothing(world: World, reviewed_case: Case):
    before = case_snapshot(reviewed_case)

    response = transition(world.caseworker, reviewed_case, "grant", outcome="granted")

    assert response.status_code == 400
    assert response.json() == {
        "detail": "'grant' needs: reasons.",
        "code": "missing_fields",
        "fields": ["reasons"],
    }
    assert case_snapshot(reviewed_case) == before


def test_grant_with_reasons_executes_the_correction_and_closes_the_case(
    world: World, reviewed_case: Case
):
    old_title = world.sh_record.title

    response = transition(
        world.caseworker,
        reviewed_case,
        "grant",
        outcome="granted",
        reasons="The penalty was revoked on 2024-03-01.",
        correction={"title": "已撤销的处罚"},
    )

    assert response.status_code == 200
    body = response.json()
    assert (body["state"], body["is_open"], body["outcome"], body["reasons"]) == (
        "closed",
        False,
        "granted",
        "The penalty was revoked on 2024-03-01.",
    )
    assert body["available_transitions"] == []
    # the forwarding limit no longer applies once the centre decides itself
    assert {(c["timer"], c["status"]) for c in body["clocks"] if c["status"] != "stopped"} == {
        ("forward_deadline", "cancelled")
    }
    case = Case.objects.get(pk=reviewed_case.pk)
    assert case.closed_at is not None
    record = CreditRecord.objects.get(pk=world.sh_record.pk)
    assert (record.title, record.under_objection, record.status, record.version) == (
        "已撤销的处罚",
        False,
        CreditRecord.Status.CORRECTED,
        world.sh_record.version + 1,
    )
    kept = CreditRecordVersion.objects.get(record=record)
    assert (kept.version, kept.title) == (world.sh_record.version, old_title)
    steps = [
        (e.payload["transition"], e.actor_role)
        for e in AuditEvent.objects.filter(
            case_reference=case.reference, action="case.transitioned"
        )
    ]
    assert steps == [
        ("mark", "system"),
        ("start_review", "caseworker"),
        ("grant", "caseworker"),
        ("execute_correction", "system"),
        ("complete", "system"),
    ]


@pytest.mark.parametrize(("name", "outcome"), [("grant", "refused"), ("refuse", "granted")])
def test_a_decision_whose_outcome_contradicts_it_is_400(
    world: World, reviewed_case: Case, name: str, outcome: str
):
    before = case_snapshot(reviewed_case)

    response = transition(
        world.caseworker, reviewed_case, name, outcome=outcome, reasons="Checked the file."
    )

    assert response.status_code == 400
    assert case_snapshot(reviewed_case) == before


def test_citizen_may_not_grant_403(world: World, reviewed_case: Case):
    before = case_snapshot(reviewed_case)

    response = transition(
        world.citizen, reviewed_case, "grant", outcome="granted", reasons="I say so."
    )

    assert response.status_code == 403
    assert response.json() == {
        "detail": "Your role on this case may not take 'grant'.",
        "code": "role_not_allowed",
    }
    assert case_snapshot(reviewed_case) == before


def test_a_transition_not_open_in_the_current_state_is_409(world: World, marked_case: Case):
    before = case_snapshot(marked_case)

    response = transition(
        world.caseworker, marked_case, "grant", outcome="granted", reasons="Obviously wrong."
    )

    assert response.status_code == 409
    assert response.json() == {
        "detail": "'grant' cannot be taken while the case is 'marked'.",
        "code": "transition_not_available",
        "state": "marked",
        "available": ["forward", "start_review", "withdraw"],
    }
    assert case_snapshot(marked_case) == before


def test_a_stale_lock_version_is_409_and_changes_nothing(world: World, marked_case: Case):
    before = case_snapshot(marked_case)

    response = transition(
        world.caseworker, marked_case, "start_review", lock_version=marked_case.lock_version - 1
    )

    assert response.status_code == 409
    assert response.json() == {
        "detail": "The case changed since you opened it; reload it and try again.",
        "code": "case_conflict",
        "lock_version": marked_case.lock_version,
    }
    assert case_snapshot(marked_case) == before


def test_an_unknown_transition_is_409(world: World, marked_case: Case):
    before = case_snapshot(marked_case)

    response = transition(world.caseworker, marked_case, "approve_everything")

    assert response.status_code == 409
    assert response.json() == {
        "detail": "This workflow has no transition 'approve_everything'.",
        "code": "transition_not_available",
    }
    assert case_snapshot(marked_case) == before


def test_another_citizen_posting_a_transition_gets_404(world: World, marked_case: Case):
    before = case_snapshot(marked_case)

    response = transition(world.other_citizen, marked_case, "withdraw")

    assert response.status_code == 404
    assert response.json() == {"detail": "Not found."}
    assert case_snapshot(marked_case) == before


def test_citizen_withdraws_a_marked_case(world: World, marked_case: Case):
    assert CreditRecord.objects.get(pk=world.sh_record.pk).under_objection is True

    response = transition(world.citizen, marked_case, "withdraw")

    assert response.status_code == 200
    body = response.json()
    assert (body["state"], body["is_open"], body["available_transitions"]) == (
        "withdrawn",
        False,
        [],
    )
    assert CreditRecord.objects.get(pk=world.sh_record.pk).under_objection is False
    assert Case.objects.get(pk=marked_case.pk).closed_at is not None


# ---------------------------------------------------------------------------------------------
# Zhejiang: the extension needs a second person, within 20 WD in all


@pytest.fixture
def zj_case(world: World) -> Case:
    """Routing accepts a Zhejiang objection at once (the `accept` step is the system's)."""
    return file_case(world.citizen, world.zj_record)


def approvals_url(case: Case, approval_id: int) -> str:
    return f"{CASES}{case.reference}/approvals/{approval_id}/"


def handling_clock(case: Case) -> Clock:
    return Clock.objects.get(case=case, timer="handling_deadline")


def request_extension(world: World, case: Case, days: int) -> Any:
    return transition(
        world.zj_caseworker,
        case,
        "extend",
        extension_reason="Complex case: three agencies hold parts of the file.",
        extension_days=days,
    )


def test_routing_accepts_a_zhejiang_objection_and_marks_the_record(world: World, zj_case: Case):
    body = api(world.zj_caseworker).get(f"{CASES}{zj_case.reference}/").json()

    assert (body["state"], body["responsible_agency"], body["workflow"]["key"]) == (
        "under_review",
        "zhejiang-credit-centre",
        "zhejiang-objection",
    )
    assert [t["name"] for t in body["available_transitions"]] == ["extend", "grant", "refuse"]
    assert body["available_transitions"][0] == {
        "name": "extend",
        "to": "under_review",
        "requires": ["extension_reason"],
        "documents": [],
        "second_person": True,
    }
    assert [(c["timer"], c["status"], c["amount"]) for c in body["clocks"]] == [
        ("acceptance_reminder", "stopped", 1),
        ("handling_deadline", "running", 5),
    ]
    assert CreditRecord.objects.get(pk=world.zj_record.pk).under_objection is True


def test_an_extension_request_waits_for_a_second_person(world: World, zj_case: Case):
    due_on = handling_clock(zj_case).due_on

    response = request_extension(world, zj_case, 5)

    assert response.status_code == 200
    body = response.json()
    approval = PendingApproval.objects.get(case=zj_case)
    assert body["pending_approval"] == {"id": approval.pk, "transition": "extend"}
    assert (body["state"], body["lock_version"]) == ("under_review", zj_case.lock_version + 1)
    assert (approval.requested_by, approval.approved, approval.from_state) == (
        world.zj_caseworker,
        None,
        "under_review",
    )
    assert (handling_clock(zj_case).due_on, handling_clock(zj_case).extended_by) == (due_on, 0)
    event = AuditEvent.objects.filter(case_reference=zj_case.reference).last()
    assert (event.action, event.payload) == (
        "case.approval_requested",
        {"transition": "extend", "approval": approval.pk},
    )


def test_the_requester_may_not_approve_their_own_extension(world: World, zj_case: Case):
    approval_id = request_extension(world, zj_case, 5).json()["pending_approval"]["id"]
    before = case_snapshot(zj_case)

    response = api(world.zj_caseworker).post(
        approvals_url(zj_case, approval_id), {"approve": True}, format="json"
    )

    assert response.status_code == 403
    assert response.json() == {
        "detail": "The person who asked for a step cannot approve it.",
        "code": "role_not_allowed",
    }
    assert case_snapshot(zj_case) == before


def test_the_credit_centres_supervisor_may_not_approve_a_zhejiang_extension(
    world: World, zj_case: Case
):
    """Regulations Art 31 ¶1: the DRC's responsible person approves, not the centre's."""
    approval_id = request_extension(world, zj_case, 5).json()["pending_approval"]["id"]
    before = case_snapshot(zj_case)

    response = api(world.zj_supervisor).post(
        approvals_url(zj_case, approval_id), {"approve": True}, format="json"
    )

    assert response.status_code == 403
    assert response.json() == {
        "detail": "Your role on this case may not approve this step.",
        "code": "role_not_allowed",
    }
    assert case_snapshot(zj_case) == before


def test_the_drc_head_approves_the_extension_and_the_deadline_moves(world: World, zj_case: Case):
    approval_id = request_extension(world, zj_case, 5).json()["pending_approval"]["id"]
    due_on = handling_clock(zj_case).due_on
    expected = add(working_calendar(), start=due_on, amount=5, unit="working").due

    response = api(world.zj_drc_supervisor).post(
        approvals_url(zj_case, approval_id), {"approve": True}, format="json"
    )

    assert response.status_code == 200
    body = response.json()
    assert (body["state"], body["pending_approval"]) == ("under_review", None)
    clock = next(c for c in body["clocks"] if c["timer"] == "handling_deadline")
    assert (clock["due_on"], clock["extended_by"], clock["status"]) == (
        expected.isoformat(),
        5,
        "running",
    )
    assert expected > due_on
    assert "extended by 5 working days: Complex case" in clock["trace"]
    assert body["next_due_on"] == expected.isoformat()
    approval = PendingApproval.objects.get(pk=approval_id)
    assert (approval.approved, approval.decided_by) == (True, world.zj_drc_supervisor)
    event = AuditEvent.objects.filter(case_reference=zj_case.reference).last()
    assert (event.action, event.actor_id, event.payload["approved_by"]) == (
        "case.transitioned",
        world.zj_caseworker.pk,
        world.zj_drc_supervisor.pk,
    )


def test_an_extension_beyond_20_working_days_in_all_is_refused(world: World, zj_case: Case):
    drc_head = api(world.zj_drc_supervisor)
    first = request_extension(world, zj_case, 15).json()["pending_approval"]["id"]
    approved = drc_head.post(approvals_url(zj_case, first), {"approve": True}, format="json")
    assert approved.status_code == 200
    before = case_snapshot(zj_case)

    response = request_extension(world, zj_case, 1)

    assert response.status_code == 400
    assert response.json() == {
        "detail": (
            "The extension would bring handling_deadline to 21 working days; "
            "the rules allow at most 20."
        ),
        "code": "extension_refused",
        "cap": 20,
    }
    assert case_snapshot(zj_case) == before
    assert handling_clock(zj_case).extended_by == 15


@pytest.mark.parametrize("days", [16, 0])
def test_an_extension_request_that_can_never_be_approved_is_refused_at_once(
    world: World, zj_case: Case, days: int
):
    before = case_snapshot(zj_case)

    response = request_extension(world, zj_case, days)

    assert response.status_code == 400
    assert response.json()["code"] == "extension_refused"
    assert case_snapshot(zj_case) == before


def test_the_drc_head_rejects_the_extension_and_the_deadline_stays(world: World, zj_case: Case):
    approval_id = request_extension(world, zj_case, 5).json()["pending_approval"]["id"]
    clock = handling_clock(zj_case)

    response = api(world.zj_drc_supervisor).post(
        approvals_url(zj_case, approval_id),
        {"approve": False, "reasons": "Not complex."},
        format="json",
    )

    assert response.status_code == 200
    body = response.json()
    assert (body["state"], body["pending_approval"]) == ("under_review", None)
    assert (handling_clock(zj_case).due_on, handling_clock(zj_case).extended_by) == (
        clock.due_on,
        0,
    )
    approval = PendingApproval.objects.get(pk=approval_id)
    assert (approval.approved, approval.decided_by) == (False, world.zj_drc_supervisor)
    event = AuditEvent.objects.filter(case_reference=zj_case.reference).last()
    assert (event.action, event.actor_id, event.payload) == (
        "case.approval_rejected",
        world.zj_drc_supervisor.pk,
        {"transition": "extend", "approval": approval_id, "reasons_given": True},
    )


def test_an_approval_of_another_case_is_404_under_this_case(world: World, zj_case: Case):
    approval_id = request_extension(world, zj_case, 5).json()["pending_approval"]["id"]
    other = file_case(world.citizen, zhejiang_record(world, "ZJ-OTHER"))
    before = case_snapshot(zj_case)

    response = api(world.zj_drc_supervisor).post(
        approvals_url(other, approval_id), {"approve": True}, format="json"
    )

    assert response.status_code == 404
    assert response.json() == {"detail": "No such approval."}
    assert case_snapshot(zj_case) == before


@pytest.mark.parametrize("outsider", ["supervisor", "other_citizen"])
def test_an_approval_outside_the_callers_scope_is_404(world: World, zj_case: Case, outsider: str):
    approval_id = request_extension(world, zj_case, 5).json()["pending_approval"]["id"]
    before = case_snapshot(zj_case)

    response = api(getattr(world, outsider)).post(
        approvals_url(zj_case, approval_id), {"approve": True}, format="json"
    )

    assert response.status_code == 404
    assert response.json() == {"detail": "Not found."}
    assert case_snapshot(zj_case) == before


@pytest.fixture
def committed_zj_extension_request() -> tuple[Case, int, User]:
    """A routed Zhejiang objection with a pending 5 WD extension, committed (the `world` fixture
    cannot serve a transactional test: it depends on `db`)."""
    demo.registry_load()
    workflow_definitions_sync()
    subject = SubjectFactory()
    citizen = UserFactory(role="citizen")
    subject_access_grant(subject=subject, user=citizen, actor=None)
    centre = Agency.objects.get(code="zhejiang-credit-centre")
    caseworker = UserFactory(role="caseworker", agency=centre)
    supervisor = UserFactory(role="supervisor", agency=Agency.objects.get(code="zhejiang-drc"))
    record = CreditRecordFactory(
        agency=Agency.objects.get(code="zhejiang-market"),
        subject=subject,
        category=CatalogueEntry.objects.get(jurisdiction__code="national", code="penalty-general"),
        decision_date=date(2024, 1, 10),
    )
    case = case_file(
        actor=citizen,
        record=record,
        kind="objection",
        grounds="inaccurate",
        statement="Wrong person.",
        requested_remedy="delete",
    )
    case = case_route(case_id=case.pk)
    case_transition(
        case_id=case.pk,
        transition="extend",
        actor=caseworker,
        data=TransitionInput(extension_reason="Complex case.", extension_days=5),
    )
    return case, PendingApproval.objects.get(case=case).pk, supervisor


def waiting_for_locks() -> int:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_stat_activity "
            "WHERE datname = current_database() AND wait_event_type = 'Lock'"
        )
        return int(cursor.fetchone()[0])


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True, available_apps=FLUSHABLE_APPS)
def test_two_concurrent_approvals_of_one_extension_apply_it_once(
    committed_zj_extension_request: tuple[Case, int, User],
):
    case, approval_id, supervisor = committed_zj_extension_request
    # Audit events outlive transactional tests, and references repeat after each flush.
    since = AuditEvent.objects.order_by("-sequence").values_list("sequence", flat=True).first()
    url = approvals_url(case, approval_id)
    locked, release = threading.Event(), threading.Event()
    answers: dict[str, int] = {}

    def hold_the_case() -> None:
        try:
            with transaction.atomic():
                Case.objects.select_for_update().get(pk=case.pk)
                locked.set()
                release.wait(timeout=20)
        finally:
            connection.close()

    def approve(name: str) -> None:
        try:
            user = User.objects.get(pk=supervisor.pk)
            answers[name] = api(user).post(url, {"approve": True}, format="json").status_code
        finally:
            connection.close()

    holder = threading.Thread(target=hold_the_case)
    holder.start()
    assert locked.wait(timeout=10)
    clicks = [threading.Thread(target=approve, args=(name,)) for name in ("first", "second")]
    for click in clicks:
        click.start()
    deadline = time.monotonic() + 10
    while waiting_for_locks() < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    both_waiting = waiting_for_locks() == 2
    release.set()
    for thread in (holder, *clicks):
        thread.join(timeout=20)
        assert not thread.is_alive()

    assert both_waiting
    assert sorted(answers.values()) == [200, 409]
    assert handling_clock(case).extended_by == 5
    steps = AuditEvent.objects.filter(
        sequence__gt=since, case_reference=case.reference, action="case.transitioned"
    )
    assert [event.payload["transition"] for event in steps] == ["extend"]


# ---------------------------------------------------------------------------------------------
# The schema


def test_the_openapi_schema_lists_the_case_endpoints(world: World):
    response = api().get("/api/schema/")

    assert response.status_code == 200
    schema = response.content.decode()
    for path in (
        "/api/v1/cases/:",
        "/api/v1/cases/{reference}/:",
        "/api/v1/cases/{reference}/transitions/:",
        "/api/v1/cases/{reference}/approvals/{approval_id}/:",
    ):
        assert f"\n  {path}\n" in schema


@pytest.mark.redis
def test_the_filing_throttle_counts_in_the_shared_cache_every_process_reads(world: World):
    # given the cache every web process shares (Redis at SCS_CACHE_URL)
    import redis
    from django.conf import settings

    assert settings.CACHES["default"]["BACKEND"] == "django.core.cache.backends.redis.RedisCache"
    shared = redis.Redis.from_url(settings.CACHES["default"]["LOCATION"])

    # when a citizen files through the API
    response = api(world.citizen).post(CASES, filing(world.sh_record), format="json")

    # then the throttle's count is in Redis, where any other process finds it
    assert response.status_code == 201
    assert shared.exists(f"scs:1:throttle_filing_{world.citizen.pk}") == 1
