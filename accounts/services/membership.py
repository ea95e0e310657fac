"""Who may do what: a user's roles, agency and staff rights, their details, password and API
token, and the sign-in events. Each change is audited with what it was before and after, so that
a citizen made a caseworker of another jurisdiction in the admin leaves a trace."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from django.contrib.auth.models import Group, Permission
from django.core.exceptions import ValidationError
from django.db import transaction
from rest_framework.authtoken.models import Token

from accounts import roles
from accounts.models import User
from audit.services import audit_record, audited
from records.models import Agency
from scs_cases.errors import DomainError


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


# Name and e-mail are personal data: their changes are audited by field name, without values.
_CONTACT_FIELDS = ("first_name", "last_name", "email")
_ACCOUNT_FIELDS = ("username", "preferred_language")


def _invalid(error: ValidationError) -> DomainError:
    messages = [message for field in error.message_dict.values() for message in field]
    return DomainError("; ".join(messages), errors=error.message_dict)


@audited()
def user_create(
    *,
    actor: User | None,
    username: str,
    password: str | None,
    groups: Iterable[Group] = (),
    agency: Agency | None = None,
    is_staff: bool = False,
    is_superuser: bool = False,
    is_active: bool = True,
    first_name: str = "",
    last_name: str = "",
    email: str = "",
    preferred_language: str = "zh-hans",
) -> User:
    """Add an account with its roles, agency and staff rights. `password` None leaves it without
    a usable password. Audited with the membership and whether a password was set, never the
    password itself."""
    user = User(
        username=username,
        agency=agency,
        is_staff=is_staff,
        is_superuser=is_superuser,
        is_active=is_active,
        first_name=first_name,
        last_name=last_name,
        email=email,
        preferred_language=preferred_language,
    )
    if password is None:
        user.set_unusable_password()
    else:
        user.set_password(password)
    try:
        user.full_clean()
    except ValidationError as error:
        raise _invalid(error) from error
    user.save()
    user.groups.set(list(groups))
    membership = _membership(user)
    audit_record(
        actor=actor,
        action="user.created",
        target=user,
        data={
            "before": None,
            "after": {
                **membership,
                "username": user.username,
                "preferred_language": user.preferred_language,
                "password_usable": password is not None,
            },
            "contact_set": [name for name in _CONTACT_FIELDS if getattr(user, name)],
        },
    )
    if user.is_active and user.agency_id is not None and roles.CASEWORKER in membership["roles"]:
        # As when a caseworker joins through user_membership_set.
        agency_id = user.agency_id
        transaction.on_commit(lambda: _unassigned_assign_queue(agency_id))
    return user


@audited()
def user_details_set(
    *,
    user_id: int,
    actor: User | None,
    username: str,
    first_name: str,
    last_name: str,
    email: str,
    preferred_language: str,
) -> bool:
    """Change a user's name, e-mail, username and language (not their rights: see
    `user_membership_set`). Returns False when nothing changed."""
    row = User.objects.select_for_update().get(pk=user_id)
    values = {
        "username": username,
        "first_name": first_name,
        "last_name": last_name,
        "email": email,
        "preferred_language": preferred_language,
    }
    changed = sorted(name for name, value in values.items() if getattr(row, name) != value)
    if not changed:
        return False
    before = {name: getattr(row, name) for name in _ACCOUNT_FIELDS if name in changed}
    for name in changed:
        setattr(row, name, values[name])
    try:
        row.full_clean(exclude=["password"])
    except ValidationError as error:
        raise _invalid(error) from error
    row.save(update_fields=changed)
    audit_record(
        actor=actor,
        action="user.details_set",
        target=row,
        data={
            "before": before,
            "after": {name: getattr(row, name) for name in before},
            "contact_changed": [name for name in _CONTACT_FIELDS if name in changed],
        },
    )
    return True


@audited()
def user_password_set(*, user_id: int, actor: User | None, password: str | None) -> None:
    """Set a user's password, or (None) take away password sign-in. The event says which, and
    never holds the password."""
    row = User.objects.select_for_update().get(pk=user_id)
    before = row.has_usable_password()
    if password is None:
        row.set_unusable_password()
    else:
        row.set_password(password)
    row.save(update_fields=["password"])
    audit_record(
        actor=actor,
        action="user.password_set",
        target=row,
        data={"before": {"usable": before}, "after": {"usable": password is not None}},
    )


def _permission_names(group: Group) -> list[str]:
    return sorted(
        f"{app}.{codename}"
        for app, codename in group.permissions.values_list("content_type__app_label", "codename")
    )


@audited()
def role_permissions_set(
    *, group_id: int, permissions: Iterable[Permission], actor: User | None
) -> bool:
    """Set the permissions a role (group) gives. Returns False when nothing changed."""
    group = Group.objects.select_for_update().get(pk=group_id)
    before = _permission_names(group)
    group.permissions.set(list(permissions))
    after = _permission_names(group)
    if after == before:
        return False
    audit_record(
        actor=actor,
        action="role.permissions_set",
        target=group,
        data={
            "role": group.name,
            "before": sorted(set(before) - set(after)),
            "after": sorted(set(after) - set(before)),
        },
    )
    return True


@audited()
def api_token_issue(*, user_id: int, actor: User | None) -> str:
    """Give an agency system its API token, replacing any it had; returns the key, to be shown
    once to whoever issued it. The event names the account, never the key."""
    user = User.objects.select_for_update().get(pk=user_id)
    if not roles.has_role(user, roles.AGENCY_SYSTEM) or user.agency_id is None:
        raise DomainError(
            "API tokens are for agency systems: an account with that role and an agency."
        )
    replaced, _ = Token.objects.filter(user=user).delete()
    key: str = Token.objects.create(user=user).key
    audit_record(
        actor=actor,
        action="user.api_token_issued",
        target=user,
        data={"agency": user.agency_id, "replaced": bool(replaced)},
    )
    return key


@audited()
def api_token_revoke(*, user_id: int, actor: User | None) -> bool:
    """Withdraw an account's API token at once. Returns False when it had none."""
    user = User.objects.select_for_update().get(pk=user_id)
    deleted, _ = Token.objects.filter(user=user).delete()
    if not deleted:
        return False
    audit_record(actor=actor, action="user.api_token_revoked", target=user, data={})
    return True


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
