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
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import dj_database_url
import django
import psycopg2
from django.core.management import call_command
from django.db import connection, connections
from psycopg2 import sql

REPO_ROOT = Path(__file__).resolve().parent.parent
WORK_DIR = REPO_ROOT / "bench" / "work"
RESULTS_PATH = REPO_ROOT / "bench" / "results.md"
DEFAULT_DATABASE_URL = "postgres://postgres@127.0.0.1:5432/scs_bench"
PYTHON = ".venv/bin/python"

_HEADER = """# Benchmarks

Produced by `make bench` (`.venv/bin/python -m bench`, from the repository root). Each benchmark
can also run alone (`.venv/bin/python -m bench.import_records`, `bench.audit_verify`,
`bench.audit_write`, `bench.case_routing`, `bench.transparency`, `bench.audit_export`,
`bench.read_logging`, `bench.dashboard_queue`) and then replaces only its own
section below (notes on a run are kept in the `notes` section). They need PostgreSQL:
DATABASE_URL (default `postgres://postgres@127.0.0.1:5432/scs_bench`) names a scratch database
that every benchmark drops and re-creates, so its name must contain `bench`.

**How to read this.** Each benchmark sets a project code path against a baseline that does the
least possible work on the same data and the same PostgreSQL server: a raw `COPY` of the file for
the import, a bare sha256 loop over the same rows for audit verification, and the same
row-locking update without an audit event for the audit write. The targets are set on the ratio
of the two, which depends far less on the machine than rows/s or events/s: for the import and the
audited write it is project speed / baseline speed (1.0 = as fast as the baseline, higher is
better), for verification it is project time / baseline time (1.0 = as fast, lower is better).
Absolute rates are only comparable between runs on the same machine; each section lists it, with
the load average at the end: other work on the machine slows the runs and moves even the ratios
(compare runs by their load averages). Every benchmark starts from a freshly migrated database
and runs with `DEBUG=0` (no query log); PostgreSQL keeps the settings listed
(`synchronous_commit=on`: each commit waits for its WAL flush).
"""
_SUMMARY_KEY = "summary"
_ORDER = (
    _SUMMARY_KEY,
    "import_records",
    "audit_verify",
    "audit_write",
    "case_routing",
    "transparency",
    "audit_export",
    "read_logging",
    "dashboard_queue",
    "notes",
)
_SECTION = re.compile(
    r"<!-- section:(?P<key>\w+) -->\n(?P<body>.*?)\n<!-- /section:(?P=key) -->", re.DOTALL
)


class BenchError(SystemExit):
    """A precondition or a check failed: exit non-zero with the reason."""

    def __init__(self, message: str) -> None:
        super().__init__(f"bench: {message}")


@dataclass
class Result:
    """What one benchmark measured: a section of results.md and a line of the summary."""

    key: str
    title: str
    target: str
    met: bool
    headline: str
    commands: list[str]
    headers: tuple[str, ...]
    rows: Sequence[tuple[str, ...]]
    notes: list[str] = field(default_factory=list)
    machine: dict[str, str] = field(default_factory=dict)
    seconds: float = 0.0


def _database_config() -> dict[str, Any]:
    url = os.environ.get("DATABASE_URL") or DEFAULT_DATABASE_URL
    config: dict[str, Any] = dict(dj_database_url.parse(url))
    if config["ENGINE"] != "django.db.backends.postgresql":
        raise BenchError(f"the benchmarks need PostgreSQL, but DATABASE_URL is {url!r}")
    # Every benchmark drops this database: refuse a name that does not look like a scratch
    # database, so that a DATABASE_URL left pointing at real data is never wiped.
    if "bench" not in config["NAME"]:
        raise BenchError(
            f"refusing to drop database {config['NAME']!r}: the benchmark database's name must "
            f"contain 'bench' (default: {DEFAULT_DATABASE_URL})"
        )
    return config


def configure_django() -> None:
    """Point the settings at the benchmark database and set Django up (nothing connects yet)."""
    _database_config()
    os.environ["DATABASE_URL"] = os.environ.get("DATABASE_URL") or DEFAULT_DATABASE_URL
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "scs_cases.settings")
    # DEBUG=1, the development default, makes Django keep every statement it runs in memory;
    # the benchmarks measure the production code path.
    os.environ["DEBUG"] = "0"
    django.setup()


_started = time.perf_counter()


def stage(message: str) -> None:
    """A progress line with the time since start, so that a long step visibly moves on."""
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
        where = f"{config['HOST'] or 'the local socket'}:{config['PORT'] or 5432}"
        reason = (str(error).strip() or type(error).__name__).splitlines()[0]
        raise BenchError(
            f"PostgreSQL is not reachable at {where} as user {config['USER'] or '(default)'}: "
            f"{reason}. Start PostgreSQL, or set DATABASE_URL (e.g. {DEFAULT_DATABASE_URL})."
        ) from error


def fresh_database() -> None:
    """Drop and create the benchmark database, then migrate it."""
    config = _database_config()
    stage(f"fresh database {config['NAME']!r}: drop, create, migrate")
    # An earlier benchmark of the same process may still hold a connection to the old database.
    connections.close_all()
    server = _server_connection(config)
    server.autocommit = True
    try:
        with server.cursor() as cursor:
            name = sql.Identifier(config["NAME"])
            # No WITH (FORCE): a session on the database is most likely another benchmark run,
            # whose figures dropping the database under it would ruin.
            try:
                cursor.execute(sql.SQL("DROP DATABASE IF EXISTS {}").format(name))
            except psycopg2.errors.ObjectInUse as error:
                detail = " ".join(str(error).split()).rstrip(".")
                raise BenchError(
                    f"{detail}. Is another benchmark running? Wait for it, or give this run a "
                    "database of its own: DATABASE_URL=postgres://USER@HOST:PORT/NAME, with "
                    "'bench' in NAME."
                ) from error
            cursor.execute(sql.SQL("CREATE DATABASE {}").format(name))
    finally:
        server.close()
    call_command("migrate", interactive=False, verbosity=0)
    WORK_DIR.mkdir(parents=True, exist_ok=True)


def execute(statement: str) -> None:
    with connection.cursor() as cursor:
        cursor.execute(statement)


def checkpoint() -> None:
    """Flush dirty buffers now, so that one step's writes are not paid on the next step's clock."""
    execute("CHECKPOINT")


def _read(path: str) -> str:
    try:
        return Path(path).read_text()
    except OSError:
        return ""


def _git(*args: str) -> str:
    try:
        done = subprocess.run(  # noqa: S603 (fixed, read-only git commands)
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
        "nproc": str(len(os.sched_getaffinity(0))),
        "cpu": cpu.group(1).strip() if cpu else platform.processor() or "unknown",
        "memory": f"{int(memory.group(1)) / 1024**2:.1f} GiB" if memory else "unknown",
        "load average at the end (1/5/15 min)": "/".join(f"{v:.1f}" for v in os.getloadavg()),
        "os": platform.platform(),
        "postgresql": (
            f"{version} (shared_buffers={shared_buffers}, "
            f"synchronous_commit={synchronous_commit}, max_wal_size={max_wal_size})"
        ),
        "python": platform.python_version(),
        "django": django.get_version(),
        "database": f"{connection.settings_dict['NAME']} on {connection.settings_dict['HOST']}",
        "commit": _git("rev-parse", "--short", "HEAD")
        + (" with uncommitted changes" if dirty else ""),
    }


def _markdown_table(headers: tuple[str, ...], rows: Sequence[tuple[str, ...]]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def _text_table(headers: tuple[str, ...], rows: Sequence[tuple[str, ...]]) -> str:
    widths = [max(len(cell) for cell in column) for column in zip(headers, *rows, strict=True)]
    lines = [
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        for row in [headers, *rows]
    ]
    lines.insert(1, "  ".join("-" * width for width in widths))
    return "\n".join(lines)


def _section(result: Result) -> str:
    verdict = "**met**" if result.met else "**not met**"
    parts = [
        f"## {result.title}",
        "",
        f"Target: {result.target}: {verdict} ({result.headline}). "
        f"Wall-clock time of the benchmark: {result.seconds:.0f} s.",
        "",
        "```sh",
        *result.commands,
        "```",
        "",
        _markdown_table(result.headers, result.rows),
        "",
        *(f"- {note}" for note in result.notes),
        "",
        "Machine and software:",
        "",
        *(f"- {name}: {value}" for name, value in result.machine.items()),
    ]
    return "\n".join(parts)


def _write_section(key: str, body: str) -> None:
    """Replace the section `key` of results.md (or add it), keeping every other section."""
    text = RESULTS_PATH.read_text() if RESULTS_PATH.exists() else ""
    sections = {found["key"]: found["body"] for found in _SECTION.finditer(text)}
    sections[key] = body.rstrip()
    ordered = sorted(sections, key=lambda name: _ORDER.index(name) if name in _ORDER else 99)
    blocks = [
        f"<!-- section:{name} -->\n{sections[name]}\n<!-- /section:{name} -->" for name in ordered
    ]
    # The header is rewritten every time, so that a change to its wording reaches the file.
    RESULTS_PATH.write_text(_HEADER + "\n" + "\n\n".join(blocks) + "\n")


def record(result: Result, *, seconds: float) -> None:
    """Store the result as its section of results.md and print it."""
    result.seconds = seconds
    result.machine = machine_info()
    _write_section(result.key, _section(result))
    verdict = "met" if result.met else "NOT met"
    print(f"\n== {result.title}: {result.headline}; target {result.target}: {verdict}")
    print(_text_table(result.headers, result.rows))
    for note in result.notes:
        print(f"  * {note}")
    print(flush=True)


def summary(results: list[Result], *, seconds: float) -> None:
    """The full run's summary: printed, and stored as the first section of results.md."""
    headers = ("benchmark", "result", "target", "met", "time")
    rows = [
        (r.title, r.headline, r.target, "yes" if r.met else "no", f"{r.seconds:.0f} s")
        for r in results
    ]
    body = "\n".join(
        [
            "## Summary of the last full run",
            "",
            f"`.venv/bin/python -m bench` (what `make bench` runs) finished on "
            f"{results[-1].machine['date']}; total wall-clock time "
            f"{seconds:.0f} s ({seconds / 60:.1f} min).",
            "",
            _markdown_table(headers, rows),
        ]
    )
    _write_section(_SUMMARY_KEY, body)
    print(f"== summary: all benchmarks in {seconds:.0f} s ({seconds / 60:.1f} min)")
    print(_text_table(headers, rows), flush=True)


def median(values: Sequence[float]) -> float:
    return statistics.median(values)


def per_second(count: int, seconds: float) -> str:
    return f"{count / seconds:,.0f}"
