"""The queue: a member of staff's open cases by remaining statutory time, with filters, search,
keyset pages and bulk assignment."""

from __future__ import annotations

from typing import Any, cast

from django.contrib import messages
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.urls import reverse
from django.utils import timezone
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.translation import gettext as _
from django.views.decorators.http import require_http_methods, require_POST
from rest_framework.exceptions import ValidationError as CursorInvalid

from accounts.models import User
from objections.dashboard.access import dashboard_page, is_supervisor
from objections.dashboard.selectors import (
    QUEUE_KEYS,
    VIEWS,
    QueueFilterInvalid,
    QueueFilters,
    clock_badge,
    queue_filter_choices,
    queue_filters_from,
    queue_for_user,
    staff_case_list,
)
from objections.exceptions import AssigneeNotAllowed, CaseConflict, RoleNotAllowed
from objections.services.assignment import case_assign
from scs_cases.pagination import keyset_page

ROWS_PER_PAGE = 50
MAX_BULK = 200


def _user(request: HttpRequest) -> User:
    return cast("User", request.user)


@dashboard_page
@require_http_methods(["GET", "HEAD"])
def queue(request: HttpRequest) -> HttpResponse:
    user = _user(request)
    errors: dict[str, str] = {}
    try:
        filters = queue_filters_from(request.GET)
    except QueueFilterInvalid as error:
        errors[error.field] = str(error)
        filters = QueueFilters()
    cases = queue_for_user(user=user, filters=filters)
    try:
        page = keyset_page(
            cases, keys=QUEUE_KEYS, cursor=request.GET.get("cursor"), limit=ROWS_PER_PAGE
        )
    except CursorInvalid:
        errors["cursor"] = _("This page link is no longer valid: the queue starts again here.")
        page = keyset_page(cases, keys=QUEUE_KEYS, cursor=None, limit=ROWS_PER_PAGE)
    today = timezone.localdate()
    choices = queue_filter_choices(user=user)
    labels = dict(choices.states)
    rows = []
    for case in page.rows:
        case.state_label = labels.get(case.state, case.state)  # type: ignore[attr-defined]
        rows.append((case, clock_badge(case, today=today)))
    next_url = None
    if page.next_cursor:
        query = request.GET.copy()
        query["cursor"] = page.next_cursor
        next_url = f"{request.path}?{query.urlencode()}"
    first_url = None
    if request.GET.get("cursor"):
        query = request.GET.copy()
        query.pop("cursor")
        first_url = f"{request.path}?{query.urlencode()}"
    context: dict[str, Any] = {
        "current": "queue",
        "is_supervisor": is_supervisor(user),
        "rows": rows,
        "filters": filters,
        "errors": errors,
        "views": VIEWS,
        "choices": choices,
        "next_url": next_url,
        "first_url": first_url,
        "today": today,
    }
    return render(request, "dashboard/queue.html", context)


@dashboard_page
@require_POST
def bulk_assign(request: HttpRequest) -> HttpResponse:
    """Assign the ticked cases to one person (supervisors), or take one (caseworkers)."""
    user = _user(request)
    back = request.POST.get("next", "")
    if not url_has_allowed_host_and_scheme(back, allowed_hosts={request.get_host()}):
        back = reverse("dashboard:queue")
    references = request.POST.getlist("cases")[:MAX_BULK]
    if not references:
        messages.error(request, _("Tick at least one case to assign."))
        return HttpResponseRedirect(back)
    cases = list(staff_case_list(user=user).filter(reference__in=references))
    if len(cases) != len(set(references)):
        messages.error(request, _("A case you ticked is not in your queue; nothing was assigned."))
        return HttpResponseRedirect(back)
    raw = request.POST.get("assignee", "")
    assignee: User | None
    if raw == "me":
        assignee = user
    elif raw == "none":
        assignee = None
    else:
        assignee = User.objects.filter(pk=int(raw)).first() if raw.isdigit() else None
        if assignee is None:
            messages.error(request, _("Choose whom to assign the cases to."))
            return HttpResponseRedirect(back)
    try:
        changed = case_assign(case_ids=[case.pk for case in cases], assignee=assignee, actor=user)
    except (AssigneeNotAllowed, CaseConflict, RoleNotAllowed) as error:
        messages.error(request, _("Nothing was assigned: %(reason)s") % {"reason": error})
        return HttpResponseRedirect(back)
    messages.success(
        request,
        _("%(count)d case(s) assigned to %(name)s.")
        % {
            "count": len(changed),
            "name": assignee.get_username() if assignee else _("nobody"),
        },
    )
    return HttpResponseRedirect(back)
