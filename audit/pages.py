"""The auditors' pages (issue 12): search the log, a case's history and its printable dossier,
integrity checks, and exports. Read-only apart from requesting a check or an export, both
through their services.

Only auditors and administrators see these pages; to anyone else signed in they are a 404, so
that the feature does not show, and an anonymous visitor is sent to the login page.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from functools import wraps
from typing import TYPE_CHECKING, Any, cast

from django import forms
from django.contrib.auth.decorators import login_required
from django.db.models import QuerySet
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.urls import reverse
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.http import require_http_methods
from django_otp.decorators import otp_required
from rest_framework.exceptions import ValidationError as CursorInvalid

from audit.exports import (
    SHANGHAI,
    ExportFiltersInvalid,
    audit_export_allowed,
    audit_export_list_for_user,
    audit_export_request,
)
from audit.integrity import audit_integrity_check_list, audit_integrity_check_request
from audit.models import AuditEvent, AuditExport, AuditIntegrityCheck
from audit.reads import case_opened_record
from scs_cases.pagination import Key, keyset_page

if TYPE_CHECKING:
    from accounts.models import User
    from objections.models import Case, CaseDocument, Decision, DisputeStatement, Evidence
    from records.models import CreditRecordVersion

EVENT_KEYS = (Key("sequence", descending=True),)
EXPORT_KEYS = (Key("id", descending=True),)
EVENTS_PER_PAGE = 50
EXPORTS_PER_PAGE = 20

View = Callable[..., HttpResponse]


def auditor_page(view: View) -> View:
    """Login required; then a 404 for everyone but auditors and administrators; then the
    second factor."""

    verified = otp_required(view)

    @login_required
    @wraps(view)
    def checked(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if not audit_export_allowed(cast("User", request.user)):
            raise Http404("No such page.")
        # Auditors read personal data: the second factor, as for the dashboard and the admin.
        return verified(request, *args, **kwargs)

    return checked


# ---------------------------------------------------------------------------------------------
# Reads (selectors): every one limited to auditors and administrators.


def audit_event_search(
    *,
    user: User,
    case_reference: str = "",
    actor_id: int | None = None,
    action: str = "",
    action_prefix: bool = False,
    since: date | None = None,
    until: date | None = None,
) -> QuerySet[AuditEvent]:
    """The events matching every given filter, unordered (pages order them newest first).
    `since` and `until` are Asia/Shanghai days, both inclusive."""
    if not audit_export_allowed(user):
        return AuditEvent.objects.none()
    events = AuditEvent.objects.all()
    if case_reference:
        events = events.filter(case_reference=case_reference)
    if actor_id is not None:
        events = events.filter(actor_id=actor_id)
    if action:
        events = (
            events.filter(action__startswith=action)
            if action_prefix
            else events.filter(action=action)
        )
    if since is not None:
        events = events.filter(recorded_at__gte=datetime.combine(since, time.min, SHANGHAI))
    if until is not None:
        end = datetime.combine(until + timedelta(days=1), time.min, SHANGHAI)
        events = events.filter(recorded_at__lt=end)
    return events


def audit_case_history(*, user: User, reference: str) -> list[AuditEvent]:
    """Every event recorded with the case's reference, in sequence order."""
    events = audit_event_search(user=user, case_reference=reference)
    return list(events.order_by("sequence"))


def _case_for_auditor(*, user: User, reference: str) -> Case | None:
    # Imported here: the audit app stays a leaf that the domain apps call, not the other way.
    from objections.selectors import case_get_for_audit

    try:
        return case_get_for_audit(user=user, reference=reference)
    except Http404:
        return None


@dataclass(frozen=True)
class Dossier:
    case: Case
    versions: list[CreditRecordVersion]
    documents: list[CaseDocument]
    evidence: list[Evidence]
    decisions: list[Decision]
    dispute: DisputeStatement | None
    timeline: list[AuditEvent]


def case_dossier_get(*, user: User, reference: str) -> Dossier:
    """One case as an auditor reads it: the record's versions, the documents checklist, the
    evidence files with their hashes, the decisions, the dispute statement and the log's
    timeline. 404 outside the user's scope."""
    from objections.models import CaseDocument, Decision, DisputeStatement, Evidence
    from records.models import CreditRecordVersion

    if not audit_export_allowed(user):
        raise Http404("No such case.")
    case = _case_for_auditor(user=user, reference=reference)
    if case is None:
        raise Http404("No such case.")
    return Dossier(
        case=case,
        versions=list(
            CreditRecordVersion.objects.filter(record_id=case.record_id)
            .select_related("category")
            .order_by("version")
        ),
        documents=list(
            CaseDocument.objects.filter(case=case).select_related("recorded_by").order_by("id")
        ),
        evidence=list(
            Evidence.objects.filter(case=case).select_related("uploaded_by").order_by("id")
        ),
        decisions=list(
            Decision.objects.filter(case=case)
            .select_related("decided_by", "approved_by")
            .order_by("id")
        ),
        dispute=DisputeStatement.objects.filter(case=case).select_related("author").first(),
        timeline=audit_case_history(user=user, reference=case.reference),
    )


# ---------------------------------------------------------------------------------------------
# Presentation helpers


@dataclass(frozen=True)
class EventRow:
    event: AuditEvent
    payload: str


def event_rows(events: list[AuditEvent]) -> list[EventRow]:
    return [
        EventRow(
            event=event,
            payload=json.dumps(event.payload, ensure_ascii=False, indent=2, sort_keys=True),
        )
        for event in events
    ]


def status_labels() -> dict[str, str]:
    return {
        "queued": _("queued"),
        "running": _("running"),
        "done": _("done"),
        "failed": _("failed"),
        "passed": _("passed"),
    }


def filters_text(filters: dict[str, Any]) -> str:
    if "case_reference" in filters:
        return _("Case %(reference)s") % {"reference": filters["case_reference"]}
    if "from" in filters:
        return _("Period %(first)s to %(last)s") % {"first": filters["from"], "last": filters["to"]}
    if "agency" in filters:
        return _("Agency %(code)s") % {"code": filters["agency"]}
    return _("Actor %(id)s") % {"id": filters.get("actor_id")}


def mark_invalid(form: forms.Form) -> None:
    """Tie each field with an error to its message, for screen readers."""
    for name in form.errors:
        if name in form.fields:
            attrs = form.fields[name].widget.attrs
            attrs["aria-invalid"] = "true"
            described = attrs.get("aria-describedby", "")
            attrs["aria-describedby"] = f"{described} error_{name}".strip()


def _page_of(
    request: HttpRequest, queryset: QuerySet[Any], *, keys: tuple[Key, ...], limit: int
) -> tuple[list[Any], str | None, bool]:
    """The rows of the page the request's `cursor` asks for, the next page's cursor, and
    whether the cursor was one of ours (a bad one shows the first page)."""
    cursor = request.GET.get("cursor") or None
    try:
        page = keyset_page(queryset, keys=keys, cursor=cursor, limit=limit)
        return page.rows, page.next_cursor, True
    except CursorInvalid:
        page = keyset_page(queryset, keys=keys, cursor=None, limit=limit)
        return page.rows, page.next_cursor, False


def _next_url(request: HttpRequest, cursor: str | None) -> str | None:
    if cursor is None:
        return None
    query = request.GET.copy()
    query["cursor"] = cursor
    return f"{request.path}?{query.urlencode()}"


# ---------------------------------------------------------------------------------------------
# The log: search and case history


class EventSearchForm(forms.Form):
    case_reference = forms.CharField(
        label=gettext_lazy("Case reference"),
        max_length=32,
        required=False,
        help_text=gettext_lazy("For example SH-2026-000123."),
    )
    actor_id = forms.IntegerField(label=gettext_lazy("Actor id"), min_value=1, required=False)
    action = forms.CharField(
        label=gettext_lazy("Action"),
        max_length=64,
        required=False,
        help_text=gettext_lazy("For example case.transitioned, or case. with “starts with”."),
    )
    match = forms.ChoiceField(
        label=gettext_lazy("Action match"),
        choices=[("exact", gettext_lazy("is exactly")), ("prefix", gettext_lazy("starts with"))],
        required=False,
    )
    since = forms.DateField(
        label=gettext_lazy("From (day)"),
        required=False,
        widget=forms.DateInput(attrs={"type": "date"}),
        help_text=gettext_lazy("Days in Asia/Shanghai time, both included."),
    )
    until = forms.DateField(
        label=gettext_lazy("To (day)"),
        required=False,
        widget=forms.DateInput(attrs={"type": "date"}),
    )

    def clean_case_reference(self) -> str:
        return str(self.cleaned_data.get("case_reference") or "").strip()

    def clean_action(self) -> str:
        return str(self.cleaned_data.get("action") or "").strip()

    def clean(self) -> dict[str, Any]:
        cleaned: dict[str, Any] = super().clean() or {}
        since, until = cleaned.get("since"), cleaned.get("until")
        if since and until and since > until:
            self.add_error("until", _("The last day is before the first day."))
        return cleaned


@require_http_methods(["GET"])
@auditor_page
def events(request: HttpRequest) -> HttpResponse:
    user = cast("User", request.user)
    form = EventSearchForm(request.GET or None)
    rows: list[AuditEvent] = []
    next_cursor: str | None = None
    cursor_ok = True
    if form.is_bound and not form.is_valid():
        mark_invalid(form)
    else:
        data = form.cleaned_data if form.is_bound else {}
        queryset = audit_event_search(
            user=user,
            case_reference=data.get("case_reference", ""),
            actor_id=data.get("actor_id"),
            action=data.get("action", ""),
            action_prefix=data.get("match") == "prefix",
            since=data.get("since"),
            until=data.get("until"),
        )
        rows, next_cursor, cursor_ok = _page_of(
            request, queryset, keys=EVENT_KEYS, limit=EVENTS_PER_PAGE
        )
    return render(
        request,
        "audit/events.html",
        {
            "form": form,
            "rows": event_rows(rows),
            "next_url": _next_url(request, next_cursor),
            "first_url": request.path
            + ("?" + _without_cursor(request) if _without_cursor(request) else ""),
            "paged": bool(request.GET.get("cursor")),
            "cursor_ok": cursor_ok,
            "per_page": EVENTS_PER_PAGE,
        },
    )


def _without_cursor(request: HttpRequest) -> str:
    query = request.GET.copy()
    query.pop("cursor", None)
    return query.urlencode()


@require_http_methods(["GET"])
@auditor_page
def case_history(request: HttpRequest, reference: str) -> HttpResponse:
    user = cast("User", request.user)
    history = audit_case_history(user=user, reference=reference)
    case = _case_for_auditor(user=user, reference=reference)
    if case is None and not history:
        raise Http404("No such case.")
    return render(
        request,
        "audit/case_history.html",
        {"reference": reference, "case": case, "rows": event_rows(history)},
    )


@require_http_methods(["GET"])
@auditor_page
def case_dossier(request: HttpRequest, reference: str) -> HttpResponse:
    user = cast("User", request.user)
    dossier = case_dossier_get(user=user, reference=reference)
    case = dossier.case
    response = render(
        request, "audit/dossier.html", {"dossier": dossier, "case": case, "record": case.record}
    )
    # The dossier holds the record's facts: a read of personal data, recorded once the page is
    # built and before it leaves (no record of the read, no page).
    case_opened_record(actor=user, case=case)
    return response


# ---------------------------------------------------------------------------------------------
# Integrity


@require_http_methods(["GET", "POST"])
@auditor_page
def integrity(request: HttpRequest) -> HttpResponse:
    user = cast("User", request.user)
    if request.method == "POST":
        audit_integrity_check_request(actor=user)
        return HttpResponseRedirect(reverse("audit:integrity"))
    labels = status_labels()
    checks = [(check, labels[check.status]) for check in audit_integrity_check_list(user=user)]
    latest = checks[0][0] if checks else None
    pending = (AuditIntegrityCheck.Status.QUEUED, AuditIntegrityCheck.Status.RUNNING)
    return render(
        request,
        "audit/integrity.html",
        {
            "latest": latest,
            "latest_label": checks[0][1] if checks else "",
            "checks": checks,
            "pending": latest is not None and latest.status in pending,
        },
    )


# ---------------------------------------------------------------------------------------------
# Exports


class ExportRequestForm(forms.Form):
    """Exactly one selection: a case; a period; an agency; or an actor."""

    case_reference = forms.CharField(
        label=gettext_lazy("Case reference"),
        max_length=32,
        required=False,
        help_text=gettext_lazy("For example SH-2026-000123."),
    )
    period_from = forms.DateField(
        label=gettext_lazy("Period from (day)"),
        required=False,
        widget=forms.DateInput(attrs={"type": "date"}),
        help_text=gettext_lazy("Days in Asia/Shanghai time, both included."),
    )
    period_to = forms.DateField(
        label=gettext_lazy("Period to (day)"),
        required=False,
        widget=forms.DateInput(attrs={"type": "date"}),
    )
    agency = forms.ChoiceField(label=gettext_lazy("Agency"), required=False)
    actor_id = forms.IntegerField(label=gettext_lazy("Actor id"), min_value=1, required=False)

    def __init__(self, *args: Any, agencies: list[tuple[str, str]], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        field = cast(forms.ChoiceField, self.fields["agency"])
        field.choices = [("", _("(none)")), *agencies]

    def clean_case_reference(self) -> str:
        return str(self.cleaned_data.get("case_reference") or "").strip()

    def clean(self) -> dict[str, Any]:
        cleaned: dict[str, Any] = super().clean() or {}
        if self.errors:
            return cleaned
        first, last = cleaned.get("period_from"), cleaned.get("period_to")
        chosen = [
            name
            for name, given in (
                ("case", bool(cleaned.get("case_reference"))),
                ("period", bool(first or last)),
                ("agency", bool(cleaned.get("agency"))),
                ("actor", cleaned.get("actor_id") is not None),
            )
            if given
        ]
        if not chosen:
            raise forms.ValidationError(
                _("Give one selection: a case reference, a period, an agency or an actor id."),
                code="none",
            )
        if len(chosen) > 1:
            raise forms.ValidationError(
                _(
                    "Give only one selection: a case reference, a period, an agency or an "
                    "actor id, not several."
                ),
                code="several",
            )
        if chosen == ["period"]:
            if first is None:
                self.add_error("period_from", _("Give the first day of the period."))
            if last is None:
                self.add_error("period_to", _("Give the last day of the period."))
            if first and last and first > last:
                self.add_error("period_to", _("The last day is before the first day."))
        return cleaned

    def filters(self) -> dict[str, Any]:
        data = self.cleaned_data
        if data.get("case_reference"):
            return {"case_reference": data["case_reference"]}
        if data.get("period_from"):
            return {"from": data["period_from"].isoformat(), "to": data["period_to"].isoformat()}
        if data.get("agency"):
            return {"agency": data["agency"]}
        return {"actor_id": data["actor_id"]}


def _agencies() -> list[tuple[str, str]]:
    from records.models import Agency

    return [
        (code, f"{name_zh} ({code})")
        for code, name_zh in Agency.objects.order_by("code").values_list("code", "name_zh")
    ]


@require_http_methods(["GET", "POST"])
@auditor_page
def exports(request: HttpRequest) -> HttpResponse:
    user = cast("User", request.user)
    if request.method == "POST":
        form = ExportRequestForm(request.POST, agencies=_agencies())
        if form.is_valid():
            try:
                export = audit_export_request(actor=user, filters=form.filters())
            except ExportFiltersInvalid as error:
                form.add_error(None, error.message)
            else:
                return HttpResponseRedirect(f"{reverse('audit:exports')}?requested={export.pk}")
        mark_invalid(form)
        status = 400
    else:
        initial = {"case_reference": request.GET.get("case_reference", "")}
        form = ExportRequestForm(initial=initial, agencies=_agencies())
        status = 200
    rows, next_cursor, cursor_ok = _page_of(
        request, audit_export_list_for_user(user=user), keys=EXPORT_KEYS, limit=EXPORTS_PER_PAGE
    )
    requested = request.GET.get("requested", "")
    labels = status_labels()
    return render(
        request,
        "audit/exports.html",
        {
            "form": form,
            "exports": [
                (export, filters_text(export.filters), labels[export.status]) for export in rows
            ],
            "statuses": labels,
            "running": [AuditExport.Status.QUEUED, AuditExport.Status.RUNNING],
            "next_url": _next_url(request, next_cursor) if request.method == "GET" else None,
            "cursor_ok": cursor_ok,
            "requested": requested if requested.isdigit() else "",
        },
        status=status,
    )
