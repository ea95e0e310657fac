"""Auditors' exports (issue 12): bundles a fresh interpreter verifies with the standard library
alone, tampering it names, CSV cells that stay text, and exports only their requester sees."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import subprocess
import sys
import zipfile
from datetime import timedelta
from pathlib import Path

import pytest
from django.utils import timezone
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from rest_framework.test import APIClient

from audit.bundle import NodeStore
from audit.checkpoints import (
    SignedHead,
)
from audit.exports import (
    SHANGHAI,
    ExportFiltersInvalid,
    audit_export_request,
    audit_export_run,
    audit_exports_redrive,
    exports_folder,
)
from audit.merkle import consistency_proof, inclusion_proof
from audit.models import AuditCheckpoint, AuditEvent, AuditExport
from audit.services import audit_record
from records.content import FORMULA_LEADING, export_cell
from scs_cases.errors import NotPermitted
from tests.audit.exporting import (
    CASE,
    built,
    bundle_path,
    case_events,
    events_of,
    run_verifier,
    trusted_key,
    verdict,
)
from tests.audit.test_audit import record_events
from tests.conftest import head_sequence
from tests.factories import UserFactory

pytestmark = [
    pytest.mark.django_db,
    pytest.mark.postgres,
    pytest.mark.usefixtures("private_folders"),
]


def test_a_case_export_verifies_in_a_fresh_interpreter_with_the_standard_library_only(
    case_bundle, tmp_path: Path
):
    export, path, head = case_bundle["export"], case_bundle["path"], case_bundle["head"]

    result = run_verifier(path, tmp_path, "--key-id", trusted_key())

    assert (result.returncode, result.stderr) == (0, "")
    assert result.stdout == (
        f"OK: 5 events verified against the checkpoint at event {head.tree_size} "
        f"(key {trusted_key()})\n"
    )
    assert (export.progress, export.total, export.error) == (5, 5, "")
    assert export.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    assert export.size == path.stat().st_size
    assert path.parent == Path(exports_folder())
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # no scratch files left
    stored = AuditEvent.objects.filter(case_reference=CASE).order_by("sequence")
    assert [e["sequence"] for e in events_of(path)] == [e.sequence for e in stored]
    completed = AuditEvent.objects.get(action="audit.export_completed")
    assert (completed.target_id, completed.payload["events"]) == (str(export.pk), 5)


def test_the_bundle_holds_the_documented_members_and_proofs(case_bundle):
    path, head, older = case_bundle["path"], case_bundle["head"], case_bundle["older"]
    leaves = [
        bytes.fromhex(h)
        for h in AuditEvent.objects.order_by("sequence")
        .filter(sequence__lte=head.tree_size)
        .values_list("hash", flat=True)
    ]

    with zipfile.ZipFile(path) as archive:
        names = sorted(archive.namelist())
        manifest = json.loads(archive.read("manifest.json"))
        proofs = json.loads(archive.read("proofs.json"))
        checkpoints = json.loads(archive.read("checkpoints.json"))
        checkpoint = archive.read("checkpoint.json").decode()
        merkle_copy = archive.read("verifier/merkle.py")
        ed25519_copy = archive.read("verifier/ed25519.py")
        infos = {info.filename: info.compress_type for info in archive.infolist()}

    assert names == sorted([
        "checkpoint.json", "checkpoints.json", "events.csv", "events.ndjson", "manifest.json",
        "manifest.sig", "proofs.json", "public_keys.pem", "verifier/README.txt",
        "verifier/bundle_format.py", "verifier/ed25519.py", "verifier/merkle.py",
        "verifier/verify_bundle.py",
    ])  # fmt: skip
    assert set(infos.values()) == {zipfile.ZIP_DEFLATED}
    assert merkle_copy == Path("audit/merkle.py").read_bytes()
    assert ed25519_copy == Path("audit/ed25519.py").read_bytes()
    assert checkpoint == SignedHead.of(head).as_line() + "\n"
    first, second = case_bundle["runs"]
    assert manifest["format"] == "scs-cases audit export v2"
    assert manifest["filters"] == {"case_reference": CASE}
    assert manifest["counts"] == {
        "events": 5,
        "runs": 2,
        "checkpoints": len(checkpoints["checkpoints"]),
    }
    assert (manifest["first_sequence"], manifest["last_sequence"]) == (first[0], second[-1])
    assert (manifest["checkpoint_tree_size"], manifest["key_id"]) == (head.tree_size, head.key_id)
    assert set(manifest["files"]) == set(names) - {"manifest.json", "manifest.sig"}
    assert [(run["first"], run["last"], run["proof"]) for run in proofs["runs"]] == [
        (run[0], run[-1], [n.hex() for n in inclusion_proof(leaves, run[-1] - 1)])
        for run in (first, second)
    ]
    entry = next(c for c in checkpoints["checkpoints"] if c["tree_size"] == older.tree_size)
    assert entry["consistency_proof"] == [
        n.hex() for n in consistency_proof(leaves, older.tree_size)
    ]


@given(
    size=st.integers(min_value=1, max_value=70),
    data=st.data(),
)
@hypothesis_settings(max_examples=60, deadline=None)
def test_the_streamed_node_store_gives_the_proofs_of_audit_merkle(size, data, tmp_path_factory):
    leaves = [hashlib.sha256(str(n).encode()).digest() for n in range(size)]
    index = data.draw(st.integers(min_value=0, max_value=size - 1))
    old = data.draw(st.integers(min_value=0, max_value=size))
    store = NodeStore(str(tmp_path_factory.mktemp("nodes")))
    for leaf in leaves:
        store.add(leaf)

    try:
        assert store.inclusion_proof(index) == inclusion_proof(leaves, index)
        assert store.consistency_proof(old) == consistency_proof(leaves, old)
    finally:
        store.close()


def test_a_period_export_verifies(auditor, django_capture_on_commit_callbacks, tmp_path: Path):
    case_events(2)
    record_events(3)
    day = AuditEvent.objects.order_by("-sequence").first().recorded_at.astimezone(SHANGHAI).date()

    export = built(
        auditor,
        {"from": day.isoformat(), "to": day.isoformat()},
        django_capture_on_commit_callbacks,
    )

    head = AuditCheckpoint.objects.order_by("-tree_size").first()
    expected = [
        e.sequence
        for e in AuditEvent.objects.filter(sequence__lte=head.tree_size).order_by("sequence")
        if e.recorded_at.astimezone(SHANGHAI).date() == day
    ]
    assert export.status == AuditExport.Status.DONE, export.error
    assert [e["sequence"] for e in events_of(bundle_path(export))] == expected
    assert verdict(bundle_path(export), tmp_path).startswith(f"OK: {len(expected)} events verified")


def unneutralised(cell: str) -> str:
    """A cell read back: one leading apostrophe is the neutraliser's."""
    return cell[1:] if cell.startswith("'") else cell


ACTION_TEXT = st.text(
    alphabet=st.characters(blacklist_categories=["Cs"], blacklist_characters="\x00"),
    max_size=64,
)


@given(
    action=ACTION_TEXT | st.sampled_from(FORMULA_LEADING).map(lambda lead: lead + "SUM(A1)"),
    note=st.text(max_size=200) | st.sampled_from(FORMULA_LEADING).map(lambda lead: lead + "1+1"),
)
@hypothesis_settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
def test_any_text_round_trips_through_events_csv_but_formulas_are_neutralised(
    action, note, auditor, django_capture_on_commit_callbacks
):
    reference = f"P-{AuditEvent.objects.count()}"
    audit_record(actor=None, action=action, case_reference=reference, data={"note": note})

    export = built(auditor, {"case_reference": reference}, django_capture_on_commit_callbacks)

    with zipfile.ZipFile(bundle_path(export)) as archive:
        text = archive.read("events.csv").decode()
    header, row = list(csv.reader(io.StringIO(text, newline="")))
    cells = dict(zip(header, row, strict=True))
    assert cells["action"] == export_cell(action)
    assert unneutralised(cells["action"]) == action
    assert cells["action"].startswith("'") == action.startswith((*FORMULA_LEADING, "'"))
    assert json.loads(unneutralised(cells["data"])) == {"note": note}


def test_only_auditors_and_administrators_request_exports(django_capture_on_commit_callbacks):
    caseworker = UserFactory(role="caseworker")
    before = (AuditExport.objects.count(), head_sequence())

    with django_capture_on_commit_callbacks() as callbacks, pytest.raises(NotPermitted):
        audit_export_request(actor=caseworker, filters={"case_reference": CASE})

    assert (AuditExport.objects.count(), head_sequence()) == before
    assert callbacks == []
    administrator = UserFactory(role="administrator")
    assert audit_export_request(actor=administrator, filters={"actor_id": 1}).status == "queued"


@pytest.mark.parametrize(
    "filters",
    [
        {},
        {"case_reference": CASE, "actor_id": 1},
        {"from": "2026-06-02", "to": "2026-06-01"},
        {"from": "2026-06-01"},
        {"from": "yesterday", "to": "2026-06-01"},
        {"agency": "no-such-agency"},
        {"actor_id": "1"},
        {"actor_id": True},
        {"case_reference": ""},
        ["case_reference"],
    ],
)
def test_bad_filters_are_refused_and_change_nothing(filters, auditor):
    before = (AuditExport.objects.count(), head_sequence())

    with pytest.raises(ExportFiltersInvalid):
        audit_export_request(actor=auditor, filters=filters)

    assert (AuditExport.objects.count(), head_sequence()) == before


def test_the_request_is_audited_and_queued_after_commit(
    auditor, django_capture_on_commit_callbacks
):
    start = head_sequence()
    with django_capture_on_commit_callbacks() as callbacks:
        export = audit_export_request(
            actor=auditor, filters={"from": "2026-06-01", "to": "2026-06-30"}
        )

    event = AuditEvent.objects.get(sequence=start + 1)
    assert (event.action, event.actor_id, event.target_type, event.target_id) == (
        "audit.export_requested",
        auditor.pk,
        "audit.auditexport",
        str(export.pk),
    )
    assert event.payload == {"filters": {"from": "2026-06-01", "to": "2026-06-30"}}
    assert len(callbacks) == 1
    assert (export.status, export.progress, export.total) == ("queued", 0, 0)


def test_a_failing_export_leaves_no_file_and_is_marked_failed(
    auditor, django_capture_on_commit_callbacks, monkeypatch
):
    case_events(3)

    def broken(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr("audit.bundle._copy_in", broken)
    export = built(auditor, {"case_reference": CASE}, django_capture_on_commit_callbacks)

    assert (export.status, export.error, export.file_name) == ("failed", "OSError: disk full", "")
    assert export.finished_at is not None
    assert list(exports_folder().iterdir()) == []
    assert AuditEvent.objects.filter(action="audit.export_failed").count() == 1


def test_running_a_finished_export_again_changes_nothing(case_bundle):
    export = case_bundle["export"]
    before = (head_sequence(), sorted(p.name for p in exports_folder().iterdir()))

    again = audit_export_run(export_id=export.pk)

    assert (again.status, again.file_name, again.sha256) == (
        "done",
        export.file_name,
        export.sha256,
    )
    assert (head_sequence(), sorted(p.name for p in exports_folder().iterdir())) == before


def test_an_agency_export_holds_the_events_of_its_cases_and_records(
    auditor, django_capture_on_commit_callbacks, tmp_path: Path
):
    from objections.models import Case
    from tests.factories import CreditRecordFactory, UserFactory

    ours = CreditRecordFactory(agency__code="agency-ours")
    theirs = CreditRecordFactory(agency__code="agency-theirs")
    case = Case.objects.create(
        reference="SH-2026-000901",
        kind=Case.Kind.OBJECTION,
        subject=ours.subject,
        record=ours,
        grounds=Case.Grounds.INACCURATE,
        statement="wrong",
        requested_remedy=Case.Remedy.CORRECT,
        filed_by=UserFactory(),
        jurisdiction=ours.agency.jurisdiction,
        filed_at=timezone.now(),
    )
    start = head_sequence()
    audit_record(actor=None, action="record.marked", target=ours)
    audit_record(actor=None, action="record.marked", target=theirs)
    case_events(2, reference=case.reference)
    case_events(1, reference="SH-2026-000902")

    export = built(auditor, {"agency": "agency-ours"}, django_capture_on_commit_callbacks)

    sequences = [e["sequence"] for e in events_of(bundle_path(export))]
    assert sequences == [start + 1, start + 3, start + 4]
    assert verdict(bundle_path(export), tmp_path).startswith("OK: 3 events verified")


def api(user) -> APIClient:
    client = APIClient()
    client.force_authenticate(user)
    return client


def test_an_auditor_requests_follows_and_downloads_an_export_through_the_api(
    auditor, django_capture_on_commit_callbacks
):
    case_events(2)
    client = api(auditor)

    with django_capture_on_commit_callbacks() as callbacks:
        created = client.post(
            "/api/v1/audit/exports/", {"filters": {"case_reference": CASE}}, format="json"
        )
    assert created.status_code == 202, created.content
    export_id = created.json()["id"]
    assert created["Location"] == f"/api/v1/audit/exports/{export_id}/"
    assert len(callbacks) == 1
    early = client.get(f"/api/v1/audit/exports/{export_id}/download/")
    assert early.status_code == 409
    assert not AuditEvent.objects.filter(action="audit.export_downloaded").exists()

    audit_export_run(export_id=export_id)
    status = client.get(f"/api/v1/audit/exports/{export_id}/").json()
    listed = client.get("/api/v1/audit/exports/").json()
    download = client.get(f"/api/v1/audit/exports/{export_id}/download/")

    assert (status["status"], status["progress"], status["total"]) == ("done", 2, 2)
    assert status["download"] == f"/api/v1/audit/exports/{export_id}/download/"
    assert [row["id"] for row in listed["results"]] == [export_id]
    assert download.status_code == 200
    assert download["Content-Disposition"] == (
        f'attachment; filename="audit-export-{export_id}.zip"'
    )
    assert download["X-Content-Type-Options"] == "nosniff"
    body = b"".join(download.streaming_content)
    assert hashlib.sha256(body).hexdigest() == status["sha256"]
    event = AuditEvent.objects.get(action="audit.export_downloaded")
    assert (event.actor_id, event.target_id) == (auditor.pk, str(export_id))


def test_the_list_is_newest_first_with_the_same_queries_for_one_and_many(
    auditor, django_assert_num_queries
):
    for day in range(1, 4):
        audit_export_request(actor=auditor, filters={"actor_id": day})
    client = api(auditor)
    client.get("/api/v1/audit/exports/")  # the user's roles are read once

    with django_assert_num_queries(1):
        one = client.get("/api/v1/audit/exports/?limit=1").json()
    with django_assert_num_queries(1):
        many = client.get("/api/v1/audit/exports/?limit=50").json()

    ids = list(AuditExport.objects.order_by("-id").values_list("id", flat=True))
    assert [row["id"] for row in many["results"]] == ids
    assert [row["id"] for row in one["results"]] == ids[:1]


@pytest.mark.parametrize(
    "path", ["/api/v1/audit/exports/{id}/", "/api/v1/audit/exports/{id}/download/"]
)
def test_another_auditors_export_is_a_404_and_records_nothing(
    path, auditor, django_capture_on_commit_callbacks
):
    case_events(1)
    export = built(auditor, {"case_reference": CASE}, django_capture_on_commit_callbacks)
    other = UserFactory(role="auditor")
    before = head_sequence()

    response = api(other).get(path.format(id=export.pk))

    assert response.status_code == 404
    assert head_sequence() == before
    assert api(other).get("/api/v1/audit/exports/").json()["results"] == []


@pytest.mark.parametrize("role", ["caseworker", "supervisor", "citizen"])
def test_everyone_but_auditors_and_administrators_gets_404_everywhere(
    role, auditor, django_capture_on_commit_callbacks
):
    case_events(1)
    export = built(auditor, {"case_reference": CASE}, django_capture_on_commit_callbacks)
    client = api(UserFactory(role=role))
    before = (AuditExport.objects.count(), head_sequence())

    answers = [
        client.get("/api/v1/audit/exports/").status_code,
        client.post(
            "/api/v1/audit/exports/", {"filters": {"case_reference": CASE}}, format="json"
        ).status_code,
        client.get(f"/api/v1/audit/exports/{export.pk}/").status_code,
        client.get(f"/api/v1/audit/exports/{export.pk}/download/").status_code,
    ]

    assert answers == [404, 404, 404, 404]
    assert (AuditExport.objects.count(), head_sequence()) == before


def test_bad_filters_through_the_api_are_a_400(auditor):
    response = api(auditor).post(
        "/api/v1/audit/exports/", {"filters": {"agency": "nowhere"}}, format="json"
    )

    assert response.status_code == 400
    assert response.json() == {
        "detail": "agency is the code of an agency.",
        "code": "export_filters_invalid",
    }
    assert not AuditExport.objects.exists()


def test_exports_left_queued_or_running_are_queued_again(auditor, time_machine, monkeypatch):
    time_machine.move_to(timezone.now(), tick=False)
    queued = audit_export_request(actor=auditor, filters={"actor_id": 1})
    running = audit_export_request(actor=auditor, filters={"actor_id": 2})
    AuditExport.objects.filter(pk=running.pk).update(status=AuditExport.Status.RUNNING)
    done = audit_export_request(actor=auditor, filters={"actor_id": 3})
    AuditExport.objects.filter(pk=done.pk).update(status=AuditExport.Status.DONE)
    sent: list[int] = []
    monkeypatch.setattr(
        "audit.tasks.audit_export_task.delay", lambda export_id: sent.append(export_id)
    )

    assert audit_exports_redrive() == []  # young ones are left to their message
    time_machine.shift(timedelta(minutes=6))
    redriven = audit_exports_redrive()

    assert sorted(redriven) == sorted(sent) == sorted([queued.pk, running.pk])


def test_the_repository_copy_of_the_verifier_runs_with_the_zip_path(case_bundle):
    script = Path("audit/verifier/verify_bundle.py").resolve()

    result = subprocess.run(  # noqa: S603 - our own interpreter and file
        [sys.executable, "-I", str(script), str(case_bundle["path"]), "--key-id", trusted_key()],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={},
    )

    assert (result.returncode, result.stdout[:22]) == (0, "OK: 5 events verified ")
