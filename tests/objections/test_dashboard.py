"""The staff dashboard: the queue (scope, order, badges, filters, search, pages, assignment) and
the case page (diff, reveal, notes, steps)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from audit.models import AuditEvent
from objections.dashboard.selectors import clock_badge
from objections.models import Case, CaseNote, Clock
from objections.services.assignment import cases_unassigned_assign
from records.crypto import identifier_decrypt
from tests.clock import SHANGHAI
from tests.factories import UserFactory, registry_record
from tests.objections.conftest import World, case_snapshot
from tests.objections.test_case_services import routed
from tests.staff import staff_login

pytestmark = pytest.mark.django_db

QUEUE = reverse("dashboard:queue")


def refs(response) -> list[str]:
    return [row.split('"')[0] for row in response.content.decode().split('data-reference="')[1:]]


def shanghai_cases(world: World, count: int, start: int = 0) -> list[Case]:
    return [
        routed(world, registry_record("shanghai-market", world.subject, f"SH-Q-{number}"))
        for number in range(start, start + count)
    ]


def test_a_signed_in_citizen_gets_404_and_staff_without_second_factor_are_sent_to_it(
    client, world: World
):
    client.force_login(world.citizen)
    assert client.get(QUEUE).status_code == 404
    client.force_login(world.caseworker)
    response = client.get(QUEUE)
    assert response.status_code == 302
    assert "second-factor" in response["Location"]


def test_the_queue_shows_the_caseworkers_cases_by_remaining_time_with_badges(client, world: World):
    cases = shanghai_cases(world, 3)
    staff_login(client, world.caseworker)
    for case in cases:
        Case.objects.filter(pk=case.pk).update(assignee=world.caseworker)
    # the last filed becomes the most urgent: due a day before any other
    earliest = min(case.next_due_on for case in cases if case.next_due_on is not None)
    Case.objects.filter(pk=cases[2].pk).update(next_due_on=earliest - timedelta(days=1))
    response = client.get(QUEUE)
    assert response.status_code == 200
    shown = refs(response)
    assert set(shown) == {case.reference for case in cases}
    assert shown[0] == cases[2].reference
    assert b'data-testid="badge"' in response.content


def test_scope_other_jurisdiction_sees_nothing_and_a_case_out_of_scope_is_404(client, world: World):
    case = shanghai_cases(world, 1)[0]
    staff_login(client, world.zj_caseworker)
    assert refs(client.get(QUEUE, {"view": "agency"})) == []
    assert client.get(reverse("dashboard:case", args=[case.reference])).status_code == 404
    staff_login(client, world.agency_caseworker)  # the providing unit sees its record's case
    assert refs(client.get(QUEUE, {"view": "agency"})) == [case.reference]


def test_search_by_reference_and_by_exact_identifier(client, world: World):
    first, second = shanghai_cases(world, 1)[0], routed(world, world.other_record)
    staff_login(client, world.supervisor)
    assert refs(client.get(QUEUE, {"view": "agency", "q": first.reference.lower()})) == [
        first.reference
    ]
    identifier = identifier_decrypt(world.other_subject.identifier_encrypted)
    assert refs(client.get(QUEUE, {"view": "agency", "q": identifier})) == [second.reference]
    assert refs(client.get(QUEUE, {"view": "agency", "q": identifier[:10]})) == []


def test_a_bad_filter_is_shown_not_a_500(client, world: World):
    staff_login(client, world.caseworker)
    response = client.get(QUEUE, {"view": "everything", "agency": "x"})
    assert response.status_code == 200
    assert b"error-summary" in response.content
    response = client.get(reverse("api-queue"), {"kind": "nonsense"})
    assert response.status_code == 400
    assert "kind" in response.json()


def test_the_queue_and_its_api_cost_the_same_queries_for_1_and_50_rows(client, world: World):
    staff_login(client, world.supervisor)
    shanghai_cases(world, 1)

    def count(url: str) -> int:
        with CaptureQueriesContext(connection) as queries:
            assert client.get(url, {"view": "agency"}).status_code == 200
        # The session's own bookkeeping (last activity) is written now and then: not the page's.
        return sum("django_session" not in query["sql"] for query in queries.captured_queries)

    count(QUEUE)  # the filters' shared choices are read once, then kept a minute
    one = (count(QUEUE), count(reverse("api-queue")))
    shanghai_cases(world, 49, start=1)
    assert (count(QUEUE), count(reverse("api-queue"))) == one


def test_keyset_pages_hold_every_case_once(client, world: World):
    cases = shanghai_cases(world, 5)
    staff_login(client, world.supervisor)
    seen, url = [], reverse("api-queue") + "?view=agency&limit=2"
    while url:
        body = client.get(url).json()
        seen += [row["reference"] for row in body["results"]]
        url = body["next"]
    assert sorted(seen) == sorted(case.reference for case in cases)
    assert len(seen) == len(set(seen))


def test_badges_on_track_at_risk_overdue_paused(world: World):
    case = shanghai_cases(world, 1)[0]
    clock = Clock.objects.filter(case=case, status=Clock.Status.RUNNING).order_by("due_on").first()
    assert clock is not None
    assert clock_badge(case, today=clock.started_on).status == "on_track"
    assert clock_badge(case, today=clock.remind_on).status == "at_risk"
    assert clock_badge(case, today=clock.due_on + timedelta(days=1)).status == "overdue"
    Clock.objects.filter(case=case, status=Clock.Status.RUNNING).update(status=Clock.Status.PAUSED)
    assert clock_badge(case, today=clock.started_on).status == "paused"


def test_a_caseworker_takes_an_unassigned_case_and_cannot_give_it_away(client, world: World):
    case = shanghai_cases(world, 1)[0]
    Case.objects.filter(pk=case.pk).update(assignee=None)
    staff_login(client, world.caseworker)
    client.post(reverse("dashboard:bulk_assign"), {"cases": [case.reference], "assignee": "me"})
    assert Case.objects.get(pk=case.pk).assignee == world.caseworker
    before = AuditEvent.objects.count()
    response = client.post(
        reverse("api-queue-assign"),
        {"cases": [case.reference], "assignee": world.second_caseworker.pk},
        content_type="application/json",
    )
    assert response.status_code == 403
    assert Case.objects.get(pk=case.pk).assignee == world.caseworker
    assert AuditEvent.objects.count() == before


def test_a_supervisor_bulk_assigns_and_each_change_is_audited(client, world: World):
    cases = shanghai_cases(world, 3)
    staff_login(client, world.supervisor)
    response = client.post(
        reverse("api-queue-assign"),
        {"cases": [c.reference for c in cases], "assignee": world.second_caseworker.pk},
        content_type="application/json",
    )
    assert response.status_code == 200
    assert {c.assignee_id for c in Case.objects.filter(pk__in=[c.pk for c in cases])} == {
        world.second_caseworker.pk
    }
    assert AuditEvent.objects.filter(action="case.assigned").count() >= 1
    outsider = UserFactory(username="zj-x", role="caseworker", agency=world.zj_caseworker.agency)
    before = case_snapshot(cases[0])
    response = client.post(
        reverse("api-queue-assign"),
        {"cases": [cases[0].reference], "assignee": outsider.pk},
        content_type="application/json",
    )
    assert response.status_code == 400
    assert case_snapshot(cases[0]) == before


def test_cases_routed_without_a_caseworker_are_assigned_when_one_joins(world: World):
    case = shanghai_cases(world, 1)[0]
    Case.objects.filter(pk=case.pk).update(assignee=None)
    agency = world.caseworker.agency
    assert cases_unassigned_assign(agency=agency) == 1
    assert Case.objects.get(pk=case.pk).assignee_id is not None


def test_the_case_page_shows_the_diff_and_logs_the_read(client, world: World):
    case = shanghai_cases(world, 1)[0]
    staff_login(client, world.caseworker)
    response = client.get(reverse("dashboard:case", args=[case.reference]))
    assert response.status_code == 200
    body = response.content.decode()
    assert "更正后的标题" in body
    assert world.subject.identifier_masked in body
    assert AuditEvent.objects.filter(action="read.case_opened", case_reference=case.reference)


def test_revealing_needs_a_reason_and_is_audited(client, world: World):
    case = shanghai_cases(world, 1)[0]
    staff_login(client, world.caseworker)
    url = reverse("dashboard:case_act", args=[case.reference])
    before = AuditEvent.objects.filter(action="subject.revealed").count()
    response = client.post(url, {"action": "reveal", "reason": ""})
    assert response.status_code == 400
    assert AuditEvent.objects.filter(action="subject.revealed").count() == before
    response = client.post(url, {"action": "reveal", "reason": "核对身份"})
    identifier = identifier_decrypt(world.subject.identifier_encrypted)
    assert identifier in response.content.decode()
    assert AuditEvent.objects.filter(action="subject.revealed").count() == before + 1
    revealed = AuditEvent.objects.filter(action="subject.revealed").latest("sequence")
    assert (revealed.actor_id, revealed.case_reference, revealed.payload) == (
        world.caseworker.pk,
        case.reference,
        {"reason": "核对身份"},
    )


def test_notes_and_messages_are_kept_apart(client, world: World):
    case = shanghai_cases(world, 1)[0]
    staff_login(client, world.caseworker)
    url = reverse("dashboard:case_act", args=[case.reference])
    client.post(url, {"action": "note", "kind": "internal", "text": "内部意见"})
    client.post(url, {"action": "note", "kind": "message", "text": "请补充材料"})
    assert list(CaseNote.objects.filter(case=case).values_list("kind", "text")) == [
        ("internal", "内部意见"),
        ("message", "请补充材料"),
    ]
    payloads = [e.payload for e in AuditEvent.objects.filter(action="case.note_added")]
    assert all("内部意见" not in str(p) for p in payloads)


def test_a_step_without_its_reasons_is_refused_and_changes_nothing(client, world: World):
    case = shanghai_cases(world, 1)[0]
    staff_login(client, world.caseworker)
    page = client.get(reverse("dashboard:case", args=[case.reference])).content.decode()
    step = page.split('data-testid="take-')[1].split('"')[0]
    before = case_snapshot(case)
    response = client.post(
        reverse("dashboard:case_act", args=[case.reference]),
        {"action": "transition", "transition": "decide", "lock_version": case.lock_version},
    )
    assert response.status_code in (400, 403, 409)
    assert b"action-error" in response.content
    assert case_snapshot(case) == before
    assert step


def test_a_supervisor_shares_a_case_for_consultation_and_ends_it(client, world: World):
    case = shanghai_cases(world, 1)[0]
    url = reverse("dashboard:case_act", args=[case.reference])
    consultee = world.zj_caseworker
    staff_login(client, world.supervisor)
    response = client.post(
        url, {"action": "share", "username": consultee.username, "reason": "征求意见", "days": "7"}
    )
    assert response.status_code == 302
    staff_login(client, consultee)
    assert client.get(reverse("dashboard:case", args=[case.reference])).status_code == 200
    assert client.post(url, {"action": "share", "username": "x", "reason": "r", "days": "1"})
    staff_login(client, world.supervisor)
    client.post(url, {"action": "unshare", "username": consultee.username})
    staff_login(client, consultee)
    assert client.get(reverse("dashboard:case", args=[case.reference])).status_code == 404
    actions = set(
        AuditEvent.objects.filter(case_reference=case.reference).values_list("action", flat=True)
    )
    assert {"case.access_granted", "case.access_revoked"} <= actions


def test_a_caseworker_may_not_share_and_a_bad_share_changes_nothing(client, world: World):
    case = shanghai_cases(world, 1)[0]
    url = reverse("dashboard:case_act", args=[case.reference])
    staff_login(client, world.caseworker)
    before = AuditEvent.objects.count()
    response = client.post(
        url,
        {"action": "share", "username": world.zj_caseworker.username, "reason": "r", "days": "7"},
    )
    assert response.status_code == 403
    staff_login(client, world.supervisor)
    response = client.post(
        url,
        {"action": "share", "username": world.zj_caseworker.username, "reason": "r", "days": "0"},
    )
    assert response.status_code == 400
    assert AuditEvent.objects.filter(action__startswith="case.access").count() == 0
    assert not AuditEvent.objects.filter(case_reference=case.reference, sequence__gt=before)


def test_a_caseworker_joining_an_agency_gets_its_unassigned_cases(
    world: World, monkeypatch, django_capture_on_commit_callbacks
):
    from django.contrib.auth.models import Group

    from accounts.services import user_membership_set
    from objections import tasks

    case = shanghai_cases(world, 1)[0]
    Case.objects.filter(pk=case.pk).update(assignee=None)
    for worker in (world.caseworker, world.second_caseworker):
        worker.groups.clear()  # the centre has no caseworker left
    monkeypatch.setattr(
        tasks.cases_unassigned_assign_task,
        "delay",
        lambda agency_id: tasks.cases_unassigned_assign_task(agency_id=agency_id),
    )
    newcomer = UserFactory(username="sh-new", role="citizen")
    with django_capture_on_commit_callbacks(execute=True):
        user_membership_set(
            user=newcomer,
            actor=world.supervisor,
            groups=[Group.objects.get(name="caseworker")],
            agency=world.caseworker.agency,
            is_staff=False,
            is_superuser=False,
            is_active=True,
        )
    assert Case.objects.get(pk=case.pk).assignee == newcomer
    assigned = AuditEvent.objects.filter(action="case.assigned", case_reference=case.reference)
    assert assigned.exists()


def test_a_queue_api_row_is_what_the_schema_describes(world: World):
    from objections.dashboard.selectors import QueueFilters, queue_for_user
    from objections.queue_apis import QueueRowOutput, queue_row

    cases = shanghai_cases(world, 2)
    today = cases[0].filed_at.astimezone(SHANGHAI).date()  # a day on which their clocks run
    for case in queue_for_user(user=world.supervisor, filters=QueueFilters(view="agency")):
        case.badge = clock_badge(case, today=today)
        assert queue_row(case, today=today) == QueueRowOutput(case).data


def test_the_sweep_assigns_what_a_lost_message_left_unassigned(world: World):
    from objections.services.assignment import cases_unassigned_sweep

    case = shanghai_cases(world, 1)[0]
    Case.objects.filter(pk=case.pk).update(assignee=None)
    assert cases_unassigned_sweep() == 1
    assert Case.objects.get(pk=case.pk).assignee is not None
    assert cases_unassigned_sweep() == 0
