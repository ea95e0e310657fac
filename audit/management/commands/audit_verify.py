from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from tqdm import tqdm

from audit.checkpoints import CheckpointFileError, audit_log_verify, heads_from_file
from audit.models import AuditChainHead


class Command(BaseCommand):
    help = (
        "Verify the whole audit hash chain, and the log against its signed checkpoints; exit "
        "non-zero at the first broken link or contradicted checkpoint."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--checkpoints",
            type=Path,
            metavar="FILE",
            help="Check against the signed checkpoints in FILE (the lines an auditor kept from "
            "SCS_AUDIT_CHECKPOINT_FILE or the checkpoint mails) instead of the stored ones.",
        )
        parser.add_argument(
            "--no-progress", action="store_true", help="Do not show a progress bar."
        )

    def handle(
        self, *args: Any, checkpoints: Path | None, no_progress: bool, **options: Any
    ) -> None:
        try:
            heads = heads_from_file(checkpoints) if checkpoints is not None else None
        except (OSError, CheckpointFileError) as error:
            raise CommandError(f"cannot read the checkpoints: {error}") from error
        total = AuditChainHead.objects.filter(pk=1).values_list("sequence", flat=True).first() or 0
        with tqdm(
            total=total, unit="event", disable=no_progress, file=self.stderr, desc="audit_verify"
        ) as bar:
            result = audit_log_verify(heads=heads, progress=bar.update)
        if result.broken is not None:
            raise CommandError(
                f"audit chain broken at event {result.broken.sequence}: {result.broken.reason} "
                f"({result.events_checked} events verified before it)"
            )
        vouched = "" if heads is None else f", {len(heads)} checkpoints from {checkpoints}"
        self.stdout.write(
            self.style.SUCCESS(
                f"audit chain intact: {result.events_checked} events, "
                f"last event {result.last_sequence}, head hash {result.last_hash}{vouched}"
            )
        )
