"""Benchmark 2: audit_chain_verify over 1,000,000 events against a bare sha256 chain.

The baseline streams the same rows with the same keyset pagination and chains sha256 over the
same bytes, nothing else; the verifier also compares each stored link and hash and the chain head.

The events are appended first. The first part goes through `audit_record` (the one writer, and
its throughput is reported); the rest runs the very statement `audit_record` sends, prepared once
and sent in pages of 1,000, because 1,000,000 `audit_record` calls alone would take most of the
15 minutes that `make bench` may take (`--all-via-audit-record` appends all of them that way).
"""

from __future__ import annotations

import argparse
import hashlib
import io
import re
import time
from typing import NoReturn

from django.core.management import call_command
from django.db import connection, transaction
from django.utils import timezone
from psycopg2.extras import execute_batch
from tqdm import tqdm

from accounts.roles import SYSTEM
from audit.models import GENESIS_HASH, AuditChainHead
from audit.services import _APPEND_POSTGRESQL, audit_record, canonical_json
from audit.verify import _CHUNK, audit_chain_verify
from bench import common
from scs_cases.db.postgresql.base import MAX_QUEUED

EVENTS = 1_000_000
VIA_AUDIT_RECORD = 200_000
# audit_record advances the single chain-head row: every call inside one transaction leaves one
# more row version that cannot be pruned before the commit, so the cost of a call grows with the
# transaction's length (measured: 1,000 per transaction is about 15% faster than 10,000).
PER_TRANSACTION = 1_000
TARGET_FACTOR = 2.0
REPEATS = 3
ACTION = "record.published"
TARGET_TYPE = "records.creditrecord"

_BARE_SELECT = (
    "SELECT sequence, previous_hash, hash, canonical FROM audit_auditevent "
    "WHERE sequence > %s ORDER BY sequence LIMIT %s"
)
# The parameters of audit.services._APPEND_POSTGRESQL, in order: canonical, recorded_at, actor_id,
# actor_role, action, target_type, target_id, case_reference, request_id.
_PREPARED_TYPES = ("text", "timestamptz", "bigint", "text", "text", "text", "text", "text", "text")
VERIFY_COMMAND = f"{common.PYTHON} manage.py audit_verify --no-progress"


def _append_via_audit_record(first: int, last: int, bar: tqdm[NoReturn]) -> float:
    with common.stopwatch() as elapsed:
        for start in range(first, last + 1, PER_TRANSACTION):
            with transaction.atomic():
                for record in range(start, min(start + PER_TRANSACTION, last + 1)):
                    audit_record(
                        actor=None,
                        action=ACTION,
                        target_type=TARGET_TYPE,
                        target_id=record,
                        data={"record": record, "status": "published"},
                    )
            bar.update(min(PER_TRANSACTION, last + 1 - start))
    return elapsed[0]


def _append_prepared(first: int, last: int, bar: tqdm[NoReturn]) -> float:
    """audit_record's own statement (head advance and insert, hash computed in SQL), prepared.

    Each event's canonical JSON is built by the project's canonical_json with the fields that
    audit_record puts in it. What is saved: Django's per-call work, planning the statement on
    every call, and the round trips of the 100-statement batches (a transaction's events go in one).
    """
    if _APPEND_POSTGRESQL.count("%s") != len(_PREPARED_TYPES):
        raise common.BenchError("audit_record's statement changed: update bench/audit_verify.py")
    numbered = iter(range(1, len(_PREPARED_TYPES) + 1))
    statement = re.sub("%s", lambda _: f"${next(numbered)}", _APPEND_POSTGRESQL)
    common.execute(f"PREPARE bench_audit_append ({', '.join(_PREPARED_TYPES)}) AS {statement}")
    with common.stopwatch() as elapsed:
        for start in range(first, last + 1, PER_TRANSACTION):
            recorded_at = timezone.now()
            params = []
            for record in range(start, min(start + PER_TRANSACTION, last + 1)):
                canonical = canonical_json(
                    {
                        "action": ACTION,
                        "actor": None,
                        "case": "",
                        "data": {"record": record, "status": "published"},
                        "recorded_at": recorded_at.isoformat(),
                        "request": "",
                        "role": SYSTEM,
                        "target": [TARGET_TYPE, str(record)],
                    }
                )
                params.append(
                    (canonical, recorded_at, None, SYSTEM, ACTION, TARGET_TYPE, str(record), "", "")
                )
            with transaction.atomic(), connection.cursor() as cursor:
                execute_batch(
                    cursor.cursor,
                    "EXECUTE bench_audit_append (" + ", ".join(["%s"] * len(_PREPARED_TYPES)) + ")",
                    params,
                    page_size=PER_TRANSACTION,
                )
            bar.update(len(params))
    common.execute("DEALLOCATE bench_audit_append")
    return elapsed[0]


def _bare_chain() -> tuple[float, str, int]:
    sha256 = hashlib.sha256
    digest = GENESIS_HASH
    count = 0
    after = 0
    with common.stopwatch() as elapsed:
        while True:
            with connection.cursor() as cursor:
                cursor.execute(_BARE_SELECT, [after, _CHUNK])
                rows = cursor.fetchall()
            if not rows:
                break
            for sequence, _previous, _stored, canonical in rows:
                digest = sha256(f"{digest}\n{sequence}\n{canonical}".encode()).hexdigest()
            count += len(rows)
            after = rows[-1][0]
    return elapsed[0], digest, count


def run(*, all_via_audit_record: bool = False) -> common.Result:
    started = time.perf_counter()
    common.fresh_database()

    via_audit_record = EVENTS if all_via_audit_record else VIA_AUDIT_RECORD
    common.stage(
        f"appending {EVENTS:,} audit events: {via_audit_record:,} via audit_record, "
        f"{EVENTS - via_audit_record:,} via its prepared statement; "
        f"{PER_TRANSACTION:,} per transaction"
    )
    with tqdm(total=EVENTS, unit="event", desc="append", mininterval=2) as bar:
        record_seconds = _append_via_audit_record(1, via_audit_record, bar)
        prepared_seconds = (
            _append_prepared(via_audit_record + 1, EVENTS, bar) if via_audit_record < EVENTS else 0
        )
    head_sequence, head_hash = AuditChainHead.objects.values_list("sequence", "hash").get(pk=1)
    if head_sequence != EVENTS:
        raise common.BenchError(f"the chain head is at {head_sequence}, expected {EVENTS}")

    # Autovacuum would otherwise start on the freshly written table in the middle of a timed
    # scan; vacuuming now also sets the hint bits, which the first reader would pay for.
    common.stage("VACUUM ANALYZE audit_auditevent")
    common.execute("VACUUM ANALYZE audit_auditevent")
    common.checkpoint()

    # Each scan takes a few seconds, so one pass is at the mercy of a moment's load: the three
    # take turns, REPEATS times, and the median of each is compared.
    timings: dict[str, list[float]] = {"bare": [], "verify": [], "command": []}
    for repeat in range(1, REPEATS + 1):
        common.stage(f"scan {repeat}/{REPEATS}: bare sha256 chain")
        bare_seconds, bare_digest, bare_count = _bare_chain()
        if (bare_count, bare_digest) != (EVENTS, head_hash):
            raise common.BenchError("the bare chain does not end at the chain head's hash")
        timings["bare"].append(bare_seconds)

        common.stage(f"scan {repeat}/{REPEATS}: audit_chain_verify()")
        with common.stopwatch() as elapsed:
            verified = audit_chain_verify()
        if not verified.intact or verified.events_checked != EVENTS:
            raise common.BenchError(f"audit_chain_verify did not pass: {verified}")
        timings["verify"].append(elapsed[0])

        common.stage(f"scan {repeat}/{REPEATS}: {VERIFY_COMMAND}")
        output = io.StringIO()
        with common.stopwatch() as elapsed:
            call_command("audit_verify", no_progress=True, stdout=output)
        timings["command"].append(elapsed[0])
    common.stage(output.getvalue().strip())

    bare_seconds, verify_seconds, command_seconds = (
        common.median(timings[name]) for name in ("bare", "verify", "command")
    )
    factor = verify_seconds / bare_seconds
    per_second = common.per_second
    rows = [
        (
            f"append via audit_record ({via_audit_record:,} events)",
            f"{record_seconds:.1f}",
            per_second(via_audit_record, record_seconds),
            "",
        )
    ]
    if prepared_seconds:
        rows.append(
            (
                f"append via the same statement, prepared ({EVENTS - via_audit_record:,} events)",
                f"{prepared_seconds:.1f}",
                per_second(EVENTS - via_audit_record, prepared_seconds),
                "",
            )
        )
    rows += [
        (
            "bare sha256 chain (baseline)",
            f"{bare_seconds:.1f}",
            per_second(EVENTS, bare_seconds),
            "1.00",
        ),
        (
            "audit_chain_verify()",
            f"{verify_seconds:.1f}",
            per_second(EVENTS, verify_seconds),
            f"{factor:.2f}",
        ),
        (
            "manage.py audit_verify --no-progress",
            f"{command_seconds:.1f}",
            per_second(EVENTS, command_seconds),
            f"{command_seconds / bare_seconds:.2f}",
        ),
    ]
    result = common.Result(
        key="audit_verify",
        title="Audit chain verification, 1,000,000 events",
        target=f"verify within {TARGET_FACTOR:.0f}x the bare chain",
        met=factor <= TARGET_FACTOR,
        headline=f"verify/bare = {factor:.2f}x",
        commands=[
            f"{common.PYTHON} -m bench.audit_verify"
            + (" --all-via-audit-record" if all_via_audit_record else "")
            + "   # appends the events, then:",
            f"# bare chain: {_BARE_SELECT} (keyset, {_CHUNK:,} rows), sha256 chained in Python",
            "# audit.verify.audit_chain_verify() in-process, then:",
            VERIFY_COMMAND,
        ],
        headers=("step", "seconds", "events/s", "time vs bare"),
        rows=rows,
        notes=[
            f"Events: action {ACTION!r}, data {{'record': id, 'status': 'published'}}, no actor; "
            f"{PER_TRANSACTION:,} per transaction.",
            "audit_record's appends travel in front of the transaction's next statement or its "
            "COMMIT (the project's PostgreSQL backend), at most "
            f"{MAX_QUEUED} to a query string. The prepared-statement row runs audit_record's "
            "own SQL without Django's per-call work and per-call planning, the whole "
            "transaction's events in one batch; it appends the events after the "
            f"first {via_audit_record:,} because 1,000,000 audit_record calls alone would take "
            "most of the 15 minutes `make bench` may take."
            if prepared_seconds
            else "Every event was appended through audit_record.",
            f"Scans: median of {REPEATS} passes, the three scans taking turns; VACUUM ANALYZE "
            "and a CHECKPOINT run before them, so the table is in the OS page cache for all.",
        ],
    )
    common.record(result, seconds=time.perf_counter() - started)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.audit_verify", description=__doc__)
    parser.add_argument(
        "--all-via-audit-record",
        action="store_true",
        help=f"append all {EVENTS:,} events through audit_record (slow: several minutes more)",
    )
    arguments = parser.parse_args()
    run(all_via_audit_record=arguments.all_via_audit_record)


if __name__ == "__main__":
    main()
