"""Session time limits, kept on the server: staff sessions end after SCS_STAFF_IDLE_SECONDS
without a request and SCS_STAFF_ABSOLUTE_SECONDS after sign-in; other users' after
SCS_CITIZEN_IDLE_SECONDS without a request.

The session holds when it signed in, when it was last seen (Unix seconds) and whether it is a
staff session (decided at sign-in, so that no request reads the user's roles for it). "Last seen"
is written at most once a minute, so that a page's requests do not each save the session; an
idle limit may therefore end a session up to a minute early.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import cast

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import SESSION_KEY, logout
from django.contrib.auth.views import redirect_to_login
from django.http import HttpRequest, HttpResponse
from django.utils.translation import gettext as _

from accounts.models import User
from accounts.services import second_factor_required, session_end_record

SIGNED_IN_KEY = "scs_signed_in_at"
LAST_SEEN_KEY = "scs_last_seen_at"
STAFF_KEY = "scs_staff_session"
LAST_SEEN_RESOLUTION_SECONDS = 60


def session_times_start(session: object, *, staff: bool, now: float | None = None) -> None:
    """Mark a session as signed in now, with staff limits or not (also used by tests that sign
    in without a request)."""
    moment = time.time() if now is None else now
    store = cast("dict[str, float | bool]", session)
    store[SIGNED_IN_KEY] = moment
    store[LAST_SEEN_KEY] = moment
    store[STAFF_KEY] = staff


class SessionLimitMiddleware:
    """Ends sessions past their limits; goes after the authentication, django-otp and messages
    middleware."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if request.user.is_authenticated:
            reason = self._ended(request, cast("User", request.user))
            if reason:
                response = self._end(request, cast("User", request.user), reason)
                if response is not None:
                    return response
        response = self.get_response(request)
        # A sign-in during this request (the login form, the admin's login) starts the clock. Only
        # a session sign-in: a token-authenticated API call has no session to time.
        if SESSION_KEY in request.session and SIGNED_IN_KEY not in request.session:
            session_times_start(
                request.session, staff=second_factor_required(cast("User", request.user))
            )
        return response

    @staticmethod
    def _ended(request: HttpRequest, user: User) -> str:
        session = request.session
        now = time.time()
        signed_in = session.get(SIGNED_IN_KEY)
        last_seen = session.get(LAST_SEEN_KEY)
        staff = session.get(STAFF_KEY)
        if (
            not isinstance(signed_in, int | float)
            or not isinstance(last_seen, int | float)
            or not isinstance(staff, bool)
        ):
            session_times_start(session, staff=second_factor_required(user), now=now)
            return ""
        if staff:
            if now - signed_in >= settings.SCS_STAFF_ABSOLUTE_SECONDS:
                return "absolute"
            idle_limit = settings.SCS_STAFF_IDLE_SECONDS
        else:
            idle_limit = settings.SCS_CITIZEN_IDLE_SECONDS
        if now - last_seen >= idle_limit:
            return "idle"
        if now - last_seen >= LAST_SEEN_RESOLUTION_SECONDS:
            session[LAST_SEEN_KEY] = now
        return ""

    @staticmethod
    def _end(request: HttpRequest, user: User, reason: str) -> HttpResponse | None:
        session_end_record(user=user, reason=reason)
        logout(request)
        if reason == "absolute":
            message = _("Your session reached its time limit. Please log in again.")
        else:
            message = _("Your session ended after a time without activity. Please log in again.")
        messages.info(request, message)
        if not request.accepts("text/html"):
            return None  # an API call goes on signed out and gets its 401 or 403
        return redirect_to_login(request.get_full_path())
