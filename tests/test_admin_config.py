"""The administrator's configuration pages write through audited services: every saved change
leaves exactly one audit event with what it was before and after, an invalid or refused change
shows why and changes nothing, rows with history are kept, auditors only read and caseworkers
do not get in."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth.models import Group, Permission
from django.contrib.messages import get_messages
from django.test import Client
from rest_framework.authtoken.models import Token

from accounts.models import User
from audit.models import AuditEvent
from objections.models import (
    CalendarOverride,
    CalendarYear,
    CaseReferencePrefix,
    WorkflowDefinition,
    WorkflowRoute,
)
from objections.services.routes import routes_seed
from records.models import Agency, CatalogueEntry, Jurisdiction
from tests.conftest import head_sequence
from tests.factories import UserFactory
from tests.objections import conftest as objections_conftest
from tests.objections.conftest import World
from tests.staff import staff_login

pytestmark = pytest.mark.postgres

world = objections_conftest.world  # the case tests' small world, as a fixture here too


@pytest.fixture
def administrator(world: World, client: Client) -> User:
    user = UserFactory(username="admin", role="administrator", is_staff=True, is_superuser=True)
    staff_login(client, user)
    client.cookies["django_language"] = "en"  # the messages below are asserted in English
    return user


def events_since(sequence: int) -> list[AuditEvent]:
    return list(AuditEvent.objects.filter(sequence__gt=sequence).order_by("sequence"))


def messages_of(response: Any) -> list[str]:
    return [str(message) for message in get_messages(response.wsgi_request)]


def snapshot(model: Any) -> list[tuple[Any, ...]]:
    """Every row of `model` as stored, to show that a refused change changed nothing."""
    return list(model.objects.order_by("pk").values_list())


def agency_form(agency: Agency, **changes: Any) -> dict[str, Any]:
    return {
        "code": agency.code,
        "name_zh": agency.name_zh,
        "name_en": agency.name_en,
        "jurisdiction": agency.jurisdiction_id,
        "kind": agency.kind,
        **changes,
    }


def catalogue_form(entry: CatalogueEntry, **changes: Any) -> dict[str, Any]:
    form: dict[str, Any] = {
        "jurisdiction": entry.jurisdiction_id,
        "code": entry.code,
        "name_zh": entry.name_zh,
        "name_en": entry.name_en,
        "legal_basis": entry.legal_basis,
        "severity": entry.severity,
        "information_kind": entry.information_kind,
        "publication_min_months": entry.publication_min_months,
        "publication_max_months": entry.publication_max_months,
    }
    for flag in ("applies_to_persons", "applies_to_organisations", "repairable", "active"):
        if getattr(entry, flag):
            form[flag] = "on"
    form.update(changes)
    return {name: value for name, value in form.items() if value is not None}


def retitled(source_text: str) -> str:
    """A definition whose English title has changed (a comment alone is not a new version)."""
    return source_text.replace("title_en: Shanghai —", "title_en: Shanghai –", 1)


# --- Jurisdictions ------------------------------------------------------------------------------


def test_adding_and_changing_a_jurisdiction_is_audited_with_before_and_after(client, administrator):
    start = head_sequence()

    added = client.post(
        "/admin/records/jurisdiction/add/",
        {
            "code": "jiangsu",
            "name_zh": "江苏省",
            "name_en": "Jiangsu",
            "retention_years": "5",
            "retention_starts_from": "conduct_ended",
        },
    )
    jiangsu = Jurisdiction.objects.get(code="jiangsu")
    changed = client.post(
        f"/admin/records/jurisdiction/{jiangsu.pk}/change/",
        {
            "code": "jiangsu",
            "name_zh": "江苏省",
            "name_en": "Jiangsu Province",
            "retention_years": "3",
            "retention_starts_from": "conduct_ended",
        },
    )

    assert (added.status_code, changed.status_code) == (302, 302)
    jiangsu.refresh_from_db()
    assert (jiangsu.name_en, jiangsu.retention_years) == ("Jiangsu Province", 3)
    assert [(e.action, e.actor_id, e.target_id, e.payload) for e in events_since(start)] == [
        (
            "jurisdiction.created",
            administrator.pk,
            str(jiangsu.pk),
            {
                "before": None,
                "after": {
                    "code": "jiangsu",
                    "name_zh": "江苏省",
                    "name_en": "Jiangsu",
                    "retention_years": 5,
                    "retention_starts_from": "conduct_ended",
                },
            },
        ),
        (
            "jurisdiction.updated",
            administrator.pk,
            str(jiangsu.pk),
            {
                "before": {"name_en": "Jiangsu", "retention_years": 5},
                "after": {"name_en": "Jiangsu Province", "retention_years": 3},
            },
        ),
    ]


def test_a_jurisdiction_that_agencies_refer_to_is_not_deleted_and_the_page_says_why(
    client, administrator
):
    shanghai = Jurisdiction.objects.get(code="shanghai")
    start, rows = head_sequence(), snapshot(Jurisdiction)

    page = client.get(f"/admin/records/jurisdiction/{shanghai.pk}/delete/", follow=True)
    posted = client.post(f"/admin/records/jurisdiction/{shanghai.pk}/delete/", {"post": "yes"})

    assert page.redirect_chain == [(f"/admin/records/jurisdiction/{shanghai.pk}/change/", 302)]
    assert posted.status_code == 302
    assert posted["Location"] == f"/admin/records/jurisdiction/{shanghai.pk}/change/"
    why = (
        "The jurisdiction shanghai cannot be deleted: agencies, catalogue entries, workflow "
        "definitions refer to it."
    )
    assert why in page.content.decode()
    assert messages_of(posted) == [why]
    assert (snapshot(Jurisdiction), events_since(start)) == (rows, [])


def test_a_jurisdiction_nothing_refers_to_is_deleted_with_an_audit_event(client, administrator):
    unused = Jurisdiction.objects.create(code="tibet", name_zh="西藏自治区", name_en="Tibet")
    start = head_sequence()

    posted = client.post(f"/admin/records/jurisdiction/{unused.pk}/delete/", {"post": "yes"})

    assert posted.status_code == 302
    assert not Jurisdiction.objects.filter(code="tibet").exists()
    assert [(e.action, e.target_id, e.payload["after"]) for e in events_since(start)] == [
        ("jurisdiction.deleted", str(unused.pk), None)
    ]
    assert events_since(start)[0].payload["before"]["code"] == "tibet"


def test_a_jurisdiction_code_cannot_change_while_rows_refer_to_it(client, administrator):
    shanghai = Jurisdiction.objects.get(code="shanghai")
    start, rows = head_sequence(), snapshot(Jurisdiction)

    page = client.post(
        f"/admin/records/jurisdiction/{shanghai.pk}/change/",
        {
            "code": "shanghai-city",
            "name_zh": shanghai.name_zh,
            "name_en": shanghai.name_en,
            "retention_years": shanghai.retention_years,
            "retention_starts_from": shanghai.retention_starts_from,
        },
    )

    assert page.status_code == 200
    assert "The code cannot change while" in page.content.decode()
    assert (snapshot(Jurisdiction), events_since(start)) == (rows, [])


# --- Agencies and their bodies ------------------------------------------------------------------


def test_adding_a_pboc_branch_and_changing_an_agency_are_audited(client, administrator):
    shanghai = Jurisdiction.objects.get(code="shanghai")
    market = Agency.objects.get(code="shanghai-market")
    start = head_sequence()

    added = client.post(
        "/admin/records/agency/add/",
        {
            "code": "pboc-shanghai",
            "name_zh": "中国人民银行上海总部",
            "name_en": "PBoC Shanghai Head Office",
            "jurisdiction": shanghai.pk,
            "kind": "pboc_branch",
        },
    )
    changed = client.post(
        f"/admin/records/agency/{market.pk}/change/",
        agency_form(market, name_en="Shanghai Municipal Market Regulator"),
    )

    assert (added.status_code, changed.status_code) == (302, 302)
    branch = Agency.objects.get(code="pboc-shanghai")
    assert (branch.kind, branch.jurisdiction) == (Agency.Kind.PBOC_BRANCH, shanghai)
    events = events_since(start)
    assert [(e.action, e.actor_id, e.target_id) for e in events] == [
        ("agency.created", administrator.pk, str(branch.pk)),
        ("agency.updated", administrator.pk, str(market.pk)),
    ]
    assert events[0].payload == {
        "before": None,
        "after": {
            "code": "pboc-shanghai",
            "name_zh": "中国人民银行上海总部",
            "name_en": "PBoC Shanghai Head Office",
            "jurisdiction": shanghai.pk,
            "kind": "pboc_branch",
        },
    }
    assert events[1].payload == {
        "before": {"name_en": market.name_en},
        "after": {"name_en": "Shanghai Municipal Market Regulator"},
    }


def test_an_agency_code_clash_shows_an_error_and_changes_nothing(client, administrator):
    market = Agency.objects.get(code="shanghai-market")
    start, rows = head_sequence(), snapshot(Agency)

    added = client.post(
        "/admin/records/agency/add/",
        agency_form(market, name_en="A second market regulator"),
    )
    changed = client.post(
        f"/admin/records/agency/{market.pk}/change/",
        agency_form(market, code="shanghai-credit-centre"),
    )

    for page in (added, changed):
        assert page.status_code == 200
        assert "Agency with this Code already exists." in page.content.decode()
    assert (snapshot(Agency), events_since(start)) == (rows, [])


def test_an_agency_with_records_is_not_deleted_and_the_page_says_why(client, administrator):
    market = Agency.objects.get(code="shanghai-market")
    start, rows = head_sequence(), snapshot(Agency)

    page = client.get(f"/admin/records/agency/{market.pk}/change/")
    posted = client.post(f"/admin/records/agency/{market.pk}/delete/", {"post": "yes"})

    assert 'class="deletelink"' not in page.content.decode()
    assert posted.status_code == 302
    assert messages_of(posted) == [
        "Agencies are not deleted: their records, cases, staff and audit history refer to them."
    ]
    assert (snapshot(Agency), events_since(start)) == (rows, [])


# --- The catalogue ------------------------------------------------------------------------------


def test_adding_and_deactivating_a_catalogue_entry_is_audited(client, administrator):
    national = Jurisdiction.objects.get(code="national")
    start = head_sequence()

    added = client.post(
        "/admin/records/catalogueentry/add/",
        {
            "jurisdiction": national.pk,
            "code": "tax-arrears-2026",
            "name_zh": "欠税信息",
            "name_en": "Tax arrears",
            "legal_basis": "《全国公共信用信息基础目录（2024年版）》",
            "severity": "general",
            "information_kind": "other",
            "applies_to_persons": "on",
            "applies_to_organisations": "on",
            "publication_min_months": "6",
            "publication_max_months": "36",
            "repairable": "on",
            "active": "on",
        },
    )
    entry = CatalogueEntry.objects.get(jurisdiction=national, code="tax-arrears-2026")
    changed = client.post(
        f"/admin/records/catalogueentry/{entry.pk}/change/", catalogue_form(entry, active=None)
    )

    assert (added.status_code, changed.status_code) == (302, 302)
    entry.refresh_from_db()
    assert (entry.publication_max_months, entry.active) == (36, False)
    events = events_since(start)
    assert [(e.action, e.target_id) for e in events] == [
        ("catalogue.entry_created", str(entry.pk)),
        ("catalogue.entry_updated", str(entry.pk)),
    ]
    assert events[0].payload["before"] is None
    assert events[0].payload["after"]["publication_min_months"] == 6
    assert events[1].payload == {"before": {"active": True}, "after": {"active": False}}


def test_a_minimum_publication_period_longer_than_the_maximum_is_refused(client, administrator):
    entry = CatalogueEntry.objects.get(jurisdiction__code="national", code="penalty-general")
    start, rows = head_sequence(), snapshot(CatalogueEntry)

    changed = client.post(
        f"/admin/records/catalogueentry/{entry.pk}/change/",
        catalogue_form(entry, publication_min_months="40", publication_max_months="36"),
    )
    added = client.post(
        "/admin/records/catalogueentry/add/",
        catalogue_form(entry, code="penalty-new", publication_min_months="13"),
    )

    for page in (changed, added):
        assert page.status_code == 200
        assert (
            "The minimum publication period cannot be longer than the maximum."
            in page.content.decode()
        )
    assert (snapshot(CatalogueEntry), events_since(start)) == (rows, [])


def test_a_catalogue_entry_is_not_deleted_and_the_page_says_to_deactivate_it(client, administrator):
    entry = CatalogueEntry.objects.get(jurisdiction__code="national", code="penalty-general")
    start, rows = head_sequence(), snapshot(CatalogueEntry)

    posted = client.post(f"/admin/records/catalogueentry/{entry.pk}/delete/", {"post": "yes"})

    assert posted.status_code == 302
    assert "Clear “active” instead" in messages_of(posted)[0]
    assert (snapshot(CatalogueEntry), events_since(start)) == (rows, [])


# --- Workflow definitions and the mapping -------------------------------------------------------


def test_editing_a_workflow_definition_publishes_a_new_validated_version(client, administrator):
    current = WorkflowDefinition.objects.get(key="shanghai-objection", is_current=True)
    start = head_sequence()

    posted = client.post(
        f"/admin/objections/workflowdefinition/{current.pk}/change/",
        {"source_text": retitled(current.source_text)},
    )

    assert posted.status_code == 302
    newest = WorkflowDefinition.objects.get(key="shanghai-objection", is_current=True)
    current.refresh_from_db()
    assert (newest.version, current.is_current, current.source_text) == (
        current.version + 1,
        False,
        WorkflowDefinition.objects.get(pk=current.pk).source_text,
    )
    assert [(e.action, e.target_id, e.payload) for e in events_since(start)] == [
        (
            "workflow.published",
            str(newest.pk),
            {
                "key": "shanghai-objection",
                "version": newest.version,
                "sha256": newest.source_hash,
                "before": {"version": current.version, "sha256": current.source_hash},
            },
        )
    ]


@pytest.mark.parametrize(
    ("edit", "problem"),
    [
        (lambda text: "states: [unclosed", "published definition: not valid YAML"),
        (lambda text: "key: shanghai-objection\n", "published definition"),
        (
            lambda text: text.replace("jurisdiction: shanghai", "jurisdiction: atlantis", 1),
            "jurisdiction: &#x27;atlantis&#x27; is not a jurisdiction of this platform",
        ),
    ],
)
def test_an_invalid_workflow_definition_shows_its_problems_and_changes_nothing(
    client, administrator, edit, problem
):
    current = WorkflowDefinition.objects.get(key="shanghai-objection", is_current=True)
    start, rows = head_sequence(), snapshot(WorkflowDefinition)

    page = client.post(
        f"/admin/objections/workflowdefinition/{current.pk}/change/",
        {"source_text": edit(current.source_text)},
    )

    assert page.status_code == 200
    assert 'class="errorlist' in page.content.decode()
    assert problem in page.content.decode()
    assert (snapshot(WorkflowDefinition), events_since(start)) == (rows, [])


def test_a_new_version_must_keep_the_key_of_the_definition_edited(client, administrator):
    current = WorkflowDefinition.objects.get(key="shanghai-objection", is_current=True)
    other = WorkflowDefinition.objects.get(key="shanghai-repair", is_current=True)
    start, rows = head_sequence(), snapshot(WorkflowDefinition)

    page = client.post(
        f"/admin/objections/workflowdefinition/{current.pk}/change/",
        {"source_text": retitled(other.source_text)},
    )

    assert page.status_code == 200
    assert "must keep its key" in page.content.decode()
    assert (snapshot(WorkflowDefinition), events_since(start)) == (rows, [])


def test_routes_are_added_changed_and_removed_through_the_audited_services(client, administrator):
    shanghai = Jurisdiction.objects.get(code="shanghai")
    routes_seed(jurisdiction=shanghai)
    start = head_sequence()

    added = client.post(
        "/admin/objections/workflowroute/add/",
        {
            "jurisdiction": shanghai.pk,
            "kind": "objection",
            "information_kind": "",
            "holder_kind": "pboc_branch",
            "workflow_key": "pboc-objection",
        },
    )
    route = WorkflowRoute.objects.get(jurisdiction=shanghai, holder_kind="pboc_branch")
    changed = client.post(
        f"/admin/objections/workflowroute/{route.pk}/change/",
        {"workflow_key": "shanghai-objection"},
    )
    route.refresh_from_db()
    key_after_change = route.workflow_key
    removed = client.post(f"/admin/objections/workflowroute/{route.pk}/delete/", {"post": "yes"})

    assert [page.status_code for page in (added, changed, removed)] == [302, 302, 302]
    assert key_after_change == "shanghai-objection"
    assert not WorkflowRoute.objects.filter(pk=route.pk).exists()
    common = {"jurisdiction": "shanghai", "kind": "objection", "holder": "pboc_branch"}
    assert [(e.action, e.target_id, e.payload) for e in events_since(start)] == [
        ("workflow.route_set", str(route.pk), {**common, "from": None, "to": "pboc-objection"}),
        (
            "workflow.route_set",
            str(route.pk),
            {**common, "from": "pboc-objection", "to": "shanghai-objection"},
        ),
        (
            "workflow.route_removed",
            str(route.pk),
            {**common, "information": "", "from": "shanghai-objection", "to": None},
        ),
    ]


def test_a_route_to_a_workflow_of_another_kind_shows_why_and_changes_nothing(client, administrator):
    shanghai = Jurisdiction.objects.get(code="shanghai")
    routes_seed(jurisdiction=shanghai)
    route = WorkflowRoute.objects.get(
        jurisdiction=shanghai, kind="objection", information_kind="", holder_kind=""
    )
    start, rows = head_sequence(), snapshot(WorkflowRoute)

    page = client.post(
        f"/admin/objections/workflowroute/{route.pk}/change/", {"workflow_key": "national-repair"}
    )
    removed = client.post(f"/admin/objections/workflowroute/{route.pk}/delete/", {"post": "yes"})

    assert page.status_code == 200
    assert (
        "Workflow &#x27;national-repair&#x27; runs repair cases, not objection cases."
        in page.content.decode()
    )
    assert removed.status_code == 302
    assert messages_of(removed) == [
        "The route for shanghai's objection cases as a whole cannot be removed; point it at "
        "another workflow instead."
    ]
    assert (snapshot(WorkflowRoute), events_since(start)) == (rows, [])


def test_a_reference_prefix_changes_through_the_audited_service(client, administrator):
    shanghai = Jurisdiction.objects.get(code="shanghai")
    zhejiang = Jurisdiction.objects.get(code="zhejiang")
    routes_seed(jurisdiction=shanghai)
    routes_seed(jurisdiction=zhejiang)
    prefix = CaseReferencePrefix.objects.get(jurisdiction=shanghai)
    start, rows = head_sequence(), snapshot(CaseReferencePrefix)

    clash = client.post(
        f"/admin/objections/casereferenceprefix/{prefix.pk}/change/", {"prefix": "ZJ"}
    )
    after_clash = snapshot(CaseReferencePrefix)
    changed = client.post(
        f"/admin/objections/casereferenceprefix/{prefix.pk}/change/", {"prefix": "SHA"}
    )

    assert clash.status_code == 200
    assert "Case reference prefix with this Prefix already exists." in clash.content.decode()
    assert after_clash == rows
    assert changed.status_code == 302
    assert CaseReferencePrefix.objects.get(jurisdiction=shanghai).prefix == "SHA"
    assert [(e.action, e.target_id, e.payload) for e in events_since(start)] == [
        (
            "workflow.reference_prefix_set",
            str(prefix.pk),
            {"jurisdiction": "shanghai", "before": "SH", "after": "SHA"},
        )
    ]


# --- The calendar -------------------------------------------------------------------------------


def test_a_calendar_override_added_in_the_admin_is_audited(client, administrator):
    start = head_sequence()

    added = client.post(
        "/admin/objections/calendaroverride/add/",
        {"day": "2026-10-10", "source": "国办发明电〔2025〕7号"},
    )

    assert added.status_code == 302
    row = CalendarOverride.objects.get(day="2026-10-10")
    assert row.working is False
    assert [(e.action, e.target_id, e.payload) for e in events_since(start)] == [
        (
            "calendar.day_set",
            str(row.pk),
            {
                "day": "2026-10-10",
                "before": None,
                "after": {"working": False, "source": "国办发明电〔2025〕7号"},
                "source": "国办发明电〔2025〕7号",
            },
        )
    ]


def test_completing_and_reopening_a_calendar_year_in_the_admin_is_audited(client, administrator):
    # 2026 is in the holiday package, so nothing is missing from it
    start = head_sequence()

    added = client.post(
        "/admin/objections/calendaryear/add/", {"year": "2026", "source": "国办发明电〔2025〕7号"}
    )
    year = CalendarYear.objects.get(year=2026)
    removed = client.post(f"/admin/objections/calendaryear/{year.pk}/delete/", {"post": "yes"})

    assert (added.status_code, removed.status_code) == (302, 302)
    assert not CalendarYear.objects.filter(year=2026).exists()
    assert [
        (e.action, e.target_id, e.payload["before"], e.payload["after"])
        for e in events_since(start)
    ] == [
        ("calendar.year_completed", str(year.pk), None, {"source": "国办发明电〔2025〕7号"}),
        ("calendar.year_reopened", str(year.pk), {"source": "国办发明电〔2025〕7号"}, None),
    ]


def test_a_calendar_year_without_its_holidays_is_refused_and_changes_nothing(client, administrator):
    start, rows = head_sequence(), snapshot(CalendarYear)

    page = client.post(
        "/admin/objections/calendaryear/add/", {"year": "2027", "source": "国办发明电〔2026〕"}
    )

    assert page.status_code == 200
    assert "2027 cannot be marked complete until its overrides cover" in page.content.decode()
    assert (snapshot(CalendarYear), events_since(start)) == (rows, [])


# --- Users, roles and memberships ---------------------------------------------------------------


def test_creating_a_caseworker_with_roles_and_agency_in_the_admin_is_audited(client, administrator):
    caseworker = Group.objects.get(name="caseworker")
    centre = Agency.objects.get(code="shanghai-credit-centre")
    start = head_sequence()

    added = client.post(
        "/admin/accounts/user/add/",
        {
            "username": "sh-cw-new",
            "usable_password": "true",
            "password1": "a-long-password-2026",
            "password2": "a-long-password-2026",
            "groups": [str(caseworker.pk)],
            "agency": str(centre.pk),
            "is_staff": "on",
            "email": "sh-cw-new@example.org",
            "preferred_language": "zh-hans",
        },
    )

    assert added.status_code == 302, added.content.decode()[:3000]
    user = User.objects.get(username="sh-cw-new")
    assert (user.agency, list(user.groups.values_list("name", flat=True)), user.is_staff) == (
        centre,
        ["caseworker"],
        True,
    )
    assert user.check_password("a-long-password-2026")
    events = events_since(start)
    assert [(e.action, e.actor_id, e.target_id, e.payload) for e in events] == [
        (
            "user.created",
            administrator.pk,
            str(user.pk),
            {
                "before": None,
                "after": {
                    "username": "sh-cw-new",
                    "roles": ["caseworker"],
                    "agency": centre.pk,
                    "is_staff": True,
                    "is_superuser": False,
                    "is_active": True,
                    "preferred_language": "zh-hans",
                    "password_usable": True,
                },
                "contact_set": ["email"],
            },
        )
    ]
    assert "a-long-password-2026" not in str(events[0].payload)


def test_changing_a_users_details_and_roles_is_audited_without_contact_values(
    client, administrator, world
):
    supervisor = Group.objects.get(name="supervisor")
    start = head_sequence()

    posted = client.post(
        f"/admin/accounts/user/{world.caseworker.pk}/change/",
        {
            "username": world.caseworker.username,
            "first_name": "伟",
            "last_name": "张",
            "email": "zhang.wei@example.org",
            "groups": [str(supervisor.pk)],
            "agency": str(world.caseworker.agency_id),
            "is_active": "on",
            "preferred_language": "en",
        },
    )

    assert posted.status_code == 302, posted.content.decode()[:3000]
    events = events_since(start)
    assert [(e.action, e.payload) for e in events] == [
        (
            "user.details_set",
            {
                "before": {"preferred_language": "zh-hans"},
                "after": {"preferred_language": "en"},
                "contact_changed": ["first_name", "last_name", "email"],
            },
        ),
        (
            "user.membership_set",
            {
                "before": {
                    "roles": ["caseworker"],
                    "agency": world.caseworker.agency_id,
                    "is_staff": False,
                    "is_superuser": False,
                    "is_active": True,
                },
                "after": {
                    "roles": ["supervisor"],
                    "agency": world.caseworker.agency_id,
                    "is_staff": False,
                    "is_superuser": False,
                    "is_active": True,
                },
            },
        ),
    ]
    assert "zhang.wei" not in str([event.payload for event in events])


def test_a_password_changed_in_the_admin_is_audited_without_the_password(
    client, administrator, world
):
    start = head_sequence()

    posted = client.post(
        f"/admin/accounts/user/{world.citizen.pk}/password/",
        {
            "usable_password": "true",
            "password1": "another-long-password-2026",
            "password2": "another-long-password-2026",
        },
    )

    assert posted.status_code == 302, posted.content.decode()[:3000]
    assert User.objects.get(pk=world.citizen.pk).check_password("another-long-password-2026")
    events = events_since(start)
    assert [(e.action, e.actor_id, e.target_id, e.payload) for e in events] == [
        (
            "user.password_set",
            administrator.pk,
            str(world.citizen.pk),
            {"before": {"usable": True}, "after": {"usable": True}},
        )
    ]


def test_a_users_account_is_not_deleted_and_the_page_says_to_deactivate_it(
    client, administrator, world
):
    start, rows = head_sequence(), User.objects.count()

    posted = client.post(f"/admin/accounts/user/{world.citizen.pk}/delete/", {"post": "yes"})

    assert posted.status_code == 302
    assert "Clear “active” instead" in messages_of(posted)[0]
    assert (User.objects.count(), events_since(start)) == (rows, [])


def test_a_roles_permissions_change_through_the_audited_service(client, administrator):
    supervisor = Group.objects.get(name="supervisor")
    before = set(supervisor.permissions.values_list("pk", flat=True))
    added = Permission.objects.get(content_type__app_label="records", codename="view_agency")
    start = head_sequence()

    posted = client.post(
        f"/admin/auth/group/{supervisor.pk}/change/",
        {"permissions": [str(pk) for pk in sorted(before | {added.pk})]},
    )

    assert posted.status_code == 302, posted.content.decode()[:3000]
    assert added in supervisor.permissions.all()
    assert [(e.action, e.payload) for e in events_since(start)] == [
        (
            "role.permissions_set",
            {"role": "supervisor", "before": [], "after": ["records.view_agency"]},
        )
    ]
    assert client.get("/admin/auth/group/add/").status_code == 403


def test_an_agency_systems_api_token_is_issued_once_and_withdrawn_through_audited_services(
    client, administrator, world
):
    system = UserFactory(
        username="sh-market-system",
        role="agency_system",
        agency=Agency.objects.get(code="shanghai-market"),
    )
    start = head_sequence()

    issued = client.post("/admin/authtoken/tokenproxy/add/", {"user": system.pk}, follow=True)
    key = Token.objects.get(user=system).key
    listing = client.get("/admin/authtoken/tokenproxy/")
    withdrawn = client.post(f"/admin/authtoken/tokenproxy/{system.pk}/delete/", {"post": "yes"})

    assert issued.redirect_chain == [("/admin/authtoken/tokenproxy/", 302)]
    assert f"The API token of {system} is {key}. It is shown only this once." in (
        issued.content.decode()
    )
    assert listing.status_code == 200
    assert key not in listing.content.decode()
    assert withdrawn.status_code == 302
    assert not Token.objects.filter(user=system).exists()
    assert [(e.action, e.target_id, e.payload) for e in events_since(start)] == [
        ("user.api_token_issued", str(system.pk), {"agency": system.agency_id, "replaced": False}),
        ("user.api_token_revoked", str(system.pk), {}),
    ]


def test_an_api_token_for_a_citizen_is_refused_and_changes_nothing(client, administrator, world):
    start = head_sequence()

    issued = client.post("/admin/authtoken/tokenproxy/add/", {"user": world.citizen.pk})

    assert issued.status_code == 302
    assert messages_of(issued) == [
        "API tokens are for agency systems: an account with that role and an agency."
    ]
    assert (Token.objects.count(), events_since(start)) == (0, [])


# --- Who may use these pages --------------------------------------------------------------------

CHANGE_PAGES = [
    ("records", "jurisdiction", lambda: Jurisdiction.objects.get(code="shanghai")),
    ("records", "agency", lambda: Agency.objects.get(code="shanghai-market")),
    ("records", "catalogueentry", lambda: CatalogueEntry.objects.first()),
    ("objections", "workflowdefinition", lambda: WorkflowDefinition.objects.first()),
    ("accounts", "user", lambda: User.objects.get(username="wangwei")),
]


@pytest.mark.parametrize(("app", "model", "row"), CHANGE_PAGES)
def test_an_auditor_sees_the_configuration_but_cannot_change_it(world, client, app, model, row):
    auditor = UserFactory(username="auditor-staff", role="auditor", is_staff=True)
    auditor.user_permissions.set(Permission.objects.all())
    staff_login(client, auditor)
    url = f"/admin/{app}/{model}/{row().pk}/"
    start = head_sequence()

    page = client.get(url + "change/")
    posted = client.post(url + "change/", {"code": "changed", "source_text": "changed"})
    deleted = client.post(url + "delete/", {"post": "yes"})
    added = client.post(f"/admin/{app}/{model}/add/", {"code": "new"})

    assert page.status_code == 200
    assert 'name="_save"' not in page.content.decode()
    assert (posted.status_code, deleted.status_code, added.status_code) == (403, 403, 403)
    assert events_since(start) == []


def test_audit_events_are_read_only_in_the_admin(client, administrator):
    event = AuditEvent.objects.order_by("-sequence").first()
    assert event is not None
    start = head_sequence()

    page = client.get(f"/admin/audit/auditevent/{event.pk}/change/")
    posted = client.post(f"/admin/audit/auditevent/{event.pk}/change/", {"action": "x"})
    deleted = client.post(f"/admin/audit/auditevent/{event.pk}/delete/", {"post": "yes"})

    assert page.status_code == 200
    assert (posted.status_code, deleted.status_code) == (403, 403)
    assert client.get("/admin/audit/auditevent/add/").status_code == 403
    assert events_since(start) == []


def test_a_caseworker_gets_no_admin_access(client, world):
    staff_login(client, world.caseworker)

    index = client.get("/admin/")
    agencies = client.get("/admin/records/agency/")

    assert index.status_code == 302
    assert index["Location"].startswith("/admin/login/")
    assert agencies.status_code == 302


CONFIGURATION = [
    "records/jurisdiction",
    "records/agency",
    "records/catalogueentry",
    "objections/workflowdefinition",
    "objections/workflowroute",
    "objections/casereferenceprefix",
    "objections/calendaroverride",
    "objections/calendaryear",
    "accounts/user",
    "auth/group",
]


@pytest.mark.parametrize("language", ["zh-hans", "en"])
def test_every_configuration_page_opens_in_both_languages(client, administrator, language):
    routes_seed(jurisdiction=Jurisdiction.objects.get(code="shanghai"))
    CalendarOverride.objects.create(day="2026-10-10", working=False, source="国办发明电〔2025〕7号")
    CalendarYear.objects.create(year=2026, source="国办发明电〔2025〕7号")
    client.cookies["django_language"] = language

    for page in CONFIGURATION:
        listing = client.get(f"/admin/{page}/", {"o": "1.2.3"})
        row = listing.context["cl"].result_list[0]
        change = client.get(f"/admin/{page}/{row.pk}/change/")
        add = client.get(f"/admin/{page}/add/")

        assert (listing.status_code, change.status_code) == (200, 200), page
        assert add.status_code == (403 if page == "auth/group" else 200), page
        assert f'lang="{language}"' in change.content.decode()


def test_configuration_pages_render_in_chinese_and_english(client, administrator):
    market = Agency.objects.get(code="shanghai-market")
    url = f"/admin/records/agency/{market.pk}/change/"

    english = client.get(url).content.decode()
    del client.cookies["django_language"]
    chinese = client.get(url, HTTP_ACCEPT_LANGUAGE="zh-hans").content.decode()

    assert ">information-providing unit<" in english
    assert ">信息提供单位<" in chinese
