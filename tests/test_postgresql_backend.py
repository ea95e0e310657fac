"""The PostgreSQL backend: BEGIN and queued statements travel with other statements.

Every query string the backend sends is recorded (`sent`), so these tests can say what went to
the server, in how many round trips, and what the server did with it.
"""

from __future__ import annotations

import io

import psycopg2
import pytest
from django.db import DatabaseError, connection, transaction
from django.db.backends.postgresql.psycopg_any import IsolationLevel
from django.db.utils import ProgrammingError

from audit.models import AuditEvent
from audit.services import audit_record
from audit.verify import audit_chain_verify
from records.models import CreditRecord
from scs_cases.db.postgresql import base
from tests.conftest import FLUSHABLE_APPS, head_sequence, other_connection
from tests.factories import CreditRecordFactory

pytestmark = pytest.mark.postgres
transactional = pytest.mark.django_db(transaction=True, available_apps=FLUSHABLE_APPS)


def mark_once(record: CreditRecord) -> None:
    """Inside the caller's transaction: set the flag and audit it."""
    locked = CreditRecord.objects.select_for_update().get(pk=record.pk)
    locked.under_objection = True
    locked.save(update_fields=["under_objection", "updated_at"])
    audit_record(actor=None, action="record.marked", target=locked, data={})


def mark(record: CreditRecord, *, audited: bool) -> None:
    """The benchmark's state change: lock the record, flip a flag, optionally audit it."""
    with transaction.atomic():
        locked = CreditRecord.objects.select_for_update().get(pk=record.pk)
        locked.under_objection = not locked.under_objection
        locked.save(update_fields=["under_objection", "updated_at"])
        if audited:
            audit_record(actor=None, action="record.marked", target=locked, data={})


@transactional
def test_a_transaction_takes_one_round_trip_per_statement_and_none_for_begin(sent):
    record = CreditRecordFactory()
    sent.clear()

    mark(record, audited=False)

    assert len(sent) == 3
    assert sent[0].startswith("BEGIN;SELECT ")
    assert sent[0].endswith("FOR UPDATE")
    assert sent[1].startswith("UPDATE ")
    assert sent[2] == "COMMIT"
    record.refresh_from_db()
    assert record.under_objection is True


@transactional
def test_an_audit_event_travels_with_the_commit(sent):
    record = CreditRecordFactory()
    start = head_sequence()
    sent.clear()

    mark(record, audited=True)

    assert len(sent) == 3
    assert sent[2].startswith("SELECT audit_append(")
    assert sent[2].endswith(";COMMIT")
    event = AuditEvent.objects.get(sequence=start + 1)
    assert (event.action, event.target_id) == ("record.marked", str(record.pk))
    assert head_sequence() == start + 1
    assert audit_chain_verify().intact


@transactional
def test_a_transaction_without_statements_sends_nothing(sent):
    with transaction.atomic():
        pass

    assert sent == []
    assert connection.connection.get_transaction_status() == (
        psycopg2.extensions.TRANSACTION_STATUS_IDLE
    )


@transactional
def test_the_first_statement_opens_a_real_transaction_that_holds_its_locks(sent):
    record = CreditRecordFactory()
    with other_connection() as cursor:
        with transaction.atomic():
            CreditRecord.objects.select_for_update().get(pk=record.pk)
            # The lock outlives the statement: the BEGIN in front of it made a transaction.
            with pytest.raises(psycopg2.errors.LockNotAvailable):
                cursor.execute(
                    "SELECT 1 FROM records_creditrecord WHERE id = %s FOR UPDATE NOWAIT",
                    [record.pk],
                )
        cursor.execute(
            "SELECT 1 FROM records_creditrecord WHERE id = %s FOR UPDATE NOWAIT", [record.pk]
        )
        assert cursor.fetchone() == (1,)


@transactional
def test_outside_a_transaction_each_statement_commits_on_its_own(sent):
    record = CreditRecordFactory(title="before")

    CreditRecord.objects.filter(pk=record.pk).update(title="after")

    assert sent[-1].startswith("UPDATE ")
    assert not sent[-1].startswith("BEGIN")
    with other_connection() as cursor:
        cursor.execute("SELECT title FROM records_creditrecord WHERE id = %s", [record.pk])
        assert cursor.fetchone() == ("after",)


@transactional
def test_a_queued_event_is_visible_to_the_next_statement_of_its_transaction(sent):
    start = head_sequence()

    with transaction.atomic():
        audit_record(actor=None, action="record.marked", target_type="t", target_id=1)
        seen = AuditEvent.objects.filter(sequence__gt=start).count()
        carrier = sent[-1]

    assert seen == 1
    assert carrier.startswith("BEGIN;SELECT audit_append(")
    assert sent[-1] == "COMMIT"


@transactional
def test_a_rollback_drops_queued_events_and_the_change(sent):
    record = CreditRecordFactory()
    start = head_sequence()
    sent.clear()

    def change_that_fails() -> None:
        with transaction.atomic():
            mark_once(record)
            raise ZeroDivisionError

    with pytest.raises(ZeroDivisionError):
        change_that_fails()

    assert sent[-1] == "ROLLBACK"
    assert not any("audit_append" in query for query in sent)
    record.refresh_from_db()
    assert record.under_objection is False
    assert head_sequence() == start
    assert not AuditEvent.objects.filter(sequence__gt=start).exists()


@transactional
def test_a_rollback_to_a_savepoint_drops_only_the_events_queued_inside_it(sent):
    start = head_sequence()

    def inner_step_that_fails() -> None:
        with transaction.atomic():
            audit_record(actor=None, action="inner.dropped", target_type="t", target_id=2)
            raise ZeroDivisionError

    with transaction.atomic():
        audit_record(actor=None, action="outer.kept", target_type="t", target_id=1)
        with pytest.raises(ZeroDivisionError):
            inner_step_that_fails()
        audit_record(actor=None, action="outer.after", target_type="t", target_id=3)

    actions = list(
        AuditEvent.objects.filter(sequence__gt=start)
        .order_by("sequence")
        .values_list("sequence", "action")
    )
    assert actions == [(start + 1, "outer.kept"), (start + 2, "outer.after")]
    assert not any("inner.dropped" in query for query in sent)
    assert audit_chain_verify().intact


@transactional
def test_an_append_that_fails_at_commit_rolls_back_the_whole_transaction(sent):
    record = CreditRecordFactory()
    start = head_sequence()

    def change_whose_last_statement_fails() -> None:
        with transaction.atomic():
            mark_once(record)
            connection.run_with_next_statement("SELECT 1 / %s", [0])

    with pytest.raises(DatabaseError, match="division by zero"):
        change_whose_last_statement_fails()

    assert sent[-1] == "ROLLBACK"
    assert connection.connection.get_transaction_status() == (
        psycopg2.extensions.TRANSACTION_STATUS_IDLE
    )
    record.refresh_from_db()
    assert record.under_objection is False
    assert head_sequence() == start
    # The connection is usable afterwards.
    mark(record, audited=True)
    assert head_sequence() == start + 1


@pytest.mark.django_db
def test_a_missing_chain_head_fails_the_change_it_should_have_recorded():
    record = CreditRecordFactory()
    with connection.cursor() as cursor:
        # What only a database owner could do; the test's transaction rolls it back.
        cursor.execute("ALTER TABLE audit_auditchainhead DISABLE TRIGGER audit_head_no_delete")
        cursor.execute("DELETE FROM audit_auditchainhead")

    with pytest.raises(DatabaseError, match="audit chain head is missing"):
        mark(record, audited=True)

    assert CreditRecord.objects.get(pk=record.pk).under_objection is False
    assert not AuditEvent.objects.filter(target_id=str(record.pk)).exists()


@transactional
def test_parameters_that_do_not_fit_send_nothing_and_keep_the_begin(sent):
    record = CreditRecordFactory(title="before")
    sent.clear()

    with transaction.atomic():
        with pytest.raises(IndexError), connection.cursor() as cursor:
            cursor.execute("SELECT %s, %s", [1])
        assert sent == []
        CreditRecord.objects.filter(pk=record.pk).update(title="inside")
        transaction.set_rollback(True)

    assert sent[0].startswith("BEGIN;UPDATE ")
    assert sent[-1] == "ROLLBACK"
    record.refresh_from_db()
    assert record.title == "before"


@transactional
def test_a_first_statement_the_server_cannot_parse_leaves_the_begin_for_the_next(sent):
    record = CreditRecordFactory(title="before")
    start = head_sequence()
    sent.clear()

    def statement_with_a_syntax_error() -> None:
        with connection.cursor() as cursor:
            cursor.execute("SELEC 1")

    with transaction.atomic():
        audit_record(actor=None, action="record.marked", target_type="t", target_id=1)
        with pytest.raises(DatabaseError, match="syntax error"):
            statement_with_a_syntax_error()
        # The server refused the whole string, BEGIN included; the next statement carries it.
        CreditRecord.objects.filter(pk=record.pk).update(title="inside")
        transaction.set_rollback(True)

    assert sent[0].startswith("BEGIN;SELECT audit_append(")
    assert sent[0].endswith(";SELEC 1")
    assert sent[1].startswith("BEGIN;SELECT audit_append(")
    assert sent[-1] == "ROLLBACK"
    record.refresh_from_db()
    assert record.title == "before"
    assert head_sequence() == start


@transactional
def test_copy_as_the_first_statement_runs_inside_the_transaction(sent):
    with connection.cursor() as cursor:
        cursor.execute("CREATE TABLE backend_copy_target (value integer)")
    sent.clear()

    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.copy_expert("COPY backend_copy_target FROM STDIN", io.StringIO("1\n2\n"))
        transaction.set_rollback(True)

    assert sent[:2] == ["BEGIN;", "COPY backend_copy_target FROM STDIN <- file"]
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM backend_copy_target")
        assert cursor.fetchone() == (0,)
        cursor.execute("DROP TABLE backend_copy_target")


@transactional
def test_a_server_side_cursor_after_a_queued_event_sees_it(sent):
    records = CreditRecordFactory.create_batch(3)
    start = head_sequence()

    with transaction.atomic():
        audit_record(actor=None, action="record.marked", target_type="t", target_id=1)
        ids = [record.pk for record in CreditRecord.objects.order_by("pk").iterator(chunk_size=2)]
        events = AuditEvent.objects.filter(sequence__gt=start).count()

    assert ids == [record.pk for record in records]
    assert events == 1
    assert head_sequence() == start + 1


@transactional
def test_a_long_run_of_queued_statements_is_sent_in_batches(sent):
    start = head_sequence()
    sent.clear()

    with transaction.atomic():
        for index in range(base.MAX_QUEUED + 1):
            audit_record(actor=None, action="record.marked", target_type="t", target_id=index)

    assert len(sent) == 2
    assert sent[0].startswith("BEGIN;SELECT audit_append(")
    assert sent[0].count("audit_append(") == base.MAX_QUEUED
    assert sent[1].count("audit_append(") == 1
    assert sent[1].endswith(";COMMIT")
    assert head_sequence() == start + base.MAX_QUEUED + 1
    assert audit_chain_verify().intact


@transactional
def test_statements_are_queued_only_inside_a_transaction():
    with pytest.raises(ProgrammingError, match="only inside a transaction"):
        connection.run_with_next_statement("SELECT 1", [])


@transactional
def test_a_configured_isolation_level_is_in_the_begin():
    settings = {
        **connection.settings_dict,
        "OPTIONS": {
            **connection.settings_dict["OPTIONS"],
            "isolation_level": IsolationLevel.REPEATABLE_READ,
        },
    }
    wrapper = base.DatabaseWrapper(settings, alias="repeatable_read")
    wrapper.set_autocommit(False)
    with wrapper.cursor() as cursor:
        cursor.execute("SHOW transaction_isolation")
        level = cursor.fetchone()[0]
    wrapper.rollback()
    wrapper.set_autocommit(True)
    wrapper.close()

    assert level == "repeatable read"
