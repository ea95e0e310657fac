"""The admin's writes about subjects go through audited services."""

from __future__ import annotations

import pytest

from audit.models import AuditEvent
from records.models import CreditRecordVersion, SubjectUserObjectPermission
from records.selectors import subject_list_for_user
from tests.factories import SubjectFactory, UserFactory
from tests.staff import staff_login

pytestmark = pytest.mark.django_db


def admin_client(client):
    admin = UserFactory(username="admin", role="administrator", is_staff=True, is_superuser=True)
    staff_login(client, admin)
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


def test_removing_a_grant_in_the_admin_is_audited_and_takes_effect_at_once(client):
    client, admin = admin_client(client)
    subject = SubjectFactory(name="王伟")
    citizen = UserFactory(username="wangwei", role="citizen")
    client.post(
        f"/admin/records/subject/{subject.pk}/change/",
        subject_form(subject, **{f"{PREFIX}-0-user": str(citizen.pk)}),
    )
    grant = SubjectUserObjectPermission.objects.get(content_object=subject, user=citizen)

    response = client.post(
        f"/admin/records/subject/{subject.pk}/change/",
        subject_form(
            subject,
            **{
                f"{PREFIX}-TOTAL_FORMS": "1",
                f"{PREFIX}-INITIAL_FORMS": "1",
                f"{PREFIX}-0-id": str(grant.pk),
                f"{PREFIX}-0-user": str(citizen.pk),
                f"{PREFIX}-0-DELETE": "on",
            },
        ),
    )

    assert response.status_code == 302
    assert list(subject_list_for_user(user=citizen)) == []
    [revoked] = AuditEvent.objects.filter(action="subject.access_revoked")
    assert (revoked.actor_id, revoked.payload) == (admin.pk, {"user": citizen.pk})


def test_the_dishonesty_flag_set_in_the_admin_leaves_one_audit_event(client):
    client, admin = admin_client(client)
    subject = SubjectFactory(name="王伟")
    before = AuditEvent.objects.filter(action="subject.dishonesty_flag_set").count()

    response = client.post(
        f"/admin/records/subject/{subject.pk}/change/",
        subject_form(subject, on_serious_dishonesty_list="on", name="别的名字"),
    )

    assert response.status_code == 302
    subject.refresh_from_db()
    assert (subject.on_serious_dishonesty_list, subject.name) == (True, "王伟")  # name read-only
    events = AuditEvent.objects.filter(action="subject.dishonesty_flag_set")
    assert events.count() == before + 1
    assert (events.last().actor_id, events.last().payload) == (
        admin.pk,
        {"before": False, "after": True, "reason": "set in the admin"},
    )


def test_the_admin_cannot_add_or_change_a_record_version(client):
    client, _ = admin_client(client)

    add = client.get("/admin/records/creditrecordversion/add/")
    posted = client.post("/admin/records/creditrecordversion/add/", {"version": "9"})

    assert (add.status_code, posted.status_code) == (403, 403)
    assert not CreditRecordVersion.objects.exists()
