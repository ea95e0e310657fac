"""A real Celery worker on Redis runs a task queued by the application."""

from __future__ import annotations

from datetime import date

import pytest

from records.models import CreditRecord
from records.tasks import record_publication_sweep_task
from tests.conftest import FLUSHABLE_APPS
from tests.factories import CreditRecordFactory
from tests.integration.conftest import wait_for

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.redis,
    pytest.mark.django_db(transaction=True, available_apps=FLUSHABLE_APPS),
]


def test_worker_runs_the_sweep_queued_on_redis(celery_workers, empty_queue):
    record = CreditRecordFactory(
        publication_start=date(2020, 1, 1), publication_end=date(2021, 1, 1)
    )
    worker = celery_workers()

    record_publication_sweep_task.delay()

    wait_for(
        lambda: (
            CreditRecord.objects.get(pk=record.pk).status == CreditRecord.Status.PUBLICATION_ENDED
        ),
        timeout=60,
        what="the sweep to end the record's publication",
        interval=0.25,
        log=worker.log,
    )
    assert worker.succeeded("records.tasks.record_publication_sweep_task") == 1
