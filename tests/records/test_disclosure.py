"""Disclosure: a user sees the records of the subjects they may act for, and nothing else (404)."""

from __future__ import annotations

import pytest
from django.urls import reverse
from rest_framework.test import APIClient

from records.models import CreditRecord
from records.services import subject_access_grant, subject_access_revoke
from tests.factories import CreditRecordFactory, SubjectFactory, UserFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def citizen():
    return UserFactory(role="citizen")


@pytest.fixture
def own_record(citizen):
    record = CreditRecordFactory(under_objection=True)
    subject_access_grant(subject=record.subject, user=citizen, actor=None)
    return record


@pytest.fixture
def foreign_record():
    return CreditRecordFactory(subject=SubjectFactory(name="别人"))


def api(user) -> APIClient:
    client = APIClient(headers={"accept-language": "en"})
    client.force_authenticate(user)
    return client


def test_my_records_page_shows_agency_legal_basis_period_and_mark(client, citizen, own_record):
    client.force_login(citizen)

    response = client.get(reverse("portal:records"))

    assert response.status_code == 200
    page = response.content.decode()
    assert own_record.agency.name_zh in page
    assert own_record.category.legal_basis in page
    assert '<span class="nowrap">2026-06-01 –</span> <span class="nowrap">2027-06-01</span>' in page
    assert own_record.subject.identifier_masked in page
    assert list(response.context["records"]) == [own_record]
    assert 'class="mark"' in page


def test_my_records_page_lists_nothing_of_other_subjects(
    client, citizen, own_record, foreign_record
):
    client.force_login(citizen)

    response = client.get(reverse("portal:records"))

    assert list(response.context["records"]) == [own_record]
    assert foreign_record.record_number not in response.content.decode()
    assert foreign_record.subject.name not in response.content.decode()


def test_other_subjects_pages_are_404(client, citizen, own_record, foreign_record):
    client.force_login(citizen)

    subject_page = client.get(reverse("portal:subject", args=[foreign_record.subject.public_id]))
    record_page = client.get(reverse("portal:record", args=[foreign_record.public_id]))

    assert (subject_page.status_code, record_page.status_code) == (404, 404)


def test_own_subject_and_record_pages_are_shown(client, citizen, own_record):
    client.force_login(citizen)

    subject_page = client.get(reverse("portal:subject", args=[own_record.subject.public_id]))
    record_page = client.get(reverse("portal:record", args=[own_record.public_id]))

    assert (subject_page.status_code, record_page.status_code) == (200, 200)
    assert record_page.context["record"] == own_record
    assert own_record.category.legal_basis in record_page.content.decode()


def test_anonymous_visitor_is_sent_to_login(client, own_record):
    response = client.get(reverse("portal:records"))

    assert response.status_code == 302
    assert response["Location"] == f"{reverse('login')}?next={reverse('portal:records')}"


def test_api_lists_only_own_records(citizen, own_record, foreign_record):
    response = api(citizen).get("/api/v1/me/records/")

    assert response.status_code == 200
    assert [item["id"] for item in response.json()["results"]] == [str(own_record.public_id)]
    assert response.json()["next"] is None
    item = response.json()["results"][0]
    assert item["agency"]["name_zh"] == own_record.agency.name_zh
    assert item["category"]["legal_basis"] == own_record.category.legal_basis
    assert (item["publication_start"], item["publication_end"]) == ("2026-06-01", "2027-06-01")
    assert item["under_objection"] is True


def test_api_other_subject_is_404(citizen, own_record, foreign_record):
    response = api(citizen).get(
        "/api/v1/me/records/", {"subject": str(foreign_record.subject.public_id)}
    )

    assert response.status_code == 404
    assert response.json() == {"detail": "Not found."}


def test_api_malformed_subject_id_is_404_not_500(citizen, own_record):
    response = api(citizen).get("/api/v1/me/records/", {"subject": "not-a-uuid"})

    assert response.status_code == 404


def test_api_requires_authentication(own_record):
    response = APIClient(headers={"accept-language": "en"}).get("/api/v1/me/records/")

    assert response.status_code == 401
    assert response.json() == {"detail": "Authentication is required.", "code": "not_authenticated"}


def test_api_subjects_show_masked_identifier(citizen, own_record):
    response = api(citizen).get("/api/v1/me/subjects/")

    assert response.json() == [
        {
            "id": str(own_record.subject.public_id),
            "kind": "person",
            "name": own_record.subject.name,
            "identifier": own_record.subject.identifier_masked,
        }
    ]


def test_revoked_grant_hides_the_records_again(client, citizen, own_record):
    subject_access_revoke(subject=own_record.subject, user=citizen, actor=None)
    client.force_login(citizen)

    response = client.get(reverse("portal:record", args=[own_record.public_id]))

    assert response.status_code == 404


def test_expired_and_deleted_records_are_not_disclosed(client, citizen, own_record):
    expired = CreditRecordFactory(subject=own_record.subject, status=CreditRecord.Status.EXPIRED)
    client.force_login(citizen)

    response = client.get(reverse("portal:record", args=[expired.public_id]))

    assert response.status_code == 404


def test_list_query_count_does_not_grow_with_rows(
    client, citizen, own_record, django_assert_num_queries
):
    client.force_login(citizen)
    client.get(reverse("portal:records"))  # warm the session
    with django_assert_num_queries(5) as one:  # session, user, subjects, records, statements
        client.get(reverse("portal:records"))
    for _ in range(49):
        CreditRecordFactory(subject=own_record.subject)

    with django_assert_num_queries(len(one.captured_queries)):
        response = client.get(reverse("portal:records"))

    assert len(response.context["records"]) == 50


def test_portal_speaks_chinese_first_and_english_on_request(client, citizen, own_record):
    client.force_login(citizen)

    chinese = client.get(reverse("portal:records")).content.decode()
    english = client.get(reverse("portal:records"), headers={"accept-language": "en"})

    assert '<html lang="zh-hans">' in chinese
    assert "<h1>我的信用记录</h1>" in chinese
    assert "异议处理中" in chinese
    assert "<h1>My records</h1>" in english.content.decode()
    assert "Under objection" in english.content.decode()
