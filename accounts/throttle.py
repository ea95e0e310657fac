"""Anti-automation for the sign-in and account pages, counted in the shared cache.

Every attempt is counted *before* the password is checked (or the e-mail sent): the count is taken
with `cache.add` and `cache.incr`, which are atomic in Redis, so that however many requests arrive
at once only those whose own increment stays within the limit go on; a locked account therefore
cannot be probed, and fifty simultaneous guesses let no more than the limit through. A successful
sign-in takes its attempt back and clears the account's count; wrong passwords stay counted.

Windows are fixed (by the application's clock, which tests move), as for the second factor: a
lock lasts until its window ends, at most LOGIN_WINDOW_SECONDS.

The client address is REMOTE_ADDR. Behind a reverse proxy the deployment must set REMOTE_ADDR to
the client's address (the proxy's PROXY protocol or its real-IP module, or a WSGI middleware that
trusts exactly that proxy); X-Forwarded-For is not read here, since any client can send it.
"""

from __future__ import annotations

import contextlib
import hashlib
import math
import unicodedata
from dataclasses import dataclass

from django.core.cache import cache
from django.http import HttpRequest
from django.utils import timezone

LOGIN_ACCOUNT_LIMIT = 5
LOGIN_ADDRESS_LIMIT = 20
LOGIN_WINDOW_SECONDS = 15 * 60
# Registration and password-reset requests send e-mail: a few per address, fewer per mailbox.
MAIL_ADDRESS_LIMIT = 10
MAIL_RECIPIENT_LIMIT = 3
MAIL_WINDOW_SECONDS = 15 * 60


@dataclass(frozen=True)
class Attempt:
    """One counted attempt: the keys it was counted under, and whether it is refused."""

    keys: tuple[str, ...]
    refused: str = ""  # "", or which limit refused it: "account", "address", "recipient"
    engaged: bool = False  # this attempt is the first one its limit refused in the window
    retry_after: int = 0  # seconds until the window ends, when refused


def client_address(request: HttpRequest) -> str:
    """The address the throttles key on (see the module docstring about proxies)."""
    return str(request.META.get("REMOTE_ADDR") or "unknown")


def username_normalise(username: str) -> str:
    """The form of a username or e-mail address the counters key on: case and width folded."""
    return unicodedata.normalize("NFKC", username).strip().casefold()


def counter_key(kind: str, value: str, *, window_seconds: int, at: float) -> str:
    """The cache key counting attempts of `kind` for `value` in the window holding `at`; the value
    is hashed, so that no e-mail address or IP address is kept in the cache's key space."""
    digest = hashlib.sha256(value.encode()).hexdigest()[:32]
    return f"accounts:attempts:{kind}:{digest}:{int(at // window_seconds)}"


def _count(key: str, window_seconds: int) -> int:
    cache.add(key, 0, timeout=window_seconds)
    try:
        return int(cache.incr(key))
    except ValueError:  # evicted between add and incr
        cache.set(key, 1, timeout=window_seconds)
        return 1


def _attempt(limits: tuple[tuple[str, str, int], ...], window_seconds: int) -> Attempt:
    now = timezone.now().timestamp()
    keys: list[str] = []
    refused = ""
    engaged = False
    for kind, value, limit in limits:
        key = counter_key(kind, value, window_seconds=window_seconds, at=now)
        keys.append(key)
        count = _count(key, window_seconds)
        if count > limit and not refused:
            refused, engaged = kind, count == limit + 1
    retry_after = math.ceil(window_seconds - now % window_seconds) if refused else 0
    return Attempt(keys=tuple(keys), refused=refused, engaged=engaged, retry_after=retry_after)


def login_attempt(request: HttpRequest, *, username: str) -> Attempt:
    """Count a password sign-in for `username` from this request's address, before the password
    is checked; refused past 5 for the account or 20 for the address in the window."""
    return _attempt(
        (
            ("account", username_normalise(username), LOGIN_ACCOUNT_LIMIT),
            ("address", client_address(request), LOGIN_ADDRESS_LIMIT),
        ),
        LOGIN_WINDOW_SECONDS,
    )


def login_succeeded(attempt: Attempt) -> None:
    """The password was right: the account starts afresh, and the address gets its attempt back
    (only wrong passwords count against an address)."""
    account_key, address_key = attempt.keys
    cache.delete(account_key)
    with contextlib.suppress(ValueError):  # the window's count has gone already
        cache.decr(address_key)


def mail_attempt(request: HttpRequest, *, kind: str, email: str) -> Attempt:
    """Count a request that sends e-mail (`kind` "register" or "password_reset") to `email`."""
    return _attempt(
        (
            (f"{kind}-address", client_address(request), MAIL_ADDRESS_LIMIT),
            (f"{kind}-recipient", username_normalise(email), MAIL_RECIPIENT_LIMIT),
        ),
        MAIL_WINDOW_SECONDS,
    )
