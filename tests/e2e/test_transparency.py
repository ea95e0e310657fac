"""The public transparency page in a real browser: charts and tables, both languages, no script."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, datetime, time, timedelta

import pytest
from playwright.sync_api import Browser, Locator, Page, expect
from pytest_django.live_server_helper import LiveServer
from time_machine import TimeMachineFixture

from objections.models import Case
from tests import clock
from tests.conftest import FLUSHABLE_APPS
from tests.e2e.conftest import (
    BrowserLog,
    checked_page,
    gettext_for,
    screenshot,
)
from transparency.models import Publication
from transparency.selectors import table
from transparency.services import figures_refresh

pytestmark = [
    pytest.mark.browser,
    pytest.mark.django_db(transaction=True, available_apps=FLUSHABLE_APPS),
]


def _last_month() -> date:
    """The 10th of the month before the test date: only months that have ended are published."""
    first = clock.test_date().replace(day=1)
    return (first - timedelta(days=1)).replace(day=10)


@pytest.fixture
def publication(time_machine: TimeMachineFixture, request: pytest.FixtureRequest) -> Publication:
    """The figures computed over the demo data, as the hourly refresh would: the demo is loaded
    (and its one objection filed) last month, the figures computed today."""
    time_machine.move_to(datetime.combine(_last_month(), time(10), clock.SHANGHAI), tick=True)
    request.getfixturevalue("demo")
    time_machine.move_to(clock.test_start(), tick=True)
    return figures_refresh()


@pytest.fixture
def page_without_script(
    browser: Browser, browser_log: BrowserLog, request: pytest.FixtureRequest
) -> Iterator[Page]:
    """Like the `page` fixture, in a context with JavaScript switched off."""
    yield from checked_page(browser, browser_log, request, java_script_enabled=False)


def _chart(page: Page, title: str) -> Locator:
    """The SVG chart named `title` (its aria-label)."""
    return page.locator("figure.chart svg").and_(page.get_by_role("img", name=title, exact=True))


def _outcomes_rows(page: Page) -> Locator:
    return page.locator("section[aria-labelledby=outcomes-heading] table tbody tr")


def _monthly_rows(page: Page) -> Locator:
    return page.locator("section[aria-labelledby=time-heading] table tbody tr")


def _expect_figures(page: Page, publication: Publication, *, by: str, language: str) -> None:
    """The charts and both tables of the page as `publication` has them, in `language`."""
    months = publication.figures["months"]
    # One column per month in each time chart; a withheld month is drawn as a flat column.
    for title in (
        "Cases open at the end of each month",
        "Share decided within the statutory deadline, by month",
    ):
        chart = _chart(page, gettext_for(page, title))
        expect(chart).to_be_visible()
        expect(chart.locator("rect")).to_have_count(len(months))
    expect(_chart(page, gettext_for(page, "Outcomes of the decided cases"))).to_be_visible()

    expected = table(publication, by=by, month="all", language=language)
    rows = _outcomes_rows(page)
    expect(rows.locator("th")).to_have_text([row.label for row in expected])
    expect(_monthly_rows(page).locator("th")).to_have_text(months)


def test_the_page_shows_charts_and_tables_in_chinese(
    page: Page, live_server: LiveServer, publication: Publication
) -> None:
    assert publication.cases == 1  # the demo's one objection, filed last month
    last_month = f"{_last_month():%Y-%m}"
    assert publication.figures["months"][-1] == last_month

    response = page.goto(f"{live_server.url}/transparency/")

    assert response is not None
    assert response.status == 200
    expect(page.locator("html")).to_have_attribute("lang", "zh-hans")
    heading = gettext_for(page, "How objections are handled")
    assert heading == "异议处理情况"
    expect(page.get_by_role("heading", level=1)).to_have_text(heading)
    _expect_figures(page, publication, by="jurisdiction", language="zh-hans")
    expect(_outcomes_rows(page).locator("th")).to_have_text(["上海市"])
    # One objection filed, still open: withheld in its month, and so in the whole period; the
    # months before it show zeros.
    expect(_outcomes_rows(page).locator("td")).to_have_text(
        ["—", "0", "0", *["—"] * 6, "0", "—", "—", "—"]
    )
    monthly = _monthly_rows(page)
    expect(monthly.filter(has_text=last_month).locator("td")).to_have_text(
        ["—", "0", "0", "0", "—"]
    )
    expect(monthly.first.locator("td")).to_have_text(["0"] * 5)

    screenshot(page, "transparency-zh")


def test_the_language_form_switches_the_page_to_english(
    page: Page, live_server: LiveServer, publication: Publication
) -> None:
    page.goto(f"{live_server.url}/transparency/")
    selector = page.get_by_label(gettext_for(page, "Language"), exact=True)
    expect(selector).to_have_value("zh-hans")

    with page.expect_navigation():
        selector.select_option("en")  # its onchange submits the form to /i18n/setlang/

    expect(page).to_have_url(f"{live_server.url}/transparency/")
    expect(page.locator("html")).to_have_attribute("lang", "en")
    expect(page.get_by_label("Language", exact=True)).to_have_value("en")
    expect(page.get_by_role("heading", level=1)).to_have_text("How objections are handled")
    _expect_figures(page, publication, by="jurisdiction", language="en")
    expect(_outcomes_rows(page).locator("th")).to_have_text(["Shanghai"])

    screenshot(page, "transparency-en")


def test_the_filter_form_works_without_javascript(
    page_without_script: Page, live_server: LiveServer, publication: Publication
) -> None:
    page = page_without_script
    response = page.goto(f"{live_server.url}/transparency/")
    assert response is not None
    assert response.status == 200
    expect(page.get_by_role("heading", level=1)).to_have_text(
        gettext_for(page, "How objections are handled")
    )
    _expect_figures(page, publication, by="jurisdiction", language="zh-hans")

    form = page.locator("form.filters")
    form.get_by_label(gettext_for(page, "Figures by"), exact=True).select_option("agency")
    with page.expect_navigation():
        form.get_by_role("button", name=gettext_for(page, "Show"), exact=True).click()

    expect(page).to_have_url(f"{live_server.url}/transparency/?by=agency&month=all")
    expect(form.get_by_label(gettext_for(page, "Figures by"), exact=True)).to_have_value("agency")
    _expect_figures(page, publication, by="agency", language="zh-hans")
    case = Case.objects.select_related("record__agency").get()  # the demo's one objection
    expect(_outcomes_rows(page).locator("th")).to_have_text([case.record.agency.name_zh])

    screenshot(page, "transparency-no-script")


def test_the_language_form_works_without_javascript(
    page_without_script: Page, live_server: LiveServer, publication: Publication
) -> None:
    page = page_without_script
    page.goto(f"{live_server.url}/transparency/?by=category")
    header = page.locator("header")
    header.get_by_label(gettext_for(page, "Language"), exact=True).select_option("en")

    # Without script the select does not submit itself; the <noscript> button does.
    with page.expect_navigation():
        header.get_by_role("button", name=gettext_for(page, "Change"), exact=True).click()

    expect(page).to_have_url(f"{live_server.url}/transparency/?by=category")
    expect(page.locator("html")).to_have_attribute("lang", "en")
    expect(page.get_by_role("heading", level=1)).to_have_text("How objections are handled")
    _expect_figures(page, publication, by="category", language="en")
