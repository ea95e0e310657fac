"""Citizen accounts: registration with e-mail verification, password reset and logout, through
the pages and /api/v1/accounts/."""

from __future__ import annotations

import re
from datetime import timedelta
from importlib import import_module
from typing import Any

import pytest
from django.conf import settings
from django.contrib.sessions.backends.base import SessionBase
from django.core import mail
from django.core.cache import cache
from django.test import Client
from django.utils import timezone, translation
from django.utils.translation import gettext
from rest_framework.test import APIClient
from time_machine import TimeMachineFixture

from accounts import throttle
from accounts.models import User
from audit.models import AuditEvent
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db

REGISTER = "/accounts/register/"
LOGIN = "/accounts/login/"
RECORDS = "/portal/records/"
PASSWORD = "violet-harbour-lantern-42"
EMAIL = "li.na@example.cn"
SAME_ANSWER = "/accounts/register/done/"
VERIFY_LINK = re.compile(r"http://testserver(/accounts/verify/[^/\s]+/)")
RESET_LINK = re.compile(r"http://testserver(/accounts/password-reset/[^/\s]+/[^/\s]+/)")


@pytest.fixture
def time_machine(time_machine: TimeMachineFixture) -> TimeMachineFixture:
    """The fixture, holding the suite's frozen clock where it is now, so that tests can shift it."""
    time_machine.move_to(timezone.now())
    return time_machine


@pytest.fixture(autouse=True)
def _fresh_counters() -> None:
    """The shared cache outlives a run, and the frozen clock puts every run in the same windows:
    each test starts without the mail counters and DRF throttles it could meet."""
    now = timezone.now().timestamp()
    scopes = settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"]
    keys = [f"throttle_{scope}_127.0.0.1" for scope in scopes]
    for kind in ("register", "password_reset"):
        for value in ("127.0.0.1", EMAIL, "someone@example.cn"):
            for name in (f"{kind}-address", f"{kind}-recipient"):
                keys += [
                    throttle.counter_key(
                        name, value, window_seconds=throttle.MAIL_WINDOW_SECONDS, at=now + n * 900
                    )
                    for n in range(-1, 60)
                ]
    for kind, value, window in (
        ("account", EMAIL, throttle.LOGIN_WINDOW_SECONDS),
        ("address", "127.0.0.1", throttle.LOGIN_WINDOW_SECONDS),
    ):
        keys += [
            throttle.counter_key(kind, value, window_seconds=window, at=now + n * window)
            for n in range(-1, 60)
        ]
    cache.delete_many(keys)


def events_since(start: int) -> list[tuple[str, int | None, str, dict[str, Any]]]:
    return [
        (event.action, event.actor_id, event.target_id, event.payload)
        for event in AuditEvent.objects.filter(sequence__gt=start).order_by("sequence")
    ]


def last_sequence() -> int:
    last = AuditEvent.objects.order_by("-sequence").first()
    return last.sequence if last else 0


def register(client: Client, capture: Any, **fields: str) -> Any:
    data = {
        "email": EMAIL,
        "password1": PASSWORD,
        "password2": PASSWORD,
        "preferred_language": "en",
        **fields,
    }
    with capture(execute=True):
        return client.post(REGISTER, data)


def session_key_of(client: Client) -> str:
    return client.cookies[settings.SESSION_COOKIE_NAME].value


def store(key: str) -> SessionBase:
    engine = import_module(settings.SESSION_ENGINE)
    return engine.SessionStore(session_key=key)  # type: ignore[no-any-return]


def test_registration_sends_a_link_that_activates_the_account_and_signs_in(
    client, django_capture_on_commit_callbacks
):
    start = last_sequence()

    response = register(client, django_capture_on_commit_callbacks, email=" Li.Na@Example.CN ")

    assert (response.status_code, response["Location"]) == (302, SAME_ANSWER)
    user = User.objects.get(username=EMAIL)
    assert (user.email, user.is_active, user.preferred_language) == (EMAIL, False, "en")
    assert list(user.groups.values_list("name", flat=True)) == ["citizen"]
    assert [m.to for m in mail.outbox] == [[EMAIL]]
    assert mail.outbox[0].subject == "scs-cases: confirm your email address"
    path = VERIFY_LINK.search(mail.outbox[0].body)[1]  # type: ignore[index]
    assert client.post(LOGIN, {"username": EMAIL, "password": PASSWORD}).status_code == 200
    assert "_auth_user_id" not in client.session

    shown = client.get(path)  # a mail scanner fetching the link activates nothing
    user.refresh_from_db()
    assert (shown.status_code, user.is_active) == (200, False)
    session = client.session
    session["marker"] = "before"
    session.save()
    client.cookies[settings.SESSION_COOKIE_NAME] = session.session_key
    before = session.session_key

    response = client.post(path)

    assert (response.status_code, response["Location"]) == (302, RECORDS)
    user.refresh_from_db()
    assert user.is_active
    assert client.session["_auth_user_id"] == str(user.pk)
    assert session_key_of(client) != before
    assert not store(before).exists(before)
    assert client.get(RECORDS).status_code == 200
    actions = [(action, actor, target) for action, actor, target, _ in events_since(start)]
    assert actions == [
        ("user.created", None, str(user.pk)),
        ("auth.registered", user.pk, str(user.pk)),
        ("auth.login_failed", None, ""),
        ("auth.email_verified", user.pk, str(user.pk)),
        ("auth.logged_in", user.pk, str(user.pk)),
    ]
    # The link works once.
    assert Client().post(path).status_code == 400


def test_the_email_is_in_the_language_chosen_at_registration(
    django_capture_on_commit_callbacks,
):
    english = Client(headers={"accept-language": "en"})

    register(english, django_capture_on_commit_callbacks, preferred_language="zh-hans")

    assert User.objects.get(username=EMAIL).preferred_language == "zh-hans"
    with translation.override("zh-hans"):
        subject = gettext("scs-cases: confirm your email address")
    assert mail.outbox[0].subject == subject
    assert VERIFY_LINK.search(mail.outbox[0].body)


@pytest.mark.parametrize("change", ["expired", "tampered"])
def test_an_expired_or_tampered_link_is_refused_and_changes_nothing(
    django_capture_on_commit_callbacks, time_machine, change
):
    client = Client(headers={"accept-language": "en"})
    register(client, django_capture_on_commit_callbacks)
    path = VERIFY_LINK.search(mail.outbox[0].body)[1]  # type: ignore[index]
    if change == "expired":
        time_machine.shift(timedelta(days=3, minutes=1))
    else:
        token = path.split("/")[3]
        path = path.replace(token, token[:-2] + ("AA" if token[-2:] != "AA" else "BB"))
    start = last_sequence()

    shown = client.get(path)
    response = client.post(path)

    assert (shown.status_code, response.status_code) == (400, 400)
    expected = "This link has expired." if change == "expired" else "This link is not valid."
    assert expected in response.content.decode()
    assert User.objects.get(username=EMAIL).is_active is False
    assert "_auth_user_id" not in client.session
    assert events_since(start) == []


def test_a_registered_address_gets_the_same_answer_and_a_notice_and_nothing_is_created(
    client, django_capture_on_commit_callbacks
):
    existing = UserFactory(username="lina", email=EMAIL, preferred_language="en")
    users = User.objects.count()
    start = last_sequence()

    response = register(client, django_capture_on_commit_callbacks, email="LI.NA@example.cn")

    assert (response.status_code, response["Location"]) == (302, SAME_ANSWER)
    assert User.objects.count() == users
    assert [(m.to, m.subject) for m in mail.outbox] == [
        ([EMAIL], "scs-cases: you already have an account")
    ]
    assert "/accounts/password-reset/" in mail.outbox[0].body
    assert events_since(start) == [
        ("auth.registration_repeated", None, str(existing.pk), {"verification_resent": False})
    ]


def test_registering_again_before_verifying_sends_the_link_again(
    client, django_capture_on_commit_callbacks
):
    register(client, django_capture_on_commit_callbacks)
    register(client, django_capture_on_commit_callbacks)

    assert User.objects.filter(email=EMAIL).count() == 1
    assert [m.subject for m in mail.outbox] == ["scs-cases: confirm your email address"] * 2


@pytest.mark.parametrize(
    ("password", "message"),
    [
        ("short-pw-9", "This password is too short. It must contain at least 12 characters."),
        ("password1234", "This password is too common."),
        ("li.na@example.cn1", "The password is too similar to the"),
    ],
)
def test_a_short_common_or_similar_password_is_refused(
    client, django_capture_on_commit_callbacks, password, message
):
    english = Client(headers={"accept-language": "en"})
    start = last_sequence()

    response = register(
        english, django_capture_on_commit_callbacks, password1=password, password2=password
    )

    assert response.status_code == 200
    assert message in response.content.decode()
    assert 'href="#id_password1"' in response.content.decode()  # the error summary links it
    assert not User.objects.filter(email=EMAIL).exists()
    assert mail.outbox == []
    assert events_since(start) == []


def test_registration_page_labels_every_field_and_has_no_inline_script(client):
    page = client.get(REGISTER).content.decode()

    for name in ("email", "password1", "password2", "preferred_language"):
        assert f'<label for="id_{name}">' in page
    assert "<script>" not in page
    assert " onclick=" not in page
    assert " onsubmit=" not in page


def test_password_reset_sets_a_new_password_and_ends_every_session(
    django_capture_on_commit_callbacks,
):
    user = UserFactory(username=EMAIL, email=EMAIL, role="citizen", preferred_language="en")
    elsewhere = Client()
    elsewhere.force_login(user)
    assert elsewhere.get(RECORDS).status_code == 200
    client = Client()
    start = last_sequence()

    with django_capture_on_commit_callbacks(execute=True):
        response = client.post("/accounts/password-reset/", {"email": "LI.NA@example.cn"})

    assert (response.status_code, response["Location"]) == (302, "/accounts/password-reset/done/")
    assert [(m.to, m.subject) for m in mail.outbox] == [([EMAIL], "scs-cases: set a new password")]
    path = RESET_LINK.search(mail.outbox[0].body)[1]  # type: ignore[index]
    form = client.get(path, follow=True)
    assert form.status_code == 200
    set_password = form.redirect_chain[-1][0]
    new = "quiet-river-ledger-2031"
    done = client.post(set_password, {"new_password1": new, "new_password2": new})

    assert (done.status_code, done["Location"]) == (302, "/accounts/password-reset/complete/")
    user.refresh_from_db()
    assert user.check_password(new)
    assert elsewhere.get(RECORDS).status_code == 302  # the other session has ended
    assert "_auth_user_id" not in client.session  # and the reset signs no one in
    assert events_since(start) == [
        ("auth.password_reset_requested", None, str(user.pk), {}),
        ("auth.password_reset", user.pk, str(user.pk), {}),
    ]
    assert client.get(path, follow=True).context["validlink"] is False  # once only


def test_password_reset_for_an_unknown_address_answers_the_same_and_sends_nothing(
    client, django_capture_on_commit_callbacks
):
    start = last_sequence()

    with django_capture_on_commit_callbacks(execute=True):
        response = client.post("/accounts/password-reset/", {"email": "someone@example.cn"})

    assert (response.status_code, response["Location"]) == (302, "/accounts/password-reset/done/")
    assert mail.outbox == []
    assert events_since(start) == []


def test_password_reset_requests_for_one_address_are_limited(
    client, django_capture_on_commit_callbacks
):
    UserFactory(username=EMAIL, email=EMAIL)
    with django_capture_on_commit_callbacks(execute=True):
        answers = [
            client.post("/accounts/password-reset/", {"email": EMAIL}).status_code
            for _ in range(throttle.MAIL_RECIPIENT_LIMIT + 1)
        ]

    assert answers == [302] * throttle.MAIL_RECIPIENT_LIMIT + [429]
    assert len(mail.outbox) == throttle.MAIL_RECIPIENT_LIMIT


def test_logout_ends_the_session_on_the_server(client):
    user = UserFactory(username=EMAIL, email=EMAIL, role="citizen", password=PASSWORD)
    client.post(LOGIN, {"username": EMAIL, "password": PASSWORD})
    key = session_key_of(client)
    assert client.get(RECORDS).status_code == 200

    client.post("/accounts/logout/")

    assert not store(key).exists(key)
    stolen = Client()
    stolen.cookies[settings.SESSION_COOKIE_NAME] = key
    response = stolen.get(RECORDS)
    assert (response.status_code, response["Location"]) == (302, f"{LOGIN}?next={RECORDS}")
    assert user.pk


def test_the_api_registers_verifies_and_resets_a_password(django_capture_on_commit_callbacks):
    api = APIClient()
    with django_capture_on_commit_callbacks(execute=True):
        registered = api.post(
            "/api/v1/accounts/register/",
            {"email": EMAIL, "password": PASSWORD, "preferred_language": "en"},
            format="json",
        )
    assert registered.status_code == 202
    token = VERIFY_LINK.search(mail.outbox[0].body)[1].split("/")[3]  # type: ignore[index]

    verified = api.post("/api/v1/accounts/verify/", {"token": token}, format="json")
    again = api.post("/api/v1/accounts/verify/", {"token": token}, format="json")

    assert verified.status_code == 200
    assert (again.status_code, again.json()["code"]) == (400, "verification_invalid")
    assert User.objects.get(username=EMAIL).is_active
    with django_capture_on_commit_callbacks(execute=True):
        asked = api.post("/api/v1/accounts/password-reset/", {"email": EMAIL}, format="json")
    assert asked.status_code == 202
    uid, reset_token = RESET_LINK.search(mail.outbox[1].body)[1].split("/")[3:5]  # type: ignore[index]
    weak = api.post(
        "/api/v1/accounts/password-reset/confirm/",
        {"uid": uid, "token": reset_token, "new_password": "short"},
        format="json",
    )
    new = "quiet-river-ledger-2031"
    confirmed = api.post(
        "/api/v1/accounts/password-reset/confirm/",
        {"uid": uid, "token": reset_token, "new_password": new},
        format="json",
    )
    assert weak.status_code == 400
    assert "new_password" in weak.json()
    assert confirmed.status_code == 200
    assert User.objects.get(username=EMAIL).check_password(new)
    reused = api.post(
        "/api/v1/accounts/password-reset/confirm/",
        {"uid": uid, "token": reset_token, "new_password": "another-long-phrase-77"},
        format="json",
    )
    assert (reused.status_code, reused.json()["code"]) == (400, "reset_invalid")


def test_the_api_gives_a_registered_address_the_same_answer(django_capture_on_commit_callbacks):
    UserFactory(username=EMAIL, email=EMAIL, preferred_language="en")
    users = User.objects.count()
    with django_capture_on_commit_callbacks(execute=True):
        response = APIClient().post(
            "/api/v1/accounts/register/",
            {"email": EMAIL, "password": PASSWORD, "preferred_language": "en"},
            format="json",
        )

    assert response.status_code == 202
    assert User.objects.count() == users
    assert [m.subject for m in mail.outbox] == ["scs-cases: you already have an account"]


def test_the_api_refuses_a_common_password():
    response = APIClient().post(
        "/api/v1/accounts/register/",
        {"email": EMAIL, "password": "password1234", "preferred_language": "en"},
        format="json",
        headers={"accept-language": "en"},
    )

    assert response.status_code == 400
    assert "password" in response.json()
    assert not User.objects.filter(email=EMAIL).exists()


def test_the_api_limits_mail_to_one_address(django_capture_on_commit_callbacks):
    api = APIClient()
    with django_capture_on_commit_callbacks(execute=True):
        answers = [
            api.post("/api/v1/accounts/password-reset/", {"email": EMAIL}, format="json")
            for _ in range(throttle.MAIL_RECIPIENT_LIMIT + 1)
        ]

    statuses = [answer.status_code for answer in answers]
    assert statuses == [202] * throttle.MAIL_RECIPIENT_LIMIT + [429]
    assert answers[-1].json()["code"] == "throttled"
    assert int(answers[-1]["Retry-After"]) <= throttle.MAIL_WINDOW_SECONDS


def test_the_account_api_is_in_the_schema(client):
    schema = client.get("/api/schema/").content.decode()

    for path in (
        "/api/v1/accounts/register/:",
        "/api/v1/accounts/verify/:",
        "/api/v1/accounts/password-reset/:",
        "/api/v1/accounts/password-reset/confirm/:",
    ):
        assert f"\n  {path}\n" in schema


def test_a_citizen_signs_in_with_their_address_typed_in_capitals(client):
    from accounts.models import User

    User.objects.create_user(
        username="ana@example.org", email="ana@example.org", password="a long passphrase 2026"
    )

    response = client.post(
        "/accounts/login/", {"username": " Ana@Example.ORG ", "password": "a long passphrase 2026"}
    )

    assert response.status_code == 302
    assert client.session["_auth_user_id"]
