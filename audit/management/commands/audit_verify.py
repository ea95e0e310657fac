from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from tqdm import tqdm

from audit.models import AuditChainHead
from audit.verify import audit_chain_verify


class Command(BaseCommand):
    help = "Verify the whole audit hash chain; exit non-zero at the first broken link."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--deep",
            action="store_true",
            help="Also check that the searchable columns agree with the hashed content.",
        )
        parser.add_argument(
            "--no-progress", action="store_true", help="Do not show a progress bar."
        )

    def handle(self, *args: Any, deep: bool, no_progress: bool, **options: Any) -> None:
        total = AuditChainHead.objects.filter(pk=1).values_list("sequence", flat=True).first() or 0
        with tqdm(
            total=total, unit="event", disable=no_progress, file=self.stderr, desc="audit_verify"
        ) as bar:
            result = audit_chain_verify(deep=deep, progress=bar.update)
        if result.broken is not None:
            raise CommandError(
                f"audit chain broken at event {result.broken.sequence}: {result.broken.reason} "
                f"({result.events_checked} events verified before it)"
            )
        self.stdout.write(
            self.style.SUCCESS(
                f"audit chain intact: {result.events_checked} events, "
                f"last event {result.last_sequence}, head hash {result.last_hash}"
            )
        )
