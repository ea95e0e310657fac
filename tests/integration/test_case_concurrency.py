"""Two caseworkers decide the same case at the same moment, on PostgreSQL's row locks.

Each thread has its own database connection; both are made to wait at the case's row lock at
once. The lock serialises them: the second caller sees the case after the first one's commit and
is refused with a 409 (CaseConflict when it sent the lock_version it read, TransitionNotAvailable
when it sent none and the case has moved on).
"""

from __future__ import annotations

import threading

import pytest
from django.db import connection, connections, transaction
from django.urls import reverse

from accounts.models import User
from objections.exceptions import CaseConflict, TransitionNotAvailable
from objections.models import Case
from objections.services import TransitionInput, case_route, case_transition
from records.models import CreditRecord, CreditRecordVersion
from tests.conftest import FLUSHABLE_APPS
from tests.integration.conftest import World, wait_for
from tests.staff import staff_login

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.redis,
    pytest.mark.django_db(transaction=True, available_apps=FLUSHABLE_APPS),
]
GRANT = TransitionInput(
    outcome=Case.Outcome.GRANTED,
    reasons="经核查，标题记载有误，予以更正。",
    correction={"title": "更正后的标题"},
)


def case_under_review(world: World) -> Case:
    """A Shanghai objection, routed (and marked) and taken into review by the centre."""
    case = world.file(world.sh_records[0])
    case = case_route(case_id=case.pk)
    return case_transition(
        case_id=case.pk,
        transition="start_review",
        actor=world.caseworker,
        expected_lock_version=case.lock_version,
    )


def waiting_for_a_lock(backend_pids: list[int]) -> int:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(DISTINCT pid) FROM pg_locks WHERE pid = ANY(%s) AND NOT granted",
            [backend_pids],
        )
        return int(cursor.fetchone()[0])


def decide_at_once(
    case_id: int, actors: list[User], expected_lock_version: int | None
) -> list[Case | Exception]:
    """Both actors grant the case at the same moment, each on its own connection.

    The test thread holds the case's row lock until both deciders are queued behind it, so the
    race is certain rather than likely; then it lets go and they contend.
    """
    barrier = threading.Barrier(len(actors))
    backend_pids: list[int] = []
    outcomes: list[Case | Exception] = [RuntimeError("did not run")] * len(actors)

    def decide(index: int, actor: User) -> None:
        try:
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_backend_pid()")
                backend_pids.append(cursor.fetchone()[0])
            barrier.wait(timeout=10)
            outcomes[index] = case_transition(
                case_id=case_id,
                transition="grant",
                actor=actor,
                data=GRANT,
                expected_lock_version=expected_lock_version,
            )
        except Exception as error:  # handed to the test thread, which asserts on it
            outcomes[index] = error
        finally:
            connections.close_all()

    threads = [
        threading.Thread(target=decide, args=(index, actor), name=f"decide-{index}")
        for index, actor in enumerate(actors)
    ]
    with transaction.atomic():
        Case.objects.select_for_update().get(pk=case_id)
        for thread in threads:
            thread.start()
        wait_for(
            lambda: waiting_for_a_lock(backend_pids) == len(actors),
            timeout=20,
            what="both deciders to wait for the case's row lock",
            interval=0.02,
        )
    for thread in threads:
        thread.join(timeout=30)
    assert [thread.is_alive() for thread in threads] == [False] * len(actors)
    return outcomes


@pytest.mark.parametrize(
    ("send_lock_version", "refusal"),
    [(True, CaseConflict), (False, TransitionNotAvailable)],
    ids=["with-lock-version", "without-lock-version"],
)
def test_two_caseworkers_granting_at_once_decide_the_case_once(world, send_lock_version, refusal):
    case = case_under_review(world)
    read_version = case.lock_version
    record = CreditRecord.objects.get(pk=case.record_id)

    actors = [world.caseworker, world.second_caseworker]
    outcomes = decide_at_once(case.pk, actors, read_version if send_lock_version else None)

    decided = [(a, o) for a, o in zip(actors, outcomes, strict=True) if isinstance(o, Case)]
    refused = [o for o in outcomes if not isinstance(o, Case)]
    assert (len(decided), [type(o) for o in refused]) == (1, [refusal])
    assert refused[0].http_status == 409
    winner, winning_case = decided[0]
    case = Case.objects.get(pk=case.pk)
    # grant, then the system's execute_correction and complete: the case is closed.
    assert (case.state, case.outcome, case.is_open) == ("closed", "granted", False)
    assert case.lock_version == winning_case.lock_version == read_version + 3
    events = world.events("case.transitioned", case)
    assert [(e.payload["transition"], e.actor_id) for e in events] == [
        ("mark", None),
        ("start_review", world.caseworker.pk),
        ("grant", winner.pk),
        ("execute_correction", None),
        ("complete", None),
    ]
    versions = CreditRecordVersion.objects.filter(record=record)
    assert list(versions.values_list("version", "title")) == [(1, record.title)]
    corrected = CreditRecord.objects.get(pk=record.pk)
    assert (corrected.version, corrected.title) == (2, GRANT.correction["title"])
    assert len(world.events("record.corrected", case)) == 1


@pytest.mark.parametrize(
    ("send_lock_version", "code"),
    [(True, "case_conflict"), (False, "transition_not_available")],
    ids=["with-lock-version", "without-lock-version"],
)
def test_the_losing_decision_through_the_api_is_409_and_changes_nothing(
    world, client, send_lock_version, code
):
    case = case_under_review(world)
    read_version = case.lock_version
    winner = case_transition(
        case_id=case.pk,
        transition="grant",
        actor=world.caseworker,
        data=GRANT,
        expected_lock_version=read_version,
    )
    events_before = len(world.events("case.transitioned", case))
    staff_login(client, world.second_caseworker)
    body: dict[str, object] = {
        "transition": "grant",
        "outcome": Case.Outcome.GRANTED,
        "reasons": GRANT.reasons,
        "correction": GRANT.correction,
    }
    if send_lock_version:
        body["lock_version"] = read_version

    url = reverse("api-case-transitions", args=[case.reference])

    response = client.post(url, body, content_type="application/json")

    assert response.status_code == 409
    assert response.json()["code"] == code
    if send_lock_version:
        assert response.json()["lock_version"] == winner.lock_version
    case = Case.objects.get(pk=case.pk)
    assert (case.state, case.lock_version) == ("closed", winner.lock_version)
    assert len(world.events("case.transitioned", case)) == events_before
    assert CreditRecordVersion.objects.filter(record_id=case.record_id).count() == 1
