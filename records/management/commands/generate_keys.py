from typing import Any

from django.core.management.base import BaseCommand

from records.crypto import generate_key


class Command(BaseCommand):
    help = "Print fresh identifier and audit keys for a production environment file."

    def handle(self, *args: Any, **options: Any) -> None:
        self.stdout.write(f"SCS_IDENTIFIER_ENCRYPTION_KEY={generate_key()}")
        self.stdout.write(f"SCS_IDENTIFIER_HASH_KEY={generate_key()}")
        self.stdout.write(f"SCS_AUDIT_SEAL_KEY={generate_key()}")
        # an Ed25519 seed: 32 random bytes, like the keys above
        self.stdout.write(f"SCS_AUDIT_SIGNING_KEY={generate_key()}")
