"""A real Celery worker on the real Redis broker runs the publication sweep against PostgreSQL."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from datetime import date
from pathlib import Path

import pytest
from django.db import connection

from records.models import CreditRecord
from records.tasks import record_publication_sweep_task
from tests import clock
from tests.conftest import FLUSHABLE_APPS
from tests.factories import CreditRecordFactory

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.redis,
    pytest.mark.django_db(transaction=True, available_apps=FLUSHABLE_APPS),
]
ROOT = Path(__file__).resolve().parents[2]


def worker_database_url() -> str:
    settings = connection.settings_dict
    return (
        f"postgres://{settings['USER']}@{settings['HOST']}:{settings['PORT'] or 5432}"
        f"/{settings['NAME']}"
    )


@pytest.fixture
def worker(tmp_path):
    env = {
        **os.environ,
        **clock.subprocess_env(),
        "DATABASE_URL": worker_database_url(),
        "SCS_DATA_DIR": str(tmp_path),
    }
    log = (tmp_path / "worker.log").open("w")
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tests.clock",
            "celery",
            "-A",
            "scs_cases",
            "worker",
            "--pool=solo",
            "--without-gossip",
            "--without-mingle",
            "--without-heartbeat",
            "--loglevel=INFO",
        ],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    yield process
    process.terminate()
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        process.kill()
    log.close()


def test_worker_runs_the_sweep_queued_on_redis(worker, tmp_path):
    record = CreditRecordFactory(
        publication_start=date(2020, 1, 1), publication_end=date(2021, 1, 1)
    )

    record_publication_sweep_task.delay()

    deadline = time.monotonic() + 60
    status = record.status
    while time.monotonic() < deadline and status == CreditRecord.Status.PUBLISHED:
        time.sleep(0.25)
        status = CreditRecord.objects.get(pk=record.pk).status
    log = (tmp_path / "worker.log").read_text()
    assert status == CreditRecord.Status.PUBLICATION_ENDED, log
    assert "record_publication_sweep_task" in log
