"""Benchmark 3: what an audit event adds to a small row-locking state change.

Each operation is one transaction: `SELECT ... FOR UPDATE` of a credit record by primary key,
then an UPDATE of `under_objection` and `updated_at`. Variants: without audit, with
`audit_record` in the same transaction, and (for context) a naive hash chain that serialises
writers with an advisory lock and reads the last event back before inserting. The variants are
interleaved operation by operation in one process, in rounds, so that whatever else the machine
does hits all of them alike; each round gives one ratio, and the median of the rounds is reported.
"""

from __future__ import annotations

import io
import random
import time
from collections.abc import Callable
from typing import NoReturn

from django.core.management import call_command
from django.db import connection, connections, transaction
from django.utils import timezone
from tqdm import tqdm

from accounts.roles import SYSTEM
from audit.models import GENESIS_HASH
from audit.services import audit_record, canonical_json, chain_hash
from bench import common
from records.models import CreditRecord

SEED_RECORDS = 5_000
SEED_SUBJECTS = 2_000
SEED_CSV = common.WORK_DIR / "records-5k.csv"
ROUNDS = 5
PER_ROUND = 1_000
WARM_UP = 200
TARGET_RATIO = 0.8
ACTION = "record.marked"
NAIVE_TABLE = "bench_naive_auditevent"
# Any constant key: only the naive variant takes this advisory lock.
NAIVE_LOCK_KEY = 5_150_001

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


def _mark(pk: int, audit: Audit | None, using: str = "default") -> None:
    with transaction.atomic(using=using):
        record = CreditRecord.objects.using(using).select_for_update().get(pk=pk)
        record.under_objection = not record.under_objection
        record.save(using=using, update_fields=["under_objection", "updated_at"])
        if audit is not None:
            audit(record)


def _stock_backend() -> None:
    """Register a second alias on the same database, through Django's stock backend."""
    settings = dict(connections.settings["default"])
    settings["ENGINE"] = "django.db.backends.postgresql"
    connections.settings[STOCK_ALIAS] = settings


Variant = Callable[[int], None]
VARIANTS: dict[str, Variant] = {
    "unaudited": lambda pk: _mark(pk, None),
    "audit_record": lambda pk: _mark(pk, _audit_record),
    "naive chain": lambda pk: _mark(pk, _naive_chain),
}
# Context, in a phase of its own: the unaudited change on the project's backend and on Django's
# own PostgreSQL backend, where psycopg2 sends BEGIN as a round trip of its own. On its own,
# because mixing it into the phase above skews it: a second connection taking turns with an
# audited one measured up to 10 % faster or slower depending on what else ran in between.
STOCK = "unaudited, Django's stock backend"
STOCK_ALIAS = "bench_stock_backend"
BACKEND_ROUNDS = 3
BACKENDS: dict[str, Variant] = {
    "unaudited": VARIANTS["unaudited"],
    STOCK: lambda pk: _mark(pk, None, STOCK_ALIAS),
}


def _round(
    variants: dict[str, Variant], pks: list[int], bar: tqdm[NoReturn] | None = None
) -> dict[str, float]:
    """Every variant marks each record in turn; returns the operations per second of each.

    Interleaving operation by operation exposes all variants alike to whatever else the
    machine is doing at that moment. The order is shuffled for each record (with a fixed seed),
    not rotated: in a rotation each variant always follows the same other one, and would always
    meet the row, the WAL and the caches as that one left them.
    """
    names = list(variants)
    spent = dict.fromkeys(names, 0.0)
    order = random.Random(len(pks))  # an order of measurement, not a secret
    for pk in pks:
        for name in order.sample(names, len(names)):
            start = time.perf_counter()
            variants[name](pk)
            spent[name] += time.perf_counter() - start
        if bar is not None:
            bar.update(len(names))
    return {name: len(pks) / seconds for name, seconds in spent.items()}


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


def _rounds(variants: dict[str, Variant], pks: list[int], rounds: int) -> dict[str, list[float]]:
    rates: dict[str, list[float]] = {name: [] for name in variants}
    with tqdm(total=rounds * PER_ROUND * len(variants), unit="op", desc="rounds") as bar:
        for round_number in range(rounds):
            offset = round_number * PER_ROUND
            batch = [pks[(offset + index) % len(pks)] for index in range(PER_ROUND)]
            for name, rate in _round(variants, batch, bar).items():
                rates[name].append(rate)
    return rates


def _ratios(rates: dict[str, list[float]]) -> dict[str, float]:
    """Each variant's median, over the rounds, of its rate over the unaudited rate."""
    base = rates["unaudited"]
    return {
        name: common.median([rate / plain for rate, plain in zip(values, base, strict=True)])
        for name, values in rates.items()
    }


def _rows(
    rates: dict[str, list[float]], ratios: dict[str, float], names: list[str]
) -> list[tuple[str, ...]]:
    return [
        (
            name,
            f"{common.median(rates[name]):,.0f}",
            f"{min(rates[name]):,.0f} – {max(rates[name]):,.0f}",
            f"{1000 / common.median(rates[name]):.2f}",
            f"{ratios[name]:.3f}",
        )
        for name in names
    ]


def run() -> common.Result:
    started = time.perf_counter()
    common.fresh_database()
    pks = _seed()
    _stock_backend()
    names = list(VARIANTS)

    common.stage(f"warm-up: {WARM_UP} operations per variant")
    _round(VARIANTS, pks[:WARM_UP])
    common.checkpoint()
    common.stage(f"{ROUNDS} rounds of {PER_ROUND:,} operations per variant, interleaved")
    rates = _rounds(VARIANTS, pks, ROUNDS)
    ratios = _ratios(rates)
    ratio = ratios["audit_record"]

    common.stage(f"backends: {BACKEND_ROUNDS} rounds, the unaudited change on each backend")
    _round(BACKENDS, pks[:WARM_UP])
    backend_rates = _rounds(BACKENDS, pks, BACKEND_ROUNDS)
    backend_ratios = _ratios(backend_rates)
    connections[STOCK_ALIAS].close()
    rows = [
        *_rows(rates, ratios, names),
        *_rows(backend_rates, backend_ratios, [STOCK]),
    ]
    result = common.Result(
        key="audit_write",
        title="Cost of auditing a write",
        target=f"audited/unaudited >= {TARGET_RATIO}",
        met=ratio >= TARGET_RATIO,
        headline=f"audited/unaudited = {ratio:.3f} (naive chain: {ratios['naive chain']:.3f})",
        commands=[
            f"{common.PYTHON} -m bench.audit_write",
            SEED_COMMAND + "   # seeds the records (and imports them)",
            "# one transaction per operation: CreditRecord.objects.select_for_update()"
            ".get(pk=...), save(update_fields=['under_objection', 'updated_at'])",
            "#   + audit_record(actor=None, action='record.marked', target=record, "
            "data={'under_objection': value})",
            f"#   or naive chain: pg_advisory_xact_lock, SELECT last hash from {NAIVE_TABLE}, "
            "sha256 in Python, INSERT",
        ],
        headers=(
            "variant",
            "ops/s (median of rounds)",
            "ops/s range",
            "ms/op",
            "ratio to unaudited (median)",
        ),
        rows=rows,
        notes=[
            f"{ROUNDS} rounds of {PER_ROUND:,} operations per variant after {WARM_UP} warm-up "
            "operations each, single-threaded; within a round the variants take turns operation "
            "by operation (in an order shuffled for each record) on the same record; each round "
            "gives one ratio to the unaudited variant, and the table shows their median.",
            "Every operation commits, so each waits for one WAL flush "
            "(synchronous_commit=on): that flush is shared by the audited and unaudited "
            "variants alike.",
            f"The naive chain writes to the scratch table {NAIVE_TABLE} "
            "(a copy of audit_auditevent's columns and indexes).",
            "The project runs on its own PostgreSQL backend (scs_cases.db.postgresql): a "
            "transaction's BEGIN travels with its first statement, and audit_record's append "
            "with the next statement or the COMMIT. So the unaudited change takes 3 round trips "
            "(BEGIN + SELECT ... FOR UPDATE, UPDATE, COMMIT) and the audited one as many, plus "
            "the append's work in the server; the naive chain adds 3 round trips of its own.",
            f"'{STOCK}' (context, not part of the target) comes from a phase of its own: "
            f"{BACKEND_ROUNDS} rounds in which the unaudited change on the project's backend and "
            "on Django's own PostgreSQL backend (psycopg2 sends BEGIN on its own: 4 round trips) "
            "take turns; its ratio is to the project's backend in that phase.",
        ],
    )
    common.record(result, seconds=time.perf_counter() - started)
    return result


if __name__ == "__main__":
    run()
