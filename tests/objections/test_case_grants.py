from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from objections.services.grants import case_access_grant
from tests.objections.test_dashboard import shanghai_cases
from tests.staff import staff_login

pytestmark = pytest.mark.django_db


def test_an_auditors_grant_opens_one_case_until_it_ends(client, world, time_machine):
    case = shanghai_cases(world, 1)[0]
    staff_login(client, world.auditor)
    url = reverse("dashboard:case", args=[case.reference])
    assert client.get(url).status_code == 404
    case_access_grant(
        case=case,
        user=world.auditor,
        actor=world.supervisor,
        reason="年度审计",
        expires_at=timezone.now() + timedelta(days=2),
    )
    assert client.get(url).status_code == 200
    time_machine.move_to(timezone.now() + timedelta(days=3))
    staff_login(client, world.auditor)
    assert client.get(url).status_code == 404
