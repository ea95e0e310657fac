"""Bulk import of credit records pushed by an agency (CSV or NDJSON).

Every row is validated in Python; valid rows are streamed into a temporary staging table (COPY on
PostgreSQL, so parsing and loading run on two cores at once) and then applied with set-based SQL:
subjects are inserted if new, changed records keep their previous content as a
`CreditRecordVersion`, and rows whose content is unchanged are left alone, so re-running a file
changes nothing. The whole batch is one transaction with one audit event.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import re
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import date
from typing import IO, TYPE_CHECKING, Any

import psycopg2
from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from audit.services import audit_record
from records import identifiers
from records.crypto import identifier_encrypt, identifier_hasher
from records.dates import add_months
from records.models import Agency, CatalogueEntry, CreditRecord, ImportBatch, Jurisdiction
from scs_cases.errors import DomainError

if TYPE_CHECKING:
    from accounts.models import User

REQUIRED_FIELDS = (
    "record_number",
    "subject_kind",
    "subject_identifier",
    "subject_name",
    "category",
    "title",
    "facts",
    "decision_document_number",
    "decision_date",
)
OPTIONAL_FIELDS = ("conduct_ended_on", "publication_months")
FIELDS = REQUIRED_FIELDS + OPTIONAL_FIELDS
MAX_LENGTHS = {
    "record_number": 64,
    "subject_name": 200,
    "title": 300,
    "facts": 10_000,
    "decision_document_number": 100,
}
# Fields that no lawful catalogue allows (Shanghai Art 15, Zhejiang Art 14, PIPL Art 28).
PROHIBITED_FIELDS = frozenset(
    {
        "religion",
        "religious_belief",
        "gene",
        "genes",
        "genetic_data",
        "fingerprint",
        "fingerprints",
        "blood_type",
        "illness",
        "disease",
        "medical_history",
        "health_condition",
    }
)
PROHIBITED_TERMS: tuple[str, ...] = (
    "宗教",
    "基因",
    "指纹",
    "血型",
    "病史",
    "病历",
    "religion",
    "religious belief",
    "genetic",
    "fingerprint",
    "blood type",
    "medical history",
    "illness",
)
MAX_ERRORS_KEPT = 10_000
MAX_ERRORS_STORED = 1_000
EARLIEST_DECISION = date(1990, 1, 1)


class ImportFileInvalid(DomainError):
    code = "import_file_invalid"


@dataclass(frozen=True)
class RowError:
    line: int
    field: str
    reason: str

    def as_dict(self) -> dict[str, Any]:
        return {"line": self.line, "field": self.field, "reason": self.reason}


@dataclass
class ImportReport:
    batch_id: int = 0
    sha256: str = ""
    rows_total: int = 0
    rows_inserted: int = 0
    rows_updated: int = 0
    rows_unchanged: int = 0
    rows_rejected: int = 0
    errors: list[RowError] = field(default_factory=list)

    @property
    def errors_not_listed(self) -> int:
        listed_lines = len({error.line for error in self.errors})
        return max(self.rows_rejected - listed_lines, 0)


@dataclass(frozen=True)
class _Category:
    id: int
    code: str
    severity: str
    persons: bool
    organisations: bool
    min_months: int
    max_months: int


@dataclass
class _Subject:
    kind: str
    identifier: str
    name: str


class _RowValidator:
    """Turns raw rows into staging tuples or errors. Holds the per-batch state (duplicates)."""

    def __init__(self, *, agency: Agency, today: date) -> None:
        self.today = today
        self.jurisdiction: Jurisdiction = agency.jurisdiction
        self.retention_months = self.jurisdiction.retention_years * 12
        self.retention_from_conduct = (
            self.jurisdiction.retention_starts_from == Jurisdiction.RetentionStart.CONDUCT_ENDED
        )
        self.categories = _active_categories(self.jurisdiction)
        self.subjects: dict[str, _Subject] = {}
        self.seen_numbers: dict[str, int] = {}
        self._hasher = identifier_hasher()
        terms = getattr(settings, "RECORDS_PROHIBITED_TERMS", PROHIBITED_TERMS)
        # One case-insensitive scan per field instead of one substring search per term.
        self._prohibited = re.compile(
            "|".join(re.escape(term) for term in sorted(terms, key=len, reverse=True)),
            re.IGNORECASE,
        )
        self._kinds = {identifiers.PERSON, identifiers.ORGANISATION}
        # Imports repeat the same dates: publication periods by (decision date, months), retention
        # by its start date; a few tens of thousands of keys for a million rows.
        self._publication: dict[tuple[date, int], tuple[str, date, str]] = {}
        self._retention: dict[date, tuple[date, str]] = {}
        # Public ids in the UUIDv7 layout: a millisecond timestamp, then 74 random bits. New
        # ids land at the right edge of the unique index instead of all over it, which keeps a
        # bulk import's index writes in a few pages; the random part keeps them unguessable.
        self._id_prefix = f"{int(time.time() * 1000):012x}7"
        self._limits = [
            (name, name in REQUIRED_FIELDS, MAX_LENGTHS.get(name, 1_000)) for name in FIELDS
        ]

    def validate(
        self, line: int, row: dict[str, str], *, keys_checked: bool = False
    ) -> tuple[tuple[str, ...] | None, list[RowError]]:
        """Check one row. `keys_checked`: the names were already checked (a CSV header)."""
        errors: list[RowError] = []

        def fail(name: str, reason: str) -> None:
            errors.append(RowError(line, name, reason))

        if not keys_checked:
            for name in row.keys() - FIELDS:
                if name.lower() in PROHIBITED_FIELDS:
                    fail(name, "prohibited personal data may not be recorded")
                else:
                    fail(name, "unknown field")
        values: dict[str, str] = {}
        get = row.get
        for name, required, limit in self._limits:
            raw = get(name)
            value = raw.strip() if raw else ""
            if not value:
                if required:
                    fail(name, "is required")
            elif "\x00" in value:
                fail(name, "contains a NUL character")
            elif len(value) > limit:
                fail(name, f"is longer than {limit} characters")
            values[name] = value
        if errors:
            return None, errors

        for name in ("title", "facts"):
            if found := self._prohibited.search(values[name]):
                fail(name, f"mentions prohibited personal data ({found.group(0).lower()})")

        kind = values["subject_kind"]
        identifier = ""
        if kind not in self._kinds:
            fail("subject_kind", "must be 'person' or 'organisation'")
        else:
            try:
                identifier = identifiers.validate_identifier(kind, values["subject_identifier"])
            except identifiers.InvalidIdentifier as error:
                fail("subject_identifier", error.reason)

        category = self.categories.get(values["category"])
        if category is None:
            fail("category", "is not in the active lawful catalogue for this jurisdiction")
        elif kind == identifiers.PERSON and not category.persons:
            fail("category", "does not apply to natural persons")
        elif kind == identifiers.ORGANISATION and not category.organisations:
            fail("category", "does not apply to organisations")

        decision_date = self._date(values, "decision_date", fail)
        conduct_ended_on = self._date(values, "conduct_ended_on", fail)
        if decision_date is not None:
            if decision_date > self.today:
                fail("decision_date", "is in the future")
            elif decision_date < EARLIEST_DECISION:
                fail("decision_date", "is before 1990-01-01")
        if conduct_ended_on is not None and conduct_ended_on > self.today:
            fail("conduct_ended_on", "is in the future")

        months: int | None = None
        if category is not None:
            months = category.max_months
            if values["publication_months"]:
                try:
                    months = int(values["publication_months"])
                except ValueError:
                    fail("publication_months", "must be a whole number of months")
                    months = None
                else:
                    if not category.min_months <= months <= category.max_months:
                        fail(
                            "publication_months",
                            f"must be between {category.min_months} and {category.max_months} "
                            f"for a {category.severity} category",
                        )

        number = values["record_number"]
        first_line = self.seen_numbers.get(number)
        if first_line is not None:
            fail("record_number", f"appears twice in this file (first on line {first_line})")

        if errors or category is None or decision_date is None or months is None:
            return None, errors

        anchor = (
            conduct_ended_on
            if self.retention_from_conduct and conduct_ended_on is not None
            else decision_date
        )
        publication = self._publication.get((decision_date, months))
        if publication is None:
            end = add_months(decision_date, months)
            publication = (decision_date.isoformat(), end, end.isoformat())
            self._publication[(decision_date, months)] = publication
        decision_text, publication_end, publication_end_text = publication
        retention = self._retention.get(anchor)
        if retention is None:
            end = add_months(anchor, self.retention_months)
            retention = self._retention[anchor] = (end, end.isoformat())
        retention_end, retention_end_text = retention
        if retention_end <= self.today:
            fail(
                "decision_date",
                f"the retention period ended on {retention_end_text}; "
                "the record may no longer be kept",
            )
            return None, errors
        status = (
            CreditRecord.Status.PUBLISHED.value
            if publication_end > self.today
            else CreditRecord.Status.PUBLICATION_ENDED.value
        )

        hasher = self._hasher.copy()
        hasher.update(f"{kind}:{identifier}".encode())
        subject_hash = hasher.hexdigest()
        if subject_hash not in self.subjects:
            self.subjects[subject_hash] = _Subject(kind, identifier, values["subject_name"])
        self.seen_numbers[number] = line

        conduct_text = conduct_ended_on.isoformat() if conduct_ended_on else ""
        content = "\x1f".join(
            (
                subject_hash,
                category.code,
                values["title"],
                values["facts"],
                values["decision_document_number"],
                values["decision_date"],
                conduct_text,
                str(months),
            )
        )
        content_hash = hashlib.sha256(content.encode()).hexdigest()
        return (
            number,
            subject_hash,
            str(category.id),
            values["title"],
            values["facts"],
            values["decision_document_number"],
            decision_text,
            conduct_text,
            decision_text,
            publication_end_text,
            retention_end_text,
            status,
            content_hash,
            self._public_id(),
        ), errors

    def _public_id(self) -> str:
        random_bits = os.urandom(10).hex()
        # version nibble 7 after the timestamp; variant bits 10 at the start of the 4th group
        variant = "89ab"[int(random_bits[3], 16) & 3]
        return f"{self._id_prefix}{random_bits[:3]}{variant}{random_bits[4:19]}"

    @staticmethod
    def _date(values: dict[str, str], name: str, fail: Callable[[str, str], None]) -> date | None:
        value = values[name]
        if not value:
            return None
        try:
            return date.fromisoformat(value)
        except ValueError:
            fail(name, "must be a date in the form YYYY-MM-DD")
            return None


def _active_categories(jurisdiction: Jurisdiction) -> dict[str, _Category]:
    """The catalogue an agency may use: national entries, overridden by its jurisdiction's own."""
    entries = CatalogueEntry.objects.filter(
        active=True, jurisdiction__code__in=["national", jurisdiction.code]
    ).select_related("jurisdiction")
    found: dict[str, _Category] = {}
    for entry in sorted(entries, key=lambda e: e.jurisdiction.code != "national"):
        found[entry.code] = _Category(
            id=entry.pk,
            code=entry.code,
            severity=entry.severity,
            persons=entry.applies_to_persons,
            organisations=entry.applies_to_organisations,
            min_months=entry.publication_min_months,
            max_months=entry.publication_max_months,
        )
    return found


class _HashingReader(io.RawIOBase):
    """Reads a binary stream while computing its sha256 and counting bytes."""

    def __init__(self, raw: IO[bytes]) -> None:
        self.raw = raw
        self.digest = hashlib.sha256()
        self.bytes_read = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        data = self.raw.read(len(buffer))
        size = len(data)
        buffer[:size] = data
        self.digest.update(data)
        self.bytes_read += size
        return size


def _csv_rows(text: IO[str]) -> Iterator[tuple[int, dict[str, str]]]:
    reader = csv.reader(text)
    try:
        header = [name.strip() for name in next(reader)]
    except StopIteration:
        return
    problems = []
    for name in header:
        if name.lower() in PROHIBITED_FIELDS:
            problems.append(f"column '{name}' holds prohibited personal data")
        elif name not in FIELDS:
            problems.append(f"unknown column '{name}'")
    missing = [name for name in REQUIRED_FIELDS if name not in header]
    if missing:
        problems.append("missing columns: " + ", ".join(missing))
    if len(set(header)) != len(header):
        problems.append("a column appears twice in the header")
    if problems:
        raise ImportFileInvalid("The header is not valid: " + "; ".join(problems) + ".", line=1)
    width = len(header)
    for row in reader:
        if not row:
            continue
        if len(row) != width:
            yield reader.line_num, {"__columns__": str(len(row))}
            continue
        yield reader.line_num, dict(zip(header, row, strict=True))


def _ndjson_rows(text: IO[str]) -> Iterator[tuple[int, dict[str, str]]]:
    for line_number, line in enumerate(text, start=1):
        if not line.strip():
            continue
        try:
            value = json.loads(line)
        except ValueError:
            yield line_number, {"__json__": "not valid JSON"}
            continue
        if not isinstance(value, dict):
            yield line_number, {"__json__": "not a JSON object"}
            continue
        yield (
            line_number,
            {str(key): "" if item is None else str(item) for key, item in value.items()},
        )


def _validated(
    rows: Iterable[tuple[int, dict[str, str]]],
    validator: _RowValidator,
    report: ImportReport,
    progress: Callable[[int], object] | None,
    *,
    keys_checked: bool,
) -> Iterator[tuple[str, ...]]:
    for line, row in rows:
        report.rows_total += 1
        if progress is not None and report.rows_total % 10_000 == 0:
            progress(10_000)
        if "__columns__" in row:
            errors = [RowError(line, "", "has a different number of columns than the header")]
            staged = None
        elif "__json__" in row:
            errors = [RowError(line, "", row["__json__"])]
            staged = None
        else:
            staged, errors = validator.validate(line, row, keys_checked=keys_checked)
        if staged is None:
            report.rows_rejected += 1
            if len(report.errors) < MAX_ERRORS_KEPT:
                report.errors.extend(errors)
            continue
        yield staged
    if progress is not None:
        progress(report.rows_total % 10_000)


_STAGING_COLUMNS = (
    "record_number text, subject_hash text, category_id bigint, title text, facts text, "
    "decision_document_number text, decision_date date, conduct_ended_on date, "
    "publication_start date, publication_end date, retention_end date, status text, "
    "content_hash text, public_id {uuid}"
)
_SUBJECT_STAGING_COLUMNS = (
    "identifier_hash text, kind text, name text, identifier_encrypted {bytes}, "
    "identifier_masked text, public_id {uuid}"
)


def _copy_escape(value: str) -> str:
    if "\\" in value or "\t" in value or "\n" in value or "\r" in value:
        value = (
            value.replace("\\", "\\\\")
            .replace("\t", "\\t")
            .replace("\n", "\\n")
            .replace("\r", "\\r")
        )
    return value


class _CopyStream(io.RawIOBase):
    """A file-like object psycopg2's COPY reads from, filled lazily from staged rows."""

    def __init__(self, rows: Iterator[tuple[str, ...]]) -> None:
        self.rows = rows
        self.pending = b""
        self.count = 0
        # psycopg2 reports an exception raised inside read() as a cancelled COPY; keep the
        # original (a decoding error, a malformed CSV) so the caller can report it properly.
        self.error: Exception | None = None

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        try:
            return self._read(size)
        except Exception as error:
            self.error = error
            raise

    def _read(self, size: int) -> bytes:
        lines: list[str] = []
        length = len(self.pending)
        target = max(size, 65_536)
        escape = _copy_escape
        for row in self.rows:
            self.count += 1
            text = "\t".join([escape(value) if value else "\\N" for value in row]) + "\n"
            lines.append(text)
            length += len(text)
            if length >= target:
                break
        data = self.pending + "".join(lines).encode()
        if size < 0 or len(data) <= size:
            self.pending = b""
            return data
        self.pending = data[size:]
        return data[:size]


# Shared by imports, taken exclusively by the delete guard on subjects, agencies and catalogue
# entries (records migration 0002): no referenced row disappears while an import writes.
IMPORT_LOCK_KEY = 7261034


def _stage_postgresql(cursor: Any, rows: Iterator[tuple[str, ...]]) -> int:
    cursor.execute("SELECT pg_advisory_xact_lock_shared(%s)", [IMPORT_LOCK_KEY])
    # ON COMMIT DROP cleans up; the DROP covers two imports inside one outer transaction.
    cursor.execute("DROP TABLE IF EXISTS pg_temp.import_staging")
    cursor.execute(
        "CREATE TEMP TABLE import_staging ("
        + _STAGING_COLUMNS.format(uuid="uuid")
        + ") ON COMMIT DROP"
    )
    stream = _CopyStream(rows)
    try:
        cursor.copy_expert("COPY import_staging FROM STDIN", stream, size=65_536)
    except psycopg2.Error:
        if stream.error is not None:
            raise stream.error from None
        raise
    # Temp tables get no statistics of their own; without them the planner guesses a few
    # thousand rows and spills the joins of a million-row batch to disk.
    cursor.execute("ANALYZE import_staging")
    return stream.count


def _stage_portable(cursor: Any, rows: Iterator[tuple[str, ...]]) -> int:
    cursor.execute("DROP TABLE IF EXISTS temp.import_staging")
    cursor.execute(
        "CREATE TEMP TABLE import_staging (" + _STAGING_COLUMNS.format(uuid="text") + ")"
    )
    counter = [0]

    def counted() -> Iterator[tuple[str | None, ...]]:
        for row in rows:
            counter[0] += 1
            yield tuple(value or None for value in row)

    placeholders = ", ".join(["%s"] * 14)
    cursor.executemany(f"INSERT INTO import_staging VALUES ({placeholders})", counted())  # noqa: S608
    return counter[0]


def _stage_subjects(cursor: Any, subjects: dict[str, _Subject], postgresql: bool) -> None:
    encrypt = identifier_encrypt
    mask = identifiers.mask_identifier
    rows = (
        (
            subject_hash,
            subject.kind,
            subject.name,
            encrypt(subject.identifier),
            mask(subject.identifier),
            uuid.uuid4().hex,
        )
        for subject_hash, subject in subjects.items()
    )
    if postgresql:
        cursor.execute("DROP TABLE IF EXISTS pg_temp.import_subject_staging")
        cursor.execute(
            "CREATE TEMP TABLE import_subject_staging ("
            + _SUBJECT_STAGING_COLUMNS.format(uuid="uuid", bytes="bytea")
            + ") ON COMMIT DROP"
        )
        stream = _CopyStream((h, k, n, "\\x" + e.hex(), m, p) for h, k, n, e, m, p in rows)
        cursor.copy_expert("COPY import_subject_staging FROM STDIN", stream, size=65_536)
        cursor.execute("ANALYZE import_subject_staging")
    else:
        cursor.execute("DROP TABLE IF EXISTS temp.import_subject_staging")
        cursor.execute(
            "CREATE TEMP TABLE import_subject_staging ("
            + _SUBJECT_STAGING_COLUMNS.format(uuid="text", bytes="blob")
            + ")"
        )
        cursor.executemany(
            "INSERT INTO import_subject_staging VALUES (%s, %s, %s, %s, %s, %s)", rows
        )


_CONTENT_COLUMNS = (
    "category_id, title, facts, decision_document_number, decision_date, conduct_ended_on, "
    "publication_start, publication_end, retention_end, content_hash"
)


def _apply(cursor: Any, *, agency_id: int, batch_id: int, now: Any) -> tuple[int, int]:
    """Insert subjects, archive changed records, upsert records. Returns (inserted, updated)."""
    cursor.execute(
        "INSERT INTO records_subject (public_id, kind, name, identifier_encrypted, "
        "identifier_hash, identifier_masked, on_serious_dishonesty_list, created_at, updated_at) "
        "SELECT public_id, kind, name, identifier_encrypted, identifier_hash, identifier_masked, "
        "%s, %s, %s FROM import_subject_staging WHERE true "
        "ON CONFLICT (identifier_hash) DO NOTHING",
        [False, now, now],
    )
    cursor.execute(
        "SELECT count(*) FILTER (WHERE r.id IS NULL), "
        "count(*) FILTER (WHERE r.content_hash <> s.content_hash) "
        "FROM import_staging s LEFT JOIN records_creditrecord r "
        "ON r.agency_id = %s AND r.record_number = s.record_number",
        [agency_id],
    )
    inserted, updated = cursor.fetchone()
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
    if inserted or updated:
        cursor.execute(
            "INSERT INTO records_creditrecord (public_id, agency_id, record_number, subject_id, "  # noqa: S608
            + _CONTENT_COLUMNS
            + ", status, under_objection, version, created_at, updated_at) "
            "SELECT s.public_id, %s, s.record_number, subj.id, s.category_id, s.title, s.facts, "
            "s.decision_document_number, s.decision_date, s.conduct_ended_on, s.publication_start, "
            "s.publication_end, s.retention_end, s.content_hash, s.status, %s, 1, %s, %s "
            "FROM import_staging s "
            "JOIN records_subject subj ON subj.identifier_hash = s.subject_hash "
            # Unchanged rows are left out here rather than by the DO UPDATE's WHERE, which would
            # still lock every conflicting row.
            "WHERE NOT EXISTS (SELECT 1 FROM records_creditrecord same "
            "WHERE same.agency_id = %s AND same.record_number = s.record_number "
            "AND same.content_hash = s.content_hash) "
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
            [agency_id, False, now, now, agency_id, CreditRecord.Status.DELETED],
        )
    return int(inserted), int(updated)


def detect_format(file_name: str, declared: str = "") -> str:
    name = (declared or file_name).lower()
    if name in {"csv", "ndjson"}:
        return name
    if name.endswith(".csv"):
        return "csv"
    if name.endswith((".ndjson", ".jsonl")):
        return "ndjson"
    raise ImportFileInvalid("The file must be CSV (.csv) or NDJSON (.ndjson, .jsonl).")


def import_batch_run(
    *,
    agency: Agency,
    stream: IO[bytes],
    file_name: str,
    file_format: str = "",
    actor: User | None,
    source: str,
    progress: Callable[[int], object] | None = None,
) -> ImportReport:
    """Validate and apply one file of records for `agency` in a single transaction."""
    file_format = detect_format(file_name, file_format)
    report = ImportReport()
    reader = _HashingReader(stream)
    text = io.TextIOWrapper(
        io.BufferedReader(reader, buffer_size=1 << 20), encoding="utf-8-sig", newline=""
    )
    postgresql = connection.vendor == "postgresql"
    with transaction.atomic():
        agency = Agency.objects.select_for_update().select_related("jurisdiction").get(pk=agency.pk)
        validator = _RowValidator(agency=agency, today=timezone.localdate())
        rows = _csv_rows(text) if file_format == "csv" else _ndjson_rows(text)
        staged_rows = _validated(
            rows, validator, report, progress, keys_checked=file_format == "csv"
        )
        now = timezone.now()
        batch = ImportBatch.objects.create(
            agency=agency,
            created_by=actor,
            source=source,
            file_name=file_name[:255],
            file_format=file_format,
            sha256="",
        )
        try:
            with connection.cursor() as cursor:
                raw_cursor = cursor.cursor
                if postgresql:
                    staged = _stage_postgresql(raw_cursor, staged_rows)
                else:
                    staged = _stage_portable(cursor, staged_rows)
                _stage_subjects(
                    raw_cursor if postgresql else cursor, validator.subjects, postgresql
                )
                inserted, updated = _apply(cursor, agency_id=agency.pk, batch_id=batch.pk, now=now)
        except UnicodeDecodeError as error:
            raise ImportFileInvalid(
                "The file is not UTF-8 text.", line=report.rows_total + 1
            ) from error
        except csv.Error as error:
            raise ImportFileInvalid(f"The CSV file is malformed: {error}.") from error
        report.batch_id = batch.pk
        report.sha256 = reader.digest.hexdigest()
        report.rows_inserted = inserted
        report.rows_updated = updated
        report.rows_unchanged = staged - inserted - updated
        batch.sha256 = report.sha256
        batch.rows_total = report.rows_total
        batch.rows_inserted = inserted
        batch.rows_updated = updated
        batch.rows_unchanged = report.rows_unchanged
        batch.rows_rejected = report.rows_rejected
        batch.errors = [error.as_dict() for error in report.errors[:MAX_ERRORS_STORED]]
        batch.save(
            update_fields=[
                "sha256",
                "rows_total",
                "rows_inserted",
                "rows_updated",
                "rows_unchanged",
                "rows_rejected",
                "errors",
                "updated_at",
            ]
        )
        audit_record(
            actor=actor,
            action="record.imported",
            target=batch,
            data={
                "agency": agency.code,
                "file_name": batch.file_name,
                "format": file_format,
                "sha256": report.sha256,
                "rows_total": report.rows_total,
                "inserted": inserted,
                "updated": updated,
                "unchanged": report.rows_unchanged,
                "rejected": report.rows_rejected,
            },
        )
    return report


def count_lines(path: str) -> int:
    """Number of newline characters in a file, for a progress bar's total."""
    total = 0
    with open(path, "rb") as handle:
        while chunk := handle.read(1 << 20):
            total += chunk.count(b"\n")
    return total
