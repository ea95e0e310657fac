"""Validating rows of an import: the lawful catalogue, prohibited data, identifiers, dates,
and the row report (`ImportReport`, `RowError`)."""

from __future__ import annotations

import operator
import os
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import date
from typing import TYPE_CHECKING, Any

from records import content, identifiers
from records.content import MAX_LENGTHS
from records.crypto import identifier_hasher
from records.dates import add_months
from records.models import Agency, CatalogueEntry, CreditRecord, Jurisdiction
from scs_cases.errors import DomainError

if TYPE_CHECKING:
    pass

from records.imports.writers import (
    _COPY_SPECIAL,
    _NULL,
    _copy_escape,
)

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
_FORBIDDEN_CHARACTERS = content.FORBIDDEN_CHARACTERS
_PUBLISHED = CreditRecord.Status.PUBLISHED.value
_PUBLICATION_ENDED = CreditRecord.Status.PUBLICATION_ENDED.value
MAX_ERRORS_KEPT = 10_000
MAX_ERRORS_STORED = 1_000


class ImportFileInvalid(DomainError):
    code = "import_file_invalid"


@dataclass(frozen=True)
class RowError:
    line: int
    field: str
    reason: str

    def as_dict(self) -> dict[str, Any]:
        return {"line": self.line, "field": self.field, "reason": self.reason}


def refusal_class(errors: list[RowError]) -> str:
    """Why a row was refused, as the oversight report counts it: outside the lawful catalogue,
    prohibited personal data, an invalid identifier, or another error."""
    for error in errors:
        if error.field == "category":
            return "outside_catalogue"
        if error.reason.startswith("mentions prohibited personal data"):
            return "prohibited_data"
        if error.field == "subject_identifier":
            return "invalid_identifier"
    return "other"


@dataclass(frozen=True)
class HeldRow:
    """A row that would have changed fields a decided case set: those fields were kept."""

    line: int
    record_number: str
    case_reference: str
    fields: tuple[str, ...]
    conflict: int

    def as_dict(self) -> dict[str, Any]:
        return {
            "line": self.line,
            "record_number": self.record_number,
            "case": self.case_reference,
            "fields": list(self.fields),
            "conflict": self.conflict,
        }


@dataclass
class ImportReport:
    batch_id: int = 0
    sha256: str = ""
    rows_total: int = 0
    rows_inserted: int = 0
    rows_updated: int = 0
    rows_unchanged: int = 0
    rows_rejected: int = 0
    rows_held: int = 0
    errors: list[RowError] = field(default_factory=list)
    held: list[HeldRow] = field(default_factory=list)
    # Rejected rows by the kind of their first error (`refusal_class`), for the oversight report.
    refusals: Counter[str] = field(default_factory=Counter)

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

    def __init__(
        self, *, agency: Agency, today: date, copy_suffix: str = "", as_values: bool = False
    ) -> None:
        """`copy_suffix`: the COPY text of the columns every new record of the batch shares,
        appended to each row (see `_Writer.constants`). `as_values`: stage each row as a tuple
        of its values (SQLite) instead of COPY text (PostgreSQL)."""
        self.today = today
        self.copy_suffix = copy_suffix
        self.as_values = as_values
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
        self._prohibited = content.prohibited_terms()
        # Imports repeat the same dates: publication periods by (decision date, months), retention
        # by its start date; a few tens of thousands of keys for a million rows.
        self._publication: dict[tuple[date, int], tuple[str, date, str]] = {}
        self._retention: dict[date, tuple[date, str]] = {}
        self._id_prefix = f"{int(time.time() * 1000):012x}7"
        self._id_counter = 0
        self._id_random: list[str] = []
        self._required = [name in REQUIRED_FIELDS for name in FIELDS]
        self._max_lengths = [MAX_LENGTHS.get(name, content.DEFAULT_MAX_LENGTH) for name in FIELDS]

    def validate(
        self, line: int, raw: list[str], problems: Iterable[tuple[str, str]] = ()
    ) -> tuple[tuple[Any, str] | None, list[RowError]]:
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
            for name, required, value in zip(FIELDS, self._required, values, strict=True):
                if problem := content.text_problem(name, value, required=required):
                    fail(name, problem)
            if errors:
                return None, errors

        # One scan over both fields; on a hit, each field is scanned to name it.
        if self._prohibited.find(f"{title}\n{facts}"):
            for name, value in (("title", title), ("facts", facts)):
                if term := self._prohibited.find(value):
                    fail(name, f"mentions prohibited personal data ({term})")

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
        for name, day in (
            ("decision_date", decision_date),
            ("conduct_ended_on", conduct_ended_on),
        ):
            if day is not None and (problem := content.date_problem(name, day, today=self.today)):
                fail(name, problem)

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
        content_hash = content.content_hash(
            subject_hash=subject_hash,
            category_code=category.code,
            title=title,
            facts=facts,
            document_number=document_number,
            decision_date=decision_text,
            conduct_ended_on=conduct_text,
            publication_months=months,
        )
        if self.as_values:
            staged_values = (
                number,
                category.id,
                title,
                facts,
                document_number,
                decision_text,
                conduct_text or None,
                decision_text,
                publication_end_text,
                retention_end_text,
                status,
                content_hash,
                self.public_id(),
            )
            return (staged_values, subject_hash), errors
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
            return content.date_parse(value)
        except ValueError as error:
            fail(name, str(error))
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


_Row = tuple[int, list[str] | None, list[tuple[str, str]]]


def _validated(
    rows: Iterable[_Row],
    validator: _RowValidator,
    report: ImportReport,
    progress: Callable[[int], object] | None,
) -> Iterator[tuple[Any, str]]:
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
            report.refusals[refusal_class(errors)] += 1
            if len(report.errors) < MAX_ERRORS_KEPT:
                report.errors.extend(errors)
            continue
        yield staged
    if progress is not None:
        progress(report.rows_total % 10_000)


# Columns of a staged record, in the order of the COPY text and of the staging table. The
# validator's tuple holds the first 13, then the subject's blind index; the writer adds the
# agency, the constants of a new record and, last, the subject's id once the subject is stored.
