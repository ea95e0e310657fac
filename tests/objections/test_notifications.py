"""Notices about cases: an outbox row written with the change, sent once, re-driven when lost."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core import mail
from django.utils import timezone
from time_machine import TimeMachineFixture

from objections.models import Case, Notification
from objections.services import case_file
from objections.services.notifications import (
    MAX_ATTEMPTS,
    notifications_redrive,
    notifications_send,
    notify,
)
from tests.objections.conftest import World

pytestmark = pytest.mark.django_db


def filed(world: World) -> Case:
    return case_file(
        actor=world.citizen,
        record=world.sh_record,
        kind="objection",
        grounds="inaccurate",
        statement="处罚对象错误",
        requested_remedy="correct",
        correction={"title": "更正后的标题"},
    )


def test_filing_writes_the_notice_to_the_outbox_in_the_applicants_language(world: World):
    world.citizen.preferred_language = "en"
    world.citizen.save()

    case = filed(world)

    [notice] = Notification.objects.filter(case=case)
    assert (notice.event, notice.recipient, notice.email, notice.status) == (
        "filed",
        world.citizen,
        "wangwei@example.org",
        "pending",
    )
    assert notice.subject == f"Case {case.reference} has been received"
    assert f"Your case {case.reference} has been received." in notice.body
    assert mail.outbox == []


def test_a_notice_links_to_the_case_page_at_the_sites_address(world: World, settings):
    settings.SCS_SITE_URL = "https://credit.example.gov.cn/"

    case = filed(world)

    [notice] = Notification.objects.filter(case=case)
    assert f"https://credit.example.gov.cn/portal/cases/{case.reference}/" in notice.body


def test_a_notice_is_sent_once_however_often_its_message_arrives(
    world: World, time_machine: TimeMachineFixture
):
    time_machine.move_to(timezone.now(), tick=False)
    case = filed(world)
    ids = list(Notification.objects.filter(case=case).values_list("id", flat=True))

    first = notifications_send(notification_ids=ids)
    again = notifications_send(notification_ids=ids)  # a redelivered message (acks_late)

    assert (first, again) == (1, 0)
    assert [message.to for message in mail.outbox] == [["wangwei@example.org"]]
    notice = Notification.objects.get(pk=ids[0])
    assert (notice.status, notice.attempts, notice.sent_at) == ("sent", 1, timezone.now())


def test_a_failed_send_stays_pending_and_is_marked_failed_after_its_attempts(
    world: World, settings
):
    settings.EMAIL_BACKEND = "tests.objections.test_notifications.RefusingBackend"
    case = filed(world)
    [notice_id] = Notification.objects.filter(case=case).values_list("id", flat=True)

    results = [notifications_send(notification_ids=[notice_id]) for _ in range(MAX_ATTEMPTS)]

    notice = Notification.objects.get(pk=notice_id)
    assert results == [0] * MAX_ATTEMPTS
    assert (notice.status, notice.attempts, notice.last_error) == (
        "failed",
        MAX_ATTEMPTS,
        "ConnectionRefusedError: the mail server refused the connection",
    )


def test_the_redrive_sends_what_was_left_pending_and_leaves_fresh_notices_to_their_message(
    world: World, time_machine: TimeMachineFixture
):
    time_machine.move_to(timezone.now(), tick=False)
    old = filed(world)
    time_machine.shift(timedelta(minutes=5))
    fresh_ids = notify(case_id=old.pk, event="routed")

    sent = notifications_redrive()

    assert sent == 1
    assert Notification.objects.get(case=old, event="filed").status == "sent"
    assert set(Notification.objects.filter(pk__in=fresh_ids).values_list("status", flat=True)) == {
        "pending"
    }


class RefusingBackend:
    """A mail server that is down."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        pass

    def send_messages(self, messages: list[object]) -> int:
        raise ConnectionRefusedError("the mail server refused the connection")
