"""Writes about accounts that change who may do what: roles, agency, staff rights; sign-ins.

Each change is audited with what it was before and after, so that a citizen made a caseworker of
another jurisdiction in the admin leaves a trace.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from django.contrib.auth.models import Group
from django.db import transaction

from accounts import roles
from accounts.models import User
from audit.services import audit_record, audited
from records.models import Agency


def _membership(user: User) -> dict[str, Any]:
    return {
        "roles": sorted(user.groups.values_list("name", flat=True)),
        "agency": user.agency_id,
        "is_staff": user.is_staff,
        "is_superuser": user.is_superuser,
        "is_active": user.is_active,
    }


@audited()
def user_membership_set(
    *,
    user: User,
    actor: User | None,
    groups: Iterable[Group],
    agency: Agency | None,
    is_staff: bool,
    is_superuser: bool,
    is_active: bool,
) -> bool:
    """Set a user's roles (groups), agency and staff rights. Returns False when nothing changed."""
    row = User.objects.select_for_update().get(pk=user.pk)
    before = _membership(row)
    row.agency = agency
    row.is_staff = is_staff
    row.is_superuser = is_superuser
    row.is_active = is_active
    row.save(update_fields=["agency", "is_staff", "is_superuser", "is_active"])
    row.groups.set(list(groups))
    after = _membership(row)
    if after == before:
        return False
    for name in ("agency", "is_staff", "is_superuser", "is_active"):
        setattr(user, name, getattr(row, name))
    user.__dict__.pop("_role_names", None)
    audit_record(
        actor=actor,
        action="user.membership_set",
        target=row,
        data={"before": before, "after": after},
    )
    if row.is_active and row.agency_id is not None and roles.CASEWORKER in after["roles"]:
        # Cases routed while the agency had no caseworker are given out once one is there.
        agency_id = row.agency_id
        transaction.on_commit(lambda: _unassigned_assign_queue(agency_id))
    return True


def _unassigned_assign_queue(agency_id: int) -> None:
    from objections.tasks import cases_unassigned_assign_task

    cases_unassigned_assign_task.delay(agency_id=agency_id)


@audited()
def auth_event_record(*, action: str, user: User | None, username: str = "") -> None:
    """A sign-in, a failed sign-in or a sign-out. No password or other credential is kept."""
    audit_record(
        actor=user,
        action=action,
        target=user,
        target_type="accounts.user",
        data={"username": username[:150]} if username else {},
    )
