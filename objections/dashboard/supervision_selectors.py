"""Reads for the supervisor's view: workload, deadline risk, escalations and their history.

Scope: a supervisor sees the cases their agency is responsible for; an administrator sees every
case; anyone else sees nothing. Every read is a fixed number of aggregate queries (GROUP BY),
whatever the number of cases, so the page costs the same at ten cases and at a million.

"At risk": an open case with a running clock past its reminder day (80 % of its period) and not
yet overdue. "Overdue": an open case whose earliest running deadline (`next_due_on`) is before
today.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

from django.db.models import Count, Exists, F, OuterRef, Q, QuerySet
from django.db.models.functions import TruncDate
from django.http import Http404
from django.utils import timezone

from accounts import roles
from accounts.models import User
from audit.models import AuditEvent
from objections.models import Case, Clock, Escalation
from records.models import Agency

LIST_LIMIT = 50
SERIES_DAYS = 90
SERIES_MAX_DAYS = 366
ESCALATION_HANDLED = "escalation.handled"


def supervised_scope(user: User) -> Q | None:
    """The condition on cases `user` supervises; None: every case (an administrator)."""
    names = roles.role_names(user)
    if roles.ADMINISTRATOR in names:
        return None
    if roles.SUPERVISOR in names and user.agency_id is not None:
        return Q(responsible_agency_id=user.agency_id)
    return Q(pk__in=[])


def supervised_cases(*, user: User) -> QuerySet[Case]:
    scope = supervised_scope(user)
    return Case.objects.all() if scope is None else Case.objects.filter(scope)


def _at_risk_clock(today: date) -> Exists:
    return Exists(
        Clock.objects.filter(
            case_id=OuterRef("pk"),
            status=Clock.Status.RUNNING,
            remind_on__lte=today,
            due_on__gte=today,
        )
    )


def _overdue(today: date) -> Q:
    return Q(next_due_on__lt=today)


def _at_risk(today: date) -> Q:
    return Q(_at_risk_clock(today)) & (Q(next_due_on__isnull=True) | Q(next_due_on__gte=today))


# --- workload ----------------------------------------------------------------------------------


@dataclass
class WorkloadRow:
    """Open cases of one caseworker or one agency; `unassigned` only for agencies."""

    key: int | None
    label: str
    agency: str = ""
    open: int = 0
    at_risk: int = 0
    overdue: int = 0
    unassigned: int = 0


@dataclass
class Workload:
    caseworkers: list[WorkloadRow] = field(default_factory=list)
    agencies: list[WorkloadRow] = field(default_factory=list)


def _counts(today: date) -> dict[str, Count]:
    return {
        "open_count": Count("id"),
        "at_risk_count": Count("id", filter=_at_risk(today)),
        "overdue_count": Count("id", filter=_overdue(today)),
    }


def _fill(row: WorkloadRow, counts: dict[str, Any]) -> WorkloadRow:
    row.open = counts["open_count"]
    row.at_risk = counts["at_risk_count"]
    row.overdue = counts["overdue_count"]
    row.unassigned = counts.get("unassigned_count", 0)
    return row


def _workers_in_scope(user: User) -> QuerySet[User]:
    workers = User.objects.filter(
        is_active=True,
        agency__isnull=False,
        groups__name__in=(roles.CASEWORKER, roles.SUPERVISOR),
    )
    agency_id = _supervised_agency(user)
    if agency_id is not None:
        workers = workers.filter(agency_id=agency_id)
    return workers.distinct()


def _supervised_agency(user: User) -> int | None:
    """The agency `user` supervises; None for an administrator; 0 (no agency) for anyone else."""
    names = roles.role_names(user)
    if roles.ADMINISTRATOR in names:
        return None
    if roles.SUPERVISOR in names and user.agency_id is not None:
        return user.agency_id
    return 0


def workload_for_user(*, user: User, today: date | None = None) -> Workload:
    """Open cases, at risk and overdue, per caseworker and per agency (three queries, plus one
    for the agencies' names).

    Every active caseworker and supervisor in scope is listed, with zeros when they have no open
    case, and so is anyone else who still holds open cases (someone since deactivated); agencies
    are the supervisor's own, or every agency for an administrator.
    """
    today = today or timezone.localdate()
    open_cases = supervised_cases(user=user).filter(is_open=True)

    by_assignee = {
        row["assignee_id"]: row
        for row in open_cases.filter(assignee__isnull=False)
        .values("assignee_id", "assignee__username", "assignee__agency__code")
        .annotate(**_counts(today))
        .order_by()
    }
    rows: dict[int, WorkloadRow] = {}
    for worker_id, username, agency_code in _workers_in_scope(user).values_list(
        "id", "username", "agency__code"
    ):
        rows[worker_id] = WorkloadRow(key=worker_id, label=username, agency=agency_code or "")
    for worker_id, counts in by_assignee.items():
        row = rows.setdefault(
            worker_id,
            WorkloadRow(
                key=worker_id,
                label=counts["assignee__username"],
                agency=counts["assignee__agency__code"] or "",
            ),
        )
        _fill(row, counts)
    caseworkers = sorted(rows.values(), key=lambda r: (-r.overdue, -r.at_risk, -r.open, r.label))

    by_agency = {
        row["responsible_agency_id"]: row
        for row in open_cases.values("responsible_agency_id")
        .annotate(**_counts(today), unassigned_count=Count("id", filter=Q(assignee__isnull=True)))
        .order_by()
    }
    agencies_shown = Agency.objects.order_by("code")
    agency_id = _supervised_agency(user)
    if agency_id is not None:
        agencies_shown = agencies_shown.filter(pk=agency_id)
    agencies = [
        _fill(WorkloadRow(key=pk, label=code), by_agency[pk])
        if pk in by_agency
        else WorkloadRow(key=pk, label=code)
        for pk, code in agencies_shown.values_list("pk", "code")
    ]
    if None in by_agency:  # filed and not routed yet: no agency answers for them
        agencies.append(_fill(WorkloadRow(key=None, label=""), by_agency[None]))
    agencies.sort(key=lambda r: (-r.overdue, -r.at_risk, -r.open, r.label))
    return Workload(caseworkers=caseworkers, agencies=agencies)


# --- cases at risk and overdue -------------------------------------------------------------------


def cases_at_risk_for_user(
    *, user: User, today: date | None = None, limit: int = LIST_LIMIT
) -> list[Case]:
    """Open cases overdue or at risk, the most urgent first (earliest deadline), at most
    `limit`. Each carries `risk` ("overdue" or "at_risk") and `days_late` (0 when at risk)."""
    today = today or timezone.localdate()
    cases = list(
        supervised_cases(user=user)
        .filter(is_open=True)
        .filter(_overdue(today) | Q(_at_risk_clock(today)))
        .select_related("assignee", "responsible_agency", "jurisdiction")
        .order_by("next_due_on", "id")[:limit]
    )
    for case in cases:
        overdue = case.next_due_on is not None and case.next_due_on < today
        case.risk = "overdue" if overdue else "at_risk"  # type: ignore[attr-defined]
        late = (today - case.next_due_on).days if overdue and case.next_due_on else 0
        case.days_late = late  # type: ignore[attr-defined]
    return cases


def assignable_by_agency(agency_ids: Iterable[int | None]) -> dict[int, list[User]]:
    """`objections.services.assignment.assignable_users` for several agencies in one query."""
    wanted = {pk for pk in agency_ids if pk is not None}
    found: dict[int, list[User]] = defaultdict(list)
    if not wanted:
        return found
    for worker in (
        User.objects.filter(
            agency_id__in=wanted,
            is_active=True,
            groups__name__in=(roles.CASEWORKER, roles.SUPERVISOR),
        )
        .distinct()
        .order_by("username")
    ):
        found[worker.agency_id or 0].append(worker)
    return found


def supervised_case_get(*, user: User, case_id: int) -> Case:
    try:
        return supervised_cases(user=user).get(pk=case_id)
    except Case.DoesNotExist as error:
        raise Http404("No such case.") from error


# --- escalations ---------------------------------------------------------------------------------


def escalation_list_for_user(*, user: User) -> QuerySet[Escalation]:
    scope = supervised_scope(user)
    escalations = Escalation.objects.select_related(
        "case__assignee", "case__responsible_agency", "clock", "resolved_by"
    )
    if scope is None:
        return escalations
    return escalations.filter(case__in=Case.objects.filter(scope).values("pk"))


def escalation_get_for_user(*, user: User, escalation_id: int) -> Escalation:
    try:
        return escalation_list_for_user(user=user).get(pk=escalation_id)
    except Escalation.DoesNotExist as error:
        raise Http404("No such escalation.") from error


@dataclass
class Escalations:
    open: list[Escalation]
    open_total: int
    handled: list[Escalation]


def escalations_for_user(*, user: User, limit: int = LIST_LIMIT) -> Escalations:
    """Open escalations (the longest overdue first) and the latest handled ones, each handled
    one with `action` and `note` from its audit event (four queries)."""
    escalations = escalation_list_for_user(user=user)
    pending = escalations.filter(resolved_at__isnull=True)
    handled = list(
        escalations.filter(resolved_at__isnull=False).order_by("-resolved_at", "-id")[:limit]
    )
    details = {
        event.target_id: event.payload
        for event in AuditEvent.objects.filter(
            action=ESCALATION_HANDLED,
            target_type=Escalation._meta.label_lower,
            target_id__in=[str(escalation.pk) for escalation in handled],
        )
    }
    for escalation in handled:
        payload = details.get(str(escalation.pk), {})
        escalation.action = payload.get("action", "")  # type: ignore[attr-defined]
        escalation.note = payload.get("note", "")  # type: ignore[attr-defined]
    return Escalations(
        open=list(pending.order_by("clock__due_on", "id")[:limit]),
        open_total=pending.count(),
        handled=handled,
    )


# --- time series ---------------------------------------------------------------------------------


@dataclass
class Series:
    """One value per day from `first` to `last`: the backlog of open cases at the end of the
    day, and the running clocks overdue and at risk on it."""

    days: list[date]
    backlog: list[int]
    overdue: list[int]
    at_risk: list[int]


def series_range(
    *, start: date | None = None, end: date | None = None, today: date | None = None
) -> tuple[date, date]:
    """The days a chart covers: the last `SERIES_DAYS` by default, at most `SERIES_MAX_DAYS`,
    never past today."""
    today = today or timezone.localdate()
    end = min(end or today, today)
    start = start or end - timedelta(days=SERIES_DAYS - 1)
    start = max(min(start, end), end - timedelta(days=SERIES_MAX_DAYS - 1))
    return start, end


def _add(counts: list[int], first: date, start: date, stop: date, amount: int) -> None:
    """Add `amount` to each day from `start` to `stop` inclusive, within the range."""
    low = max((start - first).days, 0)
    high = min((stop - first).days, len(counts) - 1)
    for index in range(low, high + 1):
        counts[index] += amount


def _local_day(moment: datetime | date | None) -> date | None:
    if moment is None or not isinstance(moment, datetime):
        return moment
    return timezone.localdate(moment)


def series_for_user(*, user: User, start: date, end: date) -> Series:
    """Backlog and deadline risk per day from `start` to `end` (three GROUP BY queries).

    Computed from the data as it stands: a case counts from the day it was filed until the day
    before it closed; a clock counts from its start until the day before it stopped or was
    cancelled, and a paused clock as stopped on the day its current pause began (earlier pauses
    and the deadline they moved are not replayed, so a clock once paused shows by its current
    due day).
    """
    days = [start + timedelta(days=offset) for offset in range((end - start).days + 1)]
    backlog = [0] * len(days)
    overdue = [0] * len(days)
    at_risk = [0] * len(days)
    cases = supervised_cases(user=user)
    after_end = end + timedelta(days=1)

    # Cases filed by the end and not closed before the start, grouped by the two days.
    for row in (
        cases.annotate(filed_on=TruncDate("filed_at"), closed_on=TruncDate("closed_at"))
        .filter(filed_on__lte=end)
        .filter(Q(closed_on__isnull=True) | Q(closed_on__gt=start))
        .values("filed_on", "closed_on")
        .annotate(count=Count("id"))
        .order_by()
    ):
        closed_on = _local_day(row["closed_on"])
        last = closed_on - timedelta(days=1) if closed_on else end
        _add(backlog, start, _local_day(row["filed_on"]) or start, last, row["count"])

    # Clocks that ran in the range, grouped by the days that decide when they count.
    clocks = (
        Clock.objects.filter(case__in=cases.values("pk"), started_on__lte=end)
        .exclude(status=Clock.Status.PAUSED)
        .annotate(stopped_on=TruncDate("stopped_at"))
        .filter(Q(stopped_on__isnull=True) | Q(stopped_on__gt=start))
    )
    groups: list[dict[str, Any]] = list(
        clocks.values("remind_on", "due_on", "stopped_on").annotate(count=Count("id")).order_by()
    )
    paused = (
        Clock.objects.filter(
            case__in=cases.values("pk"), started_on__lte=end, status=Clock.Status.PAUSED
        )
        .filter(pauses__ended_at__isnull=True, pauses__started_on__gt=start)
        .values("remind_on", "due_on", stopped_on=F("pauses__started_on"))
        .annotate(count=Count("id", distinct=True))
        .order_by()
    )
    groups.extend(paused)
    for row in groups:
        stopped_on = _local_day(row["stopped_on"])
        last = stopped_on - timedelta(days=1) if stopped_on else after_end
        due_on: date = row["due_on"]
        _add(at_risk, start, row["remind_on"], min(due_on, last), row["count"])
        _add(overdue, start, due_on + timedelta(days=1), last, row["count"])
    return Series(days=days, backlog=backlog, overdue=overdue, at_risk=at_risk)
