"""Sign-in pages: the password login that sends staff on to the second factor, enrolment of an
authenticator app (TOTP) with recovery codes, verification, and new recovery codes.

The pages are thin: every write is a service in accounts.services, which audits it.
"""

from __future__ import annotations

import base64
from typing import Any, cast

import django_otp
import qrcode
import qrcode.image.svg
from django.conf import settings
from django.contrib import messages
from django.contrib.auth import REDIRECT_FIELD_NAME
from django.contrib.auth.decorators import login_required
from django.contrib.auth.forms import AuthenticationForm
from django.contrib.auth.views import LoginView
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render, resolve_url
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme, urlencode
from django.utils.safestring import SafeString, mark_safe
from django.utils.translation import gettext as _
from django.utils.translation import ngettext
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_http_methods
from django_otp.decorators import otp_required
from django_otp.plugins.otp_totp.models import TOTPDevice

from accounts import registration, roles, throttle
from accounts.forms import SecondFactorCodeForm, SignInForm
from accounts.models import User
from accounts.services import (
    SECOND_FACTOR_FAILURE_WINDOW_SECONDS,
    SECOND_FACTOR_ROLES,
    SecondFactorCheck,
    SecondFactorLocked,
    SecondFactorNotPending,
    login_throttled_record,
    recovery_codes_regenerate,
    second_factor_enrolled,
    second_factor_enrolment_confirm,
    second_factor_enrolment_start,
    second_factor_locked,
    second_factor_required,
    second_factor_verify,
)


class SignInView(LoginView):
    """Django's login; staff then go to the second factor, carrying where they were going."""

    redirect_authenticated_user = True
    authentication_form = SignInForm

    def post(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        # Counted before the password is checked, so that a locked account cannot be probed.
        username, password = request.POST.get("username", ""), request.POST.get("password", "")
        if username and password:
            self.attempt = throttle.login_attempt(request, username=username)
            if self.attempt.refused:
                if self.attempt.engaged:
                    login_throttled_record(username=username, limit=self.attempt.refused)
                return registration.throttled(request, self.attempt, login=True)
        return super().post(request, *args, **kwargs)

    def form_valid(self, form: AuthenticationForm) -> HttpResponse:
        attempt: throttle.Attempt | None = getattr(self, "attempt", None)
        if attempt is not None:
            throttle.login_succeeded(attempt)
        return super().form_valid(form)

    def get_success_url(self) -> str:
        user = cast("User", self.request.user)
        if second_factor_required(user) and not _verified(user):
            url = reverse("second_factor")
            wanted = self.get_redirect_url()
            return f"{url}?{urlencode({REDIRECT_FIELD_NAME: wanted})}" if wanted else url
        return super().get_success_url()

    def get_default_redirect_url(self) -> str:
        # Staff who passed the second factor (opening the login page again) go to their queue.
        return _home_url(cast("User", self.request.user))


def _verified(user: Any) -> bool:
    is_verified = getattr(user, "is_verified", None)
    return bool(is_verified and is_verified())


def _next_url(request: HttpRequest, user: User) -> str:
    """The page to go on to: a safe `next`, or the user's home page."""
    wanted = request.POST.get(REDIRECT_FIELD_NAME) or request.GET.get(REDIRECT_FIELD_NAME, "")
    if wanted and url_has_allowed_host_and_scheme(
        wanted, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        return wanted
    return _home_url(user)


def _home_url(user: User) -> str:
    if roles.role_names(user) & SECOND_FACTOR_ROLES:
        return reverse("dashboard:queue")
    if user.is_staff:
        return reverse("admin:index")
    return resolve_url(settings.LOGIN_REDIRECT_URL)


def _qr_svg(data: str) -> SafeString:
    """The otpauth URI drawn as inline SVG (paths only: no raster library, no text from `data`)."""
    image = qrcode.make(data, image_factory=qrcode.image.svg.SvgPathImage)
    return mark_safe(image.to_string(encoding="unicode"))  # noqa: S308 (drawn by qrcode)


def _secret_text(device: TOTPDevice) -> str:
    """The key in base32, in groups of four, for typing into an app that cannot scan."""
    secret = base64.b32encode(device.bin_key).decode("ascii").rstrip("=")
    return " ".join(secret[i : i + 4] for i in range(0, len(secret), 4))


def _wrong_code(form: SecondFactorCodeForm, check: SecondFactorCheck) -> None:
    if check.retry_after:
        message = ngettext(
            "Too soon after a wrong code: wait %(seconds)d second and enter the code again.",
            "Too soon after a wrong code: wait %(seconds)d seconds and enter the code again.",
            check.retry_after,
        ) % {"seconds": check.retry_after}
    else:
        message = _("That code is not right. Check the code and enter it again.")
    form.add_error("code", message)


def _locked(request: HttpRequest) -> HttpResponse:
    minutes = SECOND_FACTOR_FAILURE_WINDOW_SECONDS // 60
    return render(request, "accounts/second_factor_locked.html", {"minutes": minutes}, status=429)


def _signed_in(request: HttpRequest, check: SecondFactorCheck) -> None:
    # A new session key for the session that now passed the second factor.
    request.session.cycle_key()
    django_otp.login(request, check.device)


@never_cache
@login_required
@require_http_methods(["GET", "POST"])
def second_factor(request: HttpRequest) -> HttpResponse:
    """Enrolment for a user without an authenticator app, otherwise verification."""
    user = cast("User", request.user)
    if _verified(user) or not second_factor_required(user):
        return HttpResponseRedirect(_next_url(request, user))
    if second_factor_locked(user=user):
        return _locked(request)
    if second_factor_enrolled(user):
        return _verify(request, user)
    return _enrol(request, user)


def _verify(request: HttpRequest, user: User) -> HttpResponse:
    form = SecondFactorCodeForm(request.POST or None, recovery_codes=True)
    if request.method == "POST" and form.is_valid():
        try:
            check = second_factor_verify(user=user, code=form.cleaned_data["code"])
        except SecondFactorLocked:
            return _locked(request)
        if check.device is not None:
            _signed_in(request, check)
            if check.recovery_codes_left is not None:
                messages.warning(
                    request,
                    ngettext(
                        "You used a recovery code. %(count)d recovery code is left.",
                        "You used a recovery code. %(count)d recovery codes are left.",
                        check.recovery_codes_left,
                    )
                    % {"count": check.recovery_codes_left},
                )
            return HttpResponseRedirect(_next_url(request, user))
        _wrong_code(form, check)
        if second_factor_locked(user=user):
            return _locked(request)
    return render(
        request, "accounts/second_factor_verify.html", {"form": form, **_next_context(request)}
    )


def _enrol(request: HttpRequest, user: User) -> HttpResponse:
    form = SecondFactorCodeForm(request.POST or None, recovery_codes=False)
    if request.method == "POST" and form.is_valid():
        try:
            check = second_factor_enrolment_confirm(user=user, code=form.cleaned_data["code"])
        except SecondFactorLocked:
            return _locked(request)
        except SecondFactorNotPending:
            return HttpResponseRedirect(request.get_full_path())
        if check.device is not None:
            _signed_in(request, check)
            return render(
                request,
                "accounts/recovery_codes.html",
                {
                    "codes": check.recovery_codes,
                    "enrolled": True,
                    "continue_url": _next_url(request, user),
                },
            )
        _wrong_code(form, check)
        if second_factor_locked(user=user):
            return _locked(request)
    try:
        device = second_factor_enrolment_start(user=user)
    except SecondFactorNotPending:  # confirmed in another tab meanwhile
        return HttpResponseRedirect(request.get_full_path())
    return render(
        request,
        "accounts/second_factor_enrol.html",
        {
            "form": form,
            "qr_svg": _qr_svg(device.config_url),
            "secret": _secret_text(device),
            **_next_context(request),
        },
    )


def _next_context(request: HttpRequest) -> dict[str, str]:
    wanted = request.POST.get(REDIRECT_FIELD_NAME) or request.GET.get(REDIRECT_FIELD_NAME, "")
    return {"next": wanted}


@never_cache
@login_required
@otp_required
@require_http_methods(["GET", "POST"])
def recovery_codes(request: HttpRequest) -> HttpResponse:
    """New recovery codes, shown once; the old ones stop working."""
    user = cast("User", request.user)
    if request.method == "POST":
        codes = recovery_codes_regenerate(user=user)
        return render(
            request,
            "accounts/recovery_codes.html",
            {"codes": codes, "enrolled": False, "continue_url": _next_url(request, user)},
        )
    return render(request, "accounts/recovery_codes_regenerate.html")
