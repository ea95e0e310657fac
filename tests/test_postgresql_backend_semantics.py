"""The project's PostgreSQL backend (scs_cases.db.postgresql) and Django's transaction semantics.

Where the backend must behave as Django's stock PostgreSQL backend does, a `stock_*` test beside
shows what the stock backend does. Plain tables made here (review_*) stand in for cases no model
of the project has: a deferred foreign key, rows for a serialization failure.
"""

from __future__ import annotations

import copy
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg2
import pytest
from django.db import DatabaseError, connection, connections, transaction
from django.db.backends.postgresql import base as stock_base
from django.db.backends.postgresql.psycopg_any import IsolationLevel
from django.db.utils import (
    IntegrityError,
    InterfaceError,
    OperationalError,
    ProgrammingError,
)
from psycopg2 import extensions, extras
from psycopg2 import sql as pgsql

from audit.models import AuditEvent
from audit.services import audit_record
from audit.verify import audit_chain_verify
from records.models import CreditRecord
from scs_cases.db.postgresql import base
from tests.conftest import FLUSHABLE_APPS, head_sequence, other_connection
from tests.factories import CreditRecordFactory

pytestmark = pytest.mark.postgres
transactional = pytest.mark.django_db(transaction=True, available_apps=FLUSHABLE_APPS)


# ----------------------------------------------------------------------------------------------
# Helpers


@pytest.fixture
def review_tables() -> Iterator[None]:
    """Plain tables outside Django's apps: a deferred foreign key, and rows for write skew."""
    with connection.cursor() as cursor:
        cursor.execute(
            "CREATE TABLE review_parent (id integer PRIMARY KEY);"
            "CREATE TABLE review_child (id integer PRIMARY KEY, parent_id integer "
            "REFERENCES review_parent DEFERRABLE INITIALLY DEFERRED);"
            "CREATE TABLE review_skew (id integer PRIMARY KEY, on_call boolean NOT NULL);"
            "INSERT INTO review_skew VALUES (1, true), (2, true)"
        )
    try:
        yield
    finally:
        connection.close()  # whatever state a test left the connection in
        with connection.cursor() as cursor:
            cursor.execute("DROP TABLE review_child, review_parent, review_skew")


def count(table: str) -> int:
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT count(*) FROM {table}")
        return cursor.fetchone()[0]


def driver() -> base.CarryingConnection:
    return connection.connection


def nothing_pending() -> bool:
    return driver().begin_pending == b"" and driver().queued == []


def server_status() -> int:
    return driver().get_transaction_status()


def settings_copy(**options) -> dict:
    settings = copy.deepcopy(connection.settings_dict)
    settings["OPTIONS"].update(options)
    return settings


@contextmanager
def stock_wrapper() -> Iterator[stock_base.DatabaseWrapper]:
    """Django's own PostgreSQL backend on the same test database, for comparison."""
    settings = settings_copy()
    settings["ENGINE"] = "django.db.backends.postgresql"
    wrapper = stock_base.DatabaseWrapper(settings, alias="stock")
    try:
        yield wrapper
    finally:
        wrapper.close()


@contextmanager
def carrying_wrapper(**options) -> Iterator[base.DatabaseWrapper]:
    wrapper = base.DatabaseWrapper(settings_copy(**options), alias="carrying")
    try:
        yield wrapper
    finally:
        wrapper.close()


# ----------------------------------------------------------------------------------------------
# Server-side cursors: inside a transaction, rows are fetched on the client (no WITH HOLD)


@transactional
def test_select_for_update_iterator_inside_atomic_works_as_with_the_stock_backend():
    records = CreditRecordFactory.create_batch(3)

    with transaction.atomic():
        ids = [
            record.pk
            for record in CreditRecord.objects.select_for_update()
            .order_by("pk")
            .iterator(chunk_size=2)
        ]

    assert ids == [record.pk for record in records]


@transactional
def test_a_server_side_cursor_inside_atomic_is_not_holdable():
    CreditRecordFactory.create_batch(3)

    with transaction.atomic():
        iterator = CreditRecord.objects.order_by("pk").iterator(chunk_size=1)
        next(iterator)
        with connection.cursor() as cursor:
            cursor.execute("SELECT is_holdable FROM pg_cursors WHERE name LIKE '_django_curs_%%'")
            holdable = cursor.fetchall()
        iterator.close()

    assert (True,) not in holdable


@transactional
def test_stock_backend_streams_select_for_update_inside_a_transaction_without_hold():
    CreditRecordFactory.create_batch(3)

    with stock_wrapper() as stock:
        stock.set_autocommit(False)
        with stock.chunked_cursor() as cursor:
            cursor.execute("SELECT id FROM records_creditrecord ORDER BY id FOR UPDATE")
            rows = cursor.fetchmany(2)
            with stock.cursor() as other:
                other.execute("SELECT is_holdable FROM pg_cursors")
                holdable = other.fetchall()
        stock.rollback()
        stock.set_autocommit(True)

    assert len(rows) == 2
    assert holdable == [(False,)]


# ----------------------------------------------------------------------------------------------
# A connection that died inside atomic is closed, not kept for the next request


@transactional
def test_a_connection_dropped_inside_atomic_is_not_reused_by_the_next_request():
    connection.ensure_connection()
    pid = driver().get_backend_pid()

    def request_whose_connection_dies() -> None:
        with transaction.atomic():
            CreditRecord.objects.count()
            with other_connection() as cursor:
                cursor.execute("SELECT pg_terminate_backend(%s, 5000)", [pid])
            CreditRecord.objects.count()

    try:
        with pytest.raises(OperationalError):
            request_whose_connection_dies()
        connection.close_if_unusable_or_obsolete()  # what request_finished does

        assert CreditRecord.objects.count() == 0  # the next request
    finally:
        connection.close()


@transactional
def test_rollback_on_a_dropped_connection_raises_as_on_the_stock_backend():
    with stock_wrapper() as stock, carrying_wrapper() as carrying:
        for wrapper in (stock, carrying):
            wrapper.ensure_connection()
            wrapper.set_autocommit(False)
            with wrapper.cursor() as cursor:
                cursor.execute("SELECT 1")
            with other_connection() as cursor:
                cursor.execute(
                    "SELECT pg_terminate_backend(%s, 5000)", [wrapper.connection.get_backend_pid()]
                )
            with pytest.raises(OperationalError), wrapper.cursor() as cursor:
                cursor.execute("SELECT 1")

        for wrapper in (stock, carrying):
            with pytest.raises(InterfaceError, match="connection already closed"):
                wrapper.rollback()


# ----------------------------------------------------------------------------------------------
# A commit that fails ends the transaction and replays nothing


@transactional
def test_a_failed_commit_does_not_replay_its_queued_statements(review_tables, sent):
    transaction.set_autocommit(False)
    try:
        connection.run_with_next_statement("INSERT INTO review_child VALUES (%s, %s)", [1, 999])
        with pytest.raises(IntegrityError):
            transaction.commit()
        # Without a rollback (stock psycopg2 needs none: the failed transaction is over).
        with connection.cursor() as cursor:
            cursor.execute("SELECT count(*) FROM review_child")
            seen = cursor.fetchone()[0]
        assert not sent[-1].startswith("BEGIN;INSERT INTO review_child")
        assert seen == 0
    finally:
        transaction.rollback()
        transaction.set_autocommit(True)


@transactional
def test_a_failed_commit_inside_atomic_is_rolled_back_and_leaves_nothing_pending(review_tables):
    hooks: list[str] = []

    def change_only_queued() -> None:
        with transaction.atomic():
            # The only work of the transaction is queued: BEGIN, it and COMMIT go in one string.
            connection.run_with_next_statement("INSERT INTO review_child VALUES (%s, %s)", [1, 999])
            transaction.on_commit(lambda: hooks.append("ran"))

    with pytest.raises(IntegrityError):
        change_only_queued()

    assert hooks == []
    assert nothing_pending()
    assert server_status() == extensions.TRANSACTION_STATUS_IDLE
    assert count("review_child") == 0
    with transaction.atomic(), connection.cursor() as cursor:  # the connection is usable
        cursor.execute("INSERT INTO review_parent VALUES (1)")
    assert count("review_parent") == 1


@transactional
def test_a_deferred_violation_at_commit_after_statements_rolls_back_everything(review_tables):
    record = CreditRecordFactory(title="before")
    start = head_sequence()
    hooks: list[str] = []

    def change_violating_a_deferred_constraint() -> None:
        with transaction.atomic():
            CreditRecord.objects.filter(pk=record.pk).update(title="after")
            with connection.cursor() as cursor:
                cursor.execute("INSERT INTO review_child VALUES (1, 999)")
            audit_record(actor=None, action="record.changed", target=record)
            transaction.on_commit(lambda: hooks.append("ran"))

    with pytest.raises(IntegrityError):
        change_violating_a_deferred_constraint()

    assert hooks == []
    assert nothing_pending()
    record.refresh_from_db()
    assert record.title == "before"
    assert head_sequence() == start
    assert count("review_child") == 0


@transactional
def test_a_serialization_failure_at_commit_leaves_nothing_behind(review_tables):
    with carrying_wrapper(isolation_level=IsolationLevel.SERIALIZABLE) as mine:
        mine.set_autocommit(False)
        with mine.cursor() as cursor:
            cursor.execute("SELECT count(*) FROM review_skew WHERE on_call")
            cursor.execute("UPDATE review_skew SET on_call = false WHERE id = 1")
        with other_connection() as other:  # the same decision, on the other row, commits first
            other.execute("BEGIN ISOLATION LEVEL SERIALIZABLE")
            other.execute("SELECT count(*) FROM review_skew WHERE on_call")
            other.execute("UPDATE review_skew SET on_call = false WHERE id = 2")
            other.execute("COMMIT")
        mine.run_with_next_statement("SELECT 1", [])
        with pytest.raises(OperationalError, match="could not serialize"):
            mine.commit()
        assert mine.connection.get_transaction_status() == extensions.TRANSACTION_STATUS_IDLE
        mine.rollback()
        mine.set_autocommit(True)
        assert (mine.connection.begin_pending, mine.connection.queued) == (b"", [])

    with connection.cursor() as cursor:
        cursor.execute("SELECT id, on_call FROM review_skew ORDER BY id")
        assert cursor.fetchall() == [(1, True), (2, False)]


# ----------------------------------------------------------------------------------------------
# An aborted transaction never reports a commit


@transactional
def test_an_append_error_swallowed_by_the_next_caller_is_not_reported_as_a_commit():
    record = CreditRecordFactory(title="before")
    hooks: list[str] = []

    def optional_lookup() -> None:
        """Code that may tolerate its own failure (in stock Django the append already raised)."""
        try:
            with connection.cursor() as cursor:
                cursor.execute("SELECT 1")
        except DatabaseError:
            pass

    def change_whose_append_fails() -> None:
        with transaction.atomic():
            CreditRecord.objects.filter(pk=record.pk).update(title="after")
            connection.run_with_next_statement("SELECT 1 / %s", [0])  # an append that fails
            transaction.on_commit(lambda: hooks.append("notified"))
            optional_lookup()

    with pytest.raises(DatabaseError, match="aborted"):
        change_whose_append_fails()

    record.refresh_from_db()
    assert record.title == "before"
    assert hooks == []


@transactional
def test_stock_commit_of_an_aborted_transaction_is_silent_too():
    """Not the backend's doing: psycopg2's commit() ignores that the server answered ROLLBACK."""
    with stock_wrapper() as stock:
        stock.set_autocommit(False)
        with stock.cursor() as cursor:
            cursor.execute("SELECT 1")
            with pytest.raises(DatabaseError):
                cursor.execute("SELECT 1 / 0")
        stock.commit()  # no error
        assert stock.connection.get_transaction_status() == extensions.TRANSACTION_STATUS_IDLE
        stock.set_autocommit(True)


# ----------------------------------------------------------------------------------------------
# Switching autocommit on; large objects


@transactional
def test_switching_autocommit_on_with_queued_work_is_refused(review_tables):
    transaction.set_autocommit(False)
    try:
        connection.run_with_next_statement("INSERT INTO review_parent VALUES (%s)", [1])
        with pytest.raises(ProgrammingError):
            transaction.set_autocommit(True)
    finally:
        if not connection.get_autocommit():
            transaction.rollback()
            transaction.set_autocommit(True)


@transactional
def test_large_objects_are_refused_a_known_limitation():
    """psycopg2 checks its own autocommit flag, which this backend keeps on (nothing uses them)."""
    with transaction.atomic():
        CreditRecord.objects.count()
        with pytest.raises(psycopg2.ProgrammingError):
            driver().lobject(mode="wb")


# ----------------------------------------------------------------------------------------------
# Results of carried statements, quoting, psycopg2 helpers


@transactional
def test_rowcount_and_returned_rows_are_those_of_the_carried_statement(sent):
    records = CreditRecordFactory.create_batch(3)
    sent.clear()

    with transaction.atomic():
        audit_record(actor=None, action="records.touched", target_type="t", target_id=1)
        updated = CreditRecord.objects.filter(pk__in=[r.pk for r in records[:2]]).update(
            title="changed"
        )
        audit_record(actor=None, action="records.touched", target_type="t", target_id=2)
        with connection.cursor() as cursor:
            cursor.execute("SELECT id FROM records_creditrecord ORDER BY id")
            first = cursor.fetchone()
            rest = cursor.fetchall()
        transaction.set_rollback(True)

    assert sent[0].startswith("BEGIN;SELECT audit_append(")
    assert sent[1].startswith("SELECT audit_append(")
    assert updated == 2
    assert (first, rest) == ((records[0].pk,), [(records[1].pk,), (records[2].pk,)])


@transactional
def test_literal_percent_and_composed_queries_are_quoted_once(sent):
    with transaction.atomic():
        connection.run_with_next_statement("SELECT %s", ["50%"])
        with connection.cursor() as cursor:
            cursor.execute("SELECT '100%'")  # no parameters: no formatting
            without = cursor.fetchone()
        connection.run_with_next_statement("SELECT %s", ["%s"])
        with connection.cursor() as cursor:
            cursor.execute("SELECT '100%%', %s", ["%(x)s"])
            with_params = cursor.fetchone()
            cursor.execute(
                pgsql.SQL("SELECT {}, '7%'").format(pgsql.Literal("a%b"))  # a Composed query
            )
            composed = cursor.fetchone()
        transaction.set_rollback(True)

    assert without == ("100%",)
    assert with_params == ("100%", "%(x)s")
    assert composed == ("a%b", "7%")
    assert sent[0] == "BEGIN;SELECT '50%';SELECT '100%'"
    assert sent[1] == "SELECT '%s';SELECT '100%', '%(x)s'"


@transactional
def test_execute_values_batch_and_executemany_run_inside_the_transaction(review_tables, sent):
    with transaction.atomic():
        connection.run_with_next_statement("INSERT INTO review_parent VALUES (%s)", [1])
        with connection.cursor() as cursor:
            returned = extras.execute_values(
                cursor.cursor,
                "INSERT INTO review_parent VALUES %s RETURNING id",
                [(2,), (3,)],
                fetch=True,
            )
            connection.run_with_next_statement("INSERT INTO review_parent VALUES (%s)", [4])
            extras.execute_batch(
                cursor.cursor, "INSERT INTO review_parent VALUES (%s)", [(5,), (6,)]
            )
            connection.run_with_next_statement("INSERT INTO review_parent VALUES (%s)", [7])
            cursor.executemany("INSERT INTO review_parent VALUES (%s)", [(8,), (9,)])
            cursor.execute("SELECT count(*) FROM review_parent")
            inside = cursor.fetchone()[0]
        transaction.set_rollback(True)

    assert returned == [(2,), (3,)]
    assert inside == 9
    assert count("review_parent") == 0


@transactional
def test_set_local_in_the_first_statement_lasts_for_the_transaction_only():
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SET LOCAL statement_timeout = '1234ms'")
        cursor.execute("SHOW statement_timeout")
        inside = cursor.fetchone()[0]
    with connection.cursor() as cursor:
        cursor.execute("SHOW statement_timeout")
        after = cursor.fetchone()[0]

    assert inside == "1234ms"
    assert after == "0"


# ----------------------------------------------------------------------------------------------
# Atomic variants, savepoints, hooks, manual transactions, threads


@transactional
def test_a_failing_append_carried_by_release_savepoint_rolls_back_only_the_inner_block():
    record = CreditRecordFactory(title="before")
    start = head_sequence()
    hooks: list[str] = []

    with transaction.atomic():
        audit_record(actor=None, action="outer.kept", target_type="t", target_id=1)
        try:
            with transaction.atomic():
                CreditRecord.objects.filter(pk=record.pk).update(title="inner")
                transaction.on_commit(lambda: hooks.append("inner"))
                connection.run_with_next_statement("SELECT 1 / %s", [0])  # RELEASE carries it
        except DatabaseError:
            pass
        transaction.on_commit(lambda: hooks.append("outer"))

    record.refresh_from_db()
    assert record.title == "before"
    assert hooks == ["outer"]
    assert list(
        AuditEvent.objects.filter(sequence__gt=start).values_list("sequence", "action")
    ) == [(start + 1, "outer.kept")]
    assert audit_chain_verify().intact


@transactional
def test_a_failing_append_in_a_block_without_savepoint_rolls_back_the_whole_transaction():
    record = CreditRecordFactory(title="before")
    start = head_sequence()

    with transaction.atomic():
        CreditRecord.objects.filter(pk=record.pk).update(title="outer")
        audit_record(actor=None, action="outer", target_type="t", target_id=1)
        try:
            with transaction.atomic(savepoint=False):
                connection.run_with_next_statement("SELECT 1 / %s", [0])
                CreditRecord.objects.count()
        except DatabaseError:
            pass
        assert transaction.get_rollback() is True

    record.refresh_from_db()
    assert record.title == "before"
    assert head_sequence() == start
    assert nothing_pending()


@transactional
def test_a_durable_block_carries_its_begin_and_commits(sent):
    record = CreditRecordFactory(title="before")
    start = head_sequence()
    sent.clear()

    with transaction.atomic(durable=True):
        CreditRecord.objects.filter(pk=record.pk).update(title="after")
        audit_record(actor=None, action="record.changed", target=record)

    assert sent[0].startswith("BEGIN;UPDATE ")
    assert sent[-1].startswith("SELECT audit_append(")
    assert sent[-1].endswith(";COMMIT")
    record.refresh_from_db()
    assert record.title == "after"
    assert head_sequence() == start + 1


@transactional
def test_closing_the_connection_inside_atomic_drops_what_is_pending_and_commits_nothing():
    record = CreditRecordFactory(title="before")
    start = head_sequence()

    with transaction.atomic():
        CreditRecord.objects.filter(pk=record.pk).update(title="after")
        audit_record(actor=None, action="record.changed", target=record)
        closed = driver()
        connection.close()
        assert (closed.begin_pending, closed.queued) == (b"", [])
        # As with the stock backend: Django keeps the closed driver connection until the end.
        with pytest.raises(InterfaceError, match="connection already closed"):
            CreditRecord.objects.count()

    record.refresh_from_db()  # a new connection, in autocommit
    assert record.title == "before"
    assert head_sequence() == start
    assert nothing_pending()


@transactional
def test_an_obsolete_persistent_connection_is_replaced_between_transactions():
    record = CreditRecordFactory(title="before")
    with transaction.atomic():
        CreditRecord.objects.filter(pk=record.pk).update(title="first")
    old = driver()
    connection.close_at = 0  # CONN_MAX_AGE has run out
    connection.close_if_unusable_or_obsolete()
    assert connection.connection is None
    assert old.closed

    with transaction.atomic():
        CreditRecord.objects.filter(pk=record.pk).update(title="second")
        audit_record(actor=None, action="record.changed", target=record)

    record.refresh_from_db()
    assert record.title == "second"
    assert driver() is not old
    assert nothing_pending()


@transactional
def test_manual_transactions_refuse_autocommit_inside_an_open_transaction():
    record = CreditRecordFactory(title="before")

    transaction.set_autocommit(False)
    try:
        CreditRecord.objects.filter(pk=record.pk).update(title="manual")
        with pytest.raises(ProgrammingError, match="inside a transaction"):
            transaction.set_autocommit(True)
        transaction.commit()
        assert server_status() == extensions.TRANSACTION_STATUS_IDLE
    finally:
        transaction.set_autocommit(True)

    record.refresh_from_db()
    assert record.title == "manual"
    assert nothing_pending()


@transactional
def test_manual_transactions_after_a_commit_are_still_transactions():
    record = CreditRecordFactory(title="before")

    transaction.set_autocommit(False)
    try:
        CreditRecord.objects.filter(pk=record.pk).update(title="committed")
        transaction.commit()
        CreditRecord.objects.filter(pk=record.pk).update(title="rolled back")
        transaction.rollback()
    finally:
        transaction.rollback()
        transaction.set_autocommit(True)

    record.refresh_from_db()
    assert record.title == "committed"


@transactional
def test_atomic_inside_a_manual_transaction_after_a_commit_can_make_savepoints():
    record = CreditRecordFactory(title="before")

    transaction.set_autocommit(False)
    try:
        CreditRecord.objects.filter(pk=record.pk).update(title="first")
        transaction.commit()
        with transaction.atomic():
            CreditRecord.objects.filter(pk=record.pk).update(title="second")
        transaction.commit()
    finally:
        # A SAVEPOINT failing in Atomic.__enter__ leaves Django's atomic state set (stock too).
        connection.in_atomic_block = False
        connection.atomic_blocks, connection.savepoint_ids = [], []
        transaction.rollback()
        transaction.set_autocommit(True)

    record.refresh_from_db()
    assert record.title == "second"


@transactional
def test_stock_manual_transactions_begin_again_after_each_commit():
    record = CreditRecordFactory(title="before")
    table = CreditRecord._meta.db_table

    with stock_wrapper() as stock:
        stock.set_autocommit(False)
        with stock.cursor() as cursor:
            cursor.execute(f"UPDATE {table} SET title = 'committed' WHERE id = %s", [record.pk])
        stock.commit()
        with stock.cursor() as cursor:
            cursor.execute(f"UPDATE {table} SET title = 'rolled back' WHERE id = %s", [record.pk])
        stock.rollback()
        stock.set_autocommit(True)

    record.refresh_from_db()
    assert record.title == "committed"


@transactional
def test_each_thread_carries_on_its_own_connection_and_the_chain_stays_gap_free():
    records = CreditRecordFactory.create_batch(2)
    start = head_sequence()
    errors: list[BaseException] = []
    pids: set[int] = set()
    steps = 5

    def work(record: CreditRecord) -> None:
        try:
            for step in range(steps):
                with transaction.atomic():
                    locked = CreditRecord.objects.select_for_update().get(pk=record.pk)
                    locked.title = f"step {step}"
                    locked.save(update_fields=["title", "updated_at"])
                    audit_record(actor=None, action="thread.step", target=locked, data={})
                    pids.add(connections["default"].connection.get_backend_pid())
        except BaseException as error:
            errors.append(error)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=work, args=(record,)) for record in records]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert errors == []
    assert len(pids) == 2
    sequences = list(
        AuditEvent.objects.filter(sequence__gt=start)
        .order_by("sequence")
        .values_list("sequence", flat=True)
    )
    assert sequences == list(range(start + 1, start + 1 + 2 * steps))
    assert audit_chain_verify().intact
    assert {r.title for r in CreditRecord.objects.filter(pk__in=[r.pk for r in records])} == {
        f"step {steps - 1}"
    }
