"""Who may do what changes only with an audit event: roles, agency, staff rights; sign-ins."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Group

from accounts.models import User
from audit.models import AuditEvent
from records.models import Agency
from tests.factories import AgencyFactory, JurisdictionFactory, UserFactory
from tests.staff import staff_login

pytestmark = pytest.mark.django_db


def test_making_a_citizen_a_caseworker_in_the_admin_is_audited_with_before_and_after(client):
    # given an administrator, a citizen and a Zhejiang agency
    admin = UserFactory(username="admin", role="administrator", is_staff=True, is_superuser=True)
    citizen = UserFactory(username="wangwei", role="citizen")
    agency = AgencyFactory(
        code="zhejiang-market", jurisdiction=JurisdictionFactory(code="zhejiang")
    )
    caseworker = Group.objects.get_or_create(name="caseworker")[0]
    staff_login(client, admin)
    before = AuditEvent.objects.filter(action="user.membership_set").count()

    # when the administrator changes the citizen's roles and agency
    response = client.post(
        f"/admin/accounts/user/{citizen.pk}/change/",
        {
            "username": "wangwei",
            "groups": [str(caseworker.pk)],
            "agency": str(agency.pk),
            "is_active": "on",
            "preferred_language": citizen.preferred_language,
            "date_joined_0": "2026-06-01",
            "date_joined_1": "10:00:00",
        },
    )

    # then the change is made and audited once, with what it was before
    assert response.status_code == 302, response.content.decode()[:2000]
    changed = User.objects.get(pk=citizen.pk)
    assert (changed.agency, sorted(changed.groups.values_list("name", flat=True))) == (
        Agency.objects.get(code="zhejiang-market"),
        ["caseworker"],
    )
    events = AuditEvent.objects.filter(action="user.membership_set")
    assert events.count() == before + 1
    assert (events.last().actor_id, events.last().payload) == (
        admin.pk,
        {
            "before": {
                "roles": ["citizen"],
                "agency": None,
                "is_staff": False,
                "is_superuser": False,
                "is_active": True,
            },
            "after": {
                "roles": ["caseworker"],
                "agency": agency.pk,
                "is_staff": False,
                "is_superuser": False,
                "is_active": True,
            },
        },
    )


def test_sign_in_failed_sign_in_and_sign_out_are_audited_without_the_password(client):
    user = UserFactory(username="wangwei", role="citizen", password="a-long-password-2026")
    start = AuditEvent.objects.count()

    client.post("/accounts/login/", {"username": "wangwei", "password": "wrong-password-x"})
    client.post("/accounts/login/", {"username": "wangwei", "password": "a-long-password-2026"})
    client.post("/accounts/logout/")

    events = list(AuditEvent.objects.filter(sequence__gt=start).order_by("sequence"))
    assert [(e.action, e.actor_id, e.payload) for e in events] == [
        ("auth.login_failed", None, {"username": "wangwei"}),
        ("auth.logged_in", user.pk, {}),
        ("auth.logged_out", user.pk, {}),
    ]
    assert all("wrong-password" not in e.canonical for e in events)
