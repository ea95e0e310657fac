"""Citizens' accounts: registration with a verified e-mail address, password reset, and the
sign-in limits' audit."""

from __future__ import annotations

import unicodedata
from datetime import timedelta
from functools import partial
from typing import Any

from django.conf import settings
from django.contrib.auth import password_validation
from django.contrib.auth.models import Group
from django.contrib.auth.tokens import default_token_generator
from django.core import signing
from django.core.exceptions import ValidationError
from django.core.mail import send_mail
from django.db import transaction
from django.db.models import Q
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import translation
from django.utils.encoding import force_bytes
from django.utils.http import urlsafe_base64_encode
from django.utils.translation import gettext

from accounts import roles
from accounts.models import User
from accounts.services.membership import user_create
from audit.services import audit_record, audited
from scs_cases.errors import DomainError

# ---------------------------------------------------------------------------------------------
# Citizen accounts: registration with e-mail verification, password reset, sign-in throttling.
# The pages and the API (accounts.registration, accounts.apis) call these; they never say whether
# an address has an account: the mail that goes out does.

EMAIL_VERIFICATION_MAX_AGE = timedelta(days=3)
_VERIFICATION_SALT = "accounts.email-verification"


class VerificationInvalid(DomainError):
    code = "verification_invalid"


def email_normalise(email: str) -> str:
    """The one form an e-mail address is kept and compared in (it is the citizen's username)."""
    return unicodedata.normalize("NFKC", email).strip().lower()


def email_verification_token(user: User) -> str:
    """A signed, timestamped token naming the account and its address (valid three days)."""
    return signing.dumps({"user": user.pk, "email": user.email}, salt=_VERIFICATION_SALT)


def email_verification_user_id(token: str) -> int:
    """The account a token names; raises VerificationInvalid when it is tampered or expired."""
    try:
        value = signing.loads(token, salt=_VERIFICATION_SALT, max_age=EMAIL_VERIFICATION_MAX_AGE)
    except signing.SignatureExpired as error:
        raise VerificationInvalid(gettext("This link has expired."), reason="expired") from error
    except signing.BadSignature as error:
        raise VerificationInvalid(gettext("This link is not valid."), reason="invalid") from error
    user = User.objects.filter(
        pk=value.get("user"), email=value.get("email"), is_active=False, last_login__isnull=True
    ).first()
    if user is None:  # verified already, deactivated by an administrator, or its address changed
        raise VerificationInvalid(gettext("This link is not valid."), reason="used")
    return user.pk


def _account_mail(*, user_id: int, template: str, context: dict[str, Any]) -> None:
    """Send one of the account e-mails (templates/email/account_<template>_*.txt) in the user's
    language."""
    user = User.objects.get(pk=user_id)
    with translation.override(user.preferred_language or settings.LANGUAGE_CODE):
        values = {"person": user, **context}
        subject = render_to_string(f"email/account_{template}_subject.txt", values).strip()
        body = render_to_string(f"email/account_{template}_body.txt", values)
    send_mail(subject, body, None, [user.email])


def _verification_mail(user: User, site_url: str) -> None:
    path = reverse("verify_email", kwargs={"token": email_verification_token(user)})
    context = {"link": f"{site_url}{path}", "days": EMAIL_VERIFICATION_MAX_AGE.days}
    transaction.on_commit(
        partial(_account_mail, user_id=user.pk, template="verify", context=context)
    )


@audited()
def citizen_register(
    *, email: str, password: str, preferred_language: str, site_url: str
) -> User | None:
    """Open an inactive citizen account for `email` (its username too) and send it a link to
    verify the address. When the address belongs to an account already, nothing is created and
    that account is sent a notice instead (or, unverified, its link again); None is returned, and
    the caller answers as it would for a new account. `site_url` is the scheme and host the
    links point at."""
    email = email_normalise(email)
    existing = (
        User.objects.filter(Q(username__iexact=email) | Q(email__iexact=email))
        .order_by("pk")
        .first()
    )
    if existing is None:
        try:
            password_validation.validate_password(password, User(username=email, email=email))
        except ValidationError as error:
            raise DomainError(
                "; ".join(error.messages), errors={"password": error.messages}
            ) from error
        citizens, _created = Group.objects.get_or_create(name=roles.CITIZEN)
        user = user_create(
            actor=None,
            username=email,
            password=password,
            groups=[citizens],
            is_active=False,
            email=email,
            preferred_language=preferred_language,
        )
        audit_record(
            actor=user,
            action="auth.registered",
            target=user,
            data={"preferred_language": user.preferred_language},
        )
        _verification_mail(user, site_url)
        return user
    if not existing.is_active and existing.last_login is None and existing.email:
        _verification_mail(existing, site_url)
        resent = True
    else:
        context = {
            "login_link": f"{site_url}{reverse('login')}",
            "reset_link": f"{site_url}{reverse('password_reset')}",
        }
        transaction.on_commit(
            partial(_account_mail, user_id=existing.pk, template="exists", context=context)
        )
        resent = False
    audit_record(
        actor=None,
        action="auth.registration_repeated",
        target=existing,
        data={"verification_resent": resent},
    )
    return None


@audited()
def citizen_verify(*, token: str) -> User:
    """Activate the account a verification token names. Raises VerificationInvalid for a
    tampered, expired or used token, changing nothing."""
    user_id = email_verification_user_id(token)
    user = User.objects.select_for_update().get(pk=user_id)
    if user.is_active or user.last_login is not None:  # verified by another request meanwhile
        raise VerificationInvalid(gettext("This link is not valid."), reason="used")
    user.is_active = True
    user.save(update_fields=["is_active"])
    audit_record(actor=user, action="auth.email_verified", target=user, data={})
    return user


@audited()
def password_reset_send(*, email: str, site_url: str) -> int:
    """Send a password-reset link to each active account with a usable password at `email`
    (none, silently, for an unknown address). Returns how many were sent; the caller must not
    tell the requester."""
    email = email_normalise(email)
    sent = 0
    for user in User.objects.filter(email__iexact=email, is_active=True).order_by("pk"):
        if not user.has_usable_password():
            continue
        path = reverse(
            "password_reset_confirm",
            kwargs={
                "uidb64": urlsafe_base64_encode(force_bytes(user.pk)),
                "token": default_token_generator.make_token(user),
            },
        )
        context = {
            "link": f"{site_url}{path}",
            "days": max(1, settings.PASSWORD_RESET_TIMEOUT // 86400),
        }
        audit_record(actor=None, action="auth.password_reset_requested", target=user, data={})
        transaction.on_commit(
            partial(_account_mail, user_id=user.pk, template="password_reset", context=context)
        )
        sent += 1
    return sent


@audited()
def password_reset_complete(*, user_id: int, password: str) -> None:
    """Set the new password of a reset (the caller has checked the token and the validators).
    Every session of the user ends: each holds a hash of the old password."""
    user = User.objects.select_for_update().get(pk=user_id)
    user.set_password(password)
    user.save(update_fields=["password"])
    audit_record(actor=user, action="auth.password_reset", target=user, data={})


@audited()
def login_throttled_record(*, username: str, limit: str) -> None:
    """Sign-in was refused before any password check, once per limit and window: `limit` is
    "account" or "address". Only the name that was tried is kept, never the address."""
    audit_record(
        actor=None,
        action="auth.login_throttled",
        target_type="accounts.user",
        data={"username": username[:150], "limit": limit},
    )
