"""Who works a case: assignment by a supervisor (one case or a batch), a caseworker taking a
case, and the cases routed while an agency had no caseworker, assigned when one joins.

`case_assign` is the one writer of `Case.assignee` after routing; each change is audited with
the assignee before and after.
"""

from __future__ import annotations

from collections.abc import Sequence

from django.db.models import Count, Q

from accounts import roles
from accounts.models import User
from audit.services import audit_record, audited
from objections.exceptions import AssigneeNotAllowed, CaseConflict, RoleNotAllowed
from objections.models import Case
from records.models import Agency


def assignable_users(*, agency_id: int) -> list[User]:
    """Active caseworkers and supervisors of an agency, by name: whom its cases may go to."""
    return list(
        User.objects.filter(
            agency_id=agency_id,
            is_active=True,
            groups__name__in=(roles.CASEWORKER, roles.SUPERVISOR),
        )
        .distinct()
        .order_by("username")
    )


def _check_assignee(case: Case, assignee: User | None) -> None:
    if assignee is None:
        return
    if not assignee.is_active or assignee.agency_id != case.responsible_agency_id:
        raise AssigneeNotAllowed(
            f"{assignee.get_username()} does not work at the agency responsible for "
            f"{case.reference}."
        )
    if not roles.role_names(assignee) & {roles.CASEWORKER, roles.SUPERVISOR}:
        raise AssigneeNotAllowed(f"{assignee.get_username()} is not a caseworker.")


def _check_actor(case: Case, actor: User, assignee: User | None) -> None:
    """Supervisors of the responsible agency (and administrators) assign to anyone who may
    work the case; a caseworker of that agency may only take an unassigned case themself."""
    names = roles.role_names(actor)
    if roles.ADMINISTRATOR in names:
        return
    same_agency = actor.agency_id is not None and actor.agency_id == case.responsible_agency_id
    if roles.SUPERVISOR in names and same_agency:
        return
    taking = assignee is not None and assignee.pk == actor.pk and case.assignee_id is None
    if roles.CASEWORKER in names and same_agency and taking:
        return
    raise RoleNotAllowed(f"You may not assign {case.reference}.")


@audited()
def case_assign(
    *,
    case_ids: Sequence[int],
    assignee: User | None,
    actor: User,
    reason: str = "",
) -> list[Case]:
    """Give open cases to `assignee` (None: unassign). All or nothing: a closed case or one
    the assignee may not work refuses the whole batch. Returns the cases that changed."""
    cases = list(
        Case.objects.select_for_update(of=("self",)).filter(pk__in=list(case_ids)).order_by("pk")
    )
    if len(cases) != len(set(case_ids)):
        raise CaseConflict("A case of the batch no longer exists.")
    for case in cases:
        if not case.is_open:
            raise CaseConflict(f"{case.reference} is closed: it is no longer assigned.")
        _check_actor(case, actor, assignee)
        _check_assignee(case, assignee)
    changed = []
    for case in cases:
        if case.assignee_id == (assignee.pk if assignee else None):
            continue
        _give(case, assignee, actor=actor, reason=reason)
        changed.append(case)
    return changed


def _give(case: Case, assignee: User | None, *, actor: User | None, reason: str) -> None:
    """The write itself, with its audit event: the assignee before and after."""
    before = case.assignee_id
    case.assignee = assignee
    case.lock_version += 1
    case.save(update_fields=["assignee", "lock_version", "updated_at"])
    audit_record(
        actor=actor,
        action="case.assigned",
        target=case,
        case_reference=case.reference,
        data={
            "before": before,
            "after": case.assignee_id,
            **({"reason": reason[:500]} if reason else {}),
        },
    )


def least_loaded_caseworker(agency_id: int) -> User | None:
    """The caseworker of the agency with the fewest open cases (then the longest-serving)."""
    return (
        User.objects.filter(agency_id=agency_id, groups__name=roles.CASEWORKER, is_active=True)
        .annotate(load=Count("cases_assigned", filter=Q(cases_assigned__is_open=True)))
        .order_by("load", "id")
        .first()
    )


@audited()
def cases_unassigned_assign(*, agency: Agency) -> int:
    """Open cases of `agency` that nobody works (routed while it had no caseworker), each given
    to its least-loaded caseworker, most urgent first. Returns how many were assigned."""
    ids = list(
        Case.objects.select_for_update(of=("self",), skip_locked=True)
        .filter(responsible_agency=agency, is_open=True, assignee__isnull=True)
        .exclude(routed_at__isnull=True)
        .order_by("next_due_on", "id")
        .values_list("pk", flat=True)
    )
    assigned = 0
    for case_id in ids:
        worker = least_loaded_caseworker(agency.pk)
        if worker is None:
            break
        _give(Case.objects.get(pk=case_id), worker, actor=None, reason="caseworker joined")
        assigned += 1
    return assigned


def cases_unassigned_sweep() -> int:
    """Beat's safety net for `cases_unassigned_assign` (a lost message, a caseworker added by
    other means): every agency with unassigned open cases and a caseworker gets them assigned."""
    waiting = (
        Case.objects.filter(is_open=True, assignee__isnull=True, routed_at__isnull=False)
        .values_list("responsible_agency_id", flat=True)
        .distinct()
    )
    staffed = Agency.objects.filter(
        pk__in=waiting,
        members__is_active=True,
        members__groups__name=roles.CASEWORKER,
    ).distinct()
    return sum(cases_unassigned_assign(agency=agency) for agency in staffed)
