"""The admin's writes about subjects go through audited services."""

from __future__ import annotations

import pytest

from audit.models import AuditEvent
from records.selectors import subject_list_for_user
from tests.factories import SubjectFactory, UserFactory

pytestmark = pytest.mark.django_db


def admin_client(client):
    admin = UserFactory(username="admin", role="administrator", is_staff=True, is_superuser=True)
    client.force_login(admin)
    return client, admin


PREFIX = "subjectuserobjectpermission_set"


def subject_form(subject, **changes):
    data = {
        "name": subject.name,
        f"{PREFIX}-TOTAL_FORMS": "1",
        f"{PREFIX}-INITIAL_FORMS": "0",
        f"{PREFIX}-MIN_NUM_FORMS": "0",
        f"{PREFIX}-MAX_NUM_FORMS": "1000",
    }
    data.update(changes)
    return data


def test_an_administrator_grants_a_citizen_the_right_to_act_for_a_subject(client):
    client, admin = admin_client(client)
    subject = SubjectFactory(name="王伟")
    citizen = UserFactory(username="wangwei", role="citizen")

    response = client.post(
        f"/admin/records/subject/{subject.pk}/change/",
        subject_form(subject, **{f"{PREFIX}-0-user": str(citizen.pk)}),
    )

    assert response.status_code == 302
    assert list(subject_list_for_user(user=citizen)) == [subject]
    [granted] = AuditEvent.objects.filter(action="subject.access_granted")
    assert (granted.actor_id, granted.payload) == (admin.pk, {"user": citizen.pk})
