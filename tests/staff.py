"""Signing staff in for tests: a confirmed TOTP device and a session that passed it."""

from __future__ import annotations

from typing import Any

from django_otp import DEVICE_ID_SESSION_KEY
from django_otp.oath import totp
from django_otp.plugins.otp_totp.models import TOTPDevice

from accounts.middleware import session_times_start


def staff_device(user: Any) -> TOTPDevice:
    """The user's confirmed TOTP device, created on first use."""
    device = TOTPDevice.objects.filter(user=user, confirmed=True).first()
    return device or TOTPDevice.objects.create(user=user, name="test", confirmed=True)


def staff_login(client: Any, user: Any) -> TOTPDevice:
    """Sign `user` in on the test client as if they had entered a valid code."""
    device = staff_device(user)
    client.force_login(user)
    session = client.session
    session[DEVICE_ID_SESSION_KEY] = device.persistent_id
    # Signed in now, as the login page would record it: the first request saves nothing more.
    session_times_start(session, staff=True)
    session.save()
    return device


def totp_token(device: TOTPDevice) -> str:
    """The code the user's authenticator app shows now (at the test's frozen, ticking time)."""
    device.refresh_from_db()
    code = totp(
        device.bin_key, step=device.step, t0=device.t0, digits=device.digits, drift=device.drift
    )
    return str(code).zfill(device.digits)
