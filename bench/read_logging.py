"""What recording a staff read costs the case page: `GET /api/v1/cases/<reference>/` (issue 12).

A centre caseworker, logged in with a session past the second factor, opens routed Shanghai
objections through Django's test client (the whole middleware stack, session and authentication
included; no network). Each view of the case as staff writes one `read.case_opened` event in a
transaction of its own (`audit.reads.read_record`). The same requests run with that call patched
out, on the same cases in the same run, the two variants taking turns request by request in a
shuffled order; the target is set on the ratio of their p95 latencies: read logging adds at most
10 %.
"""

from __future__ import annotations

import contextlib
import io
import random
import time
from collections.abc import Callable, Iterator
from typing import Any
from unittest import mock

from django.core.management import call_command
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django_otp import DEVICE_ID_SESSION_KEY
from django_otp.plugins.otp_totp.models import TOTPDevice

from accounts.middleware import session_times_start
from audit.models import AuditChainHead
from audit.reads import read_record
from bench import common

CASES = 20
WARM_UP = 100  # requests per variant, not measured
ROUNDS = 5
PER_ROUND = 400  # requests per variant and round
TARGET = 1.10  # p95 with read logging / p95 without
HOST = "localhost"  # in the development ALLOWED_HOSTS
PATCHED = "audit.reads.read_record"  # what audit.reads.case_opened_record calls

SEED_COMMAND = (
    f"{common.PYTHON} manage.py generate_data --records {CASES} --subjects 1 "
    "--agency shanghai-market --output bench/work/read-logging-records.csv"
)


def _skip(**_: Any) -> None:
    """Stands in for `read_record` (the variant without read logging) or a task's `delay`."""


@contextlib.contextmanager
def _no_queued_tasks() -> Iterator[None]:
    """Routing runs here, synchronously: no message goes to a broker."""
    from objections import tasks

    with (
        mock.patch.object(tasks.case_route_task, "delay", new=_skip),
        mock.patch.object(tasks.notifications_send_task, "delay", new=_skip),
    ):
        yield


def _seed() -> tuple[Any, list[str]]:
    """CASES routed Shanghai objections of one citizen; their centre caseworker and references."""
    from django.contrib.auth.models import Group

    from accounts.models import User
    from objections.services import case_file, case_route, workflow_definitions_sync
    from records.models import Agency, CreditRecord, Subject
    from records.services import subject_access_grant

    common.stage(f"seed: {SEED_COMMAND}; {CASES} objections filed and routed")
    call_command(
        "generate_data",
        records=CASES,
        subjects=1,
        agency="shanghai-market",
        output=common.WORK_DIR / "read-logging-records.csv",
        no_progress=True,
        stdout=io.StringIO(),
    )
    workflow_definitions_sync()
    centre = Agency.objects.get(code="shanghai-credit-centre")
    citizen = User.objects.create_user(username="bench-citizen")
    citizen.groups.add(Group.objects.get_or_create(name="citizen")[0])
    caseworker = User.objects.create_user(username="bench-caseworker", agency=centre)
    caseworker.groups.add(Group.objects.get_or_create(name="caseworker")[0])
    subject_access_grant(subject=Subject.objects.get(), user=citizen, actor=None)
    references = []
    with _no_queued_tasks():
        for record in CreditRecord.objects.order_by("pk"):
            case = case_file(
                actor=citizen,
                record=record,
                kind="objection",
                grounds="inaccurate",
                statement="benchmark",
                fields_objected=["title"],
                requested_remedy="correct",
                correction={"title": "更正"},
            )
            references.append(case_route(case_id=case.pk).reference)
    return caseworker, references


def _signed_in(user: Any) -> Client:
    """A client with `user`'s staff session, as signing in with a TOTP code leaves it (the API
    refuses a staff session that has not passed the second factor)."""
    client = Client(HTTP_HOST=HOST)
    client.force_login(user)
    device = TOTPDevice.objects.create(user=user, name="bench", confirmed=True)
    session = client.session
    session[DEVICE_ID_SESSION_KEY] = device.persistent_id
    session_times_start(session, staff=True)
    session.save()
    return client


def _percentile(values: list[float], share: float) -> float:
    """Nearest rank on the sorted values."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]


# Milliseconds spent inside read_record in the requests that log: what the read itself costs.
_inside: list[float] = []


def _read_record_timed(**arguments: Any) -> None:
    start = time.perf_counter()
    try:
        read_record(**arguments)
    finally:
        _inside.append((time.perf_counter() - start) * 1000)


Variant = Callable[[], contextlib.AbstractContextManager[Any]]
VARIANTS: dict[str, Variant] = {
    "with read logging": lambda: mock.patch(PATCHED, new=_read_record_timed),
    "without (read_record patched out)": lambda: mock.patch(PATCHED, new=_skip),
}


def _requests(
    client: Client, references: list[str], count: int, seed: int
) -> dict[str, list[float]]:
    """`count` requests per variant, taking turns in a shuffled order; milliseconds of each.

    The patch is applied and removed outside the timed call, so neither variant pays for it.
    """
    order = random.Random(seed)  # an order of measurement, not a secret
    names = list(VARIANTS)
    spent: dict[str, list[float]] = {name: [] for name in names}
    for index in range(count):
        url = f"/api/v1/cases/{references[index % len(references)]}/"
        for name in order.sample(names, len(names)):
            with VARIANTS[name]():
                start = time.perf_counter()
                response = client.get(url)
                elapsed = time.perf_counter() - start
            if response.status_code != 200:
                raise common.BenchError(f"GET {url} answered {response.status_code}")
            spent[name].append(elapsed * 1000)
    return spent


def _statements(client: Client, url: str) -> dict[str, int]:
    counts = {}
    for name, variant in VARIANTS.items():
        with variant(), CaptureQueriesContext(connection) as captured:
            client.get(url)
        counts[name] = len(captured)
    return counts


def run() -> common.Result:
    started = time.perf_counter()
    common.fresh_database()
    caseworker, references = _seed()
    client = _signed_in(caseworker)
    common.checkpoint()

    common.stage(f"warm-up: {WARM_UP} requests per variant")
    _requests(client, references, WARM_UP, seed=0)
    statements = _statements(client, f"/api/v1/cases/{references[0]}/")
    head_before = AuditChainHead.objects.get(pk=1).sequence

    _inside.clear()
    common.stage(f"{ROUNDS} rounds of {PER_ROUND} requests per variant, taking turns")
    latencies: dict[str, list[float]] = {name: [] for name in VARIANTS}
    round_ratios: list[float] = []
    for number in range(1, ROUNDS + 1):
        spent = _requests(client, references, PER_ROUND, seed=number)
        with_logging, without = (spent[name] for name in VARIANTS)
        round_ratios.append(_percentile(with_logging, 0.95) / _percentile(without, 0.95))
        for name, values in spent.items():
            latencies[name].extend(values)
        common.stage(f"round {number}: p95 ratio {round_ratios[-1]:.3f}")

    written = AuditChainHead.objects.get(pk=1).sequence - head_before
    if written != ROUNDS * PER_ROUND:
        raise common.BenchError(
            f"{written} read events for {ROUNDS * PER_ROUND} logged requests: expected one each"
        )
    figures = {
        name: (_percentile(values, 0.5), _percentile(values, 0.95))
        for name, values in latencies.items()
    }
    (with_p50, with_p95), (without_p50, without_p95) = figures.values()
    ratio = with_p95 / without_p95
    rows = [
        (
            name,
            f"{len(latencies[name]):,}",
            f"{p50:.2f}",
            f"{p95:.2f}",
            f"{p95 / without_p95:.3f}",
            f"{statements[name]}",
        )
        for name, (p50, p95) in figures.items()
    ]
    result = common.Result(
        key="read_logging",
        title="Cost of logging a staff read of a case",
        target=f"read logging adds at most {TARGET - 1:.0%} to the case page's p95",
        met=ratio <= TARGET,
        headline=(
            f"p95 {with_p95:.1f} ms with, {without_p95:.1f} ms without = {ratio:.3f}; "
            f"p50 +{with_p50 - without_p50:.1f} ms"
        ),
        commands=[
            f"{common.PYTHON} -m bench.read_logging",
            SEED_COMMAND + "   # then the objections are filed and routed in-process",
            "# django.test.Client(HTTP_HOST='localhost'), force_login(centre caseworker) and a "
            "confirmed TOTP device in the session, then "
            "GET /api/v1/cases/<reference>/ over the cases in turn, each request with "
            f"{PATCHED} wrapped in a timer or patched to a no-op",
        ],
        headers=("variant", "requests", "p50 ms", "p95 ms", "p95 vs without", "statements"),
        rows=rows,
        notes=[
            f"{ROUNDS} rounds of {PER_ROUND} requests per variant after {WARM_UP} warm-up "
            "requests each; the two variants take turns request by request (shuffled with a "
            "fixed seed) on the same cases, so both see the same load on the machine. The "
            "percentiles are over all measured requests (nearest rank).",
            "p95 ratio of each round: "
            + ", ".join(f"{value:.3f}" for value in round_ratios)
            + f" (median {common.median(round_ratios):.3f}).",
            f"p50 {with_p50:.2f} ms with, {without_p50:.2f} ms without "
            f"({with_p50 / without_p50:.3f}).",
            f"Inside read_record (timed around the call in the requests that log): p50 "
            f"{_percentile(_inside, 0.5):.2f} ms, p95 {_percentile(_inside, 0.95):.2f} ms.",
            "Statements: what one request runs (session, user, roles, case, clocks, ...); the "
            "read adds the audit writer's statements (audit.services) in a transaction of its "
            "own, whose commit waits for a WAL flush (synchronous_commit=on).",
            f"{written:,} read.case_opened events were written: one per logged request.",
            "The time is that of the view as the test client runs it (middleware, session "
            "authentication, DRF, serialisation), without a network or a WSGI server.",
        ],
    )
    common.record(result, seconds=time.perf_counter() - started)
    return result


def main() -> None:
    run()


if __name__ == "__main__":
    main()
