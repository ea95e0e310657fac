"""The beat task that ends publication and retention when due, and audits it."""

from __future__ import annotations

from datetime import date

import pytest

from audit.models import AuditChainHead, AuditEvent
from records.models import CreditRecord
from records.services import record_publication_sweep
from records.tasks import record_publication_sweep_task
from tests.factories import CreditRecordFactory

pytestmark = pytest.mark.django_db


def test_sweep_ends_publication_and_retention_that_are_due():
    due = CreditRecordFactory(publication_end=date(2026, 11, 26))
    not_yet = CreditRecordFactory(publication_end=date(2026, 11, 27))
    expiring = CreditRecordFactory(
        status=CreditRecord.Status.PUBLICATION_ENDED,
        publication_end=date(2025, 1, 1),
        publication_start=date(2024, 1, 1),
        decision_date=date(2021, 1, 1),
        retention_end=date(2026, 11, 1),
    )
    start = AuditChainHead.objects.get(pk=1).sequence

    ended, expired = record_publication_sweep(today=date(2026, 11, 26))

    assert (ended, expired) == (1, 1)
    statuses = dict(CreditRecord.objects.values_list("pk", "status"))
    assert statuses == {
        due.pk: "publication_ended",
        not_yet.pk: "published",
        expiring.pk: "expired",
    }
    events = list(AuditEvent.objects.filter(sequence__gt=start).order_by("sequence"))
    assert [(event.action, event.payload) for event in events] == [
        (
            "record.publication_ended",
            {"records": [due.pk], "status": "publication_ended", "as_of": "2026-11-26"},
        ),
        ("record.expired", {"records": [expiring.pk], "status": "expired", "as_of": "2026-11-26"}),
    ]
    assert {event.actor_role for event in events} == {"system"}


def test_sweep_twice_changes_nothing_the_second_time():
    CreditRecordFactory(publication_end=date(2026, 7, 1))
    record_publication_sweep(today=date(2026, 11, 26))
    start = AuditChainHead.objects.get(pk=1).sequence

    assert record_publication_sweep(today=date(2026, 11, 26)) == (0, 0)
    assert AuditChainHead.objects.get(pk=1).sequence == start


def test_beat_task_runs_the_sweep_for_today():
    record = CreditRecordFactory(
        publication_end=date(2020, 1, 1), publication_start=date(2019, 1, 1)
    )

    result = record_publication_sweep_task.apply().get()

    assert result == {"publication_ended": 1, "expired": 0}
    record.refresh_from_db()
    assert record.status == "publication_ended"
