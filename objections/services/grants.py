"""Grants on single cases (django-guardian, direct foreign key): a case shared with another
agency's caseworker for consultation, or an auditor's time-limited grant. Agency-wide
visibility is never granted here: it is the dashboard's scoped query."""

from __future__ import annotations

from datetime import datetime

from django.utils import timezone
from guardian.shortcuts import assign_perm, remove_perm

from accounts import roles
from accounts.models import User
from audit.services import audit_record, audited
from objections.exceptions import MissingFields, RoleNotAllowed
from objections.models import Case, CaseUserObjectPermission
from objections.selectors import VIEW_PERMISSION

PERMISSION = f"objections.{VIEW_PERMISSION}"


@audited()
def case_access_grant(
    *, case: Case, user: User, actor: User, reason: str, expires_at: datetime | None
) -> CaseUserObjectPermission:
    """Let `user` open `case` in the dashboard until `expires_at` (an auditor's grant must
    end). Granted by the case's responsible supervisor or an administrator."""
    names = roles.role_names(actor)
    responsible = roles.SUPERVISOR in names and actor.agency_id == case.responsible_agency_id
    if not (roles.ADMINISTRATOR in names or responsible):
        raise RoleNotAllowed(
            "Only the responsible supervisor or an administrator may share a case."
        )
    if not reason.strip():
        raise MissingFields("Say why the case is shared.", fields=["reason"])
    if expires_at is not None and expires_at <= timezone.now():
        raise MissingFields("A grant must end in the future.", fields=["expires_at"])
    if roles.AUDITOR in roles.role_names(user) and expires_at is None:
        raise MissingFields("An auditor's grant must have an end.", fields=["expires_at"])
    assign_perm(PERMISSION, user, case)
    grant = CaseUserObjectPermission.objects.get(
        content_object=case, user=user, permission__codename=VIEW_PERMISSION
    )
    grant.expires_at = expires_at
    grant.granted_by = actor
    grant.reason = reason.strip()[:300]
    grant.save(update_fields=["expires_at", "granted_by", "reason"])
    audit_record(
        actor=actor,
        action="case.access_granted",
        target=case,
        case_reference=case.reference,
        data={
            "user": user.pk,
            "expires_at": expires_at.isoformat() if expires_at else None,
        },
    )
    return grant


@audited()
def case_access_revoke(*, case: Case, user: User, actor: User) -> bool:
    """End a grant at once. Returns False when there was none."""
    if not CaseUserObjectPermission.objects.filter(
        content_object=case, user=user, permission__codename=VIEW_PERMISSION
    ).exists():
        return False
    remove_perm(PERMISSION, user, case)
    audit_record(
        actor=actor,
        action="case.access_revoked",
        target=case,
        case_reference=case.reference,
        data={"user": user.pk},
    )
    return True
