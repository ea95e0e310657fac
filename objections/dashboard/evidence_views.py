"""The dashboard's evidence viewer: a case's file shown in the page (an image inline, a PDF in a
frame, sandboxed by its own policy) and the file itself, for staff whose scope holds the case.
The file is what is read: each time it is sent, shown in the viewer or downloaded, it is
recorded (`read.evidence_opened`), so a view of the viewer page is one read event. The page
itself shows what the case page does (the file's name, type, size and hash) and records
nothing."""

from __future__ import annotations

import uuid
from typing import cast

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_http_methods

from accounts.models import User
from objections.dashboard.access import dashboard_page
from objections.dashboard.selectors import staff_case_get
from objections.evidence.checks import PDF
from objections.evidence.selectors import evidence_get_for_user
from objections.evidence.serving import evidence_file_response, evidence_read_record


@dashboard_page
@require_http_methods(["GET", "HEAD"])
def evidence_view(request: HttpRequest, reference: str, public_id: uuid.UUID) -> HttpResponse:
    user = cast("User", request.user)
    case = staff_case_get(user=user, reference=reference)
    evidence = evidence_get_for_user(user=user, case=case, public_id=public_id)
    return render(
        request,
        "dashboard/evidence_view.html",
        {
            "current": "queue",
            "case": case,
            "evidence": evidence,
            "is_pdf": evidence.content_type == PDF,
        },
    )


@dashboard_page
@require_http_methods(["GET", "HEAD"])
def evidence_file(request: HttpRequest, reference: str, public_id: uuid.UUID) -> HttpResponse:
    """The file: an attachment, or with `?inline=1` for the viewer; recorded once it is ready to
    be sent and before it leaves (no record of the read, no file)."""
    user = cast("User", request.user)
    case = staff_case_get(user=user, reference=reference)
    evidence = evidence_get_for_user(user=user, case=case, public_id=public_id)
    response = evidence_file_response(evidence, inline=request.GET.get("inline") == "1")
    try:
        evidence_read_record(user=user, case=case, evidence=evidence)
    except BaseException:
        response.close()
        raise
    return cast("HttpResponse", response)  # a streaming response: `dashboard_page` passes it on
