"""Which workflow runs a jurisdiction's cases, and their reference prefix: rows seeded from
objections/routes.yaml, edited by an administrator through an audited service, checked at start."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import pytest
from time_machine import TimeMachineFixture

from audit.models import AuditEvent
from objections.checks import workflow_routes_check
from objections.exceptions import FilingRefused
from objections.models import CaseReferencePrefix, WorkflowRoute
from objections.services import case_route
from objections.services.routes import workflow_route_set
from records.models import Jurisdiction
from tests.factories import registry_record
from tests.objections.test_case_services import file_objection

pytestmark = pytest.mark.django_db

FILED = datetime(2026, 3, 2, 10, tzinfo=ZoneInfo("Asia/Shanghai"))


@pytest.fixture(autouse=True)
def _filed_on_a_known_day(time_machine: TimeMachineFixture) -> None:
    time_machine.move_to(FILED, tick=False)


def another_record(world):
    return registry_record("shanghai-market", world.subject, "SH-ROUTES-2")


def test_the_first_case_of_a_jurisdiction_seeds_its_routes_and_prefix(world):
    shanghai = Jurisdiction.objects.get(code="shanghai")
    assert not WorkflowRoute.objects.filter(jurisdiction=shanghai).exists()

    case = case_route(case_id=file_objection(world).pk)

    assert sorted(
        WorkflowRoute.objects.filter(jurisdiction=shanghai).values_list(
            "kind", "holder_kind", "workflow_key"
        )
    ) == [
        ("deletion", "", "shanghai-revocation-deletion"),
        ("objection", "", "shanghai-objection"),
        ("objection", "credit_service", "shanghai-credit-service-objection"),
        ("repair", "", "national-repair"),
        ("repair", "", "shanghai-repair"),
    ]
    assert CaseReferencePrefix.objects.get(jurisdiction=shanghai).prefix == "SH"
    assert case.reference.startswith("SH-2026-")
    assert case.workflow.key == "shanghai-objection"
    assert AuditEvent.objects.filter(action="workflow.routes_seeded").count() == 1


def test_an_edited_route_runs_new_cases_under_its_workflow(world):
    shanghai = Jurisdiction.objects.get(code="shanghai")
    first = case_route(case_id=file_objection(world).pk)  # seeds the defaults

    workflow_route_set(
        jurisdiction=shanghai, kind="objection", workflow_key="pboc-objection", actor=world.auditor
    )
    second = case_route(case_id=file_objection(world, another_record(world)).pk)

    assert (first.workflow.key, second.workflow.key) == ("shanghai-objection", "pboc-objection")
    event = AuditEvent.objects.get(action="workflow.route_set")
    assert event.payload == {
        "jurisdiction": "shanghai",
        "kind": "objection",
        "from": "shanghai-objection",
        "to": "pboc-objection",
    }


@pytest.mark.parametrize(
    ("key", "reason"),
    [
        ("national-repair", "Workflow 'national-repair' runs repair cases, not objection cases."),
        (
            "zhejiang-objection",
            "Workflow 'zhejiang-objection' is zhejiang's; it cannot run shanghai's cases.",
        ),
        ("no-such-workflow", "No workflow has the key 'no-such-workflow'."),
    ],
)
def test_a_route_to_a_workflow_of_another_kind_or_jurisdiction_is_refused(world, key, reason):
    shanghai = Jurisdiction.objects.get(code="shanghai")
    case_route(case_id=file_objection(world).pk)
    events = AuditEvent.objects.count()

    with pytest.raises(FilingRefused) as refused:
        workflow_route_set(
            jurisdiction=shanghai, kind="objection", workflow_key=key, actor=world.auditor
        )

    assert refused.value.message == reason
    route = WorkflowRoute.objects.get(jurisdiction=shanghai, kind="objection", holder_kind="")
    assert route.workflow_key == "shanghai-objection"
    assert AuditEvent.objects.count() == events


def test_an_edited_prefix_names_new_references(world):
    shanghai = Jurisdiction.objects.get(code="shanghai")
    case_route(case_id=file_objection(world).pk)
    CaseReferencePrefix.objects.filter(jurisdiction=shanghai).update(prefix="SHX")

    case = file_objection(world, another_record(world))

    assert case.reference.startswith("SHX-2026-")


def test_the_system_check_names_a_stored_route_to_a_wrong_workflow(world):
    shanghai = Jurisdiction.objects.get(code="shanghai")
    WorkflowRoute.objects.create(jurisdiction=shanghai, kind="repair", workflow_key="hubei-repair")

    messages = workflow_routes_check()

    assert [(m.id, m.msg) for m in messages] == [
        (
            "objections.E002",
            "workflow route shanghai repair: Workflow 'hubei-repair' is hubei's; it cannot run "
            "shanghai's cases.",
        )
    ]
