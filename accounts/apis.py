"""The citizen account pages under /api/v1/accounts/: registration, e-mail verification and
password reset. No session or token is needed, and none is given: after verifying, a client
signs in as the pages do.

Each view is throttled per client by DRF (fairness), and the calls that send e-mail are counted
per address and per recipient in the shared cache (accounts.throttle) before anything is looked
up. No answer says whether an e-mail address has an account.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.contrib.auth import password_validation
from django.contrib.auth.tokens import default_token_generator
from django.core.exceptions import ValidationError
from django.utils.encoding import force_str
from django.utils.http import urlsafe_base64_decode
from django.utils.translation import gettext as _
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers, status
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.throttling import ScopedRateThrottle
from rest_framework.views import APIView

from accounts import throttle
from accounts.models import User
from accounts.registration import site_url
from accounts.services import (
    citizen_register,
    citizen_verify,
    password_reset_complete,
    password_reset_send,
)


class AccountMessageOutput(serializers.Serializer):
    detail = serializers.CharField()
    code = serializers.CharField(required=False)


class AccountRegisterInput(serializers.Serializer):
    email = serializers.EmailField(max_length=150)
    password = serializers.CharField(
        write_only=True, trim_whitespace=False, help_text="At least 12 characters, not common."
    )
    preferred_language = serializers.ChoiceField(
        choices=[code for code, _name in settings.LANGUAGES]
    )

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        candidate = User(username=attrs["email"], email=attrs["email"])
        try:
            password_validation.validate_password(attrs["password"], candidate)
        except ValidationError as error:
            raise serializers.ValidationError({"password": error.messages}) from error
        return attrs


class AccountVerifyInput(serializers.Serializer):
    token = serializers.CharField(help_text="The token of the link in the verification e-mail.")


class PasswordResetInput(serializers.Serializer):
    email = serializers.EmailField(max_length=254)


class PasswordResetConfirmInput(serializers.Serializer):
    uid = serializers.CharField(help_text="The first part of the link in the e-mail.")
    token = serializers.CharField(help_text="The second part of the link in the e-mail.")
    new_password = serializers.CharField(write_only=True, trim_whitespace=False)


def _throttled(attempt: throttle.Attempt) -> Response:
    minutes = max(1, -(-attempt.retry_after // 60))
    return Response(
        {
            "detail": _("Too many requests. Try again in %(minutes)d minutes.")
            % {"minutes": minutes},
            "code": "throttled",
        },
        status=status.HTTP_429_TOO_MANY_REQUESTS,
        headers={"Retry-After": str(attempt.retry_after)},
    )


_ANSWERS = {
    400: OpenApiResponse(AccountMessageOutput, description="Invalid input"),
    429: OpenApiResponse(AccountMessageOutput, description="Too many requests"),
}


class _PublicAccountApi(APIView):
    authentication_classes: list[Any] = []
    permission_classes = [AllowAny]
    throttle_classes = [ScopedRateThrottle]


class AccountRegisterApi(_PublicAccountApi):
    """Open a citizen account; a link to activate it goes to the e-mail address. The answer is
    the same whether or not the address has an account already."""

    throttle_scope = "registration"

    @extend_schema(
        request=AccountRegisterInput,
        responses={202: AccountMessageOutput, **_ANSWERS},
        auth=[],
    )
    def post(self, request: Request) -> Response:
        data = AccountRegisterInput(data=request.data)
        data.is_valid(raise_exception=True)
        values = data.validated_data
        attempt = throttle.mail_attempt(request, kind="register", email=values["email"])
        if attempt.refused:
            return _throttled(attempt)
        citizen_register(
            email=values["email"],
            password=values["password"],
            preferred_language=values["preferred_language"],
            site_url=site_url(request),
        )
        return Response(
            {
                "detail": _(
                    "We have sent a message to the address you gave. Open the link in it "
                    "within 3 days to activate your account."
                )
            },
            status=status.HTTP_202_ACCEPTED,
        )


class AccountVerifyApi(_PublicAccountApi):
    """Activate an account with the token of its verification link (three days, once)."""

    throttle_scope = "verification"

    @extend_schema(
        request=AccountVerifyInput,
        responses={200: AccountMessageOutput, **_ANSWERS},
        auth=[],
    )
    def post(self, request: Request) -> Response:
        data = AccountVerifyInput(data=request.data)
        data.is_valid(raise_exception=True)
        citizen_verify(token=data.validated_data["token"])  # VerificationInvalid: 400
        return Response({"detail": _("Your account is active. You can log in.")})


class PasswordResetApi(_PublicAccountApi):
    """Send a link to set a new password to the accounts at an e-mail address. The answer is the
    same whether or not the address has an account."""

    throttle_scope = "password_reset"

    @extend_schema(
        request=PasswordResetInput,
        responses={202: AccountMessageOutput, **_ANSWERS},
        auth=[],
    )
    def post(self, request: Request) -> Response:
        data = PasswordResetInput(data=request.data)
        data.is_valid(raise_exception=True)
        email = data.validated_data["email"]
        attempt = throttle.mail_attempt(request, kind="password_reset", email=email)
        if attempt.refused:
            return _throttled(attempt)
        password_reset_send(email=email, site_url=site_url(request))
        return Response(
            {
                "detail": _(
                    "If that address belongs to an account, we have sent a link to set a new "
                    "password to it."
                )
            },
            status=status.HTTP_202_ACCEPTED,
        )


class PasswordResetConfirmApi(_PublicAccountApi):
    """Set a new password with the two parts of a reset link; every session of the account
    ends."""

    throttle_scope = "password_reset"

    @extend_schema(
        request=PasswordResetConfirmInput,
        responses={200: AccountMessageOutput, **_ANSWERS},
        auth=[],
    )
    def post(self, request: Request) -> Response:
        data = PasswordResetConfirmInput(data=request.data)
        data.is_valid(raise_exception=True)
        values = data.validated_data
        user = _reset_user(values["uid"], values["token"])
        if user is None:
            return Response(
                {
                    "detail": _("This link is not valid: it has been used or has expired."),
                    "code": "reset_invalid",
                },
                status=status.HTTP_400_BAD_REQUEST,
            )
        try:
            password_validation.validate_password(values["new_password"], user)
        except ValidationError as error:
            raise serializers.ValidationError({"new_password": error.messages}) from error
        password_reset_complete(user_id=user.pk, password=values["new_password"])
        return Response({"detail": _("Your new password is set. Log in with it.")})


def _reset_user(uid: str, token: str) -> User | None:
    try:
        user_id = int(force_str(urlsafe_base64_decode(uid)))
    except (TypeError, ValueError, OverflowError):
        return None
    user = User.objects.filter(pk=user_id).first()
    if user is None or not default_token_generator.check_token(user, token):
        return None
    return user
