"""The repository's generated documentation matches what the code runs."""

from __future__ import annotations

import io

from django.core.management import call_command


def test_the_workflow_page_is_generated_from_the_current_definitions():
    out = io.StringIO()

    call_command("workflows_doc", check=True, stdout=out)

    assert out.getvalue().strip().endswith("docs/workflows.md is current.")
