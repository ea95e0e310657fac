"""A record's content: the one set of checks for its fields, the one content hash, and the cell
form of its text in exports.

An import row (`records.imports.validation`), a correction an applicant proposes at filing and
the values a decision sets (`objections.services`) all go through `text_problem`,
`date_problem` and `ProhibitedTerms`, so nothing reaches a grant that the import would refuse.
Imports and corrections compute `content_hash` over the same fields in the same form.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.utils.translation import gettext_lazy

from records.dates import add_months
from scs_cases.errors import DomainError

if TYPE_CHECKING:
    from records.models import CreditRecord

# The record fields a correction (proposed or decided) may set, and their limits.
TEXT_FIELDS = ("title", "facts", "decision_document_number")
DATE_FIELDS = ("decision_date", "conduct_ended_on")
CORRECTABLE_FIELDS = frozenset(TEXT_FIELDS + DATE_FIELDS)
OPTIONAL_CORRECTABLE = frozenset({"conduct_ended_on"})
# Those fields as people read them, in the order of the record page (portal and dashboard).
FIELD_LABELS = {
    "title": gettext_lazy("Title"),
    "facts": gettext_lazy("Facts"),
    "decision_document_number": gettext_lazy("Decision document number"),
    "decision_date": gettext_lazy("Decision date"),
    "conduct_ended_on": gettext_lazy("Conduct ended on"),
}
MAX_LENGTHS = {
    "record_number": 64,
    "subject_name": 200,
    "title": 300,
    "facts": 10_000,
    "decision_document_number": 100,
}
DEFAULT_MAX_LENGTH = 1_000
EARLIEST_DECISION = date(1990, 1, 1)

# Terms that no lawful catalogue allows in a record (Shanghai Art 15, Zhejiang Art 14, PIPL
# Art 28). Matched on the normalised text (see `prohibited_key`), so each is stored normalised.
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

# Control characters (C0 but tab, line feed and carriage return; DEL; C1) and lone surrogates,
# which a JSON string can spell ("\\ud800") but no text encoding can store. The unit separator
# among them joins the fields a content hash is computed over.
FORBIDDEN_CHARACTERS = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ud800-\udfff]")


def _char_class(points: list[int]) -> str:
    """A regular-expression character class of `points` (sorted), as ranges."""
    parts, index = [], 0
    while index < len(points):
        first = last = points[index]
        while index + 1 < len(points) and points[index + 1] == last + 1:
            index += 1
            last = points[index]
        parts.append(re.escape(chr(first)) + (f"-{re.escape(chr(last))}" if last > first else ""))
        index += 1
    return "[" + "".join(parts) + "]"


# Characters that render as nothing and could split a term: every format character (Unicode
# category Cf: zero-width spaces and joiners, bidirectional controls, the byte-order mark, the
# soft hyphen, tag characters), the combining grapheme joiner, variation selectors, the Hangul
# fillers, and the combining dot above that case-folding the dotted capital I (U+0130) leaves.
_INVISIBLE_EXTRA = [0x0307, 0x034F, 0x115F, 0x1160, 0x17B4, 0x17B5, 0x3164, 0xFFA0]
_INVISIBLE_EXTRA += [*range(0x180B, 0x1810), *range(0xFE00, 0xFE10), *range(0xE0100, 0xE01F0)]
_INVISIBLE_POINTS = sorted(
    {
        *_INVISIBLE_EXTRA,
        *(
            point
            for point in (*range(0x80, 0x10000), *range(0xE0000, 0xE0080))
            if unicodedata.category(chr(point)) == "Cf"
        ),
    }
)
_INVISIBLE = re.compile(_char_class(_INVISIBLE_POINTS))
_INVISIBLE_BASIC = "".join(chr(point) for point in _INVISIBLE_POINTS if point < 0x10000)
# One format for dates: ISO 8601 calendar dates (no compact 20260101, no times).
ISO_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}\Z")
# A cell beginning with one of these is read as a formula by spreadsheet programs.
FORMULA_LEADING = ("=", "+", "-", "@", "\t", "\r")


class ContentInvalid(DomainError):
    """Record content that cannot be stored: `errors` maps each field to its reason."""

    code = "content_invalid"


def prohibited_key(text: str, compatible: re.Pattern[str] | None = None) -> str:
    """`text` as prohibited terms are matched against it: Unicode NFKC, case-folded, with
    whitespace and invisible characters removed (`ＲＥＬＩＧＩＯＮ`, `r e l i g i o n` and
    `指\\u200b纹` all match). ASCII text skips the steps that cannot change it; with
    `compatible` (the characters NFKC turns into a letter of a term), so does text without one:
    Chinese text is full of full-width punctuation, which NFKC would change to no effect."""
    if text.isascii():
        return "".join(text.lower().split())
    folded = text.casefold()
    if compatible is None or compatible.search(folded):
        folded = unicodedata.normalize("NFKC", folded).casefold()
        if _INVISIBLE.search(folded):
            folded = _INVISIBLE.sub("", folded)
    if "\u0131" in folded:  # dotless i, which case-insensitive matching takes for an i
        folded = folded.replace("\u0131", "i")
    return "".join(folded.split())


class ProhibitedTerms:
    """The configured prohibited terms (`RECORDS_PROHIBITED_TERMS`, else the built-in list),
    compiled once into one scan."""

    def __init__(self, terms: tuple[str, ...]) -> None:
        self._terms = {key: term for term in terms if (key := prohibited_key(term))}
        keys = sorted(self._terms, key=len, reverse=True)
        # No terms configured: a pattern that matches nothing (an empty one would match all).
        self._pattern = re.compile("|".join(map(re.escape, keys)) if keys else "(?!)")
        # What sends text down the slow path: a character of the basic plane that NFKC and
        # case folding turn into a letter of some term, an invisible one, or any character
        # beyond the basic plane (mathematical and enclosed letters, tags). One class of the
        # basic plane scans as a bitmap: a Chinese row without any of them costs a microsecond.
        alphabet = set("".join(keys))
        self._compatible = re.compile(
            _char_class(
                sorted(
                    {
                        point
                        for point in range(0x80, 0x10000)
                        if (form := unicodedata.normalize("NFKC", chr(point))) != chr(point)
                        and alphabet & set(form.casefold())
                    }
                    | {ord(char) for char in _INVISIBLE_BASIC}
                )
            )[:-1]
            + "\U00010000-\U0010ffff]"
        )

    def find(self, text: str) -> str | None:
        """The prohibited term `text` mentions, in its listed spelling, or None."""
        found = self._pattern.search(prohibited_key(text, self._compatible))
        return self._terms[found.group(0)] if found else None


@lru_cache(maxsize=4)
def _compiled(terms: tuple[str, ...]) -> ProhibitedTerms:
    return ProhibitedTerms(terms)


def prohibited_terms() -> ProhibitedTerms:
    return _compiled(tuple(getattr(settings, "RECORDS_PROHIBITED_TERMS", PROHIBITED_TERMS)))


def text_problem(name: str, value: str, *, required: bool = True) -> str | None:
    """Why `value` cannot be the text of field `name`, or None. The prohibited-term check is
    separate (`ProhibitedTerms`): an import scans two fields at once."""
    if not value.strip():
        return "is required" if required else None
    if "\x00" in value:
        return "contains a NUL character"
    if found := FORBIDDEN_CHARACTERS.search(value):
        return f"contains the control or invalid character U+{ord(found[0]):04X}"
    limit = MAX_LENGTHS.get(name, DEFAULT_MAX_LENGTH)
    if len(value) > limit:
        return f"is longer than {limit} characters"
    return None


def date_parse(value: str) -> date:
    """A date written as ISO 8601 YYYY-MM-DD; ValueError naming the form otherwise."""
    if not ISO_DATE.match(value):
        raise ValueError("must be a date in the form YYYY-MM-DD")
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise ValueError("must be a date in the form YYYY-MM-DD") from None


def date_problem(name: str, value: date, *, today: date) -> str | None:
    """Why a record cannot carry `value` as its `name` date, or None."""
    if value > today:
        return "is in the future"
    if name == "decision_date" and value < EARLIEST_DECISION:
        return f"is before {EARLIEST_DECISION.isoformat()}"
    return None


@dataclass(frozen=True)
class CheckedCorrection:
    """Values for a record's fields, checked and typed (dates as `date`, None to clear)."""

    values: dict[str, Any]

    def as_json(self) -> dict[str, str | None]:
        return {
            name: value.isoformat() if isinstance(value, date) else value
            for name, value in self.values.items()
        }


def correction_check(changes: object, *, today: date) -> CheckedCorrection:
    """Check field values proposed for, or decided on, a record: the same rules as an import
    row. Raises ContentInvalid with a reason per field."""
    if not isinstance(changes, Mapping):
        raise ContentInvalid(
            "A correction is an object of field names and values.",
            errors={"correction": "must be an object of field names and values"},
        )
    errors: dict[str, str] = {}
    values: dict[str, Any] = {}
    terms = prohibited_terms()
    unknown = [
        name for name in changes if not isinstance(name, str) or name not in CORRECTABLE_FIELDS
    ]
    if unknown:
        # A name is echoed only when it is plain text: it may hold anything, a lone surrogate
        # (which no response could encode) included.
        shown = sorted(
            name
            for name in unknown
            if isinstance(name, str)
            and len(name) <= 64
            and name.isprintable()
            and not FORBIDDEN_CHARACTERS.search(name)
        )
        errors["correction"] = (
            f"cannot change {', '.join(shown) if shown else 'these fields'}; it may change: "
            + ", ".join(sorted(CORRECTABLE_FIELDS))
        )
    for name, value in changes.items():
        if name in unknown:
            continue
        required = name not in OPTIONAL_CORRECTABLE
        if isinstance(value, str):
            value = value.strip()  # as an import row's values are
        if value is None or value == "":
            if required:
                errors[name] = "is required"
            else:
                values[name] = None
            continue
        if not isinstance(value, str):
            errors[name] = "must be text"
            continue
        problem = text_problem(name, value, required=required)
        if problem is None and name in DATE_FIELDS:
            try:
                parsed = date_parse(value)
            except ValueError as error:
                problem = str(error)
            else:
                problem = date_problem(name, parsed, today=today)
                values[name] = parsed
        elif problem is None:
            if term := terms.find(value):
                problem = f"mentions prohibited personal data ({term})"
            values[name] = value
        if problem is not None:
            errors[name] = problem
            values.pop(name, None)
    if errors:
        summary = "; ".join(f"{name} {reason}" for name, reason in sorted(errors.items()))
        raise ContentInvalid(f"The correction cannot be applied: {summary}.", errors=errors)
    return CheckedCorrection(values)


def content_hash(
    *,
    subject_hash: str,
    category_code: str,
    title: str,
    facts: str,
    document_number: str,
    decision_date: str,
    conduct_ended_on: str,
    publication_months: int,
) -> str:
    """The one content hash of a record, over its fields joined by the unit separator (which
    no stored field may hold). Dates in ISO form; "" for no conduct end date."""
    content = "\x1f".join(
        (
            subject_hash,
            category_code,
            title,
            facts,
            document_number,
            decision_date,
            conduct_ended_on,
            str(publication_months),
        )
    )
    return hashlib.sha256(content.encode()).hexdigest()


def publication_months(start: date, end: date) -> int:
    """The whole months of a publication period (`add_months(start, n) == end`)."""
    return (end.year - start.year) * 12 + end.month - start.month


def record_periods(
    *,
    decision_date: date,
    conduct_ended_on: date | None,
    months: int,
    retention_months: int,
    retention_from_conduct: bool,
) -> tuple[date, date, date]:
    """A record's publication start and end and its retention end, as an import computes them:
    publication runs `months` from the decision; retention from the end of the conduct where
    the jurisdiction counts from it and the date is known, else from the decision."""
    anchor = (
        conduct_ended_on
        if retention_from_conduct and conduct_ended_on is not None
        else decision_date
    )
    return (
        decision_date,
        add_months(decision_date, months),
        add_months(anchor, retention_months),
    )


def record_content_hash(record: CreditRecord) -> str:
    """`content_hash` of a stored record's current content (subject and category loaded)."""
    return content_hash(
        subject_hash=record.subject.identifier_hash,
        category_code=record.category.code,
        title=record.title,
        facts=record.facts,
        document_number=record.decision_document_number,
        decision_date=record.decision_date.isoformat(),
        conduct_ended_on=record.conduct_ended_on.isoformat() if record.conduct_ended_on else "",
        publication_months=publication_months(record.publication_start, record.publication_end),
    )


def export_cell(value: object) -> str:
    """Text for a CSV or spreadsheet cell: one that begins like a formula is prefixed with an
    apostrophe, so it is shown as text and never evaluated. One that begins with an apostrophe
    gets another, so that the cell reads back unambiguously (drop one leading apostrophe). The
    stored value is unchanged."""
    text = "" if value is None else str(value)
    if text.startswith(_NEUTRALISED):
        return "'" + text
    return text


_NEUTRALISED = (*FORMULA_LEADING, "'")
