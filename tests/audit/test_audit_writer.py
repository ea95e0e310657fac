"""The audit writer on Django's own backend: a transaction's events in one statement, before commit.

`audited()` collects the events of a transaction and writes them after every other statement, so
the chain-head lock is the last lock taken; a failing block writes nothing; a nested block's
events go with its savepoint.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from datetime import UTC, datetime

import psycopg2
import pytest
from django.db import DatabaseError, OperationalError, connection, connections, transaction
from django.test.utils import CaptureQueriesContext

from audit.models import AuditChainHead, AuditEvent
from audit.services import AuditInsideNestedAtomic, audit_record, audited, recorded_at_text
from audit.verify import audit_chain_verify
from objections.models import CalendarOverride
from tests.conftest import FLUSHABLE_APPS, head_sequence


class Boom(Exception):
    pass


def event(action: str = "test.event", index: int = 0) -> None:
    audit_record(actor=None, action=action, target_type="tests.thing", target_id=index)


def actions_after(sequence: int) -> list[str]:
    return list(
        AuditEvent.objects.filter(sequence__gt=sequence)
        .order_by("sequence")
        .values_list("action", flat=True)
    )


@pytest.mark.django_db
@pytest.mark.postgres
def test_a_transaction_writes_its_events_in_one_statement_after_every_other():
    start = head_sequence()

    with CaptureQueriesContext(connection) as queries, audited():
        event("test.first")
        CalendarOverride.objects.create(day="2027-02-13", working=True, source="notice")
        event("test.second")
        event("test.third")

    statements = [q["sql"] for q in queries.captured_queries if "SAVEPOINT" not in q["sql"]]
    # the append, which returns the head it leaves, then only the application's seal on what it
    # appended (it locks nothing else)
    assert [sql for sql in statements if "audit_append" in sql] == statements[-2:-1]
    assert statements[-1].startswith("INSERT INTO audit_auditeventseal")
    assert actions_after(start) == ["test.first", "test.second", "test.third"]
    assert head_sequence() == start + 3
    assert audit_chain_verify().intact


@pytest.mark.django_db
def test_a_failing_block_writes_no_event_and_changes_nothing():
    start = head_sequence()
    head = AuditChainHead.objects.get(pk=1).hash

    @audited()
    def failing_step() -> None:
        CalendarOverride.objects.create(day="2027-02-13", working=True, source="notice")
        event()
        raise Boom

    with pytest.raises(Boom):
        failing_step()

    assert head_sequence() == start
    assert AuditChainHead.objects.get(pk=1).hash == head
    assert not CalendarOverride.objects.exists()


@pytest.mark.django_db
def test_a_nested_block_that_fails_drops_only_its_own_events():
    start = head_sequence()

    with audited():
        event("test.outer")
        try:
            with audited():
                CalendarOverride.objects.create(day="2027-02-13", working=True, source="n")
                event("test.inner")
                raise Boom
        except Boom:
            pass
        with audited():
            event("test.kept")

    assert actions_after(start) == ["test.outer", "test.kept"]
    assert not CalendarOverride.objects.exists()


@pytest.mark.django_db
def test_an_event_inside_a_plain_atomic_nested_in_an_audited_block_is_refused():
    start = head_sequence()

    @audited()
    def step_with_a_plain_inner_block() -> None:
        with transaction.atomic():
            event()

    with pytest.raises(AuditInsideNestedAtomic, match="make that block audited"):
        step_with_a_plain_inner_block()

    assert head_sequence() == start


@pytest.mark.django_db
def test_outside_an_audited_block_an_event_is_written_at_once():
    start = head_sequence()

    with transaction.atomic():
        event("test.at_once")
        assert actions_after(start) == ["test.at_once"]


@pytest.mark.django_db
def test_the_decorator_gives_each_call_its_own_block():
    start = head_sequence()

    @audited()
    def step(depth: int) -> None:
        event("test.step", depth)
        if depth:
            step(depth - 1)

    step(2)

    assert actions_after(start) == ["test.step"] * 3


@pytest.mark.django_db(transaction=True, available_apps=FLUSHABLE_APPS)
@pytest.mark.postgres
def test_a_change_made_by_a_raw_cursor_is_rolled_back_with_its_events():
    start = head_sequence()

    @audited()
    def raw_step() -> None:
        connection.ensure_connection()
        raw = connection.connection.cursor()  # psycopg2's own cursor, first in the transaction
        raw.execute(
            "INSERT INTO objections_calendaroverride (created_at, updated_at, day, working, source)"
            " VALUES (now(), now(), '2027-02-13', true, 'raw')"
        )
        event()
        raise Boom

    with pytest.raises(Boom):
        raw_step()

    assert not CalendarOverride.objects.exists()
    assert head_sequence() == start


def _in_thread(work: Callable[[], None], errors: list[BaseException]) -> threading.Thread:
    def run() -> None:
        try:
            work()
        except BaseException as error:  # reported to the test thread
            errors.append(error)
        finally:
            connections.close_all()

    thread = threading.Thread(target=run)
    thread.start()
    return thread


@pytest.mark.django_db(transaction=True, available_apps=FLUSHABLE_APPS)
@pytest.mark.postgres
def test_two_repeatable_read_transactions_both_commit_or_one_fails_cleanly_on_its_own_statement():
    # given two transactions at REPEATABLE READ, each changing its own row, both open at once
    start = head_sequence()
    both_changed = threading.Barrier(2, timeout=20)
    first_committed = threading.Event()
    errors: list[BaseException] = []

    def writer(day: str, wait_for_first: bool) -> Callable[[], None]:
        def work() -> None:
            with audited():
                with connection.cursor() as cursor:
                    cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
                CalendarOverride.objects.create(day=day, working=True, source=day)
                event("test.repeatable", int(day[-2:]))
                both_changed.wait()
                if wait_for_first:
                    assert first_committed.wait(20)
            if not wait_for_first:
                first_committed.set()

        return work

    # when both finish, one after the other
    threads = [
        _in_thread(writer("2027-02-13", wait_for_first=False), errors),
        _in_thread(writer("2027-02-20", wait_for_first=True), errors),
    ]
    for thread in threads:
        thread.join(30)

    # then the first committed; the second either committed too or failed with a serialization
    # error raised by its own audit statement, leaving nothing behind
    days = sorted(str(day) for day in CalendarOverride.objects.values_list("day", flat=True))
    assert len(errors) <= 1
    if errors:
        [error] = errors
        assert isinstance(error, OperationalError)
        assert isinstance(error.__cause__, psycopg2.errors.SerializationFailure)
        assert days == ["2027-02-13"]
        assert head_sequence() == start + 1
    else:
        assert days == ["2027-02-13", "2027-02-20"]
        assert head_sequence() == start + 2
    assert audit_chain_verify().intact


@pytest.mark.django_db(transaction=True, available_apps=FLUSHABLE_APPS)
@pytest.mark.postgres
def test_concurrent_writers_keep_the_chain_gap_free():
    start = head_sequence()
    errors: list[BaseException] = []

    def work(thread: int) -> Callable[[], None]:
        def run() -> None:
            for index in range(15):
                with audited():
                    event(f"test.thread{thread}", index)
                    event(f"test.thread{thread}", index)

        return run

    threads = [_in_thread(work(number), errors) for number in range(4)]
    for thread in threads:
        thread.join(60)

    assert errors == []
    assert head_sequence() == start + 4 * 15 * 2
    sequences = list(
        AuditEvent.objects.filter(sequence__gt=start)
        .order_by("sequence")
        .values_list("sequence", flat=True)
    )
    assert sequences == list(range(start + 1, start + 121))
    result = audit_chain_verify()
    assert result.intact, result


@pytest.mark.django_db
@pytest.mark.postgres
def test_an_append_that_fails_at_the_end_rolls_the_change_back():
    # given an event PostgreSQL refuses (an action longer than its column)
    start = head_sequence()

    # when / then the failure surfaces at the end of the block, and its change does not survive
    @audited()
    def step() -> None:
        CalendarOverride.objects.create(day="2027-02-13", working=True, source="n")
        audit_record(actor=None, action="test." + "x" * 100)

    with pytest.raises(DatabaseError, match="too long"):
        step()
    assert not CalendarOverride.objects.exists()
    assert head_sequence() == start


@pytest.mark.django_db(transaction=True, available_apps=FLUSHABLE_APPS)
@pytest.mark.postgres
def test_recorded_at_never_runs_backwards_against_the_sequence_under_concurrency():
    start = head_sequence()
    errors: list[BaseException] = []

    def work() -> None:
        for index in range(20):
            with audited():
                event("test.time", index)

    threads = [_in_thread(work, errors) for _ in range(4)]
    for thread in threads:
        thread.join(60)

    times = list(
        AuditEvent.objects.filter(sequence__gt=start)
        .order_by("sequence")
        .values_list("recorded_at", flat=True)
    )
    assert errors == []
    assert len(times) == 80
    assert times == sorted(times)


@pytest.mark.django_db
@pytest.mark.postgres
@pytest.mark.parametrize(
    "moment",
    [
        datetime(2026, 12, 31, 23, 59, 59, 0, tzinfo=UTC),
        datetime(2027, 1, 1, 0, 0, 0, 5, tzinfo=UTC),
        datetime(2026, 6, 15, 2, 0, 0, 123456, tzinfo=UTC),
    ],
)
def test_the_database_writes_recorded_at_as_the_canonical_text_expects(moment: datetime):
    with connection.cursor() as cursor:
        cursor.execute("SELECT audit_recorded_at_text(%s)", [moment])
        written = cursor.fetchone()[0]

    assert written == recorded_at_text(moment)


@pytest.mark.django_db
def test_the_stored_canonical_text_holds_the_stored_time():
    start = head_sequence()

    with audited():
        event("test.stamped")

    stored = AuditEvent.objects.get(sequence=start + 1)
    assert json.loads(stored.canonical)["recorded_at"] == recorded_at_text(stored.recorded_at)
