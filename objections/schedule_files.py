"""Reading a State Council holiday notice written as a small CSV or YAML file.

CSV, with a header: `date,kind,name,source` (kind: `rest` for a day off, `working` for a make-up
workday). YAML: `source:` for the whole notice and `days:`, a list of `{date, kind, name}` (each may
carry its own `source`). Pure: no ORM; the calendar service validates the year and applies it.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from datetime import date
from typing import Any

import yaml

__all__ = ["ScheduleEntry", "ScheduleFileError", "schedule_read"]

KINDS = {"rest": False, "working": True}
CSV_COLUMNS = ("date", "kind", "name", "source")


class ScheduleFileError(ValueError):
    """The file cannot be read as a schedule; `problems` names every line at fault."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


@dataclass(frozen=True)
class ScheduleEntry:
    """One line of a State Council notice: a day off or a make-up workday."""

    day: date
    working: bool
    name: str
    source: str


def schedule_read(text: str, *, file_format: str) -> list[ScheduleEntry]:
    """The entries of a schedule file (`file_format` "csv" or "yaml")."""
    if file_format == "csv":
        rows, problems = _csv_rows(text)
    elif file_format == "yaml":
        rows, problems = _yaml_rows(text)
    else:
        raise ScheduleFileError([f"unknown format {file_format!r}: expected csv or yaml"])
    entries = []
    for where, row in rows:
        entry = _entry(where, row, problems)
        if entry is not None:
            entries.append(entry)
    if problems:
        raise ScheduleFileError(problems)
    return entries


def _csv_rows(text: str) -> tuple[list[tuple[str, dict[str, Any]]], list[str]]:
    reader = csv.DictReader(io.StringIO(text.lstrip("\ufeff")))
    header = tuple(name.strip() for name in reader.fieldnames or ())
    if header != CSV_COLUMNS:
        return [], [
            f"the header must be {','.join(CSV_COLUMNS)}, not {','.join(header) or 'empty'}"
        ]
    try:
        rows = [(f"line {reader.line_num}", dict(row)) for row in reader]
    except csv.Error as error:
        return [], [f"line {reader.line_num}: {error}"]
    return rows, []


def _yaml_rows(text: str) -> tuple[list[tuple[str, dict[str, Any]]], list[str]]:
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError as error:
        return [], [f"not valid YAML: {error}"]
    if not isinstance(document, dict) or not isinstance(document.get("days"), list):
        return [], ["the YAML must be a mapping with `source` and a list `days`"]
    source = document.get("source", "")
    rows = []
    problems = []
    for number, item in enumerate(document["days"], start=1):
        if not isinstance(item, dict):
            problems.append(f"day {number}: expected a mapping with date, kind and name")
            continue
        rows.append((f"day {number}", {"source": source, **item}))
    return rows, problems


def _entry(where: str, row: dict[str, Any], problems: list[str]) -> ScheduleEntry | None:
    raw_day = row.get("date")
    if isinstance(raw_day, date):
        day = raw_day
    else:
        try:
            day = date.fromisoformat(str(raw_day or "").strip())
        except ValueError:
            problems.append(f"{where}: date {raw_day!r} is not YYYY-MM-DD")
            return None
        if len(str(raw_day).strip()) != 10:
            problems.append(f"{where}: date {raw_day!r} is not YYYY-MM-DD")
            return None
    kind = str(row.get("kind") or "").strip().lower()
    if kind not in KINDS:
        problems.append(f"{where}: kind {kind!r} must be rest or working")
        return None
    # An empty name or source is refused by the calendar service's validation, with the day.
    name = str(row.get("name") or "").strip()
    source = str(row.get("source") or "").strip()
    return ScheduleEntry(day=day, working=KINDS[kind], name=name, source=source)
