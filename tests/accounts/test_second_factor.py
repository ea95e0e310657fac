"""Staff sign in with a second factor (TOTP with recovery codes); sessions end on time limits."""

from __future__ import annotations

import base64
import re
from datetime import timedelta
from typing import Any

import pytest
from django.core.cache import cache
from django.test import Client
from django.utils import timezone
from django_otp import DEVICE_ID_SESSION_KEY
from django_otp.oath import totp
from django_otp.plugins.otp_static.models import StaticDevice, StaticToken
from django_otp.plugins.otp_totp.models import TOTPDevice
from time_machine import TimeMachineFixture

from accounts.models import User
from accounts.services import (
    SECOND_FACTOR_FAILURE_WINDOW_SECONDS,
    recovery_codes_regenerate,
    second_factor_failures_key,
    second_factor_reset,
)
from audit.models import AuditEvent
from tests.factories import UserFactory
from tests.staff import staff_device, staff_login, totp_token

pytestmark = pytest.mark.django_db

SECOND_FACTOR = "/accounts/second-factor/"
RECOVERY_CODES = "/accounts/second-factor/recovery-codes/"
PASSWORD = "correct horse battery staple"
WRONG = "That code is not right. Check the code and enter it again."


def person(role: str, **fields: Any) -> User:
    user = UserFactory(role=role, **fields)
    # Wrong-code counters live in the shared cache, where a previous run's user with this id may
    # have left some for the same frozen hours.
    now = timezone.now().timestamp()
    cache.delete_many(
        [
            second_factor_failures_key(user.pk, now + n * SECOND_FACTOR_FAILURE_WINDOW_SECONDS)
            for n in range(-1, 60)
        ]
    )
    return user


@pytest.fixture
def english() -> Client:
    return Client(headers={"accept-language": "en"})


@pytest.fixture
def time_machine(time_machine: TimeMachineFixture) -> TimeMachineFixture:
    """The fixture, holding the suite's frozen clock where it is now, so that tests can shift it."""
    time_machine.move_to(timezone.now())
    return time_machine


def events_since(start: int) -> list[tuple[str, int | None, dict[str, Any]]]:
    return [
        (event.action, event.actor_id, event.payload)
        for event in AuditEvent.objects.filter(sequence__gt=start).order_by("sequence")
    ]


def last_sequence() -> int:
    last = AuditEvent.objects.order_by("-sequence").first()
    return last.sequence if last else 0


def wrong_code(device: TOTPDevice) -> str:
    """Six digits that are none of the codes the device accepts now (one step either side)."""
    right = {
        totp(device.bin_key, step=device.step, t0=device.t0, digits=6, drift=drift)
        for drift in (-1, 0, 1)
    }
    return next(f"{n:06d}" for n in range(123456, 999999) if n not in right)


def verified(client: Client) -> bool:
    return DEVICE_ID_SESSION_KEY in client.session


def signed_in(client: Client) -> bool:
    return "_auth_user_id" in client.session


def next_step(time_machine: TimeMachineFixture) -> None:
    """Past django-otp's delay after a wrong code and into the next 30-second code."""
    time_machine.shift(timedelta(seconds=31))


# ---------------------------------------------------------------------------------------------
# Enrolment


def test_enrolment_shows_the_code_refuses_a_wrong_one_and_confirms_with_ten_recovery_codes(
    english: Client, time_machine: TimeMachineFixture
) -> None:
    # given a caseworker signed in with a password, with no authenticator app yet
    caseworker = person("caseworker")
    english.force_login(caseworker)
    start = last_sequence()

    # when they open the second-factor page
    page = english.get(SECOND_FACTOR)

    # then an unconfirmed device is made and shown as a QR code and as its key
    device = TOTPDevice.objects.get(user=caseworker)
    secret = base64.b32encode(device.bin_key).decode()
    html = page.content.decode()
    assert page.status_code == 200
    assert device.confirmed is False
    assert re.search(r'<div class="qr"[^>]*><svg [^>]*viewBox', html)
    assert " ".join(secret[i : i + 4] for i in range(0, len(secret), 4)) in html
    assert '<label for="id_code">Code from your authenticator app</label>' in html
    assert "<script" not in html.split('<main id="main">')[1]
    assert " onclick=" not in html

    # when a wrong code is entered
    refused = english.post(SECOND_FACTOR, {"code": wrong_code(device)})

    # then nothing is confirmed, no recovery code exists and the session is not verified
    assert refused.status_code == 200
    assert WRONG in refused.content.decode()
    assert 'class="error-summary"' in refused.content.decode()
    device.refresh_from_db()
    assert device.confirmed is False
    assert TOTPDevice.objects.filter(user=caseworker).count() == 1
    assert not StaticDevice.objects.filter(user=caseworker).exists()
    assert not verified(english)

    # when the right code is entered (the same key is shown again meanwhile)
    next_step(time_machine)
    assert secret.encode() in base64.b32encode(device.bin_key)
    session_key = english.session.session_key
    confirmed = english.post(SECOND_FACTOR, {"code": totp_token(device)})

    # then the device is confirmed, the session verified under a new key, and ten recovery
    # codes shown once
    device.refresh_from_db()
    codes = sorted(
        StaticToken.objects.filter(device__user=caseworker).values_list("token", flat=True)
    )
    assert confirmed.status_code == 200
    assert device.confirmed is True
    assert len(codes) == 10
    assert re.findall(r"<li><code>([a-z2-7]{8})</code></li>", confirmed.content.decode()) == codes
    assert english.session[DEVICE_ID_SESSION_KEY] == device.persistent_id
    assert english.session.session_key != session_key
    assert events_since(start) == [
        ("auth.second_factor_enrolment_started", caseworker.pk, {"device": device.pk}),
        (
            "auth.second_factor_failed",
            caseworker.pk,
            {"stage": "enrolment", "failures": 1},
        ),
        (
            "auth.second_factor_enrolled",
            caseworker.pk,
            {"device": device.pk, "recovery_codes": 10},
        ),
    ]
    canonical = " ".join(
        AuditEvent.objects.filter(sequence__gt=start).values_list("canonical", flat=True)
    )
    assert secret not in canonical
    assert device.key not in canonical
    assert not any(code in canonical for code in codes)

    # and the page now sends them on to their queue
    assert english.get(SECOND_FACTOR)["Location"] == "/dashboard/"


def test_reloading_the_enrolment_page_shows_the_same_key_and_audits_one_start(
    english: Client,
) -> None:
    user = person("supervisor")
    english.force_login(user)
    start = last_sequence()

    english.get(SECOND_FACTOR)
    english.get(SECOND_FACTOR)

    assert TOTPDevice.objects.filter(user=user, confirmed=False).count() == 1
    assert [action for action, _, _ in events_since(start)] == [
        "auth.second_factor_enrolment_started"
    ]


# ---------------------------------------------------------------------------------------------
# Verification


def test_a_code_from_the_app_verifies_and_goes_on_to_the_page_asked_for(english: Client) -> None:
    # given an enrolled caseworker signed in with a password only
    caseworker = person("caseworker")
    device = staff_device(caseworker)
    english.force_login(caseworker)
    start = last_sequence()

    # when they open the dashboard, they are sent to the second factor
    sent = english.get("/dashboard/")
    assert sent.status_code == 302
    assert sent["Location"] == f"{SECOND_FACTOR}?next=/dashboard/"
    page = english.get(sent["Location"])
    html = page.content.decode()
    assert "Code from your authenticator app, or a recovery code" in html
    assert 'name="next" value="/dashboard/"' in html

    # and a code from the app takes them there
    response = english.post(SECOND_FACTOR, {"code": totp_token(device), "next": "/dashboard/"})

    assert response.status_code == 302
    assert response["Location"] == "/dashboard/"
    assert english.session[DEVICE_ID_SESSION_KEY] == device.persistent_id
    assert english.get("/dashboard/").status_code == 200
    assert events_since(start) == [
        ("auth.second_factor_verified", caseworker.pk, {"device": device.pk, "method": "totp"})
    ]


def test_an_unsafe_next_is_ignored(english: Client) -> None:
    caseworker = person("caseworker")
    device = staff_device(caseworker)
    english.force_login(caseworker)

    response = english.post(
        SECOND_FACTOR, {"code": totp_token(device), "next": "https://elsewhere.example/"}
    )

    assert response["Location"] == "/dashboard/"


def test_a_recovery_code_verifies_once(english: Client, time_machine: TimeMachineFixture) -> None:
    # given an enrolled auditor with ten recovery codes
    auditor = person("auditor")
    staff_device(auditor)
    codes = recovery_codes_regenerate(user=auditor)
    english.force_login(auditor)
    start = last_sequence()

    # when they enter one, as written down in capitals with a space
    code = codes[3]
    used = english.post(SECOND_FACTOR, {"code": f"{code[:4].upper()} {code[4:].upper()}"})

    # then they are verified, the code is consumed and they are told how many are left
    device = StaticDevice.objects.get(user=auditor)
    assert used.status_code == 302
    assert english.session[DEVICE_ID_SESSION_KEY] == device.persistent_id
    assert sorted(StaticToken.objects.filter(device=device).values_list("token", flat=True)) == [
        c for c in codes if c != code
    ]
    assert (
        "You used a recovery code. 9 recovery codes are left."
        in english.get(SECOND_FACTOR, follow=True).content.decode()
    )
    assert events_since(start) == [
        ("auth.recovery_code_used", auditor.pk, {"device": device.pk, "recovery_codes_left": 9}),
        (
            "auth.second_factor_verified",
            auditor.pk,
            {"device": device.pk, "method": "recovery_code"},
        ),
    ]

    # when they sign in again later and enter the same code
    english.post("/accounts/logout/")
    next_step(time_machine)
    english.force_login(auditor)
    again = english.post(SECOND_FACTOR, {"code": code})

    # then it is refused and nothing changed
    assert again.status_code == 200
    assert WRONG in again.content.decode()
    assert not verified(english)
    assert StaticToken.objects.filter(device=device).count() == 9


def test_five_wrong_codes_lock_the_second_factor_for_fifteen_minutes(
    english: Client, time_machine: TimeMachineFixture
) -> None:
    # given an enrolled caseworker who enters four wrong codes
    caseworker = person("caseworker")
    device = staff_device(caseworker)
    english.force_login(caseworker)
    start = last_sequence()
    for _ in range(4):
        next_step(time_machine)
        refused = english.post(SECOND_FACTOR, {"code": wrong_code(device)})
        assert refused.status_code == 200
        assert WRONG in refused.content.decode()

    # when they enter a fifth
    next_step(time_machine)
    locked = english.post(SECOND_FACTOR, {"code": wrong_code(device)})

    # then the page refuses any code with 429, the right one too, for fifteen minutes
    assert locked.status_code == 429
    assert "Too many wrong codes" in locked.content.decode()
    next_step(time_machine)
    assert english.post(SECOND_FACTOR, {"code": totp_token(device)}).status_code == 429
    assert english.get(SECOND_FACTOR).status_code == 429
    assert not verified(english)
    assert [(action, data["failures"]) for action, _, data in events_since(start)] == [
        ("auth.second_factor_failed", n) for n in range(1, 6)
    ]

    # and after the window the right code works again
    time_machine.shift(timedelta(minutes=15))
    assert english.post(SECOND_FACTOR, {"code": totp_token(device)}).status_code == 302
    assert verified(english)


def test_a_code_straight_after_a_wrong_one_is_not_tried(english: Client) -> None:
    # django-otp asks for a pause after a wrong code; the right code in that pause is not used
    caseworker = person("caseworker")
    device = staff_device(caseworker)
    english.force_login(caseworker)
    english.post(SECOND_FACTOR, {"code": wrong_code(device)})

    response = english.post(SECOND_FACTOR, {"code": totp_token(device)})

    assert response.status_code == 200
    assert "Too soon after a wrong code" in response.content.decode()
    assert not verified(english)


# ---------------------------------------------------------------------------------------------
# Where the second factor is asked for


def test_the_password_login_sends_staff_to_the_second_factor_with_a_new_session_key(
    english: Client,
) -> None:
    person("supervisor", username="zhang-supervisor")
    session = english.session
    session["language_seen"] = True
    session.save()
    before = session.session_key

    response = english.post(
        "/accounts/login/?next=/dashboard/",
        {"username": "zhang-supervisor", "password": PASSWORD, "next": "/dashboard/"},
    )

    assert response.status_code == 302
    assert response["Location"] == f"{SECOND_FACTOR}?next=%2Fdashboard%2F"
    assert english.session.session_key != before
    assert signed_in(english)
    assert not verified(english)


def test_verified_staff_opening_the_login_page_go_to_their_queue(english: Client) -> None:
    staff_login(english, person("caseworker"))

    assert english.get("/accounts/login/")["Location"] == "/dashboard/"


def test_a_citizen_is_not_asked_for_a_second_factor(english: Client) -> None:
    person("citizen", username="wangwei")

    response = english.post("/accounts/login/", {"username": "wangwei", "password": PASSWORD})

    assert response.status_code == 302
    assert response["Location"] == "/portal/records/"
    assert english.get("/portal/records/").status_code == 200
    assert english.get(SECOND_FACTOR)["Location"] == "/portal/records/"
    assert not TOTPDevice.objects.exists()


def test_the_admin_sends_unverified_staff_to_the_second_factor(english: Client) -> None:
    admin = person("administrator", is_staff=True, is_superuser=True)
    staff_device(admin)
    english.force_login(admin)

    response = english.get("/admin/records/agency/", follow=True)

    assert response.redirect_chain == [
        ("/admin/login/?next=/admin/records/agency/", 302),
        (f"{SECOND_FACTOR}?next=/admin/records/agency/", 302),
    ]
    assert response.status_code == 200
    assert not verified(english)


def test_the_admin_lets_verified_staff_in(english: Client) -> None:
    admin = person("administrator", is_staff=True, is_superuser=True)
    staff_login(english, admin)

    assert english.get("/admin/").status_code == 200
    assert english.get("/admin/records/agency/").status_code == 200


def test_the_admin_login_form_leads_on_to_the_second_factor(english: Client) -> None:
    admin = person("administrator", username="admin", is_staff=True, is_superuser=True)
    device = staff_device(admin)

    response = english.post(
        "/admin/login/?next=/admin/",
        {"username": "admin", "password": PASSWORD, "next": "/admin/"},
        follow=True,
    )
    assert response.redirect_chain[-1] == (f"{SECOND_FACTOR}?next=/admin/", 302)
    verify = english.post(SECOND_FACTOR, {"code": totp_token(device), "next": "/admin/"})

    assert verify["Location"] == "/admin/"
    assert english.get("/admin/").status_code == 200


def test_verified_staff_make_new_recovery_codes_and_the_old_stop_working(
    english: Client,
) -> None:
    caseworker = person("caseworker")
    staff_login(english, caseworker)
    old = set(recovery_codes_regenerate(user=caseworker))
    start = last_sequence()

    page = english.get(RECOVERY_CODES)
    made = english.post(RECOVERY_CODES)

    new = set(StaticToken.objects.filter(device__user=caseworker).values_list("token", flat=True))
    assert page.status_code == 200
    assert made.status_code == 200
    assert len(new) == 10
    assert not new & old
    assert set(re.findall(r"<li><code>([a-z2-7]{8})</code></li>", made.content.decode())) == new
    assert events_since(start) == [
        ("auth.recovery_codes_regenerated", caseworker.pk, {"recovery_codes": 10})
    ]


def test_recovery_codes_cannot_be_made_without_the_second_factor(english: Client) -> None:
    caseworker = person("caseworker")
    staff_device(caseworker)
    english.force_login(caseworker)
    start = last_sequence()

    response = english.post(RECOVERY_CODES)

    assert response.status_code == 302
    assert response["Location"].startswith(SECOND_FACTOR)
    assert not StaticToken.objects.exists()
    assert last_sequence() == start


# ---------------------------------------------------------------------------------------------
# Session limits


def test_a_staff_session_ends_after_thirty_minutes_idle(
    english: Client, time_machine: TimeMachineFixture
) -> None:
    # given a verified caseworker who is active every 29 minutes
    caseworker = person("caseworker")
    staff_login(english, caseworker)
    for _ in range(3):
        time_machine.shift(timedelta(minutes=29))
        assert english.get(RECOVERY_CODES).status_code == 200
    start = last_sequence()

    # when they come back after 31 minutes
    time_machine.shift(timedelta(minutes=31))
    response = english.get(RECOVERY_CODES)

    # then they are signed out and sent to log in again, with a message
    assert response.status_code == 302
    assert response["Location"] == f"/accounts/login/?next={RECOVERY_CODES}"
    assert not signed_in(english)
    assert (
        "Your session ended after a time without activity."
        in english.get(response["Location"]).content.decode()
    )
    assert [(action, data) for action, _, data in events_since(start)] == [
        ("auth.session_expired", {"reason": "idle"}),
        ("auth.logged_out", {}),
    ]


def test_a_staff_session_ends_twelve_hours_after_sign_in_however_active(
    english: Client, time_machine: TimeMachineFixture
) -> None:
    caseworker = person("caseworker")
    staff_login(english, caseworker)
    for _ in range(28):  # 11 h 40 min
        time_machine.shift(timedelta(minutes=25))
        assert english.get(RECOVERY_CODES).status_code == 200
    start = last_sequence()

    time_machine.shift(timedelta(minutes=25))
    response = english.get(RECOVERY_CODES)

    assert response.status_code == 302
    assert response["Location"] == f"/accounts/login/?next={RECOVERY_CODES}"
    assert not signed_in(english)
    assert (
        "Your session reached its time limit." in english.get(response["Location"]).content.decode()
    )
    assert [(action, data) for action, _, data in events_since(start)] == [
        ("auth.session_expired", {"reason": "absolute"}),
        ("auth.logged_out", {}),
    ]


def test_a_citizen_session_ends_after_two_hours_idle_not_thirty_minutes(
    english: Client, time_machine: TimeMachineFixture
) -> None:
    citizen = person("citizen")
    english.force_login(citizen)
    assert english.get("/portal/records/").status_code == 200

    time_machine.shift(timedelta(minutes=119))
    assert english.get("/portal/records/").status_code == 200
    time_machine.shift(timedelta(minutes=121))
    response = english.get("/portal/records/")

    assert response.status_code == 302
    assert response["Location"] == "/accounts/login/?next=/portal/records/"
    assert not signed_in(english)


def test_an_api_call_of_an_ended_session_is_refused_not_redirected(
    english: Client, time_machine: TimeMachineFixture
) -> None:
    citizen = person("citizen")
    english.force_login(citizen)
    english.get("/portal/records/")

    time_machine.shift(timedelta(hours=3))
    response = english.get("/api/v1/me/records/", headers={"accept": "application/json"})

    assert response.status_code in {401, 403}
    assert not signed_in(english)


def test_the_login_form_starts_a_staff_sessions_clock(
    english: Client, time_machine: TimeMachineFixture
) -> None:
    person("caseworker", username="li-caseworker")
    english.post("/accounts/login/", {"username": "li-caseworker", "password": PASSWORD})
    assert english.get(SECOND_FACTOR).status_code == 200

    time_machine.shift(timedelta(minutes=31))
    response = english.get(SECOND_FACTOR)

    assert response["Location"] == f"/accounts/login/?next={SECOND_FACTOR}"
    assert not signed_in(english)


def test_a_reset_removes_the_app_and_codes_so_that_the_next_sign_in_enrols(
    english: Client,
) -> None:
    # given a caseworker who lost their phone and their recovery codes
    administrator = person("administrator", is_staff=True)
    caseworker = person("caseworker")
    device = staff_device(caseworker)
    recovery_codes_regenerate(user=caseworker)
    recovery = StaticDevice.objects.get(user=caseworker)
    start = last_sequence()

    # when an administrator resets their second factor
    assert second_factor_reset(user=caseworker, actor=administrator) is True

    # then both are gone, the reset is audited, and signing in offers enrolment
    assert not TOTPDevice.objects.filter(user=caseworker).exists()
    assert not StaticToken.objects.filter(device__user=caseworker).exists()
    assert events_since(start) == [
        (
            "auth.second_factor_reset",
            administrator.pk,
            {"totp_devices": [device.pk], "recovery_devices": [recovery.pk]},
        )
    ]
    # and a second reset has nothing to do and records nothing more
    assert second_factor_reset(user=caseworker, actor=administrator) is False
    assert last_sequence() == start + 1
    english.force_login(caseworker)
    assert "Set up your authenticator app" in english.get(SECOND_FACTOR).content.decode()


def test_the_admin_never_shows_a_devices_key_or_recovery_codes(english: Client) -> None:
    caseworker = person("caseworker")
    device = staff_device(caseworker)
    codes = recovery_codes_regenerate(user=caseworker)
    staff_login(english, person("administrator", is_staff=True, is_superuser=True))

    totp_page = english.get(f"/admin/otp_totp/totpdevice/{device.pk}/change/").content.decode()
    static_device = StaticDevice.objects.get(user=caseworker)
    static_page = english.get(
        f"/admin/otp_static/staticdevice/{static_device.pk}/change/"
    ).content.decode()

    assert device.key not in totp_page
    assert english.get(f"/admin/otp_totp/totpdevice/{device.pk}/qrcode/").status_code == 403
    assert not any(code in static_page for code in codes)
