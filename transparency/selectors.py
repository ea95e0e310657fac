"""Reads of the figures: the latest publication, and a table of it for one view."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from accounts import roles
from accounts.models import User
from transparency import figures
from transparency.models import Publication

BY = ("jurisdiction", "agency", "category")


# The latest publication's figures, parsed once per process: a publication never changes, so
# a request costs one indexed lookup of the newest id while it stays the newest.
_parsed: dict[int, Publication] = {}


def publication_cache_reset() -> None:
    """Forget the parsed figures (tests: a rolled-back publication's id comes round again on
    SQLite)."""
    _parsed.clear()


def publication_latest(*, oversight: bool = False) -> Publication | None:
    """The latest figures; the oversight report is read only when asked for (the public pages
    never need it)."""
    latest = Publication.objects.order_by("-computed_at", "-id")
    if oversight:
        return latest.first()
    newest = latest.values_list("pk", flat=True).first()
    if newest is None:
        return None
    found = _parsed.get(newest)
    if found is None:
        found = Publication.objects.defer("oversight").get(pk=newest)
        _parsed.clear()
        _parsed[newest] = found
    return found


def _share(count: int | None, total: int | None) -> float | None:
    if count is None or total is None or total == 0:
        return None
    return count / total


@dataclass(frozen=True)
class Row:
    key: str
    label: str
    cell: dict[str, Any]
    shares: dict[str, float | None]


def table(publication: Publication, *, by: str, month: str, language: str) -> list[Row]:
    """The rows of one view: each value of the dimension `by` in `month` (or the whole period,
    `all`), with the outcome and on-time shares of the decided cases; withheld figures are None,
    and so is every share computed from one."""
    data = publication.figures
    names = data["labels"].get(by, {})
    rows = []
    for key, months in data["tables"].get(by, {}).items():
        cell = months.get(month)
        if cell is None:
            continue
        shares = {
            measure: _share(cell[measure], cell["decided"])
            for measure in (*figures.OUTCOMES, "on_time")
        }
        label = names.get(key, {}).get("zh" if language.startswith("zh") else "en", key)
        rows.append(Row(key, label, cell, shares))
    return sorted(rows, key=lambda row: row.label)


def series(publication: Publication) -> list[tuple[str, dict[str, Any]]]:
    """The whole platform's figures month by month."""
    months = publication.figures["tables"].get(figures.ALL, {}).get(figures.ALL, {})
    return [(month, months.get(month, {})) for month in publication.figures["months"]]


def oversight_visible_to(user: User) -> bool:
    """Supervisors and auditors (and administrators) see the oversight report."""
    names = roles.role_names(user)
    return bool(names & {roles.SUPERVISOR, roles.AUDITOR, roles.ADMINISTRATOR})
