"""Shared plumbing of the benchmarks: a fresh PostgreSQL database, machine facts, results.md.

Every benchmark runs against a database created for it (`scs_bench` unless DATABASE_URL names
another one), so that no figure depends on what an earlier run or benchmark left behind.
"""

from __future__ import annotations

import os
import platform
import re
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import dj_database_url
import psycopg2
from psycopg2 import sql

REPO_ROOT = Path(__file__).resolve().parent.parent
BENCH_DIR = REPO_ROOT / "bench"
WORK_DIR = BENCH_DIR / "work"
RESULTS_PATH = BENCH_DIR / "results.md"
DEFAULT_DATABASE_URL = "postgres://postgres@127.0.0.1:5432/scs_bench"
PYTHON = ".venv/bin/python"

_HEADER = """# Benchmarks

Produced by `make bench` (`.venv/bin/python -m bench`); each benchmark can also be run alone
(`.venv/bin/python -m bench.import_records`, `.audit_verify`, `.audit_write`) and then replaces
only its own section below.

**How to read this.** Each benchmark compares a project code path with a baseline that does the
least possible work on the same data and the same PostgreSQL server: raw `COPY` for the import,
a bare sha256 loop for audit verification, and the same row-locking update without an audit event
for the audit write. The ratio (project speed / baseline speed, 1.0 = as fast as the baseline) is
the figure to watch: it is much less sensitive to the machine than the absolute rows/s, and it is
what the targets are set on. Each benchmark runs in a freshly created database (dropped and
migrated at its start) with `DEBUG=0`, so Django keeps no query log; PostgreSQL keeps its stock
settings (`synchronous_commit=on`, so every commit waits for a WAL flush). Absolute figures are
only comparable between runs on the same machine, listed in each section.
"""
_SUMMARY_KEY = "summary"
_ORDER = (_SUMMARY_KEY, "import_records", "audit_verify", "audit_write")
_SECTION = re.compile(
    r"<!-- section:(?P<key>\w+) -->\n(?P<body>.*?)\n<!-- /section:(?P=key) -->", re.DOTALL
)


class BenchError(SystemExit):
    """A precondition failed (PostgreSQL unreachable, wrong database...): exit with the reason."""

    def __init__(self, message: str) -> None:
        super().__init__(f"bench: {message}")


@dataclass
class Result:
    """What one benchmark measured, as a results.md section and a line of the summary."""

    key: str
    title: str
    target: str
    met: bool
    headline: str
    commands: list[str]
    headers: tuple[str, ...]
    rows: list[tuple[str, ...]]
    notes: list[str] = field(default_factory=list)
    machine: dict[str, str] = field(default_factory=dict)
    seconds: float = 0.0


_started = time.perf_counter()


def stage(message: str) -> None:
    """A progress line with the time since the process started, so a long step shows it moves."""
    print(f"[{time.perf_counter() - _started:7.1f}s] {message}", flush=True)


@contextmanager
def stopwatch() -> Iterator[list[float]]:
    """Yields a one-element list that holds the elapsed wall-clock seconds once the block ends."""
    elapsed = [0.0]
    start = time.perf_counter()
    try:
        yield elapsed
    finally:
        elapsed[0] = time.perf_counter() - start


def database_url() -> str:
    url = os.environ.get("DATABASE_URL") or DEFAULT_DATABASE_URL
    os.environ["DATABASE_URL"] = url
    return url


def _database_settings() -> dict[str, Any]:
    url = database_url()
    config: dict[str, Any] = dict(dj_database_url.parse(url))
    if config["ENGINE"] != "django.db.backends.postgresql":
        raise BenchError(f"the benchmarks need PostgreSQL, but DATABASE_URL is {url!r}")
    # The database is dropped at the start of every benchmark: refuse anything that does not
    # look like a scratch database, so a DATABASE_URL left pointing at real data is never wiped.
    if "bench" not in config["NAME"]:
        raise BenchError(
            f"refusing to drop database {config['NAME']!r}: the benchmark database's name must "
            "contain 'bench' (default: postgres://postgres@127.0.0.1:5432/scs_bench)"
        )
    return config


def _server_connection(config: dict[str, Any]) -> Any:
    try:
        return psycopg2.connect(
            dbname="postgres",
            user=config["USER"] or None,
            password=config["PASSWORD"] or None,
            host=config["HOST"] or None,
            port=config["PORT"] or None,
            connect_timeout=5,
        )
    except psycopg2.OperationalError as error:
        where = f"{config['HOST'] or 'local socket'}:{config['PORT'] or 5432}"
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise BenchError(
            f"PostgreSQL is not reachable at {where} as {config['USER'] or 'default user'} "
            f"({reason}). Start PostgreSQL or set DATABASE_URL, e.g. {DEFAULT_DATABASE_URL}"
        ) from error


def fresh_database() -> None:
    """Drop and create the benchmark database, set Django up against it and migrate it."""
    config = _database_settings()
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "scs_cases.settings")
    # DEBUG=1 (the development default) makes Django keep every executed statement in memory;
    # a benchmark measures the production code path.
    os.environ["DEBUG"] = "0"
    if str(REPO_ROOT) not in sys.path:
        sys.path.insert(0, str(REPO_ROOT))

    import django
    from django.core.management import call_command
    from django.db import connections

    django.setup()
    # A previous benchmark of the same process may still hold a connection to the old database.
    connections.close_all()
    stage(f"fresh database {config['NAME']!r} (drop, create, migrate)")
    server = _server_connection(config)
    server.autocommit = True
    try:
        with server.cursor() as cursor:
            name = sql.Identifier(config["NAME"])
            cursor.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(name))
            cursor.execute(sql.SQL("CREATE DATABASE {}").format(name))
    finally:
        server.close()
    call_command("migrate", interactive=False, verbosity=0)
    WORK_DIR.mkdir(parents=True, exist_ok=True)


def checkpoint() -> None:
    """Flush dirty buffers now, so that one step's writes are not paid on the next step's clock."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("CHECKPOINT")


def _read(path: str) -> str:
    try:
        return Path(path).read_text()
    except OSError:
        return ""


def _git(*args: str) -> str:
    try:
        done = subprocess.run(  # noqa: S603 (fixed arguments, read-only git commands)
            ["git", *args],  # noqa: S607
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            check=True,
        )
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return done.stdout.strip()


def machine_info() -> dict[str, str]:
    import django
    from django.db import connection

    cpu = re.search(r"^model name\s*:\s*(.+)$", _read("/proc/cpuinfo"), re.MULTILINE)
    memory = re.search(r"^MemTotal:\s*(\d+) kB", _read("/proc/meminfo"), re.MULTILINE)
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT current_setting('server_version'), current_setting('shared_buffers'), "
            "current_setting('synchronous_commit'), current_setting('max_wal_size')"
        )
        version, shared_buffers, synchronous_commit, max_wal_size = cursor.fetchone()
    dirty = _git("status", "--porcelain", "--untracked-files=no")
    return {
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "cpus (nproc)": str(len(os.sched_getaffinity(0))),
        "cpu model": cpu.group(1).strip() if cpu else platform.processor() or "unknown",
        "memory": f"{int(memory.group(1)) / 1024 / 1024:.1f} GiB" if memory else "unknown",
        "os": platform.platform(),
        "postgresql": (
            f"{version} (shared_buffers={shared_buffers}, "
            f"synchronous_commit={synchronous_commit}, max_wal_size={max_wal_size})"
        ),
        "python": platform.python_version(),
        "django": django.get_version(),
        "commit": _git("rev-parse", "--short", "HEAD") + (" (+ uncommitted changes)" if dirty else ""),
    }


def table(headers: tuple[str, ...], rows: list[tuple[str, ...]]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def plain_table(headers: tuple[str, ...], rows: list[tuple[str, ...]]) -> str:
    widths = [max(len(str(cell)) for cell in column) for column in zip(headers, *rows, strict=True)]
    lines = ["  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True))
             for row in [headers, *rows]]
    lines.insert(1, "  ".join("-" * width for width in widths))
    return "\n".join(lines)


def _section(result: Result) -> str:
    verdict = "**met**" if result.met else "**NOT met**"
    parts = [
        f"## {result.title}",
        "",
        f"Target: {result.target} — {verdict} ({result.headline}). "
        f"Benchmark wall-clock time: {result.seconds:.0f} s.",
        "",
        "Commands:",
        "",
        "```sh",
        *result.commands,
        "```",
        "",
        table(result.headers, result.rows),
        "",
    ]
    parts += [f"- {note}" for note in result.notes]
    if result.notes:
        parts.append("")
    parts += [
        "Machine: " + "; ".join(f"{name}: {value}" for name, value in result.machine.items()),
    ]
    return "\n".join(parts)


def _write_section(key: str, body: str) -> None:
    """Replace the section `key` of results.md (or add it), keeping every other section."""
    text = RESULTS_PATH.read_text() if RESULTS_PATH.exists() else ""
    sections = {found["key"]: found["body"] for found in _SECTION.finditer(text)}
    sections[key] = body.rstrip()
    ordered = sorted(
        sections,
        key=lambda name: _ORDER.index(name) if name in _ORDER else len(_ORDER),
    )
    blocks = [f"<!-- section:{name} -->\n{sections[name]}\n<!-- /section:{name} -->" for name in ordered]
    # The header is rewritten each time so that a change to its wording reaches the file.
    RESULTS_PATH.write_text(_HEADER + "\n" + "\n\n".join(blocks) + "\n")


def record(result: Result, *, seconds: float) -> None:
    """Store the result in results.md and print it."""
    result.seconds = seconds
    result.machine = machine_info()
    _write_section(result.key, _section(result))
    verdict = "met" if result.met else "NOT met"
    print()
    print(f"== {result.title}: {result.headline} (target {result.target}: {verdict})")
    print(plain_table(result.headers, result.rows))
    for note in result.notes:
        print(f"  * {note}")
    print(flush=True)


def summary(results: list[Result], *, seconds: float) -> None:
    """The full run's summary table, printed and stored at the top of results.md."""
    headers = ("benchmark", "key figure", "target", "met", "time")
    rows = [
        (r.title, r.headline, r.target, "yes" if r.met else "NO", f"{r.seconds:.0f} s")
        for r in results
    ]
    body = "\n".join(
        [
            "## Summary of the last full run",
            "",
            f"`make bench` on {results[0].machine.get('date', '?')}: total wall-clock time "
            f"{seconds:.0f} s ({seconds / 60:.1f} min).",
            "",
            table(headers, rows),
        ]
    )
    _write_section(_SUMMARY_KEY, body)
    print(f"== summary (total {seconds:.0f} s = {seconds / 60:.1f} min)")
    print(plain_table(headers, rows), flush=True)


def median(values: list[float]) -> float:
    return statistics.median(values)


def rate(count: int, seconds: float) -> str:
    return f"{count / seconds:,.0f}" if seconds > 0 else "-"
