"""POST /api/v1/imports/: agency systems push a file with a token; a worker imports it and the
caller polls GET /api/v1/imports/<id>/ for its progress and its per-row report."""

from __future__ import annotations

from pathlib import Path

import pytest
from django.conf import settings
from django.core.files.uploadedfile import SimpleUploadedFile
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from records.models import CreditRecord, ImportBatch, ImportJob
from scs_cases.celery import app as celery_app
from tests.factories import AgencyFactory, UserFactory
from tests.records.test_imports import MIXED_ROWS, csv_bytes, row

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("import_day")]


@pytest.fixture
def agency_client(agency):
    user = UserFactory(role="agency_system", agency=agency)
    token = Token.objects.create(user=user)
    return APIClient(headers={"authorization": f"Token {token.key}", "accept-language": "en"})


def upload(content: bytes, name: str = "push.csv") -> dict[str, SimpleUploadedFile]:
    return {"file": SimpleUploadedFile(name, content, content_type="text/csv")}


@pytest.fixture
def worker_runs(monkeypatch, django_capture_on_commit_callbacks):
    """Push, then let the queued import run here (the broker is the outside world) and poll."""
    monkeypatch.setitem(celery_app.conf, "task_always_eager", True)

    def push(client, content: bytes, name: str = "push.csv"):
        with django_capture_on_commit_callbacks(execute=True):
            accepted = client.post("/api/v1/imports/", upload(content, name), format="multipart")
        assert accepted.status_code == 202, accepted.json()
        assert accepted["Location"] == f"/api/v1/imports/{accepted.json()['id']}/"
        return accepted, client.get(accepted["Location"])

    return push


def test_agency_system_pushes_a_file_and_polls_the_row_report(agency_client, agency, worker_runs):
    accepted, polled = worker_runs(agency_client, csv_bytes(MIXED_ROWS))

    assert accepted.json()["status"] == "queued"
    assert accepted.json()["rows_estimated"] == 11
    assert polled.status_code == 200
    assert (polled.json()["status"], polled.json()["rows_read"], polled.json()["error"]) == (
        "done",
        11,
        None,
    )
    body = polled.json()["report"]
    assert {key: body[key] for key in ("rows_total", "rows_inserted", "rows_rejected")} == {
        "rows_total": 11,
        "rows_inserted": 3,
        "rows_rejected": 8,
    }
    assert body["errors"][0] == {
        "line": 4,
        "field": "subject_identifier",
        "reason": "check digit does not match",
    }
    assert body["errors_not_listed"] == 0
    batch = ImportBatch.objects.get(pk=body["batch"])
    assert (batch.agency, batch.source, batch.rows_inserted) == (agency, "api", 3)
    assert set(CreditRecord.objects.values_list("agency__code", flat=True)) == {"shanghai-market"}
    assert not (settings.MEDIA_ROOT / ImportJob.objects.get().stored_path).exists()


def test_another_agencys_import_is_a_404(agency_client, worker_runs):
    accepted, _ = worker_runs(agency_client, csv_bytes([row("R-1")]))
    other = APIClient()
    other.force_authenticate(UserFactory(role="agency_system", agency=AgencyFactory()))

    assert other.get(accepted["Location"]).status_code == 404


def test_citizen_may_not_import(agency):
    client = APIClient(headers={"accept-language": "en"})
    client.force_authenticate(UserFactory(role="citizen"))

    response = client.post("/api/v1/imports/", upload(csv_bytes([row("R-1")])), format="multipart")

    assert response.status_code == 403
    assert CreditRecord.objects.count() == 0


def test_agency_system_without_agency_may_not_import(agency):
    client = APIClient(headers={"accept-language": "en"})
    client.force_authenticate(UserFactory(role="agency_system"))

    response = client.post("/api/v1/imports/", upload(csv_bytes([row("R-1")])), format="multipart")

    assert response.status_code == 403
    assert CreditRecord.objects.count() == 0


def test_an_invalid_header_fails_the_import_with_the_reason(agency_client, worker_runs):
    content = csv_bytes([row("R-1")], header=("record_number", "fingerprint"))

    _, polled = worker_runs(agency_client, content)

    assert polled.json()["status"] == "failed"
    assert polled.json()["error"]["code"] == "import_file_invalid"
    assert "column 'fingerprint' holds prohibited personal data" in polled.json()["error"]["detail"]
    assert (polled.json()["report"], CreditRecord.objects.count()) == (None, 0)


def test_unknown_file_type_is_a_400(agency_client):
    response = agency_client.post(
        "/api/v1/imports/", upload(b"%PDF-1.7", name="records.pdf"), format="multipart"
    )

    assert response.status_code == 400
    assert response.json() == {
        "detail": "The file must be CSV (.csv) or NDJSON (.ndjson, .jsonl).",
        "code": "import_file_invalid",
    }


def test_an_oversized_file_is_refused_while_it_is_read_and_nothing_is_stored(
    agency_client, settings
):
    settings.IMPORT_MAX_UPLOAD_BYTES = 100

    response = agency_client.post(
        "/api/v1/imports/", upload(csv_bytes([row("R-1"), row("R-2")])), format="multipart"
    )

    assert response.status_code == 400
    assert response.json()["detail"] == "The file is larger than 100 bytes; split it."
    assert (ImportJob.objects.count(), ImportBatch.objects.count()) == (0, 0)
    assert list(Path(settings.MEDIA_ROOT).glob("imports/*")) == []


def test_missing_file_is_a_400(agency_client):
    response = agency_client.post("/api/v1/imports/", {}, format="multipart")

    assert response.status_code == 400
    assert response.json() == {"file": ["No file was submitted."]}


def test_a_running_import_reports_the_rows_read_so_far(agency_client, agency, worker_runs):
    # given a job whose import is under way (the worker has read 20,000 rows of the file)
    from django.core.cache import cache

    from records.import_jobs import _progress_key

    accepted, _ = worker_runs(agency_client, csv_bytes([row(f"R-{n}") for n in range(3)]))
    job = ImportJob.objects.get(pk=accepted.json()["id"])
    assert cache.get(_progress_key(job.pk)) == 3  # what the worker wrote as it read
    ImportJob.objects.filter(pk=job.pk).update(status="running", batch=None)
    cache.set(_progress_key(job.pk), 20_000)

    # when the caller polls
    running = agency_client.get(accepted["Location"]).json()

    # then it sees the rows read so far, and no report yet
    assert (running["status"], running["rows_read"], running["report"]) == ("running", 20_000, None)
