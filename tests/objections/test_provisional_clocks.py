"""Cases keep moving when next year's schedule is unknown; completing the year makes them definite.

Every test here travels to its own moment (time-machine), so it holds on any date the suite runs.
"""

from __future__ import annotations

import io
from datetime import date, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from django.contrib.auth.models import Group
from django.core import mail
from django.core.management import call_command
from django.core.management.base import CommandError
from rest_framework.test import APIClient
from time_machine import TimeMachineFixture

from audit.models import AuditEvent
from objections.checks import calendar_schedule_check
from objections.models import CalendarOverride, CalendarYear, Case, Clock
from objections.services import TransitionInput, case_file, case_route, case_transition
from objections.services.calendars import (
    CalendarIncomplete,
    calendar_override_set,
    calendar_reminder_send,
    calendar_year_complete,
    calendar_year_missing,
)
from records.models import Agency, CreditRecord
from scs_cases.celery import app as celery_app
from tests.factories import UserFactory
from tests.objections.conftest import World
from tests.staff import staff_login

pytestmark = pytest.mark.django_db

SHANGHAI = ZoneInfo("Asia/Shanghai")
SCHEDULE_2027 = Path(__file__).parent / "data" / "schedule-2027.csv"
NOTICE = "tests: a 2027 schedule in the form of the State Council notice"


def at(day: date, hour: int = 10) -> datetime:
    return datetime(day.year, day.month, day.day, hour, tzinfo=SHANGHAI)


@pytest.fixture
def eager_tasks(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tasks queued after commit run in this process (the broker is the outside world here)."""
    monkeypatch.setitem(celery_app.conf, "task_always_eager", True)


def file_objection(world: World, record: CreditRecord) -> Case:
    case = case_file(
        actor=world.citizen,
        record=record,
        kind="objection",
        grounds="inaccurate",
        statement="处罚对象错误",
        requested_remedy="correct",
        correction={"title": "更正后的标题"},
    )
    return case_route(case_id=case.pk)


def open_clocks(case: Case) -> dict[str, tuple[date, bool, list[int]]]:
    return {
        clock.timer: (clock.due_on, clock.provisional, clock.provisional_years)
        for clock in Clock.objects.filter(case=case, status__in=["running", "paused"])
    }


def load_2027(*args: str) -> str:
    out = io.StringIO()
    call_command("calendar_load", str(SCHEDULE_2027), *args, stdout=out)
    return out.getvalue()


# --- routing with no schedule for next year -----------------------------------------------------


def test_a_shanghai_objection_filed_on_28_december_is_routed_at_once_with_provisional_clocks(
    world: World,
    time_machine: TimeMachineFixture,
    eager_tasks: None,
    django_capture_on_commit_callbacks,
) -> None:
    # given 28 December 2026, and no 2027 schedule anywhere
    time_machine.move_to(at(date(2026, 12, 28)), tick=False)
    assert not CalendarYear.objects.filter(year=2027).exists()

    # when a Shanghai objection is filed and routed
    case = file_objection(world, world.sh_record)

    # then it is routed, marked and assigned at once
    world.sh_record.refresh_from_db()
    assert (case.state, case.assignee, world.sh_record.under_objection) == (
        "marked",
        world.caseworker,
        True,
    )
    # the clocks reaching 2027 are provisional (New Year's Day computed as a holiday), and say so
    assert open_clocks(case) == {
        "forward_deadline": (date(2026, 12, 30), False, []),
        "centre_decision_deadline": (date(2027, 1, 5), True, [2027]),
    }
    decision = Clock.objects.get(case=case, timer="centre_decision_deadline")
    assert decision.trace.splitlines()[-1].startswith(
        "provisional: no State Council schedule is known for 2027"
    )
    detail = APIClient()
    detail.force_authenticate(world.caseworker)
    clocks = {c["timer"]: c for c in detail.get(f"/api/v1/cases/{case.reference}/").data["clocks"]}
    assert (
        clocks["centre_decision_deadline"]["provisional"],
        clocks["centre_decision_deadline"]["provisional_years"],
    ) == (True, [2027])

    # when the administrator loads the 2027 notice (which gives 4 January off as well)
    with django_capture_on_commit_callbacks(execute=True):
        output = load_2027()

    # then the clock is recomputed and definite, the API says so, and the change is audited
    assert "marked 2027 complete" in output
    assert open_clocks(case) == {
        "forward_deadline": (date(2026, 12, 30), False, []),
        "centre_decision_deadline": (date(2027, 1, 6), False, []),
    }
    case.refresh_from_db()
    assert case.next_due_on == date(2026, 12, 30)
    decision.refresh_from_db()
    assert "recomputed on 2026-12-28, the schedule of 2027 being known:" in decision.trace
    assert f"skipped 2027-01-01..2027-01-04: day off per {NOTICE}: 元旦" in decision.trace
    clocks = {c["timer"]: c for c in detail.get(f"/api/v1/cases/{case.reference}/").data["clocks"]}
    assert (
        clocks["centre_decision_deadline"]["provisional"],
        clocks["centre_decision_deadline"]["due_on"],
    ) == (
        False,
        "2027-01-06",
    )
    [recomputed] = AuditEvent.objects.filter(
        case_reference=case.reference, action="case.clocks_recomputed"
    )
    assert recomputed.payload == {
        "clocks": [
            {
                "clock": decision.pk,
                "timer": "centre_decision_deadline",
                "before": {"due_on": "2027-01-05", "years": [2027]},
                "after": {"due_on": "2027-01-06", "years": []},
            }
        ]
    }
    assert AuditEvent.objects.filter(action="calendar.day_set").count() == 34
    [completed] = AuditEvent.objects.filter(action="calendar.year_completed")
    assert (completed.payload["year"], completed.payload["overrides"]) == (2027, 34)


def test_a_pboc_complaint_requested_on_3_december_starts_its_clock_instead_of_failing(
    world: World, time_machine: TimeMachineFixture
) -> None:
    # given a closed PBoC objection (the information was found correct), on 3 December 2026
    time_machine.move_to(at(date(2026, 12, 3)), tick=False)
    reporting_agency = Agency.objects.get(code="national-credit-service")
    caseworker = UserFactory(username="cn-cw", role="caseworker", agency=reporting_agency)
    case = file_objection(world, world.cn_credit_record)
    for step, data in (
        ("refuse", TransitionInput(reasons="信息准确")),
        ("notify_refusal", TransitionInput()),
    ):
        case = case_transition(case_id=case.pk, transition=step, actor=caseworker, data=data)
    assert case.state == "closed"

    # when the applicant complains to the PBoC branch through the API
    client = APIClient()
    client.force_authenticate(world.citizen)
    response = client.post(
        f"/api/v1/cases/{case.reference}/transitions/",
        {"transition": "request_review", "statement": "核查结论有误，向人民银行投诉"},
        format="json",
    )

    # then it succeeds; the 30-day clock ends on Saturday 2 January 2027, moved provisionally
    assert response.status_code == 200, response.data
    assert response.data["state"] == "complaint_review"
    [complaint] = [c for c in response.data["clocks"] if c["timer"] == "complaint_deadline"]
    assert (complaint["due_on"], complaint["provisional"], complaint["status"]) == (
        "2027-01-04",
        True,
        "running",
    )


def test_the_sweep_recomputes_clocks_once_their_year_becomes_known(
    world: World, time_machine: TimeMachineFixture
) -> None:
    # given a provisional clock, and then 2027 completed without the task having run
    time_machine.move_to(at(date(2026, 12, 28)), tick=False)
    case = file_objection(world, world.sh_record)
    for line in SCHEDULE_2027.read_text(encoding="utf-8").splitlines()[1:]:
        day, kind, _name, source = line.split(",")
        calendar_override_set(
            actor=None, day=date.fromisoformat(day), working=kind == "working", source=source
        )
    CalendarYear.objects.create(year=2027, source=NOTICE)  # as a lost message would leave it

    # when beat sweeps the clocks
    from objections.services import clocks_sweep

    clocks_sweep(today=date(2026, 12, 28))

    # then the clock is definite
    assert open_clocks(case)["centre_decision_deadline"] == (date(2027, 1, 6), False, [])


# --- completing a year ---------------------------------------------------------------------------


def test_marking_a_year_complete_with_days_missing_is_refused_with_the_list() -> None:
    # given only New Year's Day of 2027 entered
    admin = UserFactory(username="admin", role="administrator")
    calendar_override_set(actor=admin, day=date(2027, 1, 1), working=False, source=NOTICE)
    events = AuditEvent.objects.count()

    # when / then
    with pytest.raises(CalendarIncomplete) as refused:
        calendar_year_complete(actor=admin, year=2027, source=NOTICE)
    assert refused.value.missing == [
        "2027-02-05 (Chinese New Year's Eve) as a day off",
        "2027-02-06 (Chinese New Year (Spring Festival)) as a day off",
        "2027-02-07 (Chinese New Year (Spring Festival)) as a day off",
        "2027-02-08 (Chinese New Year (Spring Festival)) as a day off",
        "2027-04-05 (Tomb-Sweeping Day) as a day off",
        "2027-05-01 (Labor Day) as a day off",
        "2027-05-02 (Labor Day) as a day off",
        "2027-06-09 (Dragon Boat Festival) as a day off",
        "2027-09-15 (Mid-Autumn Festival) as a day off",
        "2027-10-01 (National Day) as a day off",
        "2027-10-02 (National Day) as a day off",
        "2027-10-03 (National Day) as a day off",
    ]
    assert not CalendarYear.objects.filter(year=2027).exists()
    assert AuditEvent.objects.count() == events


def test_the_admin_form_lists_what_is_missing_and_saves_nothing(client) -> None:
    admin = UserFactory(username="admin", role="administrator", is_staff=True, is_superuser=True)
    staff_login(client, admin)

    response = client.post(
        "/admin/objections/calendaryear/add/", {"year": "2027", "source": NOTICE}
    )

    assert response.status_code == 200
    page = response.content.decode()
    assert (
        "2027 cannot be marked complete until its overrides cover the State Council notice" in page
    )
    assert "2027-10-03 (National Day) as a day off" in page
    assert not CalendarYear.objects.filter(year=2027).exists()


def test_admin_calendar_edits_are_audited_with_before_and_after(client) -> None:
    admin = UserFactory(username="admin", role="administrator", is_staff=True, is_superuser=True)
    staff_login(client, admin)

    added = client.post(
        "/admin/objections/calendaroverride/add/",
        {"day": "2027-02-13", "working": "on", "source": NOTICE},
    )
    row = CalendarOverride.objects.get(day=date(2027, 2, 13))
    changed = client.post(
        f"/admin/objections/calendaroverride/{row.pk}/change/", {"source": "国办发明电〔2026〕7号"}
    )

    assert (added.status_code, changed.status_code) == (302, 302)
    row.refresh_from_db()
    assert (row.working, row.source) == (False, "国办发明电〔2026〕7号")
    events = AuditEvent.objects.filter(action="calendar.day_set").order_by("sequence")
    assert [(e.actor_id, e.payload) for e in events] == [
        (
            admin.pk,
            {
                "day": "2027-02-13",
                "before": None,
                "after": {"working": True, "source": NOTICE},
                "source": NOTICE,
            },
        ),
        (
            admin.pk,
            {
                "day": "2027-02-13",
                "before": {"working": True, "source": NOTICE},
                "after": {"working": False, "source": "国办发明电〔2026〕7号"},
                "source": "国办发明电〔2026〕7号",
            },
        ),
    ]


def test_a_year_the_package_covers_lacks_nothing() -> None:
    assert calendar_year_missing(year=2026) == []


# --- loading a notice ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        (
            "date,kind,name,source\n2027-01-01,rest,元旦,n\n2027-01-01,rest,元旦,n\n",
            "2027-01-01 is listed twice",
        ),
        (
            "date,kind,name,source\n2027-01-01,rest,元旦,n\n2028-01-01,rest,元旦,n\n",
            "every date must be in one year; found 2027, 2028",
        ),
        (
            "date,kind,name,source\n2027-01-04,working,元旦,n\n",
            "2027-01-04 is a weekday: only a Saturday or Sunday can be a make-up workday",
        ),
        (
            "date,kind,name,source\n20270101,rest,元旦,n\n",
            "line 2: date '20270101' is not YYYY-MM-DD",
        ),
        (
            "date,kind,name,source\n2027-01-01,holiday,元旦,n\n",
            "line 2: kind 'holiday' must be rest or working",
        ),
        (
            "date,kind,name,source\n2027-01-01,rest,,n\n",
            "2027-01-01: the name (the holiday) is empty",
        ),
        (
            "date,kind,name,source\n2027-01-01,rest,元旦,\n",
            "2027-01-01: the source (the notice) is empty",
        ),
        ("day,kind\n2027-01-01,rest\n", "the header must be date,kind,name,source, not day,kind"),
    ],
)
def test_a_bad_schedule_file_is_refused_whole_with_its_problems(
    tmp_path: Path, content: str, problem: str
) -> None:
    path = tmp_path / "notice.csv"
    path.write_text(content, encoding="utf-8")
    events = AuditEvent.objects.count()

    with pytest.raises(CommandError) as refused:
        call_command("calendar_load", str(path), stdout=io.StringIO())

    assert problem in str(refused.value)
    assert not CalendarOverride.objects.exists()
    assert AuditEvent.objects.count() == events


def test_a_dry_run_shows_the_changes_and_changes_nothing() -> None:
    output = load_2027("--dry-run")

    assert output.splitlines()[:2] == [
        "2027: 34 days in the file, 34 to change, 0 already as listed.",
        f"  2027-01-01: no override -> day off ({NOTICE}: 元旦)",
    ]
    assert output.splitlines()[-1] == "Dry run: nothing changed."
    assert not CalendarOverride.objects.exists()
    assert not CalendarYear.objects.exists()


def test_a_yaml_notice_loads_and_a_second_load_changes_nothing(tmp_path: Path) -> None:
    lines = SCHEDULE_2027.read_text(encoding="utf-8").splitlines()[1:]
    days = "\n".join(
        f"  - {{date: {day}, kind: {kind}, name: {name}}}"
        for day, kind, name, _ in (line.split(",") for line in lines)
    )
    path = tmp_path / "notice.yaml"
    path.write_text(f"source: '{NOTICE}'\ndays:\n{days}\n", encoding="utf-8")

    call_command("calendar_load", str(path), stdout=io.StringIO())
    events = AuditEvent.objects.count()
    again = io.StringIO()
    call_command("calendar_load", str(path), stdout=again)

    assert CalendarOverride.objects.filter(day__year=2027).count() == 34
    assert CalendarYear.objects.get(year=2027).source == NOTICE
    assert "0 to change, 34 already as listed" in again.getvalue()
    assert AuditEvent.objects.count() == events


# --- telling administrators ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("today", "warned"),
    [
        (date(2026, 10, 31), False),
        (date(2026, 11, 1), True),
        (date(2026, 12, 31), True),
    ],
)
def test_the_warning_appears_from_1_november_and_not_before(
    time_machine: TimeMachineFixture, client, today: date, warned: bool
) -> None:
    # given no 2027 schedule
    time_machine.move_to(at(today), tick=False)
    admin = UserFactory(username="admin", role="administrator", is_staff=True, is_superuser=True)
    staff_login(client, admin)

    # when
    messages = calendar_schedule_check()
    page = client.get("/admin/").content.decode()

    # then the system check and the admin's banner agree
    assert [m.id for m in messages] == (["objections.W001"] if warned else [])
    assert ('data-testid="calendar-warning"' in page) is warned
    if warned:
        assert "The State Council holiday schedule for 2027 is not entered" in messages[0].msg


def test_no_warning_once_next_year_is_complete(time_machine: TimeMachineFixture) -> None:
    time_machine.move_to(at(date(2026, 11, 2)), tick=False)
    load_2027()

    assert calendar_schedule_check() == []


def test_administrators_get_one_reminder_a_week() -> None:
    from django.core.cache import cache

    cache.clear()
    UserFactory(username="admin", role="administrator", email="admin@example.org")
    UserFactory(username="root", is_superuser=True, email="root@example.org")
    UserFactory(username="citizen", role="citizen", email="citizen@example.org")
    assert Group.objects.filter(name="administrator").exists()

    sent = [
        calendar_reminder_send(today=date(2026, 10, 26)),  # before 1 November: nothing
        calendar_reminder_send(today=date(2026, 11, 2)),  # Monday: sent
        calendar_reminder_send(today=date(2026, 11, 4)),  # same week: not again
        calendar_reminder_send(today=date(2026, 11, 9)),  # next Monday: again
    ]

    assert sent == [0, 1, 0, 1]
    assert [sorted(message.to) for message in mail.outbox] == [
        ["admin@example.org", "root@example.org"],
        ["admin@example.org", "root@example.org"],
    ]
    assert mail.outbox[0].subject == "scs-cases: enter the 2027 working-day schedule"


@pytest.mark.parametrize("year", ["1800", "30000"])
def test_a_year_outside_the_platforms_range_is_a_form_error_not_a_crash(client, year: str):
    admin = UserFactory(username="admin", role="administrator", is_staff=True, is_superuser=True)
    staff_login(client, admin)

    response = client.post("/admin/objections/calendaryear/add/", {"year": year, "source": NOTICE})

    assert response.status_code == 200
    assert "A schedule can be entered for the years 2000 to 2100." in response.content.decode()
    assert not CalendarYear.objects.exists()
