"""The case list is paged by cursor: every case once, in deadline order, never truncated."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from accounts.models import User
from objections.models import Case
from tests.objections.conftest import World
from tests.objections.test_case_api import CASES, api, file_case, shanghai_record

pytestmark = pytest.mark.django_db


def all_pages(user: User, limit: int) -> list[list[str]]:
    pages = []
    url: str | None = f"{CASES}?limit={limit}"
    while url is not None:
        response = api(user).get(url)
        assert response.status_code == 200, response.json()
        pages.append([row["reference"] for row in response.json()["results"]])
        url = response.json()["next"]
    return pages


def filed_cases(world: World, count: int) -> list[Case]:
    return [
        file_case(world.citizen, shanghai_record(world, f"SH-PAGE-{number}"))
        for number in range(count)
    ]


def test_pages_hold_every_case_once_in_the_order_of_the_whole_list(world: World):
    cases = filed_cases(world, 7)
    whole = api(world.caseworker).get(f"{CASES}?limit=100").json()["results"]

    pages = all_pages(world.caseworker, limit=3)

    assert [len(page) for page in pages] == [3, 3, 1]
    assert [reference for page in pages for reference in page] == [
        row["reference"] for row in whole
    ]
    assert {row["reference"] for row in whole} == {case.reference for case in cases}


def test_a_case_filed_between_two_pages_neither_repeats_nor_hides_another(world: World):
    filed_cases(world, 4)
    first = api(world.caseworker).get(f"{CASES}?limit=2").json()

    file_case(world.citizen, shanghai_record(world, "SH-LATE"))
    rest: list[str] = []
    url = first["next"]
    while url is not None:
        body = api(world.caseworker).get(url).json()
        rest += [row["reference"] for row in body["results"]]
        url = body["next"]

    seen = [row["reference"] for row in first["results"]] + rest
    assert len(seen) == len(set(seen))
    assert set(seen) >= {
        case.reference for case in Case.objects.exclude(record__record_number="SH-LATE")
    }


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("cursor=not-a-cursor", "cursor"),
        ("limit=0", "limit"),
        ("limit=101", "limit"),
        ("limit=x", "limit"),
    ],
)
def test_a_bad_cursor_or_limit_is_a_400_naming_it(world: World, query: str, field: str):
    response = api(world.caseworker).get(f"{CASES}?{query}")

    assert response.status_code == 400
    assert field in response.json()


def cursor_of(values: list[object]) -> str:
    return base64.urlsafe_b64encode(json.dumps(values).encode()).decode().rstrip("=")


@pytest.mark.parametrize(
    ("url", "values"),
    [
        (CASES, [True, "not-a-date", 1]),
        (CASES, ["x", {"date": "2026-01-01"}, 1]),
        ("/api/v1/me/records/", [True, 5]),
        ("/api/v1/me/records/", ["x", 5]),
        ("/api/v1/me/records/", [{"date": "not-a-date"}, 5]),
    ],
)
def test_a_tampered_cursor_is_a_400_not_a_crash(world: World, url: str, values: list[object]):
    response = api(world.citizen).get(url, {"cursor": cursor_of(values)})

    assert response.status_code == 400
    assert response.json() == {"cursor": "Not a cursor this list gave out."}


def test_a_page_of_one_and_a_page_of_fifty_cost_the_same_queries(world: World):
    filed_cases(world, 3)

    def queries(limit: int) -> int:
        user = User.objects.get(pk=world.caseworker.pk)
        with CaptureQueriesContext(connection) as captured:
            response: Any = api(user).get(f"{CASES}?limit={limit}")
        assert response.status_code == 200
        return len(captured)

    # the caseworker's groups, their agency's kind and jurisdiction, the page
    assert queries(1) == queries(50) == 3
