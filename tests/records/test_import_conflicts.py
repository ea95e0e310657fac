"""Corrections stick: a later import does not overwrite the fields a decided case set.

The record is first imported, objected to by its subject, granted with a corrected title (the
execution step applies `record_correct`), and then the agency sends its file again. The row is
held as an ImportConflict, which a caseworker of the record's agency or of the case's responsible
body resolves through /api/v1/import-conflicts/ by keeping the decision or accepting the
agency's content.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from datetime import date
from typing import Any

import pytest
from django.core.cache import cache
from rest_framework.test import APIClient

from accounts.models import User
from audit.models import AuditEvent
from objections.models import Case, Notification
from objections.services import case_route
from records.content import record_content_hash
from records.crypto import identifier_decrypt
from records.imports import ImportReport, import_batch_run
from records.models import Agency, CreditRecord, CreditRecordVersion, ImportBatch, ImportConflict
from records.services import record_correct
from tests.conftest import head_sequence
from tests.factories import UserFactory
from tests.objections import conftest as case_conftest
from tests.objections.conftest import World
from tests.records.test_imports import csv_bytes, row

# The rows carry decisions of 1 June 2026 (see `row`): they are imported, objected to and decided
# on the fixed import day.
pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("import_day")]

# The case tests' World fixture (tests/objections/conftest.py is not in this directory's scope).
world = case_conftest.world

CONFLICTS = "/api/v1/import-conflicts/"
CASES = "/api/v1/cases/"
AGENCY_TITLE = "销售不合格产品"  # the title `row` gives every record
DECIDED_TITLE = "已撤销的处罚"


@pytest.fixture(autouse=True)
def _fresh_throttle(db: None) -> None:
    # The filing throttle counts per user id in the cache, which outlives each test's rollback.
    cache.clear()


def api(user: User) -> APIClient:
    client = APIClient(headers={"accept-language": "en"})
    client.force_authenticate(user)
    return client


def run_import(content: bytes, name: str = "shanghai-market.csv") -> ImportReport:
    return import_batch_run(
        agency=Agency.objects.get(code="shanghai-market"),
        stream=io.BytesIO(content),
        file_name=name,
        actor=None,
        source=ImportBatch.Source.COMMAND,
    )


def world_rows(world: World, **changes: dict[str, str]) -> list[dict[str, str]]:
    """The market regulator's file about the World's subject: IMP-1 (line 2, the record objected
    to), IMP-2 (line 3) and IMP-3 (line 4); `changes` overrides a row's fields by number."""
    identifier = identifier_decrypt(world.subject.identifier_encrypted)
    return [
        row(number, subject_identifier=identifier, **changes.get(number, {}))
        for number in ("IMP-1", "IMP-2", "IMP-3")
    ]


@dataclass
class Granted:
    case: Case
    record: CreditRecord  # IMP-1 as the decision left it
    original: bytes  # the file IMP-1 was first imported from


def transition(user: User, case: Case, name: str, **data: Any) -> None:
    response = api(user).post(
        f"{CASES}{case.reference}/transitions/", {"transition": name, **data}, format="json"
    )
    assert response.status_code == 200, response.json()


@pytest.fixture
def granted(world: World) -> Granted:
    """IMP-1 imported, objected to by the World's citizen, and granted by the credit centre
    with a corrected title, which the system's execution step applies."""
    original = csv_bytes(world_rows(world))
    first = run_import(original)
    assert (first.rows_inserted, first.rows_rejected) == (3, 0)
    record = CreditRecord.objects.get(record_number="IMP-1")
    assert record.subject_id == world.subject.pk
    response = api(world.citizen).post(
        CASES,
        {
            "record": str(record.public_id),
            "kind": "objection",
            "grounds": "inaccurate",
            "statement": "The penalty was revoked on reconsideration.",
            "requested_remedy": "correct",
            "fields_objected": ["title"],
            "correction": {"title": DECIDED_TITLE},
        },
        format="json",
    )
    assert response.status_code == 201, response.json()
    case = case_route(case_id=Case.objects.get(reference=response.json()["reference"]).pk)
    transition(world.caseworker, case, "start_review")
    transition(
        world.caseworker,
        case,
        "grant",
        outcome="granted",
        reasons="The penalty was revoked on reconsideration.",
        correction={"title": DECIDED_TITLE},
    )
    case = Case.objects.get(pk=case.pk)
    record = CreditRecord.objects.get(pk=record.pk)
    assert (case.state, case.outcome, case.responsible_agency.code) == (
        "closed",
        "granted",
        "shanghai-credit-centre",
    )
    assert (record.title, record.version, record.decided_fields) == (
        DECIDED_TITLE,
        2,
        {"title": case.reference},
    )
    return Granted(case=case, record=record, original=original)


def held_conflict(granted: Granted) -> ImportConflict:
    """The original file sent again: IMP-1's row is held."""
    report = run_import(granted.original)
    assert (report.rows_held, report.rows_unchanged) == (1, 2)
    return ImportConflict.objects.get(pk=report.held[0].conflict)


def record_state(record_id: int) -> dict[str, Any]:
    record = CreditRecord.objects.get(pk=record_id)
    return {
        "title": record.title,
        "facts": record.facts,
        "version": record.version,
        "status": record.status,
        "content_hash": record.content_hash,
        "decided_fields": record.decided_fields,
        "versions": list(
            CreditRecordVersion.objects.filter(record_id=record_id)
            .order_by("version")
            .values_list("version", "title", "content_hash")
        ),
    }


def conflict_state(conflict: ImportConflict) -> dict[str, Any]:
    """Everything a refused resolution must leave as it was."""
    stored = ImportConflict.objects.get(pk=conflict.pk)
    return {
        "conflict": (stored.status, stored.reasons, stored.resolved_by_id, stored.resolved_at),
        "record": record_state(stored.record_id),
        "audit_events": head_sequence(),
        "notifications": list(Notification.objects.order_by("id").values_list("id", "event")),
    }


def events_after(sequence: int) -> list[AuditEvent]:
    return list(AuditEvent.objects.filter(sequence__gt=sequence).order_by("sequence"))


def resolve(user: User, conflict: ImportConflict, **body: str) -> Any:
    return api(user).post(f"{CONFLICTS}{conflict.pk}/resolve/", body, format="json")


# ---------------------------------------------------------------------------------------------
# Importing around a decision


def test_reimporting_the_original_file_keeps_the_decided_title_and_holds_the_row(
    world: World, granted: Granted
):
    record = granted.record
    other = CreditRecord.objects.get(record_number="IMP-2")
    before = record_state(record.pk)
    versions = CreditRecordVersion.objects.count()
    sequence = head_sequence()
    content = csv_bytes(world_rows(world, **{"IMP-2": {"title": "超标排放污染物"}}))

    report = run_import(content)

    # The decided record keeps its corrected title; the other changed row is applied.
    assert (report.rows_total, report.rows_inserted, report.rows_rejected) == (3, 0, 0)
    assert (report.rows_updated, report.rows_unchanged, report.rows_held) == (1, 1, 1)
    conflict = ImportConflict.objects.get()
    assert [held.as_dict() for held in report.held] == [
        {
            "line": 2,
            "record_number": "IMP-1",
            "case": granted.case.reference,
            "fields": ["title"],
            "conflict": conflict.pk,
        }
    ]
    assert (
        conflict.batch_id,
        conflict.record_id,
        conflict.line,
        conflict.case_reference,
        conflict.status,
    ) == (report.batch_id, record.pk, 2, granted.case.reference, ImportConflict.Status.OPEN)
    assert conflict.fields == {"title": {"agency": AGENCY_TITLE, "decided": DECIDED_TITLE}}
    first = CreditRecordVersion.objects.get(record=record, version=1)
    assert conflict.agency_content_hash == first.content_hash  # the row is the original one
    assert record_state(record.pk) == before
    stored = CreditRecord.objects.get(pk=record.pk)
    assert (stored.title, stored.version, stored.decided_fields) == (
        DECIDED_TITLE,
        2,
        {"title": granted.case.reference},
    )
    other_now = CreditRecord.objects.get(pk=other.pk)
    assert (other_now.title, other_now.version) == ("超标排放污染物", 2)
    assert CreditRecordVersion.objects.count() == versions + 1
    kept = CreditRecordVersion.objects.get(record=other)
    assert (kept.version, kept.title, kept.superseded_by_batch_id) == (
        1,
        AGENCY_TITLE,
        report.batch_id,
    )
    batch = ImportBatch.objects.get(pk=report.batch_id)
    assert (batch.rows_held, batch.rows_updated, batch.rows_unchanged) == (1, 1, 1)
    assert batch.held == [held.as_dict() for held in report.held]
    events = events_after(sequence)
    assert [(e.action, e.target_id, e.case_reference) for e in events] == [
        ("record.import_conflict", str(conflict.pk), granted.case.reference),
        ("record.imported", str(report.batch_id), ""),
    ]
    assert events[0].payload == {
        "record": record.pk,
        "fields": ["title"],
        "batch": report.batch_id,
        "line": 2,
    }
    assert (events[1].payload["updated"], events[1].payload["held"]) == (1, 1)


def test_the_conflict_is_listed_for_the_agency_and_the_case_body_only(
    world: World, granted: Granted
):
    conflict = held_conflict(granted)
    agency_system = UserFactory(
        username="sh-market-system",
        role="agency_system",
        agency=Agency.objects.get(code="shanghai-market"),
    )
    expected = {
        "id": conflict.pk,
        "status": "open",
        "agency": "shanghai-market",
        "record": str(granted.record.public_id),
        "record_number": "IMP-1",
        "case": granted.case.reference,
        "batch": conflict.batch_id,
        "line": 2,
        "fields": {"title": {"agency": AGENCY_TITLE, "decided": DECIDED_TITLE}},
        "reasons": "",
        "resolved_at": None,
    }

    for insider in (world.agency_caseworker, world.caseworker, agency_system, world.auditor):
        response = api(insider).get(CONFLICTS)
        assert response.status_code == 200
        body = response.json()
        assert body["next"] is None
        assert [
            {name: value for name, value in result.items() if name != "created_at"}
            for result in body["results"]
        ] == [expected], insider.username
    open_only = api(world.caseworker).get(CONFLICTS, {"status": "open"}).json()
    assert [result["id"] for result in open_only["results"]] == [conflict.pk]
    assert api(world.caseworker).get(CONFLICTS, {"status": "kept"}).json() == {
        "results": [],
        "next": None,
    }
    for outsider in (world.citizen, world.zj_caseworker):
        response = api(outsider).get(CONFLICTS)
        assert (response.status_code, response.json()) == (200, {"results": [], "next": None})


@pytest.mark.parametrize("limit", [1, 50])
def test_the_conflict_list_costs_the_same_queries_at_any_page_size(
    world: World, granted: Granted, limit: int, django_assert_num_queries
):
    # A second decided record of the agency (another case's correction), held by the same file.
    other = CreditRecord.objects.get(record_number="IMP-2")
    record_correct(
        record_id=other.pk,
        changes={"title": "另案更正的标题"},
        actor=None,
        case_reference="SH-2026-000099",
    )
    report = run_import(granted.original)
    assert report.rows_held == 2
    client = api(world.agency_caseworker)

    with django_assert_num_queries(2):
        response = client.get(CONFLICTS, {"limit": limit})

    body = response.json()
    assert [result["record_number"] for result in body["results"]] == ["IMP-2", "IMP-1"][:limit]
    assert (body["next"] is None) == (limit == 50)


def test_sending_the_same_file_again_reuses_the_conflict(world: World, granted: Granted):
    conflict = held_conflict(granted)
    before = record_state(granted.record.pk)
    versions = CreditRecordVersion.objects.count()
    sequence = head_sequence()

    report = run_import(granted.original)

    assert (report.rows_updated, report.rows_unchanged, report.rows_held) == (0, 2, 1)
    assert [held.as_dict() for held in report.held] == [
        {
            "line": 2,
            "record_number": "IMP-1",
            "case": granted.case.reference,
            "fields": ["title"],
            "conflict": conflict.pk,
        }
    ]
    assert list(ImportConflict.objects.values_list("pk", "batch_id", "status")) == [
        (conflict.pk, conflict.batch_id, ImportConflict.Status.OPEN)
    ]
    assert CreditRecordVersion.objects.count() == versions
    assert record_state(granted.record.pk) == before
    assert ImportBatch.objects.get(pk=report.batch_id).rows_held == 1
    events = events_after(sequence)
    assert [e.action for e in events] == ["record.imported"]
    assert events[0].payload["held"] == 1


def test_a_row_changing_only_undecided_fields_updates_them_around_the_decision(
    world: World, granted: Granted
):
    record = granted.record
    sequence = head_sequence()
    content = csv_bytes(
        world_rows(world, **{"IMP-1": {"title": DECIDED_TITLE, "facts": "经复查，事实已更正。"}})
    )

    report = run_import(content)

    assert (report.rows_updated, report.rows_unchanged, report.rows_held) == (1, 2, 0)
    assert report.held == []
    assert ImportConflict.objects.count() == 0
    stored = CreditRecord.objects.get(pk=record.pk)
    assert (stored.title, stored.facts, stored.version, stored.status) == (
        DECIDED_TITLE,
        "经复查，事实已更正。",
        3,
        CreditRecord.Status.CORRECTED,
    )
    assert stored.decided_fields == {"title": granted.case.reference}
    assert stored.content_hash == record_content_hash(stored)
    kept = CreditRecordVersion.objects.get(record=record, version=2)
    assert (kept.title, kept.facts, kept.content_hash, kept.superseded_by_batch_id) == (
        DECIDED_TITLE,
        record.facts,
        record.content_hash,
        report.batch_id,
    )
    events = events_after(sequence)
    assert [(e.action, e.target_id) for e in events] == [
        ("record.updated_around_decision", str(record.pk)),
        ("record.imported", str(report.batch_id)),
    ]
    assert events[0].payload == {"fields": ["facts"], "version": 3, "batch": report.batch_id}


def test_a_row_changing_a_decided_and_an_undecided_field_applies_one_and_holds_the_other(
    world: World, granted: Granted
):
    record = granted.record
    content = csv_bytes(world_rows(world, **{"IMP-1": {"facts": "经复查，事实已更正。"}}))

    report = run_import(content)

    assert (report.rows_updated, report.rows_unchanged, report.rows_held) == (0, 2, 1)
    stored = CreditRecord.objects.get(pk=record.pk)
    assert (stored.title, stored.facts, stored.version) == (
        DECIDED_TITLE,
        "经复查，事实已更正。",
        3,
    )
    conflict = ImportConflict.objects.get()
    assert (conflict.record_id, conflict.fields) == (
        record.pk,
        {"title": {"agency": AGENCY_TITLE, "decided": DECIDED_TITLE}},
    )
    assert [held.conflict for held in report.held] == [conflict.pk]


# ---------------------------------------------------------------------------------------------
# Resolving


def test_keeping_the_decision_closes_the_conflict_and_leaves_the_record(
    world: World, granted: Granted
):
    conflict = held_conflict(granted)
    before = record_state(granted.record.pk)
    sequence = head_sequence()

    response = resolve(
        world.agency_caseworker, conflict, resolution="keep", reasons="The decision stands."
    )

    assert response.status_code == 200, response.json()
    body = response.json()
    assert (body["id"], body["status"], body["reasons"]) == (
        conflict.pk,
        "kept",
        "The decision stands.",
    )
    stored = ImportConflict.objects.get(pk=conflict.pk)
    assert (stored.status, stored.reasons, stored.resolved_by_id) == (
        ImportConflict.Status.KEPT,
        "The decision stands.",
        world.agency_caseworker.pk,
    )
    assert stored.resolved_at is not None
    assert record_state(granted.record.pk) == before
    events = events_after(sequence)
    assert [(e.action, e.actor_id, e.target_id, e.case_reference) for e in events] == [
        (
            "record.conflict_resolved",
            world.agency_caseworker.pk,
            str(conflict.pk),
            conflict.case_reference,
        )
    ]
    assert events[0].payload == {
        "record": granted.record.pk,
        "status": "kept",
        "fields": ["title"],
    }
    assert Notification.objects.filter(event="record_changed").count() == 0

    # Resolved once: a second resolution is refused and changes nothing.
    after = conflict_state(conflict)
    again = resolve(world.caseworker, conflict, resolution="accept", reasons="Changed my mind.")

    assert again.status_code == 409
    assert again.json() == {
        "detail": "This conflict has already been resolved.",
        "code": "case_conflict",
        "status": "kept",
    }
    assert conflict_state(conflict) == after


def test_accepting_the_agency_content_makes_it_the_next_version_and_tells_the_applicant(
    world: World, granted: Granted, django_capture_on_commit_callbacks
):
    conflict = held_conflict(granted)
    sequence = head_sequence()

    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = resolve(
            world.caseworker,
            conflict,
            resolution="accept",
            reasons="The agency's reconsideration restored the title.",
        )

    assert response.status_code == 200, response.json()
    assert response.json()["status"] == "accepted"
    stored = ImportConflict.objects.get(pk=conflict.pk)
    assert (stored.status, stored.resolved_by_id) == (
        ImportConflict.Status.ACCEPTED,
        world.caseworker.pk,
    )
    record = CreditRecord.objects.get(pk=granted.record.pk)
    assert (record.title, record.version, record.decided_fields) == (AGENCY_TITLE, 3, None)
    assert record.content_hash == conflict.agency_content_hash == record_content_hash(record)
    kept = CreditRecordVersion.objects.get(record=record, version=2)
    assert (kept.title, kept.content_hash) == (DECIDED_TITLE, granted.record.content_hash)
    events = events_after(sequence)
    assert [(e.action, e.target_type, e.case_reference) for e in events] == [
        ("record.decision_overridden", "records.creditrecord", granted.case.reference),
        ("record.conflict_resolved", "records.importconflict", granted.case.reference),
        ("case.noted", "objections.case", granted.case.reference),
    ]
    assert events[0].payload == {"fields": ["title"], "version": 3, "conflict": conflict.pk}
    assert events[2].payload == {"note": "record_changed_by_agency", "conflict": conflict.pk}
    [notice] = Notification.objects.filter(case=granted.case, event="record_changed")
    assert (notice.recipient, notice.status) == (world.citizen, Notification.Status.PENDING)
    assert [(c.func.__self__.name, c.keywords) for c in callbacks] == [
        ("objections.tasks.notifications_send_task", {"notification_ids": [notice.pk]})
    ]

    # The title is the agency's again: the original file is now simply unchanged.
    sequence = head_sequence()
    report = run_import(granted.original)

    assert (report.rows_updated, report.rows_unchanged, report.rows_held) == (0, 3, 0)
    assert ImportConflict.objects.count() == 1
    assert CreditRecord.objects.get(pk=record.pk).version == 3
    assert [e.action for e in events_after(sequence)] == ["record.imported"]


@pytest.mark.parametrize(
    ("body", "error"),
    [
        ({"resolution": "accept"}, "This field is required."),
        ({"resolution": "accept", "reasons": "   "}, "This field may not be blank."),
        ({"resolution": "keep", "reasons": ""}, "This field may not be blank."),
    ],
    ids=["missing", "blank", "empty"],
)
def test_resolving_without_reasons_is_400_and_changes_nothing(
    world: World, granted: Granted, body: dict[str, str], error: str
):
    conflict = held_conflict(granted)
    before = conflict_state(conflict)

    response = resolve(world.agency_caseworker, conflict, **body)

    assert (response.status_code, response.json()) == (400, {"reasons": [error]})
    assert conflict_state(conflict) == before


def test_resolving_a_conflict_outside_the_callers_scope_is_404_and_changes_nothing(
    world: World, granted: Granted
):
    conflict = held_conflict(granted)
    before = conflict_state(conflict)

    for outsider in (world.citizen, world.zj_caseworker):
        response = resolve(outsider, conflict, resolution="accept", reasons="Let it through.")

        assert (response.status_code, response.json()) == (404, {"detail": "Not found."})
        assert conflict_state(conflict) == before


def test_an_auditor_sees_the_conflict_but_may_not_resolve_it(world: World, granted: Granted):
    conflict = held_conflict(granted)
    before = conflict_state(conflict)

    listed = api(world.auditor).get(CONFLICTS).json()
    response = resolve(world.auditor, conflict, resolution="accept", reasons="Let it through.")

    assert [result["id"] for result in listed["results"]] == [conflict.pk]
    assert response.status_code == 403
    assert response.json() == {
        "detail": "Only a caseworker or supervisor of the record's agency or of the case's "
        "responsible body may resolve this conflict.",
        "code": "role_not_allowed",
    }
    assert conflict_state(conflict) == before


# ---------------------------------------------------------------------------------------------
# The correction itself


def test_a_correction_hashes_like_an_import_and_keeps_the_previous_content(world: World):
    run_import(csv_bytes(world_rows(world)))
    record = CreditRecord.objects.get(record_number="IMP-1")
    sequence = head_sequence()

    record_correct(
        record_id=record.pk,
        changes={"title": DECIDED_TITLE, "decision_date": date(2026, 5, 30)},
        actor=None,
        case_reference="SH-2026-000042",
    )

    corrected = CreditRecord.objects.select_related("subject", "category").get(pk=record.pk)
    assert (corrected.title, corrected.decision_date, corrected.version, corrected.status) == (
        DECIDED_TITLE,
        date(2026, 5, 30),
        2,
        CreditRecord.Status.CORRECTED,
    )
    assert corrected.content_hash == record_content_hash(corrected) != record.content_hash
    assert corrected.decided_fields == {
        "title": "SH-2026-000042",
        "decision_date": "SH-2026-000042",
    }
    kept = CreditRecordVersion.objects.get(record=record)
    assert (
        kept.version,
        kept.title,
        kept.facts,
        kept.decision_document_number,
        kept.decision_date,
        kept.conduct_ended_on,
        kept.publication_start,
        kept.publication_end,
        kept.retention_end,
        kept.content_hash,
        kept.superseded_by_batch_id,
    ) == (
        1,
        record.title,
        record.facts,
        record.decision_document_number,
        record.decision_date,
        record.conduct_ended_on,
        record.publication_start,
        record.publication_end,
        record.retention_end,
        record.content_hash,
        None,
    )
    [event] = events_after(sequence)
    assert (event.action, event.case_reference, event.payload) == (
        "record.corrected",
        "SH-2026-000042",
        {"fields": ["decision_date", "title"], "version": 2},
    )

    # An import of the corrected content computes the same hash: the row is unchanged.
    report = run_import(
        csv_bytes(
            world_rows(world, **{"IMP-1": {"title": DECIDED_TITLE, "decision_date": "2026-05-30"}})
        )
    )

    assert (report.rows_updated, report.rows_unchanged, report.rows_held) == (0, 3, 0)
    assert CreditRecord.objects.get(pk=record.pk).version == 2


def test_accepting_a_conflict_the_record_has_moved_on_from_is_409_and_changes_nothing(
    world: World, granted: Granted
):
    conflict = held_conflict(granted)
    # A later decision (here applied directly, as its execution step would) sets the title again.
    record_correct(
        record_id=granted.record.pk,
        changes={"title": "再次更正的标题"},
        actor=None,
        case_reference=granted.case.reference,
    )
    before = (conflict_state(conflict), record_state(granted.record.pk))

    response = resolve(world.caseworker, conflict, resolution="accept", reasons="Accept it.")

    assert response.status_code == 409
    assert response.json() == {
        "detail": "The record changed since this conflict was held (a later decision or "
        "import); these fields no longer hold the decided value it names: title.",
        "code": "record_changed",
        "fields": ["title"],
    }
    assert (conflict_state(conflict), record_state(granted.record.pk)) == before


def test_the_case_shows_the_conflicts_held_against_its_decision(world: World, granted: Granted):
    conflict = held_conflict(granted)
    resolve(world.caseworker, conflict, resolution="keep", reasons="The decision stands.")

    shown = api(world.citizen).get(f"{CASES}{granted.case.reference}/").json()["import_conflicts"]

    assert [(c["id"], c["status"], c["fields"], c["reasons"]) for c in shown] == [
        (conflict.pk, "kept", conflict.fields, "The decision stands.")
    ]
