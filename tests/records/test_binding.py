"""Proving who you are (issue 13) and the identity-check queue (issue 14)."""

from __future__ import annotations

import io
import json
import random
import re
import smtplib
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from django.core.cache import cache
from django.core.files.uploadedfile import SimpleUploadedFile
from django.utils import timezone
from PIL import Image
from rest_framework.test import APIClient

from accounts.models import User
from audit.models import AuditEvent
from records import demo, identifiers
from records.binding import CODE_ATTEMPTS, REQUESTS_PER_USER, subject_contact_set
from records.models import Agency, CreditRecord, Subject, SubjectBinding, SubjectContact
from records.selectors import subject_list_for_user
from tests.factories import SubjectFactory, UserFactory, registry_record
from tests.staff import staff_login

pytestmark = pytest.mark.django_db

RESIDENT_ID = identifiers.make_resident_id(random.Random(13))
OTHER_RESIDENT_ID = identifiers.make_resident_id(random.Random(14))
CREDIT_CODE = identifiers.make_credit_code(random.Random(13))
CONTACT = "wangwei.contact@example.org"
COMPANY_CONTACT = "office@huaxin.example.org"
SENT = "If the details match a record we hold, we have sent a code"


@dataclass
class People:
    person: Subject
    company: Subject
    person_record: CreditRecord
    company_record: CreditRecord
    citizen: User
    rep: User
    second_rep: User
    caseworker: User  # Shanghai credit centre
    market_caseworker: User  # a providing unit: checks no identities


@pytest.fixture
def people(settings: Any, tmp_path: Path) -> People:
    settings.DATA_DIR = tmp_path / "data"
    settings.LANGUAGE_CODE = "en"
    cache.clear()  # the throttles count in the cache, which outlives each test's rollback
    demo.registry_load()
    person = SubjectFactory(name="王伟", identifier=RESIDENT_ID)
    company = SubjectFactory(
        kind=Subject.Kind.ORGANISATION, name="上海华信贸易有限公司", identifier=CREDIT_CODE
    )
    subject_contact_set(subject=person, email=CONTACT)
    subject_contact_set(subject=company, email=COMPANY_CONTACT)

    def staff(username: str, agency: str) -> User:
        return UserFactory(
            username=username, role="caseworker", agency=Agency.objects.get(code=agency)
        )

    return People(
        person=person,
        company=company,
        person_record=registry_record("shanghai-market", person, "SH-1"),
        company_record=registry_record("shanghai-market", company, "SH-2"),
        citizen=UserFactory(username="wangwei", role="citizen"),
        rep=UserFactory(username="rep-one", role="citizen"),
        second_rep=UserFactory(username="rep-two", role="citizen"),
        caseworker=staff("sh-cw", "shanghai-credit-centre"),
        market_caseworker=staff("sh-market-cw", "shanghai-market"),
    )


def api(user: User | None = None) -> APIClient:
    client = APIClient(headers={"accept-language": "en"})
    if user is not None:
        client.force_authenticate(user)
    return client


def pdf_letter(name: str = "letter.pdf") -> SimpleUploadedFile:
    out = io.BytesIO()
    Image.new("RGB", (40, 20), "white").save(out, format="PDF")
    return SimpleUploadedFile(name, out.getvalue(), content_type="application/pdf")


def code_in(mail: Any) -> str:
    found = re.search(r"^\s+(\d{6})\s*$", mail.body, re.MULTILINE)
    assert found is not None
    return found.group(1)


def request_code(client: Any, capture: Any, **overrides: str) -> Any:
    data = {"kind": "person", "name": "王伟", "identifier": RESIDENT_ID, **overrides}
    with capture(execute=True):
        return client.post("/portal/bind/", data)


def audit_actions() -> list[str]:
    return list(
        AuditEvent.objects.filter(action__startswith="subject.")
        .order_by("sequence")
        .values_list("action", flat=True)
    )


def no_personal_data_in_audit() -> None:
    for text in AuditEvent.objects.values_list("canonical", flat=True):
        for secret in (RESIDENT_ID, CREDIT_CODE, CONTACT, COMPANY_CONTACT, RESIDENT_ID[-6:]):
            assert secret not in text


# --- a person, by code ---------------------------------------------------------------------------


def test_a_person_binds_by_code_and_then_sees_their_records(
    client, people, mailoutbox, django_capture_on_commit_callbacks
):
    client.force_login(people.citizen)
    before = client.get("/portal/records/")
    assert "SH-1" not in before.content.decode()
    assert 'href="/portal/bind/"' in before.content.decode()

    # The identifier as people type it: lower-case x, spaces around.
    response = request_code(
        client, django_capture_on_commit_callbacks, identifier=f"  {RESIDENT_ID.lower()} "
    )

    binding = SubjectBinding.objects.get()
    assert response.status_code == 302
    assert response["Location"] == f"/portal/bindings/{binding.public_id}/"
    page = client.get(response["Location"]).content.decode()
    assert SENT in page
    assert 'autocomplete="one-time-code"' in page
    [mail] = mailoutbox
    assert mail.to == [CONTACT]
    assert "wangwei" in mail.body  # which account asked
    assert (binding.status, binding.method, binding.subject) == (
        "pending",
        "one_time_code",
        people.person,
    )
    assert RESIDENT_ID not in json.dumps(
        list(SubjectBinding.objects.values("identifier_hash", "identifier_masked", "code_hash"))
    )
    # Nothing about the subject shows until the code is entered.
    assert "SH-1" not in client.get("/portal/records/").content.decode()

    confirmed = client.post(f"/portal/bindings/{binding.public_id}/", {"code": code_in(mail)})

    assert confirmed.status_code == 302
    binding.refresh_from_db()
    assert (binding.status, binding.decided_by, binding.code_hash) == (
        "verified",
        people.citizen,
        "",
    )
    assert "SH-1" in client.get("/portal/records/").content.decode()
    records = api(people.citizen).get("/api/v1/me/records/").json()["results"]
    assert [r["record_number"] for r in records] == ["SH-1"]
    assert audit_actions() == [
        "subject.binding_requested",
        "subject.access_granted",
        "subject.binding_verified",
    ]
    granted = AuditEvent.objects.get(action="subject.binding_verified")
    assert granted.payload == {
        "binding": binding.pk,
        "subject": people.person.pk,
        "user": people.citizen.pk,
    }
    no_personal_data_in_audit()


def test_five_wrong_codes_lock_the_request(people, mailoutbox, django_capture_on_commit_callbacks):
    client = api(people.citizen)
    with django_capture_on_commit_callbacks(execute=True):
        created = client.post(
            "/api/v1/bindings/",
            {"kind": "person", "name": "王伟", "identifier": RESIDENT_ID},
            format="json",
        )
    assert created.status_code == 202
    right = code_in(mailoutbox[0])
    wrong = f"{(int(right) + 1) % 10**6:06d}"
    url = f"/api/v1/bindings/{created.json()['id']}/confirm/"

    answers = [client.post(url, {"code": wrong}, format="json") for _ in range(CODE_ATTEMPTS)]
    after = client.post(url, {"code": right}, format="json")

    assert [a.status_code for a in answers] == [400, 400, 400, 400, 429]
    assert answers[0].json()["detail"] == "That code is not right. 4 attempt(s) left."
    assert after.status_code == 429
    assert "locked" in after.json()["detail"]
    assert list(subject_list_for_user(user=people.citizen)) == []
    binding = SubjectBinding.objects.get()
    assert (binding.status, binding.code_attempts) == ("expired", CODE_ATTEMPTS)
    assert audit_actions().count("subject.binding_code_failed") == CODE_ATTEMPTS
    assert "subject.binding_verified" not in audit_actions()


def test_an_expired_code_is_refused(
    people, mailoutbox, time_machine, django_capture_on_commit_callbacks
):
    client = api(people.citizen)
    with django_capture_on_commit_callbacks(execute=True):
        created = client.post(
            "/api/v1/bindings/",
            {"kind": "person", "name": "王伟", "identifier": RESIDENT_ID},
            format="json",
        )
    code = code_in(mailoutbox[0])
    time_machine.move_to(timezone.now() + timedelta(minutes=16), tick=True)

    response = client.post(
        f"/api/v1/bindings/{created.json()['id']}/confirm/", {"code": code}, format="json"
    )

    assert response.status_code == 400
    assert response.json()["code"] == "code_expired"
    assert SubjectBinding.objects.get().status == "expired"
    assert list(subject_list_for_user(user=people.citizen)) == []


@pytest.mark.parametrize(
    ("kind", "identifier", "message"),
    [
        ("person", RESIDENT_ID[:17] + ("0" if RESIDENT_ID[17] != "0" else "1"), "check digit"),
        ("person", "12345", "must be 18 characters"),
        ("organisation", "I" * 18, "may only contain digits and capital letters"),
    ],
)
def test_a_malformed_identifier_gets_a_clear_message_and_changes_nothing(
    client,
    settings,
    people,
    mailoutbox,
    django_capture_on_commit_callbacks,
    kind,
    identifier,
    message,
):
    client.force_login(people.citizen)
    events = AuditEvent.objects.count()
    letter = {"letter": pdf_letter()} if kind == "organisation" else {}

    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        page = client.post(
            "/portal/bind/", {"kind": kind, "name": "王伟", "identifier": identifier, **letter}
        )
        answer = api(people.citizen).post(
            "/api/v1/bindings/",
            {"kind": kind, "name": "王伟", "identifier": identifier},
            format="json",
        )

    html = page.content.decode()
    assert page.status_code == 200
    assert message in html
    assert 'href="#id_identifier"' in html  # the error summary leads to the field
    assert answer.status_code == 400
    assert answer.json()["field"] == "identifier"
    assert message in answer.json()["detail"]
    assert SubjectBinding.objects.count() == 0
    assert AuditEvent.objects.count() == events
    assert mailoutbox == []
    assert callbacks == []
    assert not (Path(settings.DATA_DIR) / "evidence").exists()


def test_details_that_match_nothing_get_the_same_answer_and_grant_nothing(
    people, mailoutbox, django_capture_on_commit_callbacks
):
    client = api(people.citizen)

    def ask(name: str, identifier: str) -> dict[str, Any]:
        with django_capture_on_commit_callbacks(execute=True):
            response = client.post(
                "/api/v1/bindings/",
                {"kind": "person", "name": name, "identifier": identifier},
                format="json",
            )
        assert response.status_code == 202
        body = response.json()
        return {key: body[key] for key in ("detail", "status", "method", "subject", "reason")}

    matching = ask("王伟", RESIDENT_ID)
    wrong_name = ask("李娜", RESIDENT_ID)
    unknown = ask("王伟", OTHER_RESIDENT_ID)

    assert matching == wrong_name == unknown
    assert SENT in matching["detail"]
    assert len(mailoutbox) == 1  # only the matching request reached the subject's contact
    unmatched = SubjectBinding.objects.filter(subject=None)
    assert unmatched.count() == 2
    for binding in unmatched:
        answer = client.post(
            f"/api/v1/bindings/{binding.public_id}/confirm/",
            {"code": code_in(mailoutbox[0])},
            format="json",
        )
        assert answer.status_code == 400
    assert list(subject_list_for_user(user=people.citizen)) == []


# --- a company, by letter ------------------------------------------------------------------------


def ask_as_representative(client: Any, user: User) -> SubjectBinding:
    client.force_login(user)
    response = client.post(
        "/portal/bind/",
        {
            "kind": "organisation",
            "name": "上海华信贸易有限公司",
            "identifier": CREDIT_CODE,
            "letter": pdf_letter(f"授权书-{user.username}.pdf"),
        },
    )
    assert response.status_code == 302
    return SubjectBinding.objects.get(user=user)


def test_a_caseworker_approves_two_representatives_of_a_company(client, people, mailoutbox):
    first = ask_as_representative(client, people.rep)
    second = ask_as_representative(client, people.second_rep)
    assert (first.method, first.status, first.subject) == ("documents", "pending", people.company)
    assert mailoutbox == []
    assert list(subject_list_for_user(user=people.rep)) == []

    staff_login(client, people.caseworker)
    queue = client.get("/dashboard/identity/")
    html = queue.content.decode()
    assert queue.status_code == 200
    assert html.index(str(first.public_id)) < html.index(str(second.public_id))  # oldest first
    assert people.company.identifier_masked in html
    assert CREDIT_CODE not in html
    assert 'href="/dashboard/identity/"' in html  # the navigation offers the queue

    letter = client.get(f"/dashboard/identity/{first.public_id}/letter/")
    assert letter.status_code == 200
    assert letter["Content-Type"] == "application/pdf"
    assert letter["Content-Disposition"].startswith("attachment;")
    assert letter["X-Content-Type-Options"] == "nosniff"
    assert b"".join(letter.streaming_content).startswith(b"%PDF")
    [read] = AuditEvent.objects.filter(action="read.identity_letter_opened")
    assert (read.actor_id, read.payload["binding"]) == (people.caseworker.pk, first.pk)

    for binding in (first, second):
        decided = client.post(
            f"/dashboard/identity/{binding.public_id}/decide/", {"decision": "approve"}
        )
        assert decided.status_code == 302

    assert list(subject_list_for_user(user=people.rep)) == [people.company]
    assert list(subject_list_for_user(user=people.second_rep)) == [people.company]
    assert set(SubjectBinding.objects.values_list("status", "decided_by")) == {
        ("verified", people.caseworker.pk)
    }
    assert "No identity checks are waiting" in client.get("/dashboard/identity/").content.decode()
    no_personal_data_in_audit()


def test_a_refused_check_shows_the_reason_to_the_representative(client, people):
    binding = ask_as_representative(client, people.rep)
    checker = api(people.caseworker)
    url = f"/api/v1/identity-checks/{binding.public_id}/decide/"

    without_reason = checker.post(url, {"approve": False}, format="json")
    binding.refresh_from_db()
    assert without_reason.status_code == 400
    assert binding.status == "pending"

    listed = checker.get("/api/v1/identity-checks/").json()
    assert [check["id"] for check in listed] == [str(binding.public_id)]
    assert listed[0]["identifier"] == people.company.identifier_masked
    refused = checker.post(
        url, {"approve": False, "reason": "The letter bears no company seal."}, format="json"
    )

    assert refused.status_code == 200
    client.force_login(people.rep)
    page = client.get("/portal/bindings/").content.decode()
    assert "The letter bears no company seal." in page
    [own] = api(people.rep).get("/api/v1/bindings/").json()
    assert (own["status"], own["reason"], own["subject"]) == (
        "refused",
        "The letter bears no company seal.",
        None,
    )
    assert list(subject_list_for_user(user=people.rep)) == []
    assert AuditEvent.objects.filter(action="subject.binding_refused").count() == 1


def test_a_company_request_without_a_letter_is_refused_with_a_message(client, people):
    client.force_login(people.rep)

    response = client.post(
        "/portal/bind/",
        {"kind": "organisation", "name": "上海华信贸易有限公司", "identifier": CREDIT_CODE},
    )

    assert response.status_code == 200
    assert "authorisation letter" in response.content.decode()
    assert SubjectBinding.objects.count() == 0


# --- revoking, throttling, isolation -------------------------------------------------------------


def bound(people: People, mailoutbox: Any, capture: Any) -> SubjectBinding:
    client = api(people.citizen)
    with capture(execute=True):
        created = client.post(
            "/api/v1/bindings/",
            {"kind": "person", "name": "王伟", "identifier": RESIDENT_ID},
            format="json",
        ).json()
    confirmed = client.post(
        f"/api/v1/bindings/{created['id']}/confirm/",
        {"code": code_in(mailoutbox[-1])},
        format="json",
    )
    assert confirmed.status_code == 200
    assert confirmed.json()["subject"] == str(people.person.public_id)
    return SubjectBinding.objects.get(public_id=created["id"])


def test_ending_a_link_takes_effect_on_the_next_request(
    client, people, mailoutbox, django_capture_on_commit_callbacks
):
    binding = bound(people, mailoutbox, django_capture_on_commit_callbacks)
    client.force_login(people.citizen)
    record_url = f"/portal/records/{people.person_record.public_id}/"
    assert client.get(record_url).status_code == 200

    ended = client.post(f"/portal/bindings/{binding.public_id}/end/")

    assert ended.status_code == 302
    assert client.get(record_url).status_code == 404
    assert api(people.citizen).get("/api/v1/me/records/").json()["results"] == []
    binding.refresh_from_db()
    assert binding.status == "revoked"
    assert audit_actions()[-2:] == ["subject.access_revoked", "subject.binding_revoked"]


def test_too_many_requests_are_refused_with_429(client, people):
    answers = [
        api(people.citizen).post(
            "/api/v1/bindings/",
            {"kind": "person", "name": "王伟", "identifier": OTHER_RESIDENT_ID},
            format="json",
        )
        for _ in range(REQUESTS_PER_USER + 1)
    ]
    client.force_login(people.citizen)
    page = client.post(
        "/portal/bind/", {"kind": "person", "name": "王伟", "identifier": RESIDENT_ID}
    )

    assert [a.status_code for a in answers] == [202] * REQUESTS_PER_USER + [429]
    assert answers[-1].json()["detail"] == (
        "Too many requests to prove who you are. Try again in an hour."
    )
    assert page.status_code == 429
    assert "Too many requests" in page.content.decode()
    assert SubjectBinding.objects.count() == REQUESTS_PER_USER
    assert audit_actions().count("subject.binding_throttled") == 2


def test_another_users_binding_and_the_identity_queue_are_not_found(
    client, people, mailoutbox, django_capture_on_commit_callbacks
):
    binding = bound(people, mailoutbox, django_capture_on_commit_callbacks)
    letter_binding = ask_as_representative(client, people.rep)
    stranger = UserFactory(username="stranger", role="citizen")
    client.force_login(stranger)
    other = api(stranger)

    assert client.get(f"/portal/bindings/{binding.public_id}/").status_code == 404
    assert client.post(f"/portal/bindings/{binding.public_id}/end/").status_code == 404
    assert other.get(f"/api/v1/bindings/{binding.public_id}/").status_code == 404
    assert (
        other.post(
            f"/api/v1/bindings/{binding.public_id}/confirm/", {"code": "123456"}, format="json"
        ).status_code
        == 404
    )
    assert other.post(f"/api/v1/bindings/{binding.public_id}/revoke/").status_code == 404
    assert other.get("/api/v1/bindings/").json() == []
    assert client.get("/dashboard/identity/").status_code == 404
    assert other.get("/api/v1/identity-checks/").status_code == 404
    assert (
        other.post(
            f"/api/v1/identity-checks/{letter_binding.public_id}/decide/",
            {"approve": True},
            format="json",
        ).status_code
        == 404
    )
    # A providing unit's caseworker works in the dashboard but checks no identities.
    staff_login(client, people.market_caseworker)
    assert client.get("/dashboard/identity/").status_code == 404
    assert client.get(f"/dashboard/identity/{letter_binding.public_id}/letter/").status_code == 404
    assert api(people.market_caseworker).get("/api/v1/identity-checks/").status_code == 404
    assert list(subject_list_for_user(user=stranger)) == []
    binding.refresh_from_db()
    assert binding.status == "verified"


def test_demo_contacts_are_added_once_and_never_shown_in_clear(people):
    SubjectContact.objects.all().delete()

    added = demo.demo_contacts_load()
    again = demo.demo_contacts_load()

    assert (added, again) == (2, 0)
    contact = SubjectContact.objects.get(subject=people.person)
    assert contact.email_masked.endswith("@example.org")
    assert "***" in contact.email_masked


def test_a_mail_that_cannot_be_sent_changes_the_answer_in_nothing_and_logs_no_address(
    client, people, monkeypatch, caplog, django_capture_on_commit_callbacks
):
    def refused(*args: Any, **kwargs: Any) -> None:
        raise smtplib.SMTPRecipientsRefused({CONTACT: (550, b"no such mailbox")})

    monkeypatch.setattr("records.binding.send_mail", refused)
    client.force_login(people.citizen)

    response = request_code(client, django_capture_on_commit_callbacks)

    assert response.status_code == 302
    assert SubjectBinding.objects.get().status == "pending"
    assert "could not be mailed" in caplog.text
    assert CONTACT not in caplog.text
    assert not re.search(r"\b\d{6}\b", caplog.text)


def test_the_admin_shows_bindings_read_only_and_still_grants_by_hand(client, people):
    admin_user = UserFactory(
        username="admin", role="administrator", is_staff=True, is_superuser=True
    )
    ask_as_representative(client, people.rep)
    staff_login(client, admin_user)

    listing = client.get("/admin/records/subjectbinding/")
    granted = client.post(
        f"/admin/records/subject/{people.person.pk}/change/",
        {
            "name": people.person.name,
            "subjectuserobjectpermission_set-TOTAL_FORMS": "1",
            "subjectuserobjectpermission_set-INITIAL_FORMS": "0",
            "subjectuserobjectpermission_set-MIN_NUM_FORMS": "0",
            "subjectuserobjectpermission_set-MAX_NUM_FORMS": "1000",
            "subjectuserobjectpermission_set-0-user": str(people.citizen.pk),
        },
    )

    assert listing.status_code == 200
    assert people.company.identifier_masked in listing.content.decode()
    assert CREDIT_CODE not in listing.content.decode()
    assert client.get("/admin/records/subjectbinding/add/").status_code == 403
    assert granted.status_code == 302
    assert list(subject_list_for_user(user=people.citizen)) == [people.person]


def queries(client: Any, url: str) -> int:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as captured:
        assert client.get(url).status_code == 200
    return len(captured)


def test_the_lists_cost_the_same_queries_for_one_row_and_for_several(client, people):
    ask_as_representative(client, people.rep)
    staff_login(client, people.caseworker)
    checker = api(people.caseworker)
    own = api(people.rep)
    one = (
        queries(client, "/dashboard/identity/"),
        queries(checker, "/api/v1/identity-checks/"),
        queries(own, "/api/v1/bindings/"),
    )
    ask_as_representative(client, people.second_rep)
    for number in range(3):
        ask_as_representative(client, UserFactory(username=f"rep-{number + 3}", role="citizen"))
    for _ in range(3):
        api(people.rep).post(
            "/api/v1/bindings/",
            {"kind": "person", "name": "王伟", "identifier": OTHER_RESIDENT_ID},
            format="json",
        )
    staff_login(client, people.caseworker)

    assert SubjectBinding.objects.filter(method="documents", status="pending").count() == 5
    assert SubjectBinding.objects.filter(user=people.rep).count() == 4
    several = (
        queries(client, "/dashboard/identity/"),
        queries(checker, "/api/v1/identity-checks/"),
        queries(own, "/api/v1/bindings/"),
    )

    assert several == one
