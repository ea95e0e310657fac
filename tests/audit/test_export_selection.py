"""Which events an agency's export selects (audit.exports.export_events): besides its cases and
credit records, the agency itself, its imports and its members; nothing of another agency's."""

from __future__ import annotations

import pytest

from accounts.services import user_create, user_membership_set
from audit.exports import export_events
from audit.models import AuditEvent
from audit.services import audit_record
from records.models import Agency, ImportBatch, ImportJob
from tests.conftest import head_sequence
from tests.factories import AgencyFactory, CreditRecordFactory, UserFactory

pytestmark = [pytest.mark.django_db, pytest.mark.postgres]


def selected(code: str, start: int) -> list[int]:
    """The sequences after `start` that an export of agency `code` selects, in order."""
    events = export_events({"agency": code}).filter(sequence__gt=start)
    return sorted(events.values_list("sequence", flat=True))


def import_of(agency: Agency) -> tuple[ImportBatch, ImportJob]:
    """A batch imported from a file pushed through the API, and its job (made by their services
    with files; only their rows matter here)."""
    pusher = UserFactory(agency=agency)
    batch = ImportBatch.objects.create(
        agency=agency,
        created_by=pusher,
        source=ImportBatch.Source.API,
        file_name="records.csv",
        file_format="csv",
        sha256="0" * 64,
    )
    job = ImportJob.objects.create(
        agency=agency,
        created_by=pusher,
        file_name="records.csv",
        file_format="csv",
        stored_path="imports/records.csv",
        size=10,
        batch=batch,
    )
    return batch, job


def test_an_agency_export_holds_the_events_of_its_imports():
    ours, theirs = AgencyFactory(code="agency-ours"), AgencyFactory(code="agency-theirs")
    our_batch, our_job = import_of(ours)
    their_batch, their_job = import_of(theirs)
    start = head_sequence()

    audit_record(actor=None, action="records.import_queued", target=our_job)
    audit_record(actor=None, action="record.imported", target=our_batch)
    audit_record(actor=None, action="records.import_queued", target=their_job)
    audit_record(actor=None, action="record.imported", target=their_batch)

    assert selected("agency-ours", start) == [start + 1, start + 2]
    assert selected("agency-theirs", start) == [start + 3, start + 4]


def test_an_agency_export_holds_the_events_about_its_members_and_itself():
    ours, theirs = AgencyFactory(code="agency-ours"), AgencyFactory(code="agency-theirs")
    start = head_sequence()

    ours_member = user_create(actor=None, username="ours-caseworker", password=None, agency=ours)
    user_create(actor=None, username="theirs-caseworker", password=None, agency=theirs)
    user_create(actor=None, username="citizen", password=None)
    audit_record(actor=ours_member, action="auth.login", target=ours_member)
    audit_record(actor=None, action="agency.updated", target=ours)
    audit_record(actor=None, action="agency.updated", target=theirs)

    events = AuditEvent.objects.filter(sequence__gt=start).order_by("sequence")
    assert [(e.action, e.target_type) for e in events] == [
        ("user.created", "accounts.user"),
        ("user.created", "accounts.user"),
        ("user.created", "accounts.user"),
        ("auth.login", "accounts.user"),
        ("agency.updated", "records.agency"),
        ("agency.updated", "records.agency"),
    ]
    assert selected("agency-ours", start) == [start + 1, start + 4, start + 5]
    assert selected("agency-theirs", start) == [start + 2, start + 6]


def test_a_member_s_events_as_actor_elsewhere_are_not_the_agency_s():
    ours = AgencyFactory(code="agency-ours")
    member = UserFactory(agency=ours)
    theirs = CreditRecordFactory(agency__code="agency-theirs")
    start = head_sequence()

    audit_record(actor=member, action="record.marked", target=theirs)

    assert selected("agency-ours", start) == []
    assert selected("agency-theirs", start) == [start + 1]


def test_a_member_who_moves_takes_their_events_to_the_other_agency():
    ours, theirs = AgencyFactory(code="agency-ours"), AgencyFactory(code="agency-theirs")
    member = user_create(actor=None, username="mover", password=None, agency=ours)
    start = head_sequence() - 1  # the user's creation
    assert selected("agency-ours", start) == [start + 1]

    moved = user_membership_set(
        user=member,
        actor=None,
        groups=[],
        agency=theirs,
        is_staff=False,
        is_superuser=False,
        is_active=True,
    )

    assert moved is True
    assert selected("agency-ours", start) == []
    assert selected("agency-theirs", start) == [start + 1, start + 2]


def test_the_agency_selection_is_one_query(django_assert_num_queries):
    ours = AgencyFactory(code="agency-ours")
    batch, job = import_of(ours)
    start = head_sequence()
    audit_record(actor=None, action="record.imported", target=batch)
    audit_record(actor=None, action="records.import_queued", target=job)
    selection = export_events({"agency": "agency-ours"}).filter(sequence__gt=start)

    with django_assert_num_queries(1):
        events = list(selection.order_by("sequence"))

    assert [event.sequence for event in events] == [start + 1, start + 2]
