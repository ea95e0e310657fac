"""Reads of personal data in the audit log: a case opened as staff is one `read.case_opened` event.

Who, what and when, by id only: the applicant's own reads, and requests that show nothing (a
404), write nothing.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import pytest
from django.db import connection
from django.utils import timezone
from rest_framework.test import APIClient
from time_machine import TimeMachineFixture

from accounts.models import User
from audit.models import AuditEvent
from audit.reads import CASE_OPENED, read_record
from objections.models import Case
from objections.services import case_file, case_route
from objections.services.grants import case_access_grant
from records.crypto import identifier_decrypt
from records.identifiers import mask_identifier
from tests.clock import SHANGHAI
from tests.conftest import head_sequence
from tests.factories import UserFactory
from tests.objections import conftest as case_conftest
from tests.objections.conftest import World

pytestmark = pytest.mark.django_db

# The case tests' World fixture (tests/objections/conftest.py is not in this directory's scope).
world = case_conftest.world

CASES = "/api/v1/cases/"


def api(user: User) -> APIClient:
    client = APIClient(headers={"accept-language": "en"})
    client.force_authenticate(user)
    return client


@pytest.fixture
def case(world: World) -> Case:
    filed = case_file(
        actor=world.citizen,
        record=world.sh_record,
        kind="objection",
        grounds="inaccurate",
        statement="The penalty was revoked on reconsideration.",
        requested_remedy="correct",
        correction={"title": "已撤销的处罚"},
    )
    return case_route(case_id=filed.pk)


def events_after(sequence: int) -> list[AuditEvent]:
    return list(AuditEvent.objects.filter(sequence__gt=sequence).order_by("sequence"))


@pytest.mark.parametrize(
    ("who", "role"),
    [
        ("caseworker", "caseworker"),
        ("supervisor", "supervisor"),
        ("agency_caseworker", "caseworker"),
        ("auditor", "auditor"),
    ],
)
def test_staff_opening_a_case_writes_one_read_event(
    world: World, case: Case, who: str, role: str, time_machine: TimeMachineFixture
):
    reader = User.objects.get(pk=getattr(world, who).pk)
    if who == "auditor":  # an auditor reads a case through a time-limited grant
        case_access_grant(
            case=case,
            user=reader,
            actor=UserFactory(username="admin-grants", role="administrator"),
            reason="年度审计",
            expires_at=timezone.now() + timedelta(days=1),
        )
    since = head_sequence()
    before = datetime(2026, 6, 15, 10, tzinfo=SHANGHAI)
    time_machine.move_to(before, tick=False)

    response = api(reader).get(f"{CASES}{case.reference}/", headers={"x-request-id": "req-read-1"})

    assert response.status_code == 200
    assert response.json()["reference"] == case.reference
    [event] = events_after(since)
    assert (
        event.action,
        event.actor_id,
        event.actor_role,
        event.target_type,
        event.target_id,
        event.case_reference,
        event.request_id,
    ) == (
        "read.case_opened",
        reader.pk,
        role,
        "objections.case",
        str(case.pk),
        case.reference,
        "req-read-1",
    )
    assert event.payload == {"subject": world.subject.pk, "record": world.sh_record.pk}
    assert before <= event.recorded_at


def test_each_staff_view_of_a_case_is_its_own_event(world: World, case: Case):
    since = head_sequence()

    for _ in range(3):
        assert api(world.caseworker).get(f"{CASES}{case.reference}/").status_code == 200

    assert [event.action for event in events_after(since)] == ["read.case_opened"] * 3


def test_the_applicant_reading_their_own_case_writes_nothing(world: World, case: Case):
    since = head_sequence()

    response = api(world.citizen).get(f"{CASES}{case.reference}/")

    assert response.status_code == 200
    assert events_after(since) == []


@pytest.mark.parametrize("outsider", ["other_citizen", "zj_caseworker", "zj_supervisor"])
def test_a_case_outside_the_callers_scope_is_404_and_writes_nothing(
    world: World, case: Case, outsider: str
):
    since = head_sequence()

    response = api(getattr(world, outsider)).get(f"{CASES}{case.reference}/")

    assert response.status_code == 404
    assert events_after(since) == []


def test_an_unknown_reference_is_404_and_writes_nothing(world: World):
    since = head_sequence()

    response = api(world.auditor).get(f"{CASES}SH-1999-000001/")

    assert response.status_code == 404
    assert events_after(since) == []


@pytest.mark.postgres
def test_a_staff_read_writes_its_event_with_the_append_and_the_seal_only(world: World, case: Case):
    """What the read adds to the page: the append, which returns the chain head it leaves, and
    the application's seal; no statement of its own to read the head back."""
    reader = User.objects.get(pk=world.caseworker.pk)
    statements: list[str] = []

    def record(execute: Any, sql: str, params: Any, many: bool, context: Any) -> Any:
        statements.append(sql)
        return execute(sql, params, many, context)

    # (The query log is emptied when a request starts: record the statements as they run.)
    with connection.execute_wrapper(record):
        response = api(reader).get(f"{CASES}{case.reference}/")

    assert response.status_code == 200
    assert [sql.split("(")[0] for sql in statements if "audit_" in sql] == [
        "SELECT last_sequence, last_hash FROM audit_append",
        "INSERT INTO audit_auditeventseal ",
    ]


def test_a_transition_writes_its_own_event_and_no_read_event(world: World, case: Case):
    since = head_sequence()

    response = api(world.caseworker).post(
        f"{CASES}{case.reference}/transitions/", {"transition": "start_review"}, format="json"
    )

    assert response.status_code == 200
    assert [event.action for event in events_after(since)] == ["case.transitioned"]


def test_the_read_event_holds_ids_and_no_personal_data(world: World, case: Case):
    subject = world.subject
    identifier = identifier_decrypt(bytes(subject.identifier_encrypted))
    since = head_sequence()

    body = api(world.caseworker).get(f"{CASES}{case.reference}/").content.decode()

    [event] = events_after(since)
    assert event.payload == {"subject": subject.pk, "record": world.sh_record.pk}
    assert mask_identifier(identifier) in body  # the page shows the masked identifier
    for personal in (
        identifier,
        mask_identifier(identifier),
        identifier[6:14],  # the date of birth inside a resident identity number
        subject.name,
        world.sh_record.title,
        case.statement,
    ):
        assert personal not in event.canonical


def test_a_reason_asked_for_is_kept_with_the_read(world: World, case: Case):
    since = head_sequence()

    read_record(
        actor=world.auditor,
        what=CASE_OPENED,
        target=case,
        case_reference=case.reference,
        ids={"subject": case.subject_id},
        reason="complaint 2026-17 " + "x" * 600,
    )

    [event] = events_after(since)
    assert (event.action, event.actor_id, event.actor_role) == (
        "read.case_opened",
        world.auditor.pk,
        "auditor",
    )
    assert event.payload == {
        "subject": case.subject_id,
        "reason": ("complaint 2026-17 " + "x" * 600)[:500],
    }


def test_an_unknown_read_is_refused_and_writes_nothing(world: World, case: Case):
    since = head_sequence()

    with pytest.raises(ValueError, match="unknown read 'case_browsed'"):
        read_record(actor=world.auditor, what="case_browsed", target=case)

    assert events_after(since) == []
