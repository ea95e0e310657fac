"""Email notifications about cases: an outbox written with the change, sent after commit.

`notify` renders each recipient's notice in their language and stores it in the transaction of the
change it reports, so a notice exists exactly when the change does; a worker sends it after
commit, marking it sent in the same transaction as the send, and beat re-drives what is pending.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import timedelta
from functools import partial
from smtplib import SMTPException
from typing import Any

from django.conf import settings
from django.contrib.auth.models import Group
from django.core.mail import send_mail
from django.db import transaction
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone, translation
from django.utils.translation import gettext

from accounts import roles
from accounts.models import User
from objections.models import Case, Clock, ClockPause, Decision, Notification
from objections.services.definitions import definition_of
from records.models import CreditRecord

# event -> who hears about it
AUDIENCE = {
    "filed": ("applicant",),
    "routed": ("applicant", "assignee"),
    "transitioned": ("applicant",),
    "material_requested": ("applicant",),
    "extended": ("applicant",),
    "review_requested": ("applicant",),
    "withdrawn": ("applicant",),
    "closed": ("applicant",),
    "decided": ("applicant", "agency"),
    "record_changed": ("applicant",),
    "reminder": ("assignee",),
    "escalated": ("supervisors", "assignee"),
}

# The transitions service reports a person's step as "transitioned", or "decided" when the case
# closes; the notice says what that step was, so each kind of event has its own wording.
STEP_EVENTS = ("transitioned", "decided")


def notify(*, case_id: int, event: str) -> list[int]:
    """Write the event's notices to the outbox, inside the caller's transaction; a worker sends
    them after commit (and beat re-drives any whose message was lost). Returns their ids."""
    case = (
        Case.objects.select_related("filed_by", "representative", "assignee", "record")
        .filter(pk=case_id)
        .first()
    )
    if case is None or event not in AUDIENCE:
        return []
    if event in STEP_EVENTS:
        event = _step_event(case)
    decision = (
        Decision.objects.filter(case=case).order_by("-id").first()
        if event in ("decided", "closed")
        else None
    )
    pause = _pause_reason(case) if event == "material_requested" else ""
    ids = []
    for person in _recipients(case, AUDIENCE[event]):
        with translation.override(person.preferred_language or settings.LANGUAGE_CODE):
            context = {
                "case": case,
                "event": event,
                "person": person,
                "decision": decision,
                "changes": _decided_changes(decision),
                "state": _state_label(case),
                "material_request": pause,
                "appeal": _appeal(case) if decision is not None else None,
                "case_url": _case_url(case),
                "applicant": person.pk in (case.filed_by_id, case.representative_id),
            }
            subject = render_to_string("email/case_subject.txt", context).strip()
            body = render_to_string("email/case_body.txt", context)
        notice = Notification.objects.create(
            case=case,
            event=event,
            recipient=person,
            email=person.email,
            subject=subject[:300],
            body=body,
        )
        ids.append(notice.pk)
    if ids:
        from objections.tasks import notifications_send_task

        transaction.on_commit(partial(notifications_send_task.delay, notification_ids=ids))
    return ids


def _step_event(case: Case) -> str:
    """What the person's step just reported was, read from the case as it now stands: a new
    decision, a withdrawal, a closing, a request for material, an extension, a review."""
    if case.workflow is None:
        return "transitioned"
    definition = definition_of(case.workflow)
    into = [step for step in definition.transitions if step.target == case.state]
    told = Notification.objects.filter(case=case, recipient_id=case.filed_by_id)
    if Decision.objects.filter(case=case).count() > told.filter(event="decided").count():
        return "decided"
    if not case.is_open:
        return "withdrawn" if all(step.name == "withdraw" for step in into) else "closed"
    if any(step.pauses_clock for step in into) and _pause_reason(case):
        return "material_requested"
    extensions = max(
        (c.trace.count("\nextended by ") for c in Clock.objects.filter(case=case)), default=0
    )
    if (
        any(step.extends_clock for step in into)
        and extensions > told.filter(event="extended").count()
    ):
        return "extended"
    reviews = [step for step in into if step.name in definition.reopen_by_review]
    if reviews and case.reviews_requested > told.filter(event="review_requested").count():
        return "review_requested"
    return "transitioned"


def _pause_reason(case: Case) -> str:
    """What the open pause of the case's clock asks the applicant for."""
    pause = (
        ClockPause.objects.filter(clock__case=case, ended_at__isnull=True)
        .order_by("-id")
        .values_list("reason", flat=True)
        .first()
    )
    return pause or ""


def _state_label(case: Case) -> str:
    """The state's name in the active language (never its code)."""
    if case.workflow is None or case.state == Case.FILED:
        return gettext("Received, being assigned to the body that handles it")
    state = definition_of(case.workflow).states.get(case.state)
    if state is None:
        return gettext("In progress")
    return state.label_en if translation.get_language() == "en" else state.label_zh


def _appeal(case: Case) -> dict[str, Any]:
    from objections.portal.selectors import appeal_text

    return appeal_text(case)


def _case_url(case: Case) -> str:
    base = getattr(settings, "SCS_SITE_URL", "").rstrip("/")
    return base + reverse("portal_cases:case", args=[case.reference])


def _decided_changes(decision: Decision | None) -> list[dict[str, Any]]:
    """Each field the applicant proposed or the decision set, named in the reader's language."""
    if decision is None:
        return []
    names = sorted(set(decision.proposed) | set(decision.correction))
    return [
        {
            "label": getattr(CreditRecord._meta.get_field(name), "verbose_name", name),
            "proposed": decision.proposed.get(name),
            "decided": decision.correction.get(name),
        }
        for name in names
    ]


def _recipients(case: Case, audience: tuple[str, ...]) -> list[User]:
    people: list[User] = []
    if "applicant" in audience:
        people.append(case.filed_by)
        if case.representative is not None:
            people.append(case.representative)
    if "assignee" in audience and case.assignee is not None:
        people.append(case.assignee)
    if "supervisors" in audience and case.responsible_agency_id is not None:
        group = Group.objects.filter(name=roles.SUPERVISOR).first()
        if group is not None:
            people.extend(User.objects.filter(groups=group, agency_id=case.responsible_agency_id))
    if "agency" in audience:
        people.extend(
            User.objects.filter(agency_id=case.record.agency_id, groups__name=roles.CASEWORKER)
        )
    seen: set[int] = set()
    unique = []
    for person in people:
        if person.pk not in seen and person.email:
            seen.add(person.pk)
            unique.append(person)
    return unique


# A notice that failed this many times is marked failed and left for an administrator.
MAX_ATTEMPTS = 5
REDRIVE_AFTER_SECONDS = 60


def notifications_send(*, notification_ids: Iterable[int]) -> int:
    """Send the pending notices among `notification_ids`, each at most once; returns how many.

    Each notice is locked while it is sent and marked sent in the same transaction: a redelivered
    message, or a second worker, finds it sent (or locked, and skips it). A notice whose send
    fails stays pending for the re-drive, up to MAX_ATTEMPTS.
    """
    sent = 0
    for notice_id in notification_ids:
        with transaction.atomic():
            notice = (
                Notification.objects.select_for_update(skip_locked=True)
                .filter(pk=notice_id, status=Notification.Status.PENDING)
                .first()
            )
            if notice is None:
                continue
            notice.attempts += 1
            try:
                send_mail(notice.subject, notice.body, None, [notice.email])
            except (OSError, SMTPException) as error:
                notice.last_error = f"{type(error).__name__}: {error}"[:300]
                if notice.attempts >= MAX_ATTEMPTS:
                    notice.status = Notification.Status.FAILED
                notice.save(update_fields=["attempts", "last_error", "status", "updated_at"])
                continue
            notice.status = Notification.Status.SENT
            notice.sent_at = timezone.now()
            notice.save(update_fields=["attempts", "status", "sent_at", "updated_at"])
            sent += 1
    return sent


def notifications_redrive(*, older_than_seconds: int = REDRIVE_AFTER_SECONDS) -> int:
    """Send what a lost message (a killed worker, a flushed Redis) or a failed send left pending."""
    cutoff = timezone.now() - timedelta(seconds=older_than_seconds)
    ids = list(
        Notification.objects.filter(
            status=Notification.Status.PENDING, created_at__lte=cutoff
        ).values_list("id", flat=True)[:1000]
    )
    return notifications_send(notification_ids=ids)
