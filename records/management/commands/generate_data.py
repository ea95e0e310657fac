from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser
from tqdm import tqdm

from records import demo
from records.imports import import_batch_run
from records.models import Agency, ImportBatch


class Command(BaseCommand):
    help = (
        "Generate N valid credit records for M subjects as CSV, and import them (for benchmarks)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--records", type=int, required=True)
        parser.add_argument("--subjects", type=int, required=True)
        parser.add_argument("--agency", default="shanghai-market")
        parser.add_argument("--seed", type=int, default=1)
        parser.add_argument(
            "--output", type=Path, default=None, help="CSV path (default: under SCS_DATA_DIR)."
        )
        parser.add_argument("--no-import", action="store_true", help="Only write the CSV file.")
        parser.add_argument("--no-progress", action="store_true")

    def handle(self, *args: Any, **options: Any) -> None:
        if options["records"] < 1 or options["subjects"] < 1:
            raise CommandError("--records and --subjects must be positive.")
        demo.registry_load()
        try:
            agency = Agency.objects.select_related("jurisdiction").get(code=options["agency"])
        except Agency.DoesNotExist as error:
            raise CommandError(f"No agency with code {options['agency']!r}") from error
        output: Path = options["output"] or (
            Path(settings.DATA_DIR) / "generated" / f"{agency.code}-{options['records']}.csv"
        )
        quiet = options["no_progress"]
        with tqdm(total=options["subjects"], unit="subject", desc="subjects", disable=quiet) as bar:
            subjects = demo.subjects_generate(options["subjects"], seed=options["seed"])
            bar.update(len(subjects))
        with tqdm(total=options["records"], unit="row", desc="write csv", disable=quiet) as bar:
            demo.records_csv_write(
                output,
                agency=agency,
                records=options["records"],
                subjects=subjects,
                seed=options["seed"],
                progress=bar.update,
            )
        self.stdout.write(f"wrote {options['records']} records to {output}")
        if options["no_import"]:
            return
        with (
            output.open("rb") as stream,
            tqdm(total=options["records"], unit="row", desc="import", disable=quiet) as bar,
        ):
            report = import_batch_run(
                agency=agency,
                stream=stream,
                file_name=output.name,
                actor=None,
                source=ImportBatch.Source.COMMAND,
                progress=bar.update,
            )
        self.stdout.write(
            self.style.SUCCESS(
                f"imported: {report.rows_inserted} inserted, {report.rows_updated} updated, "
                f"{report.rows_unchanged} unchanged, {report.rows_rejected} rejected"
            )
        )
