"""Filing to routed through a real Celery worker on Redis, beside a bare Celery round trip.

Run alone: `.venv/bin/python -m bench.case_routing`. Needs PostgreSQL and Redis (REDIS_URL,
default redis://127.0.0.1:6379/13: a database of its own, flushed at the start).

In one run:
1. a bare round trip: `scs_cases.ping` sent to the same worker and its result read back, paced like
   the filings (20 a second for 30 seconds);
2. filings: `case_file` 20 times a second for 30 seconds, each on its own record; the latency of
   a case is `routed_at - filed_at`, both stamped by the services (routing runs in the worker:
   workflow version, agency, least-loaded caseworker, the automatic marking, clocks);
3. transitions per second through `case_transition` (start_review, then grant, which the system
   executes and completes), single-threaded.
"""

from __future__ import annotations

import io
import os
import signal
import subprocess
import sys
import time
from typing import Any

from bench import common

TARGET_RATIO = 10.0
RATE = 20  # filings (and pings) a second
SECONDS = 30
REDIS_URL = os.environ.get("REDIS_URL") or "redis://127.0.0.1:6379/13"
TRANSITION_CASES = 200


def _percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]


def _start_worker(log_path: str) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "REDIS_URL": REDIS_URL,
        "SCS_CELERY_RESULT_BACKEND": REDIS_URL,
        "DEBUG": "0",
    }
    log = open(log_path, "wb")  # noqa: SIM115 - closed when the worker stops
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "scs_cases",
            "worker",
            "--concurrency=2",
            "--without-gossip",
            "--without-mingle",
            "--without-heartbeat",
            "--loglevel=WARNING",
        ],
        cwd=common.REPO_ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def _stop_worker(worker: subprocess.Popen[bytes]) -> None:
    os.killpg(worker.pid, signal.SIGTERM)
    try:
        worker.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(worker.pid, signal.SIGKILL)


def _paced(count: int, action: Any) -> list[Any]:
    """Call `action(index)` `count` times at RATE a second; return what each call returned."""
    interval = 1.0 / RATE
    start = time.perf_counter()
    results = []
    for index in range(count):
        wait = start + index * interval - time.perf_counter()
        if wait > 0:
            time.sleep(wait)
        results.append(action(index))
    return results


def _seed() -> tuple[Any, list[Any]]:
    from django.contrib.auth.models import Group
    from django.core.management import call_command

    from accounts.models import User
    from objections.services import workflow_definitions_sync
    from records.models import Agency, CreditRecord, Subject
    from records.services import subject_access_grant

    def person(username: str, role: str, agency: Agency | None = None) -> User:
        user = User.objects.create_user(username=username, agency=agency)
        user.groups.add(Group.objects.get_or_create(name=role)[0])
        return user

    count = RATE * SECONDS + TRANSITION_CASES
    common.stage(f"seed: {count} records of one subject, a citizen, two caseworkers")
    call_command(
        "generate_data",
        records=count,
        subjects=1,
        agency="shanghai-market",
        output=common.WORK_DIR / "routing-records.csv",
        no_progress=True,
        stdout=io.StringIO(),
    )
    workflow_definitions_sync()
    centre = Agency.objects.get(code="shanghai-credit-centre")
    citizen = person("bench-citizen", "citizen")
    for number in range(2):
        person(f"bench-caseworker-{number}", "caseworker", centre)
    subject_access_grant(subject=Subject.objects.get(), user=citizen, actor=None)
    records = list(CreditRecord.objects.order_by("pk"))
    return citizen, records


def run() -> common.Result:
    started = time.perf_counter()
    import redis

    from objections.models import Case
    from objections.services import TransitionInput, case_file, case_transition
    from scs_cases.celery import app

    # Django was set up when the bench package was imported; point this process's Celery client
    # at the same Redis broker and result backend as the worker it starts.
    app.conf.update(
        broker_url=REDIS_URL,
        result_backend=REDIS_URL,
        task_ignore_result=False,
        broker_transport_options={"visibility_timeout": 3600},
    )

    redis.Redis.from_url(REDIS_URL).flushdb()
    common.fresh_database()
    citizen, records = _seed()
    common.checkpoint()

    worker = _start_worker(str(common.WORK_DIR / "routing-worker.log"))
    try:
        common.stage("waiting for the worker")
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                app.send_task("scs_cases.ping").get(timeout=2)
                break
            except Exception:  # noqa: S112 - not up yet
                continue
        else:
            raise common.BenchError("the Celery worker did not answer within 60 s")

        total = RATE * SECONDS
        common.stage(f"bare round trip: scs_cases.ping, {RATE}/s for {SECONDS} s")

        def ping(_index: int) -> float:
            sent = time.perf_counter()
            app.send_task("scs_cases.ping").get(timeout=30)
            return (time.perf_counter() - sent) * 1000

        pings = _paced(total, ping)

        common.stage(f"filings: case_file, {RATE}/s for {SECONDS} s")

        def file(index: int) -> int:
            case = case_file(
                actor=citizen,
                record=records[index],
                kind="objection",
                grounds="inaccurate",
                statement="benchmark",
                requested_remedy="correct",
                correction={"title": "更正"},
            )
            return case.pk

        ids = _paced(total, file)
        deadline = time.monotonic() + 120
        while Case.objects.filter(pk__in=ids, routed_at__isnull=True).exists():
            if time.monotonic() > deadline:
                raise common.BenchError("cases were still unrouted 120 s after the last filing")
            time.sleep(0.2)
        latencies = [
            (routed_at - filed_at).total_seconds() * 1000
            for filed_at, routed_at in Case.objects.filter(pk__in=ids).values_list(
                "filed_at", "routed_at"
            )
            if routed_at is not None
        ]
    finally:
        _stop_worker(worker)

    common.stage(f"transitions: start_review and grant on {TRANSITION_CASES} routed cases")
    from objections.services import case_route

    extra = []
    for record in records[total : total + TRANSITION_CASES]:
        case = case_file(
            actor=citizen,
            record=record,
            kind="objection",
            grounds="inaccurate",
            statement="benchmark",
            requested_remedy="correct",
            correction={"title": "更正"},
        )
        extra.append(case_route(case_id=case.pk))
    with common.stopwatch() as elapsed:
        for case in extra:
            actor = case.assignee
            if actor is None:
                raise common.BenchError(f"case {case.reference} was routed to nobody")
            case_transition(case_id=case.pk, transition="start_review", actor=actor)
            case_transition(
                case_id=case.pk,
                transition="grant",
                actor=actor,
                data=TransitionInput(
                    outcome="granted", reasons="benchmark", correction={"title": "更正"}
                ),
            )
    transitions = 2 * len(extra)
    rate = transitions / elapsed[0]

    ping_p50, ping_p95 = _percentile(pings, 0.5), _percentile(pings, 0.95)
    route_p50, route_p95 = _percentile(latencies, 0.5), _percentile(latencies, 0.95)
    ratio = route_p95 / ping_p95
    rows = [
        (
            "bare round trip (scs_cases.ping)",
            f"{len(pings)}",
            f"{ping_p50:.1f}",
            f"{ping_p95:.1f}",
            "1.0",
        ),
        (
            "filing to routed",
            f"{len(latencies)}",
            f"{route_p50:.1f}",
            f"{route_p95:.1f}",
            f"{ratio:.1f}",
        ),
    ]
    result = common.Result(
        key="case_routing",
        title="Filing to routed",
        target=f"routing p95 <= {TARGET_RATIO:.0f}x the bare round trip's p95",
        met=ratio <= TARGET_RATIO,
        headline=(
            f"routing p95 {route_p95:.1f} ms = {ratio:.1f}x the bare round trip "
            f"({ping_p95:.1f} ms); {rate:,.0f} transitions/s"
        ),
        commands=[f"{common.PYTHON} -m bench.case_routing"],
        headers=("measure", "samples", "p50 ms", "p95 ms", "p95 vs bare"),
        rows=rows,
        notes=[
            f"{RATE} filings a second for {SECONDS} s by one client, each on its own record; the "
            "worker is a real Celery worker (prefork, 2 processes) on Redis, against the same "
            "PostgreSQL; latency is routed_at - filed_at as the services stamp them.",
            "The bare round trip sends scs_cases.ping to the same worker and waits for its result "
            "through the Redis result backend, paced the same way.",
            f"Transitions through case_transition, single-threaded: {transitions} in "
            f"{elapsed[0]:.1f} s = {rate:,.0f}/s (each grant also runs the automatic execute and "
            "complete steps, with their record correction and audit events).",
        ],
    )
    common.record(result, seconds=time.perf_counter() - started)
    return result


if __name__ == "__main__":
    run()
