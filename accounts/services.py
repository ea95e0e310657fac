"""Writes about accounts that change who may do what: roles, agency, staff rights; sign-ins and
the staff second factor.

Each change is audited with what it was before and after, so that a citizen made a caseworker of
another jurisdiction in the admin leaves a trace.
"""

from __future__ import annotations

import math
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import timedelta
from functools import partial
from typing import Any

from django.conf import settings
from django.contrib.auth import password_validation
from django.contrib.auth.models import Group, Permission
from django.contrib.auth.tokens import default_token_generator
from django.core import signing
from django.core.cache import cache
from django.core.exceptions import ValidationError
from django.core.mail import send_mail
from django.db import transaction
from django.db.models import Q
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone, translation
from django.utils.encoding import force_bytes
from django.utils.http import urlsafe_base64_encode
from django.utils.translation import gettext
from django_otp.models import Device
from django_otp.plugins.otp_static.models import StaticDevice, StaticToken
from django_otp.plugins.otp_totp.models import TOTPDevice
from rest_framework.authtoken.models import Token

from accounts import roles
from accounts.models import User
from audit.services import audit_record, audited
from records.models import Agency
from scs_cases.errors import DomainError


def _membership(user: User) -> dict[str, Any]:
    return {
        "roles": sorted(user.groups.values_list("name", flat=True)),
        "agency": user.agency_id,
        "is_staff": user.is_staff,
        "is_superuser": user.is_superuser,
        "is_active": user.is_active,
    }


@audited()
def user_membership_set(
    *,
    user: User,
    actor: User | None,
    groups: Iterable[Group],
    agency: Agency | None,
    is_staff: bool,
    is_superuser: bool,
    is_active: bool,
) -> bool:
    """Set a user's roles (groups), agency and staff rights. Returns False when nothing changed."""
    row = User.objects.select_for_update().get(pk=user.pk)
    before = _membership(row)
    row.agency = agency
    row.is_staff = is_staff
    row.is_superuser = is_superuser
    row.is_active = is_active
    row.save(update_fields=["agency", "is_staff", "is_superuser", "is_active"])
    row.groups.set(list(groups))
    after = _membership(row)
    if after == before:
        return False
    for name in ("agency", "is_staff", "is_superuser", "is_active"):
        setattr(user, name, getattr(row, name))
    user.__dict__.pop("_role_names", None)
    audit_record(
        actor=actor,
        action="user.membership_set",
        target=row,
        data={"before": before, "after": after},
    )
    if row.is_active and row.agency_id is not None and roles.CASEWORKER in after["roles"]:
        # Cases routed while the agency had no caseworker are given out once one is there.
        agency_id = row.agency_id
        transaction.on_commit(lambda: _unassigned_assign_queue(agency_id))
    return True


def _unassigned_assign_queue(agency_id: int) -> None:
    from objections.tasks import cases_unassigned_assign_task

    cases_unassigned_assign_task.delay(agency_id=agency_id)


# Name and e-mail are personal data: their changes are audited by field name, without values.
_CONTACT_FIELDS = ("first_name", "last_name", "email")
_ACCOUNT_FIELDS = ("username", "preferred_language")


def _invalid(error: ValidationError) -> DomainError:
    messages = [message for field in error.message_dict.values() for message in field]
    return DomainError("; ".join(messages), errors=error.message_dict)


@audited()
def user_create(
    *,
    actor: User | None,
    username: str,
    password: str | None,
    groups: Iterable[Group] = (),
    agency: Agency | None = None,
    is_staff: bool = False,
    is_superuser: bool = False,
    is_active: bool = True,
    first_name: str = "",
    last_name: str = "",
    email: str = "",
    preferred_language: str = "zh-hans",
) -> User:
    """Add an account with its roles, agency and staff rights. `password` None leaves it without
    a usable password. Audited with the membership and whether a password was set, never the
    password itself."""
    user = User(
        username=username,
        agency=agency,
        is_staff=is_staff,
        is_superuser=is_superuser,
        is_active=is_active,
        first_name=first_name,
        last_name=last_name,
        email=email,
        preferred_language=preferred_language,
    )
    if password is None:
        user.set_unusable_password()
    else:
        user.set_password(password)
    try:
        user.full_clean()
    except ValidationError as error:
        raise _invalid(error) from error
    user.save()
    user.groups.set(list(groups))
    membership = _membership(user)
    audit_record(
        actor=actor,
        action="user.created",
        target=user,
        data={
            "before": None,
            "after": {
                **membership,
                "username": user.username,
                "preferred_language": user.preferred_language,
                "password_usable": password is not None,
            },
            "contact_set": [name for name in _CONTACT_FIELDS if getattr(user, name)],
        },
    )
    if user.is_active and user.agency_id is not None and roles.CASEWORKER in membership["roles"]:
        # As when a caseworker joins through user_membership_set.
        agency_id = user.agency_id
        transaction.on_commit(lambda: _unassigned_assign_queue(agency_id))
    return user


@audited()
def user_details_set(
    *,
    user_id: int,
    actor: User | None,
    username: str,
    first_name: str,
    last_name: str,
    email: str,
    preferred_language: str,
) -> bool:
    """Change a user's name, e-mail, username and language (not their rights: see
    `user_membership_set`). Returns False when nothing changed."""
    row = User.objects.select_for_update().get(pk=user_id)
    values = {
        "username": username,
        "first_name": first_name,
        "last_name": last_name,
        "email": email,
        "preferred_language": preferred_language,
    }
    changed = sorted(name for name, value in values.items() if getattr(row, name) != value)
    if not changed:
        return False
    before = {name: getattr(row, name) for name in _ACCOUNT_FIELDS if name in changed}
    for name in changed:
        setattr(row, name, values[name])
    try:
        row.full_clean(exclude=["password"])
    except ValidationError as error:
        raise _invalid(error) from error
    row.save(update_fields=changed)
    audit_record(
        actor=actor,
        action="user.details_set",
        target=row,
        data={
            "before": before,
            "after": {name: getattr(row, name) for name in before},
            "contact_changed": [name for name in _CONTACT_FIELDS if name in changed],
        },
    )
    return True


@audited()
def user_password_set(*, user_id: int, actor: User | None, password: str | None) -> None:
    """Set a user's password, or (None) take away password sign-in. The event says which, and
    never holds the password."""
    row = User.objects.select_for_update().get(pk=user_id)
    before = row.has_usable_password()
    if password is None:
        row.set_unusable_password()
    else:
        row.set_password(password)
    row.save(update_fields=["password"])
    audit_record(
        actor=actor,
        action="user.password_set",
        target=row,
        data={"before": {"usable": before}, "after": {"usable": password is not None}},
    )


def _permission_names(group: Group) -> list[str]:
    return sorted(
        f"{app}.{codename}"
        for app, codename in group.permissions.values_list("content_type__app_label", "codename")
    )


@audited()
def role_permissions_set(
    *, group_id: int, permissions: Iterable[Permission], actor: User | None
) -> bool:
    """Set the permissions a role (group) gives. Returns False when nothing changed."""
    group = Group.objects.select_for_update().get(pk=group_id)
    before = _permission_names(group)
    group.permissions.set(list(permissions))
    after = _permission_names(group)
    if after == before:
        return False
    audit_record(
        actor=actor,
        action="role.permissions_set",
        target=group,
        data={
            "role": group.name,
            "before": sorted(set(before) - set(after)),
            "after": sorted(set(after) - set(before)),
        },
    )
    return True


@audited()
def api_token_issue(*, user_id: int, actor: User | None) -> str:
    """Give an agency system its API token, replacing any it had; returns the key, to be shown
    once to whoever issued it. The event names the account, never the key."""
    user = User.objects.select_for_update().get(pk=user_id)
    if not roles.has_role(user, roles.AGENCY_SYSTEM) or user.agency_id is None:
        raise DomainError(
            "API tokens are for agency systems: an account with that role and an agency."
        )
    replaced, _ = Token.objects.filter(user=user).delete()
    key: str = Token.objects.create(user=user).key
    audit_record(
        actor=actor,
        action="user.api_token_issued",
        target=user,
        data={"agency": user.agency_id, "replaced": bool(replaced)},
    )
    return key


@audited()
def api_token_revoke(*, user_id: int, actor: User | None) -> bool:
    """Withdraw an account's API token at once. Returns False when it had none."""
    user = User.objects.select_for_update().get(pk=user_id)
    deleted, _ = Token.objects.filter(user=user).delete()
    if not deleted:
        return False
    audit_record(actor=actor, action="user.api_token_revoked", target=user, data={})
    return True


@audited()
def auth_event_record(*, action: str, user: User | None, username: str = "") -> None:
    """A sign-in, a failed sign-in or a sign-out. No password or other credential is kept."""
    audit_record(
        actor=user,
        action=action,
        target=user,
        target_type="accounts.user",
        data={"username": username[:150]} if username else {},
    )


# ---------------------------------------------------------------------------------------------
# The staff second factor (TOTP with recovery codes, through django-otp)

# Roles whose sign-in needs a second factor, besides anyone with Django's `is_staff` (the admin).
SECOND_FACTOR_ROLES = frozenset(
    {roles.CASEWORKER, roles.SUPERVISOR, roles.ADMINISTRATOR, roles.AUDITOR}
)
RECOVERY_CODE_COUNT = 10
# Wrong codes one user may enter in a window, counted in the shared cache so that every web
# process sees the same count; django-otp's own delay per device (1, 2, 4 ... seconds) comes first.
SECOND_FACTOR_FAILURE_LIMIT = 5
SECOND_FACTOR_FAILURE_WINDOW_SECONDS = 15 * 60
TOTP_DIGITS = 6  # django-otp's default, which our devices keep; recovery codes are 8 letters


class SecondFactorLocked(Exception):
    """Too many wrong codes for this user in the window: no code is tried until it passes."""


class SecondFactorNotPending(Exception):
    """A confirmation without an enrolment under way, or an enrolment with a confirmed device."""


@dataclass(frozen=True)
class SecondFactorCheck:
    """What became of one code."""

    device: Device | None = None  # the device that accepted it; None for a refused code
    retry_after: int = 0  # seconds django-otp asks to wait after a wrong code (none was tried)
    recovery_codes: tuple[str, ...] = ()  # the new recovery codes, when enrolment completed
    recovery_codes_left: int | None = None  # after a recovery code was used


def second_factor_required(user: User) -> bool:
    """Whether this user signs in with a second factor: staff roles and the admin's staff."""
    if not user.is_authenticated:
        return False
    return user.is_staff or bool(roles.role_names(user) & SECOND_FACTOR_ROLES)


def second_factor_enrolled(user: User) -> bool:
    return bool(TOTPDevice.objects.filter(user=user, confirmed=True).exists())


def second_factor_failures_key(user_id: int, at: float) -> str:
    """The cache key counting a user's wrong codes in the window holding the moment `at`.

    Windows are fixed (by the application's clock, which tests move), so the count needs no
    read-modify-write: a lock lasts until its window ends, at most the window's length.
    """
    window = int(at // SECOND_FACTOR_FAILURE_WINDOW_SECONDS)
    return f"accounts:second-factor-failures:{user_id}:{window}"


def second_factor_locked(*, user: User) -> bool:
    key = second_factor_failures_key(user.pk, timezone.now().timestamp())
    return int(cache.get(key, 0)) >= SECOND_FACTOR_FAILURE_LIMIT


def _failure_count(user: User) -> int:
    """One more wrong code in the user's current window."""
    key = second_factor_failures_key(user.pk, timezone.now().timestamp())
    cache.add(key, 0, timeout=SECOND_FACTOR_FAILURE_WINDOW_SECONDS)
    try:
        return int(cache.incr(key))
    except ValueError:  # evicted between add and incr
        cache.set(key, 1, timeout=SECOND_FACTOR_FAILURE_WINDOW_SECONDS)
        return 1


def _retry_after(device: Device) -> int:
    allowed, details = device.verify_is_allowed()
    if allowed:
        return 0
    locked_until = (details or {}).get("locked_until")
    if locked_until is None:
        return 1
    return max(1, math.ceil((locked_until - timezone.now()).total_seconds()))


def _refused(*, user: User, stage: str) -> SecondFactorCheck:
    failures = _failure_count(user)
    audit_record(
        actor=user,
        action="auth.second_factor_failed",
        target=user,
        data={"stage": stage, "failures": failures},
    )
    return SecondFactorCheck()


def _recovery_codes_replace(user: User) -> tuple[str, ...]:
    """New recovery codes in place of the old. The device is kept: a session verified with a
    recovery code stays verified."""
    device = StaticDevice.objects.filter(user=user).order_by("pk").first()
    if device is None:
        device = StaticDevice.objects.create(user=user, name="recovery codes", confirmed=True)
    device.token_set.all().delete()
    codes: set[str] = set()
    while len(codes) < RECOVERY_CODE_COUNT:
        codes.add(StaticToken.random_token())
    StaticToken.objects.bulk_create(StaticToken(device=device, token=code) for code in codes)
    return tuple(sorted(codes))


@audited()
def second_factor_enrolment_start(*, user: User) -> TOTPDevice:
    """The unconfirmed TOTP device the user enrols with: the pending one, or a new one."""
    User.objects.select_for_update().get(pk=user.pk)  # one pending device, even for two tabs
    if second_factor_enrolled(user):
        raise SecondFactorNotPending("the user already has a confirmed device")
    pending: TOTPDevice | None = (
        TOTPDevice.objects.filter(user=user, confirmed=False).order_by("-pk").first()
    )
    if pending is not None:
        return pending
    device: TOTPDevice = TOTPDevice.objects.create(user=user, name="authenticator", confirmed=False)
    audit_record(
        actor=user,
        action="auth.second_factor_enrolment_started",
        target=user,
        data={"device": device.pk},
    )
    return device


@audited()
def second_factor_enrolment_confirm(*, user: User, code: str) -> SecondFactorCheck:
    """Confirm the pending device with its first valid code and give out recovery codes.

    A wrong code is audited and counted, and confirms nothing. Raises SecondFactorLocked past the
    limit of wrong codes, SecondFactorNotPending without an enrolment under way.
    """
    if second_factor_locked(user=user):
        raise SecondFactorLocked
    User.objects.select_for_update().get(pk=user.pk)
    if second_factor_enrolled(user):
        raise SecondFactorNotPending("the user already has a confirmed device")
    device = (
        TOTPDevice.objects.select_for_update()
        .filter(user=user, confirmed=False)
        .order_by("-pk")
        .first()
    )
    if device is None:
        raise SecondFactorNotPending("no enrolment under way")
    retry_after = _retry_after(device)
    if retry_after:
        return SecondFactorCheck(retry_after=retry_after)
    if not (code.isdigit() and device.verify_token(code)):
        if not code.isdigit():
            device.throttle_increment()
        return _refused(user=user, stage="enrolment")
    device.confirmed = True
    device.save(update_fields=["confirmed"])
    TOTPDevice.objects.filter(user=user, confirmed=False).delete()
    codes = _recovery_codes_replace(user)
    audit_record(
        actor=user,
        action="auth.second_factor_enrolled",
        target=user,
        data={"device": device.pk, "recovery_codes": len(codes)},
    )
    return SecondFactorCheck(device=device, recovery_codes=codes)


@audited()
def second_factor_verify(*, user: User, code: str) -> SecondFactorCheck:
    """Check a code from the user's authenticator (all digits) or a recovery code (consumed).

    A wrong code is audited and counted. Raises SecondFactorLocked past the limit of wrong codes.
    """
    if second_factor_locked(user=user):
        raise SecondFactorLocked
    totp = code.isdigit() and len(code) == TOTP_DIGITS
    model: type[Device] = TOTPDevice if totp else StaticDevice
    devices = list(
        model.objects.select_for_update().filter(user=user, confirmed=True).order_by("pk")
    )
    allowed = [device for device in devices if not _retry_after(device)]
    if devices and not allowed:
        return SecondFactorCheck(retry_after=min(_retry_after(device) for device in devices))
    for device in allowed:
        if not device.verify_token(code):
            continue
        if totp:
            audit_record(
                actor=user,
                action="auth.second_factor_verified",
                target=user,
                data={"device": device.pk, "method": "totp"},
            )
            return SecondFactorCheck(device=device)
        left = StaticToken.objects.filter(device=device).count()
        audit_record(
            actor=user,
            action="auth.recovery_code_used",
            target=user,
            data={"device": device.pk, "recovery_codes_left": left},
        )
        audit_record(
            actor=user,
            action="auth.second_factor_verified",
            target=user,
            data={"device": device.pk, "method": "recovery_code"},
        )
        return SecondFactorCheck(device=device, recovery_codes_left=left)
    return _refused(user=user, stage="verification")


@audited()
def recovery_codes_regenerate(*, user: User) -> tuple[str, ...]:
    """New recovery codes for an enrolled user; the old ones stop working."""
    User.objects.select_for_update().get(pk=user.pk)
    if not second_factor_enrolled(user):
        raise SecondFactorNotPending("no confirmed device")
    codes = _recovery_codes_replace(user)
    audit_record(
        actor=user,
        action="auth.recovery_codes_regenerated",
        target=user,
        data={"recovery_codes": len(codes)},
    )
    return codes


@audited()
def second_factor_reset(*, user: User, actor: User) -> bool:
    """Remove a user's authenticator app and recovery codes (a lost phone), so that their next
    sign-in enrols afresh. Returns False when they had none."""
    User.objects.select_for_update().get(pk=user.pk)
    totp_devices = sorted(TOTPDevice.objects.filter(user=user).values_list("pk", flat=True))
    static_devices = sorted(StaticDevice.objects.filter(user=user).values_list("pk", flat=True))
    if not totp_devices and not static_devices:
        return False
    TOTPDevice.objects.filter(pk__in=totp_devices).delete()
    StaticDevice.objects.filter(pk__in=static_devices).delete()  # their codes with them
    audit_record(
        actor=actor,
        action="auth.second_factor_reset",
        target=user,
        data={"totp_devices": totp_devices, "recovery_devices": static_devices},
    )
    return True


@audited()
def session_end_record(*, user: User, reason: str) -> None:
    """A session ended by its time limit ("idle" or "absolute"), before it is logged out."""
    audit_record(actor=user, action="auth.session_expired", target=user, data={"reason": reason})


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
