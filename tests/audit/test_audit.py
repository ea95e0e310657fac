"""The audit core: one writer inside a transaction, a gap-free hash chain, append-only storage."""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime

import pytest
from django.core.management import CommandError, call_command
from django.db import DatabaseError, connection, transaction

from audit.context import request_id_var
from audit.models import GENESIS_HASH, AuditChainHead, AuditEvent
from audit.services import AuditOutsideTransaction, audit_record, chain_hash
from audit.verify import audit_chain_verify
from tests.conftest import FLUSHABLE_APPS, head_sequence
from tests.factories import UserFactory


def record_events(count: int, actor=None) -> list[AuditEvent]:
    """Append `count` events and load them back as stored."""
    start = head_sequence()
    for index in range(count):
        audit_record(
            actor=actor,
            action="record.marked",
            target_type="records.creditrecord",
            target_id=index,
            data={"under_objection": index % 2 == 0},
        )
    return list(AuditEvent.objects.filter(sequence__gt=start).order_by("sequence"))


def raw(sql: str) -> None:
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(sql)


def without_append_only_triggers() -> None:
    """What an attacker with owner rights could do; the test's transaction rolls it back."""
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("ALTER TABLE audit_auditevent DISABLE TRIGGER audit_event_append_only")
        else:
            cursor.execute("DROP TRIGGER audit_event_no_update")
            cursor.execute("DROP TRIGGER audit_event_no_delete")


@pytest.mark.django_db
def test_events_form_a_gap_free_hash_chain():
    start = head_sequence()
    previous = AuditChainHead.objects.get(pk=1).hash
    actor = UserFactory(role="caseworker")

    stored = record_events(3, actor=actor)

    assert [event.sequence for event in stored] == [start + 1, start + 2, start + 3]
    assert [event.target_id for event in stored] == ["0", "1", "2"]  # in the order recorded
    for event in stored:
        assert event.previous_hash == previous
        assert event.hash == chain_hash(
            previous_hash=previous, sequence=event.sequence, canonical=event.canonical
        )
        previous = event.hash
    head = AuditChainHead.objects.get(pk=1)
    assert (head.sequence, head.hash) == (start + 3, stored[-1].hash)
    assert stored[0].actor_id == actor.pk
    assert stored[0].actor_role == "caseworker"


@pytest.mark.django_db
def test_event_stores_the_exact_canonical_text_it_hashed():
    start = head_sequence()
    token = request_id_var.set("req-42")
    try:
        audit_record(
            actor=None,
            action="record.corrected",
            target_type="records.creditrecord",
            target_id=7,
            case_reference="SH-2026-000123",
            data={"fields": ["title"], "b": 1},
        )
    finally:
        request_id_var.reset(token)

    stored = AuditEvent.objects.get(sequence__gt=start)
    content = json.loads(stored.canonical)
    assert content == {
        "action": "record.corrected",
        "actor": None,
        "case": "SH-2026-000123",
        "data": {"b": 1, "fields": ["title"]},
        "recorded_at": stored.recorded_at.isoformat(),
        "request": "req-42",
        "role": "system",
        "target": ["records.creditrecord", "7"],
    }
    assert stored.canonical == json.dumps(
        content, sort_keys=True, separators=(",", ":"), ensure_ascii=False
    )
    assert (stored.request_id, stored.case_reference, stored.target_id) == (
        "req-42",
        "SH-2026-000123",
        "7",
    )
    assert stored.payload == {"b": 1, "fields": ["title"]}


@pytest.mark.django_db
def test_rolled_back_change_leaves_no_event_and_no_gap():
    start = head_sequence()

    def change_that_fails() -> None:
        with transaction.atomic():
            record_events(2)
            raise ZeroDivisionError

    with pytest.raises(ZeroDivisionError):
        change_that_fails()
    record_events(1)

    assert list(
        AuditEvent.objects.filter(sequence__gt=start).values_list("sequence", flat=True)
    ) == [start + 1]
    assert audit_chain_verify().intact


@pytest.mark.django_db(transaction=True, available_apps=FLUSHABLE_APPS)
def test_audit_record_refuses_to_run_outside_a_transaction():
    start = head_sequence()

    with pytest.raises(AuditOutsideTransaction, match="must run inside the transaction"):
        audit_record(actor=None, action="record.marked", data={})

    assert head_sequence() == start
    assert not AuditEvent.objects.filter(sequence__gt=start).exists()


@pytest.mark.django_db
@pytest.mark.parametrize(
    "sql",
    [
        "UPDATE audit_auditevent SET action = 'record.deleted'",
        "DELETE FROM audit_auditevent",
        "DELETE FROM audit_auditevent WHERE sequence = {sequence}",
    ],
)
def test_update_and_delete_on_the_audit_table_fail_in_the_database(sql):
    event = record_events(1)[0]

    with pytest.raises(DatabaseError, match="append-only"):
        raw(sql.format(sequence=event.sequence))

    stored = AuditEvent.objects.get(pk=event.sequence)
    assert (stored.action, stored.canonical, stored.hash) == (
        "record.marked",
        event.canonical,
        event.hash,
    )


@pytest.mark.django_db
@pytest.mark.postgres
def test_truncate_on_the_audit_tables_fails_in_postgresql():
    record_events(1)
    count = AuditEvent.objects.count()

    with pytest.raises(DatabaseError, match="append-only: TRUNCATE"):
        raw("TRUNCATE audit_auditevent")
    with pytest.raises(DatabaseError, match="append-only: TRUNCATE"):
        raw("TRUNCATE audit_auditchainhead")

    assert AuditEvent.objects.count() == count


@pytest.mark.django_db
@pytest.mark.postgres
def test_triggers_fire_even_in_replica_mode():
    record_events(1)

    def delete_as_replica() -> None:
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute("SET LOCAL session_replication_role = replica")
            cursor.execute("DELETE FROM audit_auditevent")

    with pytest.raises(DatabaseError, match="append-only"):
        delete_as_replica()


@pytest.mark.django_db
def test_chain_head_only_advances_one_event_at_a_time():
    record_events(1)
    head = AuditChainHead.objects.get(pk=1)

    with pytest.raises(DatabaseError):
        raw("UPDATE audit_auditchainhead SET sequence = sequence + 5")
    with pytest.raises(DatabaseError):
        raw("DELETE FROM audit_auditchainhead")

    assert AuditChainHead.objects.get(pk=1).sequence == head.sequence


@pytest.mark.django_db
def test_audit_verify_passes_on_an_intact_log():
    record_events(5)
    out = io.StringIO()

    call_command("audit_verify", no_progress=True, stdout=out)

    head = AuditChainHead.objects.get(pk=1)
    assert out.getvalue().strip() == (
        f"audit chain intact: {head.sequence} events, last event {head.sequence}, "
        f"head hash {head.hash}"
    )


@pytest.mark.django_db
def test_editing_one_payload_makes_audit_verify_fail_at_that_event():
    events = record_events(5)
    target = events[2]
    without_append_only_triggers()
    tampered = target.canonical.replace('"under_objection":true', '"under_objection":false')
    assert tampered != target.canonical
    AuditEvent.objects.filter(pk=target.pk).update(canonical=tampered)

    with pytest.raises(CommandError) as caught:
        call_command("audit_verify", no_progress=True)

    assert str(caught.value) == (
        f"audit chain broken at event {target.sequence}: hash does not match the event's "
        f"content ({target.sequence - 1} events verified before it)"
    )


@pytest.mark.django_db
def test_deleting_an_event_makes_audit_verify_fail_at_the_gap():
    events = record_events(3)
    without_append_only_triggers()
    AuditEvent.objects.filter(pk=events[1].pk).delete()

    result = audit_chain_verify()

    assert result.broken is not None
    assert (result.broken.sequence, result.broken.reason) == (
        events[1].sequence,
        f"event {events[1].sequence} is missing",
    )


@pytest.mark.django_db
def test_cutting_the_tail_is_caught_by_the_chain_head():
    events = record_events(3)
    without_append_only_triggers()
    AuditEvent.objects.filter(pk=events[-1].pk).delete()

    result = audit_chain_verify()

    assert result.broken is not None
    assert result.broken.reason == (
        f"chain head is at event {events[-1].sequence} but the log ends at event "
        f"{events[-2].sequence}"
    )


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("column", "value"),
    [
        ("action", "record.deleted"),
        ("actor_id", 999_999),
        ("actor_role", "administrator"),
        ("target_type", "records.subject"),
        ("target_id", "77"),
        ("case_reference", "SH-2026-999999"),
        ("request_id", "forged-request"),
        ("recorded_at", datetime(2020, 1, 1, tzinfo=UTC)),
    ],
)
@pytest.mark.django_db
def test_plain_verify_catches_an_edited_column(column: str, value: object):
    """Every column is covered: the hashed text holds each, and plain verification compares."""
    events = record_events(3)
    without_append_only_triggers()
    AuditEvent.objects.filter(pk=events[1].pk).update(**{column: value})

    result = audit_chain_verify()

    assert result.broken is not None
    assert (result.broken.sequence, result.broken.reason) == (
        events[1].sequence,
        "the event's columns differ from its hashed content",
    )


@pytest.mark.django_db
def test_first_event_links_to_the_genesis_hash():
    record_events(1)

    first = AuditEvent.objects.order_by("sequence").first()

    assert first is not None
    assert (first.sequence, first.previous_hash) == (1, GENESIS_HASH)
