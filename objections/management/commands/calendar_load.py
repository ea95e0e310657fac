"""Load a State Council holiday notice (CSV or YAML) as audited calendar overrides."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from objections.schedule_files import ScheduleFileError, schedule_read
from objections.services.calendars import (
    CalendarFileInvalid,
    CalendarIncomplete,
    calendar_schedule_load,
    calendar_schedule_plan,
)


class Command(BaseCommand):
    help = (
        "Load one year's State Council holiday schedule from a CSV (date,kind,name,source) or "
        "YAML file: validate it, show what changes, apply it as overrides with their source "
        "(each audited) and mark the year complete, which recomputes provisional deadlines."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("file", type=Path)
        parser.add_argument("--format", choices=["csv", "yaml"], default="")
        parser.add_argument(
            "--dry-run", action="store_true", help="Show what would change; change nothing."
        )
        parser.add_argument(
            "--no-complete",
            action="store_true",
            help="Apply the days without marking the year complete (a partial notice).",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        path: Path = options["file"]
        if not path.is_file():
            raise CommandError(f"No such file: {path}")
        file_format = options["format"] or ("csv" if path.suffix.lower() == ".csv" else "yaml")
        try:
            entries = schedule_read(path.read_text(encoding="utf-8"), file_format=file_format)
            plan = calendar_schedule_plan(entries)
        except UnicodeDecodeError as error:
            raise CommandError(f"{path} is not UTF-8: {error}") from error
        except (ScheduleFileError, CalendarFileInvalid) as error:
            raise CommandError(
                f"{path} cannot be loaded:\n  " + "\n  ".join(error.problems)
            ) from error
        complete = not options["no_complete"]
        self.stdout.write(
            f"{plan.year}: {len(entries)} days in the file, {len(plan.changes)} to change, "
            f"{plan.unchanged} already as listed."
        )
        for change in plan.changes:
            self.stdout.write(f"  {change.describe()}")
        if plan.missing:
            self.stdout.write(f"Still missing for {plan.year} to be complete:")
            for line in plan.missing:
                self.stdout.write(f"  {line}")
        if options["dry_run"]:
            self.stdout.write("Dry run: nothing changed.")
            return
        try:
            calendar_schedule_load(actor=None, entries=entries, complete=complete)
        except CalendarIncomplete as error:
            raise CommandError(
                f"{plan.year} cannot be marked complete; nothing changed. Add the missing days "
                "to the file, or load it with --no-complete."
            ) from error
        done = f"marked {plan.year} complete" if complete else f"left {plan.year} incomplete"
        self.stdout.write(self.style.SUCCESS(f"Applied {len(plan.changes)} changes and {done}."))
