from typing import Any

from django.core.management.base import BaseCommand

from audit.checkpoints import key_id, known_public_keys, public_key_pem, raw_public_key


class Command(BaseCommand):
    help = (
        "Print the public key that verifies the audit log's signed checkpoints, with its id, "
        "and then every retired key that signed earlier ones."
    )

    def handle(self, *args: Any, **options: Any) -> None:
        for number, key in enumerate(known_public_keys().values()):
            if number == 1:
                self.stdout.write("retired keys (they signed earlier checkpoints):")
            self.stdout.write(f"key id {key_id(key)}")
            self.stdout.write(public_key_pem(key), ending="")
            self.stdout.write(f"raw {raw_public_key(key)}")
