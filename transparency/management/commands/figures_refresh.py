"""`manage.py figures_refresh`: compute the transparency figures now (beat does it hourly)."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand

from transparency.services import figures_refresh


class Command(BaseCommand):
    help = "Compute the public figures and the oversight report now."

    def handle(self, *args: Any, **options: Any) -> None:
        publication = figures_refresh()
        self.stdout.write(
            f"Figures computed over {publication.cases} cases in {publication.seconds:.2f} s."
        )
