"""Sign-ins, failed sign-ins and sign-outs are audited.

Django announces them only through its auth signals, so the receivers here are the public way in;
each calls the one service that records the event and does nothing else.
"""

from __future__ import annotations

from typing import Any

from django.contrib.auth.signals import user_logged_in, user_logged_out, user_login_failed
from django.dispatch import receiver


@receiver(user_logged_in, dispatch_uid="accounts.audit_login")
def audit_login(sender: Any, request: Any, user: Any, **kwargs: Any) -> None:
    from accounts.services import auth_event_record

    auth_event_record(action="auth.logged_in", user=user)


@receiver(user_logged_out, dispatch_uid="accounts.audit_logout")
def audit_logout(sender: Any, request: Any, user: Any, **kwargs: Any) -> None:
    from accounts.services import auth_event_record

    if user is not None and user.is_authenticated:
        auth_event_record(action="auth.logged_out", user=user)


@receiver(user_login_failed, dispatch_uid="accounts.audit_login_failed")
def audit_login_failed(sender: Any, credentials: dict[str, Any], **kwargs: Any) -> None:
    from accounts.services import auth_event_record

    # Only the name that was tried: Django has already masked the password, and it is dropped.
    auth_event_record(
        action="auth.login_failed", user=None, username=str(credentials.get("username", ""))
    )
