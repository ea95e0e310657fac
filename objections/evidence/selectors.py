"""Which evidence files of a case a user may see: staff (every one, on a case in their scope);
the applicant (those shared with them and their own). Anything else is a 404."""

from __future__ import annotations

import uuid

from django.core.exceptions import ValidationError
from django.db.models import Q, QuerySet
from django.http import Http404

from accounts.models import User
from audit.reads import read_by_staff
from objections.models import Case, Evidence


def evidence_list_for_user(*, user: User, case: Case) -> QuerySet[Evidence]:
    """`case` must already be one the user may see (`case_get_for_user`, `staff_case_get`)."""
    files = Evidence.objects.filter(case=case).select_related("uploaded_by").order_by("id")
    if read_by_staff(user):
        return files
    return files.filter(Q(visibility=Evidence.Visibility.SHARED) | Q(uploaded_by=user))


def evidence_get_for_user(*, user: User, case: Case, public_id: str | uuid.UUID) -> Evidence:
    try:
        return evidence_list_for_user(user=user, case=case).get(public_id=public_id)
    except (Evidence.DoesNotExist, ValidationError, ValueError) as error:
        raise Http404("No such file.") from error
