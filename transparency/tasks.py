"""Beat refreshes the figures."""

from __future__ import annotations

from celery import shared_task

from transparency.services import figures_refresh


@shared_task(name="transparency.tasks.figures_refresh_task")
def figures_refresh_task() -> int:
    return figures_refresh().pk
