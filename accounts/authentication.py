"""API sign-in by browser session: a member of staff's session counts only once it has passed
the second factor, as it does for the dashboard and the admin. Tokens (agency systems) are their
own credential and are not affected."""

from __future__ import annotations

from typing import Any

from rest_framework.authentication import SessionAuthentication
from rest_framework.exceptions import PermissionDenied
from rest_framework.request import Request

from accounts.services import second_factor_required


class SecondFactorSessionAuthentication(SessionAuthentication):
    def authenticate(self, request: Request) -> tuple[Any, None] | None:
        found = super().authenticate(request)
        if found is None:
            return None
        user = found[0]
        verified = getattr(user, "is_verified", None)
        if second_factor_required(user) and not (verified is not None and verified()):
            raise PermissionDenied(
                "Pass the second factor (/accounts/second-factor/) before using the API "
                "from this session."
            )
        return found
