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
def workflow_routes_check(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """The defaults in objections/routes.yaml and every stored route name a workflow of their
    kind and jurisdiction; prefixes are unique."""
    from django.db import DatabaseError

    from objections.models import WorkflowRoute
    from objections.services.definitions import route_problem
    from objections.services.routes import builtin_routes

    problems = []
    prefixes = [entry.prefix for entry in builtin_routes().values()]
    if len(set(prefixes)) != len(prefixes):
        problems.append("objections/routes.yaml: every jurisdiction needs its own prefix")
    try:
        for code, entry in builtin_routes().items():
            for default in entry.routes:
                if found := route_problem(
                    jurisdiction_code=code, kind=default.kind, key=default.workflow
                ):
                    problems.append(f"objections/routes.yaml: {code} {default.kind}: {found}")
        for route in WorkflowRoute.objects.select_related("jurisdiction"):
            code = route.jurisdiction.code
            if found := route_problem(
                jurisdiction_code=code, kind=route.kind, key=route.workflow_key
            ):
                problems.append(f"workflow route {code} {route.kind}: {found}")
    except DatabaseError:
        pass  # before the first migration there are no stored routes to check
    return [
        Error(
            problem,
            id="objections.E002",
            hint="Fix objections/routes.yaml or the route in the admin.",
        )
        for problem in problems
    ]


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
