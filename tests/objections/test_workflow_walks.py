"""Every built-in workflow walked from filing to closing through the REST API by the demo staff.

Issue 10 ("Tests that must exist"). Per workflow file (objections/workflows/*.yaml) a case is
filed over POST /api/v1/cases/, routed as the worker routes it after commit (`case_route`; Celery
does not run here), and taken along one path to `closed` by the people `load_demo` makes
(DEMO_STAFF: <jurisdiction>-<body>-<caseworker|supervisor>): the granting path where there is one,
with the file's second-person approvals and waiting periods. Each call is checked for its HTTP
status, the state it leaves, and the audit events it wrote, one line each (`logged`):

    forward marked->provider_review: caseworker @ shanghai-credit-centre
    mark received->marked: system
    extend requested: caseworker @ zhejiang-credit-centre
    extend under_review->under_review: caseworker @ <body>, approved by drc_supervisor @ <body>

the workflow role each step was taken in and the body that took it (the agency of the person, or
the applicant), "system" for the steps the service takes by itself. At the end the case is
closed and the record shows the decision.

The walks, the events and the bodies are written out by hand from the files' `bodies` and
transitions; none of it is read from the code under test.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml
from django.core.cache import cache
from rest_framework.test import APIClient
from time_machine import TimeMachineFixture

from accounts.models import User
from audit.models import AuditEvent
from objections.management.commands.load_demo import Command
from objections.models import Case
from objections.services import case_route, workflow_definitions_sync
from records import demo
from records.models import CatalogueEntry, CreditRecord
from records.services import subject_access_grant
from tests.clock import SHANGHAI
from tests.conftest import head_sequence
from tests.factories import SubjectFactory, UserFactory, registry_record

CASES = "/api/v1/cases/"
WORKFLOWS = Path(__file__).resolve().parents[2] / "objections" / "workflows"

# A Monday on which every repair guard lets the walks' records (decided 2024-01-10) be repaired,
# and a Monday before Order No. 36 (2026-04-01), when a national repair runs under Order No. 58.
WALK_START = datetime(2026, 6, 1, 10, tzinfo=SHANGHAI)
BEFORE_ORDER_36 = datetime(2026, 3, 16, 10, tzinfo=SHANGHAI)

SYSTEM = "system"
APPLICANT = "applicant"  # the citizen acting for the record's subject (not a demo user)

# The record as `registry_record` makes it, and the values the walks' decisions set.
TITLE = "未按规定公示信息"
FACTS = "经查，当事人未按规定公示信息。"
NEW_TITLE = "已撤销的处罚"
NEW_FACTS = "经复议，原处罚决定已撤销。"
REASONS = "经核查，申请理由成立。"
GRANT = {"outcome": "granted", "reasons": REASONS}
CORRECT_TITLE = {**GRANT, "correction": {"title": NEW_TITLE}}

# The repairable serious-dishonesty list of the demo catalogue (the court's list is not repaired).
SERIOUS_LIST = "serious-dishonesty-list"


# --- what a walk is ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Step:
    """POST .../transitions/ as `user` (a demo username or APPLICANT): the case's state after
    it, and the events it wrote (the automatic steps that follow included)."""

    user: str
    transition: str
    state: str
    events: tuple[str, ...]
    data: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Approve:
    """POST .../approvals/<id>/ {approve: true} as `user`, for the step awaiting approval."""

    user: str
    state: str
    events: tuple[str, ...]


@dataclass(frozen=True)
class TooEarly:
    """A step the case must wait for: 409, and nothing written."""

    user: str
    transition: str
    available_from: date


@dataclass(frozen=True)
class Wait:
    until: datetime


Call = Step | Approve | TooEarly | Wait


@dataclass(frozen=True)
class Filing:
    user: str  # who files
    agency: str  # the agency holding the record
    category: str  # its catalogue entry
    kind: str
    grounds: str
    remedy: str
    correction: Mapping[str, str] = field(default_factory=dict)
    documents: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Walk:
    filed_at: datetime
    filing: Filing
    responsible: str  # the agency that answers for the case once routed
    routed: str  # the state after routing and the automatic steps that follow it
    routed_events: tuple[str, ...]
    calls: tuple[Call, ...]
    record: Mapping[str, Any]  # status, title, facts, under_objection, repaired
    outcome: str = "granted"


def objection(agency: str, category: str = "penalty-general") -> Filing:
    correction = {"title": NEW_TITLE}
    return Filing(APPLICANT, agency, category, "objection", "inaccurate", "correct", correction)


def repair(agency: str, remedy: str, category: str = "penalty-general", **documents: str) -> Filing:
    return Filing(
        APPLICANT, agency, category, "repair", "obligation_fulfilled", remedy, documents=documents
    )


def record_after(status: str, **changes: Any) -> dict[str, Any]:
    return {
        "status": status,
        "title": TITLE,
        "facts": FACTS,
        "under_objection": False,
        "repaired": False,
        **changes,
    }


def centre_then_provider(place: str) -> Walk:
    """Shanghai and Hubei objections: the platform marks and forwards, the providing unit
    decides, the system corrects and closes."""
    return Walk(
        filed_at=WALK_START,
        filing=objection(f"{place}-market"),
        responsible=f"{place}-credit-centre",
        routed="marked",
        routed_events=("mark received->marked: system",),
        calls=(
            Step(
                f"{place}-centre-caseworker",
                "forward",
                "provider_review",
                (f"forward marked->provider_review: caseworker @ {place}-credit-centre",),
            ),
            Step(
                f"{place}-market-caseworker",
                "grant",
                "closed",
                (
                    f"grant provider_review->decided_granted: agency_caseworker @ {place}-market",
                    "execute_correction decided_granted->executing: system",
                    "complete executing->closed: system",
                ),
                CORRECT_TITLE,
            ),
        ),
        record=record_after("corrected", title=NEW_TITLE),
    )


def credit_china_repair(filed_at: datetime, category: str, **documents: str) -> Walk:
    """National repairs: Credit China forwards, the designating authority grants with the
    applicant's materials on file, the system ends publication."""
    return Walk(
        filed_at=filed_at,
        filing=repair("national-market", "end_publication", category, **documents),
        responsible="national-credit-centre",
        routed="received",
        routed_events=(),
        calls=(
            Step(
                "national-centre-caseworker",
                "forward",
                "authority_review",
                ("forward received->authority_review: caseworker @ national-credit-centre",),
            ),
            Step(
                "national-market-caseworker",
                "grant",
                "closed",
                (
                    "grant authority_review->decided_granted: agency_caseworker @ national-market",
                    "execute decided_granted->closed: system",
                ),
                GRANT,
            ),
        ),
        record=record_after("publication_ended"),
    )


WALKS: dict[str, Walk] = {
    "credit-china-objection": Walk(
        filed_at=WALK_START,
        filing=objection("national-market"),
        responsible="national-credit-centre",
        routed="marked",
        routed_events=("mark received->marked: system",),
        calls=(
            Step(
                "national-centre-caseworker",
                "forward",
                "authority_review",
                ("forward marked->authority_review: caseworker @ national-credit-centre",),
            ),
            Step(
                "national-market-caseworker",
                "grant",
                "closed",
                (
                    "grant authority_review->decided_granted: agency_caseworker @ national-market",
                    "execute_correction decided_granted->executing: system",
                    "complete executing->closed: system",
                ),
                CORRECT_TITLE,
            ),
        ),
        record=record_after("corrected", title=NEW_TITLE),
    ),
    "hubei-objection": centre_then_provider("hubei"),
    "hubei-repair": Walk(
        filed_at=WALK_START,
        filing=repair("hubei-market", "end_publication"),
        responsible="hubei-credit-centre",
        routed="received",
        routed_events=(),
        calls=(
            Step(
                "hubei-market-caseworker",
                "accept",
                "verification",
                ("accept received->verification: agency_caseworker @ hubei-market",),
            ),
            Step(
                "hubei-market-caseworker",
                "grant",
                "closed",
                (
                    "grant verification->decided_granted: agency_caseworker @ hubei-market",
                    "execute_end_publication decided_granted->closed: system",
                ),
                GRANT,
            ),
        ),
        record=record_after("publication_ended"),
    ),
    "national-list-removal": credit_china_repair(
        WALK_START,
        SERIOUS_LIST,
        credit_commitment="信用承诺书 2026-001",
        performance_proof="履行证明 2026-002",
    ),
    "national-repair-2023": credit_china_repair(
        BEFORE_ORDER_36,
        "penalty-general",
        repair_commitment="修复承诺书 2026-001",
        performance_proof="缴款凭证 2026-002",
    ),
    "national-repair": credit_china_repair(
        WALK_START,
        "penalty-general",
        credit_commitment="信用承诺书 2026-001",
        performance_proof="缴款凭证 2026-002",
    ),
    # The credit reference centre refuses; the applicant complains to the PBoC branch twice: its
    # staff dismiss the first complaint, its head grants the second and orders the centre to
    # correct, which the centre does (staff and head may both decide: the walk shows each).
    "pboc-objection": Walk(
        filed_at=WALK_START,
        filing=objection("national-credit-service", "credit-loan-overdue"),
        responsible="national-credit-service",
        routed="under_review",
        routed_events=("mark received->under_review: system",),
        calls=(
            Step(
                "national-credit-service-caseworker",
                "refuse",
                "decided_refused",
                ("refuse under_review->decided_refused: caseworker @ national-credit-service",),
                {"reasons": "经核查，信息无误。"},
            ),
            Step(
                "national-credit-service-caseworker",
                "notify_refusal",
                "closed",
                ("notify_refusal decided_refused->closed: caseworker @ national-credit-service",),
            ),
            Step(
                APPLICANT,
                "request_review",
                "complaint_review",
                ("request_review closed->complaint_review: citizen @ applicant",),
                {"statement": "贷款已按期归还，逾期记录有误。"},
            ),
            Step(
                "national-pboc-caseworker",
                "dismiss_complaint",
                "closed",
                (
                    "dismiss_complaint complaint_review->closed: "
                    "pboc_branch_caseworker @ national-pboc",
                ),
                {"reasons": "投诉材料不足。"},
            ),
            Step(
                APPLICANT,
                "request_review",
                "complaint_review",
                ("request_review closed->complaint_review: citizen @ applicant",),
                {"statement": "补充提交银行出具的还款证明。"},
            ),
            Step(
                "national-pboc-supervisor",
                "grant_complaint",
                "correction_ordered",
                (
                    "grant_complaint complaint_review->correction_ordered: "
                    "pboc_branch_supervisor @ national-pboc",
                ),
                CORRECT_TITLE,
            ),
            Step(
                "national-credit-service-caseworker",
                "execute_ordered_correction",
                "closed",
                (
                    "execute_ordered_correction correction_ordered->closed: "
                    "caseworker @ national-credit-service",
                ),
            ),
        ),
        record=record_after("corrected", title=NEW_TITLE),
    ),
    "shanghai-credit-service-objection": Walk(
        filed_at=WALK_START,
        filing=objection("shanghai-credit-service", "credit-loan-overdue"),
        responsible="shanghai-credit-service",
        routed="under_review",
        routed_events=("mark received->under_review: system",),
        calls=(
            Step(
                "shanghai-credit-service-caseworker",
                "grant",
                "executing",
                (
                    "grant under_review->decided_granted: caseworker @ shanghai-credit-service",
                    "execute_correction decided_granted->executing: system",
                ),
                CORRECT_TITLE,
            ),
            # Art 36 ¶3: the agency replies in writing, with the reply on the case.
            Step(
                "shanghai-credit-service-caseworker",
                "complete",
                "closed",
                ("complete executing->closed: caseworker @ shanghai-credit-service",),
                {"documents": {"written_reply": "沪信服函〔2026〕17号"}},
            ),
        ),
        record=record_after("corrected", title=NEW_TITLE),
    ),
    "shanghai-objection": centre_then_provider("shanghai"),
    # Art 38, for information other than penalties (those are repaired through Credit China).
    "shanghai-repair": Walk(
        filed_at=WALK_START,
        filing=repair("shanghai-market", "end_publication", category="tax-arrears"),
        responsible="shanghai-credit-centre",
        routed="received",
        routed_events=(),
        calls=(
            Step(
                "shanghai-market-caseworker",
                "certify",
                "closed",
                (
                    "certify received->certified: agency_caseworker @ shanghai-market",
                    "remove certified->closed: system",
                ),
                {**GRANT, "documents": {"repair_certificate": "沪市监信修〔2026〕8号"}},
            ),
        ),
        record=record_after("publication_ended"),
    ),
    # Art 37: the providing unit notifies the revocation; the centre deletes.
    "shanghai-revocation-deletion": Walk(
        filed_at=WALK_START,
        filing=Filing(
            "shanghai-market-caseworker",
            "shanghai-market",
            "penalty-general",
            "deletion",
            "decision_revoked",
            "delete",
            documents={"revocation_notice": "沪市监撤字〔2026〕3号"},
        ),
        responsible="shanghai-credit-centre",
        routed="received",
        routed_events=(),
        calls=(
            Step(
                "shanghai-centre-caseworker",
                "delete",
                "closed",
                ("delete received->closed: caseworker @ shanghai-credit-centre",),
            ),
        ),
        record=record_after("deleted"),
    ),
    # The centre grants in part after the DRC's head extended its deadline (Art 31 ¶1); the
    # applicant asks the DRC for review (Art 30 ¶2), whose staff extend (approved by its head
    # again) and revise the decision.
    "zhejiang-objection": Walk(
        filed_at=WALK_START,
        filing=Filing(
            APPLICANT,
            "zhejiang-market",
            "penalty-general",
            "objection",
            "inaccurate",
            "correct",
            {"title": NEW_TITLE, "facts": NEW_FACTS},
        ),
        responsible="zhejiang-credit-centre",
        routed="under_review",
        routed_events=("accept received->under_review: system",),
        calls=(
            Step(
                "zhejiang-centre-caseworker",
                "extend",
                "under_review",
                ("extend requested: caseworker @ zhejiang-credit-centre",),
                {"extension_reason": "需向处罚机关调取案卷。", "extension_days": 5},
            ),
            Approve(
                "zhejiang-drc-supervisor",
                "under_review",
                (
                    "extend under_review->under_review: caseworker @ zhejiang-credit-centre, "
                    "approved by drc_supervisor @ zhejiang-drc",
                ),
            ),
            Step(
                "zhejiang-centre-caseworker",
                "grant",
                "closed",
                (
                    "grant under_review->decided_granted: caseworker @ zhejiang-credit-centre",
                    "execute_correction decided_granted->executing: system",
                    "complete executing->closed: system",
                ),
                {
                    "outcome": "partly_granted",
                    "reasons": "标题有误，予以更正；事实部分待复核。",
                    "correction": {"title": NEW_TITLE},
                },
            ),
            Step(
                APPLICANT,
                "request_review",
                "drc_review",
                ("request_review closed->drc_review: citizen @ applicant",),
                {"statement": "事实部分同样有误，请求复核。"},
            ),
            Step(
                "zhejiang-drc-caseworker",
                "extend",
                "drc_review",
                ("extend requested: drc_caseworker @ zhejiang-drc",),
                {"extension_reason": "需听取处罚机关意见。", "extension_days": 5},
            ),
            Approve(
                "zhejiang-drc-supervisor",
                "drc_review",
                (
                    "extend drc_review->drc_review: drc_caseworker @ zhejiang-drc, "
                    "approved by drc_supervisor @ zhejiang-drc",
                ),
            ),
            Step(
                "zhejiang-drc-caseworker",
                "revise_correction",
                "closed",
                ("revise_correction drc_review->closed: drc_caseworker @ zhejiang-drc",),
                {**GRANT, "correction": {"facts": NEW_FACTS}},
            ),
        ),
        record=record_after("corrected", title=NEW_TITLE, facts=NEW_FACTS),
    ),
    # The providing unit accepts and, with its head's approval, publishes a 5-working-day notice
    # (Tuesday 2 June to Monday 8 June); it confirms once the notice has run, and the system
    # annotates the repair.
    "zhejiang-repair": Walk(
        filed_at=WALK_START,
        filing=repair("zhejiang-market", "annotate"),
        responsible="zhejiang-credit-centre",
        routed="received",
        routed_events=(),
        calls=(
            Step(
                "zhejiang-market-caseworker",
                "accept",
                "verification",
                ("accept received->verification: agency_caseworker @ zhejiang-market",),
            ),
            Step(
                "zhejiang-market-caseworker",
                "approve_for_notice",
                "verification",
                ("approve_for_notice requested: agency_caseworker @ zhejiang-market",),
                GRANT,
            ),
            Approve(
                "zhejiang-market-supervisor",
                "public_notice",
                (
                    "approve_for_notice verification->public_notice: "
                    "agency_caseworker @ zhejiang-market, "
                    "approved by agency_supervisor @ zhejiang-market",
                ),
            ),
            TooEarly("zhejiang-market-caseworker", "confirm", available_from=date(2026, 6, 9)),
            Wait(datetime(2026, 6, 9, 10, tzinfo=SHANGHAI)),
            Step(
                "zhejiang-market-caseworker",
                "confirm",
                "closed",
                (
                    "confirm public_notice->decided_granted: agency_caseworker @ zhejiang-market",
                    "annotate_repair decided_granted->closed: system",
                ),
            ),
        ),
        record=record_after("publication_ended", repaired=True),
    ),
}


@dataclass(frozen=True)
class BySystem:
    """The body's only step on the walk is one the service takes by itself in its stead."""

    transition: str


CREDIT_CHINA = {"caseworker": "national-credit-centre", "agency_caseworker": "national-market"}
# Who each file's `bodies` are in the demo registry: the agency whose staff act in the role.
BODIES: dict[str, Mapping[str, str | BySystem]] = {
    "credit-china-objection": CREDIT_CHINA,
    "hubei-objection": {"caseworker": "hubei-credit-centre", "agency_caseworker": "hubei-market"},
    "hubei-repair": {
        "caseworker": BySystem("execute_end_publication"),
        "agency_caseworker": "hubei-market",
    },
    "national-list-removal": CREDIT_CHINA,
    "national-repair-2023": CREDIT_CHINA,
    "national-repair": CREDIT_CHINA,
    "pboc-objection": {
        "caseworker": "national-credit-service",
        "pboc_branch_caseworker": "national-pboc",
        "pboc_branch_supervisor": "national-pboc",
    },
    "shanghai-credit-service-objection": {"caseworker": "shanghai-credit-service"},
    "shanghai-objection": {
        "caseworker": "shanghai-credit-centre",
        "agency_caseworker": "shanghai-market",
    },
    "shanghai-repair": {"caseworker": BySystem("remove"), "agency_caseworker": "shanghai-market"},
    "shanghai-revocation-deletion": {"caseworker": "shanghai-credit-centre"},
    "zhejiang-objection": {
        "caseworker": "zhejiang-credit-centre",
        "drc_caseworker": "zhejiang-drc",
        "drc_supervisor": "zhejiang-drc",
    },
    "zhejiang-repair": {
        "caseworker": BySystem("annotate_repair"),
        "agency_caseworker": "zhejiang-market",
        "agency_supervisor": "zhejiang-market",
    },
}


# --- helpers ----------------------------------------------------------------------------------


@pytest.fixture(autouse=True)
def _fresh_throttle(db: None) -> None:
    # The filing throttle counts per user id in the cache, which outlives each test's rollback.
    cache.clear()


def api(user: User) -> APIClient:
    client = APIClient(headers={"accept-language": "en"})
    client.force_authenticate(user)
    return client


def demo_people() -> dict[str, User]:
    """The demo registry, the built-in workflows, load_demo's users and an applicant (the whole
    load_demo would import thousands of records)."""
    demo.registry_load()
    workflow_definitions_sync()
    people = Command()._users()
    people[APPLICANT] = UserFactory.create(username=APPLICANT, role="citizen")
    return people


def catalogue_entry(code: str) -> CatalogueEntry:
    return CatalogueEntry.objects.get(jurisdiction__code="national", code=code)


def logged(reference: str, *, after: int, people: Mapping[str, User]) -> list[str]:
    """The case's step events written after sequence `after`, one line each (see the module
    docstring), with each person's body: their agency's code, or their username."""
    body = {user.pk: user.agency.code if user.agency else name for name, user in people.items()}
    lines = []
    for event in AuditEvent.objects.filter(
        case_reference=reference, sequence__gt=after, action__startswith="case."
    ).exclude(action__in=["case.filed", "case.routed"]):
        data = event.payload
        name, role = data["transition"], event.actor_role
        actor = SYSTEM if event.actor_id is None else body[event.actor_id]
        if event.action == "case.approval_requested":
            lines.append(f"{name} requested: {role} @ {actor}")
        elif event.action != "case.transitioned":
            lines.append(f"{event.action} {name}")
        elif data["approved_by"] is not None:
            approver = body[data["approved_by"]]
            lines.append(
                f"{name} {data['from']}->{data['to']}: {role} @ {actor}, "
                f"approved by {data['approver_role']} @ {approver}"
            )
        else:
            who = SYSTEM if actor == SYSTEM else f"{role} @ {actor}"
            lines.append(f"{name} {data['from']}->{data['to']}: {who}")
    return lines


def record_now(record: CreditRecord) -> dict[str, Any]:
    record = CreditRecord.objects.get(pk=record.pk)
    return {
        "status": record.status,
        "title": record.title,
        "facts": record.facts,
        "under_objection": record.under_objection,
        "repaired": record.repaired_at is not None,
    }


def workflow_file(key: str) -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((WORKFLOWS / f"{key}.yaml").read_text(encoding="utf-8"))
    return data


# --- the walks --------------------------------------------------------------------------------


def test_there_is_a_walk_for_every_built_in_workflow():
    files = sorted(path.stem for path in WORKFLOWS.glob("*.yaml"))

    assert len(files) == 13
    assert sorted(WALKS) == files
    assert sorted(BODIES) == files
    assert [workflow_file(key)["key"] for key in files] == files


@pytest.mark.parametrize("key", sorted(WALKS))
def test_a_case_walks_from_filing_to_closing_with_each_body_taking_its_steps(
    key: str, time_machine: TimeMachineFixture
):
    walk, filing = WALKS[key], WALKS[key].filing
    time_machine.move_to(walk.filed_at, tick=False)
    people = demo_people()
    subject = SubjectFactory.create(name="王伟")
    subject_access_grant(subject=subject, user=people[APPLICANT], actor=None)
    category = catalogue_entry(filing.category)
    record = registry_record(filing.agency, subject, "WALK-1", category=category)

    # Filed through the API, then routed as the worker routes it after commit.
    response = api(people[filing.user]).post(
        CASES,
        {
            "record": str(record.public_id),
            "kind": filing.kind,
            "grounds": filing.grounds,
            "statement": "申请人陈述的理由。",
            "requested_remedy": filing.remedy,
            "fields_objected": sorted(filing.correction),
            "correction": dict(filing.correction),
            "documents": dict(filing.documents),
        },
        format="json",
    )
    assert response.status_code == 201, response.json()
    reference = response.json()["reference"]
    assert response.json()["state"] == "filed"
    before = head_sequence()
    case = case_route(case_id=Case.objects.get(reference=reference).pk)
    assert (case.workflow.key, case.responsible_agency.code, case.state) == (
        key,
        walk.responsible,
        walk.routed,
    )
    assert logged(reference, after=before, people=people) == list(walk.routed_events)

    for call in walk.calls:
        before = head_sequence()
        if isinstance(call, Wait):
            time_machine.move_to(call.until, tick=False)
            continue
        client = api(people[call.user])
        shown = client.get(f"{CASES}{reference}/")
        assert shown.status_code == 200, (call, shown.json())
        if isinstance(call, TooEarly):
            response = client.post(
                f"{CASES}{reference}/transitions/", {"transition": call.transition}, format="json"
            )
            assert response.status_code == 409, response.json()
            assert response.json()["available_from"] == call.available_from.isoformat()
            assert logged(reference, after=before, people=people) == []
            continue
        if isinstance(call, Step):
            offered = [step["name"] for step in shown.json()["available_transitions"]]
            assert call.transition in offered, (call, offered)
            response = client.post(
                f"{CASES}{reference}/transitions/",
                {"transition": call.transition, **call.data},
                format="json",
            )
        else:
            approval = shown.json()["pending_approval"]
            assert approval is not None, call
            response = client.post(
                f"{CASES}{reference}/approvals/{approval['id']}/", {"approve": True}, format="json"
            )
        assert response.status_code == 200, (call, response.json())
        assert response.json()["state"] == call.state, call
        assert logged(reference, after=before, people=people) == list(call.events), call

    case = Case.objects.get(reference=reference)
    assert (case.state, case.is_open, case.outcome) == ("closed", False, walk.outcome)
    assert record_now(record) == walk.record


# --- every declared body acts -----------------------------------------------------------------

PERSON_ACTED = re.compile(r"(?:: |approved by )(\w+) @ ([\w-]+)(?:,|$)")
SYSTEM_TOOK = re.compile(r"^(\w+) \w+->\w+: system$")


@pytest.mark.parametrize("key", sorted(WALKS))
def test_every_body_the_workflow_declares_takes_a_step_on_its_walk(key: str):
    """With the walk test, which checks each walk's lines against the audit log: every role of
    the file's `bodies` took a step, asked for one or approved one at its body on the walk, or
    the step the file gives it is one the system took in its stead."""
    declared, walk = workflow_file(key), WALKS[key]
    lines = [*walk.routed_events]
    for call in walk.calls:
        lines.extend(call.events if isinstance(call, Step | Approve) else ())
    acted = {match.groups() for line in lines for match in PERSON_ACTED.finditer(line)}
    by_system = {match[1] for line in lines if (match := SYSTEM_TOOK.match(line))}
    roles_of: dict[str, set[str]] = {}
    for transition in declared["transitions"]:
        roles_of.setdefault(transition["name"], set()).update(transition["roles"])

    missing = [
        role
        for role, body in BODIES[key].items()
        if not (
            body.transition in by_system and role in roles_of[body.transition]
            if isinstance(body, BySystem)
            else (role, body) in acted
        )
    ]

    assert sorted(declared["bodies"]) == sorted(BODIES[key])
    assert missing == []
