from typing import Any

from django.core.management.base import BaseCommand, CommandError

from audit.checkpoints import ChainBroken, audit_checkpoint_create


class Command(BaseCommand):
    help = (
        "Sign a checkpoint over the audit log now (beat does it hourly) and write it to "
        "SCS_AUDIT_CHECKPOINT_FILE and the auditors' mail."
    )

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            checkpoint = audit_checkpoint_create()
        except ChainBroken as error:
            raise CommandError(f"no checkpoint: {error}") from error
        if checkpoint is None:
            self.stdout.write("the log has not grown since the last checkpoint")
            return
        self.stdout.write(
            self.style.SUCCESS(
                f"checkpoint at event {checkpoint.tree_size}: root {checkpoint.root_hash}"
            )
        )
