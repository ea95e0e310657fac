"""Reads of cases, already limited to what the user may see."""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.db.models import Exists, OuterRef, Q, QuerySet
from django.http import Http404
from django.utils import timezone

from accounts import roles
from accounts.models import User
from objections import workflow
from objections.models import (
    Case,
    CaseUserObjectPermission,
    Clock,
    Decision,
    PendingApproval,
    WorkflowDefinition,
)
from objections.services.definitions import definition_of
from records.models import Agency, ImportConflict
from records.selectors import subject_list_for_user

VIEW_PERMISSION = "view_case"


def case_granted(user: User) -> Exists:
    """Cases granted to `user` one by one, while the grant lasts."""
    now = timezone.now()
    return Exists(
        CaseUserObjectPermission.objects.filter(
            content_object_id=OuterRef("pk"),
            user_id=user.pk,
            permission__codename=VIEW_PERMISSION,
        ).filter(Q(expires_at__isnull=True) | Q(expires_at__gt=now))
    )


def staff_scope(user: User) -> Q | None:
    """The condition on cases that a member of staff may work; None: every case."""
    names = roles.role_names(user)
    if roles.ADMINISTRATOR in names:
        return None
    scope = Q(pk__in=[])
    agency = _agency_of(user)
    if agency is not None and names & {roles.CASEWORKER, roles.SUPERVISOR}:
        agency_id, kind, jurisdiction_id = agency
        scope |= Q(responsible_agency_id=agency_id) | Q(record__agency_id=agency_id)
        body = _REVIEW_BODIES.get(kind)
        if body is not None:
            scope |= Q(jurisdiction_id=jurisdiction_id, workflow_id__in=_workflows_naming(body))
    return scope


def case_list_for_user(*, user: User) -> QuerySet[Case]:
    """Cases the user may see: their own subjects' cases, their agency's cases, or all (auditor).

    Ordered by remaining statutory time: the earliest running deadline first.
    """
    names = roles.role_names(user)
    cases = Case.objects.select_related(
        "record__agency",
        "record__category",
        "subject",
        "assignee",
        "workflow",
        "responsible_agency",
    )
    if roles.ADMINISTRATOR in names:
        scoped = cases
    else:
        scope = Q(subject__in=subject_list_for_user(user=user).values("pk")) | Q(filed_by=user)
        staff = staff_scope(user)
        if staff is not None:
            scope |= staff
        if names & {roles.CASEWORKER, roles.SUPERVISOR, roles.AUDITOR}:
            # A consultation, or an auditor's time-limited grant: one case at a time.
            scope |= Q(case_granted(user))
        scoped = cases.filter(scope)
    return scoped.order_by("-is_open", "next_due_on", "id")


def case_get_for_audit(*, user: User, reference: str) -> Case:
    """Any case, for the auditors' pages (which admit only auditors and administrators): the
    audit log's history of every case is theirs to read; working a case is not."""
    if not roles.role_names(user) & {roles.AUDITOR, roles.ADMINISTRATOR}:
        raise Http404("No such case.")
    try:
        return Case.objects.select_related(
            "record__agency__jurisdiction", "record__subject", "subject", "workflow"
        ).get(reference=reference)
    except (Case.DoesNotExist, ValidationError, ValueError) as error:
        raise Http404("No such case.") from error


def case_get_for_user(*, user: User, reference: str) -> Case:
    try:
        return (
            case_list_for_user(user=user)
            .select_related("record__agency__jurisdiction", "record__subject")
            .get(reference=reference)
        )
    except (Case.DoesNotExist, ValidationError, ValueError) as error:
        raise Http404("No such case.") from error


def decision_in_force(case: Case) -> Decision | None:
    """The latest decision on `case` (a review that decides again supersedes the first)."""
    return Decision.objects.filter(case=case).order_by("-id").first()


# The record effect that carries out each remedy a decision may choose.
REMEDY_EFFECTS = {
    Case.Remedy.CORRECT: "apply_correction",
    Case.Remedy.DELETE: "delete_record",
    Case.Remedy.END_PUBLICATION: "end_publication",
    Case.Remedy.ANNOTATE: "annotate_repaired",
}


def step_contradicts_decision(case: Case, step: workflow.Transition) -> bool:
    """A step that would carry out a remedy the decision in force did not choose (execute a
    deletion when a correction was decided): never offered, always refused."""
    effects = {effect for effect in step.effects if effect in REMEDY_EFFECTS.values()}
    if not effects or step.outcomes:
        return False
    decision = decision_in_force(case)
    chosen = (
        REMEDY_EFFECTS.get(Case.Remedy(decision.remedy)) if decision and decision.remedy else None
    )
    return chosen not in effects


def case_clocks(*, case: Case) -> QuerySet[Clock]:
    return Clock.objects.filter(case=case).order_by("id")


def case_pending_approval(*, case: Case) -> PendingApproval | None:
    """The step of `case` awaiting a second person's approval, if any."""
    return PendingApproval.objects.filter(case=case, approved__isnull=True).first()


def import_conflict_list_for_user(*, user: User) -> QuerySet[ImportConflict]:
    """Conflicts the user may see: those about their agency's records or its cases (staff and
    the agency's own system), all for auditors and administrators."""
    conflicts = ImportConflict.objects.select_related("record__agency", "batch").order_by("-id")
    names = roles.role_names(user)
    if roles.AUDITOR in names or roles.ADMINISTRATOR in names:
        return conflicts
    staff = {roles.CASEWORKER, roles.SUPERVISOR, roles.AGENCY_SYSTEM}
    if not names & staff or user.agency_id is None:
        return conflicts.none()
    cases = Case.objects.filter(responsible_agency_id=user.agency_id).values("reference")
    return conflicts.filter(Q(record__agency_id=user.agency_id) | Q(case_reference__in=cases))


def import_conflict_get_for_user(*, user: User, conflict_id: int) -> ImportConflict:
    try:
        return import_conflict_list_for_user(user=user).get(pk=conflict_id)
    except ImportConflict.DoesNotExist as error:
        raise Http404("No such import conflict.") from error


# --- a person's roles on a case and the steps they may take ----------------------------------


def _agency_of(user: User) -> tuple[int, str, int] | None:
    """(id, kind, jurisdiction id) of the user's agency, read once per request."""
    if user.agency_id is None:
        return None
    cached: tuple[int, str, int] | None = getattr(user, "_agency_facts", None)
    if cached is None or cached[0] != user.agency_id:
        kind, jurisdiction_id = Agency.objects.values_list("kind", "jurisdiction_id").get(
            pk=user.agency_id
        )
        cached = (user.agency_id, kind, jurisdiction_id)
        user._agency_facts = cached  # type: ignore[attr-defined]
    return cached


def case_roles_for(*, user: User, case: Case) -> tuple[str, ...]:
    """The workflow roles `user` holds on `case`, supervisors' first: a position (caseworker,
    supervisor) at each body the case involves that the user belongs to — the responsible
    agency, the agency that provided the record, the jurisdiction's development and reform
    commission or PBoC branch (the bodies a workflow file names)."""
    held: list[str] = []
    names = roles.role_names(user)
    agency = _agency_of(user)
    if agency is not None:
        agency_id, kind, jurisdiction_id = agency
        for group, position in ((roles.SUPERVISOR, "supervisor"), (roles.CASEWORKER, "caseworker")):
            if group not in names:
                continue
            if agency_id == case.responsible_agency_id:
                held.append(position)
            if agency_id == case.record.agency_id:
                held.append(f"agency_{position}")
            if jurisdiction_id == case.jurisdiction_id and kind in _REVIEW_BODIES:
                held.append(f"{_REVIEW_BODIES[kind]}_{position}")
    if user.pk in (case.filed_by_id, case.representative_id) or (
        subject_list_for_user(user=user).filter(pk=case.subject_id).exists()
    ):
        held.append("citizen")
    return tuple(held)


_REVIEW_BODIES: dict[str, str] = {
    Agency.Kind.DRC.value: "drc",
    Agency.Kind.PBOC_BRANCH.value: "pboc_branch",
}


def _workflows_naming(body: str) -> list[int]:
    """Ids of the stored workflow versions in which `body` (drc, pboc_branch) takes a step."""
    prefix = f"{body}_"
    return [
        row.pk
        for row in WorkflowDefinition.objects.only("pk", "source_text", "source_hash")
        if any(role.startswith(prefix) for role in definition_of(row).bodies)
    ]


def case_transitions_available(*, user: User, case: Case) -> list[workflow.Transition]:
    """The steps `user` may take on `case` now, by any role they hold on it (each step once)."""
    if case.workflow is None:
        return []
    definition = definition_of(case.workflow)
    seen: dict[str, workflow.Transition] = {}
    for role in case_roles_for(user=user, case=case):
        for step in definition.available(state=case.state, role=role):
            if not step_contradicts_decision(case, step):
                seen.setdefault(step.name, step)
    return list(seen.values())
