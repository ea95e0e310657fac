"""Clocks: statutory deadlines per case state, paused, resumed, extended, swept by beat."""

from __future__ import annotations

import math
from collections.abc import Iterable
from datetime import date, timedelta
from typing import TYPE_CHECKING

from django.db.models import Q
from django.utils import timezone

from audit.services import audit_record, audited
from objections import workflow
from objections.calendar import CALENDAR_DAYS, WORKING_DAYS, WorkingCalendar, add
from objections.exceptions import ExtensionRefused
from objections.models import Case, Clock, ClockPause, Escalation
from objections.services.calendars import working_calendar

if TYPE_CHECKING:
    from accounts.models import User

OPEN_STATUSES = (Clock.Status.RUNNING, Clock.Status.PAUSED)


def _merge_years(*groups: Iterable[int]) -> list[int]:
    return sorted({int(year) for group in groups for year in group})


def _remind_on(started_on: date, due_on: date, share: float) -> date:
    span = (due_on - started_on).days
    return started_on + timedelta(days=math.floor(span * share))


def clocks_start(*, case: Case, definition: workflow.Definition, state: str, today: date) -> None:
    """Start the timers of `state` that are not already open (a case may come back to a state)."""
    open_timers = set(
        Clock.objects.filter(case=case, status__in=OPEN_STATUSES).values_list("timer", flat=True)
    )
    calendar = working_calendar()
    filed_on = timezone.localdate(case.filed_at)
    for timer in definition.timers_for(state):
        if timer.name in open_timers:
            continue
        start = filed_on if timer.starts_on == "filed" else today
        deadline = add(calendar, start=start, amount=timer.amount, unit=timer.unit)
        Clock.objects.create(
            case=case,
            timer=timer.name,
            state=state,
            unit=timer.unit,
            amount=timer.amount,
            extension_cap=timer.extension_cap,
            started_on=start,
            due_on=deadline.due,
            remind_on=_remind_on(start, deadline.due, timer.reminder_at),
            trace=deadline.trace_text(),
            on_expiry=timer.on_expiry,
            source_citation=timer.source.citation[:300],
            source_verified=timer.source.verified,
            provisional_years=list(deadline.provisional_years),
            provisional=deadline.provisional,
        )


def clocks_stop_outside(
    *, case: Case, definition: workflow.Definition, state: str, now: object, transition: str = ""
) -> None:
    """Stop running clocks whose period does not continue into `state`.

    A timer name shared by several states is one legal period (e.g. 5 WD from receipt while the
    case is marked and then under review), so its clock keeps running. Paused clocks wait for
    their resume.
    """
    continuing = {timer.name for timer in definition.timers_for(state)}
    cancelled = {timer.name for timer in definition.timers if transition in timer.cancelled_by}
    stopping = Clock.objects.filter(case=case, status=Clock.Status.RUNNING).exclude(
        timer__in=continuing
    )
    stopping.filter(timer__in=cancelled).update(status=Clock.Status.CANCELLED, stopped_at=now)
    stopping.update(status=Clock.Status.STOPPED, stopped_at=now)


def clocks_stop_all(*, case: Case, now: object) -> None:
    Clock.objects.filter(case=case, status__in=OPEN_STATUSES).update(
        status=Clock.Status.STOPPED, stopped_at=now
    )


def clocks_pause(*, case: Case, actor: User, reason: str, today: date) -> list[int]:
    now = timezone.now()
    paused = []
    for clock in Clock.objects.filter(case=case, status=Clock.Status.RUNNING):
        ClockPause.objects.create(
            clock=clock, started_at=now, started_on=today, reason=reason, actor=actor
        )
        clock.status = Clock.Status.PAUSED
        clock.save(update_fields=["status", "updated_at"])
        paused.append(clock.pk)
    return paused


def clocks_resume(*, case: Case, today: date) -> list[int]:
    """Resume paused clocks; each deadline moves by the paused time, in the clock's own unit."""
    calendar = working_calendar()
    resumed = []
    for clock in Clock.objects.filter(case=case, status=Clock.Status.PAUSED):
        pause = clock.pauses.filter(ended_at__isnull=True).order_by("-started_at").first()
        if pause is not None:
            pause.ended_at = timezone.now()
            pause.save(update_fields=["ended_at"])
            paused_for = _paused_for(calendar, clock, pause.started_on, today)
            if clock.unit == WORKING_DAYS:
                clock.provisional_years = _merge_years(
                    clock.provisional_years,
                    calendar.provisional_years_between(pause.started_on, today),
                )
            if paused_for > 0:
                moved = add(calendar, start=clock.due_on, amount=paused_for, unit=clock.unit)
                clock.due_on = moved.due
                clock.provisional_years = _merge_years(
                    clock.provisional_years, moved.provisional_years
                )
                clock.trace += (
                    f"\npaused {pause.started_on.isoformat()}..{today.isoformat()} "
                    f"({paused_for} {clock.unit} days): {pause.reason}\n{moved.trace_text()}"
                )
                clock.remind_on = _remind_on(clock.started_on, clock.due_on, 0.8)
            clock.provisional = bool(clock.provisional_years)
        clock.status = Clock.Status.RUNNING
        clock.save(
            update_fields=[
                "status",
                "due_on",
                "trace",
                "remind_on",
                "provisional_years",
                "provisional",
                "updated_at",
            ]
        )
        resumed.append(clock.pk)
    return resumed


def _paused_for(calendar: WorkingCalendar, clock: Clock, started_on: date, ended_on: date) -> int:
    """How long a pause lasted, in the clock's own unit."""
    if clock.unit == CALENDAR_DAYS:
        return max((ended_on - started_on).days, 0)
    return calendar.working_days_between(started_on, ended_on)


def clocks_extension_check(*, case: Case, days: int) -> list[Clock]:
    """The running clocks an extension of `days` would move; ExtensionRefused if it may not."""
    if days < 1:
        raise ExtensionRefused("An extension must be at least one day.", cap=None)
    extendable = []
    for clock in Clock.objects.filter(case=case, status=Clock.Status.RUNNING):
        if clock.extension_cap is None:
            continue
        total = clock.amount + clock.extended_by + days
        if total > clock.extension_cap:
            raise ExtensionRefused(
                f"The extension would bring {clock.timer} to {total} {clock.unit} days; "
                f"the rules allow at most {clock.extension_cap}.",
                cap=clock.extension_cap,
            )
        extendable.append(clock)
    if not extendable:
        raise ExtensionRefused("No running deadline of this case may be extended.", cap=None)
    return extendable


def clocks_extend(*, case: Case, days: int, reason: str, today: date) -> list[int]:
    """Extend the running clocks that allow it, within their cap (e.g. Zhejiang: 20 WD in all)."""
    calendar = working_calendar()
    extended = []
    for clock in clocks_extension_check(case=case, days=days):
        moved = add(calendar, start=clock.due_on, amount=days, unit=clock.unit)
        clock.extended_by += days
        clock.due_on = moved.due
        clock.provisional_years = _merge_years(clock.provisional_years, moved.provisional_years)
        clock.provisional = bool(clock.provisional_years)
        clock.trace += f"\nextended by {days} {clock.unit} days: {reason}\n{moved.trace_text()}"
        clock.save(
            update_fields=[
                "extended_by",
                "due_on",
                "trace",
                "provisional_years",
                "provisional",
                "updated_at",
            ]
        )
        extended.append(clock.pk)
    return extended


def case_next_due(case: Case) -> date | None:
    return (
        Clock.objects.filter(case=case, status=Clock.Status.RUNNING)
        .order_by("due_on")
        .values_list("due_on", flat=True)
        .first()
    )


def _sweep(*, due: Q, stamp: str, action: str, event: str) -> int:
    """Stamp each running clock matching `due` once, with its audit event and notification.

    One transaction per clock; a clock another sweeper holds is skipped, not waited for.
    """
    from objections.services.notifications import notify

    done = 0
    pending = Q(status=Clock.Status.RUNNING, **{f"{stamp}__isnull": True})
    for clock_id in list(Clock.objects.filter(pending & due).values_list("id", flat=True)):
        with audited():
            clock = (
                Clock.objects.select_for_update(skip_locked=True, of=("self",))
                .select_related("case")
                .filter(pending, pk=clock_id)
                .first()
            )
            if clock is None:
                continue
            setattr(clock, stamp, timezone.now())
            clock.save(update_fields=[stamp, "updated_at"])
            if stamp == "escalated_at":
                Escalation.objects.create(case=clock.case, clock=clock)
            audit_record(
                actor=None,
                action=action,
                target=clock.case,
                case_reference=clock.case.reference,
                data={"clock": clock.pk, "timer": clock.timer, "due_on": clock.due_on.isoformat()},
            )
            notify(case_id=clock.case_id, event=event)
            done += 1
    return done


def clocks_sweep(*, today: date | None = None) -> tuple[int, int]:
    """Remind at 80 % of a clock, escalate after it when its timer says so. Never decides: the
    case keeps its state.

    Idempotent (each clock is reminded and escalated at most once). Returns (reminded, escalated).
    """
    today = today or timezone.localdate()
    # A schedule that became known since (the package updated, a lost recompute message) first.
    clocks_provisional_recompute()
    # Only timers that say so escalate; a remind-only timer (a design choice or an unverified
    # number) is reminded once, even when its day has passed.
    escalated = _sweep(
        due=Q(due_on__lt=today, on_expiry="escalate"),
        stamp="escalated_at",
        action="case.escalated",
        event="escalated",
    )
    reminded = _sweep(
        due=Q(remind_on__lte=today) & (Q(due_on__gte=today) | Q(on_expiry="remind")),
        stamp="reminded_at",
        action="case.reminded",
        event="reminder",
    )
    return reminded, escalated


def _recomputed(calendar: WorkingCalendar, clock: Clock) -> tuple[date, list[int], str]:
    """A clock's deadline counted again from its start: the period with its extensions, then
    each finished pause in order. Working days add up exactly; a calendar-day period is counted
    in one piece, so a move to the next working day in between is not repeated."""
    deadline = add(
        calendar, start=clock.started_on, amount=clock.amount + clock.extended_by, unit=clock.unit
    )
    due = deadline.due
    years = list(deadline.provisional_years)
    lines = [deadline.trace_text()]
    for pause in clock.pauses.filter(ended_at__isnull=False).order_by("started_at"):
        ended_on = timezone.localdate(pause.ended_at)
        paused_for = _paused_for(calendar, clock, pause.started_on, ended_on)
        if clock.unit == WORKING_DAYS:
            years = _merge_years(
                years, calendar.provisional_years_between(pause.started_on, ended_on)
            )
        if paused_for > 0:
            moved = add(calendar, start=due, amount=paused_for, unit=clock.unit)
            due = moved.due
            years = _merge_years(years, moved.provisional_years)
            lines.append(
                f"paused {pause.started_on.isoformat()}..{ended_on.isoformat()} "
                f"({paused_for} {clock.unit} days): {pause.reason}\n{moved.trace_text()}"
            )
    return due, years, "\n".join(lines)


def clocks_provisional_recompute(*, actor: User | None = None) -> int:
    """Count again every open provisional clock that touches a year whose schedule is now known
    (an administrator completed it, or the package learnt it). One transaction and one audit event
    per case. Idempotent: a clock whose years are all still unknown is left alone. Returns the
    number of clocks recomputed."""
    calendar = working_calendar(fresh=True)
    candidates = Clock.objects.filter(provisional=True, status__in=OPEN_STATUSES)
    case_ids = sorted(
        {
            case_id
            for case_id, years in candidates.values_list("case_id", "provisional_years")
            if any(calendar.is_year_known(int(year)) for year in years)
        }
    )
    done = 0
    for case_id in case_ids:
        done += _case_clocks_recompute(calendar, case_id=case_id, actor=actor)
    return done


@audited()
def _case_clocks_recompute(calendar: WorkingCalendar, *, case_id: int, actor: User | None) -> int:
    case = Case.objects.select_for_update(of=("self",)).get(pk=case_id)
    changes = []
    for clock in Clock.objects.select_for_update().filter(
        case=case, provisional=True, status__in=OPEN_STATUSES
    ):
        if not any(calendar.is_year_known(int(year)) for year in clock.provisional_years):
            continue
        before = {"due_on": clock.due_on.isoformat(), "years": list(clock.provisional_years)}
        due, years, trace = _recomputed(calendar, clock)
        known = [int(year) for year in clock.provisional_years if calendar.is_year_known(year)]
        clock.trace = (
            f"{clock.trace}\nrecomputed on {timezone.localdate().isoformat()}, the schedule of "
            f"{', '.join(str(year) for year in known)} being known:\n{trace}"
        )
        clock.due_on = due
        clock.remind_on = _remind_on(clock.started_on, due, 0.8)
        clock.provisional_years = years
        clock.provisional = bool(years)
        clock.save(
            update_fields=[
                "due_on",
                "remind_on",
                "trace",
                "provisional_years",
                "provisional",
                "updated_at",
            ]
        )
        changes.append(
            {
                "clock": clock.pk,
                "timer": clock.timer,
                "before": before,
                "after": {"due_on": due.isoformat(), "years": years},
            }
        )
    if not changes:
        return 0
    case.next_due_on = case_next_due(case)
    case.save(update_fields=["next_due_on", "updated_at"])
    audit_record(
        actor=actor,
        action="case.clocks_recomputed",
        target=case,
        case_reference=case.reference,
        data={"clocks": changes},
    )
    return len(changes)
