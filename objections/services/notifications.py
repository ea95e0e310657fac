"""Email notifications about cases, sent by a worker after the change is committed."""

from __future__ import annotations

from functools import partial

from django.conf import settings
from django.contrib.auth.models import Group
from django.core.mail import send_mail
from django.db import transaction
from django.template.loader import render_to_string
from django.utils import translation

from accounts import roles
from accounts.models import User
from objections.models import Case

# event -> who hears about it
AUDIENCE = {
    "filed": ("applicant",),
    "routed": ("applicant", "assignee"),
    "transitioned": ("applicant",),
    "material_requested": ("applicant",),
    "decided": ("applicant", "agency"),
    "reminder": ("assignee",),
    "escalated": ("supervisors", "assignee"),
}


def notify_on_commit(*, case_id: int, event: str) -> None:
    from objections.tasks import case_notify_task

    transaction.on_commit(partial(case_notify_task.delay, case_id=case_id, event=event))


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


def case_notify(*, case_id: int, event: str) -> int:
    """Send the mails for one event; returns how many were sent."""
    case = (
        Case.objects.select_related("filed_by", "representative", "assignee", "record")
        .filter(pk=case_id)
        .first()
    )
    if case is None or event not in AUDIENCE:
        return 0
    sent = 0
    for person in _recipients(case, AUDIENCE[event]):
        with translation.override(person.preferred_language or settings.LANGUAGE_CODE):
            context = {"case": case, "event": event, "person": person}
            subject = render_to_string("email/case_subject.txt", context).strip()
            body = render_to_string("email/case_body.txt", context)
        sent += send_mail(subject, body, None, [person.email])
    return sent
