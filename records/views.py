"""Portal pages: what a citizen or company representative sees of their own records."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from records.selectors import (
    record_get_for_user,
    record_list_for_user,
    subject_get_for_user,
    subject_list_for_user,
)

PAGE_LIMIT = 200


@login_required
def my_records(request: HttpRequest) -> HttpResponse:
    subjects = list(subject_list_for_user(user=request.user))  # type: ignore[arg-type]
    records = list(record_list_for_user(user=request.user)[:PAGE_LIMIT])  # type: ignore[arg-type]
    return render(
        request,
        "portal/records.html",
        {"subjects": subjects, "records": records, "limit": PAGE_LIMIT},
    )


@login_required
def subject_records(request: HttpRequest, public_id: str) -> HttpResponse:
    subject = subject_get_for_user(user=request.user, public_id=public_id)  # type: ignore[arg-type]
    records = list(
        record_list_for_user(user=request.user, subject=subject)[:PAGE_LIMIT]  # type: ignore[arg-type]
    )
    return render(
        request,
        "portal/records.html",
        {"subjects": [subject], "records": records, "limit": PAGE_LIMIT, "subject": subject},
    )


@login_required
def record_detail(request: HttpRequest, public_id: str) -> HttpResponse:
    record = record_get_for_user(user=request.user, public_id=public_id)  # type: ignore[arg-type]
    # What each earlier version said and when it was replaced (by an agency import or by a
    # decision on a case, which the case pages tell).
    versions = list(record.versions.order_by("-version"))
    return render(request, "portal/record_detail.html", {"record": record, "versions": versions})
