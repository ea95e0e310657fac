"""Every page is served under a Content-Security-Policy that allows no inline script, and no
page of ours holds one (the policy would block it in the browser)."""

from __future__ import annotations

import re

import pytest
from django.test import Client

from tests.objections.conftest import world  # noqa: F401 - the fixture
from tests.staff import staff_login

pytestmark = pytest.mark.django_db

INLINE_SCRIPT = re.compile(r"<script(?![^>]*\bsrc=)(?![^>]*application/json)[^>]*>", re.I)
INLINE_HANDLER = re.compile(r"\son[a-z]+\s*=", re.I)


def policy_of(response) -> dict[str, str]:
    header = response["Content-Security-Policy"]
    return dict(part.strip().split(" ", 1) for part in header.split(";") if part.strip())


@pytest.mark.parametrize(
    "url", ["/", "/accounts/login/", "/accounts/register/", "/transparency/", "/api/docs/"]
)
def test_public_pages_forbid_inline_scripts_and_hold_none(client: Client, url: str):
    response = client.get(url)

    assert response.status_code == 200
    policy = policy_of(response)
    assert policy["script-src"] == "'self'"
    assert policy["frame-ancestors"] == "'none'"
    assert policy["object-src"] == "'none'"
    page = response.content.decode()
    assert not INLINE_SCRIPT.search(page), INLINE_SCRIPT.search(page)
    assert not INLINE_HANDLER.search(page)


def test_signed_in_pages_hold_no_inline_script(world):  # noqa: F811
    citizen = Client()
    citizen.force_login(world.citizen)
    staff = Client()
    staff_login(staff, world.supervisor)
    pages = [
        (citizen, "/portal/records/"),
        (citizen, "/portal/cases/"),
        (citizen, "/portal/bind/"),
        (staff, "/dashboard/"),
        (staff, "/dashboard/supervision/"),
    ]
    for client, url in pages:
        response = client.get(url)
        assert response.status_code == 200, url
        assert "script-src 'self'" in response["Content-Security-Policy"]
        page = response.content.decode()
        assert not INLINE_SCRIPT.search(page), (url, INLINE_SCRIPT.search(page))
        assert not INLINE_HANDLER.search(page), url
