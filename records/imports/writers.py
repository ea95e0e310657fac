"""Writing an import's rows: COPY text, the records and subjects written chunk by chunk, and the
set-based upsert that keeps a changed record's previous content as a version."""

from __future__ import annotations

import io
import json
import re
from dataclasses import dataclass, field
from datetime import date
from typing import TYPE_CHECKING, Any

from django.db import IntegrityError, connection, transaction

from records.models import CreditRecord
from records.services import CONTENT_FIELDS

if TYPE_CHECKING:
    pass


_RECORD_COLUMNS = (
    "record_number",
    "category_id",
    "title",
    "facts",
    "decision_document_number",
    "decision_date",
    "conduct_ended_on",
    "publication_start",
    "publication_end",
    "retention_end",
    "status",
    "content_hash",
    "public_id",
    "agency_id",
    "under_objection",
    "version",
    "created_at",
    "updated_at",
    "subject_id",
)
_RECORD_COLUMN_LIST = ", ".join(_RECORD_COLUMNS)
_STAGING_COLUMNS = (
    "record_number text, category_id bigint, title text, facts text, "
    "decision_document_number text, decision_date date, conduct_ended_on date, "
    "publication_start date, publication_end date, retention_end date, status text, "
    "content_hash text, public_id {uuid}, agency_id bigint, under_objection boolean, "
    "version integer, created_at {timestamp}, updated_at {timestamp}, subject_id bigint"
)
_SUBJECT_STAGING_COLUMNS = (
    "identifier_hash text, kind text, name text, identifier_encrypted {bytes}, "
    "identifier_masked text, public_id {uuid}"
)


_NULL = "\\N"
_COPY_SPECIAL = re.compile(r"[\\\t\n\r]")


def _copy_escape(value: str) -> str:
    if "\\" in value or "\t" in value or "\n" in value or "\r" in value:
        value = (
            value.replace("\\", "\\\\")
            .replace("\t", "\\t")
            .replace("\n", "\\n")
            .replace("\r", "\\r")
        )
    return value


# Shared by imports, taken exclusively by the delete guard on subjects, agencies and catalogue
# entries (records migration 0002): no referenced row disappears while an import writes.
IMPORT_LOCK_KEY = 7261034


@dataclass
class _Chunk:
    """Validated rows and the subjects first seen among them, ready to be written.

    `lines` are the records without the subject's id (COPY text on PostgreSQL, a tuple of values
    on SQLite, so nothing is parsed back), `subject_hashes` the subject of each. On PostgreSQL
    the reader thread has also formatted each new subject as COPY text but for its leading id
    (`subject_tails`: hash, the line after the id), and the writer, on the import's one
    connection, reserves their ids and completes the text. On SQLite `subjects` holds the new
    subjects as tuples and the writer resolves the ids.
    """

    rows: int
    subject_tails: list[tuple[str, str]] = field(default_factory=list)
    lines: list[Any] = field(default_factory=list)
    subject_hashes: list[str] = field(default_factory=list)  # of each line
    subjects: list[tuple[Any, ...]] = field(default_factory=list)


_SUBJECT_COLUMNS = (
    "id, identifier_hash, kind, name, identifier_encrypted, identifier_masked, public_id, "
    "on_serious_dishonesty_list, created_at, updated_at"
)


class _Writer:
    """Writes the chunks' records, and the batch's new subjects.

    A chunk of records that are all new (the common case: an agency pushing new decisions) is
    copied straight into the records table inside a savepoint. When a row's number already
    exists there, the savepoint is rolled back and the chunk goes through a staging table and
    set-based SQL instead: changed records keep their old content as a version, unchanged ones
    are left alone. The next chunk tries the direct path again once a chunk is all new.

    On PostgreSQL the subjects new to the file are stored by `finish`, all at once and in the
    order of their blind index, so that concurrent imports naming the same new subjects take
    their locks in one order and wait for each other instead of deadlocking. Those stored
    already (by an earlier or a concurrent import) are skipped, and the records written with
    the ids reserved for them are pointed at the stored ones. (The records' subject foreign key
    is not a database constraint, so records may be written before their subjects.)
    """

    def __init__(self, cursor: Any, *, postgresql: bool, agency_id: int, batch_id: int, now: Any):
        self.cursor = cursor
        self.postgresql = postgresql
        self.agency_id = agency_id
        self.batch_id = batch_id
        self.now = now
        self.staged = self.inserted = self.updated = 0
        # Every subject the file names: id by hash (PostgreSQL: the new ones get reserved ids).
        self.subject_ids: dict[str, int] = {}
        self.subject_sequence = _subject_sequence() if postgresql else ""
        # PostgreSQL: the new subjects of every chunk (hash, reserved id, COPY line).
        self.new_subjects: list[tuple[str, int, str]] = []
        # Copy straight into the records table while the rows are new (see `write`).
        self.direct = postgresql
        # Rows for records some of whose fields a decided case set: taken out of the set-based
        # path and merged one by one after the batch (`records.services.record_import_merge`).
        self.held: list[dict[str, Any]] = []
        if postgresql:
            cursor.execute("SELECT pg_advisory_xact_lock_shared(%s)", [IMPORT_LOCK_KEY])
        types = (
            {"uuid": "uuid", "bytes": "bytea", "timestamp": "timestamptz"}
            if postgresql
            else {"uuid": "text", "bytes": "blob", "timestamp": "text"}
        )
        # PostgreSQL stages subjects as whole rows of the table (with their reserved ids).
        subjects = (
            "LIKE records_subject" if postgresql else _SUBJECT_STAGING_COLUMNS.format(**types)
        )
        schema = "pg_temp" if postgresql else "temp"
        # ON COMMIT DROP cleans up; the DROP covers two imports inside one outer transaction.
        on_commit = " ON COMMIT DROP" if postgresql else ""
        for name, columns in (
            ("import_staging", _STAGING_COLUMNS.format(**types)),
            ("import_subject_staging", subjects),
        ):
            cursor.execute(f"DROP TABLE IF EXISTS {schema}.{name}")
            cursor.execute(f"CREATE TEMP TABLE {name} ({columns}){on_commit}")

    @staticmethod
    def constants(*, agency_id: int, now: Any) -> str:
        """The COPY text of the columns from agency_id to updated_at of a new record."""
        return f"\t{agency_id}\tf\t1\t{now.isoformat()}\t{now.isoformat()}"

    def _reserve(self, tails: list[tuple[str, str]]) -> None:
        """PostgreSQL: reserve ids for the chunk's new subjects from their sequence, on the
        import's own connection (one round trip), and complete their COPY text."""
        if not tails:
            return
        self.cursor.execute(
            "SELECT nextval(%s::regclass) FROM generate_series(1, %s)",
            [self.subject_sequence, len(tails)],
        )
        for (subject_hash, tail), (subject_id,) in zip(tails, self.cursor.fetchall(), strict=True):
            self.subject_ids[subject_hash] = subject_id
            self.new_subjects.append((subject_hash, subject_id, f"{subject_id}{tail}"))

    def write(self, chunk: _Chunk) -> None:
        if self.postgresql:
            self._reserve(chunk.subject_tails)
            ids = self.subject_ids
            records_copy = "".join(
                [
                    f"{line}\t{ids[subject_hash]}\n"
                    for line, subject_hash in zip(chunk.lines, chunk.subject_hashes, strict=True)
                ]
            ).encode()
            if self.direct:
                table = f"records_creditrecord ({_RECORD_COLUMN_LIST})"
                if self._copy_clean(table, records_copy):
                    self.staged += chunk.rows
                    self.inserted += chunk.rows
                    return
                self.direct = False
            self.cursor.execute("TRUNCATE import_staging")
            _copy_in(self.cursor.cursor, "import_staging", records_copy)
        else:
            self._store_subjects(chunk)
            ids = self.subject_ids
            self.cursor.execute("DELETE FROM import_staging")
            # The validator staged each row's 13 values (no COPY text to parse back); then the
            # record's constants.
            constants = (self.agency_id, False, 1, self.now, self.now)
            self.cursor.executemany(
                "INSERT INTO import_staging VALUES ("  # noqa: S608 - placeholders only
                + ", ".join(["%s"] * len(_RECORD_COLUMNS))
                + ")",
                [
                    (*values, *constants, ids[subject_hash])
                    for values, subject_hash in zip(chunk.lines, chunk.subject_hashes, strict=True)
                ],
            )
        staged, inserted, updated, held = _apply(
            self.cursor,
            agency_id=self.agency_id,
            batch_id=self.batch_id,
            now=self.now,
            postgresql=self.postgresql,
        )
        self.held.extend(held)
        self.staged += staged
        self.inserted += inserted
        self.updated += updated
        self.direct = self.postgresql and inserted == staged == chunk.rows

    def finish(self) -> None:
        """PostgreSQL: store the batch's new subjects (see the class)."""
        if not self.new_subjects:
            return
        subjects = sorted(self.new_subjects)
        data = "".join([line for _, _, line in subjects]).encode()
        self.new_subjects = []
        if self._copy_clean(f"records_subject ({_SUBJECT_COLUMNS})", data):
            return
        cursor = self.cursor
        cursor.execute("TRUNCATE import_subject_staging")
        _copy_in(cursor.cursor, f"import_subject_staging ({_SUBJECT_COLUMNS})", data)
        cursor.execute(
            f"INSERT INTO records_subject ({_SUBJECT_COLUMNS}) "  # noqa: S608
            f"SELECT {_SUBJECT_COLUMNS} FROM import_subject_staging ORDER BY identifier_hash "
            "ON CONFLICT (identifier_hash) DO NOTHING RETURNING identifier_hash"
        )
        inserted = {subject_hash for (subject_hash,) in cursor.fetchall()}
        reserved = {h: subject_id for h, subject_id, _ in subjects if h not in inserted}
        if not reserved or not (self.inserted or self.updated):
            return  # no record written by this batch can name a reserved id
        cursor.execute(
            "UPDATE records_creditrecord r SET subject_id = s.id "
            "FROM unnest(%s::text[], %s::bigint[]) AS m(identifier_hash, reserved) "
            "JOIN records_subject s ON s.identifier_hash = m.identifier_hash "
            "WHERE r.agency_id = %s AND r.subject_id = m.reserved",
            [list(reserved), list(reserved.values()), self.agency_id],
        )

    def _store_subjects(self, chunk: _Chunk) -> None:
        """SQLite: insert the chunk's new subjects and learn the id of every subject it names."""
        cursor = self.cursor
        wanted = {h for h in chunk.subject_hashes if h not in self.subject_ids}
        if chunk.subjects:
            cursor.execute("DELETE FROM import_subject_staging")
            cursor.executemany(
                "INSERT INTO import_subject_staging VALUES (%s, %s, %s, %s, %s, %s)",
                chunk.subjects,
            )
            cursor.execute(
                "INSERT INTO records_subject (public_id, kind, name, identifier_encrypted, "
                "identifier_hash, identifier_masked, on_serious_dishonesty_list, created_at, "
                "updated_at) SELECT public_id, kind, name, identifier_encrypted, "
                "identifier_hash, identifier_masked, %s, %s, %s FROM import_subject_staging "
                "WHERE true ON CONFLICT (identifier_hash) DO NOTHING RETURNING identifier_hash, id",
                [False, self.now, self.now],
            )
            self.subject_ids.update(cursor.fetchall())
            wanted.difference_update(self.subject_ids)
        # Subjects stored before this import.
        remaining = sorted(wanted)
        for start in range(0, len(remaining), 500):
            batch = remaining[start : start + 500]
            cursor.execute(
                "SELECT identifier_hash, id FROM records_subject WHERE identifier_hash IN ("  # noqa: S608
                + ", ".join(["%s"] * len(batch))
                + ")",
                batch,
            )
            self.subject_ids.update(cursor.fetchall())

    def _copy_clean(self, table: str, data: bytes) -> bool:
        """COPY `data` into `table` in a savepoint; False, with nothing kept, on a unique clash."""
        try:
            # wrap_database_errors turns psycopg2's error into Django's, as a Django cursor does.
            with transaction.atomic(), self.cursor.db.wrap_database_errors:
                _copy_in(self.cursor.cursor, table, data)
        except IntegrityError:
            return False
        return True


def _subject_sequence() -> str:
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_get_serial_sequence('records_subject', 'id')")
        return str(cursor.fetchone()[0])


def _copy_in(raw_cursor: Any, table: str, data: bytes) -> int:
    # One read of the whole chunk: psycopg2 holds the GIL only while it takes the bytes.
    raw_cursor.copy_expert(f"COPY {table} FROM STDIN", io.BytesIO(data), size=len(data) + 1)
    return int(raw_cursor.rowcount)


# A held row: its number, the record's content fields (as versions keep them) and its hash.
_HELD_COLUMNS = ("record_number", *CONTENT_FIELDS, "content_hash")
_DATE_COLUMNS = ("decision_date", "conduct_ended_on", "publication_start", "publication_end")


def _take_decided(cursor: Any, *, agency_id: int) -> list[dict[str, Any]]:
    """Remove from the staging table the changed rows of records that carry decided fields, and
    return them (with `record_id`, and `conflict`: the open or kept conflict that already holds
    this very content, which needs no second look). Served by the partial index on decided
    records: only the agency's few decided records are read."""
    cursor.execute(
        "SELECT r.id, c.id, c.case_reference, c.fields, "  # noqa: S608 - column names only
        + ", ".join(f"s.{name}" for name in _HELD_COLUMNS)
        + " FROM records_creditrecord r JOIN import_staging s "
        "ON s.record_number = r.record_number "
        "LEFT JOIN records_importconflict c ON c.record_id = r.id "
        "AND c.agency_content_hash = s.content_hash AND c.status IN ('open', 'kept') "
        "WHERE r.agency_id = %s AND r.decided_fields IS NOT NULL "
        "AND r.content_hash <> s.content_hash",
        [agency_id],
    )
    rows, seen = [], set()
    for record_id, conflict_id, reference, fields, *values in cursor.fetchall():
        if record_id in seen:  # held against two decisions already: once is enough here
            continue
        seen.add(record_id)
        row = dict(zip(_HELD_COLUMNS, values, strict=True))
        for name in _DATE_COLUMNS:  # SQLite hands dates back as text
            if isinstance(row[name], str):
                row[name] = date.fromisoformat(row[name])
        row["record_id"] = record_id
        row["conflict"] = (
            None
            if conflict_id is None
            else (conflict_id, reference, json.loads(fields) if isinstance(fields, str) else fields)
        )
        rows.append(row)
    if rows:
        cursor.execute(
            "DELETE FROM import_staging WHERE record_number IN ("  # noqa: S608
            + ", ".join(["%s"] * len(rows))
            + ")",
            [row["record_number"] for row in rows],
        )
    return rows


# The content hash of the stored record with a staged row's number (NULL when there is none).
_EXISTING_HASH = (
    "SELECT r.content_hash FROM records_creditrecord r "
    "WHERE r.agency_id = %s AND r.record_number = s.record_number"
)
_CONTENT_COLUMNS = (
    "category_id, title, facts, decision_document_number, decision_date, conduct_ended_on, "
    "publication_start, publication_end, retention_end, content_hash"
)


def _apply(
    cursor: Any, *, agency_id: int, batch_id: int, now: Any, postgresql: bool
) -> tuple[int, int, int, list[dict[str, Any]]]:
    """Archive changed records and upsert the staged ones; rows of records with decided fields
    are taken out first. Returns (staged, inserted, updated, the rows taken out)."""
    # Lookups of the records table are correlated subqueries: each is one probe of a unique
    # index, whatever the table's size. As joins, they would be planned from statistics that
    # know nothing of the rows this import has written so far in its transaction, and hash the
    # agency's whole table for every chunk.
    cursor.execute(
        "SELECT count(*), count(*) FILTER (WHERE existing IS NULL), "
        "count(*) FILTER (WHERE existing <> content_hash) "
        "FROM (SELECT s.content_hash, (" + _EXISTING_HASH + ") AS existing "
        "FROM import_staging s) AS compared",
        [agency_id],
    )
    staged, inserted, updated = (int(value) for value in cursor.fetchone())
    held: list[dict[str, Any]] = []
    if updated:
        if postgresql:
            # Lock the records this chunk changes (in id order: concurrent imports queue, never
            # deadlock), so that a correction committed meanwhile is seen below and none can
            # commit before the upsert: a decided field is never overwritten.
            cursor.execute(
                "SELECT id FROM records_creditrecord WHERE id IN (SELECT ("
                "SELECT r.id FROM records_creditrecord r WHERE r.agency_id = %s "
                "AND r.record_number = s.record_number AND r.content_hash <> s.content_hash"
                ") FROM import_staging s) ORDER BY id FOR UPDATE",
                [agency_id],
            )
        held = _take_decided(cursor, agency_id=agency_id)
        staged -= len(held)
        updated -= len(held)
    if updated:
        cursor.execute(
            "INSERT INTO records_creditrecordversion (record_id, version, "
            + _CONTENT_COLUMNS
            + ", superseded_at, superseded_by_batch_id) "
            "SELECT r.id, r.version, r.category_id, r.title, r.facts, "
            "r.decision_document_number, r.decision_date, r.conduct_ended_on, "
            "r.publication_start, r.publication_end, r.retention_end, r.content_hash, %s, %s "
            "FROM records_creditrecord r JOIN import_staging s "
            "ON r.agency_id = %s AND r.record_number = s.record_number "
            "WHERE r.content_hash <> s.content_hash",
            [now, batch_id, agency_id],
        )
    if not (inserted or updated):
        return staged, 0, 0, held
    cursor.execute(
        f"INSERT INTO records_creditrecord ({_RECORD_COLUMN_LIST}) "  # noqa: S608
        f"SELECT {_RECORD_COLUMN_LIST} FROM import_staging s "
        # Unchanged rows are left out here rather than by the DO UPDATE's WHERE, which would
        # still lock every conflicting row.
        "WHERE (" + _EXISTING_HASH + ") IS DISTINCT FROM s.content_hash "
        "ON CONFLICT (agency_id, record_number) DO UPDATE SET "
        "subject_id = excluded.subject_id, category_id = excluded.category_id, "
        "title = excluded.title, facts = excluded.facts, "
        "decision_document_number = excluded.decision_document_number, "
        "decision_date = excluded.decision_date, conduct_ended_on = excluded.conduct_ended_on, "
        "publication_start = excluded.publication_start, "
        "publication_end = excluded.publication_end, retention_end = excluded.retention_end, "
        "content_hash = excluded.content_hash, "
        "status = CASE WHEN records_creditrecord.status = %s "
        "THEN records_creditrecord.status ELSE excluded.status END, "
        "version = records_creditrecord.version + 1, updated_at = excluded.updated_at "
        "WHERE records_creditrecord.content_hash <> excluded.content_hash",
        [agency_id, CreditRecord.Status.DELETED],
    )
    return staged, inserted, updated, held
