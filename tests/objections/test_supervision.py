"""The supervisor's view (issue 14): workload, deadline risk, escalations, reassignment, the
charts' series, the page and its API."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from rest_framework.test import APIClient
from time_machine import TimeMachineFixture

from audit.models import AuditEvent
from objections.dashboard.supervision_selectors import (
    cases_at_risk_for_user,
    escalations_for_user,
    series_for_user,
    workload_for_user,
)
from objections.exceptions import AssigneeNotAllowed
from objections.models import Case, Clock, Escalation
from objections.services import TransitionInput, case_transition, clocks_sweep
from objections.services.escalations import (
    EscalationHandled,
    EscalationInvalid,
    escalation_handle,
)
from tests.factories import UserFactory, registry_record
from tests.objections.conftest import World, case_snapshot
from tests.objections.test_case_services import routed, routed_repair
from tests.staff import staff_login

pytestmark = pytest.mark.django_db

PAGE = "/dashboard/supervision/"
REASSIGN = "/dashboard/supervision/reassign/"
API = "/api/v1/supervision/"


def handle_url(escalation: Escalation) -> str:
    return f"/dashboard/supervision/escalations/{escalation.pk}/handle/"


def travel_to(time_machine: TimeMachineFixture, day: date) -> None:
    time_machine.move_to(
        datetime.combine(day, time(10), tzinfo=timezone.get_current_timezone()), tick=False
    )


def forward_clock(case: Case) -> Clock:
    return Clock.objects.get(case=case, timer="forward_deadline")


class Scene:
    """Two Shanghai cases and one Zhejiang case: `late` filed on the first day and overdue by
    `today`, with its forwarding deadline escalated; `fresh` filed `today`, on track; `zj`
    filed on the first day, outside the Shanghai supervisor's agency."""

    def __init__(self, world: World, time_machine: TimeMachineFixture) -> None:
        self.first_day = timezone.localdate()
        self.late = routed(world)
        self.zj = routed(world, world.zj_record)
        assert self.late.next_due_on is not None
        self.today = self.late.next_due_on + timedelta(days=1)
        travel_to(time_machine, self.today)
        self.fresh = routed(world, world.other_record)
        clocks_sweep(today=self.today)
        self.escalation = Escalation.objects.get(case=self.late)


@pytest.fixture(autouse=True)
def _english(client):
    """The pages' messages are checked in English (they are shown in Chinese by default)."""
    client.defaults["HTTP_ACCEPT_LANGUAGE"] = "en"


@pytest.fixture
def scene(world: World, time_machine: TimeMachineFixture) -> Scene:
    return Scene(world, time_machine)


@pytest.fixture
def administrator():
    return UserFactory(username="admin", role="administrator")


# --- selectors ---------------------------------------------------------------------------------


def test_workload_counts_open_at_risk_and_overdue_per_caseworker_and_agency(world, scene):
    workload = workload_for_user(user=world.supervisor, today=scene.today)

    assert (scene.late.assignee, scene.fresh.assignee) == (
        world.caseworker,
        world.second_caseworker,
    )
    assert [
        (row.label, row.agency, row.open, row.at_risk, row.overdue) for row in workload.caseworkers
    ] == [
        ("sh-cw", "shanghai-credit-centre", 1, 0, 1),
        ("sh-cw2", "shanghai-credit-centre", 1, 0, 0),
        ("sh-sup", "shanghai-credit-centre", 0, 0, 0),
    ]
    assert [
        (row.label, row.open, row.unassigned, row.at_risk, row.overdue) for row in workload.agencies
    ] == [("shanghai-credit-centre", 2, 0, 0, 1)]


def test_a_case_past_its_reminder_day_is_at_risk_until_its_deadline(world, scene):
    remind_on = forward_clock(scene.fresh).remind_on
    assert scene.today < remind_on <= forward_clock(scene.fresh).due_on

    workload = workload_for_user(user=world.supervisor, today=remind_on)
    listed = cases_at_risk_for_user(user=world.supervisor, today=remind_on)

    assert [(row.label, row.at_risk, row.overdue) for row in workload.caseworkers] == [
        ("sh-cw", 0, 1),
        ("sh-cw2", 1, 0),
        ("sh-sup", 0, 0),
    ]
    assert [(case.reference, case.risk, case.days_late) for case in listed] == [
        (scene.late.reference, "overdue", (remind_on - scene.late.next_due_on).days),
        (scene.fresh.reference, "at_risk", 0),
    ]


def test_an_administrator_sees_every_agency_and_the_zhejiang_case(world, scene, administrator):
    workload = workload_for_user(user=administrator, today=scene.today)
    agencies = {row.label: (row.open, row.overdue) for row in workload.agencies}
    workers = {row.label for row in workload.caseworkers}

    assert agencies["shanghai-credit-centre"] == (2, 1)
    assert agencies["zhejiang-credit-centre"] == (1, 0)
    assert agencies["shanghai-market"] == (0, 0)  # every agency, with zeros
    assert {"sh-cw", "zj-cw", "zj-drc-sup"} <= workers
    assert [c.reference for c in cases_at_risk_for_user(user=administrator, today=scene.today)] == [
        scene.late.reference
    ]


def test_a_caseworker_supervises_nothing(world, scene):
    workload = workload_for_user(user=world.caseworker, today=scene.today)

    assert (workload.caseworkers, workload.agencies) == ([], [])
    assert cases_at_risk_for_user(user=world.caseworker, today=scene.today) == []
    assert escalations_for_user(user=world.caseworker).open == []


def test_open_escalations_carry_their_clock_and_stay_out_of_other_agencies(world, scene):
    mine = escalations_for_user(user=world.supervisor)
    theirs = escalations_for_user(user=world.zj_supervisor)

    [escalation] = mine.open
    assert (escalation.case, escalation.clock.timer, escalation.clock.due_on) == (
        scene.late,
        "forward_deadline",
        scene.late.next_due_on,
    )
    assert "Shanghai" in escalation.clock.source_citation
    assert (mine.open_total, mine.handled) == (1, [])
    assert (theirs.open, theirs.open_total) == ([], 0)


def test_series_counts_the_backlog_and_the_clocks_at_risk_and_overdue_each_day(world, scene):
    start = scene.first_day - timedelta(days=2)
    late = {c.timer: c for c in Clock.objects.filter(case=scene.late)}

    series = series_for_user(user=world.supervisor, start=start, end=scene.today)

    days = [start + timedelta(days=n) for n in range((scene.today - start).days + 1)]

    def running_on(day: date, test) -> int:
        return sum(
            1
            for timer in ("forward_deadline", "centre_decision_deadline")
            if test(late[timer], day)
        )

    assert series.days == days
    assert series.backlog == [
        0 if day < scene.first_day else 1 if day < scene.today else 2 for day in days
    ]
    assert late["marking_deadline"].status == "stopped"  # stopped the day it started: not counted
    assert series.at_risk == [
        running_on(day, lambda c, d: c.remind_on <= d <= c.due_on)
        + (1 if day == scene.today and forward_clock(scene.fresh).remind_on <= day else 0)
        for day in days
    ]
    assert series.overdue == [running_on(day, lambda c, d: c.due_on < d) for day in days]
    assert series.overdue[-1] == 1


def test_a_closed_case_leaves_the_backlog_the_day_it_closed(world, scene):
    Case.objects.filter(pk=scene.fresh.pk).update(
        is_open=False, closed_at=timezone.now(), next_due_on=None
    )
    Clock.objects.filter(case=scene.fresh).update(status="stopped", stopped_at=timezone.now())

    series = series_for_user(user=world.supervisor, start=scene.today, end=scene.today)

    assert series.backlog == [1]


# --- handling escalations ----------------------------------------------------------------------


def test_acknowledging_an_escalation_records_who_and_when_and_keeps_the_case_state(world, scene):
    before = case_snapshot(scene.late)

    handled = escalation_handle(
        escalation=scene.escalation, actor=world.supervisor, action="acknowledge", note="已督办"
    )

    assert (handled.resolved_by, handled.resolved_at is not None) == (world.supervisor, True)
    after = case_snapshot(scene.late)
    assert {k: v for k, v in after.items() if k != "audit_events"} == {
        k: v for k, v in before.items() if k != "audit_events"
    }
    event = AuditEvent.objects.order_by("-sequence").first()
    assert (event.action, event.actor_id, event.case_reference, event.target_id) == (
        "escalation.handled",
        world.supervisor.pk,
        scene.late.reference,
        str(scene.escalation.pk),
    )
    assert event.payload == {
        "action": "acknowledge",
        "clock": scene.escalation.clock_id,
        "timer": "forward_deadline",
        "note": "已督办",
    }
    [listed] = escalations_for_user(user=world.supervisor).handled
    assert (listed.action, listed.note, listed.resolved_by) == (
        "acknowledge",
        "已督办",
        world.supervisor,
    )


def test_an_escalation_is_handled_once(world, scene):
    escalation_handle(
        escalation=scene.escalation, actor=world.supervisor, action="acknowledge", note="已督办"
    )
    events = AuditEvent.objects.count()

    with pytest.raises(EscalationHandled, match="handled already"):
        escalation_handle(
            escalation=scene.escalation,
            actor=world.supervisor,
            action="reassign",
            note="再次",
            assignee=world.second_caseworker,
        )

    scene.late.refresh_from_db()
    assert (AuditEvent.objects.count(), scene.late.assignee) == (events, world.caseworker)


def test_reassigning_through_an_escalation_gives_the_case_to_another_caseworker(world, scene):
    escalation_handle(
        escalation=scene.escalation,
        actor=world.supervisor,
        action="reassign",
        note="转交",
        assignee=world.second_caseworker,
    )

    scene.late.refresh_from_db()
    assert (scene.late.assignee, scene.late.state) == (world.second_caseworker, "marked")
    assigned, handled = AuditEvent.objects.order_by("-sequence")[:2][::-1]
    assert (assigned.action, assigned.payload) == (
        "case.assigned",
        {"before": world.caseworker.pk, "after": world.second_caseworker.pk, "reason": "转交"},
    )
    assert (handled.action, handled.payload["assignee"]) == (
        "escalation.handled",
        world.second_caseworker.pk,
    )


@pytest.mark.parametrize(
    ("action", "note", "assignee", "error"),
    [
        ("acknowledge", "   ", None, EscalationInvalid),
        ("reassign", "转交", None, EscalationInvalid),
        ("reassign", "转交", "zj_caseworker", AssigneeNotAllowed),
        ("decide", "直接决定", None, EscalationInvalid),
    ],
)
def test_a_refused_handling_changes_nothing(world, scene, action, note, assignee, error):
    before = case_snapshot(scene.late)

    with pytest.raises(error):
        escalation_handle(
            escalation=scene.escalation,
            actor=world.supervisor,
            action=action,
            note=note,
            assignee=getattr(world, assignee) if assignee else None,
        )

    scene.escalation.refresh_from_db()
    assert (scene.escalation.resolved_at, scene.escalation.resolved_by) == (None, None)
    assert case_snapshot(scene.late) == before
    assert Case.objects.get(pk=scene.late.pk).assignee == world.caseworker


# --- the page ------------------------------------------------------------------------------------


def test_the_page_shows_workload_risk_escalations_and_charts_with_their_tables(
    client, world, scene
):
    staff_login(client, world.supervisor)

    response = client.get(PAGE)

    assert response.status_code == 200
    page = response.content.decode()
    for table in (
        "workload-caseworkers",
        "workload-agencies",
        "cases-at-risk",
        "escalations-open",
        "escalations-handled",
        "backlog-table",
        "risk-table",
    ):
        assert f'id="{table}"' in page
    assert scene.late.reference in page
    assert scene.zj.reference not in page
    assert 'id="supervision-series"' in page
    assert "dashboard/vendor/chart.umd.min.js" in page
    assert "dashboard/supervision.js" in page
    assert "<script>" not in page.replace('<script id="supervision-series"', "")
    assert " onclick=" not in page
    assert handle_url(scene.escalation) in page


def test_the_chart_range_can_be_chosen(client, world, scene):
    staff_login(client, world.supervisor)
    start = scene.today - timedelta(days=6)

    response = client.get(PAGE, {"start": start.isoformat(), "end": scene.today.isoformat()})

    assert [row[0] for row in response.context["series_rows"]] == [
        start + timedelta(days=n) for n in range(7)
    ]


@pytest.mark.parametrize("who", ["caseworker", "citizen", "auditor"])
def test_the_page_and_its_forms_are_404_for_anyone_but_supervisors(client, world, scene, who):
    user = getattr(world, who)
    staff_login(client, user)
    before = case_snapshot(scene.late)

    assert client.get(PAGE).status_code == 404
    assert (
        client.post(REASSIGN, {"case": scene.late.pk, "assignee": world.second_caseworker.pk})
    ).status_code == 404
    assert (
        client.post(
            handle_url(scene.escalation), {"action": "acknowledge", "note": "x"}
        ).status_code
        == 404
    )
    assert case_snapshot(scene.late) == before


def test_a_supervisor_reassigns_an_at_risk_case_from_the_page(client, world, scene):
    staff_login(client, world.supervisor)

    response = client.post(
        REASSIGN,
        {"case": scene.late.pk, "assignee": world.second_caseworker.pk, "reason": "休假"},
        follow=True,
    )

    scene.late.refresh_from_db()
    assert response.redirect_chain == [(PAGE, 302)]
    assert scene.late.assignee == world.second_caseworker
    event = AuditEvent.objects.order_by("-sequence").first()
    assert (event.action, event.actor_id, event.payload["reason"]) == (
        "case.assigned",
        world.supervisor.pk,
        "休假",
    )
    assert "is now assigned to sh-cw2" in response.content.decode()


def test_a_refused_reassignment_says_why_and_changes_nothing(client, world, scene):
    staff_login(client, world.supervisor)
    before = case_snapshot(scene.late)

    response = client.post(
        REASSIGN, {"case": scene.late.pk, "assignee": world.zj_caseworker.pk}, follow=True
    )

    assert response.status_code == 200
    assert "was not reassigned: That person may not work this case." in response.content.decode()
    assert case_snapshot(scene.late) == before
    assert Case.objects.get(pk=scene.late.pk).assignee == world.caseworker


def test_another_agencys_case_is_404_to_a_supervisor(client, world, scene):
    staff_login(client, world.zj_supervisor)
    before = case_snapshot(scene.late)

    response = client.post(REASSIGN, {"case": scene.late.pk, "assignee": ""})
    handled = client.post(handle_url(scene.escalation), {"action": "acknowledge", "note": "x"})

    assert (response.status_code, handled.status_code) == (404, 404)
    assert case_snapshot(scene.late) == before


def test_the_handle_form_needs_a_note_and_then_handles_once(client, world, scene):
    staff_login(client, world.supervisor)
    url = handle_url(scene.escalation)

    refused = client.post(url, {"action": "acknowledge", "note": ""}, follow=True)
    scene.escalation.refresh_from_db()
    assert scene.escalation.resolved_at is None
    assert "was not handled" in refused.content.decode()

    done = client.post(url, {"action": "acknowledge", "note": "已督办"}, follow=True)
    again = client.post(url, {"action": "acknowledge", "note": "再次"}, follow=True)

    scene.escalation.refresh_from_db()
    assert scene.escalation.resolved_by == world.supervisor
    assert "is handled" in done.content.decode()
    assert "handled already" in again.content.decode()
    assert AuditEvent.objects.filter(action="escalation.handled").count() == 1


def test_the_page_runs_a_fixed_number_of_queries_for_1_and_30_cases(
    client, world, time_machine, django_assert_max_num_queries
):
    def overdue_and_escalated(cases: list[Case]) -> None:
        day = max(case.next_due_on or date.min for case in cases) + timedelta(days=1)
        travel_to(time_machine, day)
        clocks_sweep(today=day)
        for escalation in Escalation.objects.filter(resolved_at__isnull=True)[:1]:
            escalation_handle(
                escalation=escalation, actor=world.supervisor, action="acknowledge", note="已督办"
            )

    def measure() -> tuple[int, int]:
        with CaptureQueriesContext(connection) as queries:
            response = client.get(PAGE)
        assert response.status_code == 200
        return len(queries), len(response.context["at_risk"])

    overdue_and_escalated([routed(world)])
    staff_login(client, world.supervisor)  # signed in after the days went by
    one, listed_one = measure()
    more = [
        routed(
            world,
            registry_record("shanghai-market", world.other_subject, f"SH-Q{number}"),
            actor=world.other_citizen,
        )
        for number in range(29)
    ]
    overdue_and_escalated(more)
    staff_login(client, world.supervisor)
    with django_assert_max_num_queries(one):
        thirty, listed_thirty = measure()

    assert (listed_one, listed_thirty) == (1, 30)
    assert Escalation.objects.filter(resolved_at__isnull=False).count() == 2
    assert thirty == one


# --- the API -------------------------------------------------------------------------------------


def test_the_api_gives_the_same_figures(world, scene):
    api = APIClient()
    api.force_authenticate(world.supervisor)

    response = api.get(API)

    assert response.status_code == 200
    body = response.json()
    assert [(row["name"], row["open"], row["overdue"]) for row in body["caseworkers"]] == [
        ("sh-cw", 1, 1),
        ("sh-cw2", 1, 0),
        ("sh-sup", 0, 0),
    ]
    assert body["agencies"] == [
        {
            "id": world.agency("shanghai-credit-centre").pk,
            "code": "shanghai-credit-centre",
            "open": 2,
            "unassigned": 0,
            "at_risk": 0,
            "overdue": 1,
        }
    ]
    assert [(c["reference"], c["risk"], c["days_late"]) for c in body["at_risk"]] == [
        (scene.late.reference, "overdue", 1)
    ]
    [escalation] = body["escalations_open"]
    assert (escalation["case"], escalation["clock"]["timer"], escalation["handled_at"]) == (
        scene.late.reference,
        "forward_deadline",
        None,
    )


@pytest.mark.parametrize("who", ["caseworker", "citizen", "auditor"])
def test_the_api_is_404_for_anyone_but_supervisors(world, scene, who):
    api = APIClient()
    api.force_authenticate(getattr(world, who))

    listed = api.get(API)
    handled = api.post(
        f"/api/v1/escalations/{scene.escalation.pk}/handle/",
        {"action": "acknowledge", "note": "x"},
        format="json",
    )

    assert (listed.status_code, handled.status_code) == (404, 404)
    scene.escalation.refresh_from_db()
    assert scene.escalation.resolved_at is None


def test_the_api_handles_an_escalation_once(world, scene):
    api = APIClient()
    api.force_authenticate(world.supervisor)
    url = f"/api/v1/escalations/{scene.escalation.pk}/handle/"

    done = api.post(
        url,
        {"action": "reassign", "note": "转交", "assignee": world.second_caseworker.pk},
        format="json",
    )
    again = api.post(url, {"action": "acknowledge", "note": "再次"}, format="json")

    assert done.status_code == 200
    assert (done.json()["handled_by"], done.json()["assignee"]) == ("sh-sup", "sh-cw2")
    assert (again.status_code, again.json()["code"]) == (409, "escalation_handled")
    other = APIClient()
    other.force_authenticate(world.zj_supervisor)
    assert other.post(url, {"action": "acknowledge", "note": "x"}, format="json").status_code == 404


def test_the_api_gives_the_charts_series_over_a_chosen_range(world, scene):
    api = APIClient()
    api.force_authenticate(world.supervisor)
    start = scene.today - timedelta(days=2)
    expected = series_for_user(user=world.supervisor, start=start, end=scene.today)

    response = api.get(f"{API}series/", {"start": start.isoformat()})

    assert response.status_code == 200
    assert response.json() == {
        "days": [day.isoformat() for day in expected.days],
        "backlog": expected.backlog,
        "overdue": expected.overdue,
        "at_risk": expected.at_risk,
    }
    assert len(expected.days) == 3


def test_a_paused_clock_stops_counting_from_the_day_its_pause_began(
    world, administrator, time_machine
):
    case = routed_repair(world)
    clock = Clock.objects.get(case=case, status="running")
    filed_on = timezone.localdate()
    paused_on = clock.remind_on + timedelta(days=1)
    assert paused_on <= clock.due_on
    travel_to(time_machine, paused_on)
    case_transition(
        case_id=case.pk,
        transition="request_material",
        actor=world.zj_agency_caseworker,
        data=TransitionInput(material_request="请补充缴款凭证"),
    )
    end = clock.due_on + timedelta(days=5)
    travel_to(time_machine, end)

    series = series_for_user(user=administrator, start=filed_on, end=end)

    assert Clock.objects.get(pk=clock.pk).status == "paused"
    assert series.at_risk == [1 if clock.remind_on <= day < paused_on else 0 for day in series.days]
    assert series.overdue == [0] * len(series.days)
    assert series.backlog == [1] * len(series.days)
