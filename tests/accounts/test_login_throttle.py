"""Sign-in throttling: 5 wrong passwords per account or 20 per address in 15 minutes, counted in
the shared cache before the password is checked."""

from __future__ import annotations

import threading
from datetime import timedelta
from typing import Any

import pytest
from django.contrib.auth.signals import user_login_failed
from django.core.cache import cache
from django.db import connection
from django.test import Client
from django.utils import timezone
from time_machine import TimeMachineFixture

from accounts import throttle
from accounts.models import User
from audit.models import AuditEvent
from tests.conftest import FLUSHABLE_APPS
from tests.factories import UserFactory

LOGIN = "/accounts/login/"
PASSWORD = "violet-harbour-lantern-42"
ADDRESS = "203.0.113.7"
OTHER_ADDRESS = "203.0.113.8"
# The concurrent guesses come from addresses of their own, so that only the account limit applies.
GUESSING_ADDRESSES = [f"198.51.100.{n}" for n in range(50)]
PAUSED = "Logging in is paused after too many wrong passwords."


@pytest.fixture
def time_machine(time_machine: TimeMachineFixture) -> TimeMachineFixture:
    """The fixture, holding the suite's frozen clock where it is now, so that tests can shift it."""
    time_machine.move_to(timezone.now())
    return time_machine


def forget(kind: str, value: str) -> None:
    """Drop a counter in every window a test may reach: the shared cache outlives a run, and the
    frozen clock puts every run in the same windows."""
    now = timezone.now().timestamp()
    window = throttle.LOGIN_WINDOW_SECONDS
    cache.delete_many(
        [
            throttle.counter_key(kind, value, window_seconds=window, at=now + n * window)
            for n in range(-1, 60)
        ]
    )


@pytest.fixture(autouse=True)
def _fresh_counters() -> None:
    for address in (ADDRESS, OTHER_ADDRESS, *GUESSING_ADDRESSES):
        forget("address", address)
    for name in ("li.na@example.cn", "wang.wei@example.cn", *(f"nobody{n}" for n in range(25))):
        forget("account", name)


def citizen(username: str = "li.na@example.cn") -> User:
    return UserFactory(username=username, email=username, role="citizen", password=PASSWORD)


def attempt(client: Client, username: str, password: str, address: str = ADDRESS) -> Any:
    return client.post(LOGIN, {"username": username, "password": password}, REMOTE_ADDR=address)


def last_sequence() -> int:
    last = AuditEvent.objects.order_by("-sequence").first()
    return last.sequence if last else 0


def actions_since(start: int) -> list[tuple[str, dict[str, Any]]]:
    return [
        (event.action, event.payload)
        for event in AuditEvent.objects.filter(sequence__gt=start).order_by("sequence")
    ]


@pytest.mark.django_db
def test_the_sixth_wrong_password_for_an_account_gets_429_and_no_password_check():
    user = citizen()
    client = Client(headers={"accept-language": "en"})
    start = last_sequence()

    answers = [attempt(client, user.username, "wrong-password-1").status_code for _ in range(5)]
    refused = attempt(client, user.username, PASSWORD)  # even the right one: it is not checked
    refused_again = attempt(client, user.username, PASSWORD)

    assert answers == [200] * 5
    assert refused.status_code == 429
    assert PAUSED in refused.content.decode()
    assert int(refused["Retry-After"]) <= 15 * 60
    assert refused_again.status_code == 429
    assert "_auth_user_id" not in client.session
    failed = ("auth.login_failed", {"username": user.username})
    assert actions_since(start) == [
        *[failed] * 5,
        ("auth.login_throttled", {"username": user.username, "limit": "account"}),
    ]
    user.refresh_from_db()
    assert user.last_login is None
    # Another account from the same address is not affected.
    other = citizen("wang.wei@example.cn")
    assert attempt(Client(), other.username, PASSWORD).status_code == 302


@pytest.mark.django_db
def test_the_account_limit_folds_case_and_spaces():
    user = citizen()
    client = Client()
    for name in ("LI.NA@example.cn", " li.na@EXAMPLE.cn", "Li.Na@example.cn", "li.na@example.cn"):
        assert attempt(client, name, "wrong-password-1").status_code == 200
    assert attempt(client, "LI.NA@EXAMPLE.CN ", "wrong").status_code == 200

    assert attempt(client, user.username, PASSWORD).status_code == 429


@pytest.mark.django_db
def test_twenty_wrong_passwords_from_one_address_stop_the_address():
    user = citizen()
    client = Client(headers={"accept-language": "en"})
    start = last_sequence()

    answers = [attempt(client, f"nobody{n}", "wrong-password-1").status_code for n in range(20)]
    refused = attempt(client, user.username, PASSWORD)

    assert answers == [200] * 20
    assert refused.status_code == 429
    assert PAUSED in refused.content.decode()
    assert "_auth_user_id" not in client.session
    assert actions_since(start)[-1] == (
        "auth.login_throttled",
        {"username": user.username, "limit": "address"},
    )
    assert len(actions_since(start)) == 21
    # The same account from another address signs in.
    assert attempt(Client(), user.username, PASSWORD, OTHER_ADDRESS).status_code == 302


@pytest.mark.django_db
def test_a_right_password_clears_the_account_count():
    user = citizen()
    client = Client()
    for _ in range(4):
        attempt(client, user.username, "wrong-password-1")
    assert attempt(client, user.username, PASSWORD).status_code == 302
    client.post("/accounts/logout/")

    answers = [attempt(client, user.username, "wrong-password-1").status_code for _ in range(5)]

    assert answers == [200] * 5
    assert attempt(client, user.username, PASSWORD).status_code == 429


@pytest.mark.django_db
def test_successful_sign_ins_do_not_count_against_the_address():
    user = citizen()
    for _ in range(throttle.LOGIN_ADDRESS_LIMIT + 5):
        client = Client()
        assert attempt(client, user.username, PASSWORD).status_code == 302


@pytest.mark.django_db
def test_the_lock_ends_with_its_window(time_machine):
    user = citizen()
    client = Client()
    for _ in range(6):
        attempt(client, user.username, "wrong-password-1")
    assert attempt(client, user.username, PASSWORD).status_code == 429

    time_machine.shift(timedelta(minutes=15))

    assert attempt(client, user.username, PASSWORD).status_code == 302


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True, available_apps=FLUSHABLE_APPS)
def test_fifty_concurrent_wrong_passwords_check_at_most_one_more_than_the_limit():
    user = citizen()
    threads_count = len(GUESSING_ADDRESSES)
    checked: list[str] = []
    statuses: list[int] = []
    errors: list[BaseException] = []
    lock = threading.Lock()
    start_together = threading.Barrier(threads_count)

    def counted(sender: Any, credentials: dict[str, Any], **kwargs: Any) -> None:
        with lock:
            checked.append(str(credentials.get("username")))

    def guess(number: int) -> None:
        try:
            client = Client()
            start_together.wait(timeout=30)
            response = attempt(
                client, user.username, f"wrong-password-{number}", GUESSING_ADDRESSES[number]
            )
            with lock:
                statuses.append(response.status_code)
        except BaseException as error:  # reported below
            errors.append(error)
        finally:
            connection.close()

    user_login_failed.connect(counted, dispatch_uid="test.counted")
    try:
        threads = [threading.Thread(target=guess, args=(n,)) for n in range(threads_count)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=120)
    finally:
        user_login_failed.disconnect(dispatch_uid="test.counted")

    assert not any(thread.is_alive() for thread in threads)
    assert errors == []
    assert len(checked) <= throttle.LOGIN_ACCOUNT_LIMIT + 1
    assert len(checked) >= throttle.LOGIN_ACCOUNT_LIMIT
    assert sorted(statuses) == [200] * len(checked) + [429] * (threads_count - len(checked))
    assert attempt(Client(), user.username, PASSWORD).status_code == 429
