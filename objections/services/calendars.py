"""The working-day calendar with the administrator's overrides applied."""

from __future__ import annotations

from django.db.models import Count, Max

from objections.calendar import DayOverride, WorkingCalendar
from objections.models import CalendarOverride, CalendarYear

_cache: dict[tuple[object, ...], WorkingCalendar] = {}


def working_calendar() -> WorkingCalendar:
    """One calendar per state of the override tables, so its day cache stays useful."""
    overrides = CalendarOverride.objects.aggregate(changed=Max("updated_at"), rows=Count("id"))
    years = CalendarYear.objects.aggregate(changed=Max("updated_at"), rows=Count("id"))
    key = (overrides["changed"], overrides["rows"], years["changed"], years["rows"])
    calendar = _cache.get(key)
    if calendar is None:
        calendar = WorkingCalendar(
            overrides=[
                DayOverride(day=row.day, working=row.working, source=row.source)
                for row in CalendarOverride.objects.all()
            ],
            complete_years=CalendarYear.objects.values_list("year", flat=True),
        )
        _cache.clear()
        _cache[key] = calendar
    return calendar
