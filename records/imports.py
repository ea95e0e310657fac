"""Bulk import of credit records pushed by an agency (CSV or NDJSON).

Every row is validated in Python and the file is written in chunks of CHUNK_ROWS rows. On
PostgreSQL a reader thread reads, validates and formats the next chunks as COPY text while the
writer copies the current one in, so Python and PostgreSQL work at the same time:

- a chunk of new records is copied straight into the records table, in a savepoint;
- a chunk that meets stored rows is copied into a staging table instead and applied with
  set-based SQL: changed records keep their previous content as a `CreditRecordVersion`, rows
  whose content is unchanged are left alone, so re-running a file changes nothing;
- subjects new to the file are encrypted and formatted by the reader; the writer reserves their
  ids from the sequence on the import's one connection, stores them at the end of the batch,
  skips those stored already and points the records at the stored ones (see `_Writer`). The
  reader thread never touches the database: an import holds exactly one connection, which a
  transaction-mode pooler can give it.

SQLite (development and the default test run) takes the staged path for every chunk, in one
thread. The whole batch is one transaction with one audit event.
"""

from __future__ import annotations

import csv
import gc
import hashlib
import io
import itertools
import json
import operator
import os
import queue
import re
import threading
import time
from collections.abc import Callable, Generator, Iterable, Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import IO, TYPE_CHECKING, Any

from django.conf import settings
from django.db import IntegrityError, connection, connections, transaction
from django.utils import timezone

from audit.services import audit_record, audited
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
_REQUIRED_COUNT = len(REQUIRED_FIELDS)
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
# NUL; the unit separator, which joins the fields a record's content hash is computed over; lone
# surrogates, which a JSON string can spell ("\\ud800") but no text encoding can store.
_FORBIDDEN_CHARACTERS = re.compile("[\x00\x1f\ud800-\udfff]")
# Letters that case-insensitive matching folds onto ASCII ones, though lower() does not.
_CASE_FOLDING_TRAPS = re.compile("[\u017f\u0131\u0130\u212a]")
_PUBLISHED = CreditRecord.Status.PUBLISHED.value
_PUBLICATION_ENDED = CreditRecord.Status.PUBLICATION_ENDED.value
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
    id_text: str
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

    def __init__(self, *, agency: Agency, today: date, copy_suffix: str = "") -> None:
        """`copy_suffix`: the COPY text of the columns every new record of the batch shares,
        appended to each row (see `_Writer.constants`)."""
        self.today = today
        self.copy_suffix = copy_suffix
        self.jurisdiction: Jurisdiction = agency.jurisdiction
        self.retention_months = self.jurisdiction.retention_years * 12
        self.retention_from_conduct = (
            self.jurisdiction.retention_starts_from == Jurisdiction.RetentionStart.CONDUCT_ENDED
        )
        self.categories = _active_categories(self.jurisdiction)
        self.subjects: dict[str, _Subject] = {}
        self._kinds = {identifiers.PERSON, identifiers.ORGANISATION}
        # Subjects first seen since the last chunk was cut (see `take_new_subjects`).
        self.new_subjects: list[str] = []
        # A file names each subject on several rows: per kind, raw identifier -> (normalised
        # identifier, blind index) or the reason it is invalid, checked and hashed once.
        self._identifiers: dict[str, dict[str, tuple[str, str] | str]] = {
            kind: {} for kind in self._kinds
        }
        self.seen_numbers: dict[str, int] = {}
        self._hasher = identifier_hasher()
        terms = getattr(settings, "RECORDS_PROHIBITED_TERMS", PROHIBITED_TERMS)
        ordered = sorted(terms, key=len, reverse=True)
        # One case-insensitive scan per field instead of one substring search per term, and
        # before it a scan of the lower-cased text for the lower-cased terms, four times faster
        # than a case-insensitive one, that lets most rows through.
        self._prohibited = re.compile("|".join(map(re.escape, ordered)), re.IGNORECASE)
        self._prohibited_lower = re.compile("|".join(re.escape(term.lower()) for term in ordered))
        # Imports repeat the same dates: publication periods by (decision date, months), retention
        # by its start date; a few tens of thousands of keys for a million rows.
        self._publication: dict[tuple[date, int], tuple[str, date, str]] = {}
        self._retention: dict[date, tuple[date, str]] = {}
        self._id_prefix = f"{int(time.time() * 1000):012x}7"
        self._id_counter = 0
        self._id_random: list[str] = []
        self._required = [name in REQUIRED_FIELDS for name in FIELDS]
        self._max_lengths = [MAX_LENGTHS.get(name, 1_000) for name in FIELDS]

    def validate(
        self, line: int, raw: list[str], problems: Iterable[tuple[str, str]] = ()
    ) -> tuple[tuple[str, str] | None, list[RowError]]:
        """Check one row: `raw` holds its values in the order of FIELDS ("" when absent);
        `problems` are (field, reason) pairs its reader found already (unknown fields)."""
        errors = [RowError(line, name, reason) for name, reason in problems] if problems else []

        def fail(name: str, reason: str) -> None:
            errors.append(RowError(line, name, reason))

        values = list(map(str.strip, raw))
        (
            number,
            kind,
            raw_identifier,
            subject_name,
            category_code,
            title,
            facts,
            document_number,
            decision_raw,
            conduct_raw,
            months_raw,
        ) = values
        # One pass in C for the common case: every required value present, none too long, no
        # forbidden character; otherwise each field is checked to name what is wrong.
        if (
            errors
            or not all(values[:_REQUIRED_COUNT])
            or not all(map(operator.le, map(len, values), self._max_lengths))
            or _FORBIDDEN_CHARACTERS.search("".join(values))
        ):
            for name, required, limit, value in zip(
                FIELDS, self._required, self._max_lengths, values, strict=True
            ):
                if not value:
                    if required:
                        fail(name, "is required")
                elif "\x00" in value:
                    fail(name, "contains a NUL character")
                elif found := _FORBIDDEN_CHARACTERS.search(value):
                    fail(name, f"contains the control or invalid character U+{ord(found[0]):04X}")
                elif len(value) > limit:
                    fail(name, f"is longer than {limit} characters")
            if errors:
                return None, errors

        # One scan over both fields; on a hit, each field is scanned to name it. The fast scan
        # of the lower-cased text misses letters that only case-fold to ASCII (ſ, ı, İ, K):
        # text holding one gets the case-insensitive scan.
        text = f"{title}\n{facts}"
        if self._prohibited_lower.search(text.lower()) or (
            _CASE_FOLDING_TRAPS.search(text) and self._prohibited.search(text)
        ):
            for name, value in (("title", title), ("facts", facts)):
                if found := self._prohibited.search(value):
                    fail(name, f"mentions prohibited personal data ({found.group(0).lower()})")

        identifier = subject_hash = ""
        if kind not in self._kinds:
            fail("subject_kind", "must be 'person' or 'organisation'")
        else:
            checked = self._identifier(kind, raw_identifier)
            if isinstance(checked, str):
                fail("subject_identifier", checked)
            else:
                identifier, subject_hash = checked

        category = self.categories.get(category_code)
        if category is None:
            fail("category", "is not in the active lawful catalogue for this jurisdiction")
        elif kind == identifiers.PERSON and not category.persons:
            fail("category", "does not apply to natural persons")
        elif kind == identifiers.ORGANISATION and not category.organisations:
            fail("category", "does not apply to organisations")

        decision_date = self._date(decision_raw, "decision_date", fail)
        conduct_ended_on = self._date(conduct_raw, "conduct_ended_on", fail)
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
            if months_raw:
                try:
                    months = int(months_raw)
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
        status = _PUBLISHED if publication_end > self.today else _PUBLICATION_ENDED

        if subject_hash not in self.subjects:
            self.subjects[subject_hash] = _Subject(kind, identifier, subject_name)
            self.new_subjects.append(subject_hash)
        self.seen_numbers[number] = line

        conduct_text = conduct_ended_on.isoformat() if conduct_ended_on else ""
        content = "\x1f".join(
            (
                subject_hash,
                category.code,
                title,
                facts,
                document_number,
                decision_raw,
                conduct_text,
                str(months),
            )
        )
        content_hash = hashlib.sha256(content.encode()).hexdigest()
        # The row as COPY text (the columns of _RECORD_COLUMNS up to updated_at): only the
        # free-text fields can hold characters COPY needs escaped.
        if _COPY_SPECIAL.search(f"{number}{title}{facts}{document_number}"):
            number, title, facts, document_number = map(
                _copy_escape, (number, title, facts, document_number)
            )
        text = (
            f"{number}\t{category.id_text}\t{title}\t{facts}\t{document_number}\t"
            f"{decision_text}\t{conduct_text or _NULL}\t{decision_text}\t{publication_end_text}\t"
            f"{retention_end_text}\t{status}\t{content_hash}\t{self.public_id()}{self.copy_suffix}"
        )
        return (text, subject_hash), errors

    def _identifier(self, kind: str, raw: str) -> tuple[str, str] | str:
        """The normalised identifier and its blind index, or why `raw` is not valid."""
        known = self._identifiers[kind]
        found = known.get(raw)
        if found is None:
            try:
                identifier = identifiers.validate_identifier(kind, raw)
            except identifiers.InvalidIdentifier as error:
                found = error.reason
            else:
                hasher = self._hasher.copy()
                hasher.update(f"{kind}:{identifier}".encode())
                found = (identifier, hasher.hexdigest())
            known[raw] = found
        return found

    def take_new_subjects(self) -> list[tuple[str, _Subject]]:
        """The subjects first seen since the last call, to be stored before their records."""
        taken = [(subject_hash, self.subjects[subject_hash]) for subject_hash in self.new_subjects]
        self.new_subjects = []
        return taken

    def public_id(self) -> str:
        """A public id in the UUIDv7 layout: the batch's millisecond timestamp, version 7, a
        28-bit counter, so that a batch's ids ascend and land at the right edge of the unique
        index instead of all over it, and 44 random bits, which keep them unguessable."""
        if not self._id_random:
            pool = os.urandom(6 * 4096).hex()
            self._id_random = [pool[start : start + 11] for start in range(0, len(pool), 12)]
        counter = self._id_counter = self._id_counter + 1
        # 28 bits of counter around the variant nibble (8: bits 10, then two zero bits).
        count = f"{counter & 0xFFFFFFF:07x}"
        return f"{self._id_prefix}{count[:3]}8{count[3:]}{self._id_random.pop()}"

    @staticmethod
    def _date(value: str, name: str, fail: Callable[[str, str], None]) -> date | None:
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
            id_text=str(entry.pk),
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


# What a reader yields per row: its line, its values in the order of FIELDS (None when the row
# could not be read as one) and the (field, reason) problems found while reading it.
_Row = tuple[int, list[str] | None, list[tuple[str, str]]]


def _decoded_lines(binary: IO[bytes], block_size: int = 1 << 20) -> Iterator[str]:
    """The file's lines as text, line endings kept (as csv needs them), a UTF-8 BOM dropped.

    Decodes blocks cut after their last newline (no UTF-8 character contains one), so that a
    file that is not UTF-8 is refused with the exact line at fault.
    """
    lines_before = 0
    pending = b""
    first = True
    while True:
        block = binary.read(block_size)
        data = pending + block
        if not data:
            return
        cut = data.rfind(b"\n") + 1 if block else len(data)
        if cut == 0:  # no newline yet: read on
            pending = data
            continue
        part, pending = data[:cut], data[cut:]
        try:
            text = part.decode()
        except UnicodeDecodeError as error:
            line = lines_before + part.count(b"\n", 0, error.start) + 1
            raise ImportFileInvalid("The file is not UTF-8 text.", line=line) from error
        if first:
            text, first = text.removeprefix("\ufeff"), False
        lines_before += part.count(b"\n")
        yield from io.StringIO(text, newline="")
        if not block:
            return


def _csv_rows(text: Iterable[str]) -> Iterator[_Row]:
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
    # Rows come in the file's column order; reorder them unless it is already FIELDS' order.
    positions = None if tuple(header) == FIELDS else [_position(header, name) for name in FIELDS]
    wrong_width = [("", "has a different number of columns than the header")]
    for row in reader:
        if not row:
            continue
        if len(row) != width:
            yield reader.line_num, None, wrong_width
        elif positions is None:
            yield reader.line_num, row, []
        else:
            yield reader.line_num, [row[i] if i >= 0 else "" for i in positions], []


def _position(header: list[str], name: str) -> int:
    return header.index(name) if name in header else -1


def _ndjson_rows(text: Iterable[str]) -> Iterator[_Row]:
    for line_number, line in enumerate(text, start=1):
        if not line.strip():
            continue
        try:
            value = json.loads(line)
        except ValueError:
            yield line_number, None, [("", "not valid JSON")]
            continue
        if not isinstance(value, dict):
            yield line_number, None, [("", "not a JSON object")]
            continue
        row = {str(key): "" if item is None else str(item) for key, item in value.items()}
        problems = [
            (
                # A key may spell a lone surrogate, which the stored report could not hold.
                name.encode("utf-8", "backslashreplace").decode(),
                "prohibited personal data may not be recorded"
                if name.lower() in PROHIBITED_FIELDS
                else "unknown field",
            )
            for name in row.keys() - FIELDS
        ]
        yield line_number, [row.get(name, "") for name in FIELDS], problems


def _validated(
    rows: Iterable[_Row],
    validator: _RowValidator,
    report: ImportReport,
    progress: Callable[[int], object] | None,
) -> Iterator[tuple[str, str]]:
    validate = validator.validate
    for line, values, problems in rows:
        report.rows_total += 1
        if progress is not None and report.rows_total % 10_000 == 0:
            progress(10_000)
        if values is None:
            staged, errors = None, [RowError(line, name, reason) for name, reason in problems]
        else:
            staged, errors = validate(line, values, problems)
        if staged is None:
            report.rows_rejected += 1
            if len(report.errors) < MAX_ERRORS_KEPT:
                report.errors.extend(errors)
            continue
        yield staged
    if progress is not None:
        progress(report.rows_total % 10_000)


# Columns of a staged record, in the order of the COPY text and of the staging table. The
# validator's tuple holds the first 13, then the subject's blind index; the writer adds the
# agency, the constants of a new record and, last, the subject's id once the subject is stored.
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
# Rows per chunk: the unit the reader thread hands to the database (about 15 MB of COPY text).
CHUNK_ROWS = 50_000


@dataclass
class _Chunk:
    """Validated rows and the subjects first seen among them, ready to be written.

    `lines` are the records' COPY text without the subject's id, `subject_hashes` the subject of
    each. On PostgreSQL the reader thread has also formatted each new subject as COPY text but
    for its leading id (`subject_tails`: hash, the line after the id), and the writer, on the
    import's one connection, reserves their ids and completes the text. On SQLite `subjects`
    holds the new subjects as tuples and the writer resolves the ids.
    """

    rows: int
    subject_tails: list[tuple[str, str]] = field(default_factory=list)
    lines: list[str] = field(default_factory=list)
    subject_hashes: list[str] = field(default_factory=list)  # of each line
    subjects: list[tuple[Any, ...]] = field(default_factory=list)


_COPY_UNESCAPES = {"t": "\t", "n": "\n", "r": "\r", "\\": "\\"}
_COPY_ESCAPED = re.compile(r"\\(.)")


def _copy_values(line: str) -> list[str | None]:
    """The values of a line of COPY text (SQLite stages rows from the same text)."""
    return [
        None
        if value == _NULL
        else _COPY_ESCAPED.sub(lambda match: _COPY_UNESCAPES[match.group(1)], value)
        for value in line.split("\t")
    ]


_SUBJECT_COLUMNS = (
    "id, identifier_hash, kind, name, identifier_encrypted, identifier_masked, public_id, "
    "on_serious_dishonesty_list, created_at, updated_at"
)


def _chunks(
    staged_rows: Iterator[tuple[str, str]],
    validator: _RowValidator,
    *,
    now: datetime,
    postgresql: bool = False,
) -> Generator[_Chunk, None, None]:
    """Cut the validated rows into chunks, each with the new subjects its rows refer to.

    Encrypting and formatting the new subjects is the reader's work; only their ids, which come
    from the database, are left to the writer.
    """
    encrypt = identifier_encrypt
    mask = identifiers.mask_identifier
    escape = _copy_escape
    subject_suffix = f"\tf\t{now.isoformat()}\t{now.isoformat()}\n"
    while True:
        rows = list(itertools.islice(staged_rows, CHUNK_ROWS))
        if not rows:
            return
        new_subjects = validator.take_new_subjects()
        chunk = _Chunk(
            rows=len(rows),
            lines=[line for line, _ in rows],
            subject_hashes=[subject_hash for _, subject_hash in rows],
        )
        if postgresql:
            chunk.subject_tails = [
                (
                    subject_hash,
                    f"\t{subject_hash}\t{subject.kind}\t{escape(subject.name)}\t"
                    f"\\\\x{encrypt(subject.identifier).hex()}\t"
                    f"{mask(subject.identifier)}\t{validator.public_id()}{subject_suffix}",
                )
                for subject_hash, subject in new_subjects
            ]
        else:
            chunk.subjects = [
                (
                    subject_hash,
                    subject.kind,
                    subject.name,
                    encrypt(subject.identifier),
                    mask(subject.identifier),
                    validator.public_id(),
                )
                for subject_hash, subject in new_subjects
            ]
        yield chunk


class _ReaderFailed:
    def __init__(self, error: BaseException) -> None:
        self.error = error


_END = object()


def _read_ahead(chunks: Iterator[_Chunk], depth: int = 2) -> Generator[_Chunk, None, None]:
    """Produce `chunks` in a thread, up to `depth` ahead of the consumer.

    Reading, validating and formatting a chunk is Python work; writing one is PostgreSQL's. With
    the reader in its own thread the two overlap: psycopg2 releases the GIL while it waits for
    the server. An error in the reader (a malformed file) is raised here, in the consumer.
    """
    handoff: queue.Queue[object] = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def offer(item: object) -> bool:
        while not stop.is_set():
            try:
                handoff.put(item, timeout=0.2)
            except queue.Full:
                continue
            return True
        return False

    def produce() -> None:
        try:
            for chunk in chunks:
                if not offer(chunk):
                    return
        except BaseException as error:  # handed to the consumer, which raises it
            offer(_ReaderFailed(error))
        else:
            offer(_END)
        finally:
            connections.close_all()  # this thread's own connections

    reader = threading.Thread(target=produce, name="import-reader", daemon=True)
    reader.start()
    try:
        while True:
            item = handoff.get()
            if item is _END:
                return
            if isinstance(item, _ReaderFailed):
                raise item.error
            yield item  # type: ignore[misc]
    finally:
        stop.set()
        reader.join()


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
            # The COPY text's first 13 columns; the record's constants as Python values.
            constants = (self.agency_id, False, 1, self.now, self.now)
            self.cursor.executemany(
                "INSERT INTO import_staging VALUES ("  # noqa: S608 - placeholders only
                + ", ".join(["%s"] * len(_RECORD_COLUMNS))
                + ")",
                [
                    (*_copy_values(line)[:13], *constants, ids[subject_hash])
                    for line, subject_hash in zip(chunk.lines, chunk.subject_hashes, strict=True)
                ],
            )
        staged, inserted, updated = _apply(
            self.cursor, agency_id=self.agency_id, batch_id=self.batch_id, now=self.now
        )
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


# The content hash of the stored record with a staged row's number (NULL when there is none).
_EXISTING_HASH = (
    "SELECT r.content_hash FROM records_creditrecord r "
    "WHERE r.agency_id = %s AND r.record_number = s.record_number"
)
_CONTENT_COLUMNS = (
    "category_id, title, facts, decision_document_number, decision_date, conduct_ended_on, "
    "publication_start, publication_end, retention_end, content_hash"
)


def _apply(cursor: Any, *, agency_id: int, batch_id: int, now: Any) -> tuple[int, int, int]:
    """Archive changed records and upsert the staged ones. Returns (staged, inserted, updated)."""
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
        return staged, 0, 0
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
    return staged, inserted, updated


@contextmanager
def _collector_paused() -> Iterator[None]:
    """Pause Python's cyclic garbage collector while a batch is read.

    A million-row file keeps a few million small objects alive (duplicate checks, subjects,
    chunks in flight), and each full collection walks all of them: about a tenth of the import's
    Python time. Nothing the import allocates forms cycles, so there is nothing to collect.
    The pause is process-wide: other threads of the process (a threaded web worker) collect
    no cycles until the import ends.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


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
    text = _decoded_lines(io.BufferedReader(reader, buffer_size=1 << 20))
    postgresql = connection.vendor == "postgresql"
    with _collector_paused(), audited():
        # of=("self",): lock the agency only, not its jurisdiction (which would serialise the
        # imports of every agency there).
        agency = (
            Agency.objects.select_for_update(of=("self",))
            .select_related("jurisdiction")
            .get(pk=agency.pk)
        )
        now = timezone.now()
        validator = _RowValidator(
            agency=agency,
            today=timezone.localdate(),
            copy_suffix=_Writer.constants(agency_id=agency.pk, now=now),
        )
        rows = _csv_rows(text) if file_format == "csv" else _ndjson_rows(text)
        staged_rows = _validated(rows, validator, report, progress)
        batch = ImportBatch.objects.create(
            agency=agency,
            created_by=actor,
            source=source,
            file_name=file_name[:255],
            file_format=file_format,
            sha256="",
        )
        chunks = _chunks(staged_rows, validator, now=now, postgresql=postgresql)
        try:
            with connection.cursor() as cursor:
                writer = _Writer(
                    cursor, postgresql=postgresql, agency_id=agency.pk, batch_id=batch.pk, now=now
                )
                # On PostgreSQL a reader thread prepares the next chunks while one is written;
                # closing the producer stops it, also when writing fails.
                produced = _read_ahead(chunks) if postgresql else chunks
                with closing(produced):
                    for chunk in produced:
                        writer.write(chunk)
                writer.finish()
        except csv.Error as error:
            raise ImportFileInvalid(f"The CSV file is malformed: {error}.") from error
        report.batch_id = batch.pk
        report.sha256 = reader.digest.hexdigest()
        inserted, updated = writer.inserted, writer.updated
        report.rows_inserted = inserted
        report.rows_updated = updated
        report.rows_unchanged = writer.staged - inserted - updated
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
