"""Write docs/workflows.md from the built-in workflow definitions (or check it is current)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from objections import workflow
from objections.workflow_docs import workflows_markdown

DOC = Path(settings.BASE_DIR) / "docs" / "workflows.md"


class Command(BaseCommand):
    help = "Write docs/workflows.md (the legal sources of each built-in workflow)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--check", action="store_true", help="Fail if the page is stale.")

    def handle(self, *args: Any, **options: Any) -> None:
        text = workflows_markdown(workflow.load_builtin())
        if options["check"]:
            if not DOC.exists() or DOC.read_text(encoding="utf-8") != text:
                raise CommandError(f"{DOC} is stale: run manage.py workflows_doc")
            self.stdout.write(f"{DOC} is current.")
            return
        DOC.write_text(text, encoding="utf-8")
        self.stdout.write(f"wrote {DOC}")
