"""The one calendar service for deadlines: working days, calendar days and how each was computed.

A working day in China is Monday to Friday, except statutory holidays, plus the weekend days that
the State Council's annual holiday notice designates as make-up workdays (调休上班). The schedule
comes from the `chinesecalendar` package, and administrator overrides (one per day, each citing its
notice) win over it, because each year's notice is published in the autumn, often before the
package is updated.

A year that neither the package nor a complete set of overrides defines is not a reason to stop a
case: its days are counted *provisionally*, Monday to Friday less the statutory holidays that the
`holidays` package computes for that year (make-up workdays cannot be known before the notice).
A deadline that touched such a day says so (`Deadline.provisional_years` and a line of its trace),
and the clock service recomputes it once the year's schedule is complete.

Counting follows the Civil Code: the first day is not counted (Art 201), and a calendar-day period
whose last day is a statutory rest day ends on the next working day instead (Art 203).

This module is pure: no ORM. The database layer reads the override table and passes it in.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from functools import lru_cache

import chinese_calendar
import holidays

__all__ = [
    "CALENDAR_DAYS",
    "WORKING_DAYS",
    "DayOverride",
    "Deadline",
    "WorkingCalendar",
    "add",
    "package_covers",
    "statutory_holidays",
    "statutory_holidays_core",
]

WORKING_DAYS = "working"
CALENDAR_DAYS = "calendar"

_ONE_DAY = timedelta(days=1)
_WEEKDAY_NAMES = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")


@dataclass(frozen=True)
class DayOverride:
    """An administrator's ruling that a day is, or is not, a working day, citing its notice."""

    day: date
    working: bool
    source: str

    def __post_init__(self) -> None:
        _require_date(self.day, "day")
        if not self.source.strip():
            raise ValueError(f"The override for {self.day.isoformat()} must name its notice.")


@dataclass(frozen=True)
class Deadline:
    """A computed deadline with the steps that produced it."""

    due: date
    unit: str
    amount: int
    start: date
    trace: tuple[str, ...]
    # Years whose days were counted without a known schedule (empty: the deadline is definite).
    provisional_years: tuple[int, ...] = ()

    @property
    def provisional(self) -> bool:
        return bool(self.provisional_years)

    def trace_text(self) -> str:
        return "\n".join(self.trace)


@dataclass(frozen=True, slots=True)
class _Day:
    """What is known about one day: whether it is worked, and why (for the trace)."""

    working: bool
    # The package's holiday name: the holiday a day off belongs to, or the holiday a weekend
    # make-up workday is worked for.
    holiday: str | None
    # The notice cited by an administrator override, when one decided the day.
    source: str | None
    # No schedule is known for the day's year: Monday to Friday less computed statutory holidays.
    provisional: bool = False


class WorkingCalendar:
    """Working days from the package plus administrator overrides.

    `overrides` win over the package. A year in `complete_years` is fully defined by the package
    and the overrides even when the package has no data for it: its days without an override follow
    Monday-to-Friday rules. In any other year the package does not cover, a day without an override
    is provisional: Monday to Friday less the statutory holidays computed for that year.

    Build one instance per set of overrides and reuse it: it caches what it has looked up.
    """

    def __init__(
        self, *, overrides: Iterable[DayOverride] = (), complete_years: Iterable[int] = ()
    ) -> None:
        by_day: dict[date, DayOverride] = {}
        for override in overrides:
            if override.day in by_day:
                # Two rows for one day would make the answer depend on their order.
                raise ValueError(f"More than one override for {override.day.isoformat()}.")
            by_day[override.day] = override
        self._overrides = by_day
        self._complete_years = frozenset(complete_years)
        self._days: dict[date, _Day] = {}

    def is_working_day(self, day: date) -> bool:
        """Whether `day` is a working day (provisionally so when its year is not known)."""
        _require_date(day, "day")
        return self._day(day).working

    def is_year_known(self, year: int) -> bool:
        """Whether the package or an administrator's complete schedule defines `year`."""
        return year in self._complete_years or package_covers(year)

    def is_provisional(self, day: date) -> bool:
        """Whether the answer for `day` is provisional (no known schedule decides it)."""
        _require_date(day, "day")
        return self._day(day).provisional

    def add_working_days(self, start: date, amount: int) -> Deadline:
        """The `amount`-th working day after `start` (the start day is not counted)."""
        _require_date(start, "start")
        _require_positive(amount)
        trace = [_start_line(start)]
        day = start
        counted = 0
        skipped: list[date] = []
        provisional: set[int] = set()
        while counted < amount:
            day += _ONE_DAY
            known = self._day(day)
            if known.provisional:
                provisional.add(day.year)
            if not known.working:
                skipped.append(day)
                continue
            if skipped:
                trace.append(self._skipped_line(skipped))
                skipped = []
            counted += 1
            trace.append(f"{counted}: {self._working_day_text(day)}")
        trace.append(f"due: {day.isoformat()}")
        return _deadline(
            due=day, unit=WORKING_DAYS, amount=amount, start=start, trace=trace, years=provisional
        )

    def add_calendar_days(self, start: date, amount: int) -> Deadline:
        """`amount` calendar days after `start`, moved to the next working day if that is a day off.

        Only the last day and the days after it need a known schedule: the days in between are
        counted whatever they are.
        """
        _require_date(start, "start")
        _require_positive(amount)
        last = start + timedelta(days=amount)
        trace = [_start_line(start)]
        provisional = {last.year} if self._day(last).provisional else set()
        if self._day(last).working:
            trace.append(f"day {amount}: {self._working_day_text(last)}, a working day")
            due = last
        else:
            trace.append(f"day {amount}: {_day_text(last)}, not a working day")
            skipped = [last]
            due = last + _ONE_DAY
            while not self._day(due).working:
                if self._day(due).provisional:
                    provisional.add(due.year)
                skipped.append(due)
                due += _ONE_DAY
            if self._day(due).provisional:
                provisional.add(due.year)
            trace.append(self._skipped_line(skipped))
            trace.append(
                f"moved to the next working day (Civil Code Art 203): {self._working_day_text(due)}"
            )
        trace.append(f"due: {due.isoformat()}")
        return _deadline(
            due=due, unit=CALENDAR_DAYS, amount=amount, start=start, trace=trace, years=provisional
        )

    def working_days_between(self, start: date, end: date) -> int:
        """The number of working days in (start, end]; 0 when `end` is not after `start`."""
        _require_date(start, "start")
        _require_date(end, "end")
        count = 0
        day = start + _ONE_DAY
        while day <= end:
            if self._day(day).working:
                count += 1
            day += _ONE_DAY
        return count

    def provisional_years_between(self, start: date, end: date) -> tuple[int, ...]:
        """The years of the provisional days in (start, end], in order."""
        _require_date(start, "start")
        _require_date(end, "end")
        years: set[int] = set()
        day = start + _ONE_DAY
        while day <= end:
            if self._day(day).provisional:
                years.add(day.year)
            day += _ONE_DAY
        return tuple(sorted(years))

    def _day(self, day: date) -> _Day:
        known = self._days.get(day)
        if known is None:
            known = self._look_up(day)
            self._days[day] = known
        return known

    def _look_up(self, day: date) -> _Day:
        override = self._overrides.get(day)
        if override is not None:
            return _Day(working=override.working, holiday=None, source=override.source)
        try:
            detail: tuple[object, object] = chinese_calendar.get_holiday_detail(day)
        except NotImplementedError:
            # The package has no data for this year.
            if day.year in self._complete_years:
                return _Day(working=day.weekday() < 5, holiday=None, source=None)
            holiday = statutory_holidays(day.year).get(day)
            return _Day(
                working=day.weekday() < 5 and holiday is None,
                holiday=holiday,
                source=None,
                provisional=True,
            )
        day_off, name = detail
        return _Day(
            working=not day_off, holiday=name if isinstance(name, str) else None, source=None
        )

    def _working_day_text(self, day: date) -> str:
        """A working day, saying why when it would not be one by Monday-to-Friday rules."""
        known = self._day(day)
        if known.source is not None:
            return f"{_day_text(day)}, working day per {known.source}"
        if day.weekday() >= 5:
            if known.holiday is not None:
                return f"{_day_text(day)}, make-up workday for {known.holiday}"
            return f"{_day_text(day)}, make-up workday"
        return _day_text(day)

    def _skipped_line(self, days: list[date]) -> str:
        """One line for a run of consecutive days off, naming every reason once, in order."""
        # None stands for the run's holiday names, which are written as one phrase.
        reasons: list[str | None] = []
        holiday_names: list[str] = []
        for day in days:
            known = self._day(day)
            reason: str | None
            if known.source is not None:
                reason = f"day off per {known.source}"
            elif known.holiday is not None:
                if known.holiday not in holiday_names:
                    holiday_names.append(known.holiday)
                reason = None
            else:
                reason = "weekend"
            if reason not in reasons:
                reasons.append(reason)
        text = ", ".join(
            _holiday_phrase(holiday_names) if reason is None else reason for reason in reasons
        )
        if len(days) == 1:
            return f"skipped {_day_text(days[0])}: {text}"
        return f"skipped {days[0].isoformat()}..{days[-1].isoformat()}: {text}"


def package_covers(year: int) -> bool:
    """Whether the `chinesecalendar` package holds the State Council schedule of `year`."""
    try:
        chinese_calendar.get_holiday_detail(date(year, 6, 1))
    except NotImplementedError:
        return False
    return True


@lru_cache(maxsize=32)
def _package_holidays(year: int) -> tuple[tuple[date, str], ...]:
    return tuple(sorted(holidays.country_holidays("CN", years=year).items()))


@lru_cache(maxsize=32)
def statutory_holidays(year: int) -> dict[date, str]:
    """The days off of `year` as the `holidays` package computes them (lunar dates included, with
    the weekdays it adds when a holiday falls on a weekend), without make-up workdays, which only
    the year's State Council notice fixes."""
    return {day: name.removesuffix(" (observed)") for day, name in _package_holidays(year)}


def statutory_holidays_core(year: int) -> dict[date, str]:
    """The statutory holidays themselves (National Holidays Regulations Art 2), without the days
    the package adds in lieu: every State Council notice lists each of them as a day off."""
    return {
        day: name
        for day, name in _package_holidays(year)
        if not name.endswith("(observed)") and not name.startswith("Day off")
    }


def _deadline(
    *, due: date, unit: str, amount: int, start: date, trace: list[str], years: set[int]
) -> Deadline:
    if years:
        listed = ", ".join(str(year) for year in sorted(years))
        trace.append(
            f"provisional: no State Council schedule is known for {listed}; its days were counted "
            "Monday to Friday less the computed statutory holidays, without make-up workdays; "
            "recomputed when an administrator completes the year"
        )
    return Deadline(
        due=due,
        unit=unit,
        amount=amount,
        start=start,
        trace=tuple(trace),
        provisional_years=tuple(sorted(years)),
    )


def add(calendar: WorkingCalendar, *, start: date, amount: int, unit: str) -> Deadline:
    """Add `amount` days of `unit` ("working" or "calendar") to `start`."""
    if unit == WORKING_DAYS:
        return calendar.add_working_days(start, amount)
    if unit == CALENDAR_DAYS:
        return calendar.add_calendar_days(start, amount)
    raise ValueError(f"Unknown day unit {unit!r}: expected {WORKING_DAYS!r} or {CALENDAR_DAYS!r}.")


def _holiday_phrase(names: list[str]) -> str:
    if len(names) == 1:
        return f"{names[0]} holiday"
    return f"{', '.join(names[:-1])} and {names[-1]} holiday"


def _start_line(start: date) -> str:
    return f"start: {_day_text(start)}, not counted (Civil Code Art 201)"


def _day_text(day: date) -> str:
    # Fixed English abbreviations: strftime("%a") would follow the process locale.
    return f"{day.isoformat()} ({_WEEKDAY_NAMES[day.weekday()]})"


def _require_date(value: date, name: str) -> None:
    # A datetime is a date subclass, but which calendar day it falls on depends on a time zone
    # the caller must choose (Asia/Shanghai), so it is refused rather than silently truncated.
    if isinstance(value, datetime) or not isinstance(value, date):
        raise TypeError(f"{name} must be a datetime.date, not {type(value).__name__}.")


def _require_positive(amount: int) -> None:
    if amount < 1:
        raise ValueError(f"A period must be at least one day, not {amount}.")
