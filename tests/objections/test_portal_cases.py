"""The citizen's case pages: the filing wizard, the case page, the decision notice, notices."""

from __future__ import annotations

import io
import re
from datetime import date, datetime, timedelta

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from PIL import Image
from rest_framework.test import APIClient

from audit.models import AuditEvent
from objections.models import (
    Case,
    CaseNote,
    DisputeStatement,
    Evidence,
    Notification,
    PendingApproval,
)
from objections.services import TransitionInput, case_approval_decide, case_transition
from objections.services.notes import case_note_add
from records.dates import add_months
from tests.clock import SHANGHAI
from tests.factories import CatalogueEntryFactory, CreditRecordFactory
from tests.objections.conftest import World, case_snapshot
from tests.objections.test_case_services import REFUSE, file_objection, routed, routed_repair

pytestmark = pytest.mark.django_db

STATE_CODES = re.compile(
    r"\b(decided_refused|decided_granted|under_review|awaiting_material|provider_review|"
    r"drc_review|withdrawn|executing)\b"
)


def browser(user, *, language: str = "zh-hans", csrf: bool = False) -> Client:
    client = Client(enforce_csrf_checks=csrf, headers={"accept-language": language})
    client.force_login(user)
    return client


def wizard_url(record, step: str = "") -> str:
    url = reverse("portal_cases:new", args=[record.public_id])
    return f"{url}?step={step}" if step else url


def case_url(case: Case, name: str = "case") -> str:
    return reverse(f"portal_cases:{name}", args=[case.reference])


def pdf_file(name: str = "receipt.pdf") -> SimpleUploadedFile:
    out = io.BytesIO()
    Image.new("RGB", (40, 20), "white").save(out, format="PDF")
    return SimpleUploadedFile(name, out.getvalue(), content_type="application/pdf")


def walk_wizard(client: Client, record, *, title: str = "更正后的标题") -> None:
    """Every step before the last, each answered."""
    assert client.post(wizard_url(record), {"step": "kind", "kind": "objection"}).status_code == 302
    response = client.post(
        wizard_url(record, "grounds"), {"step": "grounds", "grounds": "inaccurate"}
    )
    assert response.status_code == 302
    response = client.post(
        wizard_url(record, "fields"),
        {"step": "fields", "object_title": "on", "proposed_title": title},
    )
    assert response.status_code == 302
    response = client.post(
        wizard_url(record, "statement"),
        {"step": "statement", "statement": "处罚对象错误", "requested_remedy": "correct"},
    )
    assert response.status_code == 302


def decided_refused(world: World) -> Case:
    case = routed(world)
    case_transition(case_id=case.pk, transition="start_review", actor=world.caseworker)
    case_transition(case_id=case.pk, transition="refuse", actor=world.caseworker, data=REFUSE)
    return Case.objects.get(pk=case.pk)


# --- the wizard ----------------------------------------------------------------------------------


def test_the_wizard_files_the_case_with_the_proposed_values_and_its_evidence(
    world: World, settings, tmp_path
):
    settings.DATA_DIR = tmp_path
    client = browser(world.citizen)
    first = client.get(wizard_url(world.sh_record) + "?kind=objection")
    assert first.status_code == 200
    assert 'for="id_kind_0"' in first.content.decode()

    walk_wizard(client, world.sh_record)
    review = client.get(wizard_url(world.sh_record, "evidence"))
    assert "更正后的标题" in review.content.decode()
    response = client.post(
        wizard_url(world.sh_record, "evidence"),
        {"step": "evidence", "confirm": "on", "evidence": [pdf_file()]},
    )

    case = Case.objects.get()
    assert response.status_code == 302
    assert response["Location"] == case_url(case)
    assert (case.kind, case.grounds, case.fields_objected, case.correction) == (
        "objection",
        "inaccurate",
        ["title"],
        {"title": "更正后的标题"},
    )
    assert (case.statement, case.requested_remedy, case.filed_by) == (
        "处罚对象错误",
        "correct",
        world.citizen,
    )
    [evidence] = Evidence.objects.filter(case=case)
    assert (evidence.original_name, evidence.visibility) == ("receipt.pdf", "shared")
    assert list(
        AuditEvent.objects.filter(case_reference=case.reference).values_list("action", flat=True)
    ) == ["case.filed", "evidence.added"]


def test_each_step_is_checked_with_an_error_summary_linked_to_the_field(world: World):
    client = browser(world.citizen, language="en")
    client.post(wizard_url(world.sh_record), {"step": "kind", "kind": "objection"})

    skipped = client.get(wizard_url(world.sh_record, "statement"), follow=True)
    empty = client.post(wizard_url(world.sh_record, "grounds"), {"step": "grounds"})
    client.post(
        wizard_url(world.sh_record, "grounds"), {"step": "grounds", "grounds": "inaccurate"}
    )
    no_value = client.post(
        wizard_url(world.sh_record, "fields"), {"step": "fields", "object_title": "on"}
    )

    assert "Grounds" in skipped.content.decode()  # sent back to the first step not done
    assert empty.status_code == 400
    assert 'href="#id_grounds_0"' in empty.content.decode()
    assert no_value.status_code == 400
    assert 'href="#id_proposed_title"' in no_value.content.decode()
    assert "Give the value you propose" in no_value.content.decode()
    assert Case.objects.count() == 0


def test_a_second_objection_while_one_is_open_is_refused_and_changes_nothing(world: World):
    open_case = file_objection(world)
    client = browser(world.citizen, language="en")
    before = (Case.objects.count(), AuditEvent.objects.count(), case_snapshot(open_case))

    page = client.get(wizard_url(world.sh_record))
    refused = client.post(wizard_url(world.sh_record), {"step": "kind", "kind": "objection"})

    assert "already open" in page.content.decode()
    assert open_case.reference in page.content.decode()
    assert refused.status_code == 400
    assert (Case.objects.count(), AuditEvent.objects.count(), case_snapshot(open_case)) == before


def test_a_second_objection_reaching_the_service_shows_its_message_and_files_nothing(
    world: World,
):
    client = browser(world.citizen, language="en")
    walk_wizard(client, world.sh_record)
    open_case = file_objection(world)  # filed meanwhile, in another tab
    before = (Case.objects.count(), AuditEvent.objects.count(), case_snapshot(open_case))

    response = client.post(
        wizard_url(world.sh_record, "evidence"), {"step": "evidence", "confirm": "on"}
    )

    assert response.status_code == 400
    assert "An open objection case about this record already exists." in response.content.decode()
    assert (Case.objects.count(), AuditEvent.objects.count(), case_snapshot(open_case)) == before


def test_a_correction_the_record_check_refuses_is_shown_on_its_field_and_files_nothing(
    world: World,
):
    client = browser(world.citizen, language="en")
    client.post(wizard_url(world.sh_record), {"step": "kind", "kind": "objection"})
    client.post(
        wizard_url(world.sh_record, "grounds"), {"step": "grounds", "grounds": "inaccurate"}
    )
    events = AuditEvent.objects.count()

    response = client.post(
        wizard_url(world.sh_record, "fields"),
        {"step": "fields", "object_title": "on", "proposed_title": "宗教信仰记录"},
    )
    final = client.post(
        wizard_url(world.sh_record, "evidence"), {"step": "evidence", "confirm": "on"}
    )

    assert response.status_code == 400
    assert 'href="#id_proposed_title"' in response.content.decode()
    assert final["Location"].endswith("?step=fields")  # sent back to the step not done
    assert (Case.objects.count(), AuditEvent.objects.count()) == (0, events)


def test_the_wizard_refuses_a_post_without_its_csrf_token(world: World):
    client = browser(world.citizen, csrf=True)

    response = client.post(wizard_url(world.sh_record), {"step": "kind", "kind": "objection"})

    assert response.status_code == 403
    assert not Case.objects.exists()


def test_the_record_page_and_the_wizard_say_from_when_repair_is_allowed(world: World, time_machine):
    serious = CatalogueEntryFactory(
        jurisdiction=world.sh_record.category.jurisdiction,
        code="penalty-serious",
        severity="serious",
        publication_min_months=12,
        publication_max_months=36,
    )
    today = date(2026, 6, 15)  # a Monday; the record was decided 100 days before
    time_machine.move_to(datetime(2026, 6, 15, 10, tzinfo=SHANGHAI), tick=True)
    recent = CreditRecordFactory(
        agency=world.sh_record.agency,
        subject=world.subject,
        category=serious,
        decision_date=today - timedelta(days=100),
        conduct_ended_on=today - timedelta(days=130),
        publication_start=today - timedelta(days=100),
        publication_end=today + timedelta(days=630),
        retention_end=today + timedelta(days=1700),
    )
    client = browser(world.citizen, language="en")
    earliest = add_months(recent.decision_date, 12).isoformat()

    record_page = client.get(reverse("portal:record", args=[recent.public_id])).content.decode()
    first_step = client.get(wizard_url(recent)).content.decode()
    refused = client.post(wizard_url(recent), {"step": "kind", "kind": "repair"})

    # the record page says it at once: no repair yet, from when, and why
    assert wizard_url(recent) + "?kind=objection" in record_page
    assert wizard_url(recent) + "?kind=repair" not in record_page
    assert f'<time datetime="{earliest}">' in record_page
    assert "the minimum period for a serious record is 12 months" in record_page
    assert f"You may apply from {earliest}." in first_step
    assert "the minimum period for a serious record is 12 months" in first_step
    assert refused.status_code == 400
    assert not Case.objects.exists()


# --- my cases, the case page ---------------------------------------------------------------------


def test_my_cases_and_the_case_page_speak_in_labels_never_state_codes(world: World):
    case = decided_refused(world)
    client = browser(world.citizen)

    listing = client.get(reverse("portal_cases:list")).content.decode()
    page = client.get(case_url(case)).content.decode()
    english = browser(world.citizen, language="en").get(case_url(case)).content.decode()

    assert "决定不予更正" in listing
    assert "决定不予更正" in page
    assert "Decided — no correction" in english
    for html in (listing, page, english):
        assert not STATE_CODES.search(html), STATE_CODES.search(html)


def test_the_case_page_shows_messages_to_the_applicant_but_never_internal_notes(world: World):
    case = routed(world)
    case_note_add(case=case, actor=world.caseworker, kind="internal", text="内部意见：申请人可疑")
    case_note_add(case=case, actor=world.caseworker, kind="message", text="请提供身份证明")

    page = browser(world.citizen).get(case_url(case)).content.decode()
    timeline = APIClient()
    timeline.force_authenticate(world.citizen)
    api = timeline.get(reverse("api-case-timeline", args=[case.reference])).content.decode()

    assert "请提供身份证明" in page
    assert "内部意见" not in page
    assert "内部意见" not in api
    assert world.caseworker.get_username() not in page
    assert CaseNote.objects.filter(case=case).count() == 2


def test_the_case_page_shows_each_running_deadline_with_its_trace(world: World):
    case = routed(world)

    page = browser(world.citizen, language="en").get(case_url(case)).content.decode()

    assert "How this date was computed" in page
    assert case.next_due_on.isoformat() in page


def test_answering_a_material_request_resumes_the_clock(world: World, settings, tmp_path):
    settings.DATA_DIR = tmp_path
    case = routed_repair(world)
    case_transition(
        case_id=case.pk,
        transition="request_material",
        actor=world.zj_agency_caseworker,
        data=TransitionInput(material_request="请补充缴款凭证"),
    )
    client = browser(world.citizen)
    page = client.get(case_url(case)).content.decode()
    assert '<blockquote class="asked">请补充缴款凭证</blockquote>' in page

    response = client.post(case_url(case, "material"), {"evidence": [pdf_file()]})

    case.refresh_from_db()
    assert response.status_code == 302
    assert case.state == "received"
    assert case.clocks.filter(status="running").exists()
    assert Evidence.objects.filter(case=case, visibility="shared").count() == 1
    assert [
        e.payload["transition"]
        for e in AuditEvent.objects.filter(
            case_reference=case.reference, action="case.transitioned"
        ).order_by("sequence")
    ][-1] == "supply_material"


def test_withdrawal_needs_the_confirmation_and_then_withdraws(world: World):
    case = routed(world)
    client = browser(world.citizen, language="en")
    before = case_snapshot(case)

    unconfirmed = client.post(case_url(case, "withdraw"), {})
    assert unconfirmed.status_code == 400
    assert case_snapshot(case) == before
    confirmed = client.post(case_url(case, "withdraw"), {"withdraw-confirm": "on"})

    case.refresh_from_db()
    assert confirmed.status_code == 302
    assert (case.state, case.is_open) == ("withdrawn", False)


def test_a_step_the_workflow_refuses_shows_the_message_and_changes_nothing(world: World):
    case = decided_refused(world)
    client = browser(world.citizen, language="en")
    before = case_snapshot(case)

    response = client.post(case_url(case, "withdraw"), {"withdraw-confirm": "on"})

    assert response.status_code == 400
    assert 'class="error-summary"' in response.content.decode()
    assert case_snapshot(case) == before


def test_a_statement_of_dispute_after_a_refusal_is_kept_with_the_record(world: World):
    case = decided_refused(world)
    case = case_transition(case_id=case.pk, transition="notify_refusal", actor=world.caseworker)
    client = browser(world.citizen, csrf=True)
    page = client.get(case_url(case))
    token = (
        page.cookies["csrftoken"].value
        if "csrftoken" in page.cookies
        else client.cookies["csrftoken"].value
    )

    without = client.post(case_url(case, "dispute"), {"dispute-text": "本人不认可"})
    response = client.post(
        case_url(case, "dispute"), {"dispute-text": "本人不认可", "csrfmiddlewaretoken": token}
    )

    assert without.status_code == 403
    assert response.status_code == 302
    statement = DisputeStatement.objects.get(case=case)
    assert (statement.text, statement.record_id) == ("本人不认可", world.sh_record.pk)


def test_a_review_is_requested_from_the_case_page(world: World):
    case = routed(world, world.zj_record)
    case_transition(case_id=case.pk, transition="refuse", actor=world.zj_caseworker, data=REFUSE)
    case_transition(case_id=case.pk, transition="notify_refusal", actor=world.zj_caseworker)
    client = browser(world.citizen)
    assert "review-statement" in client.get(case_url(case)).content.decode()

    response = client.post(case_url(case, "review"), {"review-statement": "处理结果有误"})

    case.refresh_from_db()
    assert response.status_code == 302
    assert (case.state, case.is_open, case.review_statement) == ("drc_review", True, "处理结果有误")


# --- the decision notice -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("language", "expected"),
    [
        (
            "zh-hans",
            (
                "记录准确",
                "60日内",
                "6个月内",
                "《中华人民共和国行政复议法》",
                "《中华人民共和国行政诉讼法》",
            ),
        ),
        (
            "en",
            (
                "记录准确",
                "Administrative reconsideration: within 60 days",
                "Administrative litigation: within 6 months",
                "《行政复议法》",
                "《行政诉讼法》",
            ),
        ),
    ],
)
def test_the_decision_notice_gives_the_reasons_and_both_routes_of_appeal(
    world: World, language, expected
):
    case = decided_refused(world)

    response = browser(world.citizen, language=language).get(case_url(case, "notice"))

    html = response.content.decode()
    assert response.status_code == 200
    for text in expected:
        assert text in html
    assert "<script>" not in html.split("</head>")[1]
    assert not STATE_CODES.search(html)


def test_there_is_no_notice_before_a_decision(world: World):
    case = routed(world)

    assert browser(world.citizen).get(case_url(case, "notice")).status_code == 404


# --- notifications -------------------------------------------------------------------------------


def test_each_step_has_its_own_email_without_state_codes_and_the_decision_gives_rights(
    world: World,
):
    world.citizen.preferred_language = "en"
    world.citizen.save()
    case = decided_refused(world)

    notices = list(Notification.objects.filter(case=case, recipient=world.citizen).order_by("id"))

    assert [n.event for n in notices] == ["filed", "routed", "transitioned", "decided"]
    assert notices[0].subject == f"Case {case.reference} has been received"
    decision = notices[-1]
    assert decision.subject == f"Case {case.reference}: a decision has been taken"
    assert "Reasons: 记录准确" in decision.body
    assert "Administrative reconsideration: within 60 days" in decision.body
    assert "Administrative litigation: within 6 months" in decision.body
    assert case_url(case) in decision.body
    for notice in notices:
        assert not STATE_CODES.search(notice.body + notice.subject), notice.body


def test_a_material_request_email_says_what_is_asked_for(world: World):
    case = routed_repair(world)

    case_transition(
        case_id=case.pk,
        transition="request_material",
        actor=world.zj_agency_caseworker,
        data=TransitionInput(material_request="请补充缴款凭证"),
    )

    notice = Notification.objects.filter(case=case, recipient=world.citizen).latest("id")
    assert notice.event == "material_requested"
    assert "请补充缴款凭证" in notice.body


def test_the_notices_page_and_api_list_only_the_users_own_notices_newest_first(world: World):
    mine = file_objection(world)
    file_objection(world, world.other_record, actor=world.other_citizen)
    api = APIClient()
    api.force_authenticate(world.citizen)

    page = browser(world.citizen).get(reverse("portal_cases:notices")).content.decode()
    listed = api.get(reverse("api-notices")).json()["results"]

    assert mine.reference in page
    assert [row["case"] for row in listed] == [mine.reference]
    assert world.other_record.title not in page


# --- isolation -----------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["case", "notice"])
def test_another_citizen_gets_404_on_the_case_pages(world: World, name):
    case = decided_refused(world)
    client = browser(world.other_citizen)

    assert client.get(case_url(case, name)).status_code == 404
    guessed = case.reference[:-1] + ("2" if case.reference[-1] != "2" else "3")
    assert client.get(reverse(f"portal_cases:{name}", args=[guessed])).status_code == 404


def test_another_citizen_gets_404_from_the_timeline_api_and_the_actions(world: World):
    case = routed(world)
    api = APIClient()
    api.force_authenticate(world.other_citizen)
    client = browser(world.other_citizen)
    before = case_snapshot(case)

    assert api.get(reverse("api-case-timeline", args=[case.reference])).status_code == 404
    assert api.get(reverse("api-case-timeline", args=["SH-2099-000001"])).status_code == 404
    assert client.post(case_url(case, "withdraw"), {"withdraw-confirm": "on"}).status_code == 404
    assert client.get(wizard_url(world.sh_record)).status_code == 404
    assert case_snapshot(case) == before


def test_my_cases_and_the_notices_cost_the_same_queries_for_one_case_or_several(
    world: World, django_assert_max_num_queries
):
    file_objection(world)
    client = browser(world.citizen)
    api = APIClient()
    api.force_authenticate(world.citizen)
    client.get(reverse("portal_cases:list"))  # warm the session and the definitions
    with CaptureQueriesContext(connection) as one_page:
        client.get(reverse("portal_cases:list"))
    with CaptureQueriesContext(connection) as one_api:
        api.get(reverse("api-notices"))
    routed(world, world.zj_record)
    routed(world, world.hb_record)

    with django_assert_max_num_queries(len(one_page)):
        client.get(reverse("portal_cases:list"))
    with django_assert_max_num_queries(len(one_api)):
        api.get(reverse("api-notices"))


def test_an_extension_and_a_review_each_have_their_own_email(world: World):
    world.citizen.preferred_language = "en"
    world.citizen.save()
    case = routed(world, world.zj_record)
    case_transition(
        case_id=case.pk,
        transition="extend",
        actor=world.zj_caseworker,
        data=TransitionInput(extension_reason="案情复杂", extension_days=10),
    )
    approval = PendingApproval.objects.get(case=case, approved__isnull=True)
    case_approval_decide(approval_id=approval.pk, actor=world.zj_drc_supervisor, approve=True)
    case_transition(case_id=case.pk, transition="refuse", actor=world.zj_caseworker, data=REFUSE)
    case_transition(case_id=case.pk, transition="notify_refusal", actor=world.zj_caseworker)
    case_transition(
        case_id=case.pk,
        transition="request_review",
        actor=world.citizen,
        data=TransitionInput(statement="处理结果有误"),
    )

    notices = Notification.objects.filter(case=case, recipient=world.citizen).order_by("id")
    assert [n.event for n in notices] == [
        "filed",
        "routed",
        "extended",
        "decided",
        "closed",
        "review_requested",
    ]
    extended, closed, review = notices[2], notices[4], notices[5]
    assert extended.subject == f"Case {case.reference}: the time limit was extended"
    assert "Reasons: 记录准确" in closed.body  # the closing repeats the decision and the rights
    assert "Administrative litigation: within 6 months" in closed.body
    assert review.subject == f"Case {case.reference}: your request for review was received"
    for notice in notices:
        assert not STATE_CODES.search(notice.body + notice.subject), notice.body


def test_the_grounds_step_offers_the_fixed_list_of_grounds(world: World):
    client = browser(world.citizen, language="en")
    assert client.post(wizard_url(world.sh_record), {"step": "kind", "kind": "objection"})
    page = client.get(wizard_url(world.sh_record, "grounds")).content.decode()
    offered = re.findall(r'name="grounds" value="([a-z_]+)"', page)
    assert offered == [
        "inaccurate",
        "not_me",
        "incomplete",
        "outside_catalogue",
        "period_ended",
        "privacy",
        "other",
    ]
    response = client.post(
        wizard_url(world.sh_record, "grounds"), {"step": "grounds", "grounds": "not_me"}
    )
    assert response.status_code == 302


def test_the_record_page_says_what_may_be_filed_now_and_why_not(world: World):
    client = browser(world.citizen, language="en")
    url = reverse("portal:record", args=[world.sh_record.public_id])
    page = client.get(url).content.decode()
    options = page.split('data-testid="filing-options"')[1].split("</ul>")[0]
    assert "Object to this record" in options

    case = file_objection(world)

    options = client.get(url).content.decode().split('data-testid="filing-options"')[1]
    options = options.split("</ul>")[0]
    assert "Object to this record" not in options
    assert case.reference in options
    assert "already open" in options
