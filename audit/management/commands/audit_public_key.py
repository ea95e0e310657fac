from typing import Any

from django.core.management.base import BaseCommand

from audit.checkpoints import key_id, public_key, public_key_pem


class Command(BaseCommand):
    help = "Print the public key that verifies the audit log's signed checkpoints, and its id."

    def handle(self, *args: Any, **options: Any) -> None:
        self.stdout.write(f"key id {key_id(public_key())}")
        self.stdout.write(public_key_pem(), ending="")
