"""The API's browsable documentation works offline and under the Content-Security-Policy."""

from __future__ import annotations

import pytest
from playwright.sync_api import Page, expect
from pytest_django.live_server_helper import LiveServer

from tests.conftest import FLUSHABLE_APPS

pytestmark = [
    pytest.mark.browser,
    pytest.mark.django_db(transaction=True, available_apps=FLUSHABLE_APPS),
]


def test_the_api_docs_render_their_operations_without_inline_script(
    page: Page, live_server: LiveServer
) -> None:
    response = page.goto(f"{live_server.url}/api/docs/")

    assert response is not None
    assert "script-src 'self'" in response.headers["content-security-policy"]
    # Swagger UI draws one block per operation once its own scripts have run
    expect(page.locator(".opblock").first).to_be_visible()
    expect(page.get_by_text("/api/v1/queue/", exact=True).first).to_be_visible()
