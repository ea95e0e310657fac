"""Transitions: `case_transition` is the one function that changes a routed case's state.

Each step locks the case row, checks the role, the required fields and the waits, moves the
clocks, applies the effects on the record and records its audit events; steps that need a second
person wait as a pending approval, decided by `case_approval_decide`. The system's own steps
(marking on routing, executing a decision) go through the same `_apply`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from django.db import IntegrityError, transaction
from django.utils import timezone

from accounts.models import User
from audit.services import audit_record, audited
from objections import workflow
from objections.exceptions import (
    CaseConflict,
    MissingFields,
    RoleNotAllowed,
    TransitionNotAvailable,
)
from objections.models import (
    Case,
    CaseDocument,
    Clock,
    Decision,
    PendingApproval,
)
from objections.selectors import (
    REMEDY_EFFECTS,
    case_roles_for,
    decision_in_force,
    step_contradicts_decision,
)
from objections.services import clocks
from objections.services.definitions import definition_of, documents_checked
from objections.services.effects import effects_run
from objections.services.notifications import notify
from records import services as record_services

if TYPE_CHECKING:
    pass


@dataclass(frozen=True)
class TransitionInput:
    """What a person supplies with a transition; `requires` in the definition names the fields."""

    reasons: str = ""
    outcome: str = ""
    material_request: str = ""
    statement: str = ""
    extension_reason: str = ""
    extension_days: int = 0
    # A decision to grant: what happens to the record, and for a correction the values to apply.
    remedy: str = ""
    correction: dict[str, Any] = field(default_factory=dict)
    # Checklist entries the step supplies: document key -> the document's reference.
    documents: dict[str, str] = field(default_factory=dict)

    def value(self, name: str) -> object:
        return getattr(self, name, "")


def _step_for(
    definition: workflow.Definition, *, state: str, transition: str, held: tuple[str, ...]
) -> tuple[workflow.Transition, str]:
    names_here = {t.name for t in definition.transitions_from(state)}
    if transition not in names_here:
        if transition in {t.name for t in definition.transitions}:
            raise TransitionNotAvailable(
                f"'{transition}' cannot be taken while the case is '{state}'.",
                state=state,
                available=sorted(names_here),
            )
        raise TransitionNotAvailable(f"This workflow has no transition '{transition}'.")
    for role in held:
        try:
            return definition.step(state=state, transition=transition, role=role), role
        except workflow.InvalidTransition:
            continue
    raise RoleNotAllowed(f"Your role on this case may not take '{transition}'.")


GRANTING = frozenset({Case.Outcome.GRANTED, Case.Outcome.PARTLY_GRANTED})


def _automatic_step(case: Case, definition: workflow.Definition) -> workflow.Transition | None:
    """The step the system takes by itself from the current state, if exactly one fits.

    Several system steps (e.g. execute a correction or a deletion) are told apart by the remedy
    the decision in force chose (never by what the applicant asked for).
    """
    steps = [t for t in definition.transitions_from(case.state) if "system" in t.roles]
    if len(steps) > 1:
        decision = decision_in_force(case)
        wanted = (
            REMEDY_EFFECTS.get(Case.Remedy(decision.remedy))
            if decision and decision.remedy
            else None
        )
        steps = [t for t in steps if wanted in t.effects]
    return steps[0] if len(steps) == 1 else None


def _remedies(definition: workflow.Definition, step: workflow.Transition) -> list[str]:
    """The remedies a granting step can lead to: the record effect it applies itself, else
    those of the steps that carry the decision out, however many steps that take no decision
    come between (Zhejiang's public notice)."""
    by_effect = {effect: str(remedy) for remedy, effect in REMEDY_EFFECTS.items()}
    own = [by_effect[e] for e in step.effects if e in by_effect]
    if own:
        return own
    found: set[str] = set()
    seen, todo = {step.target}, [step.target]
    while todo:
        for following in definition.transitions_from(todo.pop()):
            if following.outcomes:  # another decision
                continue
            found.update(by_effect[e] for e in following.effects if e in by_effect)
            if following.target not in seen and not definition.is_terminal(following.target):
                seen.add(following.target)
                todo.append(following.target)
    return sorted(found)


def step_remedies(definition: workflow.Definition, step: workflow.Transition) -> list[str]:
    """The remedies a decider may choose on this granting step (shown on the case page)."""
    return _remedies(definition, step)


def _decision_checked(
    case: Case, definition: workflow.Definition, step: workflow.Transition, data: TransitionInput
) -> TransitionInput:
    """A deciding step's remedy and decided values, checked: a refusal changes nothing; a grant
    names a remedy the workflow can execute (by default the one asked for, when possible) and,
    to correct, the exact values, checked as an import row would be."""
    if not step.outcomes:
        if data.remedy or data.correction:
            raise MissingFields(
                f"'{step.name}' decides nothing: it takes no remedy or correction.",
                fields=[name for name in ("remedy", "correction") if data.value(name)],
            )
        return data
    if data.outcome not in GRANTING:
        if data.remedy or data.correction:
            raise MissingFields(
                f"A decision '{data.outcome}' leaves the record as it is: it takes no remedy "
                "or correction.",
                fields=[name for name in ("remedy", "correction") if data.value(name)],
            )
        return data
    allowed = _remedies(definition, step)
    remedy = data.remedy
    if not remedy:
        remedy = (
            allowed[0]
            if len(allowed) == 1
            else case.requested_remedy
            if case.requested_remedy in allowed
            else ""
        )
    if not remedy and len(allowed) > 1:
        # Nothing would be carried out: a grant that leaves the choice open is not a decision.
        raise MissingFields(
            f"'{step.name}' needs the remedy decided: one of {', '.join(allowed)}.",
            fields=["remedy"],
            allowed=allowed,
        )
    if remedy and remedy not in allowed:
        raise MissingFields(
            f"'{step.name}' can decide one of these remedies: {', '.join(allowed)}."
            if allowed
            else f"'{step.name}' leads to no step that changes the record: it takes no remedy.",
            fields=["remedy"],
            allowed=allowed,
        )
    if remedy == Case.Remedy.CORRECT:
        if not data.correction:
            raise MissingFields(
                "A correction decides the values to apply: send 'correction' with each field's "
                "value (take the applicant's proposal, amend it, or write your own).",
                fields=["correction"],
            )
        checked = record_services.record_correction_check(
            case.record, data.correction, today=timezone.localdate()
        )
        return replace(data, remedy=remedy, correction=checked.as_json())
    if data.correction:
        raise MissingFields(
            "Decided values go with the remedy 'correct'.", fields=["correction", "remedy"]
        )
    return replace(data, remedy=remedy)


def automatic_steps_run(case: Case, definition: workflow.Definition) -> None:
    """Take the steps the system takes by itself (marking on filing, executing a decision)."""
    for _ in range(len(definition.states)):
        step = _automatic_step(case, definition)
        if step is None or definition.is_terminal(case.state):
            return
        _apply(case, definition, step, actor=None, role="system", data=TransitionInput())


def _checked_input(step: workflow.Transition, data: TransitionInput) -> TransitionInput:
    """The input with its outcome settled: one the step allows, implied when it allows one."""
    missing = [name for name in step.requires if not data.value(name)]
    if missing:
        raise MissingFields(f"'{step.name}' needs: {', '.join(missing)}.", fields=missing)
    if data.outcome and data.outcome not in step.outcomes:
        allowed = list(step.outcomes)
        raise MissingFields(
            f"'{step.name}' cannot record the outcome '{data.outcome}'"
            + (
                f"; it records one of: {', '.join(allowed)}."
                if allowed
                else "; it decides nothing."
            ),
            fields=["outcome"],
            allowed=allowed,
        )
    if not data.outcome and len(step.outcomes) == 1:
        data = replace(data, outcome=step.outcomes[0])
    return data


def _documents_checked(
    case: Case, definition: workflow.Definition, step: workflow.Transition, data: TransitionInput
) -> TransitionInput:
    """The documents the step needs are on the case's checklist or given with the step."""
    given = documents_checked(definition, data.documents)
    held = set(CaseDocument.objects.filter(case=case).values_list("key", flat=True))
    missing = [key for key in step.documents if key not in held and key not in given]
    if missing:
        names = ", ".join(definition.documents[key].label_en for key in missing)
        raise MissingFields(
            f"'{step.name}' needs these documents on the case: {names}.",
            fields=["documents"],
            documents=missing,
        )
    return replace(data, documents=given)


def _check_waits(case: Case, definition: workflow.Definition, step: workflow.Transition) -> None:
    """Some steps wait for a period to run out (Zhejiang: confirm only after the public notice)."""
    waits = definition.guards.get("wait_for_timer")
    if not isinstance(waits, Mapping) or step.name not in waits:
        return
    clock = Clock.objects.filter(case=case, timer=str(waits[step.name])).order_by("-id").first()
    if clock is not None and timezone.localdate() <= clock.due_on:
        raise TransitionNotAvailable(
            f"'{step.name}' can be taken after the {clock.timer} period, which ends on "
            f"{clock.due_on.isoformat()}.",
            available_from=(clock.due_on + timedelta(days=1)).isoformat(),
        )


def _check_review_limit(
    case: Case, definition: workflow.Definition, step: workflow.Transition
) -> None:
    """A decision may be reviewed as often as the rules allow (Zhejiang: once)."""
    limit = definition.guards.get("max_reviews")
    if (
        step.name in definition.reopen_by_review
        and isinstance(limit, int)
        and case.reviews_requested >= limit
    ):
        raise TransitionNotAvailable(
            f"This decision has already been reviewed {case.reviews_requested} time(s); "
            f"the rules allow {limit}.",
            max_reviews=limit,
        )


def _locked_case(case_id: int, expected_lock_version: int | None) -> Case:
    case = (
        Case.objects.select_for_update(of=("self",))
        .select_related("workflow", "record__agency__jurisdiction", "record__category")
        .get(pk=case_id)
    )
    if expected_lock_version is not None and case.lock_version != expected_lock_version:
        raise CaseConflict(
            "The case changed since you opened it; reload it and try again.",
            lock_version=case.lock_version,
        )
    if case.workflow is None:
        raise TransitionNotAvailable("The case is still being routed; try again in a moment.")
    return case


@audited()
def case_transition(
    *,
    case_id: int,
    transition: str,
    actor: User,
    data: TransitionInput | None = None,
    expected_lock_version: int | None = None,
) -> Case:
    """Take one workflow transition on behalf of `actor`.

    Raises TransitionNotAvailable (the state does not allow it: HTTP 409), RoleNotAllowed (403),
    MissingFields (400), CaseConflict (409: the case changed since `expected_lock_version`).
    A transition that needs a second person is recorded as a pending approval instead.
    """
    data = data or TransitionInput()
    case = _locked_case(case_id, expected_lock_version)
    definition = definition_of(case.workflow)  # type: ignore[arg-type]
    step, role = _step_for(
        definition,
        state=case.state,
        transition=transition,
        held=case_roles_for(user=actor, case=case),
    )
    if step_contradicts_decision(case, step):
        raise TransitionNotAvailable(
            f"'{step.name}' would carry out a remedy the decision in force did not choose."
        )
    data = _decision_checked(case, definition, step, _checked_input(step, data))
    data = _documents_checked(case, definition, step, data)
    _check_waits(case, definition, step)
    _check_review_limit(case, definition, step)
    if step.extends_clock:
        # Refuse now what an approver could never approve, rather than block the case with it.
        clocks.clocks_extension_check(case=case, days=data.extension_days)
    if step.second_person:
        try:
            with transaction.atomic():
                approval = PendingApproval.objects.create(
                    case=case,
                    transition=step.name,
                    from_state=case.state,
                    requested_by=actor,
                    payload={
                        "reasons": data.reasons,
                        "outcome": data.outcome,
                        "extension_reason": data.extension_reason,
                        "extension_days": data.extension_days,
                        "remedy": data.remedy,
                        "correction": data.correction,
                        "documents": data.documents,
                    },
                )
        except IntegrityError as error:
            raise CaseConflict("Another step of this case is already awaiting approval.") from error
        return _record_step_without_move(
            case,
            actor=actor,
            role=role,
            action="case.approval_requested",
            data={"transition": step.name, "approval": approval.pk},
        )
    return _apply(case, definition, step, actor=actor, role=role, data=data)


@audited()
def case_approval_decide(
    *, approval_id: int, actor: User, approve: bool, reasons: str = ""
) -> Case:
    """A second person approves (the transition is taken) or rejects a pending step."""
    case_id = PendingApproval.objects.values_list("case_id", flat=True).get(pk=approval_id)
    case = _locked_case(case_id, None)
    # Read again under the case's lock: a concurrent approval may have decided it meanwhile.
    approval = (
        PendingApproval.objects.select_for_update(of=("self",))
        .select_related("requested_by")
        .get(pk=approval_id)
    )
    if approval.approved is not None:
        raise CaseConflict("This approval has already been decided.")
    if actor.pk == approval.requested_by_id:
        raise RoleNotAllowed("The person who asked for a step cannot approve it.")
    definition = definition_of(case.workflow)  # type: ignore[arg-type]
    if approve and case.state != approval.from_state:
        raise TransitionNotAvailable("The case has moved on since the step was requested.")
    step = next(
        t for t in definition.transitions_from(approval.from_state) if t.name == approval.transition
    )
    held = set(case_roles_for(user=actor, case=case))
    role = next((r for r in step.approver_roles if r in held), None)
    if role is None:
        raise RoleNotAllowed("Your role on this case may not approve this step.")
    approval.approved = approve
    approval.decided_by = actor
    approval.save(update_fields=["approved", "decided_by", "updated_at"])
    if not approve:
        return _record_step_without_move(
            case,
            actor=actor,
            role=role,
            action="case.approval_rejected",
            data={"transition": step.name, "approval": approval.pk, "reasons_given": bool(reasons)},
        )
    # The step is the requester's, taken in the role they asked in; the approver is recorded
    # beside it (`approved_by`, `approver_role`).
    asked = case_roles_for(user=approval.requested_by, case=case)
    requester_role = next((r for r in asked if r in step.roles), role)
    payload = approval.payload
    data = TransitionInput(
        reasons=payload.get("reasons", ""),
        outcome=payload.get("outcome", ""),
        extension_reason=payload.get("extension_reason", ""),
        extension_days=int(payload.get("extension_days") or 0),
        remedy=payload.get("remedy", ""),
        correction=payload.get("correction") or {},
        documents=payload.get("documents") or {},
    )
    return _apply(
        case,
        definition,
        step,
        actor=approval.requested_by,
        role=requester_role,
        data=data,
        approved_by=actor,
        approver_role=role,
    )


def _record_step_without_move(
    case: Case, *, actor: User, role: str, action: str, data: dict[str, Any]
) -> Case:
    """Audit a step that leaves the case in its state (an approval asked for or refused); the
    case's lock version still moves, so a concurrent decision made on the old view conflicts."""
    case.lock_version += 1
    case.save(update_fields=["lock_version", "updated_at"])
    audit_record(
        actor=actor, action=action, target=case, case_reference=case.reference, role=role, data=data
    )
    return case


def _apply(
    case: Case,
    definition: workflow.Definition,
    step: workflow.Transition,
    *,
    actor: User | None,
    role: str,
    data: TransitionInput,
    approved_by: User | None = None,
    approver_role: str = "",
) -> Case:
    """Change state, clocks and record as `step` says; audit it; queue the notifications."""
    now = timezone.now()
    today = timezone.localdate()
    source = case.state
    update_fields = ["state", "lock_version", "next_due_on", "updated_at"]
    if step.pauses_clock:
        clocks.clocks_pause(
            case=case,
            actor=actor or approved_by,  # type: ignore[arg-type]
            reason=data.material_request or data.reasons or step.name,
            today=today,
        )
    if step.resumes_clock:
        clocks.clocks_resume(case=case, today=today)
    if step.extends_clock:
        clocks.clocks_extend(
            case=case,
            days=data.extension_days,
            reason=data.extension_reason or data.reasons,
            today=today,
        )
    case.state = step.target
    if data.outcome:
        case.outcome = data.outcome
        update_fields.append("outcome")
    if data.reasons:
        case.reasons = data.reasons
        update_fields.append("reasons")
    if data.statement:
        case.review_statement = data.statement
        update_fields.append("review_statement")
    if step.name in definition.reopen_by_review:
        case.reviews_requested += 1
        update_fields.append("reviews_requested")
    if source != step.target:
        _lapse_approvals(case, actor=actor or approved_by)
    if definition.is_terminal(step.target):
        case.is_open = False
        case.closed_at = now
        update_fields += ["is_open", "closed_at"]
        clocks.clocks_stop_all(case=case, now=now)
    else:
        if not case.is_open:  # reopened by review
            case.is_open = True
            case.closed_at = None
            update_fields += ["is_open", "closed_at"]
        if source != step.target:
            clocks.clocks_stop_outside(
                case=case, definition=definition, state=step.target, now=now, transition=step.name
            )
        clocks.clocks_start(case=case, definition=definition, state=step.target, today=today)
    if step.outcomes and data.outcome:
        decider = actor or approved_by
        if decider is None:
            raise TransitionNotAvailable(f"'{step.name}' decides: a person takes it.")
        Decision.objects.create(
            case=case,
            record_id=case.record_id,
            transition=step.name,
            outcome=data.outcome,
            remedy=data.remedy,
            reasons=data.reasons,
            proposed=case.correction,
            correction=data.correction,
            decided_by=decider,
            approved_by=approved_by,
        )
    for key, reference in data.documents.items():
        CaseDocument.objects.update_or_create(
            case=case,
            key=key,
            defaults={
                "reference": reference,
                "recorded_by": actor or approved_by,
                "transition": step.name,
            },
        )
    effects_run(case, step, actor=actor or approved_by)
    case.next_due_on = clocks.case_next_due(case)
    case.lock_version += 1
    try:
        with transaction.atomic():
            case.save(update_fields=update_fields)
    except IntegrityError as error:
        raise CaseConflict(
            "Another open case of this kind about the same record exists; it must close first."
        ) from error
    audit_record(
        actor=actor,
        action="case.transitioned",
        target=case,
        case_reference=case.reference,
        role=role,
        data={
            "transition": step.name,
            "from": source,
            "to": step.target,
            "outcome": data.outcome,
            "remedy": data.remedy,
            "decided_fields": sorted(data.correction),
            "reasons_given": bool(data.reasons),
            "approved_by": approved_by.pk if approved_by else None,
            **({"approver_role": approver_role} if approver_role else {}),
            "effects": list(step.effects),
            **({"documents": sorted(data.documents)} if data.documents else {}),
        },
    )
    if role != "system":
        # One notification per person's step: the automatic steps that follow it (or that
        # follow routing) are told by the same message.
        automatic_steps_run(case, definition)
        notify(case_id=case.pk, event="decided" if not case.is_open else "transitioned")
    return case


def _lapse_approvals(case: Case, *, actor: User | None) -> None:
    """A step requested in a state the case has left can no longer be approved: it lapses."""
    for approval in PendingApproval.objects.filter(case=case, approved__isnull=True):
        approval.approved = False
        approval.save(update_fields=["approved", "updated_at"])
        audit_record(
            actor=actor,
            action="case.approval_lapsed",
            target=case,
            case_reference=case.reference,
            data={"transition": approval.transition, "approval": approval.pk},
        )
