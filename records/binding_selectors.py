"""Reads about proving who you are: one's own bindings, and the document checks that credit-centre
staff decide. Writes are in `records.binding`."""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING

from django.core.exceptions import ValidationError
from django.db.models import QuerySet
from django.http import Http404
from django.utils import timezone

from accounts import roles
from records.models import Agency, SubjectBinding

if TYPE_CHECKING:
    from accounts.models import User

Status = SubjectBinding.Status
Method = SubjectBinding.Method


# --- who checks documents -------------------------------------------------------------------


def identity_checker(user: User) -> bool:
    """Caseworkers and supervisors of any credit centre, and administrators.

    Identity is not a matter of one jurisdiction (a subject's records come from agencies
    everywhere), so any credit centre's staff may check a letter; the providing units' staff,
    auditors and citizens may not.
    """
    if not user.is_authenticated:
        return False
    names = roles.role_names(user)
    if roles.ADMINISTRATOR in names:
        return True
    if not names & {roles.CASEWORKER, roles.SUPERVISOR} or user.agency_id is None:
        return False
    return Agency.objects.filter(pk=user.agency_id, kind=Agency.Kind.CREDIT_CENTRE).exists()


# --- reads ----------------------------------------------------------------------------------


def binding_list_for_user(*, user: User) -> QuerySet[SubjectBinding]:
    """The user's own bindings, newest first."""
    if not user.is_authenticated:
        return SubjectBinding.objects.none()
    return SubjectBinding.objects.filter(user=user).select_related("subject")


def binding_get_for_user(*, user: User, public_id: uuid.UUID | str) -> SubjectBinding:
    try:
        return binding_list_for_user(user=user).get(public_id=public_id)
    except (SubjectBinding.DoesNotExist, ValidationError, ValueError) as error:
        raise Http404("No such binding.") from error


def identity_check_list(*, user: User) -> QuerySet[SubjectBinding]:
    """Pending document checks, oldest first, for those who check them; nothing for others."""
    if not identity_checker(user):
        return SubjectBinding.objects.none()
    return (
        SubjectBinding.objects.filter(status=Status.PENDING, method=Method.DOCUMENTS)
        .select_related("subject", "user")
        .order_by("created_at", "id")
    )


def identity_check_get(*, user: User, public_id: uuid.UUID | str) -> SubjectBinding:
    """A document check the user may decide or read (pending or decided); 404 otherwise."""
    if not identity_checker(user):
        raise Http404("No such identity check.")
    try:
        return SubjectBinding.objects.select_related("subject", "user").get(
            method=Method.DOCUMENTS, public_id=public_id
        )
    except (SubjectBinding.DoesNotExist, ValidationError, ValueError) as error:
        raise Http404("No such identity check.") from error


def code_expired(binding: SubjectBinding) -> bool:
    return binding.code_expires_at is not None and timezone.now() >= binding.code_expires_at
