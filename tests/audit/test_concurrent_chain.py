"""Eight writers at once leave one gap-free chain that the verifier accepts.

Each thread takes 250 real case transitions, through `case_transition`, on a case of its own: a
Zhejiang repair going round its material loop (`request_material` by the providing unit's
caseworker, pausing the clock; `supply_material` by the applicant, resuming it). Every
transition is an `audited()` transaction whose events are appended under the chain-head lock.
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Iterator
from unittest import mock

import pytest
from django.db import connection
from django.db.models import Max

from accounts.models import User
from audit.checkpoints import audit_log_verify
from audit.models import AuditChainHead, AuditEvent
from objections import tasks
from objections.models import Case
from objections.services import (
    TransitionInput,
    case_file,
    case_route,
    case_transition,
    workflow_definitions_sync,
)
from records import demo
from records.models import Agency
from records.services import subject_access_grant
from tests.conftest import FLUSHABLE_APPS
from tests.factories import SubjectFactory, UserFactory, registry_record

WRITERS = 8
PER_WRITER = 250  # transitions per writer: 125 rounds of the material loop
MATERIAL = TransitionInput(material_request="请补充缴款凭证")


def _nothing(**_: object) -> None:
    """Stands in for a task's `delay`: nothing goes to a broker from this test."""


@pytest.fixture
def no_queued_tasks() -> Iterator[None]:
    with (
        mock.patch.object(tasks.case_route_task, "delay", new=_nothing),
        mock.patch.object(tasks.notifications_send_task, "delay", new=_nothing),
    ):
        yield


def repairs(count: int) -> tuple[User, User, list[int]]:
    """`count` routed Zhejiang repairs of one citizen, in `received`; the citizen, the unit's
    caseworker and the cases' ids."""
    demo.registry_load()
    workflow_definitions_sync()
    subject = SubjectFactory()
    citizen = UserFactory(role="citizen")
    subject_access_grant(subject=subject, user=citizen, actor=None)
    unit = UserFactory(role="caseworker", agency=Agency.objects.get(code="zhejiang-market"))
    ids = []
    for number in range(count):
        case = case_file(
            actor=citizen,
            record=registry_record("zhejiang-market", subject, f"ZJ-CONC-{number}"),
            kind="repair",
            grounds="obligation_fulfilled",
            statement="罚款已缴清。",
            requested_remedy="end_publication",
            correction={},
        )
        ids.append(case_route(case_id=case.pk).pk)
    return citizen, unit, ids


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True, available_apps=FLUSHABLE_APPS)
@pytest.mark.usefixtures("no_queued_tasks")
def test_eight_concurrent_writers_leave_a_gap_free_chain_that_verifies():
    citizen, unit, case_ids = repairs(WRITERS)
    assert set(Case.objects.filter(pk__in=case_ids).values_list("state", flat=True)) == {"received"}
    # The log is never flushed: this test's events are those after the head it starts from.
    since = AuditChainHead.objects.get(pk=1).sequence
    start_together = threading.Barrier(WRITERS)
    errors: list[BaseException] = []

    def writer(case_id: int) -> None:
        try:
            # Each thread its own user objects (their roles are cached on them).
            applicant = User.objects.get(pk=citizen.pk)
            caseworker = User.objects.get(pk=unit.pk)
            start_together.wait(timeout=30)
            for _ in range(PER_WRITER // 2):
                case_transition(
                    case_id=case_id, transition="request_material", actor=caseworker, data=MATERIAL
                )
                case_transition(case_id=case_id, transition="supply_material", actor=applicant)
        except BaseException as error:  # reported below
            errors.append(error)
        finally:
            connection.close()

    threads = [threading.Thread(target=writer, args=(case_id,)) for case_id in case_ids]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)

    assert not any(thread.is_alive() for thread in threads)
    assert errors == []
    head = AuditChainHead.objects.get(pk=1)
    written = list(
        AuditEvent.objects.filter(sequence__gt=since)
        .order_by("sequence")
        .values_list("sequence", "previous_hash", "hash", "case_reference", "action")
    )
    sequences = [row[0] for row in written]
    assert sequences == list(range(since + 1, head.sequence + 1))  # consecutive, no gap
    assert AuditEvent.objects.aggregate(last=Max("sequence"))["last"] == head.sequence
    assert (head.hash, head.previous_hash) == (written[-1][2], written[-1][1])
    links = itertools.pairwise(written)
    assert all(later[1] == earlier[2] for earlier, later in links)  # each links to the one before
    references = dict(Case.objects.filter(pk__in=case_ids).values_list("pk", "reference"))
    per_case = {
        references[case_id]: sum(
            1 for row in written if row[3] == references[case_id] and row[4] == "case.transitioned"
        )
        for case_id in case_ids
    }
    assert per_case == dict.fromkeys(references.values(), PER_WRITER)
    # The writers really ran at once: the cases' events are interleaved in the chain, not
    # appended one case after another.
    cases_in_order = [row[3] for row in written if row[4] == "case.transitioned"]
    switches = sum(1 for a, b in itertools.pairwise(cases_in_order) if a != b)
    assert switches > 10 * WRITERS
    assert set(Case.objects.filter(pk__in=case_ids).values_list("state", flat=True)) == {"received"}
    verified = audit_log_verify()
    assert verified.broken is None
    assert verified.last_sequence == head.sequence
    assert verified.last_hash == head.hash
