"""Case services: filing, routing, transitions with their effects, clocks, approvals, sweeps."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta

import pytest
from django.utils import timezone

from audit.models import AuditEvent
from objections.calendar import WorkingCalendar
from objections.exceptions import (
    CaseConflict,
    ExtensionRefused,
    FilingRefused,
    MissingFields,
    RoleNotAllowed,
    TransitionNotAvailable,
)
from objections.models import Case, Clock, Escalation, PendingApproval, WorkflowDefinition
from objections.services import (
    TransitionInput,
    case_approval_decide,
    case_dispute_statement_add,
    case_file,
    case_route,
    case_transition,
    cases_unrouted_redrive,
    clocks_sweep,
    workflow_definition_publish,
)
from records.content import ContentInvalid
from records.models import CreditRecord, CreditRecordVersion
from tests.factories import CatalogueEntryFactory, CreditRecordFactory
from tests.objections.conftest import case_snapshot

pytestmark = pytest.mark.django_db

GRANT = TransitionInput(
    outcome="granted", reasons="核实后确有错误", correction={"title": "更正后的标题"}
)
REFUSE = TransitionInput(outcome="refused", reasons="记录准确")


def file_objection(world, record=None, **overrides):
    values = {
        "actor": world.citizen,
        "record": record or world.sh_record,
        "kind": "objection",
        "grounds": "inaccurate",
        "statement": "处罚对象错误",
        "requested_remedy": "correct",
        "correction": {"title": "更正后的标题"},
    }
    values.update(overrides)
    return case_file(**values)


def routed(world, record=None, **overrides) -> Case:
    case = file_objection(world, record, **overrides)
    return case_route(case_id=case.pk)


def routed_repair(world) -> Case:
    """A Zhejiang repair application (ending publication), routed: its clock is running."""
    return routed(
        world,
        world.zj_record,
        kind="repair",
        grounds="obligation_fulfilled",
        requested_remedy="end_publication",
        correction={},
    )


def events(case: Case, action: str | None = None) -> list[AuditEvent]:
    found = AuditEvent.objects.filter(case_reference=case.reference).order_by("sequence")
    return list(found.filter(action=action) if action else found)


# --- filing -------------------------------------------------------------------------------------


def test_filing_creates_the_case_audits_it_and_queues_routing_after_commit(
    world, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks() as callbacks:
        case = file_objection(world)

    year = timezone.localdate().year
    assert (case.reference, case.state, case.is_open, case.workflow_id) == (
        f"SH-{year}-000001",
        "filed",
        True,
        None,
    )
    assert (case.subject, case.filed_by, case.jurisdiction.code) == (
        world.subject,
        world.citizen,
        "shanghai",
    )
    [filed] = events(case)
    assert (filed.action, filed.actor_id, filed.payload) == (
        "case.filed",
        world.citizen.pk,
        {
            "kind": "objection",
            "record": world.sh_record.pk,
            "grounds": "inaccurate",
            "remedy": "correct",
        },
    )
    assert len(callbacks) == 2  # routing and the applicant's notification, both after commit


def test_second_open_case_of_the_same_kind_on_a_record_is_a_conflict(world):
    file_objection(world)
    count = Case.objects.count()

    with pytest.raises(CaseConflict, match="An open objection case about this record"):
        file_objection(world)

    assert Case.objects.count() == count


def test_repair_waits_for_the_catalogue_minimum_period(world):
    serious = CatalogueEntryFactory(
        jurisdiction=world.sh_record.category.jurisdiction,
        code="penalty-serious",
        severity="serious",
        publication_min_months=12,
        publication_max_months=36,
    )
    recent = CreditRecordFactory(
        agency=world.sh_record.agency,
        subject=world.subject,
        category=serious,
        decision_date=timezone.localdate() - timedelta(days=100),
        conduct_ended_on=timezone.localdate() - timedelta(days=130),
        publication_start=timezone.localdate() - timedelta(days=100),
        publication_end=timezone.localdate() + timedelta(days=630),
        retention_end=timezone.localdate() + timedelta(days=1700),
    )

    with pytest.raises(FilingRefused, match="minimum period for a serious record is 12 months"):
        file_objection(
            world,
            recent,
            kind="repair",
            grounds="obligation_fulfilled",
            requested_remedy="end_publication",
            correction={},
        )

    assert not Case.objects.exists()


def test_repair_is_refused_while_on_a_serious_dishonesty_list_in_zhejiang(world):
    world.subject.on_serious_dishonesty_list = True
    world.subject.save()

    with pytest.raises(FilingRefused, match="serious-dishonesty list"):
        file_objection(
            world,
            world.zj_record,
            kind="repair",
            grounds="obligation_fulfilled",
            requested_remedy="end_publication",
            correction={},
        )

    assert not Case.objects.exists()


def test_repair_of_an_unrepairable_category_is_refused(world):
    category = world.sh_record.category
    category.repairable = False
    category.save()

    with pytest.raises(FilingRefused, match="cannot be repaired"):
        file_objection(
            world,
            kind="repair",
            grounds="obligation_fulfilled",
            requested_remedy="end_publication",
            correction={},
        )


def test_correction_of_a_field_that_cannot_be_corrected_is_refused(world):
    before = Case.objects.count()
    with pytest.raises(ContentInvalid, match="subject_id"):
        file_objection(world, correction={"subject_id": 1})
    assert Case.objects.count() == before


# --- routing ------------------------------------------------------------------------------------


def test_routing_chooses_workflow_agency_and_least_loaded_caseworker_and_marks_the_record(world):
    busy = routed(world, world.other_record, actor=world.other_citizen)
    assert busy.assignee == world.caseworker  # both idle: the longest-serving first

    case = routed(world)

    current = WorkflowDefinition.objects.get(key="shanghai-objection", is_current=True)
    assert (case.workflow, case.responsible_agency.code, case.assignee) == (
        current,
        "shanghai-credit-centre",
        world.second_caseworker,  # the first has one open case already
    )
    assert case.state == "marked"  # the system marked it right away
    record = CreditRecord.objects.get(pk=world.sh_record.pk)
    assert record.under_objection is True
    assert [event.action for event in events(case)] == [
        "case.filed",
        "case.routed",
        "record.marked",
        "case.transitioned",
    ]


def test_routing_starts_the_clocks_with_their_traces(world):
    case = routed(world)

    calendar = WorkingCalendar()
    filed_on = timezone.localdate(case.filed_at)
    clocks = {clock.timer: clock for clock in Clock.objects.filter(case=case)}
    assert clocks["marking_deadline"].status == "stopped"  # marked within the day
    forward = clocks["forward_deadline"]
    decide = clocks["centre_decision_deadline"]
    assert (forward.status, forward.unit, forward.amount) == ("running", "working", 2)
    assert forward.due_on == calendar.add_working_days(filed_on, 2).due
    assert decide.due_on == calendar.add_working_days(filed_on, 5).due
    assert decide.trace == calendar.add_working_days(filed_on, 5).trace_text()
    assert decide.source_verified is True
    assert "第三十六条" in decide.source_citation
    assert case.next_due_on == forward.due_on


def test_routing_twice_changes_nothing(world):
    case = routed(world)
    before = case_snapshot(case)

    again = case_route(case_id=case.pk)

    assert case_snapshot(again) == before


def test_redrive_requeues_only_unrouted_cases_past_the_grace_period(world, monkeypatch):
    queued = []
    monkeypatch.setattr(
        "objections.tasks.case_route_task.delay", lambda **kwargs: queued.append(kwargs)
    )
    lost = file_objection(world)
    routed(world, world.zj_record)
    Case.objects.filter(pk=lost.pk).update(filed_at=timezone.now() - timedelta(minutes=5))

    assert cases_unrouted_redrive(older_than_seconds=60) == [lost.pk]
    assert queued == [{"case_id": lost.pk}]


# --- transitions --------------------------------------------------------------------------------


def test_granted_objection_is_executed_corrected_and_closed(world):
    case = routed(world)
    case_transition(case_id=case.pk, transition="start_review", actor=world.caseworker)

    case = case_transition(case_id=case.pk, transition="grant", actor=world.caseworker, data=GRANT)

    case.refresh_from_db()
    assert (case.state, case.is_open, case.outcome) == ("closed", False, "granted")
    record = CreditRecord.objects.get(pk=world.sh_record.pk)
    assert (record.title, record.version, record.status, record.under_objection) == (
        "更正后的标题",
        2,
        "corrected",
        False,
    )
    kept = CreditRecordVersion.objects.get(record=record)
    assert (kept.version, kept.title) == (1, world.sh_record.title)
    transitions = [e.payload["transition"] for e in events(case, "case.transitioned")]
    assert transitions == ["mark", "start_review", "grant", "execute_correction", "complete"]
    assert not Clock.objects.filter(case=case, status__in=["running", "paused"]).exists()


def test_refusal_keeps_the_record_and_lets_the_applicant_add_a_statement(world):
    case = routed(world)
    case_transition(case_id=case.pk, transition="start_review", actor=world.caseworker)
    case_transition(case_id=case.pk, transition="refuse", actor=world.caseworker, data=REFUSE)
    case = case_transition(case_id=case.pk, transition="notify_refusal", actor=world.caseworker)

    statement = case_dispute_statement_add(
        case_id=case.pk, actor=world.citizen, text="本人不认可该处理结果。"
    )

    record = CreditRecord.objects.get(pk=world.sh_record.pk)
    assert (record.title, record.version, record.under_objection) == (
        world.sh_record.title,
        1,
        False,
    )
    assert (statement.record, statement.text) == (record, "本人不认可该处理结果。")
    assert events(case)[-1].action == "record.dispute_added"


@pytest.mark.parametrize(
    ("who", "transition", "data", "error"),
    [
        ("citizen", "start_review", TransitionInput(), RoleNotAllowed),
        ("other_citizen", "withdraw", TransitionInput(), RoleNotAllowed),
        ("zj_caseworker", "start_review", TransitionInput(), RoleNotAllowed),
        ("caseworker", "grant", GRANT, TransitionNotAvailable),  # not from "marked"
        ("caseworker", "no_such_step", TransitionInput(), TransitionNotAvailable),
    ],
)
def test_refused_transitions_change_nothing(world, who, transition, data, error):
    case = routed(world)
    before = case_snapshot(case)

    with pytest.raises(error):
        case_transition(
            case_id=case.pk, transition=transition, actor=getattr(world, who), data=data
        )

    assert case_snapshot(case) == before


def test_decision_without_reasons_is_refused_and_changes_nothing(world):
    case = routed(world)
    case_transition(case_id=case.pk, transition="start_review", actor=world.caseworker)
    before = case_snapshot(case)

    with pytest.raises(MissingFields) as caught:
        case_transition(
            case_id=case.pk,
            transition="grant",
            actor=world.caseworker,
            data=TransitionInput(outcome="granted"),
        )

    assert caught.value.extra["fields"] == ["reasons"]
    assert case_snapshot(case) == before


def test_stale_lock_version_is_a_conflict(world):
    case = routed(world)
    seen = case.lock_version
    case_transition(case_id=case.pk, transition="start_review", actor=world.caseworker)
    before = case_snapshot(case)

    with pytest.raises(CaseConflict, match="changed since you opened it"):
        case_transition(
            case_id=case.pk,
            transition="forward",
            actor=world.caseworker,
            expected_lock_version=seen,
        )

    assert case_snapshot(case) == before


def test_forwarded_case_is_decided_by_the_providing_agency(world):
    case = routed(world)
    case = case_transition(case_id=case.pk, transition="forward", actor=world.caseworker)
    assert case.state == "provider_review"

    with pytest.raises(RoleNotAllowed):
        case_transition(case_id=case.pk, transition="grant", actor=world.caseworker, data=GRANT)
    case_transition(case_id=case.pk, transition="grant", actor=world.agency_caseworker, data=GRANT)

    case.refresh_from_db()
    assert case.state == "closed"
    provider_clock = Clock.objects.get(case=case, timer="provider_decision_deadline")
    assert provider_clock.status == "stopped"


def test_withdrawal_unmarks_the_record(world):
    case = routed(world)

    case = case_transition(case_id=case.pk, transition="withdraw", actor=world.citizen)

    assert (case.state, case.is_open) == ("withdrawn", False)
    assert CreditRecord.objects.get(pk=world.sh_record.pk).under_objection is False
    # a new objection about the same record may now be filed
    assert file_objection(world).state == "filed"


# --- second person, extension, review -----------------------------------------------------------


def zhejiang_case(world) -> Case:
    case = routed(world, world.zj_record)
    assert case.state == "under_review"  # accepted on routing
    return case


def test_extension_needs_a_second_person_and_respects_the_cap(world):
    case = zhejiang_case(world)
    clock = Clock.objects.get(case=case, timer="handling_deadline", status="running")
    extend = TransitionInput(extension_reason="案情复杂", extension_days=10)

    case = case_transition(
        case_id=case.pk, transition="extend", actor=world.zj_caseworker, data=extend
    )
    approval = PendingApproval.objects.get(case=case, approved__isnull=True)
    assert (case.state, approval.transition) == ("under_review", "extend")
    with pytest.raises(RoleNotAllowed, match="cannot approve it"):
        case_approval_decide(approval_id=approval.pk, actor=world.zj_caseworker, approve=True)

    with pytest.raises(RoleNotAllowed, match="may not approve"):
        case_approval_decide(approval_id=approval.pk, actor=world.zj_supervisor, approve=True)
    case_approval_decide(approval_id=approval.pk, actor=world.zj_drc_supervisor, approve=True)

    clock.refresh_from_db()
    calendar = WorkingCalendar()
    assert clock.extended_by == 10
    assert (
        clock.due_on
        == calendar.add_working_days(calendar.add_working_days(clock.started_on, 5).due, 10).due
    )
    event = events(case, "case.transitioned")[-1]
    assert (event.actor_id, event.payload["approved_by"]) == (
        world.zj_caseworker.pk,
        world.zj_drc_supervisor.pk,
    )
    too_long = TransitionInput(extension_reason="仍需核查", extension_days=6)
    with pytest.raises(ExtensionRefused, match="at most 20"):
        case_transition(
            case_id=case.pk, transition="extend", actor=world.zj_caseworker, data=too_long
        )
    clock.refresh_from_db()
    assert clock.extended_by == 10
    assert not PendingApproval.objects.filter(case=case, approved__isnull=True).exists()


def test_closed_zhejiang_case_changes_only_by_review(world):
    case = zhejiang_case(world)
    case_transition(case_id=case.pk, transition="refuse", actor=world.zj_caseworker, data=REFUSE)
    case = case_transition(case_id=case.pk, transition="notify_refusal", actor=world.zj_caseworker)
    assert (case.state, case.is_open) == ("closed", False)

    with pytest.raises(TransitionNotAvailable):
        case_transition(case_id=case.pk, transition="grant", actor=world.zj_caseworker, data=GRANT)
    case = case_transition(
        case_id=case.pk,
        transition="request_review",
        actor=world.citizen,
        data=TransitionInput(statement="处理结果有误，申请复核"),
    )

    assert (case.state, case.is_open) == ("drc_review", True)
    assert Clock.objects.filter(case=case, timer="review_deadline", status="running").exists()


# --- clocks -------------------------------------------------------------------------------------


def test_material_request_pauses_the_clock_and_supply_resumes_it(world, time_machine):
    case = routed_repair(world)
    clock = Clock.objects.get(case=case, status="running")
    due = clock.due_on
    today = timezone.localdate()

    case = case_transition(
        case_id=case.pk,
        transition="request_material",
        actor=world.zj_agency_caseworker,
        data=TransitionInput(material_request="请补充缴款凭证"),
    )
    clock.refresh_from_db()
    assert (case.state, clock.status) == ("awaiting_material", "paused")

    later = WorkingCalendar().add_working_days(today, 3).due
    time_machine.move_to(
        datetime.combine(later, time(10), tzinfo=timezone.get_current_timezone()), tick=False
    )
    case = case_transition(case_id=case.pk, transition="supply_material", actor=world.citizen)

    clock.refresh_from_db()
    assert (case.state, clock.status) == ("received", "running")
    assert clock.due_on == WorkingCalendar().add_working_days(due, 3).due
    assert "请补充缴款凭证" in clock.trace
    pause = clock.pauses.get()
    assert (pause.started_on, pause.ended_at is not None) == (today, True)


def test_sweep_reminds_then_escalates_once_and_never_decides(world):
    case = routed(world)
    clock = Clock.objects.get(case=case, timer="centre_decision_deadline")
    running = list(Clock.objects.filter(case=case, status="running"))
    near = clock.remind_on
    expected_reminders = sorted(c.timer for c in running if c.remind_on <= near <= c.due_on)
    overdue = [c for c in running if c.due_on < near]

    assert clocks_sweep(today=near) == (len(expected_reminders), len(overdue))
    assert sorted(e.payload["timer"] for e in events(case, "case.reminded")) == (expected_reminders)
    after = clock.due_on + timedelta(days=1)
    _reminded, escalated = clocks_sweep(today=after)
    again = clocks_sweep(today=after)

    case.refresh_from_db()
    assert case.state == "marked"
    assert escalated + len(overdue) == 2  # the forwarding and the decision deadline both passed
    assert again == (0, 0)
    escalation = Escalation.objects.get(clock=clock)
    assert escalation.case == case
    assert [e.payload["timer"] for e in events(case, "case.escalated")] == [
        "forward_deadline",
        "centre_decision_deadline",
    ]


# --- definitions --------------------------------------------------------------------------------


def test_a_running_case_stays_on_the_version_it_was_routed_with(world):
    case = routed(world)
    old = case.workflow
    text = old.source_text.replace("amount: 5", "amount: 6", 1)

    new, created = workflow_definition_publish(source_text=text, actor=None)

    assert (created, new.version, new.is_current) == (True, old.version + 1, True)
    old.refresh_from_db()
    case.refresh_from_db()
    assert (old.is_current, case.workflow_id) == (False, old.pk)
    assert routed(world, world.other_record, actor=world.other_citizen).workflow_id == new.pk


def test_hubei_cases_run_on_unverified_parameters(world):
    case = routed(world, world.hb_record)

    assert case.workflow.parameters_verified is False
    assert not Clock.objects.filter(case=case, source_verified=True).exists()


def test_a_guard_hubei_does_not_declare_is_not_enforced_and_the_filing_says_so(world):
    # Hubei's repair rules could not be read: nothing says a serious-dishonesty listing blocks
    # repair there, so it does not, and the filing records the guards it did not apply.
    world.subject.on_serious_dishonesty_list = True
    world.subject.save()
    record = world.hb_record
    CreditRecord.objects.filter(pk=record.pk).update(decision_date=date(2020, 1, 10))
    record.refresh_from_db()

    case = file_objection(
        world,
        record,
        kind="repair",
        grounds="obligation_fulfilled",
        requested_remedy="end_publication",
        correction={},
    )

    filed = AuditEvent.objects.get(case_reference=case.reference, action="case.filed")
    assert filed.payload["guards_not_enforced"] == [
        "serious_list_blocks_repair",
        "no_new_record_of_same_type",
    ]
