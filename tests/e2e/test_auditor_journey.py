"""An auditor in a real browser: signs in, requests an export of one case and one of a period,
watches both finish without reloading (the page polls the export API), downloads both zips
through the page's links and checks each with the verifier it carries, in a bare interpreter."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect
from pytest_django.live_server_helper import LiveServer

from audit.exports import SHANGHAI, audit_export_run
from audit.models import AuditEvent, AuditExport
from audit.tasks import audit_export_task
from objections.models import Case
from tests.audit.exporting import run_verifier, trusted_key
from tests.conftest import FLUSHABLE_APPS
from tests.e2e.conftest import Demo, gettext_for, screenshot, sign_in_with_second_factor

pytestmark = [
    pytest.mark.browser,
    pytest.mark.django_db(transaction=True, available_apps=FLUSHABLE_APPS),
]

AUDITOR_PASSWORD = "auditor-demo-2026"


@pytest.fixture
def queued(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The ids of the exports the page queued; the test builds them, as a worker would, while
    the page is open."""
    ids: list[int] = []

    def delay(*, export_id: int) -> None:
        ids.append(export_id)

    monkeypatch.setattr(audit_export_task, "delay", delay)
    return ids


@pytest.mark.usefixtures("private_folders")
def test_an_auditor_exports_a_case_and_a_period_and_both_verify_offline(
    page: Page, live_server: LiveServer, demo: Demo, queued: list[int], tmp_path: Path
) -> None:
    case = Case.objects.filter(is_open=True).order_by("id").first()
    assert case is not None  # the demo citizen's open Shanghai objection
    last = AuditEvent.objects.order_by("-sequence").first()
    assert last is not None
    day = last.recorded_at.astimezone(SHANGHAI).date().isoformat()
    t: Callable[[str], str] = lambda message: gettext_for(page, message)  # noqa: E731

    # given the demo auditor signed in, the navigation leads to the log and then the exports
    sign_in_with_second_factor(page, live_server, "auditor", AUDITOR_PASSWORD)
    page.get_by_role("link", name=t("Audit log"), exact=True).first.click()
    expect(page.get_by_role("heading", level=1)).to_have_text(t("Audit log"))
    page.get_by_role("navigation", name=t("Auditor pages")).get_by_role(
        "link", name=t("Exports")
    ).click()
    expect(page.get_by_role("heading", level=1)).to_have_text(t("Audit exports"))

    # when they request an export of the case, typing into the labelled field
    form = page.locator("main form[method=post]")
    form.get_by_label(t("Case reference"), exact=True).fill(case.reference)
    with page.expect_navigation():
        form.get_by_role("button", name=t("Request the export")).click()
    # and one of the day the log was last written, submitting with the keyboard
    form = page.locator("main form[method=post]")
    form.get_by_label(t("Period from (day)"), exact=True).fill(day)
    form.get_by_label(t("Period to (day)"), exact=True).fill(day)
    with page.expect_navigation():
        form.get_by_role("button", name=t("Request the export")).press("Enter")

    # then both are listed as queued
    assert len(queued) == 2
    case_export, period_export = queued
    rows = {export_id: page.locator(f'tr[data-export="{export_id}"]') for export_id in queued}
    for row in rows.values():
        expect(row.locator("[data-status]")).to_have_attribute("data-status", "queued")
    assert AuditExport.objects.get(pk=case_export).filters == {"case_reference": case.reference}
    assert AuditExport.objects.get(pk=period_export).filters == {"from": day, "to": day}

    # when a worker builds them, the open page follows without a reload and offers the zips
    for export_id in queued:
        assert audit_export_run(export_id=export_id).status == "done"
    bundles = {}
    for export_id, row in rows.items():
        expect(row.locator("[data-status]")).to_have_attribute("data-status", "done")
        expect(row.locator("[data-status]")).to_have_text(t("done"))
        link = row.get_by_role("link", name=t("Download the zip"))
        expect(link).to_be_visible()
        with page.expect_download() as download:
            link.click()
        path = tmp_path / f"export-{export_id}.zip"
        download.value.save_as(path)
        bundles[export_id] = path
    screenshot(page, "auditor-exports-done")

    # then each zip's own verifier, alone in a bare interpreter, says OK
    for export_id, bundle in bundles.items():
        result = run_verifier(
            bundle, tmp_path / f"verify-{export_id}", "--key-id", trusted_key(), "--full"
        )
        assert result.returncode == 0, result
        assert result.stdout.startswith("OK: "), result

    # and the page stays usable on a 360 px phone: nothing wider than the screen
    page.set_viewport_size({"width": 360, "height": 740})
    page.reload()
    assert page.evaluate("document.documentElement.scrollWidth") <= 360
    screenshot(page, "auditor-exports-phone")
