"""Celery wrappers: each takes ids and calls one service; the services are idempotent."""

from celery import shared_task


@shared_task(acks_late=True, max_retries=5, default_retry_delay=5)
def case_route_task(case_id: int) -> None:
    from objections.services.cases import case_route

    case_route(case_id=case_id)


@shared_task
def cases_unrouted_redrive_task() -> int:
    from objections.services.cases import cases_unrouted_redrive

    return len(cases_unrouted_redrive())


@shared_task
def clocks_sweep_task() -> dict[str, int]:
    from objections.services.clocks import clocks_sweep

    reminded, escalated = clocks_sweep()
    return {"reminded": reminded, "escalated": escalated}


@shared_task(acks_late=True, max_retries=3, default_retry_delay=30)
def case_notify_task(case_id: int, event: str) -> int:
    from objections.services.notifications import case_notify

    return case_notify(case_id=case_id, event=event)


@shared_task
def clocks_provisional_recompute_task() -> int:
    from objections.services.clocks import clocks_provisional_recompute

    return clocks_provisional_recompute()


@shared_task
def calendar_reminder_task() -> int:
    from django.utils import timezone

    from objections.services.calendars import calendar_reminder_send

    return calendar_reminder_send(today=timezone.localdate())
