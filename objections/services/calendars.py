"""The working-day calendar with the administrator's overrides applied, and every change to it.

Each change of the calendar (a day set or removed, a year marked complete or reopened) goes through
a service here and writes an audit event (who, which day, before, after, the notice it comes from).
Completing a year recomputes, after commit, the provisional clocks that counted in it.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date
from functools import partial
from typing import Any

from django.core.cache import cache
from django.core.mail import send_mail
from django.db import transaction
from django.db.models import Count, Max, Q

from accounts import roles
from accounts.models import User
from audit.services import audit_record, audited
from objections.calendar import (
    DayOverride,
    WorkingCalendar,
    package_covers,
    statutory_holidays_core,
)
from objections.models import CalendarOverride, CalendarYear, Clock
from objections.schedule_files import ScheduleEntry
from scs_cases.errors import DomainError

# Overrides change a few times a year; re-reading them once a minute keeps every deadline
# computation in between free of queries, and the calendar's own day cache warm.
REFRESH_SECONDS = 60.0
# The State Council publishes next year's schedule in the autumn; from this month and day on,
# administrators are told until it is entered.
WARN_FROM = (11, 1)

# The years a schedule can be entered for: the platform's working life, with room either side.
YEARS = range(2000, 2101)

_cached: tuple[float, tuple[object, ...], WorkingCalendar] | None = None


class CalendarIncomplete(DomainError):
    """A year cannot be marked complete: its overrides do not cover the State Council notice."""

    code = "calendar_incomplete"

    def __init__(self, year: int, missing: Sequence[str]) -> None:
        super().__init__(
            f"{year} cannot be marked complete; missing: {'; '.join(missing)}.",
            year=year,
            missing=list(missing),
        )
        self.year = year
        self.missing = list(missing)


class CalendarFileInvalid(DomainError):
    """A schedule file that cannot be loaded as it is; `problems` lists every reason."""

    code = "calendar_file_invalid"

    def __init__(self, problems: Sequence[str]) -> None:
        super().__init__("; ".join(problems), problems=list(problems))
        self.problems = list(problems)


def _version() -> tuple[object, ...]:
    overrides = CalendarOverride.objects.aggregate(changed=Max("updated_at"), rows=Count("id"))
    years = CalendarYear.objects.aggregate(changed=Max("updated_at"), rows=Count("id"))
    return (overrides["changed"], overrides["rows"], years["changed"], years["rows"])


def working_calendar(*, fresh: bool = False) -> WorkingCalendar:
    """The calendar for deadlines; `fresh` re-reads the overrides now (tests, admin saves)."""
    global _cached
    now = time.monotonic()
    if _cached is not None and not fresh and now - _cached[0] < REFRESH_SECONDS:
        return _cached[2]
    version = _version()
    if _cached is not None and _cached[1] == version:
        _cached = (now, version, _cached[2])
        return _cached[2]
    calendar = WorkingCalendar(
        overrides=[
            DayOverride(day=row.day, working=row.working, source=row.source)
            for row in CalendarOverride.objects.all()
        ],
        complete_years=CalendarYear.objects.values_list("year", flat=True),
    )
    _cached = (now, version, calendar)
    return calendar


def working_calendar_reset() -> None:
    """Forget the cached calendar, so the next call re-reads the overrides."""
    global _cached
    _cached = None


# ---------------------------------------------------------------------------------------------
# Changes, each audited


def _override_state(row: CalendarOverride | None) -> dict[str, Any] | None:
    if row is None:
        return None
    return {"working": row.working, "source": row.source}


@audited()
def calendar_override_set(
    *, actor: User | None, day: date, working: bool, source: str
) -> CalendarOverride:
    """Rule that `day` is (or is not) a working day, citing `source`; audited with before/after."""
    DayOverride(day=day, working=working, source=source)  # validates the day and the citation
    source = source.strip()
    row = CalendarOverride.objects.select_for_update().filter(day=day).first()
    before = _override_state(row)
    if row is None:
        row = CalendarOverride.objects.create(day=day, working=working, source=source)
    elif (row.working, row.source) != (working, source):
        row.working = working
        row.source = source
        row.save(update_fields=["working", "source", "updated_at"])
    else:
        return row
    audit_record(
        actor=actor,
        action="calendar.day_set",
        target=row,
        data={
            "day": day.isoformat(),
            "before": before,
            "after": _override_state(row),
            "source": source,
        },
    )
    transaction.on_commit(working_calendar_reset)
    return row


@audited()
def calendar_override_delete(*, actor: User | None, day: date) -> None:
    """Remove the override of `day`; the package (or provisional counting) decides it again."""
    row = CalendarOverride.objects.select_for_update().filter(day=day).first()
    if row is None:
        return
    before = _override_state(row)
    audit_record(
        actor=actor,
        action="calendar.day_removed",
        target=row,
        data={"day": day.isoformat(), "before": before, "after": None, "source": row.source},
    )
    row.delete()
    transaction.on_commit(working_calendar_reset)


def calendar_year_missing(*, year: int, days: Iterable[DayOverride] | None = None) -> list[str]:
    """What the overrides of `year` lack to cover the State Council notice, one line per day.

    Every statutory holiday (National Holidays Regulations Art 2 as the `holidays` package
    computes it, lunar dates included) must be entered as a day off; the notice's make-up workdays
    cannot be checked against anything but the notice itself, so the form asks for them by name.
    A year the `chinesecalendar` package covers lacks nothing.
    """
    if year not in YEARS:
        raise DomainError(f"A schedule can be entered for the years {YEARS[0]} to {YEARS[-1]}.")
    if package_covers(year):
        return []
    if days is None:
        days = [
            DayOverride(day=row.day, working=row.working, source=row.source)
            for row in CalendarOverride.objects.filter(day__year=year)
        ]
    by_day = {override.day: override for override in days}
    missing = []
    for day, name in statutory_holidays_core(year).items():
        override = by_day.get(day)
        if override is None:
            missing.append(f"{day.isoformat()} ({name}) as a day off")
        elif override.working:
            missing.append(f"{day.isoformat()} ({name}) is entered as a working day")
    return missing


@audited()
def calendar_year_complete(*, actor: User | None, year: int, source: str) -> CalendarYear:
    """Mark `year` complete: its days without an override follow Monday-to-Friday rules.

    Refused (`CalendarIncomplete`, with the list) while the overrides miss a statutory holiday.
    After commit, the provisional clocks that counted in `year` are recomputed.
    """
    if not source.strip():
        raise DomainError("Name the State Council notice the year's schedule comes from.")
    missing = calendar_year_missing(year=year)
    if missing:
        raise CalendarIncomplete(year, missing)
    row, created = CalendarYear.objects.select_for_update().get_or_create(
        year=year, defaults={"source": source.strip()}
    )
    if not created and row.source == source.strip():
        return row
    before = None if created else {"source": row.source}
    if not created:
        row.source = source.strip()
        row.save(update_fields=["source", "updated_at"])
    audit_record(
        actor=actor,
        action="calendar.year_completed",
        target=row,
        data={
            "year": year,
            "before": before,
            "after": {"source": row.source},
            "source": row.source,
            "overrides": CalendarOverride.objects.filter(day__year=year).count(),
        },
    )
    transaction.on_commit(working_calendar_reset)
    from objections.tasks import clocks_provisional_recompute_task

    transaction.on_commit(partial(clocks_provisional_recompute_task.delay))
    return row


@audited()
def calendar_year_reopen(*, actor: User | None, year: int) -> None:
    """Withdraw the mark of completeness of `year` (its days become provisional again)."""
    row = CalendarYear.objects.select_for_update().filter(year=year).first()
    if row is None:
        return
    audit_record(
        actor=actor,
        action="calendar.year_reopened",
        target=row,
        data={"year": year, "before": {"source": row.source}, "after": None, "source": row.source},
    )
    row.delete()
    transaction.on_commit(working_calendar_reset)


# ---------------------------------------------------------------------------------------------
# Loading a published schedule


@dataclass(frozen=True)
class ScheduleChange:
    day: date
    before: dict[str, Any] | None
    after: dict[str, Any]

    def describe(self) -> str:
        def text(state: dict[str, Any] | None) -> str:
            if state is None:
                return "no override"
            return f"{'working' if state['working'] else 'day off'} ({state['source']})"

        return f"{self.day.isoformat()}: {text(self.before)} -> {text(self.after)}"


@dataclass(frozen=True)
class SchedulePlan:
    year: int
    changes: tuple[ScheduleChange, ...]
    unchanged: int
    missing: tuple[str, ...]  # what would still keep the year from being complete


def calendar_schedule_validate(entries: Sequence[ScheduleEntry]) -> int:
    """The year of a schedule file, or `CalendarFileInvalid` naming every problem."""
    problems: list[str] = []
    if not entries:
        raise CalendarFileInvalid(["the file lists no day"])
    years = sorted({entry.day.year for entry in entries})
    if len(years) > 1:
        problems.append(
            "every date must be in one year; found " + ", ".join(str(year) for year in years)
        )
    seen: set[date] = set()
    for entry in entries:
        if entry.day in seen:
            problems.append(f"{entry.day.isoformat()} is listed twice")
        seen.add(entry.day)
        if not entry.source.strip():
            problems.append(f"{entry.day.isoformat()}: the source (the notice) is empty")
        if not entry.name.strip():
            problems.append(f"{entry.day.isoformat()}: the name (the holiday) is empty")
        if entry.working and entry.day.weekday() < 5:
            problems.append(
                f"{entry.day.isoformat()} is a weekday: only a Saturday or Sunday can be a "
                "make-up workday"
            )
    if problems:
        raise CalendarFileInvalid(problems)
    return years[0]


def calendar_schedule_plan(entries: Sequence[ScheduleEntry]) -> SchedulePlan:
    """What loading `entries` would change, without changing anything."""
    year = calendar_schedule_validate(entries)
    current = {row.day: row for row in CalendarOverride.objects.filter(day__year=year)}
    changes = []
    unchanged = 0
    for entry in entries:
        after = {"working": entry.working, "source": _entry_source(entry)}
        before = _override_state(current.get(entry.day))
        if before == after:
            unchanged += 1
        else:
            changes.append(ScheduleChange(day=entry.day, before=before, after=after))
    planned = {override.day: override for override in _overrides_of(current.values())}
    for entry in entries:
        planned[entry.day] = DayOverride(
            day=entry.day, working=entry.working, source=_entry_source(entry)
        )
    missing = calendar_year_missing(year=year, days=planned.values())
    return SchedulePlan(
        year=year, changes=tuple(changes), unchanged=unchanged, missing=tuple(missing)
    )


@audited()
def calendar_schedule_load(
    *, actor: User | None, entries: Sequence[ScheduleEntry], complete: bool = True
) -> SchedulePlan:
    """Apply a published schedule as overrides (each audited) and, when it covers the notice and
    `complete` is set, mark its year complete. All or nothing."""
    plan = calendar_schedule_plan(entries)
    if complete and plan.missing:
        raise CalendarIncomplete(plan.year, plan.missing)
    for change in plan.changes:
        calendar_override_set(
            actor=actor,
            day=change.day,
            working=change.after["working"],
            source=change.after["source"],
        )
    if complete:
        sources = sorted({entry.source.strip() for entry in entries})
        calendar_year_complete(actor=actor, year=plan.year, source="; ".join(sources)[:200])
    return plan


def _entry_source(entry: ScheduleEntry) -> str:
    return f"{entry.source.strip()}: {entry.name.strip()}"[:200]


def _overrides_of(rows: Iterable[CalendarOverride]) -> list[DayOverride]:
    return [DayOverride(day=row.day, working=row.working, source=row.source) for row in rows]


# ---------------------------------------------------------------------------------------------
# Telling administrators in time


def calendar_years_needed(*, today: date) -> list[int]:
    """The years whose schedule is needed now and not known: this year, and from 1 November the
    next one (deadlines filed in December already reach it)."""
    calendar = working_calendar()
    years = [today.year]
    if (today.month, today.day) >= WARN_FROM:
        years.append(today.year + 1)
    return [year for year in years if not calendar.is_year_known(year)]


def calendar_warning_text(years: Sequence[int]) -> str:
    listed = ", ".join(str(year) for year in years)
    return (
        f"The State Council holiday schedule for {listed} is not entered. Deadlines that reach "
        f"{listed} are provisional (Monday to Friday less the computed statutory holidays) until "
        "it is: load the notice with `manage.py calendar_load FILE`, or enter its days as "
        "calendar overrides in the admin and mark the year complete."
    )


def calendar_open_provisional_count() -> int:
    return Clock.objects.filter(
        provisional=True, status__in=(Clock.Status.RUNNING, Clock.Status.PAUSED)
    ).count()


def calendar_reminder_send(*, today: date) -> int:
    """Email the administrators when a needed year's schedule is missing; at most once per ISO
    week (the beat task runs weekly, and a repeated run in the same week sends nothing)."""
    years = calendar_years_needed(today=today)
    if not years:
        return 0
    iso_year, week, _ = today.isocalendar()
    if not cache.add(f"calendar-reminder:{iso_year}-W{week:02d}", True, timeout=8 * 86400):
        return 0
    recipients = sorted(
        set(
            User.objects.filter(
                Q(is_superuser=True) | Q(groups__name=roles.ADMINISTRATOR), is_active=True
            )
            .exclude(email="")
            .values_list("email", flat=True)
        )
    )
    if not recipients:
        return 0
    listed = ", ".join(str(year) for year in years)
    body = (
        calendar_warning_text(years)
        + f"\n\nOpen clocks with a provisional deadline now: {calendar_open_provisional_count()}."
        + "\nThis reminder is sent once a week until the schedule is complete."
    )
    return send_mail(f"scs-cases: enter the {listed} working-day schedule", body, None, recipients)
