"""The staff second factor: an authenticator app (TOTP) and recovery codes, enrolled, checked,
renewed and reset, each step audited without a secret or a code."""

from __future__ import annotations

import math
from dataclasses import dataclass

from django.core.cache import cache
from django.utils import timezone
from django_otp.models import Device
from django_otp.plugins.otp_static.models import StaticDevice, StaticToken
from django_otp.plugins.otp_totp.models import TOTPDevice

from accounts import roles
from accounts.models import User
from audit.services import audit_record, audited

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
