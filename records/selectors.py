"""Reads of the registry, already limited to what the user may see."""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING, Any

from django.apps import apps
from django.core.exceptions import ValidationError
from django.db.models import Prefetch, QuerySet
from django.http import Http404

from records.models import CreditRecord, Subject

if TYPE_CHECKING:
    from accounts.models import User

ACT_FOR_SUBJECT = "act_for_subject"
# What a subject is shown of its own records: everything still kept about it.
DISCLOSED_STATUSES = (
    CreditRecord.Status.PUBLISHED,
    CreditRecord.Status.CORRECTED,
    CreditRecord.Status.PUBLICATION_ENDED,
)


def subject_list_for_user(*, user: User) -> QuerySet[Subject]:
    """Subjects the user may act for: a guardian grant on each subject, nothing agency-wide."""
    if not user.is_authenticated:
        return Subject.objects.none()
    return Subject.objects.filter(
        subjectuserobjectpermission__user=user,
        subjectuserobjectpermission__permission__codename=ACT_FOR_SUBJECT,
    ).order_by("id")


def subject_get_for_user(*, user: User, public_id: uuid.UUID | str) -> Subject:
    try:
        return subject_list_for_user(user=user).get(public_id=public_id)
    except (Subject.DoesNotExist, ValidationError, ValueError) as error:
        raise Http404("No such subject.") from error


def _dispute_statements() -> Prefetch[Any]:
    """The statements of dispute shown with each record, with their case (one query). The
    model is the objections app's, which depends on this one: looked up, not imported."""
    statement = apps.get_model("objections", "DisputeStatement")
    return Prefetch(
        "dispute_statements", queryset=statement._default_manager.select_related("case")
    )


def record_list_for_user(*, user: User, subject: Subject | None = None) -> QuerySet[CreditRecord]:
    """Records disclosed to the user: those about the subjects they may act for."""
    subjects = (
        Subject.objects.filter(pk=subject.pk)
        if subject is not None
        else subject_list_for_user(user=user)
    )
    return (
        CreditRecord.objects.filter(
            subject__in=subjects.values("pk"), status__in=DISCLOSED_STATUSES
        )
        .select_related("agency", "agency__jurisdiction", "category", "subject")
        .prefetch_related(_dispute_statements())
        .order_by("-decision_date", "-id")
    )


def record_get_for_provider(*, user: User, public_id: uuid.UUID | str) -> CreditRecord:
    """A published record that the user's agency provided, for its caseworkers and supervisors
    (who notify that the act it rests on was revoked); 404 for any other."""
    from accounts import roles

    staff = {roles.CASEWORKER, roles.SUPERVISOR} & roles.role_names(user)
    try:
        if not staff or user.agency_id is None:
            raise CreditRecord.DoesNotExist
        return CreditRecord.objects.select_related(
            "agency__jurisdiction", "category", "subject"
        ).get(agency_id=user.agency_id, status__in=DISCLOSED_STATUSES, public_id=public_id)
    except (CreditRecord.DoesNotExist, ValidationError, ValueError) as error:
        raise Http404("No such record.") from error


def record_get_for_user(*, user: User, public_id: uuid.UUID | str) -> CreditRecord:
    try:
        return record_list_for_user(user=user).get(public_id=public_id)
    except (CreditRecord.DoesNotExist, ValidationError, ValueError) as error:
        raise Http404("No such record.") from error
