"""The admin's banner when a needed year's working-day schedule is not entered."""

from __future__ import annotations

from django import template
from django.utils import timezone

from objections.services.calendars import calendar_warning_text, calendar_years_needed

register = template.Library()


@register.simple_tag
def calendar_schedule_warning() -> str:
    """The warning text, or "" when every needed year is known (one cached read a minute)."""
    years = calendar_years_needed(today=timezone.localdate())
    return calendar_warning_text(years) if years else ""
