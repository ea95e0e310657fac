"""The working-day calendar with the administrator's overrides applied."""

from __future__ import annotations

import time

from django.db.models import Count, Max

from objections.calendar import DayOverride, WorkingCalendar
from objections.models import CalendarOverride, CalendarYear

# Overrides change a few times a year; re-reading them once a minute keeps every deadline
# computation in between free of queries, and the calendar's own day cache warm.
REFRESH_SECONDS = 60.0

_cached: tuple[float, tuple[object, ...], WorkingCalendar] | None = None


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
