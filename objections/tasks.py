"""Celery wrappers: each takes ids and calls one service; the services are idempotent.

Tasks that a lost database connection or a deadlock victim can interrupt retry with exponential
backoff, a bounded number of times; a domain error (the case is not there, a rule refuses) is not
transient and is not retried.
"""

from smtplib import SMTPConnectError, SMTPServerDisconnected

from celery import shared_task
from django.db import InterfaceError, OperationalError

# Errors that another attempt may not meet: a dropped connection, a serialization failure, a
# deadlock victim, a lock timeout (all OperationalError in Django), an SMTP server that is away.
TRANSIENT = (
    OperationalError,
    InterfaceError,
    ConnectionError,
    TimeoutError,
    SMTPConnectError,
    SMTPServerDisconnected,
)
RETRY = {
    "autoretry_for": TRANSIENT,
    "retry_backoff": 5,
    "retry_backoff_max": 300,
    "retry_jitter": True,
}


@shared_task(acks_late=True, max_retries=5, **RETRY)
def case_route_task(case_id: int) -> None:
    from objections.services.routing import case_route

    case_route(case_id=case_id)


@shared_task
def cases_unrouted_redrive_task() -> int:
    from objections.services.routing import cases_unrouted_redrive

    return len(cases_unrouted_redrive())


@shared_task
def clocks_sweep_task() -> dict[str, int]:
    from objections.services.clocks import clocks_sweep

    reminded, escalated = clocks_sweep()
    return {"reminded": reminded, "escalated": escalated}


@shared_task(acks_late=True, max_retries=3, **RETRY)
def notifications_send_task(notification_ids: list[int]) -> int:
    from objections.services.notifications import notifications_send

    return notifications_send(notification_ids=notification_ids)


@shared_task
def notifications_redrive_task(older_than_seconds: int | None = None) -> int:
    from objections.services.notifications import REDRIVE_AFTER_SECONDS, notifications_redrive

    if older_than_seconds is None:
        older_than_seconds = REDRIVE_AFTER_SECONDS
    return notifications_redrive(older_than_seconds=older_than_seconds)


@shared_task
def clocks_provisional_recompute_task() -> int:
    from objections.services.clocks import clocks_provisional_recompute

    return clocks_provisional_recompute()


@shared_task
def calendar_reminder_task() -> int:
    from django.utils import timezone

    from objections.services.calendars import calendar_reminder_send

    return calendar_reminder_send(today=timezone.localdate())


@shared_task(acks_late=True, max_retries=5, **RETRY)
def cases_unassigned_assign_task(agency_id: int) -> int:
    """Give an agency's unassigned open cases to its caseworkers (one has just joined)."""
    from objections.services.assignment import cases_unassigned_assign
    from records.models import Agency

    agency = Agency.objects.filter(pk=agency_id).first()
    return 0 if agency is None else cases_unassigned_assign(agency=agency)


@shared_task(acks_late=True, max_retries=5, **RETRY)
def cases_unassigned_sweep_task() -> int:
    from objections.services.assignment import cases_unassigned_sweep

    return cases_unassigned_sweep()
