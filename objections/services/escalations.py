"""A supervisor handles an escalation raised by a missed deadline: acknowledges it with a note,
or gives the case to someone else (through `case_assign`, the one writer of the assignee).

An escalation is handled once. Handling never decides the case: its state, clocks and record
stay as they are.
"""

from __future__ import annotations

from django.db.models import TextChoices
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from accounts import roles
from accounts.models import User
from audit.services import audit_record, audited
from objections.exceptions import RoleNotAllowed
from objections.models import Escalation
from objections.services.assignment import case_assign
from scs_cases.errors import Conflict, DomainError

NOTE_MAX_LENGTH = 2000


class EscalationAction(TextChoices):
    ACKNOWLEDGE = "acknowledge", _("acknowledge")
    REASSIGN = "reassign", _("reassign the case")


class EscalationHandled(Conflict):
    """The escalation was handled already (perhaps a moment ago, by someone else)."""

    code = "escalation_handled"


class EscalationInvalid(DomainError):
    code = "escalation_invalid"


def _check_actor(escalation: Escalation, actor: User) -> None:
    names = roles.role_names(actor)
    if roles.ADMINISTRATOR in names:
        return
    if (
        roles.SUPERVISOR in names
        and actor.agency_id is not None
        and actor.agency_id == escalation.case.responsible_agency_id
    ):
        return
    raise RoleNotAllowed(f"You may not handle the escalation of {escalation.case.reference}.")


@audited()
def escalation_handle(
    *,
    escalation: Escalation,
    actor: User,
    action: str,
    note: str,
    assignee: User | None = None,
) -> Escalation:
    """Handle `escalation` once: `acknowledge` with a note, or `reassign` its case to `assignee`
    (refused, with nothing changed, when the assignee may not work the case)."""
    note = note.strip()
    if action not in EscalationAction.values:
        raise EscalationInvalid(f"Unknown way of handling an escalation: {action!r}.")
    if not note:
        raise EscalationInvalid("Say how the escalation was handled: a note is required.")
    if len(note) > NOTE_MAX_LENGTH:
        raise EscalationInvalid(f"The note is longer than {NOTE_MAX_LENGTH} characters.")
    if action == EscalationAction.REASSIGN and assignee is None:
        raise EscalationInvalid("Choose whom the case goes to.")

    locked = (
        Escalation.objects.select_for_update(of=("self",))
        .select_related("case", "clock")
        .get(pk=escalation.pk)
    )
    _check_actor(locked, actor)
    if locked.resolved_at is not None:
        raise EscalationHandled(
            f"The escalation of {locked.case.reference} was handled already "
            f"({timezone.localtime(locked.resolved_at):%Y-%m-%d %H:%M})."
        )
    if action == EscalationAction.REASSIGN:
        case_assign(case_ids=[locked.case_id], assignee=assignee, actor=actor, reason=note[:500])
    locked.resolved_at = timezone.now()
    locked.resolved_by = actor
    locked.save(update_fields=["resolved_at", "resolved_by", "updated_at"])
    audit_record(
        actor=actor,
        action="escalation.handled",
        target=locked,
        case_reference=locked.case.reference,
        data={
            "action": action,
            "clock": locked.clock_id,
            "timer": locked.clock.timer,
            "note": note[:500],
            **(
                {"assignee": assignee.pk}
                if action == EscalationAction.REASSIGN and assignee
                else {}
            ),
        },
    )
    return locked
