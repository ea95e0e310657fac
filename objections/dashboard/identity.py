"""The identity-check queue: company representatives' authorisation letters waiting for a
caseworker, oldest first, each approved (the representative may then act for the company) or
refused with a reason the representative sees.

Who checks: caseworkers and supervisors of any credit centre, and administrators
(`records.binding_selectors.identity_checker`); everyone else gets a 404. Each opening of a
letter is recorded as a read (`read.identity_letter_opened`).
"""

from __future__ import annotations

import uuid
from typing import Any, cast

from django.contrib import messages
from django.contrib.auth.signals import user_logged_in
from django.dispatch import receiver
from django.http import FileResponse, Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.urls import reverse
from django.utils.translation import gettext as _
from django.views.decorators.http import require_http_methods, require_POST

from accounts.models import User
from objections.dashboard.access import dashboard_page, is_supervisor
from objections.evidence.serving import ATTACHMENT_POLICY, content_disposition
from records.binding import (
    BindingInvalid,
    BindingNotPending,
    binding_decide,
    binding_letter_read_record,
    letter_open,
)
from records.binding_selectors import (
    identity_check_get,
    identity_check_list,
    identity_checker,
)
from scs_cases.errors import Conflict, NotPermitted

ROWS_PER_PAGE = 100
IDENTITY_SESSION_KEY = "scs_identity_checks"


def _user(request: HttpRequest) -> User:
    return cast("User", request.user)


def identity_page(view: Any) -> Any:
    """As `dashboard_page`, and a 404 for anyone who does not check identities."""

    def checked(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if not identity_checker(_user(request)):
            raise Http404("No such page.")
        return cast(HttpResponse, view(request, *args, **kwargs))

    checked.__name__ = view.__name__
    checked.__doc__ = view.__doc__
    return dashboard_page(checked)


@receiver(user_logged_in, dispatch_uid="objections.remember_identity_checks")
def remember_identity_checks(sender: Any, request: Any, user: Any, **kwargs: Any) -> None:
    """Keep in the session whether the navigation offers the identity checks (the page checks
    again on every request)."""
    if request is not None and hasattr(request, "session"):
        request.session[IDENTITY_SESSION_KEY] = identity_checker(user)


@identity_page
@require_http_methods(["GET", "HEAD"])
def identity_queue(request: HttpRequest) -> HttpResponse:
    user = _user(request)
    if not request.session.get(IDENTITY_SESSION_KEY):
        request.session[IDENTITY_SESSION_KEY] = True  # signed in before the flag existed
    checks = list(identity_check_list(user=user)[:ROWS_PER_PAGE])
    return render(
        request,
        "dashboard/identity.html",
        {
            "current": "identity",
            "is_supervisor": is_supervisor(user),
            "checks": checks,
            "limit": ROWS_PER_PAGE,
        },
    )


@identity_page
@require_POST
def identity_decide(request: HttpRequest, public_id: uuid.UUID) -> HttpResponse:
    user = _user(request)
    check = identity_check_get(user=user, public_id=public_id)
    decision = request.POST.get("decision", "")
    if decision not in ("approve", "refuse"):
        messages.error(request, _("Choose to approve or to refuse."))
        return HttpResponseRedirect(reverse("dashboard:identity"))
    try:
        binding_decide(
            public_id=check.public_id,
            actor=user,
            approve=decision == "approve",
            reason=request.POST.get("reason", ""),
        )
    except (BindingInvalid, BindingNotPending, Conflict, NotPermitted) as error:
        messages.error(
            request,
            _("%(name)s: %(reason)s") % {"name": check.claimed_name, "reason": error.message},
        )
    else:
        messages.success(
            request,
            (
                _("%(name)s: approved. The representative may now act for the company.")
                if decision == "approve"
                else _("%(name)s: refused. The representative sees your reason.")
            )
            % {"name": check.claimed_name},
        )
    return HttpResponseRedirect(reverse("dashboard:identity"))


@identity_page
@require_http_methods(["GET", "HEAD"])
def identity_letter(request: HttpRequest, public_id: uuid.UUID) -> HttpResponse:
    """The authorisation letter, always as an attachment of its checked type."""
    user = _user(request)
    check = identity_check_get(user=user, public_id=public_id)
    if not check.letter_stored_name:
        raise Http404("No letter.")
    response = FileResponse(letter_open(check), content_type=check.letter_content_type)
    response["Content-Disposition"] = content_disposition("attachment", check.letter_name)
    response["X-Content-Type-Options"] = "nosniff"
    response["Cache-Control"] = "private, no-store"
    response["Content-Security-Policy"] = ATTACHMENT_POLICY
    try:
        binding_letter_read_record(actor=user, binding=check)
    except BaseException:
        response.close()
        raise
    return cast("HttpResponse", response)
