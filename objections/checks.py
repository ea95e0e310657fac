"""Start-up check: every built-in and every current stored workflow definition is valid."""

from __future__ import annotations

from typing import Any

from django.core.checks import CheckMessage, Error, Warning, register

from objections import workflow


@register()
def workflow_definitions_check(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    try:
        workflow.load_builtin()
    except workflow.DefinitionError as error:
        return [
            Error(problem, id="objections.E001", hint="Fix the file in objections/workflows/.")
            for problem in error.problems
        ]
    return []


@register()
def calendar_schedule_check(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """From 1 November until next year's schedule is entered (and whenever this year's is not):
    a warning, because deadlines reaching that year are only provisional."""
    from django.db import DatabaseError
    from django.utils import timezone

    from objections.services.calendars import calendar_warning_text, calendar_years_needed

    try:
        years = calendar_years_needed(today=timezone.localdate())
    except DatabaseError:
        return []  # before the first migration there is no calendar to check
    if not years:
        return []
    return [
        Warning(
            calendar_warning_text(years),
            id="objections.W001",
            hint="See README: 'Working days and next year's schedule'.",
        )
    ]
