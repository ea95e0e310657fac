from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from tqdm import tqdm

from records.imports import ImportFileInvalid, count_lines, import_batch_run
from records.models import Agency, ImportBatch


class Command(BaseCommand):
    help = "Import credit records from a CSV or NDJSON file for one agency."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("file", type=Path)
        parser.add_argument("--agency", required=True, help="The agency code.")
        parser.add_argument("--format", choices=["csv", "ndjson"], default="")
        parser.add_argument("--no-progress", action="store_true")
        parser.add_argument(
            "--max-errors", type=int, default=200, help="How many rejected rows to print."
        )

    def handle(self, *args: Any, **options: Any) -> None:
        path: Path = options["file"]
        if not path.is_file():
            raise CommandError(f"No such file: {path}")
        try:
            agency = Agency.objects.select_related("jurisdiction").get(code=options["agency"])
        except Agency.DoesNotExist as error:
            raise CommandError(f"No agency with code {options['agency']!r}") from error
        total = count_lines(str(path))
        with (
            path.open("rb") as stream,
            tqdm(
                total=total,
                unit="row",
                desc="import",
                disable=options["no_progress"],
                file=self.stderr,
            ) as bar,
        ):
            try:
                report = import_batch_run(
                    agency=agency,
                    stream=stream,
                    file_name=path.name,
                    file_format=options["format"],
                    actor=None,
                    source=ImportBatch.Source.COMMAND,
                    progress=bar.update,
                )
            except ImportFileInvalid as error:
                line = error.extra.get("line")
                where = f" (line {line})" if line else ""
                raise CommandError(f"{error.message}{where} Nothing was imported.") from error
        for row_error in report.errors[: options["max_errors"]]:
            name = f" {row_error.field}:" if row_error.field else ""
            self.stdout.write(f"line {row_error.line}:{name} {row_error.reason}")
        shown = min(len(report.errors), options["max_errors"])
        if len(report.errors) > shown or report.errors_not_listed:
            self.stdout.write(f"... and more rejected rows than shown (printed {shown} errors)")
        self.stdout.write(
            self.style.SUCCESS(
                f"batch {report.batch_id}: {report.rows_total} rows, "
                f"{report.rows_inserted} inserted, {report.rows_updated} updated, "
                f"{report.rows_unchanged} unchanged, {report.rows_rejected} rejected "
                f"(sha256 {report.sha256})"
            )
        )
