"""POST /api/v1/imports/: agency systems push files with a token and get a per-row report."""

from __future__ import annotations

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from records.models import CreditRecord, ImportBatch
from tests.factories import UserFactory
from tests.records.test_imports import MIXED_ROWS, csv_bytes, row

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("import_day")]


@pytest.fixture
def agency_client(agency):
    user = UserFactory(role="agency_system", agency=agency)
    token = Token.objects.create(user=user)
    return APIClient(headers={"authorization": f"Token {token.key}", "accept-language": "en"})


def upload(content: bytes, name: str = "push.csv") -> dict[str, SimpleUploadedFile]:
    return {"file": SimpleUploadedFile(name, content, content_type="text/csv")}


def test_agency_system_pushes_a_file_and_gets_the_row_report(agency_client, agency):
    response = agency_client.post(
        "/api/v1/imports/", upload(csv_bytes(MIXED_ROWS)), format="multipart"
    )

    assert response.status_code == 201
    body = response.json()
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


def test_invalid_header_is_a_400_with_the_reason(agency_client):
    content = csv_bytes([row("R-1")], header=("record_number", "fingerprint"))

    response = agency_client.post("/api/v1/imports/", upload(content), format="multipart")

    assert response.status_code == 400
    assert response.json()["code"] == "import_file_invalid"
    assert "column 'fingerprint' holds prohibited personal data" in response.json()["detail"]
    assert CreditRecord.objects.count() == 0


def test_unknown_file_type_is_a_400(agency_client):
    response = agency_client.post(
        "/api/v1/imports/", upload(b"%PDF-1.7", name="records.pdf"), format="multipart"
    )

    assert response.status_code == 400
    assert response.json() == {
        "detail": "The file must be CSV (.csv) or NDJSON (.ndjson, .jsonl).",
        "code": "import_file_invalid",
    }


def test_oversized_file_is_refused_before_reading(agency_client, settings):
    settings.IMPORT_MAX_UPLOAD_BYTES = 100

    response = agency_client.post(
        "/api/v1/imports/", upload(csv_bytes([row("R-1"), row("R-2")])), format="multipart"
    )

    assert response.status_code == 400
    assert response.json()["detail"] == "The file is larger than 100 bytes; split it."
    assert ImportBatch.objects.count() == 0


def test_missing_file_is_a_400(agency_client):
    response = agency_client.post("/api/v1/imports/", {}, format="multipart")

    assert response.status_code == 400
    assert response.json() == {"file": ["No file was submitted."]}
