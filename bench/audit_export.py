"""An auditor's export of 1,000,000 audit events, and its offline verification (issue 12).

1. The events are appended through `audit_record` in `audited()` transactions of 1,000, as in
   `bench.audit_verify`.
2. A fresh interpreter (`python -m bench.audit_export --export-as USER_ID`) requests the export
   of every event (`audit_export_request`, a day range around today) and runs it synchronously
   (`audit_export_run`, what the worker's task calls): it signs a checkpoint over the whole log
   (verifying the chain first), builds the Merkle tree, writes the zip and records the result.
   Its own process, so that its peak resident set size (VmHWM) is the export's and not the
   appending's.
3. The standalone verifier checks the bundle in another fresh, isolated interpreter:
   `python -I audit/verifier/verify_bundle.py BUNDLE.zip --key-id ID`, with no environment.

4. The baseline, in the same run: a bare sha256 chain over the same bytes (every line of the
   bundle's events.ndjson, read from the zip, each hashed onto the digest of the line before), in
   the same kind of isolated interpreter. Target (issue 12): the verifier within 2x of it, with
   flat memory. SCS_BENCH_EXPORT_EVENTS sets another number of events; SCS_BENCH_KEEP_BUNDLE=1
   keeps the bundle.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from functools import wraps
from pathlib import Path
from typing import Any, TypeVar
from unittest import mock
from zoneinfo import ZoneInfo

from tqdm import tqdm

from audit.models import AuditChainHead
from bench import common
from bench.audit_verify import ACTION, PER_TRANSACTION, append_via_audit_record

EVENTS = int(os.environ.get("SCS_BENCH_EXPORT_EVENTS") or 1_000_000)
# The baseline: the least work that touches the same bytes, standard library only.
_BARE_CHAIN = """
import hashlib, sys, zipfile
digest = b"0" * 32
with zipfile.ZipFile(sys.argv[1]) as bundle, bundle.open("events.ndjson") as lines:
    for line in lines:
        digest = hashlib.sha256(digest + line).digest()
print(digest.hex())
"""
DATA_DIR = common.WORK_DIR / "export-data"
VERIFIER = Path("audit/verifier/verify_bundle.py")
SHANGHAI = ZoneInfo("Asia/Shanghai")
CHILD_FLAG = "--export-as"

T = TypeVar("T")


def _max_rss_mib(kib: int) -> str:
    return f"{kib / 1024:,.0f}"


def _high_water_kib(pid: int | str = "self") -> int:
    """The peak resident set size (VmHWM) of a live process, in KiB; 0 once it is gone.

    Not ru_maxrss: Linux carries a process's maximum across fork and exec, so a child's would
    start at this (much larger) process's peak.
    """
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return 0
    found = re.search(r"^VmHWM:\s+(\d+) kB", status, re.MULTILINE)
    return int(found.group(1)) if found else 0


def _measured(
    command: list[str], *, cwd: Path, env: dict[str, str]
) -> tuple[int, str, str, float, int]:
    """Run `command`; its exit code, output, error output, seconds and peak RSS (KiB), the
    latter read from /proc every 20 ms while it runs (growth in its last 20 ms is missed)."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        start = time.perf_counter()
        process = subprocess.Popen(command, cwd=cwd, env=env, stdout=out, stderr=err)  # noqa: S603
        peak = 0
        while process.poll() is None:
            peak = max(peak, _high_water_kib(process.pid))
            time.sleep(0.02)
        seconds = time.perf_counter() - start
        out.seek(0)
        err.seek(0)
        return (
            process.returncode,
            out.read().decode(errors="replace"),
            err.read().decode(errors="replace"),
            seconds,
            peak,
        )


# --- the exporting process ----------------------------------------------------------------------


def _timed(spent: dict[str, float], name: str, function: Callable[..., T]) -> Callable[..., T]:
    @wraps(function)
    def wrapper(*args: Any, **kwargs: Any) -> T:
        start = time.perf_counter()
        try:
            return function(*args, **kwargs)
        finally:
            spent[name] = spent.get(name, 0.0) + time.perf_counter() - start

    return wrapper


def _export_as(user_id: int) -> None:
    """In the child: request and run the export as `user_id`; print what it measured as JSON."""
    from accounts.models import User
    from audit import exports, tasks

    baseline = _high_water_kib()
    auditor = User.objects.get(pk=user_id)
    today = datetime.now(SHANGHAI).date()
    filters = {"from": (today - timedelta(days=1)).isoformat(), "to": today.isoformat()}
    spent: dict[str, float] = {}
    with (
        mock.patch.object(tasks.audit_export_task, "delay", return_value=None),
        mock.patch.object(
            exports,
            "audit_checkpoint_create",
            new=_timed(spent, "checkpoint", exports.audit_checkpoint_create),
        ),
        mock.patch.object(
            exports, "bundle_write", new=_timed(spent, "bundle", exports.bundle_write)
        ),
    ):
        start = time.perf_counter()
        export = exports.audit_export_request(actor=auditor, filters=filters)
        requested = time.perf_counter()
        export = exports.audit_export_run(export_id=export.pk)
        finished = time.perf_counter()
    print(
        json.dumps(
            {
                "status": export.status,
                "error": export.error,
                "events": export.progress,
                "path": str(exports.audit_export_path(export)) if export.file_name else "",
                "size": export.size,
                "request": requested - start,
                "run": finished - requested,
                "checkpoint": spent.get("checkpoint", 0.0),
                "bundle": spent.get("bundle", 0.0),
                "baseline_kib": baseline,
                "peak_kib": _high_water_kib(),
            }
        )
    )


# --- the benchmark ------------------------------------------------------------------------------


def run() -> common.Result:
    from django.contrib.auth.models import Group

    from accounts.models import User
    from audit.checkpoints import key_id, public_key

    started = time.perf_counter()
    common.fresh_database()
    common.stage(
        f"appending {EVENTS:,} audit events via audit_record, {PER_TRANSACTION:,} per audited "
        "transaction"
    )
    with tqdm(total=EVENTS, unit="event", desc="append", mininterval=2) as bar:
        append_seconds = append_via_audit_record(bar, EVENTS)
    if AuditChainHead.objects.get(pk=1).sequence != EVENTS:
        raise common.BenchError("the chain head is not at the last appended event")
    auditor = User.objects.create_user(username="bench-auditor")
    auditor.groups.add(Group.objects.get_or_create(name="auditor")[0])
    common.stage("VACUUM ANALYZE audit_auditevent")
    common.execute("VACUUM ANALYZE audit_auditevent")
    common.checkpoint()

    DATA_DIR.mkdir(parents=True, exist_ok=True)
    # The export signs a checkpoint; the file it is published to goes with this fresh database.
    checkpoint_file = DATA_DIR / "audit-checkpoints.jsonl"
    checkpoint_file.unlink(missing_ok=True)
    export_command = [sys.executable, "-m", "bench.audit_export", CHILD_FLAG, str(auditor.pk)]
    common.stage(f"export, in its own process: {' '.join(export_command[1:])}")
    code, out, err, export_seconds, _ = _measured(
        export_command,
        cwd=common.REPO_ROOT,
        env={
            **os.environ,
            "SCS_DATA_DIR": str(DATA_DIR),
            "SCS_AUDIT_CHECKPOINT_FILE": str(checkpoint_file),
        },
    )
    if code != 0 or not out.strip():
        raise common.BenchError(f"the export process exited with {code}: {err.strip()[-2000:]}")
    figures = json.loads(out.strip().splitlines()[-1])
    if figures["status"] != "done":
        raise common.BenchError(f"the export ended {figures['status']}: {figures['error']}")
    bundle = Path(figures["path"])
    export_rss = int(figures["peak_kib"])
    events = int(figures["events"])

    trusted = key_id(public_key())
    verify_command = [sys.executable, "-I", str(VERIFIER), str(bundle), "--key-id", trusted]
    common.stage(f"verify: python -I {VERIFIER} {bundle.name} --key-id {trusted}")
    code, out, err, verify_seconds, verify_rss = _measured(
        verify_command, cwd=common.REPO_ROOT, env={}
    )
    verdict = (out.strip() or err.strip()).splitlines()[-1] if (out or err) else ""
    if code != 0 or not verdict.startswith(f"OK: {events} events verified"):
        raise common.BenchError(f"the verifier did not accept the bundle ({code}): {verdict}")
    common.stage(verdict)
    common.stage("the same with --full (every event parsed, events.csv compared cell by cell)")
    code, out, err, full_seconds, full_rss = _measured(
        [*verify_command, "--full"], cwd=common.REPO_ROOT, env={}
    )
    full_verdict = (out.strip() or err.strip()).splitlines()[-1] if (out or err) else ""
    if code != 0 or not full_verdict.startswith(f"OK: {events} events verified"):
        raise common.BenchError(
            f"the full check did not accept the bundle ({code}): {full_verdict}"
        )
    common.stage("baseline: a bare sha256 chain over the lines of events.ndjson, from the zip")
    code, out, err, bare_seconds, bare_rss = _measured(
        [sys.executable, "-I", "-c", _BARE_CHAIN, str(bundle)], cwd=common.REPO_ROOT, env={}
    )
    if code != 0:
        raise common.BenchError(f"the bare chain failed ({code}): {err.strip()[-2000:]}")
    if not os.environ.get("SCS_BENCH_KEEP_BUNDLE"):
        bundle.unlink()  # about a gigabyte at 1,000,000 events
    else:
        print("kept", bundle)
    factor = verify_seconds / bare_seconds
    full_factor = full_seconds / bare_seconds

    run_seconds = figures["run"]
    written = run_seconds - figures["checkpoint"] - figures["bundle"]
    per_second = common.per_second
    rows = [
        (
            f"append via audit_record ({EVENTS:,} events)",
            f"{append_seconds:.1f}",
            per_second(EVENTS, append_seconds),
            "",
        ),
        ("export: audit_export_request", f"{figures['request']:.2f}", "", ""),
        (
            "export: audit_export_run, of which",
            f"{run_seconds:.1f}",
            per_second(events, run_seconds),
            "",
        ),
        (
            "  checkpoint (verify the chain, Merkle root, sign)",
            f"{figures['checkpoint']:.1f}",
            per_second(EVENTS, figures["checkpoint"]),
            "",
        ),
        (
            "  bundle_write (tree, events.ndjson/csv, proofs, zip)",
            f"{figures['bundle']:.1f}",
            per_second(events, figures["bundle"]),
            "",
        ),
        ("  the rest (count, digest of the zip, finish)", f"{written:.1f}", "", ""),
        (
            "export process, start to exit (interpreter and Django start-up included)",
            f"{export_seconds:.1f}",
            per_second(events, export_seconds),
            _max_rss_mib(export_rss),
        ),
        (
            "bare sha256 chain over events.ndjson's lines (baseline)",
            f"{bare_seconds:.1f}",
            per_second(events, bare_seconds),
            _max_rss_mib(bare_rss),
        ),
        (
            f"python -I {VERIFIER} BUNDLE --key-id ID ({factor:.2f}x the baseline)",
            f"{verify_seconds:.1f}",
            per_second(events, verify_seconds),
            _max_rss_mib(verify_rss),
        ),
        (
            f"the same with --full ({full_factor:.2f}x the baseline)",
            f"{full_seconds:.1f}",
            per_second(events, full_seconds),
            _max_rss_mib(full_rss),
        ),
    ]
    size_mib = figures["size"] / 1024**2
    result = common.Result(
        key="audit_export",
        title=f"Audit export of {EVENTS:,} events and its offline verification",
        target="verifier within 2x a bare sha256 chain over the same bytes, memory flat",
        met=factor <= 2.0,
        headline=(
            f"export {export_seconds:.0f} s ({per_second(events, export_seconds)} events/s, "
            f"peak RSS {_max_rss_mib(export_rss)} MiB); verify {verify_seconds:.0f} s = "
            f"{factor:.2f}x the bare chain (peak RSS {_max_rss_mib(verify_rss)} MiB); with "
            f"--full {full_seconds:.0f} s = {full_factor:.2f}x"
        ),
        commands=[
            f"{common.PYTHON} -m bench.audit_export   # appends the events, then:",
            f"{common.PYTHON} -m bench.audit_export {CHILD_FLAG} AUDITOR_ID   "
            "# audit_export_request + audit_export_run in a fresh process",
            f"{common.PYTHON} -I {VERIFIER} BUNDLE.zip --key-id {trusted} [--full]   # env={{}}",
        ],
        headers=("step", "seconds", "events/s", "peak RSS MiB"),
        rows=rows,
        notes=[
            f"Events: action {ACTION!r}, data {{'record': id, 'status': 'published'}}, no actor; "
            f"{PER_TRANSACTION:,} per transaction. The export selects them all by day "
            f"(filters {{'from': yesterday, 'to': today}}): {events:,} events (the appended ones "
            "and the export's own request event), one run of consecutive sequences.",
            f"The bundle was {size_mib:,.0f} MiB (deflated zip) and was deleted after the run "
            "(SCS_BENCH_KEEP_BUNDLE=1 keeps it).",
            "Peak memory is the peak resident set size (VmHWM in /proc) of each process, "
            "start-up included: the export process reads its own at the end, and had "
            f"{_max_rss_mib(int(figures['baseline_kib']))} MiB after importing Django and the "
            "project, before the export began; the verifier's is polled every 20 ms while it "
            "runs. Neither is ru_maxrss (Linux carries it across fork and exec, so a child's "
            "starts at the parent's peak) nor tracemalloc (which would slow the export and "
            "miss memory held by libpq and zlib).",
            "The export process runs what the worker's task runs (audit_export_run), "
            "synchronously; its queue message is not sent. The step times inside it come from "
            "wrapping audit_checkpoint_create and bundle_write with a timer.",
            "The verifier is the repository's copy of the bundle's verifier, standard library "
            "only, in an isolated interpreter (-I) with an empty environment. By default it "
            "checks the manifest's signature, every member's sha256 and size against it "
            "(events.csv included), the signed checkpoint, and every line of events.ndjson on "
            "its bytes: its shape, its hash, its link to the line before, and the inclusion "
            "proof of the run. The target is set on that. --full also parses every event, "
            "checks it is in the log's canonical form and compares events.csv with "
            "events.ndjson cell by cell: the parsing and the CSV cost far more than the hashing "
            "(reported for information, not held to the target).",
            "VACUUM ANALYZE and a CHECKPOINT run between the appending and the export.",
        ],
    )
    common.record(result, seconds=time.perf_counter() - started)
    return result


def main() -> None:
    if len(sys.argv) == 3 and sys.argv[1] == CHILD_FLAG:
        _export_as(int(sys.argv[2]))
        return
    run()


if __name__ == "__main__":
    main()
