"""Aggregate figures on how the platforms handle cases, refreshed by a task; pages read these."""

from __future__ import annotations

from django.db import models


class Publication(models.Model):
    """One refresh of the figures: the public tables (small counts already suppressed) and the
    oversight report for supervisors and auditors. Pages read the latest; none scans cases."""

    computed_at = models.DateTimeField()
    cases = models.PositiveIntegerField(help_text="Cases the figures were computed over.")
    seconds = models.FloatField(help_text="How long the refresh took.")
    figures = models.JSONField(help_text="The public figures, suppressed (see docs/statistics.md).")
    oversight = models.JSONField(help_text="The oversight report (not public).")

    class Meta:
        ordering = ["-computed_at"]
        get_latest_by = "computed_at"

    def __str__(self) -> str:
        return f"figures of {self.computed_at:%Y-%m-%d %H:%M}"
