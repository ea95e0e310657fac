"""The supervisor's view: workload per caseworker and agency, cases at risk and overdue (each
with a reassignment form), escalations raised by missed deadlines with a form to handle them,
and charts of the backlog and deadline risk over time, each with its table."""

from __future__ import annotations

from datetime import date
from typing import Any, cast

from django import forms
from django.contrib import messages
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.urls import reverse
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.http import require_GET, require_POST

from accounts.models import User
from objections.dashboard.access import supervisor_page
from objections.dashboard.supervision_selectors import (
    Series,
    assignable_by_agency,
    cases_at_risk_for_user,
    escalation_get_for_user,
    escalations_for_user,
    series_for_user,
    series_range,
    supervised_case_get,
    workload_for_user,
)
from objections.services.assignment import assignable_users, case_assign
from objections.services.escalations import NOTE_MAX_LENGTH, EscalationAction, escalation_handle
from scs_cases.errors import DomainError


class RangeForm(forms.Form):
    start = forms.DateField(label=gettext_lazy("From"), required=False)
    end = forms.DateField(label=gettext_lazy("To"), required=False)


class ReassignForm(forms.Form):
    case = forms.IntegerField(widget=forms.HiddenInput)
    assignee = forms.IntegerField(label=gettext_lazy("Give to"), required=False)
    reason = forms.CharField(label=gettext_lazy("Reason"), required=False, max_length=500)


class HandleForm(forms.Form):
    action = forms.ChoiceField(label=gettext_lazy("Action"), choices=EscalationAction.choices)
    note = forms.CharField(
        label=gettext_lazy("Note"), max_length=NOTE_MAX_LENGTH, widget=forms.Textarea
    )
    assignee = forms.IntegerField(label=gettext_lazy("Give to"), required=False)


def _user(request: HttpRequest) -> User:
    return cast(User, request.user)


def _back() -> HttpResponseRedirect:
    return HttpResponseRedirect(reverse("dashboard:supervision"))


def _chart_data(series: Series) -> dict[str, Any]:
    return {
        "days": [day.isoformat() for day in series.days],
        "backlog": series.backlog,
        "overdue": series.overdue,
        "at_risk": series.at_risk,
        "labels": {
            "backlog": _("Open cases"),
            "overdue": _("Overdue clocks"),
            "at_risk": _("Clocks at risk"),
        },
    }


@supervisor_page
@require_GET
def overview(request: HttpRequest) -> HttpResponse:
    user = _user(request)
    chosen = RangeForm(request.GET or None)
    start: date | None = None
    end: date | None = None
    if chosen.is_valid():
        start, end = chosen.cleaned_data["start"], chosen.cleaned_data["end"]
    start, end = series_range(start=start, end=end)
    series = series_for_user(user=user, start=start, end=end)
    at_risk = cases_at_risk_for_user(user=user)
    escalations = escalations_for_user(user=user)
    workers = assignable_by_agency(
        [case.responsible_agency_id for case in at_risk]
        + [escalation.case.responsible_agency_id for escalation in escalations.open]
    )
    for case in at_risk:
        case.assignable = workers.get(case.responsible_agency_id or 0, [])  # type: ignore[attr-defined]
    for escalation in escalations.open:
        escalation.assignable = workers.get(  # type: ignore[attr-defined]
            escalation.case.responsible_agency_id or 0, []
        )
    return render(
        request,
        "dashboard/supervision.html",
        {
            "current": "supervision",
            "is_supervisor": True,
            "workload": workload_for_user(user=user),
            "at_risk": at_risk,
            "escalations": escalations,
            "series": series,
            "series_rows": list(
                zip(series.days, series.backlog, series.overdue, series.at_risk, strict=True)
            ),
            "chart_data": _chart_data(series),
            "range_form": RangeForm(initial={"start": start, "end": end}),
            "actions": EscalationAction.choices,
            "note_max_length": NOTE_MAX_LENGTH,
        },
    )


def _chosen_assignee(agency_id: int | None, assignee_id: int | None) -> User | None:
    """The chosen person among those who may work the agency's cases; None: unassign."""
    if assignee_id is None:
        return None
    for worker in assignable_users(agency_id=agency_id or 0):
        if worker.pk == assignee_id:
            return worker
    raise DomainError(_("That person may not work this case."))


@supervisor_page
@require_POST
def reassign(request: HttpRequest) -> HttpResponse:
    user = _user(request)
    form = ReassignForm(request.POST)
    if not form.is_valid():
        messages.error(request, _("The reassignment was not understood; nothing changed."))
        return _back()
    case = supervised_case_get(user=user, case_id=form.cleaned_data["case"])
    try:
        assignee = _chosen_assignee(case.responsible_agency_id, form.cleaned_data["assignee"])
        changed = case_assign(
            case_ids=[case.pk], assignee=assignee, actor=user, reason=form.cleaned_data["reason"]
        )
    except DomainError as error:
        messages.error(
            request,
            _("%(reference)s was not reassigned: %(reason)s")
            % {"reference": case.reference, "reason": error.message},
        )
        return _back()
    if not changed:
        messages.info(
            request, _("%(reference)s already had that assignee.") % {"reference": case.reference}
        )
    elif assignee is None:
        messages.success(
            request, _("%(reference)s is now unassigned.") % {"reference": case.reference}
        )
    else:
        messages.success(
            request,
            _("%(reference)s is now assigned to %(name)s.")
            % {"reference": case.reference, "name": assignee.get_username()},
        )
    return _back()


@supervisor_page
@require_POST
def handle_escalation(request: HttpRequest, pk: int) -> HttpResponse:
    user = _user(request)
    escalation = escalation_get_for_user(user=user, escalation_id=pk)
    reference = escalation.case.reference
    form = HandleForm(request.POST)
    if not form.is_valid():
        messages.error(
            request,
            _("The escalation of %(reference)s was not handled: choose an action and write a note.")
            % {"reference": reference},
        )
        return _back()
    data = form.cleaned_data
    try:
        assignee = None
        if data["action"] == EscalationAction.REASSIGN:
            if data["assignee"] is None:
                raise DomainError(_("Choose whom the case goes to."))
            assignee = _chosen_assignee(escalation.case.responsible_agency_id, data["assignee"])
        escalation_handle(
            escalation=escalation,
            actor=user,
            action=data["action"],
            note=data["note"],
            assignee=assignee,
        )
    except DomainError as error:
        messages.error(
            request,
            _("The escalation of %(reference)s was not handled: %(reason)s")
            % {"reference": reference, "reason": error.message},
        )
        return _back()
    messages.success(
        request, _("The escalation of %(reference)s is handled.") % {"reference": reference}
    )
    return _back()
