"""The administrator is told in time about next year's working-day schedule, in a real browser."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest
from django.contrib import admin
from playwright.sync_api import Page, expect
from pytest_django.live_server_helper import LiveServer
from time_machine import TimeMachineFixture

from accounts.models import User
from objections.models import CalendarYear
from tests.conftest import FLUSHABLE_APPS
from tests.e2e.conftest import DEMO_PASSWORDS, BrowserLog, Demo, gettext_for, screenshot
from tests.staff import staff_device, totp_token

pytestmark = [
    pytest.mark.browser,
    pytest.mark.django_db(transaction=True, available_apps=FLUSHABLE_APPS),
]


@pytest.fixture
def admin_without_the_audit_app() -> Iterator[None]:
    """The audit app is left out of transactional tests (its tables refuse the flush), so the
    admin must not list it while this test runs."""
    from audit.admin import AuditEventAdmin
    from audit.models import AuditEvent

    admin.site.unregister(AuditEvent)
    yield
    admin.site.register(AuditEvent, AuditEventAdmin)


@pytest.mark.usefixtures("admin_without_the_audit_app")
def test_in_november_the_admin_warns_and_refuses_an_incomplete_year_with_the_list(
    page: Page,
    live_server: LiveServer,
    demo: Demo,
    time_machine: TimeMachineFixture,
    browser_log: BrowserLog,
) -> None:
    # Django's admin pages name no icon, so the browser asks for /favicon.ico.
    browser_log.allow(r"404 \(Not Found\) \(http://[^)]*/favicon\.ico\)")
    # given mid-November 2026, with no 2027 schedule entered
    time_machine.move_to(datetime(2026, 11, 16, 10, tzinfo=ZoneInfo("Asia/Shanghai")))

    # when the administrator signs in to the admin, with the code their authenticator app shows
    device = staff_device(User.objects.get(username="admin"))
    page.goto(f"{live_server.url}/admin/login/?next=/admin/")
    page.fill("#id_username", "admin")
    page.fill("#id_password", DEMO_PASSWORDS["admin"])
    with page.expect_navigation():
        page.click("input[type=submit]")
    expect(page).to_have_url(re.compile(r"/accounts/second-factor/\?next=/admin/$"))
    form = page.locator("main form")
    label = gettext_for(page, "Code from your authenticator app, or a recovery code")
    form.get_by_label(label, exact=True).fill(totp_token(device))
    with page.expect_navigation():
        form.get_by_role("button", name=gettext_for(page, "Continue"), exact=True).click()
    expect(page).to_have_url(f"{live_server.url}/admin/")

    # then the banner says what is missing and how to enter it
    banner = page.get_by_test_id("calendar-warning")
    expect(banner).to_contain_text("The State Council holiday schedule for 2027 is not entered")
    expect(banner).to_contain_text("manage.py calendar_load FILE")
    screenshot(page, "admin-calendar-warning")

    # and marking 2027 complete with nothing entered lists the missing holidays, saving nothing
    page.goto(f"{live_server.url}/admin/objections/calendaryear/add/")
    page.fill("#id_year", "2027")
    page.fill("#id_source", "国办发明电〔2026〕")
    with page.expect_navigation():
        page.click("input[name=_save]")
    errors = page.locator(".errorlist").first
    expect(errors).to_contain_text("2027 cannot be marked complete")
    expect(errors).to_contain_text("2027-10-03 (National Day) as a day off")
    assert not CalendarYear.objects.filter(year=2027).exists()
