"""Imports of several chunks: subjects shared across chunks, direct copies falling back to the
staged upsert when a chunk meets stored rows, and errors part way leaving nothing behind.

CHUNK_ROWS is made tiny so that a few rows span several chunks. On PostgreSQL (CI) new rows take
the direct COPY path and a reader thread produces the chunks; on SQLite every chunk is staged.
"""

from __future__ import annotations

import random
import threading

import pytest
from django.db import connection, transaction

from records import identifiers
from records.crypto import identifier_hash
from records.imports import ImportFileInvalid, pipeline, writers
from records.models import CreditRecord, CreditRecordVersion, ImportBatch, Subject
from tests.conftest import FLUSHABLE_APPS
from tests.factories import AgencyFactory
from tests.records.test_imports import (
    COMPANY_ID,
    OTHER_PERSON_ID,
    PERSON_ID,
    csv_bytes,
    row,
    run_import,
)

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("import_day")]


@pytest.fixture(autouse=True)
def two_rows_per_chunk(monkeypatch):
    monkeypatch.setattr(pipeline, "CHUNK_ROWS", 2)


def stored() -> dict[str, tuple[str, int, int]]:
    """record number -> (title, version, subject id)"""
    return {
        number: (title, version, subject_id)
        for number, title, version, subject_id in CreditRecord.objects.values_list(
            "record_number", "title", "version", "subject_id"
        )
    }


def subject_id(identifier: str, kind: str = "person") -> int:
    return Subject.objects.get(identifier_hash=identifier_hash(kind, identifier)).pk


def test_rows_across_chunks_land_once_with_their_subjects(agency):
    company = {
        "subject_kind": "organisation",
        "subject_identifier": COMPANY_ID,
        "subject_name": "上海华信贸易有限公司",
    }
    rows = [
        row("R-1"),  # chunk 1: PERSON_ID first seen
        row("R-2", subject_identifier=OTHER_PERSON_ID, subject_name="李娜"),
        row("R-3", category="parking-fines"),  # refused: outside the catalogue
        row("R-4", conduct_ended_on=""),  # chunk 2: PERSON_ID again, no end of conduct
        row("R-5", **company),
        row("R-1", title="重复"),  # refused: first on line 2, two chunks back
        row("R-7", subject_identifier=OTHER_PERSON_ID, subject_name="李娜"),  # chunk 3
    ]

    report = run_import(agency, csv_bytes(rows))

    assert (report.rows_total, report.rows_inserted, report.rows_rejected) == (7, 5, 2)
    assert {(error.line, error.field) for error in report.errors} == {
        (4, "category"),
        (7, "record_number"),
    }
    person, other = subject_id(PERSON_ID), subject_id(OTHER_PERSON_ID)
    company_id = subject_id(COMPANY_ID, "organisation")
    assert Subject.objects.count() == 3
    assert {number: subject for number, (_, _, subject) in stored().items()} == {
        "R-1": person,
        "R-2": other,
        "R-4": person,
        "R-5": company_id,
        "R-7": other,
    }
    assert CreditRecord.objects.get(record_number="R-4").conduct_ended_on is None
    assert CreditRecord.objects.get(record_number="R-1").title == row("R-1")["title"]
    public_ids = list(CreditRecord.objects.order_by("id").values_list("public_id", flat=True))
    assert len(set(public_ids)) == 5


def test_a_chunk_meeting_stored_rows_is_upserted_and_later_chunks_go_direct_again(agency):
    run_import(agency, csv_bytes([row("R-1"), row("R-2"), row("R-3")]))
    before = stored()

    report = run_import(
        agency,
        csv_bytes(
            [
                row("R-4"),  # chunk 1: new
                row("R-5"),
                row("R-1", title="销售过期食品"),  # chunk 2: changed
                row("R-2"),  # unchanged
                row("R-6"),  # chunk 3: new again
                row("R-7"),
                row("R-3"),  # chunk 4: unchanged
            ]
        ),
    )

    assert (report.rows_inserted, report.rows_updated, report.rows_unchanged) == (4, 1, 2)
    after = stored()
    assert sorted(after) == ["R-1", "R-2", "R-3", "R-4", "R-5", "R-6", "R-7"]
    assert after["R-1"][:2] == ("销售过期食品", 2)
    assert after["R-2"] == before["R-2"]
    assert after["R-3"] == before["R-3"]
    version = CreditRecordVersion.objects.get()
    assert (version.record.record_number, version.version, version.title) == (
        "R-1",
        1,
        before["R-1"][0],
    )
    assert Subject.objects.count() == 1


def test_a_subject_stored_by_another_agency_is_reused_not_duplicated(agency):
    other_agency = AgencyFactory(code="shanghai-tax", jurisdiction=agency.jurisdiction)
    run_import(other_agency, csv_bytes([row("T-1", subject_identifier=OTHER_PERSON_ID)]))
    existing = subject_id(OTHER_PERSON_ID)

    # Chunk 1 holds PERSON_ID (new) and OTHER_PERSON_ID (stored already, but not committed:
    # on PostgreSQL the reader thread's own connection does not see it, as it would not see a
    # subject a concurrent import stores after the reader looked). The reader reserves an id
    # for it, the direct copy of the chunk's subjects clashes, they go through the staged
    # insert, and the records written with the reserved id are pointed at the stored subject.
    report = run_import(
        agency,
        csv_bytes(
            [
                row("R-1"),
                row("R-2", subject_identifier=OTHER_PERSON_ID),
                row(
                    "R-3",
                    subject_identifier=COMPANY_ID,
                    subject_kind="organisation",
                    category="abnormal-operation",
                ),
            ]
        ),
    )

    assert report.rows_inserted == 3
    assert Subject.objects.count() == 3
    assert stored()["R-2"][2] == existing
    assert stored()["R-1"][2] == subject_id(PERSON_ID)
    assert stored()["R-3"][2] == subject_id(COMPANY_ID, "organisation")
    referenced = set(CreditRecord.objects.values_list("subject_id", flat=True))
    assert referenced <= set(Subject.objects.values_list("id", flat=True))


def test_an_unreadable_line_in_a_later_chunk_leaves_nothing_behind(agency):
    run_import(agency, csv_bytes([row("R-1")]))
    before = (stored(), Subject.objects.count(), ImportBatch.objects.count())
    content = csv_bytes(
        [
            row("R-2", subject_identifier=OTHER_PERSON_ID),
            row("R-3"),
            row("R-1", title="改动"),
            row("R-4", subject_identifier=COMPANY_ID, subject_kind="organisation"),
        ]
    ) + "R-9,person,坏\n".encode("gb18030")

    with pytest.raises(ImportFileInvalid, match="not UTF-8") as caught:
        run_import(agency, content)

    assert caught.value.extra["line"] == 6  # the header, four rows, then the bad line

    assert (stored(), Subject.objects.count(), ImportBatch.objects.count()) == before
    assert CreditRecordVersion.objects.count() == 0
    assert not [t for t in threading.enumerate() if t.name == "import-reader"]


def test_a_database_error_part_way_stops_the_reader_and_keeps_nothing(agency, monkeypatch):
    written: list[writers._Chunk] = []
    original = writers._Writer.write

    def fail_on_third(self, chunk):
        if len(written) == 2:
            raise RuntimeError("disk full")
        written.append(chunk)
        original(self, chunk)

    monkeypatch.setattr(writers._Writer, "write", fail_on_third)
    rows = [row(f"R-{number}") for number in range(1, 30)]

    with pytest.raises(RuntimeError, match="disk full"):
        run_import(agency, csv_bytes(rows))

    assert CreditRecord.objects.count() == 0
    assert Subject.objects.count() == 0
    assert not [t for t in threading.enumerate() if t.name == "import-reader"]


def test_reader_errors_reach_the_consumer_and_an_abandoned_reader_stops():
    def broken():
        yield "first"
        raise ValueError("malformed")

    produced = pipeline._read_ahead(broken())  # type: ignore[arg-type]
    assert next(produced) == "first"
    with pytest.raises(ValueError, match="malformed"):
        next(produced)

    endless = pipeline._read_ahead(iter(range(10**9)))  # type: ignore[arg-type]
    assert [next(endless) for _ in range(3)] == [0, 1, 2]
    endless.close()
    assert not [t for t in threading.enumerate() if t.name == "import-reader"]


@pytest.mark.postgres
def test_new_rows_are_copied_without_staging_on_postgresql(agency):
    statements: list[str] = []

    def log(execute, sql, params, many, context):
        statements.append(sql)
        return execute(sql, params, many, context)

    with connection.execute_wrapper(log):
        run_import(agency, csv_bytes([row(f"R-{number}") for number in range(1, 6)]))

    assert CreditRecord.objects.count() == 5
    assert not [sql for sql in statements if "FROM import_staging" in sql]


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True, available_apps=FLUSHABLE_APPS)
def test_committed_subjects_are_reused_and_one_deleted_in_the_same_transaction_is_stored_again(
    agency,
):
    # Committed: the reader thread's own connection sees these subjects, reserves new ids for
    # them anyway, and the writer maps those to the stored subjects.
    run_import(agency, csv_bytes([row("R-1"), row("R-2", subject_identifier=OTHER_PERSON_ID)]))
    person, other = subject_id(PERSON_ID), subject_id(OTHER_PERSON_ID)

    report = run_import(
        agency,
        csv_bytes([row("R-3"), row("R-4", subject_identifier=OTHER_PERSON_ID), row("R-5")]),
    )

    assert report.rows_inserted == 3
    assert Subject.objects.count() == 2
    assert {number: subject for number, (_, _, subject) in stored().items()} == {
        "R-1": person,
        "R-2": other,
        "R-3": person,
        "R-4": other,
        "R-5": person,
    }

    # A subject with no records deleted earlier in the import's own transaction, which the
    # reader's connection still sees as stored, is stored again and the record points at it.
    CreditRecord.objects.filter(subject_id=other).delete()
    with transaction.atomic():
        Subject.objects.filter(pk=other).delete()
        run_import(agency, csv_bytes([row("R-6", subject_identifier=OTHER_PERSON_ID)]))

    stored_again = subject_id(OTHER_PERSON_ID)
    assert stored()["R-6"][2] == stored_again
    referenced = set(CreditRecord.objects.values_list("subject_id", flat=True))
    assert referenced <= set(Subject.objects.values_list("id", flat=True))


@pytest.mark.postgres
def test_an_import_holds_one_database_connection_however_many_chunks_it_reads(agency):
    # given a file of many chunks, each naming subjects new to the file
    from tests.conftest import other_connection

    rows = [
        row(f"R-{n}", subject_identifier=identifiers.make_resident_id(random.Random(n)))
        for n in range(40)
    ]
    sessions: list[int] = []
    done = threading.Event()

    def watch() -> None:
        with other_connection() as cursor:
            while not done.is_set():
                cursor.execute(
                    "SELECT count(*) FROM pg_stat_activity "
                    "WHERE datname = current_database() AND pid <> pg_backend_pid()"
                )
                sessions.append(cursor.fetchone()[0])

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        # when it is imported (the test's own connection is the import's)
        report = run_import(agency, csv_bytes(rows))
    finally:
        done.set()
        watcher.join()

    # then no other session was opened for it: the reader thread works without the database
    assert report.rows_inserted == 40
    assert sessions
    assert max(sessions) == 1
