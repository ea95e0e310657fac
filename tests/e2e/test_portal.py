"""The citizen portal in a real browser: log in, record list and detail, access, language."""

from __future__ import annotations

import pytest
from playwright.sync_api import Locator, Page, expect
from pytest_django.live_server_helper import LiveServer

from records.crypto import identifier_decrypt
from records.identifiers import mask_identifier
from records.models import CreditRecord
from records.views import PAGE_LIMIT
from tests.conftest import FLUSHABLE_APPS
from tests.e2e.conftest import (
    DEMO_PASSWORDS,
    PHONE_VIEWPORT,
    BrowserLog,
    Demo,
    gettext_for,
    login,
    screenshot,
)

pytestmark = [
    pytest.mark.browser,
    pytest.mark.django_db(transaction=True, available_apps=FLUSHABLE_APPS),
]


def _login_citizen(page: Page, live_server: LiveServer) -> None:
    login(page, live_server, "citizen", DEMO_PASSWORDS["citizen"])


def _fact(page: Page, label: str) -> Locator:
    """The <dd> that follows the <dt> with exactly this text on a record's detail page."""
    return page.locator(
        f"xpath=//dl[contains(@class, 'facts')]/dt[normalize-space()='{label}']"
        "/following-sibling::dd[1]"
    )


def _period(record: CreditRecord) -> str:
    return f"{record.publication_start:%Y-%m-%d} – {record.publication_end:%Y-%m-%d}"


def test_citizen_logs_in_and_sees_own_records(
    page: Page, live_server: LiveServer, demo: Demo
) -> None:
    _login_citizen(page, live_server)

    expect(page).to_have_url(f"{live_server.url}/portal/records/")
    expect(page.locator("html")).to_have_attribute("lang", "zh-hans")
    expect(page.get_by_role("heading", level=1)).to_have_text(gettext_for(page, "My records"))
    rows = page.locator("table.records tbody tr")
    expect(rows).to_have_count(min(len(demo.citizen_records), PAGE_LIMIT))

    record = demo.record
    assert record.agency.name_zh == "上海市市场监督管理局"
    row = page.locator(f'table.records tbody tr[data-record="{record.record_number}"]')
    expect(row).to_have_count(1)
    expect(row.get_by_role("link", name=record.title, exact=True)).to_have_attribute(
        "href", f"/portal/records/{record.public_id}/"
    )
    expect(row.locator("td.agency")).to_contain_text(record.agency.name_zh)
    expect(row.locator("td.agency small")).to_have_text(record.agency.name_en)
    expect(row.locator("td.category")).to_contain_text(record.category.name_zh)
    expect(row.locator("td.category .legal-basis")).to_have_text(record.category.legal_basis)
    assert record.category.legal_basis.count("《全国公共信用信息基础目录（2024年版）》") == 1
    expect(row.locator("td").nth(4)).to_have_text(_period(record))

    subject = demo.citizen_subject
    full_identifier = identifier_decrypt(bytes(subject.identifier_encrypted))
    assert subject.identifier_masked == mask_identifier(full_identifier)
    assert subject.identifier_masked.count("*") == 10
    expect(page.locator("ul.subjects .identifier")).to_have_text(subject.identifier_masked)
    assert full_identifier not in page.content()

    screenshot(page, "records")


def test_record_detail_shows_legal_basis_and_publication_period(
    page: Page, live_server: LiveServer, demo: Demo
) -> None:
    record = demo.record
    _login_citizen(page, live_server)

    row = page.locator(f'table.records tbody tr[data-record="{record.record_number}"]')
    row.get_by_role("link", name=record.title, exact=True).click()

    expect(page).to_have_url(f"{live_server.url}/portal/records/{record.public_id}/")
    expect(page.get_by_role("heading", level=1)).to_have_text(record.title)
    expect(_fact(page, gettext_for(page, "Legal basis"))).to_have_text(record.category.legal_basis)
    expect(_fact(page, gettext_for(page, "Publication period"))).to_have_text(_period(record))
    expect(_fact(page, gettext_for(page, "Record number"))).to_have_text(record.record_number)
    expect(_fact(page, gettext_for(page, "Agency"))).to_have_text(
        f"{record.agency.name_zh} ({record.agency.name_en})"
    )
    subject = demo.citizen_subject
    expect(_fact(page, gettext_for(page, "Subject")).locator(".identifier")).to_have_text(
        subject.identifier_masked
    )
    assert identifier_decrypt(bytes(subject.identifier_encrypted)) not in page.content()

    screenshot(page, "detail")


def test_record_of_another_subject_is_not_found(
    page: Page, live_server: LiveServer, demo: Demo, browser_log: BrowserLog
) -> None:
    foreign = demo.foreign_record
    assert foreign.subject_id != demo.citizen_subject.pk
    _login_citizen(page, live_server)
    # Chromium logs the 404 of the document itself as a console error; that one is the point here.
    browser_log.allow(r"status of 404 \(Not Found\)")

    response = page.goto(f"{live_server.url}/portal/records/{foreign.public_id}/")

    assert response is not None
    assert response.status == 404
    html = page.content()
    assert foreign.record_number not in html
    assert foreign.subject.name not in html
    assert foreign.subject.identifier_masked not in html


def test_anonymous_visitor_is_sent_to_login(
    page: Page, live_server: LiveServer, demo: Demo
) -> None:
    response = page.goto(f"{live_server.url}/portal/records/")

    assert response is not None
    assert response.status == 200
    redirect = response.request.redirected_from
    assert redirect is not None
    assert redirect.url == f"{live_server.url}/portal/records/"
    first = redirect.response()
    assert first is not None
    assert first.status == 302
    expect(page).to_have_url(f"{live_server.url}/accounts/login/?next=/portal/records/")
    expect(page.get_by_role("heading", level=1)).to_have_text(gettext_for(page, "Log in"))
    expect(page.locator("table.records")).to_have_count(0)


def test_language_selector_switches_to_english(
    page: Page, live_server: LiveServer, demo: Demo
) -> None:
    _login_citizen(page, live_server)
    expect(page.locator("html")).to_have_attribute("lang", "zh-hans")
    selector = page.get_by_label(gettext_for(page, "Language"), exact=True)
    expect(selector).to_have_value("zh-hans")

    with page.expect_navigation():
        selector.select_option("en")  # its onchange submits the form to /i18n/setlang/

    expect(page).to_have_url(f"{live_server.url}/portal/records/")
    expect(page.locator("html")).to_have_attribute("lang", "en")
    expect(page.get_by_label("Language", exact=True)).to_have_value("en")
    expect(page.get_by_role("heading", level=1)).to_have_text("My records")
    expect(page.locator("header").get_by_role("button", name="Log out", exact=True)).to_be_visible()


def test_records_page_is_usable_on_a_phone(page: Page, live_server: LiveServer, demo: Demo) -> None:
    page.set_viewport_size(PHONE_VIEWPORT)
    _login_citizen(page, live_server)

    table = page.locator("table.records")
    table.scroll_into_view_if_needed()
    expect(table).to_be_visible()
    expect(table).to_be_in_viewport()
    link = page.locator(f'tr[data-record="{demo.record.record_number}"] a')
    link.scroll_into_view_if_needed()
    expect(link).to_be_in_viewport()
    # The wide table scrolls inside its wrapper; the page itself does not scroll sideways.
    page_width = page.evaluate("document.documentElement.scrollWidth")
    assert page_width == PHONE_VIEWPORT["width"]

    link.click()
    expect(page).to_have_url(f"{live_server.url}/portal/records/{demo.record.public_id}/")
    page_width = page.evaluate("document.documentElement.scrollWidth")
    assert page_width == PHONE_VIEWPORT["width"]
