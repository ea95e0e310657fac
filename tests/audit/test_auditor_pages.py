"""The auditor pages (issue 12): who sees them, searching and paging the log, a case's history
and dossier, integrity checks, export requests; and the auditor role reading only, in the
admin and in the API."""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from django.contrib import admin
from django.contrib.auth.models import Permission
from django.db import connection
from django.test import Client
from django.urls import reverse
from django.utils import timezone
from rest_framework.test import APIClient
from time_machine import TimeMachineFixture

from accounts.models import User
from audit.exports import SHANGHAI
from audit.integrity import audit_integrity_check_request, audit_integrity_check_run
from audit.models import AuditEvent, AuditExport, AuditIntegrityCheck
from audit.services import audit_record
from objections.models import Case
from objections.services.evidence import evidence_attach
from objections.services.grants import case_access_grant
from records.crypto import identifier_decrypt
from records.models import CreditRecord
from scs_cases.celery import app as celery_app
from tests.audit.test_audit import without_append_only_triggers
from tests.conftest import head_sequence
from tests.factories import AgencyFactory, UserFactory
from tests.objections import conftest as objections_conftest
from tests.objections.conftest import World, case_snapshot
from tests.objections.test_case_api import file_case, filing, transition
from tests.objections.test_evidence import pdf_bytes, upload
from tests.staff import staff_login

pytestmark = [pytest.mark.django_db, pytest.mark.postgres]

world = objections_conftest.world  # the case tests' small world, as a fixture here too

CASE = "SH-2026-000555"
PAGES = ["audit:events", "audit:integrity", "audit:exports"]


@pytest.fixture(autouse=True)
def _private_folders(settings, tmp_path) -> None:
    settings.DATA_DIR = tmp_path / "data"
    settings.AUDIT_CHECKPOINT_FILE = str(tmp_path / "checkpoints.jsonl")
    settings.AUDIT_CHECKPOINT_EMAILS = []


@pytest.fixture
def auditor() -> User:
    return UserFactory(username="auditor-pages", role="auditor")


@pytest.fixture
def eager_tasks(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(celery_app.conf, "task_always_eager", True)


def signed_in(user: User) -> Client:
    client = Client(headers={"accept-language": "en"})
    staff_login(client, user)
    return client


def case_event(action: str = "case.transitioned", reference: str = CASE, **data: Any) -> int:
    audit_record(
        actor=None,
        action=action,
        target_type="objections.case",
        target_id=1,
        case_reference=reference,
        data=data,
    )
    return head_sequence()


def sequences(response: Any) -> list[int]:
    return [row.event.sequence for row in response.context["rows"]]


# ---------------------------------------------------------------------------------------------
# Who sees the pages


@pytest.mark.parametrize("page", PAGES)
@pytest.mark.parametrize("role", ["auditor", "administrator"])
def test_auditors_and_administrators_see_the_pages(page: str, role: str):
    response = signed_in(UserFactory(role=role)).get(reverse(page))

    assert response.status_code == 200


@pytest.mark.parametrize(
    "path",
    [
        "/audit/",
        "/audit/integrity/",
        "/audit/exports/",
        f"/audit/cases/{CASE}/",
        f"/audit/cases/{CASE}/dossier/",
    ],
)
@pytest.mark.parametrize("role", ["caseworker", "supervisor", "citizen", "agency_system"])
def test_everyone_else_signed_in_gets_404_and_changes_nothing(path: str, role: str):
    case_event()
    client = signed_in(UserFactory(role=role, is_staff=True))
    start = head_sequence()

    assert client.get(path).status_code == 404
    assert client.post(path, {"case_reference": CASE}).status_code in (404, 405)
    assert head_sequence() == start
    assert not AuditIntegrityCheck.objects.exists()
    assert not AuditExport.objects.exists()


@pytest.mark.parametrize("path", ["/audit/", "/audit/integrity/", "/audit/exports/"])
def test_anonymous_visitors_are_sent_to_the_login_page(path: str):
    response = Client().get(path)

    assert response.status_code == 302
    assert response["Location"] == f"/accounts/login/?next={path}"


def test_the_navigation_offers_the_log_to_auditors_only(auditor):
    citizen = UserFactory(role="citizen")

    assert 'href="/audit/"' in signed_in(auditor).get("/").content.decode()
    assert 'href="/audit/"' not in signed_in(citizen).get("/").content.decode()


# ---------------------------------------------------------------------------------------------
# Searching the log


def test_the_log_shows_every_column_newest_first(auditor):
    first = case_event(transition="start_review", to="under_review")
    second = case_event(action="case.filed", reference="SH-2026-000556", kind="objection")

    response = signed_in(auditor).get("/audit/", {"action": "case.", "match": "prefix"})

    assert sequences(response)[:2] == [second, first]
    html = response.content.decode()
    row = re.search(rf'<tr data-sequence="{first}">.*?</tr>', html, re.S)
    assert row is not None
    for text in (
        "case.transitioned",
        "objections.case",
        CASE,
        f'href="/audit/cases/{CASE}/"',
        "system",
        "&quot;transition&quot;: &quot;start_review&quot;",
    ):
        assert text in row.group(0)


def test_each_filter_narrows_the_search(auditor, time_machine: TimeMachineFixture):
    # The database stamps an event no earlier than its own clock, so the days are far ahead.
    other_actor = UserFactory(role="caseworker")
    time_machine.move_to(datetime(2090, 3, 1, 23, 30, tzinfo=SHANGHAI), tick=False)
    march = case_event(action="case.filed")
    time_machine.move_to(datetime(2090, 3, 2, 0, 30, tzinfo=SHANGHAI), tick=False)
    audit_record(actor=other_actor, action="case.transitioned", case_reference="SH-2026-000999")
    by_actor = head_sequence()
    time_machine.move_to(datetime(2090, 3, 5, 10, tzinfo=SHANGHAI), tick=False)
    later = case_event(action="record.corrected", reference="")
    client = signed_in(auditor)
    signing_in = head_sequence()

    def found(**query: Any) -> list[int]:
        response = client.get("/audit/", query)
        assert response.status_code == 200
        return [s for s in sequences(response) if march <= s < signing_in]

    assert found(case_reference=CASE) == [march]
    assert found(actor_id=other_actor.pk) == [by_actor]
    assert found(action="case.filed") == [march]
    assert found(action="case.", match="exact") == []
    assert found(action="case.", match="prefix") == [by_actor, march]
    # Shanghai days: 23:30 on 1 March belongs to 1 March, 00:30 on 2 March to 2 March
    assert found(since="2090-03-01", until="2090-03-01") == [march]
    assert found(since="2090-03-02", until="2090-03-04") == [by_actor]
    assert found(since="2090-03-02") == [later, by_actor]
    assert found(until="2090-03-01") == [march]


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ({"actor_id": "abc"}, "actor_id"),
        ({"since": "2026-13-01"}, "since"),
        ({"since": "2026-03-05", "until": "2026-03-01"}, "until"),
    ],
)
def test_bad_search_input_shows_an_error_summary_not_a_500(auditor, query, field):
    response = signed_in(auditor).get("/audit/", query)

    assert response.status_code == 200
    html = response.content.decode()
    assert 'class="error-summary" role="alert"' in html
    assert f'href="#id_{field}"' in html
    assert 'aria-invalid="true"' in html
    assert response.context["rows"] == []


def test_keyset_pages_follow_each_other_without_overlap(auditor):
    made = [case_event(n=index) for index in range(60)]
    client = signed_in(auditor)

    first = client.get("/audit/", {"case_reference": CASE})
    second = client.get(first.context["next_url"])

    assert sequences(first) == made[::-1][:50]
    assert sequences(second) == made[::-1][50:]
    assert second.context["next_url"] is None
    assert "OFFSET" not in str(connection.queries)


def test_a_forged_cursor_shows_the_first_page(auditor):
    made = case_event()

    response = signed_in(auditor).get("/audit/", {"case_reference": CASE, "cursor": "bm90LW91cnM"})

    assert response.status_code == 200
    assert sequences(response) == [made]
    assert not response.context["cursor_ok"]


def test_the_log_page_queries_the_same_for_one_and_fifty_rows(auditor, django_assert_num_queries):
    client = signed_in(auditor)
    case_event()
    client.get("/audit/", {"case_reference": CASE})  # warm the session
    # session, user, the second factor's device, roles, events
    with django_assert_num_queries(5) as one:
        one_row = client.get("/audit/", {"case_reference": CASE})
    for index in range(60):
        case_event(n=index)

    with django_assert_num_queries(len(one.captured_queries)):
        many = client.get("/audit/", {"case_reference": CASE})

    assert (len(one_row.context["rows"]), len(many.context["rows"])) == (1, 50)
    assert not any("COUNT(" in query["sql"] for query in one.captured_queries)


# ---------------------------------------------------------------------------------------------
# A case's history and dossier


def test_a_case_history_lists_its_events_in_order_with_export_and_dossier_links(
    world: World,
):
    case = file_case(world.citizen, world.sh_record)
    transition(world.caseworker, case, "start_review")

    response = signed_in(world.auditor).get(f"/audit/cases/{case.reference}/")

    assert response.status_code == 200
    expected = list(
        AuditEvent.objects.filter(case_reference=case.reference)
        .order_by("sequence")
        .values_list("sequence", flat=True)
    )
    assert sequences(response) == expected
    html = response.content.decode()
    assert f'href="/audit/cases/{case.reference}/dossier/"' in html
    assert f'href="/audit/exports/?case_reference={case.reference}"' in html


def test_an_unknown_case_is_404(auditor):
    assert signed_in(auditor).get("/audit/cases/SH-1999-000001/").status_code == 404
    assert signed_in(auditor).get("/audit/cases/SH-1999-000001/dossier/").status_code == 404


@pytest.mark.usefixtures("private_folders")
def test_the_dossier_shows_versions_evidence_decisions_and_timeline_with_the_identifier_masked(
    world: World,
):
    case = file_case(world.citizen, world.sh_record)
    (evidence,) = evidence_attach(
        case=case, files=[upload("决定书 final.pdf", pdf_bytes())], actor=world.citizen
    )
    transition(world.caseworker, case, "start_review")
    decided = transition(
        world.caseworker,
        case,
        "grant",
        outcome="granted",
        reasons="The penalty was revoked on 2024-03-01.",
        correction={"title": "已撤销的处罚"},
    )
    assert decided.status_code == 200, decided.json()
    old_title = world.sh_record.title
    logged = list(
        AuditEvent.objects.filter(case_reference=case.reference)
        .order_by("sequence")
        .values_list("sequence", flat=True)
    )

    response = signed_in(world.auditor).get(f"/audit/cases/{case.reference}/dossier/")

    assert response.status_code == 200
    html = response.content.decode()
    dossier = response.context["dossier"]
    assert [v.title for v in dossier.versions] == [old_title]
    assert 'data-version="1"' in html
    assert 'data-version="2"' in html
    assert old_title in html
    assert "已撤销的处罚" in html
    assert "The penalty was revoked on 2024-03-01." in html
    assert [d.outcome for d in dossier.decisions] == ["granted"]
    assert [e.sequence for e in dossier.timeline] == logged
    assert "case.transitioned" in html
    assert [e.pk for e in dossier.evidence] == [evidence.pk]
    assert f'data-evidence="{evidence.public_id}"' in html
    assert evidence.sha256 in html
    assert "决定书 final.pdf" in html
    # reading the dossier is a read of the case, recorded once, with ids only
    read = AuditEvent.objects.get(case_reference=case.reference, sequence__gt=logged[-1])
    assert (read.action, read.actor_id, read.payload) == (
        "read.case_opened",
        world.auditor.pk,
        {"subject": case.subject_id, "record": case.record_id},
    )
    subject = world.sh_record.subject
    assert subject.identifier_masked in html
    assert identifier_decrypt(subject.identifier_encrypted) not in html
    assert "@media print" in Path("static/audit/audit.css").read_text()


def test_the_dossier_is_read_only(world: World):
    case = file_case(world.citizen, world.sh_record)
    client = signed_in(world.auditor)
    before = case_snapshot(case)

    response = client.post(f"/audit/cases/{case.reference}/dossier/")

    assert response.status_code == 405
    assert case_snapshot(case) == before


# ---------------------------------------------------------------------------------------------
# Integrity


def test_a_tampered_event_shows_as_a_failed_check_naming_it(auditor):
    case_event(n=1)
    tampered = case_event(n=2)
    case_event(n=3)
    without_append_only_triggers()
    with connection.cursor() as cursor:
        cursor.execute(
            "UPDATE audit_auditevent SET canonical = replace(canonical, '\"n\":2', '\"n\":7') "
            "WHERE sequence = %s",
            [tampered],
        )
    check = AuditIntegrityCheck.objects.create(created_at=datetime.now(tz=SHANGHAI))

    audit_integrity_check_run(check_id=check.pk)

    check.refresh_from_db()
    assert (check.status, check.broken_sequence) == ("failed", tampered)
    assert check.broken_reason == "hash does not match the event's content"
    response = signed_in(auditor).get("/audit/integrity/")
    latest = response.content.decode()
    assert "failed" in latest
    assert f"<dd>{tampered}</dd>" in latest
    assert "hash does not match the event&#x27;s content" in latest


def test_the_button_queues_a_check_after_commit_and_it_runs(
    auditor, eager_tasks, django_capture_on_commit_callbacks
):
    case_event()
    client = signed_in(auditor)
    start = head_sequence()
    page = client.get("/audit/integrity/").content.decode()
    assert 'name="csrfmiddlewaretoken"' in page

    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        response = client.post("/audit/integrity/")

    assert response.status_code == 302
    assert len(callbacks) == 1
    check = AuditIntegrityCheck.objects.get()
    assert (check.status, check.requested_by, check.broken_sequence) == ("passed", auditor, None)
    assert check.events_checked == check.last_sequence >= start + 1
    actions = list(
        AuditEvent.objects.filter(sequence__gt=start)
        .order_by("sequence")
        .values_list("action", "actor_id")
    )
    assert actions == [
        ("audit.integrity_check_requested", auditor.pk),
        ("audit.integrity_checked", None),
    ]
    shown = client.get("/audit/integrity/").content.decode()
    assert "passed" in shown


def test_a_second_press_while_a_check_is_queued_makes_no_second_check(
    auditor, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks() as callbacks:
        first = audit_integrity_check_request(actor=auditor)
        again = audit_integrity_check_request(actor=auditor)

    assert first.pk == again.pk
    assert len(callbacks) == 1
    assert AuditIntegrityCheck.objects.count() == 1


def test_a_daily_check_runs_from_beat(settings, eager_tasks, django_capture_on_commit_callbacks):
    from audit.tasks import audit_integrity_check_daily_task

    assert any(
        entry["task"] == "audit.tasks.audit_integrity_check_daily_task"
        for entry in settings.CELERY_BEAT_SCHEDULE.values()
    )
    case_event()
    with django_capture_on_commit_callbacks(execute=True):
        check_id = audit_integrity_check_daily_task()

    check = AuditIntegrityCheck.objects.get(pk=check_id)
    assert (check.status, check.requested_by) == ("passed", None)


# ---------------------------------------------------------------------------------------------
# Exports


def test_a_valid_export_request_is_queued_and_listed(auditor, django_capture_on_commit_callbacks):
    client = signed_in(auditor)

    with django_capture_on_commit_callbacks() as callbacks:
        response = client.post(
            "/audit/exports/", {"period_from": "2026-06-01", "period_to": "2026-06-30"}
        )

    export = AuditExport.objects.get()
    assert response.status_code == 302
    assert response["Location"] == f"/audit/exports/?requested={export.pk}"
    assert export.filters == {"from": "2026-06-01", "to": "2026-06-30"}
    assert len(callbacks) == 1
    listed = client.get(response["Location"]).content.decode()
    assert f'data-poll="/api/v1/audit/exports/{export.pk}/"' in listed
    assert "Period 2026-06-01 to 2026-06-30" in listed
    assert "audit/audit.js" in listed
    assert "<script>" not in listed  # no inline script: a strict CSP allows the page


@pytest.mark.parametrize(
    ("data", "linked_to", "message"),
    [
        ({}, "id_case_reference", "Give one selection"),
        ({"case_reference": CASE, "actor_id": "3"}, "id_case_reference", "Give only one"),
        ({"period_from": "2026-06-01"}, "id_period_to", "Give the last day"),
        (
            {"period_from": "2026-06-30", "period_to": "2026-06-01"},
            "id_period_to",
            "before the first day",
        ),
        ({"period_from": "30/06/2026", "period_to": "2026-06-01"}, "id_period_from", "valid date"),
        ({"actor_id": "-4"}, "id_actor_id", "greater than or equal to 1"),
        ({"agency": "no-such-agency"}, "id_agency", "Select a valid choice"),
    ],
)
def test_bad_export_requests_show_a_linked_error_summary_and_change_nothing(
    auditor, data, linked_to, message
):
    client = signed_in(auditor)  # signing in is itself an event
    start = head_sequence()

    response = client.post("/audit/exports/", data)

    assert response.status_code == 400
    html = response.content.decode()
    summary = re.search(r'<div class="error-summary".*?</div>', html, re.S)
    assert summary is not None
    assert f'href="#{linked_to}"' in summary.group(0)
    assert message in summary.group(0)
    assert not AuditExport.objects.exists()
    assert head_sequence() == start


def test_a_finished_export_offers_its_download(
    auditor, eager_tasks, django_capture_on_commit_callbacks
):
    case_event()
    client = signed_in(auditor)
    with django_capture_on_commit_callbacks(execute=True):
        client.post("/audit/exports/", {"case_reference": CASE})

    export = AuditExport.objects.get()
    assert export.status == "done"
    html = client.get("/audit/exports/").content.decode()
    assert f'href="/api/v1/audit/exports/{export.pk}/download/"' in html
    assert "data-poll" not in html
    assert client.get(f"/api/v1/audit/exports/{export.pk}/download/").status_code == 200


def test_the_case_history_link_prefills_the_export_form(auditor):
    response = signed_in(auditor).get("/audit/exports/", {"case_reference": CASE})

    assert f'value="{CASE}"' in response.content.decode()


# ---------------------------------------------------------------------------------------------
# The auditor role only reads: the admin and the API


def test_every_admin_refuses_an_auditor_with_every_permission_to_write(rf):
    made = UserFactory(role="auditor", is_staff=True)
    made.user_permissions.set(Permission.objects.all())
    request = rf.get("/admin/")
    request.user = User.objects.get(pk=made.pk)  # a fresh permission cache

    for model, model_admin in admin.site._registry.items():
        hooks = [
            model_admin.has_add_permission(request),
            model_admin.has_change_permission(request),
            model_admin.has_delete_permission(request),
        ]
        for inline in model_admin.get_inline_instances(request):
            hooks += [
                inline.has_add_permission(request, None),
                inline.has_change_permission(request),
                inline.has_delete_permission(request),
            ]
        assert hooks == [False] * len(hooks), model
        assert model_admin.has_view_permission(request), model


def test_an_auditor_in_the_admin_cannot_change_an_agency():
    auditor = UserFactory(role="auditor", is_staff=True)
    auditor.user_permissions.set(Permission.objects.filter(content_type__app_label="records"))
    agency = AgencyFactory(code="a-1", name_zh="机构", name_en="Agency")
    client = Client(headers={"accept-language": "en"})
    staff_login(client, auditor)

    page = client.get(f"/admin/records/agency/{agency.pk}/change/")
    posted = client.post(
        f"/admin/records/agency/{agency.pk}/change/",
        {
            "code": "a-2",
            "name_zh": "改",
            "name_en": "Changed",
            "jurisdiction": agency.jurisdiction.pk,
        },
    )

    assert page.status_code == 200
    assert 'name="_save"' not in page.content.decode()
    assert posted.status_code == 403
    assert client.get("/admin/records/agency/add/").status_code == 403
    deleted = client.post(f"/admin/records/agency/{agency.pk}/delete/", {"post": "yes"})
    assert deleted.status_code == 403
    agency.refresh_from_db()
    assert (agency.code, agency.name_en) == ("a-1", "Agency")


def test_an_auditor_writing_to_the_cases_and_records_api_is_refused_and_changes_nothing(
    world: World,
):
    case = file_case(world.citizen, world.sh_record)
    # An auditor's time-limited grant lets them read the case; it lets them change nothing.
    case_access_grant(
        case=case,
        user=world.auditor,
        actor=UserFactory(username="admin-grants", role="administrator"),
        reason="年度审计",
        expires_at=timezone.now() + timedelta(days=1),
    )
    before = case_snapshot(case)
    cases_before = Case.objects.count()
    records_before = list(CreditRecord.objects.order_by("id").values_list("id", "content_hash"))
    client = APIClient()
    client.force_authenticate(world.auditor)
    detail = f"/api/v1/cases/{case.reference}/"
    calls = [
        # a record the auditor may not act for: as if it did not exist
        ("post", "/api/v1/cases/", filing(world.other_record), 404),
        ("put", detail, {"state": "closed"}, 405),
        ("patch", detail, {"state": "closed"}, 405),
        ("delete", detail, None, 405),
        # the workflow gives the auditor no step and no statement
        ("post", f"{detail}transitions/", {"transition": "start_review"}, 403),
        ("post", f"{detail}dispute-statement/", {"text": "no"}, 403),
        ("post", "/api/v1/me/records/", {"title": "x"}, 405),
        ("put", "/api/v1/me/records/", {"title": "x"}, 405),
        ("patch", "/api/v1/me/records/", {"title": "x"}, 405),
        ("delete", "/api/v1/me/records/", None, 405),
        ("post", "/api/v1/imports/", {}, 403),
    ]

    answers = [
        (method, path, getattr(client, method)(path, body, format="json").status_code)
        for method, path, body, _ in calls
    ]

    assert answers == [(method, path, status) for method, path, _, status in calls]
    assert case_snapshot(case) == before
    assert Case.objects.count() == cases_before
    assert list(CreditRecord.objects.order_by("id").values_list("id", "content_hash")) == (
        records_before
    )
