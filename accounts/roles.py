"""The roles of scs-cases. A role is a Django group of the same name."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from accounts.models import User

CITIZEN = "citizen"
CASEWORKER = "caseworker"
SUPERVISOR = "supervisor"
AUDITOR = "auditor"
ADMINISTRATOR = "administrator"
AGENCY_SYSTEM = "agency_system"
SYSTEM = "system"  # the platform itself: beat tasks and workers acting without a person

ROLES = (CITIZEN, CASEWORKER, SUPERVISOR, AUDITOR, ADMINISTRATOR, AGENCY_SYSTEM)


def role_names(user: User) -> frozenset[str]:
    """The user's roles, read once per request and kept on the user object."""
    cached: frozenset[str] | None = getattr(user, "_role_names", None)
    if cached is None:
        cached = frozenset(user.groups.values_list("name", flat=True)) if user.pk else frozenset()
        user._role_names = cached  # type: ignore[attr-defined]
    return cached


def has_role(user: User, role: str) -> bool:
    return role in role_names(user)


def primary_role(user: User | None) -> str:
    """The role recorded in the audit log for an action by this user."""
    if user is None:
        return SYSTEM
    names = role_names(user)
    for role in (ADMINISTRATOR, AUDITOR, SUPERVISOR, CASEWORKER, AGENCY_SYSTEM, CITIZEN):
        if role in names:
            return role
    return CITIZEN if not user.is_staff else ADMINISTRATOR
