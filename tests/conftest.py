"""Shared fixtures and the rules for tests that need PostgreSQL, Redis or a browser.

Tests marked `postgres`, `redis` or `browser` are skipped with a reason when the service is not
configured; with SCS_REQUIRE_SERVICES=1 (set by .ci/run) a missing service fails the run instead.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path

import psycopg2
import pytest
import time_machine
from django.apps import apps
from django.db import connection
from time_machine import TimeMachineFixture

from audit.models import AuditChainHead
from tests import clock
from tests.factories import AgencyFactory, CatalogueEntryFactory, JurisdictionFactory

# Transactional tests (live server, worker) flush the tables of these apps between tests. The audit
# app is left out on purpose: its tables refuse TRUNCATE and DELETE, so events written by such a
# test stay in the test database (the chain stays valid; assert on events after a known sequence).
FLUSHABLE_APPS = [config.name for config in apps.get_app_configs() if config.label != "audit"]


def chromium_path() -> str | None:
    return os.environ.get("SCS_CHROMIUM") or shutil.which("chromium")


def _missing_service(marker: str) -> str | None:
    if marker == "postgres" and connection.vendor != "postgresql":
        return "needs PostgreSQL: set DATABASE_URL (run by .ci/run)"
    if marker == "redis" and not (os.environ.get("REDIS_URL") and os.environ.get("SCS_CACHE_URL")):
        return "needs Redis: set REDIS_URL and SCS_CACHE_URL (run by .ci/run)"
    if marker == "browser":
        if os.environ.get("SCS_BROWSER_TESTS") != "1":
            return "browser test: set SCS_BROWSER_TESTS=1 (run by .ci/run)"
        if chromium_path() is None:
            return "browser test: Chromium not found (apt-get install chromium)"
    return None


_travel: time_machine.travel | None = None


def pytest_configure(config: pytest.Config) -> None:
    # The whole session, database set-up included, lives at the test date: no test reads the
    # wall clock. A test that needs another moment travels again inside this one.
    global _travel
    _travel = clock.travel()
    _travel.start()


def pytest_unconfigure(config: pytest.Config) -> None:
    if _travel is not None:
        _travel.stop()


def pytest_report_header(config: pytest.Config) -> str:
    return f"frozen clock: {clock.test_start().isoformat()} (SCS_TEST_DATE), ticking"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    required = os.environ.get("SCS_REQUIRE_SERVICES") == "1"
    for item in items:
        for marker in ("postgres", "redis", "browser"):
            if item.get_closest_marker(marker) is None:
                continue
            reason = _missing_service(marker)
            if reason is None:
                continue
            if required:
                raise pytest.UsageError(
                    f"SCS_REQUIRE_SERVICES=1 but {item.nodeid} cannot run: {reason}"
                )
            else:
                item.add_marker(pytest.mark.skip(reason=reason))


# The import files of the record tests (tests/records/test_imports.py `row`) carry decisions of
# 1 June 2026 and publication periods from there; the day they are imported on is fixed with them,
# so that "in the future" and "publication ended" mean the same whatever SCS_TEST_DATE is.
IMPORT_DAY = datetime(2026, 7, 1, 10, tzinfo=clock.SHANGHAI)


@pytest.fixture
def import_day(time_machine: TimeMachineFixture) -> datetime:
    time_machine.move_to(IMPORT_DAY, tick=True)
    return IMPORT_DAY


@pytest.fixture
def vendor() -> str:
    return connection.vendor


@pytest.fixture(autouse=True)
def _fresh_working_calendar() -> None:
    # The calendar is cached for a minute per process; each test's overrides start afresh.
    from objections.services.calendars import working_calendar_reset

    working_calendar_reset()


@pytest.fixture(autouse=True)
def _fresh_figures_cache() -> None:
    # The latest figures are parsed once per process, keyed by the publication's id; a rolled
    # back test's ids come round again on SQLite, so each test starts without them.
    from transparency.selectors import publication_cache_reset

    publication_cache_reset()


@pytest.fixture(autouse=True)
def _empty_shared_cache() -> None:
    # Rate-limit counters (sign-ins, codes, filings) live in the shared cache in windows of the
    # frozen clock, which every run of the suite shares: each test starts with none.
    from django.core.cache import cache

    cache.clear()


@pytest.fixture(autouse=True)
def _fast_password_hashing(settings: pytest.FixtureRequest) -> None:
    # PBKDF2's deliberate slowness only slows the suite down; logins still go through hashing.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]  # type: ignore[attr-defined]


@pytest.fixture(autouse=True)
def _own_checkpoint_file(settings, tmp_path: Path) -> None:
    """Each test's checkpoints are written outside the database to a file of its own: the log is
    verified against that file by default, and a file shared by tests would hold another test's
    (rolled back) log."""
    settings.AUDIT_CHECKPOINT_FILE = str(tmp_path / "checkpoints.jsonl")


@pytest.fixture
def private_folders(settings, tmp_path: Path) -> None:
    """Audit exports and checkpoint lines under the test's own folder, and no checkpoint mail."""
    settings.DATA_DIR = tmp_path / "data"
    settings.AUDIT_CHECKPOINT_FILE = str(tmp_path / "checkpoints.jsonl")
    settings.AUDIT_CHECKPOINT_EMAILS = []


@pytest.fixture
def agency():
    """Shanghai's market regulator, with two national catalogue entries."""
    national = JurisdictionFactory(code="national", name_zh="全国", name_en="National")
    CatalogueEntryFactory(jurisdiction=national)
    CatalogueEntryFactory(
        jurisdiction=national,
        code="abnormal-operation",
        name_zh="经营异常名录信息",
        applies_to_persons=False,
    )
    return AgencyFactory(code="shanghai-market", jurisdiction=JurisdictionFactory())


@contextmanager
def other_connection() -> Iterator[psycopg2.extensions.cursor]:
    """PostgreSQL: a cursor on a second, plain psycopg2 connection in autocommit mode."""
    settings = connection.settings_dict
    other = psycopg2.connect(
        dbname=settings["NAME"],
        user=settings["USER"],
        host=settings["HOST"],
        port=settings["PORT"] or 5432,
    )
    other.autocommit = True
    try:
        with other.cursor() as cursor:
            yield cursor
    finally:
        other.close()


def head_sequence() -> int:
    """The sequence number of the last audit event."""
    return AuditChainHead.objects.get(pk=1).sequence
