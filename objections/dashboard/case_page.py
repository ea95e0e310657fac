"""The case page of the dashboard: the record and the proposed correction side by side, the
subject (masked; revealed on purpose, audited), documents, clocks, the timeline from the audit
log, notes kept apart from messages, and exactly the steps this user may take now."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any, cast

from django.contrib import messages
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import get_language
from django.utils.translation import gettext as _
from django.views.decorators.http import require_http_methods, require_POST

from accounts import roles
from accounts.models import User
from audit.models import AuditEvent
from audit.reads import case_opened_record
from objections import workflow
from objections.dashboard.access import dashboard_page, is_supervisor
from objections.dashboard.selectors import clock_badge, staff_case_get
from objections.evidence.selectors import evidence_list_for_user
from objections.exceptions import (
    CaseConflict,
    ExtensionRefused,
    MissingFields,
    RoleNotAllowed,
    TransitionNotAvailable,
)
from objections.models import (
    Case,
    CaseDocument,
    CaseNote,
    CaseUserObjectPermission,
    PendingApproval,
)
from objections.selectors import (
    case_clocks,
    case_pending_approval,
    case_roles_for,
    case_transitions_available,
    decision_in_force,
)
from objections.services import TransitionInput, case_approval_decide, case_transition
from objections.services.definitions import definition_of
from objections.services.grants import case_access_grant, case_access_revoke
from objections.services.notes import case_note_add
from objections.services.transitions import step_remedies
from records.content import CORRECTABLE_FIELDS, DATE_FIELDS, FIELD_LABELS
from records.services import subject_identifier_reveal

TIMELINE_LIMIT = 500
MAX_SHARE_DAYS = 90
ACTION_ERRORS = (
    CaseConflict,
    ExtensionRefused,
    MissingFields,
    RoleNotAllowed,
    TransitionNotAvailable,
)
RECORD_FIELDS = tuple(FIELD_LABELS)


def _user(request: HttpRequest) -> User:
    return cast("User", request.user)


def _shown(value: object) -> str:
    if value is None:
        return ""
    return value.isoformat() if isinstance(value, date) else str(value)


def may_reveal(user: User, case: Case) -> bool:
    """Revealing a subject's full identifier: administrators, and caseworkers and supervisors
    holding a role on this very case (not auditors, not consultees)."""
    if roles.ADMINISTRATOR in roles.role_names(user):
        return True
    return any(role != "citizen" for role in case_roles_for(user=user, case=case))


def may_share(user: User, case: Case) -> bool:
    """Sharing one case (a consultation, an auditor's grant): its responsible supervisor or an
    administrator (`case_access_grant` checks it again)."""
    names = roles.role_names(user)
    return roles.ADMINISTRATOR in names or (
        roles.SUPERVISOR in names and user.agency_id == case.responsible_agency_id
    )


def _field_label(name: str) -> str:
    return str(FIELD_LABELS.get(name, name))


def _step_form(case: Case, definition: workflow.Definition, step: workflow.Transition) -> dict:
    """What the page needs to draw the form of one step."""
    chinese = (get_language() or "").startswith("zh")
    target = definition.states.get(step.target)
    remedies = step_remedies(definition, step) if step.outcomes else []
    corrects = "correct" in remedies
    proposed = dict(case.correction)
    return {
        "name": step.name,
        "target": (target.label_zh if chinese else target.label_en) if target else step.target,
        "requires": set(step.requires),
        "outcomes": [(value, Case.Outcome(value).label) for value in step.outcomes],
        "remedies": [(value, Case.Remedy(value).label) for value in remedies],
        "correction_fields": [
            {
                "name": name,
                "label": _field_label(name),
                "current": _shown(getattr(case.record, name)),
                "proposed": _shown(proposed.get(name, "")),
                "is_date": name in DATE_FIELDS,
            }
            for name in RECORD_FIELDS
            if name in CORRECTABLE_FIELDS
        ]
        if corrects
        else [],
        "documents": [
            (
                key,
                definition.documents[key].label_zh
                if chinese
                else definition.documents[key].label_en,
            )
            for key in step.documents
            if key in definition.documents
        ],
        "second_person": step.second_person,
    }


def _context(request: HttpRequest, case: Case, **extra: Any) -> dict[str, Any]:
    user = _user(request)
    definition = definition_of(case.workflow) if case.workflow is not None else None
    chinese = (get_language() or "").startswith("zh")
    record = case.record
    decision = decision_in_force(case)
    proposed = dict(case.correction)
    decided = dict(decision.correction) if decision else {}
    diff = [
        {
            "name": name,
            "label": _field_label(name),
            "current": _shown(getattr(record, name)),
            "proposed": _shown(proposed[name]) if name in proposed else None,
            "decided": _shown(decided[name]) if name in decided else None,
            "changed": name in proposed and _shown(proposed[name]) != _shown(getattr(record, name)),
        }
        for name in RECORD_FIELDS
    ]
    held = {entry.key: entry for entry in CaseDocument.objects.filter(case=case)}
    documents = []
    if definition is not None:
        for key, document in definition.documents.items():
            documents.append(
                {
                    "key": key,
                    "label": document.label_zh if chinese else document.label_en,
                    "source": document.source.citation,
                    "held": held.get(key),
                }
            )
    notes = list(CaseNote.objects.filter(case=case).select_related("author").order_by("id"))
    approval = case_pending_approval(case=case)
    steps = (
        [
            _step_form(case, definition, step)
            for step in case_transitions_available(user=user, case=case)
        ]
        if definition is not None and approval is None
        else []
    )
    state = definition.states.get(case.state) if definition else None
    events = list(
        AuditEvent.objects.filter(case_reference=case.reference)
        .exclude(action__startswith="read.")
        .order_by("sequence")[:TIMELINE_LIMIT]
    )
    names = dict(
        User.objects.filter(pk__in={e.actor_id for e in events if e.actor_id}).values_list(
            "pk", "username"
        )
    )
    timeline = [
        {
            "sequence": event.sequence,
            "at": event.recorded_at,
            "action": event.action,
            "actor": names.get(event.actor_id, "") if event.actor_id else "",
            "role": event.actor_role,
            "data": event.payload,
        }
        for event in events
    ]
    return {
        "current": "queue",
        "is_supervisor": is_supervisor(user),
        "case": case,
        "record": record,
        "state_label": (state.label_zh if chinese else state.label_en) if state else case.state,
        "badge": clock_badge(case),
        "diff": diff,
        "decision": decision,
        "documents": documents,
        "evidence": list(evidence_list_for_user(user=user, case=case)),
        "clocks": list(case_clocks(case=case)),
        "timeline": timeline,
        "internal_notes": [note for note in notes if note.kind == CaseNote.Kind.INTERNAL],
        "messages_to_applicant": [note for note in notes if note.kind == CaseNote.Kind.MESSAGE],
        "steps": steps,
        "approval": approval,
        "may_decide_approval": approval is not None and approval.requested_by_id != user.pk,
        "may_reveal": may_reveal(user, case),
        "may_share": may_share(user, case),
        "grants": list(
            CaseUserObjectPermission.objects.filter(content_object=case)
            .select_related("user")
            .order_by("id")
        )
        if may_share(user, case)
        else [],
        "workflow_key": case.workflow.key if case.workflow else "",
        **extra,
    }


@dashboard_page
@require_http_methods(["GET", "HEAD"])
def case_detail(request: HttpRequest, reference: str) -> HttpResponse:
    user = _user(request)
    case = staff_case_get(user=user, reference=reference)
    response = render(request, "dashboard/case.html", _context(request, case))
    # Once the page is built and before it leaves: no record of the read, no page.
    case_opened_record(actor=user, case=case)
    return response


def _transition_input(post: Any, step_name: str) -> TransitionInput:
    correction = {}
    for name in RECORD_FIELDS:
        key = f"correction-{name}"
        if key in post and post.get(f"correct-{name}"):
            correction[name] = post.get(key, "")
    documents = {
        key.removeprefix("document-"): value.strip()
        for key, value in post.items()
        if key.startswith("document-") and value.strip()
    }
    raw_days = post.get("extension_days", "") or "0"
    return TransitionInput(
        reasons=post.get("reasons", "").strip(),
        outcome=post.get("outcome", ""),
        material_request=post.get("material_request", "").strip(),
        statement=post.get("statement", "").strip(),
        extension_reason=post.get("extension_reason", "").strip(),
        extension_days=int(raw_days) if raw_days.isdigit() else -1,
        remedy=post.get("remedy", ""),
        correction=correction,
        documents=documents,
    )


def _refused(request: HttpRequest, case: Case, error: Exception, action: str) -> HttpResponse:
    fields = list(getattr(error, "extra", {}).get("fields", []) or [])
    response = render(
        request,
        "dashboard/case.html",
        _context(
            request,
            case,
            action_error=str(error),
            error_fields=fields,
            failed_action=action,
            posted=request.POST,
        ),
        status=getattr(error, "http_status", 400),
    )
    return response


@dashboard_page
@require_POST
def case_act(request: HttpRequest, reference: str) -> HttpResponse:
    """One action on the case: a workflow step, an approval, a note, or revealing the subject."""
    user = _user(request)
    case = staff_case_get(user=user, reference=reference)
    action = request.POST.get("action", "")
    back = HttpResponseRedirect(reverse("dashboard:case", args=[case.reference]))
    try:
        if action == "transition":
            name = request.POST.get("transition", "")
            data = _transition_input(request.POST, name)
            if data.extension_days < 0:
                raise MissingFields(
                    _("Give the extension in whole days."), fields=["extension_days"]
                )
            raw_lock = request.POST.get("lock_version", "")
            case_transition(
                case_id=case.pk,
                transition=name,
                actor=user,
                data=data,
                expected_lock_version=int(raw_lock) if raw_lock.isdigit() else None,
            )
            messages.success(request, _("Done: %(step)s.") % {"step": name})
            return back
        if action in ("approve", "reject"):
            approval = PendingApproval.objects.filter(
                pk=request.POST.get("approval", "0")
                if request.POST.get("approval", "").isdigit()
                else 0,
                case=case,
                approved__isnull=True,
            ).first()
            if approval is None:
                raise CaseConflict(_("That approval is no longer pending."))
            case_approval_decide(
                approval_id=approval.pk,
                actor=user,
                approve=action == "approve",
                reasons=request.POST.get("reasons", "").strip(),
            )
            messages.success(
                request, _("Approved.") if action == "approve" else _("Sent back without approval.")
            )
            return back
        if action == "note":
            case_note_add(
                case=case,
                actor=user,
                kind=request.POST.get("kind", ""),
                text=request.POST.get("text", ""),
            )
            messages.success(request, _("Note kept."))
            return back
        if action in ("share", "unshare"):
            person = User.objects.filter(
                username=request.POST.get("username", "").strip(), is_active=True
            ).first()
            if person is None:
                raise MissingFields(_("No active user has that name."), fields=["username"])
            if action == "unshare":
                case_access_revoke(case=case, user=person, actor=user)
                messages.success(request, _("Access ended."))
                return back
            raw_days = request.POST.get("days", "")
            if not raw_days.isdigit() or not 1 <= int(raw_days) <= MAX_SHARE_DAYS:
                raise MissingFields(
                    _("Give the number of days, from 1 to %(max)d.") % {"max": MAX_SHARE_DAYS},
                    fields=["days"],
                )
            case_access_grant(
                case=case,
                user=person,
                actor=user,
                reason=request.POST.get("reason", ""),
                expires_at=timezone.now() + timedelta(days=int(raw_days)),
            )
            messages.success(request, _("Shared with %(name)s.") % {"name": person.get_username()})
            return back
        if action == "reveal":
            if not may_reveal(user, case):
                raise RoleNotAllowed(_("Your role may not reveal the full identifier."))
            reason = request.POST.get("reason", "").strip()
            if not reason:
                raise MissingFields(_("Say why you need the full identifier."), fields=["reason"])
            revealed = subject_identifier_reveal(
                subject=case.subject, actor=user, reason=reason, case_reference=case.reference
            )
            return render(
                request, "dashboard/case.html", _context(request, case, revealed=revealed)
            )
    except ACTION_ERRORS as error:
        return _refused(request, case, error, action)
    messages.error(request, _("Unknown action."))
    return back
