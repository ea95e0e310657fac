"""Refreshing the figures: one pass over the cases (by the beat task, or on demand), written as
a `Publication` that the pages read."""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Iterator
from datetime import date, datetime
from typing import Any

from django.db.models import Count, F, OuterRef, Q, Subquery
from django.utils import timezone

from objections.calendar import WorkingCalendar
from objections.models import Case, Clock, ClockPause, Decision
from objections.services.calendars import working_calendar
from records.dates import add_months
from records.models import Agency, CatalogueEntry, CreditRecord, ImportBatch, ImportConflict
from transparency import figures
from transparency.models import Publication

MONTHS_SHOWN = 24
KEEP = 48  # publications kept
CHUNK = 5_000


class _WorkingDays:
    """Working days between two dates in constant time: a running count per day of the span."""

    def __init__(self, calendar: WorkingCalendar) -> None:
        self.calendar = calendar
        self.index: dict[date, int] = {}
        self.first: date | None = None

    def _extend(self, start: date, end: date) -> None:
        first = min(start, self.first) if self.first else start
        last = max(end, max(self.index)) if self.index else end
        if self.first is not None and first >= self.first and last <= max(self.index):
            return
        count, day, index = 0, first, {}
        while day <= last:
            if self.calendar.is_working_day(day):
                count += 1
            index[day] = count
            day = date.fromordinal(day.toordinal() + 1)
        self.index, self.first = index, first

    def between(self, start: date, end: date) -> int:
        """Working days in (start, end], as `WorkingCalendar.working_days_between` counts."""
        if end <= start:
            return 0
        if start not in self.index or end not in self.index:
            self._extend(start, end)
        return self.index[end] - self.index[start]


def _outcome(kind: str, outcome: str, remedy: str) -> str:
    if outcome in (Case.Outcome.REFUSED, Case.Outcome.KEPT_WITH_NOTE):
        return "refused"
    if remedy == Case.Remedy.CORRECT:
        return "corrected"
    if remedy == Case.Remedy.DELETE:
        return "deleted"
    if kind == Case.Kind.REPAIR and remedy in (Case.Remedy.ANNOTATE, Case.Remedy.END_PUBLICATION):
        return "repaired"
    if remedy == Case.Remedy.END_PUBLICATION:
        return "publication_ended"
    return "other"


def _local_date(moment: datetime | None) -> date | None:
    return timezone.localdate(moment) if moment is not None else None


def case_facts(*, today: date) -> Iterator[figures.CaseFacts]:
    """One `CaseFacts` per objection or repair (reviews are counted with the case they review;
    deletions a providing unit starts after a revocation are not applications and not counted)."""
    working = _WorkingDays(working_calendar())
    latest = Decision.objects.filter(case=OuterRef("pk")).order_by("-id")
    cases = (
        Case.objects.filter(kind__in=[Case.Kind.OBJECTION, Case.Kind.REPAIR])
        .annotate(
            decided_at=Subquery(latest.values("created_at")[:1]),
            decided_outcome=Subquery(latest.values("outcome")[:1]),
            decided_remedy=Subquery(latest.values("remedy")[:1]),
            late_clocks=Count(
                "clocks",
                filter=(
                    Q(clocks__escalated_at__isnull=False)
                    | Q(clocks__stopped_at__date__gt=F("clocks__due_on"))
                )
                & ~Q(clocks__status=Clock.Status.CANCELLED),
            ),
        )
        .values_list(
            "pk",
            "kind",
            "jurisdiction__code",
            "record__agency__code",
            "record__category__code",
            "filed_at",
            "closed_at",
            "state",
            "decided_at",
            "decided_outcome",
            "decided_remedy",
            "late_clocks",
        )
        .order_by("pk")
    )
    last = 0
    while True:
        rows = list(cases.filter(pk__gt=last)[:CHUNK])
        if not rows:
            return
        last = rows[-1][0]
        paused = _paused_spans([row[0] for row in rows], today=today)
        for (
            pk,
            kind,
            jurisdiction,
            agency,
            category,
            filed_at,
            closed_at,
            state,
            decided_at,
            decided_outcome,
            decided_remedy,
            late_clocks,
        ) in rows:
            filed_on = timezone.localdate(filed_at)
            decided_on = _local_date(decided_at)
            yield figures.CaseFacts(
                kind=kind,
                jurisdiction=jurisdiction,
                agency=agency,
                category=category,
                filed_on=filed_on,
                closed_on=_local_date(closed_at),
                decided_on=decided_on,
                outcome=(
                    _outcome(kind, decided_outcome, decided_remedy or "")
                    if decided_on is not None
                    else None
                ),
                withdrawn_on=_local_date(closed_at) if state == "withdrawn" else None,
                working_days=working.between(filed_on, decided_on) if decided_on else None,
                paused_days=sum(working.between(start, end) for start, end in paused.get(pk, ())),
                on_time=late_clocks == 0 if decided_on is not None else None,
            )


def _paused_spans(case_ids: list[int], *, today: date) -> dict[int, set[tuple[date, date]]]:
    """Per case, the spans its clocks stood still; a pause stops every clock of the case at
    once, so a span shared by several clocks counts once."""
    spans: dict[int, set[tuple[date, date]]] = defaultdict(set)
    pauses = ClockPause.objects.filter(clock__case_id__in=case_ids).values_list(
        "clock__case_id", "started_on", "ended_at"
    )
    for case_id, started_on, ended_at in pauses:
        spans[case_id].add((started_on, _local_date(ended_at) or today))
    return spans


def _labels() -> dict[str, dict[str, dict[str, str]]]:
    from records.models import Jurisdiction

    return {
        "jurisdiction": {
            row.code: {"zh": row.name_zh, "en": row.name_en} for row in Jurisdiction.objects.all()
        },
        "agency": {
            row.code: {"zh": row.name_zh, "en": row.name_en} for row in Agency.objects.all()
        },
        "category": {
            row.code: {"zh": row.name_zh, "en": row.name_en} for row in CatalogueEntry.objects.all()
        },
    }


def oversight_report(*, today: date) -> dict[str, Any]:
    """What supervisors and auditors watch, per agency: refused import rows by reason, records
    still published past their period or published longer than the catalogue allows, import
    conflicts with decided corrections, and upheld objections per category."""
    refusals: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for agency, counts in ImportBatch.objects.values_list("agency__code", "refusals"):
        for reason, count in (counts or {}).items():
            refusals[agency][reason] += int(count)
    overdue = dict(
        CreditRecord.objects.filter(
            status__in=[CreditRecord.Status.PUBLISHED, CreditRecord.Status.CORRECTED],
            publication_end__lt=today,
        )
        .values_list("agency__code")
        .annotate(count=Count("pk"))
    )
    too_long: dict[str, int] = defaultdict(int)
    limits = dict(CatalogueEntry.objects.values_list("pk", "publication_max_months"))
    published = CreditRecord.objects.filter(
        status__in=[CreditRecord.Status.PUBLISHED, CreditRecord.Status.CORRECTED]
    ).values_list("agency__code", "category_id", "publication_start", "publication_end")
    for agency, category_id, start, end in published.iterator(chunk_size=CHUNK):
        limit = limits.get(category_id)
        if limit is not None and end > add_months(start, limit):
            too_long[agency] += 1
    conflicts: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for agency, status, count in (
        ImportConflict.objects.values_list("record__agency__code", "status")
        .annotate(count=Count("pk"))
        .order_by()
    ):
        conflicts[agency][status] += count
    upheld: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for category, outcome, count in (
        Decision.objects.filter(case__kind=Case.Kind.OBJECTION)
        .values_list("record__category__code", "outcome")
        .annotate(count=Count("pk"))
        .order_by()
    ):
        key = "upheld" if outcome in (Case.Outcome.GRANTED, Case.Outcome.PARTLY_GRANTED) else "not"
        upheld[category][key] += count
    return {
        "import_refusals": {agency: dict(counts) for agency, counts in refusals.items()},
        "published_past_period": overdue,
        "published_longer_than_catalogue": dict(too_long),
        "import_conflicts": {agency: dict(counts) for agency, counts in conflicts.items()},
        "objections_by_category": {
            category: {"upheld": counts["upheld"], "decided": counts["upheld"] + counts["not"]}
            for category, counts in upheld.items()
        },
    }


def figures_refresh(*, today: date | None = None) -> Publication:
    """Compute the figures and the oversight report over every case; store them as the latest
    publication. Reads the cases once, in chunks; the pages never do."""
    started = time.monotonic()
    now = timezone.now()
    today = today or timezone.localdate(now)
    # The last MONTHS_SHOWN months that have ended: a month is published once it is over.
    year, month = today.year, today.month - MONTHS_SHOWN
    while month < 1:
        year, month = year - 1, month + 12
    last = date.fromordinal(date(today.year, today.month, 1).toordinal() - 1)
    months = figures.months_between(date(year, month, 1), last)
    facts = list(case_facts(today=today))
    aggregates = figures.aggregate(facts, months=months)
    previous = Publication.objects.order_by("-computed_at", "-id").only("figures").first()
    published = figures.publish(
        aggregates,
        labels=_labels(),
        frozen=previous.figures["tables"] if previous is not None else None,
    )
    published["computed_at"] = now.isoformat()
    # The latest few are kept, for a comparison; pages read only the newest.
    stale = Publication.objects.order_by("-computed_at").values_list("pk", flat=True)[KEEP - 1 :]
    Publication.objects.filter(pk__in=list(stale)).delete()
    return Publication.objects.create(
        computed_at=now,
        cases=len(facts),
        seconds=round(time.monotonic() - started, 3),
        figures=published,
        oversight=oversight_report(today=today),
    )
