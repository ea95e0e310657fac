"""The transparency figures over 100,000 cases: the refresh, and what the pages cost to serve.

Run alone: `.venv/bin/python -m bench.transparency`.

In one run:
1. seed: the demo registry (jurisdictions, agencies, catalogue), then 100,000 cases filed over the
   24 months the figures show, each on its own record, written with bulk_create: about four in
   five decided with a Decision row, some withdrawn, the rest open; one clock per case, some
   paused, some late (stopped after their due day, or escalated while open);
2. `figures_refresh()` timed (twice), then once more under tracemalloc for its peak memory;
3. GET /transparency/ and /api/v1/stats/ through Django's test Client, taking turns request by
   request with a bare view that reads one case by primary key and returns its reference, served
   the same way (this module is the URLconf for the run: the project's URLs plus the bare view).
   Target: the page's p95 within 3x the bare view's p95.
"""

from __future__ import annotations

import random
import time
import tracemalloc
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from django.conf import settings
from django.contrib.auth.models import Group
from django.db import connection, transaction
from django.http import HttpRequest, HttpResponse
from django.test import Client, override_settings
from django.urls import URLPattern, URLResolver, include, path
from django.utils import timezone

from accounts import roles
from accounts.models import User
from bench import common
from objections.models import Case, Clock, ClockPause, Decision
from objections.services.routes import builtin_routes
from records import demo
from records.content import content_hash
from records.crypto import identifier_encrypt, identifier_hash
from records.dates import add_months
from records.identifiers import mask_identifier
from records.models import Agency, CatalogueEntry, CreditRecord, Subject
from transparency.models import Publication
from transparency.services import MONTHS_SHOWN, figures_refresh

CASES = 100_000
SUBJECTS = 20_000
BATCH = 5_000
SEED = 20261203
TARGET_RATIO = 3.0
REQUESTS = 50
WARM_UP = 5
REFRESH_RUNS = 2
SHANGHAI = ZoneInfo("Asia/Shanghai")
BARE_URL = "/bench/bare/{pk}/"
PAGE_URL = "/transparency/"
STATS_URL = "/api/v1/stats/"

# Where the cases are: the share of each jurisdiction, and within it the providing units.
JURISDICTION_WEIGHTS = {"shanghai": 0.45, "zhejiang": 0.30, "hubei": 0.15, "national": 0.10}
UNIT_WEIGHTS = {"market": 0.40, "tax": 0.30, "ecology": 0.20, "transport": 0.10}
REFERENCE_PREFIX = {code: entry.prefix for code, entry in builtin_routes().items()}
DECIDED_SHARE = 0.84  # some of these fall after today and stay open: about 80% end up decided
WITHDRAWN_SHARE = 0.06
REPAIR_SHARE = 0.3
PAUSED_SHARE = 0.05
DUE_DAYS = 7  # a clock's due day after filing, in calendar days (five working days, roughly)


def bare_view(request: HttpRequest, pk: int) -> HttpResponse:
    """The least a Django page can do with the database: read one row by primary key."""
    case = Case.objects.only("reference").get(pk=pk)
    return HttpResponse(case.reference, content_type="text/plain; charset=utf-8")


# This module is ROOT_URLCONF while the requests are timed.
urlpatterns: list[URLPattern | URLResolver] = [
    path("bench/bare/<int:pk>/", bare_view),
    path("", include("scs_cases.urls")),
]


def _percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]


# --- seeding --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Catalogue:
    agencies: list[Agency]
    agency_weights: list[float]
    entries: dict[tuple[str, str], list[CatalogueEntry]]  # (jurisdiction code, subject kind)


def _catalogue() -> _Catalogue:
    agencies = list(
        Agency.objects.filter(kind=Agency.Kind.PROVIDING_UNIT).select_related("jurisdiction")
    )
    weights = [
        JURISDICTION_WEIGHTS[agency.jurisdiction.code]
        * UNIT_WEIGHTS[agency.code.removeprefix(f"{agency.jurisdiction.code}-")]
        for agency in agencies
    ]
    entries: dict[tuple[str, str], list[CatalogueEntry]] = {}
    for jurisdiction in JURISDICTION_WEIGHTS:
        lawful = list(
            CatalogueEntry.objects.filter(
                active=True, jurisdiction__code__in=["national", jurisdiction]
            ).select_related("jurisdiction")
        )
        entries[(jurisdiction, Subject.Kind.PERSON)] = [e for e in lawful if e.applies_to_persons]
        entries[(jurisdiction, Subject.Kind.ORGANISATION)] = [
            e for e in lawful if e.applies_to_organisations
        ]
    return _Catalogue(agencies, weights, entries)


def _subjects() -> list[Subject]:
    rows = []
    for generated in demo.subjects_generate(SUBJECTS, seed=SEED):
        rows.append(
            Subject(
                kind=generated.kind,
                name=generated.name,
                identifier_encrypted=identifier_encrypt(generated.identifier),
                identifier_hash=identifier_hash(generated.kind, generated.identifier),
                identifier_masked=mask_identifier(generated.identifier),
            )
        )
    return Subject.objects.bulk_create(rows, batch_size=BATCH)


def _filed_moments(rng: random.Random, *, now: datetime) -> Iterator[datetime]:
    """Filing moments over the months shown, more in recent months (the platforms grow), in
    office hours, in filing order."""
    today = timezone.localdate(now)
    first = add_months(date(today.year, today.month, 1), -(MONTHS_SHOWN - 1))
    span = (now - datetime.combine(first, datetime.min.time(), SHANGHAI)).total_seconds()
    offsets = sorted((span * rng.random() ** 1.3 for _ in range(CASES)), reverse=True)
    for offset in offsets:
        moment = now - timedelta(seconds=offset)
        hour = 9 + rng.randrange(8)
        moment = moment.astimezone(SHANGHAI).replace(hour=hour, minute=rng.randrange(60))
        yield min(moment, now - timedelta(minutes=1))


def _decision_delay(rng: random.Random) -> timedelta:
    """Calendar time from filing to decision: mostly within the week, with a long tail."""
    days = rng.choice((1, 2, 2, 3, 3, 4, 5, 5, 6, 7)) if rng.random() < 0.92 else rng.randint(8, 40)
    return timedelta(days=days, hours=rng.uniform(0, 6))


def _outcome(rng: random.Random, kind: str) -> tuple[str, str, str]:
    """outcome, remedy, transition"""
    draw = rng.random()
    if kind == Case.Kind.REPAIR:
        if draw < 0.7:
            remedy = Case.Remedy.END_PUBLICATION if rng.random() < 0.6 else Case.Remedy.ANNOTATE
            return Case.Outcome.GRANTED, remedy, "grant"
        return Case.Outcome.REFUSED, "", "refuse"
    if draw < 0.45:
        remedy = rng.choices(
            (Case.Remedy.CORRECT, Case.Remedy.DELETE, Case.Remedy.END_PUBLICATION), (6, 2.5, 1.5)
        )[0]
        return Case.Outcome.GRANTED, remedy, "grant"
    if draw < 0.55:
        return Case.Outcome.PARTLY_GRANTED, Case.Remedy.CORRECT, "grant"
    if draw < 0.9:
        return Case.Outcome.REFUSED, "", "refuse"
    return Case.Outcome.KEPT_WITH_NOTE, Case.Remedy.ANNOTATE, "refuse"


RECORD_STATUS: dict[str, str] = {
    Case.Remedy.CORRECT: CreditRecord.Status.CORRECTED,
    Case.Remedy.DELETE: CreditRecord.Status.DELETED,
    Case.Remedy.END_PUBLICATION: CreditRecord.Status.PUBLICATION_ENDED,
}


@dataclass
class _Planned:
    """One case to write, with what happens to it."""

    kind: str
    agency: Agency
    subject: Subject
    entry: CatalogueEntry
    filed_at: datetime
    decided_at: datetime | None
    withdrawn_at: datetime | None
    outcome: tuple[str, str, str] | None
    pause_days: int


def _plan(
    rng: random.Random, catalogue: _Catalogue, subjects: list[Subject], *, now: datetime
) -> Iterator[_Planned]:
    for filed_at in _filed_moments(rng, now=now):
        agency = rng.choices(catalogue.agencies, catalogue.agency_weights)[0]
        subject = rng.choice(subjects)
        pool = catalogue.entries[(agency.jurisdiction.code, subject.kind)]
        kind = Case.Kind.REPAIR if rng.random() < REPAIR_SHARE else Case.Kind.OBJECTION
        if kind == Case.Kind.REPAIR:
            pool = [entry for entry in pool if entry.repairable] or pool
        pause_days = rng.randint(3, 15) if rng.random() < PAUSED_SHARE else 0
        draw = rng.random()
        decided_at = withdrawn_at = None
        outcome = None
        if draw < DECIDED_SHARE:
            moment = filed_at + _decision_delay(rng) + timedelta(days=pause_days)
            if moment < now:
                decided_at, outcome = moment, _outcome(rng, kind)
        elif draw < DECIDED_SHARE + WITHDRAWN_SHARE:
            moment = filed_at + timedelta(days=rng.randint(0, 10), hours=rng.uniform(0, 8))
            withdrawn_at = min(moment, now - timedelta(seconds=30))
        yield _Planned(
            kind=kind,
            agency=agency,
            subject=subject,
            entry=rng.choice(pool),
            filed_at=filed_at,
            decided_at=decided_at,
            withdrawn_at=withdrawn_at,
            outcome=outcome,
            pause_days=pause_days,
        )


def _record(rng: random.Random, planned: _Planned, number: int) -> CreditRecord:
    entry = planned.entry
    decided_on = timezone.localdate(planned.filed_at) - timedelta(days=rng.randint(20, 400))
    conduct_ended_on = decided_on - timedelta(days=rng.randrange(90))
    months = rng.randint(entry.publication_min_months, entry.publication_max_months)
    title = "违法行为"
    facts = f"经查，当事人{title}，违反了相关规定，依法作出处罚决定。"
    document = f"罚决字〔{decided_on.year}〕{number}号"
    status: str = CreditRecord.Status.PUBLISHED
    if planned.outcome is not None:
        status = RECORD_STATUS.get(planned.outcome[1], status)
    return CreditRecord(
        agency=planned.agency,
        record_number=f"BENCH-{number:08d}",
        subject=planned.subject,
        category=entry,
        title=title,
        facts=facts,
        decision_document_number=document,
        decision_date=decided_on,
        conduct_ended_on=conduct_ended_on,
        publication_start=decided_on,
        publication_end=add_months(decided_on, months),
        retention_end=add_months(decided_on, 60),
        status=status,
        content_hash=content_hash(
            subject_hash=planned.subject.identifier_hash,
            category_code=entry.code,
            title=title,
            facts=facts,
            document_number=document,
            decision_date=decided_on.isoformat(),
            conduct_ended_on=conduct_ended_on.isoformat(),
            publication_months=months,
        ),
    )


@dataclass(frozen=True)
class _Seeded:
    cases: int
    decided: int
    withdrawn: int
    open: int
    late: int
    paused: int
    case_ids: list[int]


def _write_batch(
    rng: random.Random,
    batch: list[_Planned],
    *,
    first_number: int,
    citizen: User,
    caseworker: User,
    now: datetime,
) -> tuple[list[int], int]:
    """One batch of records, cases, clocks, pauses and decisions; returns the case ids and how
    many clocks are late."""
    records = CreditRecord.objects.bulk_create(
        [_record(rng, planned, first_number + index) for index, planned in enumerate(batch)]
    )
    cases, clocks, late = [], [], 0
    for index, (planned, record) in enumerate(zip(batch, records, strict=True)):
        jurisdiction = planned.agency.jurisdiction
        closed_at = planned.decided_at or planned.withdrawn_at
        state = "closed" if planned.decided_at else "withdrawn" if planned.withdrawn_at else ""
        outcome = planned.outcome[0] if planned.outcome else ""
        filed_on = timezone.localdate(planned.filed_at)
        due_on = filed_on + timedelta(days=DUE_DAYS + planned.pause_days)
        cases.append(
            Case(
                reference=(
                    f"{REFERENCE_PREFIX[jurisdiction.code]}-{planned.filed_at.year}-"
                    f"{first_number + index:06d}"
                ),
                kind=planned.kind,
                subject=planned.subject,
                record=record,
                grounds=(
                    Case.Grounds.OBLIGATION_FULFILLED
                    if planned.kind == Case.Kind.REPAIR
                    else rng.choice((Case.Grounds.INACCURATE, Case.Grounds.INCOMPLETE))
                ),
                statement="benchmark",
                requested_remedy=(
                    Case.Remedy.END_PUBLICATION
                    if planned.kind == Case.Kind.REPAIR
                    else Case.Remedy.CORRECT
                ),
                filed_by=citizen,
                jurisdiction=jurisdiction,
                state=state or "under_review",
                is_open=closed_at is None,
                responsible_agency=planned.agency,
                assignee=caseworker,
                outcome=outcome,
                reasons="benchmark" if outcome else "",
                filed_at=planned.filed_at,
                routed_at=planned.filed_at + timedelta(seconds=2),
                closed_at=closed_at,
                next_due_on=due_on if closed_at is None else None,
            )
        )
        stopped_at = closed_at
        escalated_at = None
        if closed_at is None and due_on < timezone.localdate(now):
            escalated_at = datetime.combine(
                due_on + timedelta(days=1), datetime.min.time(), SHANGHAI
            ).replace(hour=1)
        if escalated_at is not None or (
            planned.decided_at is not None and timezone.localdate(planned.decided_at) > due_on
        ):
            late += 1
        clocks.append(
            Clock(
                case=cases[-1],
                timer="decision_deadline",
                state="under_review",
                unit="working",
                amount=5,
                started_on=filed_on,
                due_on=due_on,
                remind_on=due_on - timedelta(days=1),
                trace="benchmark",
                on_expiry="escalate",
                source_citation="benchmark",
                source_verified=True,
                status=Clock.Status.STOPPED if stopped_at else Clock.Status.RUNNING,
                escalated_at=escalated_at,
                stopped_at=stopped_at,
            )
        )
    Case.objects.bulk_create(cases)
    Clock.objects.bulk_create(clocks)
    pauses, decisions = [], []
    for planned, case, clock in zip(batch, cases, clocks, strict=True):
        if planned.pause_days:
            started = planned.filed_at + timedelta(days=1)
            ended = started + timedelta(days=planned.pause_days)
            pauses.append(
                ClockPause(
                    clock=clock,
                    started_at=started,
                    started_on=timezone.localdate(started),
                    ended_at=ended if ended < now else None,
                    reason="material requested",
                    actor=caseworker,
                )
            )
        if planned.outcome is not None:
            outcome, remedy, transition = planned.outcome
            decisions.append(
                Decision(
                    case=case,
                    record=case.record,
                    transition=transition,
                    outcome=outcome,
                    remedy=remedy,
                    reasons="benchmark",
                    decided_by=caseworker,
                )
            )
    ClockPause.objects.bulk_create(pauses)
    Decision.objects.bulk_create(decisions)
    return [case.pk for case in cases], late


def _seed(now: datetime) -> _Seeded:
    common.stage("seed: registry, users, subjects")
    demo.registry_load()
    citizen = User.objects.create_user(username="bench-citizen")
    citizen.groups.add(Group.objects.get_or_create(name=roles.CITIZEN)[0])
    centre = Agency.objects.get(code="shanghai-credit-centre")
    caseworker = User.objects.create_user(username="bench-caseworker", agency=centre)
    caseworker.groups.add(Group.objects.get_or_create(name=roles.CASEWORKER)[0])
    subjects = _subjects()
    catalogue = _catalogue()
    rng = random.Random(SEED)
    common.stage(f"seed: {CASES:,} cases with their records, clocks, pauses and decisions")
    planned = list(_plan(rng, catalogue, subjects, now=now))
    case_ids: list[int] = []
    late = 0
    for start in range(0, CASES, BATCH):
        with transaction.atomic():
            ids, batch_late = _write_batch(
                rng,
                planned[start : start + BATCH],
                first_number=start + 1,
                citizen=citizen,
                caseworker=caseworker,
                now=now,
            )
        case_ids += ids
        late += batch_late
    # bulk_create stamps created_at with the moment of writing (auto_now_add); the refresh dates a
    # decision by its created_at, so give every row the moment it stands for.
    common.execute(
        "UPDATE objections_decision d SET created_at = c.closed_at, updated_at = c.closed_at "
        "FROM objections_case c WHERE d.case_id = c.id"
    )
    common.execute("UPDATE objections_case SET created_at = filed_at")
    common.execute(
        "UPDATE objections_clock k SET created_at = c.filed_at FROM objections_case c "
        "WHERE k.case_id = c.id"
    )
    common.execute("VACUUM ANALYZE")
    return _Seeded(
        cases=len(planned),
        decided=sum(1 for p in planned if p.decided_at is not None),
        withdrawn=sum(1 for p in planned if p.withdrawn_at is not None),
        open=sum(1 for p in planned if p.decided_at is None and p.withdrawn_at is None),
        late=late,
        paused=sum(1 for p in planned if p.pause_days),
        case_ids=case_ids,
    )


# --- the measurements -----------------------------------------------------------------------------


@dataclass(frozen=True)
class _Refresh:
    seconds: list[float]
    stored_seconds: float  # as the service measured itself (Publication.seconds)
    peak_mb: float
    traced_seconds: float
    cases: int
    figures_kb: float


def _refresh() -> _Refresh:
    seconds = []
    publications: list[Publication] = []
    for number in range(REFRESH_RUNS):
        common.checkpoint()
        common.stage(f"figures_refresh() over {CASES:,} cases, run {number + 1}")
        with common.stopwatch() as elapsed:
            publications.append(figures_refresh())
        seconds.append(elapsed[0])
    publication = publications[-1]
    common.checkpoint()
    common.stage("figures_refresh() under tracemalloc, for its peak memory")
    tracemalloc.start()
    try:
        with common.stopwatch() as traced:
            figures_refresh()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT octet_length(figures::text) FROM transparency_publication WHERE id = %s",
            [publication.pk],
        )
        row = cursor.fetchone()
    size = row[0] if row else 0
    return _Refresh(
        seconds=seconds,
        stored_seconds=publication.seconds,
        peak_mb=peak / 1024**2,
        traced_seconds=traced[0],
        cases=publication.cases,
        figures_kb=size / 1024,
    )


@dataclass(frozen=True)
class _Timing:
    samples: list[float]  # milliseconds
    size: int  # bytes of the response body

    @property
    def p50(self) -> float:
        return _percentile(self.samples, 0.5)

    @property
    def p95(self) -> float:
        return _percentile(self.samples, 0.95)


def _requests(case_ids: list[int]) -> dict[str, _Timing]:
    """The three URLs, taking turns request by request (in a shuffled order for each round), so
    that whatever else the machine does at a moment falls on all three alike."""
    client = Client()
    rng = random.Random(REQUESTS)  # an order of measurement, not a secret
    checks: dict[str, Callable[[bytes], bool]] = {
        "bare view": lambda body: body.decode().startswith(("SH-", "ZJ-", "HB-", "CN-")),
        PAGE_URL: lambda body: b"<svg" in body and b"<table>" in body,
        STATS_URL: lambda body: b'"tables"' in body,
    }
    samples: dict[str, list[float]] = {name: [] for name in checks}
    sizes: dict[str, int] = {}
    for round_number in range(WARM_UP + REQUESTS):
        for name in rng.sample(list(checks), len(checks)):
            url = name if name != "bare view" else BARE_URL.format(pk=rng.choice(case_ids))
            start = time.perf_counter()
            response = client.get(url)
            spent = (time.perf_counter() - start) * 1000
            if response.status_code != 200 or not checks[name](response.content):
                raise common.BenchError(f"GET {url} answered {response.status_code} unexpectedly")
            if round_number >= WARM_UP:
                samples[name].append(spent)
            sizes[name] = len(response.content)
    return {name: _Timing(samples[name], sizes[name]) for name in checks}


def run() -> common.Result:
    started = time.perf_counter()
    common.fresh_database()
    now = timezone.now()
    with common.stopwatch() as seeding:
        seeded = _seed(now)
    refresh = _refresh()
    common.stage(f"requests: {WARM_UP} warm-up and {REQUESTS} timed rounds of the three URLs")
    with override_settings(
        ROOT_URLCONF="bench.transparency",  # by name: run with -m, this module is __main__
        ALLOWED_HOSTS=[*settings.ALLOWED_HOSTS, "testserver"],
    ):
        timings = _requests(seeded.case_ids)
    bare, page, stats = timings["bare view"], timings[PAGE_URL], timings[STATS_URL]
    ratio = page.p95 / bare.p95
    stats_ratio = stats.p95 / bare.p95
    refresh_median = common.median(refresh.seconds)
    rows: list[tuple[str, ...]] = [
        (
            f"figures_refresh() over {refresh.cases:,} cases, {REFRESH_RUNS} runs",
            f"{refresh_median:.1f} s (runs: {', '.join(f'{s:.1f}' for s in refresh.seconds)})",
            f"peak {refresh.peak_mb:.0f} MB",
            "",
        ),
        (
            "bare view: one case by primary key",
            f"{bare.p50:.1f} ms",
            f"{bare.p95:.1f} ms",
            "1.0",
        ),
        (
            f"GET {PAGE_URL} ({page.size / 1024:.0f} KB)",
            f"{page.p50:.1f} ms",
            f"{page.p95:.1f} ms",
            f"{ratio:.1f}",
        ),
        (
            f"GET {STATS_URL} ({stats.size / 1024:.0f} KB)",
            f"{stats.p50:.1f} ms",
            f"{stats.p95:.1f} ms",
            f"{stats_ratio:.1f}",
        ),
    ]
    result = common.Result(
        key="transparency",
        title=f"Transparency figures over {CASES:,} cases",
        target=f"page p95 <= {TARGET_RATIO:.0f}x the bare view's p95",
        met=ratio <= TARGET_RATIO,
        headline=(
            f"page p95 {page.p95:.1f} ms = {ratio:.1f}x the bare view ({bare.p95:.1f} ms); "
            f"refresh {refresh_median:.1f} s, peak {refresh.peak_mb:.0f} MB"
        ),
        commands=[
            f"{common.PYTHON} -m bench.transparency",
            f"# seed: records.demo.registry_load(), {SUBJECTS:,} subjects, then {CASES:,} cases "
            "(one record, one clock each; decisions, pauses) with bulk_create",
            "# transparency.services.figures_refresh() in-process",
            f"# django.test.Client().get(...) for {PAGE_URL}, {STATS_URL} and the bare view, "
            "taking turns",
        ],
        headers=("measure", "p50 (refresh: median)", "p95 (refresh: memory)", "p95 vs bare"),
        rows=rows,
        notes=[
            f"Data: {seeded.cases:,} cases filed over the {MONTHS_SHOWN} months shown (more in "
            f"recent months), {seeded.decided:,} decided with a Decision row "
            f"({seeded.decided / seeded.cases:.0%}), {seeded.withdrawn:,} withdrawn, "
            f"{seeded.open:,} open; {seeded.late:,} with a late clock (decided after its due "
            f"day, or escalated while open), {seeded.paused:,} with a pause. 16 providing units "
            "of 4 jurisdictions (Shanghai 45%, Zhejiang 30%, Hubei 15%, national 10%) and the "
            f"demo catalogue; {REPAIR_SHARE:.0%} credit repairs. Seeding took "
            f"{seeding[0]:.0f} s.",
            f"Refresh: wall-clock time of figures_refresh(), each run after a CHECKPOINT; the "
            f"service's own figure for the last run is {refresh.stored_seconds:.1f} s. Peak "
            f"memory is the peak of Python allocations (tracemalloc) in a further run, which "
            f"tracemalloc slows to {refresh.traced_seconds:.1f} s. The stored public figures "
            f"are {refresh.figures_kb:,.0f} KB of JSON.",
            f"Requests: {WARM_UP} warm-up rounds, then {REQUESTS} timed rounds, each GETting "
            "the three URLs in a shuffled order through Django's test Client (the full "
            "middleware stack, no network, no template instrumentation), anonymous, in "
            "Chinese (the default language); the bare view reads a random case by primary key "
            "and returns its reference as text.",
        ],
    )
    common.record(result, seconds=time.perf_counter() - started)
    return result


if __name__ == "__main__":
    run()
