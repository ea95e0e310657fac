import os
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from audit.privileges import app_role_grant


class Command(BaseCommand):
    help = (
        "Run as the database's owner after `migrate`: create the application's role if needed "
        "and give it exactly the rights it needs (audit.privileges). Idempotent."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--app-role", required=True, help="The role the application uses.")
        parser.add_argument(
            "--password-env",
            metavar="VARIABLE",
            help="Set the role's password from this environment variable.",
        )

    def handle(self, *args: Any, app_role: str, password_env: str | None, **options: Any) -> None:
        password = None
        if password_env is not None:
            password = os.environ.get(password_env)
            if not password:
                raise CommandError(f"{password_env} is not set")
        try:
            statements = app_role_grant(role=app_role, password=password)
        except RuntimeError as error:
            raise CommandError(str(error)) from error
        self.stdout.write(
            self.style.SUCCESS(f"{app_role}: {len(statements)} grants applied (audit.privileges)")
        )
