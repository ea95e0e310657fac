"""The applicant's statement of dispute after a refused objection."""

from __future__ import annotations

from typing import TYPE_CHECKING

from django.db import IntegrityError, transaction

from accounts.models import User
from audit.services import audit_record, audited
from objections.exceptions import (
    CaseConflict,
    MissingFields,
    RoleNotAllowed,
    TransitionNotAvailable,
)
from objections.models import (
    Case,
    DisputeStatement,
)
from objections.selectors import case_roles_for

if TYPE_CHECKING:
    pass


@audited()
def case_dispute_statement_add(*, case_id: int, actor: User, text: str) -> DisputeStatement:
    """The applicant's statement of dispute, kept with the record after a refused objection."""
    case = Case.objects.select_for_update(of=("self",)).select_related("record").get(pk=case_id)
    if "citizen" not in case_roles_for(user=actor, case=case):
        raise RoleNotAllowed("Only the applicant may add a statement of dispute.")
    if case.is_open or case.outcome not in (Case.Outcome.REFUSED, Case.Outcome.KEPT_WITH_NOTE):
        raise TransitionNotAvailable("A statement of dispute follows a refused, closed case.")
    if not text.strip():
        raise MissingFields("The statement is empty.", fields=["text"])
    try:
        with transaction.atomic():
            statement = DisputeStatement.objects.create(
                record=case.record, case=case, text=text.strip(), author=actor
            )
    except IntegrityError as error:
        raise CaseConflict("This case already has a statement of dispute.") from error
    audit_record(
        actor=actor,
        action="record.dispute_added",
        target=case.record,
        case_reference=case.reference,
        data={"statement": statement.pk},
    )
    return statement
