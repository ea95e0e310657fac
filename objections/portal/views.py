"""The citizen's case pages: the filing wizard, my cases, the case page, the decision notice and
the notices. As thin as the API views: every read through a scoped selector, every change
through a service, whose refusal is shown as it comes and changes nothing."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, cast

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.files.uploadedfile import UploadedFile
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.csrf import csrf_exempt, csrf_protect
from django.views.decorators.http import require_http_methods, require_POST

from accounts.models import User
from audit.services import audited
from objections.evidence.uploads import FIELD, evidence_upload_prepare
from objections.models import Case, DisputeStatement
from objections.portal import forms
from objections.portal.selectors import (
    agency_name,
    appeal_text,
    case_messages,
    case_timeline,
    deciding_body,
    filing_options,
    language_key,
    material_asked_for,
    notice_list_for_user,
    state_label,
)
from objections.selectors import (
    case_clocks,
    case_get_for_user,
    case_list_for_user,
    decision_in_force,
)
from objections.services import (
    TransitionInput,
    case_dispute_statement_add,
    case_transition,
    case_transitions_available,
)
from objections.services.evidence import case_file_with_evidence, evidence_attach
from records.content import ContentInvalid
from records.models import CreditRecord
from records.selectors import record_get_for_user
from records.services import record_correction_check
from scs_cases.errors import DomainError

STEPS = ("kind", "grounds", "fields", "statement", "evidence")
STEP_TITLES = {
    "kind": gettext_lazy("What to file"),
    "grounds": gettext_lazy("Grounds"),
    "fields": gettext_lazy("What is wrong"),
    "statement": gettext_lazy("Statement and remedy"),
    "evidence": gettext_lazy("Evidence, review and submit"),
}
CASE_PAGE_LIMIT = 200
NOTICE_PAGE_LIMIT = 100


def _user(request: HttpRequest) -> User:
    return cast(User, request.user)


def _with_uploads(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """A page whose POST may carry evidence files: the evidence caps are installed before the
    body is read (which the CSRF check would do first), then the CSRF check runs as usual."""
    protected = csrf_protect(view)

    @csrf_exempt
    def wrapped(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if request.method == "POST":
            request._evidence_handler = evidence_upload_prepare(request)  # type: ignore[attr-defined]
        return protected(request, *args, **kwargs)

    wrapped.__name__ = view.__name__
    wrapped.__doc__ = view.__doc__
    return wrapped


def _uploads(request: HttpRequest) -> list[UploadedFile]:
    """The evidence files sent, or the refusal the upload stopped on."""
    files = list(request.FILES.getlist(FIELD))
    handler = getattr(request, "_evidence_handler", None)
    if handler is not None and handler.refusal is not None:
        for upload in files:
            upload.close()
        raise handler.refusal
    return files


# --- the filing wizard ---------------------------------------------------------------------------


def _session_key(record: CreditRecord) -> str:
    return f"scs_filing_{record.public_id}"


def _steps_for(kind: str) -> tuple[str, ...]:
    # A repair application proposes no new values: the record is right.
    return tuple(s for s in STEPS if not (kind == Case.Kind.REPAIR and s == "fields"))


def _summary(record: CreditRecord, data: dict[str, Any]) -> list[tuple[str, str]]:
    kinds = dict(Case.Kind.choices)
    grounds = dict(Case.Grounds.choices)
    remedies = dict(Case.Remedy.choices)
    rows = [
        (_("Record"), f"{record.title} ({record.record_number})"),
        (_("Kind"), str(kinds.get(data.get("kind", ""), ""))),
        (_("Grounds"), str(grounds.get(data.get("grounds", ""), ""))),
    ]
    for name in data.get("fields_objected", []):
        rows.append(
            (
                _("%(field)s: proposed value") % {"field": forms.FIELD_LABELS[name]},
                str(data.get("correction", {}).get(name, "")),
            )
        )
    rows.append((_("Statement"), data.get("statement", "")))
    rows.append((_("Requested remedy"), str(remedies.get(data.get("requested_remedy", ""), ""))))
    return rows


@_with_uploads
@login_required
@require_http_methods(["GET", "POST"])
def case_new(request: HttpRequest, public_id: str) -> HttpResponse:
    """The filing wizard: one step per page, what was entered kept in the session, the case filed
    (with its evidence) in one transaction at the last step."""
    user = _user(request)
    record = record_get_for_user(user=user, public_id=public_id)
    key = _session_key(record)
    data: dict[str, Any] = dict(request.session.get(key, {}))
    options = filing_options(user=user, record=record)
    allowed = {option.kind for option in options if option.allowed}
    if "kind" not in data and request.GET.get("kind") in allowed and request.method == "GET":
        data["kind"] = request.GET["kind"]
    steps = _steps_for(data.get("kind", Case.Kind.OBJECTION))
    step = request.GET.get("step") or request.POST.get("step") or "kind"
    if step not in steps:
        step = "kind"
    # A later step is reached only with the earlier ones done.
    for earlier in steps[: steps.index(step)]:
        if earlier not in data.get("done", []):
            return redirect(
                f"{reverse('portal_cases:new', args=[record.public_id])}?step={earlier}"
            )
    kind = data.get("kind", Case.Kind.OBJECTION)
    form = _step_form(step, request.POST if request.method == "POST" else None, data, allowed)
    refusal = ""
    if request.method == "POST" and form.is_valid() and step == "fields":
        _correction_check(form, record)
    if request.method == "POST" and form.is_valid():
        if step == "evidence":
            try:
                case = _file(request, user, record, data)
            except DomainError as error:
                refusal = error.message
            else:
                request.session.pop(key, None)
                messages.success(
                    request,
                    _("Your case %(reference)s has been filed.") % {"reference": case.reference},
                )
                return redirect("portal_cases:case", reference=case.reference)
        else:
            _store(step, form, data)
            data["done"] = sorted(set(data.get("done", [])) | {step})
            if step == "kind" and data.get("kind") != kind:
                data["done"] = ["kind"]  # another kind: other grounds and fields
            request.session[key] = data
            following = _steps_for(data["kind"])
            next_step = following[following.index(step) + 1]
            return redirect(
                f"{reverse('portal_cases:new', args=[record.public_id])}?step={next_step}"
            )
    steps = _steps_for(data.get("kind", kind))
    return render(
        request,
        "portal/cases/new.html",
        {
            "record": record,
            "options": options,
            "form": form,
            "step": step,
            "step_title": STEP_TITLES[step],
            "step_number": steps.index(step) + 1 if step in steps else 1,
            "step_count": len(steps),
            "previous": steps[steps.index(step) - 1] if step in steps and steps.index(step) else "",
            "summary": _summary(record, data) if step == "evidence" else [],
            "refusal": refusal,
            "current": {name: getattr(record, name) for name in forms.FIELD_ORDER},
        },
        status=400 if (request.method == "POST" and (refusal or form.errors)) else 200,
    )


def _step_form(step: str, posted: Any, data: dict[str, Any], allowed: set[str]) -> Any:
    if step == "kind":
        return forms.KindForm(posted, allowed=allowed, initial={"kind": data.get("kind")})
    if step == "grounds":
        return forms.GroundsForm(
            posted,
            kind=data.get("kind", Case.Kind.OBJECTION),
            initial={"grounds": data.get("grounds")},
        )
    if step == "fields":
        initial: dict[str, Any] = {}
        for name in data.get("fields_objected", []):
            initial[f"object_{name}"] = True
            initial[f"proposed_{name}"] = data.get("correction", {}).get(name)
        return forms.FieldsForm(posted, initial=initial)
    if step == "statement":
        return forms.StatementForm(
            posted,
            initial={
                "statement": data.get("statement"),
                "requested_remedy": data.get("requested_remedy"),
            },
        )
    return forms.EvidenceForm(posted)


def _correction_check(form: forms.FieldsForm, record: CreditRecord) -> None:
    """The proposed values, checked now as the filing will check them, each refusal on its
    field (nothing is written)."""
    _, values = form.selection()
    try:
        record_correction_check(record, values, today=timezone.localdate())
    except ContentInvalid as refusal:
        errors = refusal.extra.get("errors") or {}
        for name, reason in errors.items():
            field = f"proposed_{name}" if f"proposed_{name}" in form.fields else None
            form.add_error(field, str(reason))
        if not errors:
            form.add_error(None, refusal.message)


def _store(step: str, form: Any, data: dict[str, Any]) -> None:
    if step == "fields":
        names, values = form.selection()
        data["fields_objected"], data["correction"] = names, values
    else:
        data.update(form.cleaned_data)
    if data.get("kind") == Case.Kind.REPAIR:
        data["fields_objected"], data["correction"] = [], {}


def _file(request: HttpRequest, user: User, record: CreditRecord, data: dict[str, Any]) -> Case:
    """The case and its evidence, all or nothing (`case_file_with_evidence` is one transaction)."""
    files = _uploads(request)
    return case_file_with_evidence(
        actor=user,
        record=record,
        evidence=files,
        kind=data["kind"],
        grounds=data["grounds"],
        statement=data["statement"],
        requested_remedy=data["requested_remedy"],
        fields_objected=list(data.get("fields_objected", [])),
        correction=dict(data.get("correction", {})),
    )


# --- my cases, the case page ---------------------------------------------------------------------


@login_required
def case_list(request: HttpRequest) -> HttpResponse:
    user = _user(request)
    cases = list(case_list_for_user(user=user)[:CASE_PAGE_LIMIT])
    rows = [{"case": case, "state": state_label(case)} for case in cases]
    return render(request, "portal/cases/list.html", {"rows": rows, "limit": CASE_PAGE_LIMIT})


def _case_context(request: HttpRequest, case: Case) -> dict[str, Any]:
    user = _user(request)
    steps = {step.name: step for step in case_transitions_available(user=user, case=case)}
    decision = decision_in_force(case)
    clocks = [clock for clock in case_clocks(case=case) if clock.status in ("running", "paused")]
    material = steps.get("supply_material")
    return {
        "case": case,
        "state": state_label(case),
        "kind": Case.Kind(case.kind).label,
        "agency": agency_name(case.responsible_agency),
        "timeline": case_timeline(case=case),
        "case_messages": case_messages(case=case),
        "clocks": clocks,
        "decision": decision,
        "decision_body": deciding_body(case, decision.transition) if decision else "",
        "appeal": appeal_text(case) if decision else None,
        "notices": notice_list_for_user(user=user, case=case)[:NOTICE_PAGE_LIMIT],
        "can_withdraw": "withdraw" in steps,
        "review": steps.get("request_review"),
        "material": material,
        "material_form": forms.MaterialForm(prefix="material"),
        "material_asked_for": material_asked_for(case=case) if material else "",
        "material_statement": bool(material and "statement" in material.requires),
        "review_form": forms.ReviewForm(prefix="review"),
        "withdraw_form": forms.WithdrawForm(prefix="withdraw"),
        "dispute_form": forms.DisputeForm(prefix="dispute"),
        "can_dispute": (
            not case.is_open
            and case.outcome in (Case.Outcome.REFUSED, Case.Outcome.KEPT_WITH_NOTE)
            and not DisputeStatement.objects.filter(case=case).exists()
        ),
        "dispute": DisputeStatement.objects.filter(case=case).first(),
        "lang": language_key(),
    }


@login_required
def case_detail(request: HttpRequest, reference: str) -> HttpResponse:
    case = case_get_for_user(user=_user(request), reference=reference)
    return render(request, "portal/cases/detail.html", _case_context(request, case))


def _case_action(
    request: HttpRequest,
    case: Case,
    form: Any,
    act: Callable[[Any], object],
    done: str,
) -> HttpResponse:
    """Validate `form`, run `act` (one service call); on a refusal, the page again with the
    message, nothing changed."""
    error = ""
    if form.is_valid():
        try:
            act(form.cleaned_data)
        except DomainError as refusal:
            error = refusal.message
        else:
            messages.success(request, done)
            return redirect("portal_cases:case", reference=case.reference)
    context = _case_context(request, case)
    context["action_error"] = error
    context[f"{form.prefix}_form"] = form
    context["failed_form"] = form
    return render(request, "portal/cases/detail.html", context, status=400)


@login_required
@require_POST
def case_withdraw(request: HttpRequest, reference: str) -> HttpResponse:
    user = _user(request)
    case = case_get_for_user(user=user, reference=reference)
    form = forms.WithdrawForm(request.POST, prefix="withdraw")
    return _case_action(
        request,
        case,
        form,
        lambda _data: case_transition(case_id=case.pk, transition="withdraw", actor=user),
        _("The case was withdrawn."),
    )


@login_required
@require_POST
def case_review(request: HttpRequest, reference: str) -> HttpResponse:
    user = _user(request)
    case = case_get_for_user(user=user, reference=reference)
    form = forms.ReviewForm(request.POST, prefix="review")
    return _case_action(
        request,
        case,
        form,
        lambda values: case_transition(
            case_id=case.pk,
            transition="request_review",
            actor=user,
            data=TransitionInput(statement=values["statement"]),
        ),
        _("Your request for review has been sent."),
    )


@login_required
@require_POST
def case_dispute(request: HttpRequest, reference: str) -> HttpResponse:
    user = _user(request)
    case = case_get_for_user(user=user, reference=reference)
    form = forms.DisputeForm(request.POST, prefix="dispute")
    return _case_action(
        request,
        case,
        form,
        lambda values: case_dispute_statement_add(case_id=case.pk, actor=user, text=values["text"]),
        _("Your statement of dispute is now kept with the record."),
    )


@_with_uploads
@login_required
@require_POST
def case_material(request: HttpRequest, reference: str) -> HttpResponse:
    """Answer a request for material: the files and the step that resumes the clock, together."""
    user = _user(request)
    case = case_get_for_user(user=user, reference=reference)
    form = forms.MaterialForm(request.POST, prefix="material")

    def supply(values: dict[str, Any]) -> None:
        files = _uploads(request)
        step = next(
            (
                s
                for s in case_transitions_available(user=user, case=case)
                if s.name == "supply_material"
            ),
            None,
        )
        statement = values["statement"] if step is not None and "statement" in step.requires else ""
        with audited():
            evidence_attach(case=case, files=files, actor=user)
            case_transition(
                case_id=case.pk,
                transition="supply_material",
                actor=user,
                data=TransitionInput(statement=statement),
            )

    return _case_action(
        request, case, form, supply, _("Your answer has been sent; the time limit runs again.")
    )


# --- the decision notice, the notices ------------------------------------------------------------


@login_required
def case_notice(request: HttpRequest, reference: str) -> HttpResponse:
    """The decision notice, printable: the decision in force, its reasons and the routes of
    appeal, in the reader's language. 404 until there is a decision."""
    case = case_get_for_user(user=_user(request), reference=reference)
    decision = decision_in_force(case)
    if decision is None:
        raise Http404("No decision yet.")
    changes = [
        {
            "label": forms.FIELD_LABELS.get(name, name),
            "proposed": decision.proposed.get(name),
            "decided": decision.correction.get(name),
        }
        for name in sorted(set(decision.proposed) | set(decision.correction))
    ]
    return render(
        request,
        "portal/cases/notice.html",
        {
            "case": case,
            "record": case.record,
            "decision": decision,
            "changes": changes,
            "body": deciding_body(case, decision.transition),
            "state": state_label(case),
            "appeal": appeal_text(case),
            "lang": language_key(),
        },
    )


@login_required
def notice_list(request: HttpRequest) -> HttpResponse:
    notices = list(notice_list_for_user(user=_user(request))[:NOTICE_PAGE_LIMIT])
    return render(
        request, "portal/cases/notices.html", {"notices": notices, "limit": NOTICE_PAGE_LIMIT}
    )
