"""Routing of filed cases by a real Celery worker on Redis, against PostgreSQL.

`case_file` queues `case_route_task` after commit; the worker routes the case (workflow version,
responsible agency, assignee, clocks) and, for a Shanghai objection, the system then marks the
record. Messages get lost (a killed worker, a flushed Redis); the sweeper
`cases_unrouted_redrive` queues routing again and `case_route` must stay idempotent.

Beat is not run: the tests call `cases_unrouted_redrive(older_than_seconds=0)` in the test
process, which queues onto the same Redis as beat's `objections-unrouted-redrive` entry would.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest

from objections.models import Case, WorkflowDefinition
from objections.services import TransitionInput, case_transition, cases_unrouted_redrive
from objections.tasks import case_route_task
from records.models import CreditRecord, CreditRecordVersion
from tests.conftest import FLUSHABLE_APPS
from tests.integration.conftest import (
    QUEUE,
    World,
    broker,
    queued_messages,
    wait_for,
)

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.redis,
    pytest.mark.django_db(transaction=True, available_apps=FLUSHABLE_APPS),
]
ROUTE_TASK = "objections.tasks.case_route_task"
# Routing bumps lock_version once and the system's `mark` step once more: 1 -> 3.
LOCK_VERSION_AFTER_ROUTING = 3


def unrouted(cases: list[Case]) -> list[int]:
    return list(
        Case.objects.filter(pk__in=[c.pk for c in cases], routed_at__isnull=True).values_list(
            "pk", flat=True
        )
    )


def redrive_until_routed(cases: list[Case], *, timeout: float, log: Callable[[], str]) -> None:
    """Run the sweeper as beat would, every few seconds, until every case is routed."""
    deadline = time.monotonic() + timeout
    while unrouted(cases):
        if time.monotonic() >= deadline:
            raise AssertionError(f"still unrouted after {timeout}s: {unrouted(cases)}\n{log()}")
        cases_unrouted_redrive(older_than_seconds=0)
        # Give the worker a few seconds for what was just queued before sweeping again.
        next_sweep = min(deadline, time.monotonic() + 5)
        while unrouted(cases) and time.monotonic() < next_sweep:
            time.sleep(0.1)


def shanghai_objection() -> WorkflowDefinition:
    return WorkflowDefinition.objects.get(key="shanghai-objection", is_current=True)


def assert_routed_exactly_once(world: World, cases: list[Case]) -> None:
    centre_id = world.caseworker.agency_id
    workflow = shanghai_objection()
    for filed in cases:
        case = Case.objects.select_related("record").get(pk=filed.pk)
        routed = world.events("case.routed", case)
        transitioned = world.events("case.transitioned", case)
        assert (case.reference, len(routed)) == (filed.reference, 1)
        assert [e.payload["transition"] for e in transitioned] == ["mark"]
        assert case.state == "marked"
        assert case.routed_at is not None
        assert routed[0].recorded_at >= case.routed_at  # stamped in the same transaction
        assert case.lock_version == LOCK_VERSION_AFTER_ROUTING
        assert case.workflow_id == workflow.pk
        assert case.responsible_agency_id == centre_id
        assert routed[0].payload["state"] == "received"
        assert case.record.under_objection is True
        assert len(world.events("record.marked", case)) == 1


def test_a_filed_case_is_routed_by_the_worker(world, celery_workers):
    worker = celery_workers()
    record = world.sh_records[0]

    case = world.file(record)

    assert case.state == Case.FILED
    wait_for(
        lambda: Case.objects.filter(pk=case.pk, routed_at__isnull=False).exists(),
        timeout=60,
        what="the worker to route the case",
        log=worker.log,
    )
    worker.stop()
    routed = Case.objects.get(pk=case.pk)
    workflow = shanghai_objection()
    assert routed.state == "marked"
    assert routed.workflow_id == workflow.pk
    assert routed.responsible_agency_id == world.caseworker.agency_id
    assert routed.assignee_id == world.caseworker.pk
    assert routed.lock_version == LOCK_VERSION_AFTER_ROUTING
    assert routed.next_due_on is not None
    assert CreditRecord.objects.get(pk=record.pk).under_objection is True
    events = world.events("case.routed", routed)
    assert [(e.actor_id, e.target_id) for e in events] == [(None, str(case.pk))]
    assert events[0].payload == {
        "workflow": "shanghai-objection",
        "version": workflow.version,
        "agency": world.caseworker.agency_id,
        "assignee": world.caseworker.pk,
        "state": "received",
    }
    assert worker.succeeded(ROUTE_TASK) == 1


def test_a_worker_killed_mid_routing_loses_no_case_and_routes_none_twice(world, celery_workers):
    cases = [world.file(record) for record in world.sh_records]
    # Each filing queued its routing and its "filed" notification.
    assert queued_messages() == 2 * len(cases)
    first = celery_workers(pool="prefork", concurrency=2)
    wait_for(
        lambda: len(unrouted(cases)) < len(cases),
        timeout=60,
        what="the first case to be routed",
        interval=0.02,
        log=first.log,
    )

    first.kill()

    left_unrouted = len(unrouted(cases))
    assert 0 < left_unrouted < len(cases), "the kill must land while routing is in progress"
    second = celery_workers(pool="prefork", concurrency=2)
    redrive_until_routed(cases, timeout=60, log=second.log)
    wait_for(lambda: queued_messages() == 0, timeout=30, what="the queue to drain")
    second.stop()  # warm: what it is running finishes, so every duplicate has had its effect
    assert unrouted(cases) == []
    assert_routed_exactly_once(world, cases)


def test_messages_flushed_from_redis_are_redriven_and_every_case_is_routed_once(
    world, celery_workers
):
    cases = [world.file(record) for record in world.sh_records[:5]]
    assert queued_messages() == 2 * len(cases)

    # FLUSHDB, not FLUSHALL: REDIS_URL names a database of its own (/15), and FLUSHALL would
    # also wipe the other databases of a Redis the machine shares. For the broker it is the same
    # loss: every message and binding it keeps lives in this one database.
    broker().flushdb()

    assert broker().exists(QUEUE) == 0
    worker = celery_workers()  # declares its queue again, so the sweeper's messages have a route
    redriven = cases_unrouted_redrive(older_than_seconds=0)
    wait_for(lambda: not unrouted(cases), timeout=60, what="routing", log=worker.log)
    wait_for(lambda: queued_messages() == 0, timeout=30, what="the queue to drain")
    worker.stop()
    assert sorted(redriven) == [c.pk for c in cases]
    assert worker.succeeded(ROUTE_TASK) == len(cases)
    assert_routed_exactly_once(world, cases)


def test_a_duplicated_routing_message_makes_no_second_transition(world, celery_workers):
    case = world.file(world.sh_records[0])
    # The same message twice, as a broker redelivery would hand it out: same task id.
    message = case_route_task.apply_async(kwargs={"case_id": case.pk})
    case_route_task.apply_async(kwargs={"case_id": case.pk}, task_id=message.id)

    # Two pool processes, so the copies can run at the same time and meet at the row lock.
    worker = celery_workers(pool="prefork", concurrency=2)

    wait_for(
        lambda: worker.succeeded(ROUTE_TASK) == 3,  # the filing's own message and the two copies
        timeout=60,
        what="all three routing messages to be processed",
        log=worker.log,
    )
    worker.stop()
    assert worker.succeeded(ROUTE_TASK, message.id) == 2
    assert_routed_exactly_once(world, [case])


def test_a_late_duplicate_leaves_a_case_under_review_untouched(world, celery_workers):
    worker = celery_workers()
    record = world.sh_records[0]
    case = world.file(record)
    wait_for(lambda: worker.succeeded(ROUTE_TASK) == 1, timeout=60, what="routing", log=worker.log)
    reviewed = case_transition(
        case_id=case.pk,
        transition="start_review",
        actor=world.caseworker,
        data=TransitionInput(),
        expected_lock_version=LOCK_VERSION_AFTER_ROUTING,
    )
    routed_at = Case.objects.get(pk=case.pk).routed_at

    case_route_task.delay(case_id=case.pk)
    case_route_task.delay(case_id=case.pk)

    wait_for(
        lambda: worker.succeeded(ROUTE_TASK) == 3,
        timeout=60,
        what="the two late copies",
        log=worker.log,
    )
    worker.stop()
    case = Case.objects.get(pk=case.pk)
    assert (case.state, case.lock_version, case.routed_at) == (
        "under_review",
        reviewed.lock_version,
        routed_at,
    )
    assert len(world.events("case.routed", case)) == 1
    assert [e.payload["transition"] for e in world.events("case.transitioned", case)] == [
        "mark",
        "start_review",
    ]
    assert CreditRecordVersion.objects.filter(record=record).count() == 0
