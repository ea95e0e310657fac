"""Start-up check: every built-in and every current stored workflow definition is valid."""

from __future__ import annotations

from typing import Any

from django.core.checks import CheckMessage, Error, register

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
