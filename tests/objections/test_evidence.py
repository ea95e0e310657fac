"""Evidence files (issue 13): what is refused and what is kept, through the API and the filing;
who sees which file; how a file is served; the dashboard's viewer (issue 14).

Every refusal leaves the same counts of cases, evidence rows, files under SCS_DATA_DIR/evidence
and audit events as before it.
"""

from __future__ import annotations

import hashlib
import io
import uuid
import zipfile
import zlib
from pathlib import Path
from typing import Any

import pytest
from django.core.cache import cache
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.files.uploadhandler import FileUploadHandler
from PIL import Image
from rest_framework.test import APIClient

from accounts.models import User
from audit.models import AuditEvent
from objections.evidence import checks
from objections.evidence.storage import stored_path
from objections.models import Case, Evidence
from objections.services import case_file, case_route
from objections.services.evidence import evidence_attach
from tests.objections.conftest import World
from tests.staff import staff_login

CASES = "/api/v1/cases/"

# --- files ---------------------------------------------------------------------------------------


def pdf_bytes() -> bytes:
    """A real one-page PDF (Pillow writes it)."""
    out = io.BytesIO()
    Image.new("RGB", (40, 20), "white").save(out, format="PDF")
    return out.getvalue()


def hand_pdf(catalogue_extra: bytes = b"", body: bytes = b"") -> bytes:
    return (
        b"%PDF-1.7\n1 0 obj\n<< /Type /Catalog /Pages 2 0 R "
        + catalogue_extra
        + b" >>\nendobj\n2 0 obj\n<< /Type /Pages /Kids [] /Count 0 >>\nendobj\n"
        + body
        + b"trailer\n<< /Root 1 0 R >>\n%%EOF\n"
    )


def jpeg_bytes(*, exif: bool = False) -> bytes:
    image = Image.new("RGB", (24, 16), (200, 30, 30))
    out = io.BytesIO()
    if exif:
        tags = Image.Exif()
        tags[0x010F] = "SecretCam"  # Make
        tags[0x0131] = "PhotoTool 1.0"  # Software
        image.save(out, format="JPEG", exif=tags.tobytes())
    else:
        image.save(out, format="JPEG")
    return out.getvalue()


def png_bytes() -> bytes:
    out = io.BytesIO()
    Image.new("RGBA", (8, 8), (0, 120, 0, 255)).save(out, format="PNG")
    return out.getvalue()


def zip_bytes() -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        archive.writestr("payload.html", "<html><script>alert(1)</script></html>")
    return out.getvalue()


def upload(name: str, content: bytes, content_type: str = "application/pdf") -> SimpleUploadedFile:
    return SimpleUploadedFile(name, content, content_type=content_type)


HOSTILE = {
    "elf-named-pdf": ("statement.pdf", b"\x7fELF\x02\x01\x01\x00" + b"\x00" * 200, "program"),
    "pe-named-pdf": ("statement.pdf", b"MZ\x90\x00\x03" + b"\x00" * 200, "program"),
    "html-named-png": (
        "photo.png",
        b"<!DOCTYPE html><html><body><script>alert(1)</script></body></html>",
        "web page",
    ),
    "svg": (
        "drawing.svg",
        b'<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg" onload="alert(1)"/>',
        "SVG",
    ),
    "zip": ("documents.zip", zip_bytes(), "archive"),
    "pdf-javascript": (
        "letter.pdf",
        hand_pdf(b"/OpenAction << /S /JavaScript /JS (app.alert(1)) >>"),
        "/JavaScript",
    ),
    "pdf-javascript-hex-escaped": (
        "letter.pdf",
        hand_pdf(b"/O#70enAction << /S /J#61vaScript /J#53 (app.alert(1)) >>"),
        "/JavaScript",
    ),
    "pdf-javascript-in-object-stream": (
        "letter.pdf",
        hand_pdf(
            body=b"3 0 obj\n<< /Type /ObjStm /Filter /FlateDecode >>\nstream\n"
            + zlib.compress(b"<< /S /JavaScript /JS (app.alert(1)) >>")
            + b"\nendstream\nendobj\n"
        ),
        "/JavaScript",
    ),
    "pdf-launch": ("letter.pdf", hand_pdf(b"/AA << /O << /S /Launch /F (cmd.exe) >> >>"), "/AA"),
    "pdf-zip-polyglot": ("letter.pdf", pdf_bytes() + zip_bytes(), "ZIP archive"),
    "jpeg-html-after-eoi": (
        "photo.jpg",
        jpeg_bytes() + b"<html><script>alert(1)</script></html>",
        "web page",
    ),
    "png-data-after-iend": ("scan.png", png_bytes() + b"trailing bytes", "after the end"),
    "jpeg-truncated": ("photo.jpg", jpeg_bytes()[:200], "after the end"),
}


# --- helpers -------------------------------------------------------------------------------------


@pytest.fixture(autouse=True)
def _data_dir(settings: Any, tmp_path: Path) -> Path:
    settings.DATA_DIR = tmp_path / "data"
    settings.FILE_UPLOAD_TEMP_DIR = str(tmp_path / "uploads")
    (tmp_path / "uploads").mkdir()
    cache.clear()  # the filing throttle counts in the cache, which outlives each test's rollback
    return tmp_path


def stored_files(settings: Any) -> list[Path]:
    root = Path(settings.DATA_DIR) / "evidence"
    return sorted(path for path in root.rglob("*") if path.is_file()) if root.exists() else []


def counts(settings: Any) -> dict[str, Any]:
    return {
        "cases": Case.objects.count(),
        "evidence": Evidence.objects.count(),
        "files": stored_files(settings),
        "audit_events": AuditEvent.objects.count(),
    }


def api(user: User | None = None) -> APIClient:
    client = APIClient(headers={"accept-language": "en"})
    if user is not None:
        client.force_authenticate(user)
    return client


def file_objection(world: World, **overrides: Any) -> Case:
    values: dict[str, Any] = {
        "actor": world.citizen,
        "record": world.sh_record,
        "kind": "objection",
        "grounds": "inaccurate",
        "statement": "处罚对象错误",
        "requested_remedy": "correct",
        "correction": {"title": "更正后的标题"},
    }
    values.update(overrides)
    return case_file(**values)


def routed(world: World) -> Case:
    return case_route(case_id=file_objection(world).pk)


def evidence_url(case: Case, public_id: Any = None) -> str:
    base = f"{CASES}{case.reference}/evidence/"
    return base if public_id is None else f"{base}{public_id}/"


def multipart(boundary: str, fields: dict[str, str], files: list[tuple[str, bytes]]) -> bytes:
    """A multipart body written by hand: the test client cuts folders off file names itself."""
    parts = [
        f'--{boundary}\r\nContent-Disposition: form-data; name="{key}"\r\n\r\n{value}\r\n'.encode()
        for key, value in fields.items()
    ]
    for name, content in files:
        parts.append(
            f'--{boundary}\r\nContent-Disposition: form-data; name="evidence"; filename="{name}"'
            f"\r\nContent-Type: application/pdf\r\n\r\n".encode()
            + content
            + b"\r\n"
        )
    return b"".join(parts) + f"--{boundary}--\r\n".encode()


# --- refusals ------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", sorted(HOSTILE))
def test_a_hostile_file_is_refused_by_the_api_and_changes_nothing(world, settings, kind):
    case = routed(world)
    name, content, reason = HOSTILE[kind]
    before = counts(settings)

    response = api(world.citizen).post(
        evidence_url(case), {"evidence": [upload(name, content)]}, format="multipart"
    )

    assert response.status_code == 400, response.content
    assert response.json()["code"] == "evidence_refused"
    assert name in response.json()["detail"]
    assert reason in response.json()["detail"]
    assert counts(settings) == before


def test_a_decompression_bomb_is_refused_without_being_decoded(world, settings, monkeypatch):
    case = routed(world)
    out = io.BytesIO()
    Image.new("1", (8000, 8000)).save(out, format="PNG")  # 64 megapixels in a few kilobytes
    monkeypatch.setattr(checks, "MAX_EXPANDED_BYTES", 1024 * 1024)
    pdf_bomb = hand_pdf(
        body=b"3 0 obj\n<< /Filter /FlateDecode >>\nstream\n"
        + zlib.compress(b"\0" * 4 * 1024 * 1024, 9)
        + b"\nendstream\nendobj\n"
    )
    before = counts(settings)

    response = api(world.citizen).post(
        evidence_url(case),
        {"evidence": [upload("huge.png", out.getvalue(), "image/png")]},
        format="multipart",
    )
    pdf_response = api(world.citizen).post(
        evidence_url(case), {"evidence": [upload("bomb.pdf", pdf_bomb)]}, format="multipart"
    )

    assert response.status_code == 400
    assert response.json()["detail"] == (
        "“huge.png” was not accepted: the image has too many pixels."
    )
    assert pdf_response.status_code == 400
    assert "expands too far" in pdf_response.json()["detail"]
    assert counts(settings) == before


@pytest.mark.parametrize(
    ("sent", "shown"),
    [
        ("../../etc/statement.pdf", "../../etc/statement.pdf"),
        ("..\\..\\windows\\statement.pdf", "..\\..\\windows\\statement.pdf"),
        ("C:statement.pdf", "C:statement.pdf"),
        ("state\x07ment.pdf", "statement.pdf"),
        ("invoice\u202efdp.exe", "invoicefdp.exe"),
    ],
)
def test_a_name_with_a_path_or_control_characters_is_refused(world, settings, sent, shown):
    case = routed(world)
    before = counts(settings)
    boundary = "scs-evidence-boundary"

    response = api(world.citizen).generic(
        "POST",
        evidence_url(case),
        multipart(boundary, {}, [(sent, pdf_bytes())]),
        content_type=f"multipart/form-data; boundary={boundary}",
    )

    assert response.status_code == 400, response.content
    assert response.json()["code"] == "evidence_refused"
    assert f"“{shown}” was not accepted" in response.json()["detail"]
    assert counts(settings) == before


def test_a_browser_session_gets_the_same_checks_when_its_csrf_check_reads_the_body(world, settings):
    # A session's CSRF check reads the form before the view does: the caps and the name check
    # are installed before it.
    case = routed(world)
    client = APIClient(enforce_csrf_checks=True)
    client.force_login(world.citizen)
    token = "a" * 32
    client.cookies["csrftoken"] = token
    before = counts(settings)
    boundary = "scs-evidence-boundary"

    refused = client.generic(
        "POST",
        evidence_url(case),
        multipart(boundary, {"csrfmiddlewaretoken": token}, [("../x.pdf", pdf_bytes())]),
        content_type=f"multipart/form-data; boundary={boundary}",
    )
    accepted = client.generic(
        "POST",
        evidence_url(case),
        multipart(boundary, {"csrfmiddlewaretoken": token}, [("x.pdf", pdf_bytes())]),
        content_type=f"multipart/form-data; boundary={boundary}",
    )

    assert (refused.status_code, refused.json()["code"]) == (400, "evidence_refused")
    assert accepted.status_code == 201, accepted.content
    assert Evidence.objects.count() == before["evidence"] + 1


class Recording(FileUploadHandler):
    """Stands where Django's own handler would receive the file: counts what reaches it."""

    seen: list[int] = []  # one test at a time

    def new_file(self, *args: Any, **kwargs: Any) -> None:
        super().new_file(*args, **kwargs)
        Recording.seen.append(0)

    def receive_data_chunk(self, raw_data: bytes, start: int) -> bytes:
        Recording.seen[-1] += len(raw_data)
        return raw_data

    def file_complete(self, file_size: int) -> None:
        return None


def test_an_oversized_file_is_refused_before_it_is_all_read(world, settings, tmp_path):
    case = routed(world)
    settings.SCS_EVIDENCE_MAX_BYTES = 100_000
    settings.FILE_UPLOAD_MAX_MEMORY_SIZE = 0  # to disk, where a whole file would land
    settings.FILE_UPLOAD_HANDLERS = [
        f"{__name__}.Recording",
        "django.core.files.uploadhandler.TemporaryFileUploadHandler",
    ]
    Recording.seen = []
    big = pdf_bytes() + b"%" + b"0" * 1_000_000 + b"\n%%EOF\n"
    before = counts(settings)

    response = api(world.citizen).post(
        evidence_url(case), {"evidence": [upload("big.pdf", big)]}, format="multipart"
    )

    assert response.status_code == 413, response.content
    assert response.json()["code"] == "evidence_too_large"
    assert "“big.pdf” was not accepted" in response.json()["detail"]
    assert len(Recording.seen) == 1
    assert Recording.seen[0] <= 100_000  # the handler stopped reading at the cap
    assert list((tmp_path / "uploads").iterdir()) == []  # the partial file is gone
    assert counts(settings) == before


def test_an_eleventh_file_is_refused(world, settings):
    case = routed(world)
    evidence_attach(
        case=case,
        files=[upload(f"scan-{n}.png", png_bytes(), "image/png") for n in range(10)],
        actor=world.citizen,
    )
    before = counts(settings)

    response = api(world.citizen).post(
        evidence_url(case), {"evidence": [upload("one-more.pdf", pdf_bytes())]}, format="multipart"
    )

    assert response.status_code == 400, response.content
    assert response.json()["code"] == "evidence_too_many"
    assert "at most 10" in response.json()["detail"]
    assert counts(settings) == before


def test_eleven_files_in_one_request_are_refused_while_they_stream(world, settings):
    case = routed(world)
    before = counts(settings)

    response = api(world.citizen).post(
        evidence_url(case),
        {"evidence": [upload(f"page-{n}.pdf", pdf_bytes()) for n in range(11)]},
        format="multipart",
    )

    assert response.status_code == 400, response.content
    assert response.json()["code"] == "evidence_too_many"
    assert counts(settings) == before


def test_one_refused_file_refuses_the_good_ones_sent_with_it(world, settings):
    case = routed(world)
    before = counts(settings)

    response = api(world.citizen).post(
        evidence_url(case),
        {
            "evidence": [
                upload("good.pdf", pdf_bytes()),
                upload("bad.pdf", HOSTILE["pdf-javascript"][1]),
            ]
        },
        format="multipart",
    )

    assert response.status_code == 400
    assert "“bad.pdf”" in response.json()["detail"]
    assert counts(settings) == before


# --- filing with evidence -----------------------------------------------------------------------


def filing_form(world: World) -> dict[str, Any]:
    return {
        "record": str(world.sh_record.public_id),
        "kind": "objection",
        "grounds": "inaccurate",
        "statement": "The penalty was revoked on reconsideration.",
        "requested_remedy": "correct",
        "fields_objected": ["title"],
        "correction": '{"title": "已撤销的处罚"}',
    }


def test_a_filing_with_a_hostile_file_creates_nothing(world, settings):
    before = counts(settings)

    response = api(world.citizen).post(
        CASES,
        {
            **filing_form(world),
            "evidence": [upload("good.pdf", pdf_bytes()), upload("bad.pdf", zip_bytes())],
        },
        format="multipart",
    )

    assert response.status_code == 400, response.content
    assert response.json()["code"] == "evidence_refused"
    assert "“bad.pdf”" in response.json()["detail"]
    assert counts(settings) == before


def test_a_filing_refused_for_itself_leaves_no_file(world, settings):
    file_objection(world)  # an open objection about the record already exists
    before = counts(settings)

    response = api(world.citizen).post(
        CASES,
        {**filing_form(world), "evidence": [upload("good.pdf", pdf_bytes())]},
        format="multipart",
    )

    assert response.status_code == 409, response.content
    assert counts(settings) == before


def test_a_multipart_filing_with_evidence_files_the_case_with_its_files(world, settings):
    response = api(world.citizen).post(
        CASES,
        {
            **filing_form(world),
            "evidence": [upload("decision.pdf", pdf_bytes()), upload("photo.jpg", jpeg_bytes())],
        },
        format="multipart",
    )

    assert response.status_code == 201, response.content
    case = Case.objects.get(reference=response.json()["reference"])
    assert case.correction == {"title": "已撤销的处罚"}
    assert case.fields_objected == ["title"]
    files = list(Evidence.objects.filter(case=case).order_by("id"))
    assert [(f.original_name, f.content_type, f.visibility) for f in files] == [
        ("decision.pdf", "application/pdf", "shared"),
        ("photo.jpg", "image/jpeg", "shared"),
    ]
    assert [e.action for e in AuditEvent.objects.filter(case_reference=case.reference)] == [
        "case.filed",
        "evidence.added",
    ]
    assert len(stored_files(settings)) == 2


# --- accepted files ------------------------------------------------------------------------------


def test_a_pdf_is_kept_as_sent_under_a_random_name_with_its_hash(world, settings):
    case = routed(world)
    content = pdf_bytes()

    response = api(world.citizen).post(
        evidence_url(case), {"evidence": [upload("决定书.pdf", content)]}, format="multipart"
    )

    assert response.status_code == 201, response.content
    evidence = Evidence.objects.get(case=case)
    path = stored_path(evidence.stored_name)
    assert path.read_bytes() == content
    assert path.parent.parent == Path(settings.DATA_DIR) / "evidence"
    assert "决定书" not in str(path)
    assert (evidence.sha256, evidence.size, evidence.content_type) == (
        hashlib.sha256(content).hexdigest(),
        len(content),
        "application/pdf",
    )
    assert (evidence.original_name, evidence.visibility, evidence.uploaded_by) == (
        "决定书.pdf",
        "shared",
        world.citizen,
    )
    assert response.json() == [
        {
            "id": str(evidence.public_id),
            "name": "决定书.pdf",
            "content_type": "application/pdf",
            "size": len(content),
            "sha256": evidence.sha256,
            "visibility": "shared",
            "uploaded_by": world.citizen.username,
            "uploaded_at": response.json()[0]["uploaded_at"],
        }
    ]
    event = AuditEvent.objects.get(action="evidence.added")
    assert event.case_reference == case.reference
    assert event.payload == {
        "visibility": "shared",
        "files": [
            {
                "id": evidence.pk,
                "public_id": str(evidence.public_id),
                "sha256": evidence.sha256,
                "size": len(content),
                "type": "application/pdf",
            }
        ],
    }


def test_a_jpeg_is_kept_re_encoded_without_its_exif(world, settings):
    case = routed(world)
    sent = jpeg_bytes(exif=True)
    assert Image.open(io.BytesIO(sent)).getexif()[0x010F] == "SecretCam"  # the test's premise

    response = api(world.citizen).post(
        evidence_url(case),
        {"evidence": [upload("photo.jpg", sent, "image/jpeg")]},
        format="multipart",
    )

    assert response.status_code == 201, response.content
    evidence = Evidence.objects.get(case=case)
    kept = stored_path(evidence.stored_name).read_bytes()
    assert b"SecretCam" not in kept
    with Image.open(io.BytesIO(kept)) as image:
        assert dict(image.getexif()) == {}
        assert "exif" not in image.info
        assert (image.format, image.size) == ("JPEG", (24, 16))
    assert (evidence.sha256, evidence.size) == (hashlib.sha256(kept).hexdigest(), len(kept))


def test_staff_add_internal_files_the_applicant_does_not_see(world, settings):
    case = routed(world)
    evidence_attach(case=case, files=[upload("shared.pdf", pdf_bytes())], actor=world.citizen)

    response = api(world.caseworker).post(
        evidence_url(case),
        {"evidence": [upload("note.png", png_bytes(), "image/png")]},
        format="multipart",
    )

    assert response.status_code == 201, response.content
    assert response.json()[0]["visibility"] == "internal"
    staff_list = api(world.caseworker).get(evidence_url(case)).json()
    assert [row["name"] for row in staff_list] == ["shared.pdf", "note.png"]
    citizen_list = api(world.citizen).get(evidence_url(case)).json()
    assert [row["name"] for row in citizen_list] == ["shared.pdf"]
    internal = Evidence.objects.get(case=case, original_name="note.png")
    assert api(world.citizen).get(evidence_url(case, internal.public_id)).status_code == 404


def test_the_applicant_adds_nothing_to_a_closed_case(world, settings):
    case = routed(world)
    Case.objects.filter(pk=case.pk).update(is_open=False)
    before = counts(settings)

    response = api(world.citizen).post(
        evidence_url(case), {"evidence": [upload("late.pdf", pdf_bytes())]}, format="multipart"
    )

    assert response.status_code == 409
    assert counts(settings) == before


# --- isolation and serving -----------------------------------------------------------------------


@pytest.fixture
def with_file(world: World) -> tuple[Case, Evidence]:
    case = routed(world)
    (evidence,) = evidence_attach(
        case=case, files=[upload("决定书 final.pdf", pdf_bytes())], actor=world.citizen
    )
    return case, evidence


def test_another_citizen_gets_404_for_the_list_and_every_file(world, settings, with_file):
    case, evidence = with_file
    client = api(world.other_citizen)

    assert client.get(evidence_url(case)).status_code == 404
    assert client.get(evidence_url(case, evidence.public_id)).status_code == 404
    assert client.get(evidence_url(case, uuid.uuid4())).status_code == 404
    assert (
        client.post(
            evidence_url(case), {"evidence": [upload("x.pdf", pdf_bytes())]}, format="multipart"
        ).status_code
        == 404
    )


def test_a_file_is_not_found_through_another_case(world, settings, with_file):
    _case, evidence = with_file
    other = file_objection(world, actor=world.other_citizen, record=world.other_record)

    response = api(world.other_citizen).get(evidence_url(other, evidence.public_id))

    assert response.status_code == 404


def test_staff_of_another_agency_get_404(world, settings, with_file):
    case, evidence = with_file
    client = api(world.zj_caseworker)

    assert client.get(evidence_url(case)).status_code == 404
    assert client.get(evidence_url(case, evidence.public_id)).status_code == 404


def test_a_download_is_an_attachment_of_its_sniffed_type_never_sniffed_again(world, with_file):
    case, evidence = with_file

    response = api(world.citizen).get(evidence_url(case, evidence.public_id))

    assert response.status_code == 200
    assert response["Content-Type"] == "application/pdf"
    assert response["Content-Disposition"] == (
        "attachment; filename=\"___ final.pdf\"; filename*=UTF-8''"
        "%E5%86%B3%E5%AE%9A%E4%B9%A6%20final.pdf"
    )
    assert response["X-Content-Type-Options"] == "nosniff"
    assert response["Cache-Control"] == "private, no-store"
    assert b"".join(response.streaming_content) == stored_path(evidence.stored_name).read_bytes()
    # The applicant reading their own file is not a read of someone else's data.
    assert not AuditEvent.objects.filter(action="read.evidence_opened").exists()


def test_a_staff_download_is_recorded_as_a_read(world, with_file):
    case, evidence = with_file

    response = api(world.caseworker).get(evidence_url(case, evidence.public_id))

    assert response.status_code == 200
    event = AuditEvent.objects.get(action="read.evidence_opened")
    assert (event.actor_id, event.case_reference, event.target_id) == (
        world.caseworker.pk,
        case.reference,
        str(evidence.pk),
    )
    assert event.payload == {"case": case.pk, "subject": case.subject_id}


# --- the dashboard -------------------------------------------------------------------------------


def test_the_case_page_lists_the_evidence_with_its_viewer(client, world, with_file):
    case, evidence = with_file
    staff_login(client, world.caseworker)

    page = client.get(f"/dashboard/cases/{case.reference}/")

    assert page.status_code == 200
    body = page.content.decode()
    view = f"/dashboard/cases/{case.reference}/evidence/{evidence.public_id}/view/"
    assert view in body
    assert "决定书 final.pdf" in body
    assert evidence.sha256[:12] in body
    assert "evidence files uploaded by the applicant appear here" not in body.lower()

    def reads() -> int:
        return AuditEvent.objects.filter(
            action="read.evidence_opened", target_id=str(evidence.pk)
        ).count()

    before = reads()
    viewer = client.get(view)
    assert viewer.status_code == 200
    inline = f"/dashboard/cases/{case.reference}/evidence/{evidence.public_id}/?inline=1"
    assert f'<iframe src="{inline}"' in viewer.content.decode()
    assert reads() == before  # the page holds what the case page shows; the file is the read

    shown = client.get(inline)
    assert shown.status_code == 200
    assert shown["Content-Disposition"].startswith("inline; ")
    assert shown["X-Content-Type-Options"] == "nosniff"
    assert shown["Content-Security-Policy"].startswith("sandbox; default-src 'none'")
    assert shown["X-Frame-Options"] == "SAMEORIGIN"
    assert reads() == before + 1  # one view of the viewer, one read


def test_the_viewer_shows_an_image_inline(client, world, settings):
    case = routed(world)
    (evidence,) = evidence_attach(
        case=case, files=[upload("photo.jpg", jpeg_bytes(), "image/jpeg")], actor=world.citizen
    )
    staff_login(client, world.caseworker)
    base = f"/dashboard/cases/{case.reference}/evidence/{evidence.public_id}/"

    viewer = client.get(f"{base}view/")
    shown = client.get(f"{base}?inline=1")

    assert f'<img src="{base}?inline=1"' in viewer.content.decode()
    assert shown["Content-Type"] == "image/jpeg"
    assert shown["Content-Security-Policy"] == (
        "default-src 'none'; img-src 'self'; style-src 'unsafe-inline'; frame-ancestors 'self'"
    )
    assert client.get(base)["Content-Disposition"].startswith("attachment; ")


def test_the_viewer_is_a_404_outside_the_staff_members_scope(client, world, with_file):
    case, evidence = with_file
    staff_login(client, world.zj_caseworker)
    base = f"/dashboard/cases/{case.reference}/evidence/{evidence.public_id}/"

    assert client.get(f"{base}view/").status_code == 404
    assert client.get(base).status_code == 404
    assert not AuditEvent.objects.filter(action="read.evidence_opened").exists()
