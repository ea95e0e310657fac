"""Sending a stored evidence file: always of its sniffed type, never sniffed again or rendered
as a page by the browser, never cached; a staff member's download recorded as a read."""

from __future__ import annotations

from typing import Final
from urllib.parse import quote

from django.http import FileResponse

from accounts.models import User
from audit.reads import EVIDENCE_OPENED, read_record
from objections.evidence.checks import PDF
from objections.evidence.storage import stored_open
from objections.models import Case, Evidence

# A download opened as a page anyway runs nothing and loads nothing.
ATTACHMENT_POLICY: Final = "default-src 'none'; sandbox"
# Shown in the dashboard's viewer: an image in an <img>, a PDF in a frame of this site whose
# document is sandboxed by its own policy (Chromium's viewer still draws it; it would not in a
# frame with the `sandbox` attribute).
INLINE_IMAGE_POLICY: Final = (
    "default-src 'none'; img-src 'self'; style-src 'unsafe-inline'; frame-ancestors 'self'"
)
INLINE_PDF_POLICY: Final = "sandbox; default-src 'none'; frame-ancestors 'self'"


def content_disposition(disposition: str, name: str) -> str:
    """`attachment` or `inline`, with the name as ASCII and, exactly, as UTF-8 (RFC 6266)."""
    fallback = "".join(
        char if 32 <= ord(char) < 127 and char not in '"\\;' else "_" for char in name
    )
    return f"{disposition}; filename=\"{fallback}\"; filename*=UTF-8''{quote(name, safe='')}"


def evidence_file_response(evidence: Evidence, *, inline: bool = False) -> FileResponse:
    response = FileResponse(stored_open(evidence.stored_name), content_type=evidence.content_type)
    response["Content-Disposition"] = content_disposition(
        "inline" if inline else "attachment", evidence.original_name
    )
    response["X-Content-Type-Options"] = "nosniff"
    response["Cache-Control"] = "private, no-store"
    if not inline:
        response["Content-Security-Policy"] = ATTACHMENT_POLICY
    elif evidence.content_type == PDF:
        response["Content-Security-Policy"] = INLINE_PDF_POLICY
        response["X-Frame-Options"] = "SAMEORIGIN"  # the viewer's frame, on this site only
    else:
        response["Content-Security-Policy"] = INLINE_IMAGE_POLICY
    return response


def evidence_read_record(*, user: User, case: Case, evidence: Evidence) -> None:
    read_record(
        actor=user,
        what=EVIDENCE_OPENED,
        target=evidence,
        case_reference=case.reference,
        ids={"case": case.pk, "subject": case.subject_id},
    )
