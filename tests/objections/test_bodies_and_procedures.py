"""The law's bodies and procedures: who decides reviews and complaints, which procedure a record's
kind of information follows, the definition in force on the filing day, the documents a step
needs, and Shanghai's procedures of Arts 36 ¶3, 37 and 38 with their deadlines across the 2026
National Day holiday (1–7 October, Saturday 10 October worked)."""

from __future__ import annotations

from datetime import date, datetime

import pytest
from django.core.cache import cache
from time_machine import TimeMachineFixture

from accounts.models import User
from audit.models import AuditEvent
from objections.exceptions import FilingRefused, MissingFields
from objections.models import Case, CaseDocument, Clock
from objections.services import TransitionInput, case_file, case_route, case_transition
from records.models import Agency, CatalogueEntry, CreditRecord
from tests.clock import SHANGHAI
from tests.factories import UserFactory, registry_record
from tests.objections.conftest import World, case_snapshot
from tests.objections.test_case_api import api, file_case, filing, transition
from tests.objections.test_case_services import file_objection

pytestmark = pytest.mark.django_db

CASES = "/api/v1/cases/"


@pytest.fixture(autouse=True)
def _fresh_throttle(db: None) -> None:
    cache.clear()  # the filing throttle counts in the cache, which outlives each rollback


def on(time_machine: TimeMachineFixture, day: date) -> None:
    time_machine.move_to(datetime.combine(day, datetime.min.time(), SHANGHAI).replace(hour=10))


def staff(username: str, role: str, agency: str) -> User:
    return UserFactory(username=username, role=role, agency=Agency.objects.get(code=agency))


def category(code: str) -> CatalogueEntry:
    return CatalogueEntry.objects.get(jurisdiction__code="national", code=code)


def clock_of(case: Case, timer: str) -> Clock:
    return Clock.objects.filter(case=case, timer=timer).order_by("-id").first()  # type: ignore[return-value]


def last_step(case: Case) -> AuditEvent:
    return (
        AuditEvent.objects.filter(case_reference=case.reference, action="case.transitioned")
        .order_by("-sequence")
        .first()
    )  # type: ignore[return-value]


# --- the right body decides -------------------------------------------------------------------


@pytest.fixture
def zj_review(world: World, time_machine: TimeMachineFixture) -> Case:
    """A Zhejiang objection refused by the credit agency, whose applicant asked the provincial
    DRC to review it (Regulations Art 30 ¶2)."""
    on(time_machine, date(2026, 6, 1))
    case = file_case(world.citizen, world.zj_record)
    for step, data in (
        ("refuse", {"reasons": "经核查，信息准确"}),
        ("notify_refusal", {}),
    ):
        assert transition(world.zj_caseworker, case, step, **data).status_code == 200
    response = transition(world.citizen, case, "request_review", statement="核查结论有误")
    assert response.json()["state"] == "drc_review"
    return Case.objects.get(pk=case.pk)


def test_a_zhejiang_review_decided_by_the_credit_centres_supervisor_is_refused(
    world: World, zj_review: Case
):
    before = case_snapshot(zj_review)

    response = transition(world.zj_supervisor, zj_review, "uphold", reasons="维持原决定")

    assert response.status_code == 403
    assert response.json()["code"] == "role_not_allowed"
    assert case_snapshot(zj_review) == before


def test_a_zhejiang_review_decided_by_the_drc_is_accepted(world: World, zj_review: Case):
    response = transition(world.zj_drc_caseworker, zj_review, "uphold", reasons="维持原决定")

    assert response.status_code == 200
    assert (response.json()["state"], response.json()["is_open"]) == ("closed", False)
    event = last_step(zj_review)
    assert (event.actor_id, event.actor_role, event.payload["transition"]) == (
        world.zj_drc_caseworker.pk,
        "drc_caseworker",
        "uphold",
    )


def test_the_drc_of_another_province_cannot_see_a_zhejiang_review(world: World, zj_review: Case):
    shanghai_drc = staff("sh-drc-cw", "caseworker", "shanghai-drc")
    before = case_snapshot(zj_review)

    response = transition(shanghai_drc, zj_review, "uphold", reasons="维持原决定")

    assert response.status_code == 404
    assert api(shanghai_drc).get(f"{CASES}{zj_review.reference}/").status_code == 404
    assert case_snapshot(zj_review) == before


def test_the_drc_sees_the_cases_under_workflows_it_acts_in_and_no_others(
    world: World, zj_review: Case
):
    shanghai_case = file_case(world.citizen, world.sh_record)

    listed = api(world.zj_drc_caseworker).get(CASES).json()["results"]

    assert [row["reference"] for row in listed] == [zj_review.reference]
    assert shanghai_case.reference not in {row["reference"] for row in listed}


# --- national objections: Credit China or PBoC by the kind of information ---------------------


def test_a_national_penalty_follows_credit_china_and_a_credit_report_pbocs(
    world: World, time_machine: TimeMachineFixture
):
    on(time_machine, date(2026, 6, 1))

    penalty, reporting = (
        case_route(case_id=file_objection(world, record).pk)
        for record in (world.cn_record, world.cn_credit_record)
    )

    assert (penalty.workflow.key, penalty.responsible_agency.code) == (
        "credit-china-objection",
        "national-credit-centre",
    )
    # Art 25 ¶1: the credit reporting agency that holds the data handles the objection.
    assert (reporting.workflow.key, reporting.responsible_agency.code) == (
        "pboc-objection",
        "national-credit-service",
    )
    assert world.cn_record.category.information_kind == "penalty"
    assert world.cn_credit_record.category.information_kind == "credit_reporting"


# --- national repair: the definition in force on the filing day --------------------------------


def national_repair(world: World, record: CreditRecord) -> Case:
    case = case_file(
        actor=world.citizen,
        record=record,
        kind="repair",
        grounds="obligation_fulfilled",
        statement="罚款已缴清",
        requested_remedy="end_publication",
    )
    return case_route(case_id=case.pk)


def test_a_national_repair_runs_under_the_order_in_force_on_its_filing_day(
    world: World, time_machine: TimeMachineFixture
):
    before_order_36 = registry_record("national-market", world.subject, "CN-R-1")
    after_order_36 = registry_record("national-market", world.subject, "CN-R-2")

    on(time_machine, date(2026, 3, 15))
    old = national_repair(world, before_order_36)
    on(time_machine, date(2026, 4, 2))
    new = national_repair(world, after_order_36)

    assert old.workflow.key == "national-repair-2023"  # Order No. 58
    assert new.workflow.key == "national-repair"  # Order No. 36, in force 2026-04-01


def test_order_58s_uniform_three_months_applies_before_1_april_and_order_36s_tiers_after(
    world: World, time_machine: TimeMachineFixture
):
    minor = registry_record(
        "national-market",
        world.subject,
        "CN-MINOR",
        category=category("penalty-minor"),
        decision_date=date(2026, 2, 2),
        publication_start=date(2026, 2, 2),
        publication_end=date(2026, 5, 2),
    )
    on(time_machine, date(2026, 3, 16))
    cases = Case.objects.count()

    with pytest.raises(FilingRefused) as refused:
        national_repair(world, minor)

    assert refused.value.extra == {"earliest": "2026-05-02"}
    assert Case.objects.count() == cases
    on(time_machine, date(2026, 4, 2))
    assert national_repair(world, minor).workflow.key == "national-repair"


# --- documents a step needs ---------------------------------------------------------------------


@pytest.fixture
def repair_before_the_authority(world: World, time_machine: TimeMachineFixture) -> Case:
    on(time_machine, date(2026, 6, 1))
    case = national_repair(world, world.cn_record)
    centre = staff("cn-centre-cw", "caseworker", "national-credit-centre")
    assert transition(centre, case, "forward").json()["state"] == "authority_review"
    return Case.objects.get(pk=case.pk)


def test_a_repair_is_granted_only_with_the_commitment_and_the_proof_of_performance(
    world: World, repair_before_the_authority: Case
):
    case = repair_before_the_authority
    authority = staff("cn-market-cw", "caseworker", "national-market")
    before = case_snapshot(case)

    missing = transition(authority, case, "grant", outcome="granted", reasons="已履行")
    one = transition(
        authority,
        case,
        "grant",
        outcome="granted",
        reasons="已履行",
        documents={"credit_commitment": "承诺书 2026-0042"},
    )

    assert (missing.status_code, one.status_code) == (400, 400)
    assert missing.json()["documents"] == ["credit_commitment", "performance_proof"]
    assert one.json()["documents"] == ["performance_proof"]
    assert case_snapshot(case) == before
    assert not CaseDocument.objects.filter(case=case).exists()

    granted = transition(
        authority,
        case,
        "grant",
        outcome="granted",
        reasons="已履行",
        documents={"credit_commitment": "承诺书 2026-0042", "performance_proof": "缴款书 88"},
    )

    assert granted.status_code == 200
    body = granted.json()
    assert body["state"] == "closed"  # Credit China ends publication at once
    assert [(d["key"], d["reference"]) for d in body["documents"]] == [
        ("credit_commitment", "承诺书 2026-0042"),
        ("performance_proof", "缴款书 88"),
    ]
    assert CreditRecord.objects.get(pk=case.record_id).status == "publication_ended"
    [grant] = [
        event.payload
        for event in AuditEvent.objects.filter(
            case_reference=case.reference, action="case.transitioned"
        )
        if event.payload["transition"] == "grant"
    ]
    assert grant["documents"] == ["credit_commitment", "performance_proof"]


@pytest.mark.parametrize(
    ("documents", "where"),
    [
        # the service: no such document in this procedure
        ({"training_certificate": "证书"}, "errors"),
        # the API's input: a reference is 1 to 200 characters
        ({"credit_commitment": "  "}, "documents"),
        ({"credit_commitment": "x" * 201}, "documents"),
    ],
)
def test_a_document_the_procedure_does_not_ask_for_or_without_reference_is_refused(
    world: World, repair_before_the_authority: Case, documents: dict[str, str], where: str
):
    case = repair_before_the_authority
    authority = staff("cn-market-cw", "caseworker", "national-market")
    before = case_snapshot(case)

    response = transition(
        authority, case, "grant", outcome="granted", reasons="已履行", documents=documents
    )

    assert response.status_code == 400
    assert set(response.json()[where]) == set(documents)
    assert case_snapshot(case) == before


def test_a_shanghai_penalty_is_repaired_through_credit_china(
    world: World, time_machine: TimeMachineFixture
):
    on(time_machine, date(2026, 6, 1))

    case = national_repair(world, world.sh_record)

    # under the national measures, worked by the municipal centre as Credit China's local window
    assert (case.workflow.key, case.responsible_agency.code) == (
        "national-repair",
        "shanghai-credit-centre",
    )


# --- Zhejiang repair: the national tiers for penalties, and no newer record of the same type ----


def zhejiang_repair(world: World, record: CreditRecord) -> Case:
    return case_file(
        actor=world.citizen,
        record=record,
        kind="repair",
        grounds="obligation_fulfilled",
        statement="已整改",
        requested_remedy="annotate",
    )


def test_a_zhejiang_penalty_follows_the_national_tiers_and_other_information_twelve_months(
    world: World, time_machine: TimeMachineFixture
):
    on(time_machine, date(2026, 6, 1))
    four_months = {"decision_date": date(2026, 2, 1), "publication_start": date(2026, 2, 1)}
    penalty = registry_record("zhejiang-market", world.subject, "ZJ-P", **four_months)
    other = registry_record(
        "zhejiang-market",
        world.subject,
        "ZJ-O",
        category=category("tax-arrears"),
        **four_months,
    )

    assert zhejiang_repair(world, penalty).kind == "repair"
    with pytest.raises(FilingRefused) as refused:
        zhejiang_repair(world, other)

    assert refused.value.extra == {"earliest": "2027-02-01"}
    assert "12 months" in refused.value.message
    assert not Case.objects.filter(record=other).exists()


def test_a_zhejiang_repair_is_refused_while_a_newer_record_of_the_same_type_stands(
    world: World, time_machine: TimeMachineFixture
):
    on(time_machine, date(2026, 6, 1))
    registry_record(
        "zhejiang-market",
        world.subject,
        "ZJ-NEWER",
        decision_date=date(2025, 3, 1),
        publication_start=date(2025, 3, 1),
    )

    with pytest.raises(FilingRefused) as refused:
        zhejiang_repair(world, world.zj_record)  # decided 2024-01-10

    assert refused.value.message == (
        "Repair is not available: an adverse record of the same category was decided after "
        "this one (on 2025-03-01)."
    )
    assert not Case.objects.filter(record=world.zj_record).exists()


# --- Shanghai: Art 36 ¶2 forwarding, Art 36 ¶3, Art 37, Art 38 across National Day --------------


def test_the_two_day_forwarding_limit_runs_while_the_centre_reviews(
    world: World, time_machine: TimeMachineFixture
):
    on(time_machine, date(2026, 9, 29))
    case = file_case(world.citizen, world.sh_record)

    body = transition(world.caseworker, case, "start_review").json()

    assert body["state"] == "under_review"
    [forward] = [c for c in body["clocks"] if c["timer"] == "forward_deadline"]
    # 30 September, then 8 October after the holiday
    assert (forward["due_on"], forward["status"]) == ("2026-10-08", "running")


def test_a_credit_service_agencys_objection_is_marked_in_one_day_and_decided_in_seven(
    world: World, time_machine: TimeMachineFixture
):
    record = registry_record("shanghai-credit-service", world.subject, "SH-CS-1")
    agency_worker = staff("sh-cs-cw", "caseworker", "shanghai-credit-service")
    on(time_machine, date(2026, 9, 29))

    case = file_case(world.citizen, record)

    assert (case.workflow.key, case.responsible_agency.code, case.state) == (
        "shanghai-credit-service-objection",
        "shanghai-credit-service",
        "under_review",
    )
    assert CreditRecord.objects.get(pk=record.pk).under_objection
    assert (
        clock_of(case, "marking_deadline").due_on,
        clock_of(case, "marking_deadline").status,
    ) == (
        date(2026, 9, 30),
        "stopped",
    )
    # 30 Sep; 8, 9, 10 (a Saturday worked), 12, 13, 14 October
    assert clock_of(case, "decision_deadline").due_on == date(2026, 10, 14)

    refused = transition(agency_worker, case, "refuse", reasons="信息来源于合作银行报送，准确无误")
    assert refused.json()["state"] == "decided_refused"
    before = case_snapshot(case)
    unanswered = transition(agency_worker, case, "notify_refusal")
    assert (unanswered.status_code, unanswered.json()["documents"]) == (400, ["written_reply"])
    assert case_snapshot(case) == before

    replied = transition(
        agency_worker, case, "notify_refusal", documents={"written_reply": "复函〔2026〕17号"}
    )

    assert replied.json()["state"] == "closed"
    assert not CreditRecord.objects.get(pk=record.pk).under_objection


def test_a_shanghai_repair_certificate_removes_the_record_within_three_working_days(
    world: World, time_machine: TimeMachineFixture
):
    """Art 38, for information other than penalties (unpaid taxes)."""
    on(time_machine, date(2026, 9, 29))
    unpaid = registry_record(
        "shanghai-market", world.subject, "SH-TAX-1", category=category("tax-arrears")
    )
    case = file_case(
        world.citizen,
        unpaid,
        kind="repair",
        grounds="obligation_fulfilled",
        requested_remedy="end_publication",
        fields_objected=[],
        correction={},
    )
    assert (case.workflow.key, case.state) == ("shanghai-repair", "received")
    on(time_machine, date(2026, 9, 30))

    body = transition(
        world.agency_caseworker,
        case,
        "certify",
        reasons="当事人已主动履行义务",
        documents={"repair_certificate": "沪市监信修〔2026〕5号"},
    ).json()

    assert (body["state"], body["is_open"]) == ("closed", False)
    removal = clock_of(case, "removal_deadline")
    # 8, 9 and Saturday 10 October; the platform removed it at once
    assert (removal.started_on, removal.due_on, removal.status) == (
        date(2026, 9, 30),
        date(2026, 10, 10),
        "stopped",
    )
    assert CreditRecord.objects.get(pk=case.record_id).status == "publication_ended"
    [certify] = [
        event
        for event in AuditEvent.objects.filter(
            case_reference=case.reference, action="case.transitioned"
        )
        if event.payload["transition"] == "certify"
    ]
    assert (certify.actor_role, certify.actor_id) == (
        "agency_caseworker",
        world.agency_caseworker.pk,
    )


def test_the_providing_unit_notifies_a_revocation_and_the_centre_deletes_within_three_days(
    world: World, time_machine: TimeMachineFixture
):
    on(time_machine, date(2026, 9, 29))

    response = api(world.agency_caseworker).post(
        CASES,
        filing(
            world.sh_record,
            kind="deletion",
            grounds="decision_revoked",
            requested_remedy="delete",
            statement="该行政处罚决定已被复议机关撤销",
            fields_objected=[],
            correction={},
            documents={"revocation_notice": "沪市监函〔2026〕88号"},
        ),
        format="json",
    )

    assert response.status_code == 201, response.json()
    case = case_route(case_id=Case.objects.get(reference=response.json()["reference"]).pk)
    assert (case.workflow.key, case.responsible_agency.code) == (
        "shanghai-revocation-deletion",
        "shanghai-credit-centre",
    )
    # 30 September, 8 and 9 October
    assert clock_of(case, "deletion_deadline").due_on == date(2026, 10, 9)
    assert CaseDocument.objects.get(case=case).reference == "沪市监函〔2026〕88号"

    body = transition(world.caseworker, case, "delete", reasons="撤销决定属实").json()

    assert body["state"] == "closed"
    assert CreditRecord.objects.get(pk=case.record_id).status == "deleted"


@pytest.mark.parametrize("who", ["citizen", "caseworker_of_another_agency"])
def test_only_the_providing_unit_can_notify_a_revocation(world: World, who: str):
    user = world.citizen if who == "citizen" else staff("sh-tax-cw", "caseworker", "shanghai-tax")
    before = Case.objects.count(), AuditEvent.objects.count()

    response = api(user).post(
        CASES,
        filing(
            world.sh_record,
            kind="deletion",
            grounds="decision_revoked",
            requested_remedy="delete",
            documents={"revocation_notice": "沪市监函〔2026〕88号"},
        ),
        format="json",
    )

    assert response.status_code == 404
    assert (Case.objects.count(), AuditEvent.objects.count()) == before


def test_a_citizen_filing_a_deletion_through_the_service_is_refused(world: World):
    with pytest.raises(FilingRefused, match="Only the unit that provided the record"):
        case_file(
            actor=world.citizen,
            record=world.sh_record,
            kind="deletion",
            grounds="decision_revoked",
            statement="撤销",
            requested_remedy="delete",
        )
    assert not Case.objects.exists()


def test_a_step_missing_its_document_raises_before_anything_changes(
    world: World, time_machine: TimeMachineFixture
):
    on(time_machine, date(2026, 9, 29))
    case = case_route(
        case_id=case_file(
            actor=world.agency_caseworker,
            record=world.sh_record,
            kind="deletion",
            grounds="decision_revoked",
            statement="撤销",
            requested_remedy="delete",
        ).pk
    )
    before = case_snapshot(case)

    with pytest.raises(MissingFields) as missing:
        case_transition(
            case_id=case.pk,
            transition="delete",
            actor=world.caseworker,
            data=TransitionInput(reasons="撤销决定属实"),
        )

    assert missing.value.extra["documents"] == ["revocation_notice"]
    assert case_snapshot(case) == before


def test_the_forwarding_limit_no_longer_applies_once_the_centre_decides_itself(
    world: World, time_machine: TimeMachineFixture
):
    on(time_machine, date(2026, 9, 29))
    case = file_case(world.citizen, world.sh_record)
    transition(world.caseworker, case, "start_review")
    on(time_machine, date(2026, 10, 9))  # past the forwarding limit of 8 October

    body = transition(world.caseworker, case, "refuse", reasons="信息准确").json()

    assert body["state"] == "decided_refused"
    forward = clock_of(case, "forward_deadline")
    decision = clock_of(case, "centre_decision_deadline")
    # nothing was to be forwarded: the limit is neither kept nor missed; the decision was in time
    assert (forward.status, decision.status, decision.due_on) == (
        "cancelled",
        "stopped",
        date(2026, 10, 12),
    )


def test_a_grant_that_leaves_the_remedy_open_is_refused(
    world: World, time_machine: TimeMachineFixture
):
    on(time_machine, date(2026, 6, 1))
    hubei = staff("hb-market-cw", "caseworker", "hubei-market")
    case = case_route(
        case_id=case_file(
            actor=world.citizen,
            record=world.hb_record,
            kind="repair",
            grounds="obligation_fulfilled",
            statement="已履行",
            requested_remedy="delete",  # not a remedy Hubei's repair carries out
        ).pk
    )
    transition(hubei, case, "accept")
    before = case_snapshot(case)

    response = transition(hubei, case, "grant", outcome="granted", reasons="已履行")

    assert response.status_code == 400
    assert (response.json()["fields"], response.json()["allowed"]) == (
        ["remedy"],
        ["annotate", "end_publication"],
    )
    assert case_snapshot(case) == before
    chosen = transition(
        hubei, case, "grant", outcome="granted", reasons="已履行", remedy="annotate"
    )
    assert chosen.json()["state"] == "closed"
