"""Authentication backends of scs-cases."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.backends import ModelBackend
from django.core.exceptions import PermissionDenied

from accounts.roles import AUDITOR, has_role

_WRITES = ("add_", "change_", "delete_")


class AuditorsReadOnlyBackend(ModelBackend):
    """Django's model backend, except that auditors read everything and change nothing (DESIGN
    3.5), whatever permissions their groups were given: a permission to add, change or delete
    is refused to a user with the auditor role (PermissionDenied ends Django's `has_perm` here,
    before any other backend), so the admin shows them every model read-only."""

    def has_perm(self, user_obj: Any, perm: str, obj: Any = None) -> bool:
        if (
            user_obj.is_active
            and user_obj.pk is not None
            and perm.rpartition(".")[2].startswith(_WRITES)
            and has_role(user_obj, AUDITOR)
        ):
            raise PermissionDenied
        return super().has_perm(user_obj, perm, obj)
