"""The browser-test harness: headless Debian Chromium driven by Playwright's sync API.

Every test in this folder is marked `browser` (see `pytest_collection_modifyitems` below), so it is
skipped with a reason unless SCS_BROWSER_TESTS=1 and Chromium is installed (tests/conftest.py).
Run: `SCS_BROWSER_TESTS=1 .venv/bin/python -m pytest tests/e2e -v`.

What a test gets:
- `page`: a fresh browser context per test (1280x800, zh-CN, Asia/Shanghai, 10 s timeouts). Console
  errors and uncaught page errors are collected and fail the test at teardown; a failing test
  leaves a full-page screenshot in the artifacts folder and names it in the report.
- `browser_log`: those errors, for a test that expects one (`browser_log.allow(...)`).
- `demo`: the demo data set (`load_demo`) in the test database and the objects tests look for.
- `login(page, live_server, username, password)`: logs in through the login form.
- `gettext_for(page, message)`: a message translated into the language the page is shown in.

Tests that use the live server must be transactional and leave the audit tables alone:
`pytestmark = pytest.mark.django_db(transaction=True, available_apps=FLUSHABLE_APPS)`.
"""

from __future__ import annotations

import io
import os
import re
import tempfile
from collections.abc import Generator, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from django.core.management import call_command
from django.utils import translation
from playwright.sync_api import (
    Browser,
    ConsoleMessage,
    Page,
    Playwright,
    ViewportSize,
    expect,
    sync_playwright,
)
from pytest_django.live_server_helper import LiveServer

from accounts.models import User
from records.models import CreditRecord, Subject
from records.selectors import record_list_for_user, subject_list_for_user
from tests.conftest import chromium_path

# Playwright's sync API drives the browser from an asyncio event loop that it keeps running in the
# test thread (on a greenlet). Django sees that running loop and refuses ORM calls from this thread
# with SynchronousOnlyOperation, although nothing here runs concurrently: the test thread is blocked
# while the browser works, and the live server answers from its own thread. So allow sync ORM calls.
# This is process-wide: once this conftest is imported it holds for the rest of the pytest session.
os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"

CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
]
TIMEOUT_MS = 10_000
VIEWPORT: ViewportSize = {"width": 1280, "height": 800}
PHONE_VIEWPORT: ViewportSize = {"width": 390, "height": 844}
# Screenshots of failing tests (and the ones tests take on purpose) go here.
ARTIFACTS_DIR = Path(
    os.environ.get("SCS_E2E_ARTIFACTS") or Path(tempfile.gettempdir()) / "scs-e2e-artifacts"
)

DEMO_PASSWORDS = {
    "citizen": "citizen-demo-2026",
    "company-rep": "company-demo-2026",
    "admin": "admin-demo-2026",
}

expect.set_options(timeout=TIMEOUT_MS)

_E2E_DIR = Path(__file__).resolve().parent


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    # tryfirst: the marker must be on the item before tests/conftest.py turns it into a skip.
    for item in items:
        if _E2E_DIR in item.path.resolve().parents:
            item.add_marker(pytest.mark.browser)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    page = getattr(item, "funcargs", {}).get("page")
    if report.when == "call" and report.failed and page is not None and not page.is_closed():
        ARTIFACTS_DIR.mkdir(parents=True, exist_ok=True)
        name = re.sub(r"[^A-Za-z0-9_.-]+", "_", item.nodeid)
        path = ARTIFACTS_DIR / f"{name}.png"
        try:
            page.screenshot(path=str(path), full_page=True)
        except Exception as error:  # a crashed page must not hide the test's own failure
            message = f"could not take a screenshot: {error}"
        else:
            message = f"screenshot of the failing page: {path} (at {page.url})"
        print(message)
        report.sections.append(("e2e screenshot", message))
    return report


@pytest.fixture(scope="session")
def playwright() -> Iterator[Playwright]:
    with sync_playwright() as instance:
        yield instance


@pytest.fixture(scope="session")
def browser(playwright: Playwright) -> Iterator[Browser]:
    executable = chromium_path()
    if executable is None:  # tests/conftest.py already skips; this is for a direct fixture use
        pytest.skip("browser test: Chromium not found (apt-get install chromium)")
    # launch() gives the browser a fresh temporary --user-data-dir and removes it on close.
    instance = playwright.chromium.launch(
        executable_path=executable, headless=True, args=CHROMIUM_ARGS
    )
    yield instance
    instance.close()


@dataclass
class BrowserLog:
    """Console errors and uncaught exceptions of one test's pages."""

    console_errors: list[str] = field(default_factory=list)
    page_errors: list[str] = field(default_factory=list)
    allowed: list[re.Pattern[str]] = field(default_factory=list)

    def allow(self, pattern: str) -> None:
        """Accept console errors matching `pattern` (a regular expression), e.g. an expected 404."""
        self.allowed.append(re.compile(pattern))

    def on_console(self, message: ConsoleMessage) -> None:
        if message.type == "error":
            location = message.location
            self.console_errors.append(f"{message.text} ({location.get('url', '?')})")

    def on_page_error(self, error: Exception) -> None:
        self.page_errors.append(str(error))

    def unexpected(self) -> list[str]:
        console = [e for e in self.console_errors if not any(p.search(e) for p in self.allowed)]
        return [f"console error: {e}" for e in console] + [
            f"page error: {e}" for e in self.page_errors
        ]


@pytest.fixture
def browser_log() -> BrowserLog:
    return BrowserLog()


@pytest.fixture
def page(
    browser: Browser, browser_log: BrowserLog, request: pytest.FixtureRequest
) -> Iterator[Page]:
    yield from checked_page(browser, browser_log, request)


def checked_page(
    browser: Browser,
    browser_log: BrowserLog,
    request: pytest.FixtureRequest,
    *,
    java_script_enabled: bool = True,
) -> Iterator[Page]:
    """A page in a fresh context whose console errors fail the test (the `page` fixture's)."""
    context = browser.new_context(
        viewport=VIEWPORT,
        locale="zh-CN",  # the audience: Accept-Language zh-CN, so Django picks zh-hans
        timezone_id="Asia/Shanghai",
        java_script_enabled=java_script_enabled,
    )
    context.set_default_timeout(TIMEOUT_MS)
    context.set_default_navigation_timeout(TIMEOUT_MS)
    new_page = context.new_page()
    new_page.on("console", browser_log.on_console)
    new_page.on("pageerror", browser_log.on_page_error)
    yield new_page
    context.close()
    errors = browser_log.unexpected()
    if errors:
        pytest.fail(f"{request.node.nodeid}: the browser reported errors:\n" + "\n".join(errors))


def screenshot(page: Page, name: str) -> Path:
    """Save a full-page screenshot to the artifacts folder and return its path."""
    ARTIFACTS_DIR.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS_DIR / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


def gettext_for(page: Page, message: str) -> str:
    """`message` translated into the language the page declares in <html lang>."""
    language = page.locator("html").get_attribute("lang") or "zh-hans"
    with translation.override(language):
        return translation.gettext(message)


def login(page: Page, live_server: LiveServer, username: str, password: str) -> None:
    """Log in through the login form, typing into the labelled fields, and wait for the redirect."""
    page.goto(f"{live_server.url}/accounts/login/")
    form = page.locator("main form")
    form.get_by_label(gettext_for(page, "Username"), exact=True).fill(username)
    form.get_by_label(gettext_for(page, "Password"), exact=True).fill(password)
    with page.expect_navigation():
        form.get_by_role("button", name=gettext_for(page, "Log in"), exact=True).click()
    alert = page.get_by_role("alert")
    if alert.count():
        raise AssertionError(f"login as {username!r} failed: {alert.inner_text()}")
    expect(page).not_to_have_url(re.compile(r"/accounts/login/"))


def sign_in_with_second_factor(
    page: Page, live_server: LiveServer, username: str, password: str | None = None
) -> None:
    """Log in with the password, then the code the user's authenticator app shows (a staff
    member's second factor; the device is created confirmed if the user has none)."""
    from tests.staff import staff_device, totp_token

    device = staff_device(User.objects.get(username=username))
    login(page, live_server, username, password or f"{username}-demo-2026")
    expect(page).to_have_url(re.compile(r"/accounts/second-factor/"))
    form = page.locator("main form")
    label = gettext_for(page, "Code from your authenticator app, or a recovery code")
    form.get_by_label(label, exact=True).fill(totp_token(device))
    with page.expect_navigation():
        form.get_by_role("button", name=gettext_for(page, "Continue"), exact=True).click()
    expect(page).not_to_have_url(re.compile(r"/accounts/"))


@dataclass(frozen=True)
class Demo:
    citizen: User
    citizen_subject: Subject
    citizen_records: list[CreditRecord]  # as the portal orders them (newest decision first)
    record: CreditRecord  # the citizen's record from 上海市市场监督管理局 (shanghai-market)
    foreign_record: CreditRecord  # a record about a subject the citizen has no grant for


@pytest.fixture
def demo(transactional_db: None) -> Demo:
    """`load_demo` (60 subjects, 5 records per agency) in the transactional test database."""
    call_command("load_demo", subjects=60, records_per_agency=5, stdout=io.StringIO())
    citizen = User.objects.get(username="citizen")
    subjects = list(subject_list_for_user(user=citizen))
    assert len(subjects) == 1, subjects
    records = list(record_list_for_user(user=citizen))
    foreign = (
        CreditRecord.objects.exclude(subject__in=subjects)
        .select_related("subject", "agency", "category")
        .order_by("id")
        .first()
    )
    assert foreign is not None
    return Demo(
        citizen=citizen,
        citizen_subject=subjects[0],
        citizen_records=records,
        record=next(r for r in records if r.agency.code == "shanghai-market"),
        foreign_record=foreign,
    )
