"""Staff journeys through the dashboard in a real browser: a caseworker signs in with the
second factor, takes the most urgent case, decides it with reasons and amended values and sees
the record corrected, and asks for material on another; a supervisor reassigns an overdue case
and handles its escalation."""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from playwright.sync_api import Page, expect
from pytest_django.live_server_helper import LiveServer
from time_machine import TimeMachineFixture

from accounts.models import User
from objections.models import Case, Escalation
from objections.services import case_file, case_route, clocks_sweep
from records.models import CreditRecord
from tests.conftest import FLUSHABLE_APPS
from tests.e2e.conftest import Demo, gettext_for, screenshot, sign_in_with_second_factor
from tests.factories import registry_record

pytestmark = [
    pytest.mark.browser,
    pytest.mark.django_db(transaction=True, available_apps=FLUSHABLE_APPS),
]

SHANGHAI = ZoneInfo("Asia/Shanghai")
# A Monday on which the repair guards let a record decided on 2024-01-10 be repaired.
MONDAY = datetime(2026, 6, 1, 10, tzinfo=SHANGHAI)
NEW_TITLE = "已撤销的处罚"
REASONS = "经核查，原记录标题有误。"


def file_and_route(demo: Demo, record: CreditRecord, kind: str, **values: object) -> Case:
    case = case_file(actor=demo.citizen, record=record, kind=kind, **values)  # type: ignore[arg-type]
    return case_route(case_id=case.pk)


def test_a_caseworker_decides_the_most_urgent_case_and_asks_for_material_on_another(
    page: Page, live_server: LiveServer, demo: Demo, time_machine: TimeMachineFixture
) -> None:
    time_machine.move_to(MONDAY, tick=True)
    objection_record = registry_record("shanghai-market", demo.citizen_subject, "SH-E2E-1")
    repair_record = registry_record("shanghai-market", demo.citizen_subject, "SH-E2E-2")
    objection = file_and_route(
        demo,
        objection_record,
        "objection",
        grounds="inaccurate",
        statement="处罚标题与事实不符",
        requested_remedy="correct",
        correction={"title": "申请人提出的标题"},
    )
    repair = file_and_route(
        demo,
        repair_record,
        "repair",
        grounds="obligation_fulfilled",
        statement="已履行全部义务",
        requested_remedy="end_publication",
        documents={"credit_commitment": "信用承诺书 2026-001", "performance_proof": "缴款凭证"},
    )
    Case.objects.filter(pk__in=[objection.pk, repair.pk]).update(assignee=None)

    # the caseworker signs in with the second factor and opens the team's queue
    sign_in_with_second_factor(page, live_server, "caseworker")
    page.get_by_test_id("view-team").click()
    rows = page.get_by_test_id("queue-row")
    expect(rows.first).to_have_attribute("data-reference", objection.reference)
    screenshot(page, "dashboard-queue")

    # takes the most urgent case
    rows.first.get_by_role("checkbox").check()
    with page.expect_navigation():
        page.get_by_role("button", name=gettext_for(page, "Assign"), exact=True).click()
    expect(page.get_by_role("status")).to_contain_text("caseworker")
    assert Case.objects.get(pk=objection.pk).assignee == User.objects.get(username="caseworker")

    # reviews it: the proposed title beside the record's
    page.get_by_role("link", name=objection.reference).click()
    expect(page.get_by_test_id("diff")).to_contain_text("申请人提出的标题")
    if page.get_by_test_id("step-start_review").count():
        page.get_by_test_id("step-start_review").locator("summary").click()
        with page.expect_navigation():
            page.get_by_test_id("take-start_review").click()

    # decides with reasons and an amended value
    step = page.get_by_test_id("step-grant")
    step.locator("summary").click()
    step.get_by_label(gettext_for(page, "Outcome")).select_option("granted")
    step.locator("input[name=correction-title]").fill(NEW_TITLE)
    step.locator("textarea[name=reasons]").fill(REASONS)
    with page.expect_navigation():
        page.get_by_test_id("take-grant").click()
    expect(page.get_by_role("alert")).to_have_count(0)

    # and sees the record corrected
    objection_record.refresh_from_db()
    assert objection_record.title == NEW_TITLE
    expect(page.get_by_test_id("diff")).to_contain_text(NEW_TITLE)
    expect(page.get_by_test_id("timeline")).to_contain_text("record.corrected")
    screenshot(page, "dashboard-case-decided")

    # asks for material on the repair; its clock pauses
    page.goto(f"{live_server.url}/dashboard/cases/{repair.reference}/")
    step = page.get_by_test_id("step-request_material")
    step.locator("summary").click()
    step.locator("textarea[name=material_request]").fill("请提供缴款凭证原件扫描件")
    with page.expect_navigation():
        page.get_by_test_id("take-request_material").click()
    assert Case.objects.get(pk=repair.pk).state == "awaiting_material"
    expect(page.get_by_test_id("badge")).to_have_class(re.compile("badge-paused"))


def test_a_supervisor_reassigns_an_overdue_case_and_handles_its_escalation(
    page: Page, live_server: LiveServer, demo: Demo, time_machine: TimeMachineFixture
) -> None:
    time_machine.move_to(MONDAY, tick=True)
    record = registry_record("shanghai-market", demo.citizen_subject, "SH-E2E-3")
    case = file_and_route(
        demo,
        record,
        "objection",
        grounds="inaccurate",
        statement="处罚标题与事实不符",
        requested_remedy="correct",
        correction={"title": "申请人提出的标题"},
    )
    # a month later nobody has acted: the deadlines passed and the sweep escalated them
    time_machine.move_to(MONDAY + timedelta(days=30), tick=True)
    clocks_sweep()
    escalation = Escalation.objects.filter(case=case, resolved_at__isnull=True).first()
    assert escalation is not None
    colleague = User.objects.get(username="shanghai-centre-caseworker")

    sign_in_with_second_factor(page, live_server, "supervisor")
    page.get_by_role("link", name=gettext_for(page, "Supervision")).click()
    expect(page).to_have_url(re.compile(r"/dashboard/supervision/"))
    screenshot(page, "dashboard-supervision")

    # reassigns the overdue case
    reassign = page.locator(f"form.reassign:has(input[name=case][value='{case.pk}'])")
    reassign.locator("select[name=assignee]").select_option(str(colleague.pk))
    reassign.locator("input[name=reason]").fill("原承办人休假")
    with page.expect_navigation():
        reassign.get_by_role("button").click()
    assert Case.objects.get(pk=case.pk).assignee == colleague

    # handles the escalation with a note
    handle = page.locator(f"form.handle[action$='/{escalation.pk}/handle/']")
    handle.locator("textarea[name=note]").fill("已督促承办人两日内办结")
    with page.expect_navigation():
        handle.get_by_role("button").click()
    escalation.refresh_from_db()
    assert escalation.resolved_at is not None
    assert escalation.resolved_by == User.objects.get(username="supervisor")
    assert Case.objects.get(pk=case.pk).state == case.state  # an escalation never decides
