"""Benchmark 3: what auditing costs a write, on Django's own PostgreSQL backend.

Four parts, in one run:
1. A full audited case transition through the service (a Shanghai `forward`: lock, state,
   clocks, effects, its audit events written in one statement before commit) against the same
   step with auditing switched off, interleaved step by step: target audited/unaudited >= 0.9.
2. Eight concurrent writers doing audited transitions on different cases against the same
   unaudited: target >= 0.8 of its throughput (the chain head is the real ceiling).
3. The one-row change (`SELECT ... FOR UPDATE`, UPDATE, with and without an audit event, and a
   naive chain for context), without a target: the figure peers are compared on.
4. Routing and transitions while an import of 1,000,000 rows runs in parallel: no deadlock, no
   error.
"""

from __future__ import annotations

import contextlib
import io
import random
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any, NoReturn
from unittest import mock

from django.core.management import call_command
from django.db import connection, connections, transaction
from django.utils import timezone
from tqdm import tqdm

from accounts.roles import SYSTEM
from audit.models import GENESIS_HASH
from audit.services import audit_record, audited, canonical_json, chain_hash
from bench import common
from records.models import CreditRecord

SEED_RECORDS = 5_000
SEED_SUBJECTS = 2_000
SEED_CSV = common.WORK_DIR / "records-5k.csv"
ROUNDS = 5
PER_ROUND = 1_000
WARM_UP = 200
ACTION = "record.marked"
NAIVE_TABLE = "bench_naive_auditevent"
# Any constant key: only the naive variant takes this advisory lock.
NAIVE_LOCK_KEY = 5_150_001
TRANSITION_TARGET = 0.9
CONCURRENT_TARGET = 0.8
TRANSITION_ROUNDS = 3
TRANSITIONS_PER_ROUND = 150
WRITERS = 8
PER_WRITER = 40
CONCURRENT_ROUNDS = 2
PARALLEL_CASES = 200
# Every module that records audit events, for switching auditing off in the unaudited variants.
AUDITING_MODULES = (
    "objections.services.filing",
    "objections.services.routing",
    "objections.services.transitions",
    "objections.services.clocks",
    "records.services",
)

SEED_COMMAND = (
    f"{common.PYTHON} manage.py generate_data --records {SEED_RECORDS} "
    f"--subjects {SEED_SUBJECTS} --output bench/work/records-5k.csv"
)
_NAIVE_INSERT = (
    f"INSERT INTO {NAIVE_TABLE} (sequence, recorded_at, actor_id, actor_role, action, "
    "target_type, target_id, case_reference, request_id, canonical, previous_hash, hash) "
    "VALUES (%s, %s, NULL, %s, %s, %s, %s, '', '', %s, %s, %s)"
)

Audit = Callable[[CreditRecord], None]
Variant = Callable[[int], None]


def _audit_record(record: CreditRecord) -> None:
    audit_record(
        actor=None,
        action=ACTION,
        target=record,
        data={"under_objection": record.under_objection},
    )


def _naive_chain(record: CreditRecord) -> None:
    """Lock, read the last hash back, hash in Python, insert: three statements per event."""
    recorded_at = timezone.now()
    target_type, target_id = record._meta.label_lower, str(record.pk)
    canonical = canonical_json(
        {
            "action": ACTION,
            "actor": None,
            "case": "",
            "data": {"under_objection": record.under_objection},
            "recorded_at": recorded_at.isoformat(),
            "request": "",
            "role": SYSTEM,
            "target": [target_type, target_id],
        }
    )
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_xact_lock(%s)", [NAIVE_LOCK_KEY])
        cursor.execute(f"SELECT sequence, hash FROM {NAIVE_TABLE} ORDER BY sequence DESC LIMIT 1")
        last = cursor.fetchone()
        sequence, previous = (last[0] + 1, last[1]) if last else (1, GENESIS_HASH)
        digest = chain_hash(previous_hash=previous, sequence=sequence, canonical=canonical)
        cursor.execute(
            _NAIVE_INSERT,
            [
                sequence,
                recorded_at,
                SYSTEM,
                ACTION,
                target_type,
                target_id,
                canonical,
                previous,
                digest,
            ],
        )


def _mark(pk: int, audit: Audit | None) -> None:
    with audited() if audit is not None else transaction.atomic():
        record = CreditRecord.objects.select_for_update().get(pk=pk)
        record.under_objection = not record.under_objection
        record.save(update_fields=["under_objection", "updated_at"])
        if audit is not None:
            audit(record)


ROW_VARIANTS: dict[str, Variant] = {
    "unaudited": lambda pk: _mark(pk, None),
    "audit_record": lambda pk: _mark(pk, _audit_record),
    "naive chain": lambda pk: _mark(pk, _naive_chain),
}


def _skip(**_: Any) -> None:
    """Stands in for audit_record or a task's delay in the variants that leave them out."""


@contextlib.contextmanager
def _auditing_off() -> Iterator[None]:
    """The same services with `audit_record` replaced by a no-op (the unaudited variants)."""
    with contextlib.ExitStack() as stack:
        for module in AUDITING_MODULES:
            stack.enter_context(mock.patch(f"{module}.audit_record", new=_skip))
        yield


@contextlib.contextmanager
def _no_queued_tasks() -> Iterator[None]:
    """Routing and notifications run here, synchronously: no message goes to a broker."""
    from objections import tasks

    with (
        mock.patch.object(tasks.case_route_task, "delay", new=_skip),
        mock.patch.object(tasks.notifications_send_task, "delay", new=_skip),
    ):
        yield


def _round(
    variants: dict[str, Callable[[Any], None]],
    keys: list[Any],
    bar: tqdm[NoReturn] | None = None,
) -> dict[str, float]:
    """Every variant runs once per key in turn; returns the operations per second of each.

    Interleaving operation by operation exposes all variants alike to whatever else the machine
    is doing at that moment. The order is shuffled for each key (with a fixed seed), not rotated:
    in a rotation each variant always follows the same other one.
    """
    names = list(variants)
    spent = dict.fromkeys(names, 0.0)
    order = random.Random(len(keys))  # an order of measurement, not a secret
    for key in keys:
        for name in order.sample(names, len(names)):
            start = time.perf_counter()
            variants[name](key)
            spent[name] += time.perf_counter() - start
        if bar is not None:
            bar.update(len(names))
    return {name: len(keys) / seconds for name, seconds in spent.items()}


def _ratios(rates: dict[str, list[float]], base: str) -> dict[str, float]:
    """Each variant's median, over the rounds, of its rate over the base variant's rate."""
    return {
        name: common.median([rate / plain for rate, plain in zip(values, rates[base], strict=True)])
        for name, values in rates.items()
    }


def _rows(
    rates: dict[str, list[float]], ratios: dict[str, float], label: str
) -> list[tuple[str, ...]]:
    return [
        (
            f"{label}: {name}",
            f"{common.median(rates[name]):,.0f}",
            f"{min(rates[name]):,.0f} – {max(rates[name]):,.0f}",
            f"{1000 / common.median(rates[name]):.2f}",
            f"{ratios[name]:.3f}",
        )
        for name in rates
    ]


# --- seeding --------------------------------------------------------------------------------------


def _seed() -> list[int]:
    common.stage(f"seeding: {SEED_COMMAND}")
    call_command(
        "generate_data",
        records=SEED_RECORDS,
        subjects=SEED_SUBJECTS,
        output=SEED_CSV,
        no_progress=True,
        stdout=io.StringIO(),
    )
    with connection.cursor() as cursor:
        # Same columns, indexes and defaults as the real log, so the naive variant pays the same
        # index maintenance; the append-only triggers are not copied (LIKE never copies triggers).
        cursor.execute(f"CREATE TABLE {NAIVE_TABLE} (LIKE audit_auditevent INCLUDING ALL)")
        cursor.execute("VACUUM ANALYZE")
    pks = list(CreditRecord.objects.order_by("pk").values_list("pk", flat=True))
    if len(pks) != SEED_RECORDS:
        raise common.BenchError(f"seeding created {len(pks)} records, expected {SEED_RECORDS}")
    return pks


class _Cases:
    """Shanghai objections of one citizen, routed (marked) and ready for `forward`."""

    def __init__(self, records: list[CreditRecord]) -> None:
        from django.contrib.auth.models import Group

        from accounts.models import User
        from objections.services import workflow_definitions_sync
        from records.models import Agency, Subject
        from records.services import subject_access_grant

        workflow_definitions_sync()
        centre = Agency.objects.get(code="shanghai-credit-centre")
        self.citizen = User.objects.create_user(username="bench-citizen")
        self.citizen.groups.add(Group.objects.get_or_create(name="citizen")[0])
        self.caseworker = User.objects.create_user(username="bench-caseworker", agency=centre)
        self.caseworker.groups.add(Group.objects.get_or_create(name="caseworker")[0])
        for subject in Subject.objects.filter(pk__in={record.subject_id for record in records}):
            subject_access_grant(subject=subject, user=self.citizen, actor=None)
        self._records = iter(records)

    def routed(self, count: int) -> list[int]:
        from objections.services import case_file, case_route

        ids = []
        for _ in range(count):
            case = case_file(
                actor=self.citizen,
                record=next(self._records),
                kind="objection",
                grounds="inaccurate",
                statement="benchmark",
                requested_remedy="correct",
            )
            ids.append(case_route(case_id=case.pk).pk)
        return ids

    def forward(self, case_id: int) -> None:
        from objections.services import TransitionInput, case_transition

        case = case_transition(
            case_id=case_id, transition="forward", actor=self.caseworker, data=TransitionInput()
        )
        if case.state != "provider_review":
            raise common.BenchError(f"forward left case {case_id} in {case.state}")


# --- the parts ------------------------------------------------------------------------------------


def _one_row(pks: list[int]) -> dict[str, list[float]]:
    common.stage(f"one-row change: warm-up, then {ROUNDS} rounds of {PER_ROUND:,} per variant")
    _round(ROW_VARIANTS, pks[:WARM_UP])
    common.checkpoint()
    rates: dict[str, list[float]] = {name: [] for name in ROW_VARIANTS}
    with tqdm(total=ROUNDS * PER_ROUND * len(ROW_VARIANTS), unit="op", desc="rows") as bar:
        for number in range(ROUNDS):
            batch = [pks[(number * PER_ROUND + index) % len(pks)] for index in range(PER_ROUND)]
            for name, rate in _round(ROW_VARIANTS, batch, bar).items():
                rates[name].append(rate)
    return rates


def _transitions(cases: _Cases) -> dict[str, list[float]]:
    count = TRANSITION_ROUNDS * TRANSITIONS_PER_ROUND
    common.stage(f"case transitions: routing {2 * count:,} cases, then {TRANSITION_ROUNDS} rounds")
    audited_ids, plain_ids = cases.routed(count), cases.routed(count)
    common.checkpoint()

    def unaudited(case_id: int) -> None:
        with _auditing_off():
            cases.forward(case_id)

    rates: dict[str, list[float]] = {"unaudited": [], "audited": []}
    for number in range(TRANSITION_ROUNDS):
        window = slice(number * TRANSITIONS_PER_ROUND, (number + 1) * TRANSITIONS_PER_ROUND)
        pairs = list(zip(audited_ids[window], plain_ids[window], strict=True))
        measured = _round(
            {
                "audited": lambda pair: cases.forward(pair[0]),
                "unaudited": lambda pair: unaudited(pair[1]),
            },
            pairs,
        )
        for name, rate in measured.items():
            rates[name].append(rate)
    return rates


def _concurrent(cases: _Cases) -> dict[str, list[float]]:
    per_phase = WRITERS * PER_WRITER
    common.stage(
        f"{WRITERS} concurrent writers: routing {2 * CONCURRENT_ROUNDS * per_phase:,} cases, "
        f"then {CONCURRENT_ROUNDS} rounds of an audited and an unaudited phase"
    )
    batches = [cases.routed(per_phase) for _ in range(2 * CONCURRENT_ROUNDS)]
    common.checkpoint()

    def phase(ids: list[int]) -> float:
        errors: list[BaseException] = []
        start_together = threading.Barrier(WRITERS + 1)

        def writer(mine: list[int]) -> None:
            try:
                start_together.wait()
                for case_id in mine:
                    cases.forward(case_id)
            except BaseException as error:  # reported below
                errors.append(error)
            finally:
                connections.close_all()

        threads = [
            threading.Thread(target=writer, args=(ids[number::WRITERS],))
            for number in range(WRITERS)
        ]
        for thread in threads:
            thread.start()
        start_together.wait()
        started = time.perf_counter()
        for thread in threads:
            thread.join()
        elapsed = time.perf_counter() - started
        if errors:
            raise common.BenchError(f"a concurrent writer failed: {errors[0]!r}")
        return len(ids) / elapsed

    rates: dict[str, list[float]] = {"unaudited": [], "audited": []}
    for number in range(CONCURRENT_ROUNDS):
        rates["audited"].append(phase(batches[2 * number]))
        with _auditing_off():
            rates["unaudited"].append(phase(batches[2 * number + 1]))
    return rates


def _parallel_import(cases: _Cases) -> tuple[int, int, float, str]:
    """Routing and transitions while the 1,000,000-row import runs; any error fails the bench."""
    from bench import import_records
    from records.imports import import_batch_run
    from records.models import Agency, ImportBatch

    import_records.csv_ready()
    agency = Agency.objects.get(code=import_records.AGENCY)
    outcome: dict[str, Any] = {}

    def run_import() -> None:
        try:
            with import_records.CSV_PATH.open("rb") as stream:
                outcome["report"] = import_batch_run(
                    agency=agency,
                    stream=stream,
                    file_name=import_records.CSV_NAME,
                    actor=None,
                    source=ImportBatch.Source.COMMAND,
                )
        except BaseException as error:  # reported below
            outcome["error"] = error
        finally:
            connections.close_all()

    common.stage(
        f"parallel: importing {import_records.CSV_NAME} while cases are routed and forwarded"
    )
    importer = threading.Thread(target=run_import)
    started = time.perf_counter()
    importer.start()
    routed = forwarded = 0
    while importer.is_alive() and routed < PARALLEL_CASES:
        [case_id] = cases.routed(1)
        routed += 1
        cases.forward(case_id)
        forwarded += 1
    importer.join()
    seconds = time.perf_counter() - started
    if "error" in outcome:
        raise common.BenchError(f"the parallel import failed: {outcome['error']!r}")
    report = outcome["report"]
    return routed, forwarded, seconds, f"{report.rows_inserted:,} inserted"


def run() -> common.Result:
    started = time.perf_counter()
    common.fresh_database()
    pks = _seed()
    with _no_queued_tasks():
        rows = _one_row(pks)
        cases = _Cases(list(CreditRecord.objects.filter(agency__code="shanghai-market")))
        transitions = _transitions(cases)
        concurrent = _concurrent(cases)
        routed, forwarded, parallel_seconds, imported = _parallel_import(cases)
    row_ratios = _ratios(rows, "unaudited")
    transition_ratios = _ratios(transitions, "unaudited")
    concurrent_ratios = _ratios(concurrent, "unaudited")
    transition_ratio = transition_ratios["audited"]
    concurrent_ratio = concurrent_ratios["audited"]
    met = transition_ratio >= TRANSITION_TARGET and concurrent_ratio >= CONCURRENT_TARGET
    result = common.Result(
        key="audit_write",
        title="Cost of auditing a write",
        target=(
            f"transition audited/unaudited >= {TRANSITION_TARGET}; {WRITERS} writers >= "
            f"{CONCURRENT_TARGET}; parallel import without error"
        ),
        met=met,
        headline=(
            f"transition {transition_ratio:.3f}, {WRITERS} writers {concurrent_ratio:.3f} "
            f"({common.median(concurrent['audited']):,.0f} transitions/s); one-row change "
            f"{row_ratios['audit_record']:.3f}"
        ),
        commands=[
            f"{common.PYTHON} -m bench.audit_write",
            SEED_COMMAND + "   # seeds the records (and imports them)",
            "# case transitions: case_transition(transition='forward') of a routed Shanghai "
            "objection by a centre caseworker; unaudited = the same with audit_record a no-op",
            f"# {WRITERS} threads, one connection each, forward on their own cases",
            "# one-row change: select_for_update().get(pk=...), save(update_fields=[...]) "
            "+ audit_record(...) in audited(), or a naive chain, or nothing",
            f"# parallel: import_records {SEED_CSV.name.replace('5k', '1m')} for shanghai-market "
            "in a thread while cases are filed, routed and forwarded",
        ],
        headers=(
            "variant",
            "ops/s (median of rounds)",
            "ops/s range",
            "ms/op",
            "ratio to unaudited (median)",
        ),
        rows=[
            *_rows(transitions, transition_ratios, "case transition"),
            *_rows(concurrent, concurrent_ratios, f"{WRITERS} concurrent writers"),
            *_rows(rows, row_ratios, "one-row change"),
        ],
        notes=[
            f"Case transition: {TRANSITION_ROUNDS} rounds of {TRANSITIONS_PER_ROUND} forwards per "
            "variant, taking turns step by step on cases routed the same way; each round gives "
            "one ratio, the table shows the median. A forward locks the case, stops and starts "
            "its clocks, records its events (written in one statement before the commit) and "
            "queues the agency's notification (not sent here).",
            f"{WRITERS} concurrent writers: {CONCURRENT_ROUNDS} rounds of an audited and an "
            f"unaudited phase, {WRITERS * PER_WRITER} forwards each; the rate is forwards per "
            "second of wall-clock time over all threads.",
            f"One-row change (no target; the figure peers are compared on): {ROUNDS} rounds of "
            f"{PER_ROUND:,} operations per variant after {WARM_UP} warm-up operations; the naive "
            f"chain writes to the scratch table {NAIVE_TABLE}.",
            f"Parallel import: {routed} cases filed and routed and {forwarded} forwarded in "
            f"{parallel_seconds:.0f} s while the import ran ({imported}); no deadlock, no error.",
            "Every operation commits, so each waits for one WAL flush (synchronous_commit=on); "
            "everything runs on Django's own PostgreSQL backend.",
        ],
    )
    common.record(result, seconds=time.perf_counter() - started)
    return result


if __name__ == "__main__":
    run()
