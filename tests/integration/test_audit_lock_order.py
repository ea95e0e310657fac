"""The chain head is the last lock a transaction takes: no lock-order cycle with an import.

Before, routing appended its event (taking the chain-head lock) and then waited for a record row
held by an import, which in turn waited for the head at its end: a deadlock, one of them failed.
Now every audited transaction writes its events in one statement just before it commits, so
routing waits for the record without holding the head, and both commit.
"""

from __future__ import annotations

import threading

import pytest
from django.db import connection, connections

from audit.services import audit_record, audited
from audit.verify import audit_chain_verify
from objections.services import case_route
from records.models import CreditRecord
from tests.conftest import FLUSHABLE_APPS, other_connection
from tests.integration.conftest import World, wait_for

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.redis,
    pytest.mark.django_db(transaction=True, available_apps=FLUSHABLE_APPS),
]


def test_routing_waits_for_a_record_held_by_an_import_without_holding_the_chain_head(
    world: World,
) -> None:
    # given a filed Shanghai objection, and an import's transaction holding its record's row
    record = world.sh_records[0]
    case = world.file(record)
    locked, release = threading.Event(), threading.Event()
    errors: list[BaseException] = []

    def importer() -> None:
        try:
            with audited():
                row = CreditRecord.objects.select_for_update().get(pk=record.pk)
                row.facts = "导入的新事实"
                row.save(update_fields=["facts", "updated_at"])
                audit_record(actor=None, action="records.import_applied", target=row)
                locked.set()
                assert release.wait(30)
        except BaseException as error:  # reported to the test thread
            errors.append(error)
        finally:
            connections.close_all()

    def router() -> None:
        try:
            case_route(case_id=case.pk)
        except BaseException as error:  # reported to the test thread
            errors.append(error)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=importer)]
    threads[0].start()
    assert locked.wait(30)

    # when routing runs and reaches the automatic marking of that record
    threads.append(threading.Thread(target=router))
    threads[1].start()
    wait_for(someone_waits_for_a_lock, timeout=30, what="routing to wait for the record")

    # then, while it waits, nobody holds the chain head
    with other_connection() as cursor:
        cursor.execute("BEGIN")
        cursor.execute("SELECT sequence FROM audit_auditchainhead WHERE id = 1 FOR UPDATE NOWAIT")
        cursor.execute("ROLLBACK")

    # and when the import commits, routing carries on: both succeed
    release.set()
    for thread in threads:
        thread.join(30)
    assert errors == []
    case.refresh_from_db()
    record.refresh_from_db()
    assert (case.state, record.under_objection, record.facts) == ("marked", True, "导入的新事实")
    assert world.events("case.routed", case) != []
    assert audit_chain_verify().intact


def someone_waits_for_a_lock() -> bool:
    """Some backend waits for a row lock of the records table."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_locks l JOIN pg_stat_activity a USING (pid) "
            "WHERE NOT l.granted AND a.datname = current_database()"
        )
        return int(cursor.fetchone()[0]) > 0
