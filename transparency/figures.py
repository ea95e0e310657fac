"""The public figures: per month and per jurisdiction, agency or catalogue category, how many
cases were filed and decided, how they ended, how long they took, and whether the statutory
deadlines were kept; with small counts suppressed so that no figure identifies a person.

Pure functions over `CaseFacts` (one per case, read by `transparency.services`); the measures are
defined in docs/statistics.md.
"""

from __future__ import annotations

import statistics
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date
from typing import Any

# Counts published per cell. Flows count what happened in the month; `backlog` is the stock of
# cases open at the month's end.
OUTCOMES = ("corrected", "deleted", "publication_ended", "repaired", "refused", "other")
FLOWS = (
    "filed",
    "filed_objection",
    "filed_repair",
    "decided",
    *OUTCOMES,
    "withdrawn",
    "on_time",
    "late",
)
COUNTS = (*FLOWS, "backlog")
# Sums that hold inside one cell: a total and its parts.
WITHIN = (
    ("filed", ("filed_objection", "filed_repair")),
    ("decided", OUTCOMES),
    ("decided", ("on_time", "late")),
)
DIMENSIONS = ("all", "jurisdiction", "agency", "category")
ALL = "all"  # the value of the "all" dimension, and the month of the period's totals
THRESHOLD = 5  # a count from 1 to THRESHOLD - 1 could point at someone: it is suppressed

Key = tuple[str, str, str, str]  # month, dimension, value, measure
Group = tuple[str, str, str]  # month, dimension, value


@dataclass(frozen=True)
class CaseFacts:
    """What the figures need to know of one case."""

    kind: str
    jurisdiction: str
    agency: str
    category: str
    filed_on: date
    closed_on: date | None
    decided_on: date | None = None
    outcome: str | None = None  # one of OUTCOMES, when decided
    withdrawn_on: date | None = None
    working_days: int | None = None  # from filing to the decision
    paused_days: int = 0  # working days the clocks stood still (material requested)
    on_time: bool | None = None  # decided without a statutory deadline passing


def month_of(day: date) -> str:
    return f"{day.year:04d}-{day.month:02d}"


def months_between(first: date, last: date) -> list[str]:
    months, year, month = [], first.year, first.month
    while (year, month) <= (last.year, last.month):
        months.append(f"{year:04d}-{month:02d}")
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)
    return months


def _month_end(month: str) -> date:
    year, number = int(month[:4]), int(month[5:])
    following = date(year + 1, 1, 1) if number == 12 else date(year, number + 1, 1)
    return date.fromordinal(following.toordinal() - 1)


@dataclass
class Aggregates:
    counts: dict[Key, int]
    days: dict[Group, list[int]]  # working days to decision of the cases decided in the group
    paused: dict[Group, list[int]]
    agencies: dict[str, str]  # agency -> its jurisdiction
    months: list[str]


def aggregate(facts: Iterable[CaseFacts], *, months: list[str]) -> Aggregates:
    """Count every case into each month and dimension it belongs to (and the period's totals)."""
    counts: dict[Key, int] = defaultdict(int)
    days: dict[Group, list[int]] = defaultdict(list)
    paused: dict[Group, list[int]] = defaultdict(list)
    agencies: dict[str, str] = {}
    shown = set(months)
    ends = [(month, _month_end(month)) for month in months]
    for case in facts:
        agencies[case.agency] = case.jurisdiction
        values = (
            (ALL, ALL),
            ("jurisdiction", case.jurisdiction),
            ("agency", case.agency),
            ("category", case.category),
        )

        def add(month: str, measure: str, values: Any = values) -> None:
            if month not in shown:
                return
            for dimension, value in values:
                counts[(month, dimension, value, measure)] += 1
                counts[(ALL, dimension, value, measure)] += 1

        filed = month_of(case.filed_on)
        add(filed, "filed")
        add(filed, f"filed_{case.kind}")
        if case.decided_on is not None and case.outcome is not None:
            decided = month_of(case.decided_on)
            add(decided, "decided")
            add(decided, case.outcome)
            add(decided, "on_time" if case.on_time else "late")
            if decided in shown:
                for dimension, value in values:
                    for month in (decided, ALL):
                        days[(month, dimension, value)].append(case.working_days or 0)
                        paused[(month, dimension, value)].append(case.paused_days)
        elif case.withdrawn_on is not None:
            add(month_of(case.withdrawn_on), "withdrawn")
        for month, end in ends:  # a stock: open at the month's end
            if case.filed_on <= end and (case.closed_on is None or case.closed_on > end):
                for dimension, value in values:
                    counts[(month, dimension, value, "backlog")] += 1
    return Aggregates(dict(counts), dict(days), dict(paused), agencies, months)


def relations(aggregates: Aggregates) -> list[tuple[Key, tuple[Key, ...]]]:
    """Every sum among one month's published figures: inside a cell, and across dimensions (all
    = the jurisdictions = the categories; a jurisdiction = its agencies). Months are suppressed
    each on its own, and the period's figures are sums of the published months (`publish`)."""
    groups: dict[str, set[str]] = defaultdict(set)
    for _, dimension, value, _ in aggregates.counts:
        groups[dimension].add(value)
    by_jurisdiction: dict[str, list[str]] = defaultdict(list)
    for agency, jurisdiction in aggregates.agencies.items():
        by_jurisdiction[jurisdiction].append(agency)
    found: list[tuple[Key, tuple[Key, ...]]] = []
    for month in aggregates.months:
        for dimension, values in groups.items():
            for value in values:
                for total, parts in WITHIN:
                    found.append(
                        (
                            (month, dimension, value, total),
                            tuple((month, dimension, value, part) for part in parts),
                        )
                    )
        for measure in COUNTS:
            grand: Key = (month, ALL, ALL, measure)
            for dimension in ("jurisdiction", "category"):
                found.append(
                    (
                        grand,
                        tuple(
                            (month, dimension, value, measure)
                            for value in sorted(groups[dimension])
                        ),
                    )
                )
            for jurisdiction, members in by_jurisdiction.items():
                found.append(
                    (
                        (month, "jurisdiction", jurisdiction, measure),
                        tuple((month, "agency", agency, measure) for agency in sorted(members)),
                    )
                )
    return found


def suppress(counts: Mapping[Key, int], linked: list[tuple[Key, tuple[Key, ...]]]) -> set[Key]:
    """The cells to withhold: every count from 1 to THRESHOLD - 1 (primary), then, until none is
    left, in every sum with exactly one withheld term, the smallest other term (secondary), so
    that no withheld count is the difference of a published total and published parts."""
    hidden = {key for key, value in counts.items() if 0 < value < THRESHOLD}
    changed = True
    while changed:
        changed = False
        for total, parts in linked:
            terms = (total, *parts)
            withheld = [term for term in terms if term in hidden]
            if len(withheld) != 1:
                continue
            others = [term for term in terms if term not in hidden]
            if not others:
                continue
            # Prefer a non-zero term: a withheld zero next to a published total gives nothing away
            # only while the reader cannot tell it is zero.
            choice = min(others, key=lambda term: (counts.get(term, 0) == 0, counts.get(term, 0)))
            hidden.add(choice)
            changed = True
    return hidden


def _median(values: list[int]) -> float | None:
    return float(statistics.median(values)) if values else None


def _rounded_backlog(value: int | None) -> int | None:
    """The backlog to the nearest ten: month-end stocks, published exactly, would give away a
    withheld flow as the difference of two months."""
    if value is None or value == 0:
        return value
    return max(10, (value + 5) // 10 * 10)


def publish(
    aggregates: Aggregates,
    *,
    labels: Mapping[str, Mapping[str, dict[str, str]]],
    frozen: Mapping[str, Mapping[str, Mapping[str, dict[str, Any]]]] | None = None,
) -> dict[str, Any]:
    """The public figures: per dimension, value and month, each count (None where withheld) and
    the medians of working days to decision and paused days (None where fewer than THRESHOLD
    decisions could be shown). Every value of a dimension has a cell in every month (zeros
    where nothing happened).

    `frozen`: the tables of an earlier publication, whose months are published as they were
    then: a month's figures never change once out, so two publications cannot be compared to
    reveal a withheld count. The period's figures (`all`) are the sums of the published months,
    withheld where any month is.
    """
    hidden = suppress(aggregates.counts, relations(aggregates))
    frozen = frozen or {}
    tables: dict[str, dict[str, dict[str, dict[str, Any]]]] = {}
    # The platform as a whole has figures every month, even when nothing happened in any.
    values = {(ALL, ALL)} | {(dimension, value) for _, dimension, value, _ in aggregates.counts}
    for dimension, names in frozen.items():
        values.update((dimension, value) for value in names)
    for dimension, value in sorted(values):
        months: dict[str, dict[str, Any]] = {}
        for month in aggregates.months:
            kept = frozen.get(dimension, {}).get(value, {}).get(month)
            if kept is not None:
                months[month] = dict(kept)
                continue
            cell: dict[str, Any] = {}
            for measure in COUNTS:
                key = (month, dimension, value, measure)
                cell[measure] = None if key in hidden else aggregates.counts.get(key, 0)
            cell["backlog"] = _rounded_backlog(cell["backlog"])
            decided = cell["decided"]
            enough = decided is not None and decided >= THRESHOLD
            samples = (month, dimension, value)
            cell["median_working_days"] = (
                _median(aggregates.days.get(samples, [])) if enough else None
            )
            cell["median_paused_days"] = (
                _median(aggregates.paused.get(samples, [])) if enough else None
            )
            months[month] = cell
        period: dict[str, Any] = {}
        for measure in FLOWS:
            parts = [months[month][measure] for month in aggregates.months]
            period[measure] = None if None in parts else sum(parts)
        # Medians are given per month: one over the period would be computed from today's data
        # while its months are kept as first published, and could move when they do not.
        period["median_working_days"] = period["median_paused_days"] = None
        months[ALL] = period
        tables.setdefault(dimension, {})[value] = months
    return {
        "months": aggregates.months,
        "threshold": THRESHOLD,
        "tables": tables,
        "labels": {dimension: dict(names) for dimension, names in labels.items()},
    }
