"""Citizen account pages: registration, e-mail verification and password reset.

The pages are thin: every write is a service in accounts.services, which audits it; requests that
send e-mail are throttled per address and per recipient (accounts.throttle) before anything is
looked up. No answer says whether an e-mail address has an account.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.contrib.auth import login
from django.contrib.auth import views as auth_views
from django.contrib.auth.forms import PasswordResetForm
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.urls import reverse, reverse_lazy
from django.utils.translation import get_language
from django.views.decorators.cache import never_cache
from django.views.decorators.debug import sensitive_post_parameters
from django.views.decorators.http import require_http_methods

from accounts import throttle
from accounts.forms import RegistrationForm
from accounts.services import (
    VerificationInvalid,
    citizen_register,
    citizen_verify,
    email_verification_user_id,
    password_reset_complete,
    password_reset_send,
)

# The backend that signs a just-verified citizen in (they gave no password on this request).
_BACKEND = "scs_cases.auth.AuditorsReadOnlyBackend"


def site_url(request: HttpRequest) -> str:
    """The scheme and host that links in e-mails point at: this request's (ALLOWED_HOSTS)."""
    return f"{request.scheme}://{request.get_host()}"


def throttled(
    request: HttpRequest, attempt: throttle.Attempt, *, login: bool = False
) -> HttpResponse:
    """The answer to a refused attempt (a sign-in when `login`): 429 with how long to wait."""
    minutes = max(1, -(-attempt.retry_after // 60))
    response = render(
        request,
        "registration/throttled.html",
        {"minutes": minutes, "login": login},
        status=429,
    )
    response["Retry-After"] = str(attempt.retry_after)
    return response


def _language(request: HttpRequest) -> str:
    current = get_language() or settings.LANGUAGE_CODE
    codes = [code for code, _name in settings.LANGUAGES]
    return current if current in codes else settings.LANGUAGE_CODE


@never_cache
@sensitive_post_parameters("password1", "password2")
@require_http_methods(["GET", "POST"])
def register(request: HttpRequest) -> HttpResponse:
    if request.user.is_authenticated:
        return HttpResponseRedirect(reverse(settings.LOGIN_REDIRECT_URL))
    form = RegistrationForm(
        request.POST or None, initial={"preferred_language": _language(request)}
    )
    if request.method == "POST" and form.is_valid():
        attempt = throttle.mail_attempt(request, kind="register", email=form.cleaned_data["email"])
        if attempt.refused:
            return throttled(request, attempt)
        citizen_register(
            email=form.cleaned_data["email"],
            password=form.cleaned_data["password1"],
            preferred_language=form.cleaned_data["preferred_language"],
            site_url=site_url(request),
        )
        return HttpResponseRedirect(reverse("register_done"))
    return render(request, "accounts/register.html", {"form": form})


@require_http_methods(["GET"])
def register_done(request: HttpRequest) -> HttpResponse:
    return render(request, "accounts/register_done.html")


@never_cache
@require_http_methods(["GET", "POST"])
def verify(request: HttpRequest, token: str) -> HttpResponse:
    """GET shows a button (so that a mail scanner fetching the link activates nothing); POST
    activates the account and signs the citizen in, in a new session."""
    try:
        if request.method == "POST":
            user = citizen_verify(token=token)
        else:
            email_verification_user_id(token)
            return render(request, "accounts/verify.html", {"token": token})
    except VerificationInvalid as error:
        return render(
            request,
            "accounts/verify_invalid.html",
            {"message": error.message, "expired": error.extra.get("reason") == "expired"},
            status=400,
        )
    login(request, user, backend=_BACKEND)  # a new session key
    return HttpResponseRedirect(reverse(settings.LOGIN_REDIRECT_URL))


class PasswordResetView(auth_views.PasswordResetView):
    """Django's page; the mail goes out through password_reset_send (audited, in the user's
    language), after the request is counted."""

    template_name = "registration/password_reset_form.html"

    def form_valid(self, form: PasswordResetForm) -> HttpResponse:
        email = form.cleaned_data["email"]
        attempt = throttle.mail_attempt(self.request, kind="password_reset", email=email)
        if attempt.refused:
            return throttled(self.request, attempt)
        password_reset_send(email=email, site_url=site_url(self.request))
        return HttpResponseRedirect(self.get_success_url())


class PasswordResetConfirmView(auth_views.PasswordResetConfirmView):
    """Django's page (the token moves from the URL into the session first); the new password is
    set by password_reset_complete, which ends every session of the user. No sign-in follows."""

    success_url = reverse_lazy("password_reset_complete")

    def form_valid(self, form: Any) -> HttpResponse:
        password_reset_complete(user_id=form.user.pk, password=form.cleaned_data["new_password1"])
        del self.request.session[auth_views.INTERNAL_RESET_SESSION_TOKEN]
        return HttpResponseRedirect(self.get_success_url())
