"""The dashboard's permission matrix (issue 14): every role against every dashboard page and API
endpoint, with the exact rows each one sees and a 404 for everything else; signed-out and
half-signed-in sessions; a grant that ends; CSRF; the case page's query budget."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from accounts import roles
from accounts.models import User
from audit.models import AuditEvent
from objections.models import Case, CaseNote
from objections.services import TransitionInput, case_transition
from objections.services.grants import case_access_grant
from objections.services.notes import case_note_add
from tests.factories import UserFactory, registry_record
from tests.objections.conftest import World
from tests.objections.test_case_services import routed
from tests.staff import staff_login

pytestmark = pytest.mark.django_db

QUEUE = reverse("dashboard:queue")
BULK_ASSIGN = reverse("dashboard:bulk_assign")
SUPERVISION = reverse("dashboard:supervision")
QUEUE_API = reverse("api-queue")
QUEUE_ASSIGN_API = reverse("api-queue-assign")
CASES_API = reverse("api-cases")
SUPERVISION_API = reverse("api-supervision")
UNKNOWN = "SH-2026-999999"  # a well-formed reference no case has

# The cases of the matrix. Shanghai cases go to the Shanghai credit centre; Zhejiang cases to the
# Zhejiang credit centre; the Hubei case to Hubei's. All are about `world.subject` except
# SH_OTHER, which `other_citizen` filed about their own subject.
SH_MARKET = "sh-market"  # Shanghai market regulator's record; the auditor's grant is on it
SH_TAX = "sh-tax"  # Shanghai tax service's record: the market regulator has no part in it
SH_OTHER = "sh-other"  # Shanghai market regulator's record about the other citizen's subject
SH_WITHDRAWN = "sh-withdrawn"  # Shanghai market regulator's record; withdrawn, so closed
ZJ_OBJECTION = "zj-objection"  # zhejiang-objection: the Zhejiang DRC reviews in it
ZJ_REPAIR = "zj-repair"  # zhejiang-repair: a workflow that does not name the DRC
HB = "hb"  # Hubei: no staff of the world works there
CASES = (SH_MARKET, SH_TAX, SH_OTHER, SH_WITHDRAWN, ZJ_OBJECTION, ZJ_REPAIR, HB)


@dataclass(frozen=True)
class Expected:
    """What one role sees. `dashboard` None: no dashboard at all (every page and the queue API
    a 404)."""

    dashboard: frozenset[str] | None  # the case pages it opens, open or closed
    queue: frozenset[str]  # the agency queue: its open cases
    case_api: frozenset[str]  # /api/v1/cases/
    supervises: bool = False


def cases(*names: str) -> frozenset[str]:
    return frozenset(names)


SHANGHAI_CENTRE = Expected(
    dashboard=cases(SH_MARKET, SH_TAX, SH_OTHER, SH_WITHDRAWN),
    queue=cases(SH_MARKET, SH_TAX, SH_OTHER),
    case_api=cases(SH_MARKET, SH_TAX, SH_OTHER, SH_WITHDRAWN),
)
ZHEJIANG_CASES = Expected(
    dashboard=cases(ZJ_OBJECTION, ZJ_REPAIR),
    queue=cases(ZJ_OBJECTION, ZJ_REPAIR),
    case_api=cases(ZJ_OBJECTION, ZJ_REPAIR),
)

EXPECTED: dict[str, Expected] = {
    # Citizens: no dashboard; the cases about the subjects they act for in the case API.
    "citizen": Expected(
        dashboard=None,
        queue=cases(),
        case_api=cases(SH_MARKET, SH_TAX, SH_WITHDRAWN, ZJ_OBJECTION, ZJ_REPAIR, HB),
    ),
    "other_citizen": Expected(dashboard=None, queue=cases(), case_api=cases(SH_OTHER)),
    # A centre's caseworker: the cases the centre is responsible for.
    "shanghai_centre_caseworker": SHANGHAI_CENTRE,
    "zhejiang_centre_caseworker": ZHEJIANG_CASES,
    # A providing unit's caseworker: the cases about its records.
    "shanghai_market_caseworker": Expected(
        dashboard=cases(SH_MARKET, SH_OTHER, SH_WITHDRAWN),
        queue=cases(SH_MARKET, SH_OTHER),
        case_api=cases(SH_MARKET, SH_OTHER, SH_WITHDRAWN),
    ),
    "zhejiang_market_caseworker": ZHEJIANG_CASES,
    # The DRC: its jurisdiction's cases under the workflows that name it.
    "zhejiang_drc_caseworker": Expected(
        dashboard=cases(ZJ_OBJECTION), queue=cases(ZJ_OBJECTION), case_api=cases(ZJ_OBJECTION)
    ),
    # A supervisor: as their agency, and the supervisor's view.
    "shanghai_supervisor": Expected(
        dashboard=SHANGHAI_CENTRE.dashboard,
        queue=SHANGHAI_CENTRE.queue,
        case_api=SHANGHAI_CENTRE.case_api,
        supervises=True,
    ),
    # An auditor: only the cases granted to them, in the dashboard and the case API alike (the
    # audit log's history of every case stays open to them on the auditors' own pages).
    "auditor_with_grant": Expected(
        dashboard=cases(SH_MARKET), queue=cases(SH_MARKET), case_api=cases(SH_MARKET)
    ),
    "auditor_without_grant": Expected(dashboard=cases(), queue=cases(), case_api=cases()),
    "administrator": Expected(
        dashboard=frozenset(CASES),
        queue=frozenset(CASES) - {SH_WITHDRAWN},
        case_api=frozenset(CASES),
        supervises=True,
    ),
}


@dataclass
class Matrix:
    world: World
    administrator: User
    auditor_without_grant: User
    cases: dict[str, Case]

    def user(self, role: str) -> User:
        world = self.world
        return {
            "citizen": world.citizen,
            "other_citizen": world.other_citizen,
            "shanghai_centre_caseworker": world.caseworker,
            "zhejiang_centre_caseworker": world.zj_caseworker,
            "shanghai_market_caseworker": world.agency_caseworker,
            "zhejiang_market_caseworker": world.zj_agency_caseworker,
            "zhejiang_drc_caseworker": world.zj_drc_caseworker,
            "shanghai_supervisor": world.supervisor,
            "auditor_with_grant": world.auditor,
            "auditor_without_grant": self.auditor_without_grant,
            "administrator": self.administrator,
        }[role]

    def references(self, names: frozenset[str]) -> set[str]:
        return {self.cases[name].reference for name in names}


@pytest.fixture
def matrix(world: World) -> Matrix:
    administrator = UserFactory(
        username="admin",
        role="administrator",
        is_staff=True,
        is_superuser=True,
        email="admin@example.org",
    )
    withdrawn = routed(world, registry_record("shanghai-market", world.subject, "SH-W-1"))
    case_transition(case_id=withdrawn.pk, transition="withdraw", actor=world.citizen)
    built = {
        SH_MARKET: routed(world, world.sh_record),
        SH_TAX: routed(world, registry_record("shanghai-tax", world.subject, "SH-TAX-1")),
        SH_OTHER: routed(world, world.other_record, actor=world.other_citizen),
        SH_WITHDRAWN: Case.objects.get(pk=withdrawn.pk),
        ZJ_OBJECTION: routed(world, world.zj_record),
        ZJ_REPAIR: routed(
            world,
            registry_record("zhejiang-market", world.subject, "ZJ-R-1"),
            kind="repair",
            grounds="obligation_fulfilled",
            statement="已整改",
            requested_remedy="annotate",
            correction={},
        ),
        HB: routed(world, world.hb_record),
    }
    case_access_grant(
        case=built[SH_MARKET],
        user=world.auditor,
        actor=administrator,
        reason="年度审计",
        expires_at=timezone.now() + timedelta(days=2),
    )
    return Matrix(
        world=world,
        administrator=administrator,
        auditor_without_grant=UserFactory(username="auditor-2", role="auditor"),
        cases=built,
    )


def test_the_world_is_spread_as_the_matrix_assumes(matrix: Matrix):
    stored = Case.objects.select_related("responsible_agency", "record__agency").in_bulk(
        [case.pk for case in matrix.cases.values()]
    )
    found = {
        name: (
            stored[case.pk].responsible_agency.code,
            stored[case.pk].record.agency.code,
            stored[case.pk].is_open,
        )
        for name, case in matrix.cases.items()
    }
    assert found == {
        SH_MARKET: ("shanghai-credit-centre", "shanghai-market", True),
        SH_TAX: ("shanghai-credit-centre", "shanghai-tax", True),
        SH_OTHER: ("shanghai-credit-centre", "shanghai-market", True),
        SH_WITHDRAWN: ("shanghai-credit-centre", "shanghai-market", False),
        ZJ_OBJECTION: ("zhejiang-credit-centre", "zhejiang-market", True),
        ZJ_REPAIR: ("zhejiang-credit-centre", "zhejiang-market", True),
        HB: ("hubei-credit-centre", "hubei-market", True),
    }


# --- helpers ------------------------------------------------------------------------------------


def signed_in(user: User) -> Client:
    """A client signed in as a member of staff would be (second factor passed), or as a
    citizen."""
    client = Client(headers={"accept-language": "en"})
    if roles.CITIZEN in roles.role_names(user):
        client.force_login(user)
    else:
        staff_login(client, user)
    return client


def page_references(response: Any) -> set[str]:
    assert response.status_code == 200
    content = response.content.decode()
    return {row.split('"')[0] for row in content.split('data-reference="')[1:]}


def api_references(client: Client, url: str) -> set[str]:
    """Every reference of a paged API list, following `next` two rows at a time."""
    seen: list[str] = []
    page: str | None = f"{url}{'&' if '?' in url else '?'}limit=2"
    while page:
        response = client.get(page)
        assert response.status_code == 200, response.content
        body = response.json()
        seen += [row["reference"] for row in body["results"]]
        page = body["next"]
    assert len(seen) == len(set(seen))
    return set(seen)


def untouched(matrix: Matrix) -> dict[str, Any]:
    """What a refused request must leave as it was."""
    return {
        "audit_events": AuditEvent.objects.count(),
        "notes": CaseNote.objects.count(),
        "cases": list(
            Case.objects.order_by("id").values_list("id", "assignee_id", "state", "lock_version")
        ),
    }


# --- every role against every endpoint -------------------------------------------------------
# One test per role (reads, then refused writes), so that the world is built once per role.


def reads(matrix: Matrix, client: Client) -> dict[str, Any]:
    """What the role gets from each list, each case and each supervision endpoint."""
    is_dashboard_user = client.get(QUEUE_API).status_code != 404
    return {
        "case_api": api_references(client, CASES_API),
        "case_api_detail": {
            name: client.get(f"{CASES_API}{case.reference}/").status_code
            for name, case in matrix.cases.items()
        },
        "queue_page": (
            page_references(client.get(QUEUE, {"view": "agency"}))
            if is_dashboard_user
            else client.get(QUEUE, {"view": "agency"}).status_code
        ),
        "queue_api": (
            api_references(client, f"{QUEUE_API}?view=agency")
            if is_dashboard_user
            else client.get(QUEUE_API, {"view": "agency"}).status_code
        ),
        "case_pages": {
            name: client.get(reverse("dashboard:case", args=[case.reference])).status_code
            for name, case in matrix.cases.items()
        },
        "unknown": (
            client.get(f"{CASES_API}{UNKNOWN}/").status_code,
            client.get(reverse("dashboard:case", args=[UNKNOWN])).status_code,
            client.get(reverse("dashboard:case", args=["not-a-reference" * 4])).status_code,
        ),
        "supervision": (
            client.get(SUPERVISION).status_code,
            client.get(SUPERVISION_API).status_code,
        ),
    }


def expected_reads(matrix: Matrix, expected: Expected) -> dict[str, Any]:
    in_dashboard = expected.dashboard or frozenset()
    return {
        "case_api": matrix.references(expected.case_api),
        "case_api_detail": {
            name: 200 if name in expected.case_api else 404 for name in matrix.cases
        },
        "queue_page": 404 if expected.dashboard is None else matrix.references(expected.queue),
        "queue_api": 404 if expected.dashboard is None else matrix.references(expected.queue),
        "case_pages": {name: 200 if name in in_dashboard else 404 for name in matrix.cases},
        "unknown": (404, 404, 404),
        "supervision": (200, 200) if expected.supervises else (404, 404),
    }


def refused_writes(
    matrix: Matrix, client: Client, user: User, outside: list[str], inside: list[str]
) -> dict[str, Any]:
    """A note on each case outside the role's scope; bulk assignment (page and API) of each,
    beside a case in scope when there is one (all or nothing); the API with a reference no
    case has. Returns the status codes and the API's refusals."""

    def assign(name: str) -> list[str]:
        return [matrix.cases[n].reference for n in [*inside, name]]

    notes = {
        name: client.post(
            reverse("dashboard:case_act", args=[matrix.cases[name].reference]),
            {"action": "note", "kind": "internal", "text": "不应记下"},
        ).status_code
        for name in outside
    }
    bulk_page = {
        name: client.post(BULK_ASSIGN, {"cases": assign(name), "assignee": "me"}).status_code
        for name in outside
    }
    bulk_api = {
        name: client.post(
            QUEUE_ASSIGN_API,
            {"cases": assign(name), "assignee": user.pk},
            content_type="application/json",
        )
        for name in outside
    }
    unknown = client.post(
        QUEUE_ASSIGN_API, {"cases": [UNKNOWN], "assignee": user.pk}, content_type="application/json"
    )
    return {
        "notes": notes,
        "bulk_page": bulk_page,
        "bulk_api": {name: response.status_code for name, response in bulk_api.items()},
        "unknown": unknown.status_code,
        "refusals": [
            response.json().get("cases")
            for response in [*bulk_api.values(), unknown]
            if response.status_code == 400
        ],
    }


@pytest.mark.parametrize("role", sorted(EXPECTED))
def test_each_role_sees_exactly_its_rows_and_a_404_for_everything_else(matrix: Matrix, role: str):
    # given
    expected = EXPECTED[role]
    user = matrix.user(role)
    client = signed_in(user)
    outside = [name for name in CASES if name not in (expected.dashboard or frozenset())]
    inside = sorted(expected.dashboard or ())[:1]

    # when
    seen = reads(matrix, client)
    before = untouched(matrix)  # opening a case writes its read event: that is not refused
    written = refused_writes(matrix, client, user, outside, inside)

    # then: exactly its rows in every list, 200 exactly for its cases, 404 for the rest
    assert seen == expected_reads(matrix, expected)
    # and no write outside its scope: a 404 from the case page (and from everything for those
    # with no dashboard); bulk assignment refused, naming the references as given, the same for
    # a case that does not exist, so that it tells nothing about cases outside the scope
    refused = 404 if expected.dashboard is None else None
    assert written == {
        "notes": dict.fromkeys(outside, 404),
        "bulk_page": dict.fromkeys(outside, refused or 302),
        "bulk_api": dict.fromkeys(outside, refused or 400),
        "unknown": refused or 400,
        "refusals": []
        if refused
        else [
            *([f"Not in your queue: {matrix.cases[name].reference}."] for name in outside),
            [f"Not in your queue: {UNKNOWN}."],
        ],
    }
    assert untouched(matrix) == before


# --- signed out, and signed in without the second factor --------------------------------------


def test_signed_out_pages_send_to_login_and_apis_answer_401(matrix: Matrix):
    client = Client()
    reference = matrix.cases[SH_MARKET].reference
    before = untouched(matrix)
    login = reverse("login")

    pages = [
        client.get(QUEUE),
        client.get(reverse("dashboard:case", args=[reference])),
        client.post(reverse("dashboard:case_act", args=[reference]), {"action": "note"}),
        client.post(BULK_ASSIGN, {"cases": [reference], "assignee": "me"}),
        client.get(SUPERVISION),
    ]
    apis = [
        client.get(QUEUE_API),
        client.post(
            QUEUE_ASSIGN_API,
            {"cases": [reference], "assignee": None},
            content_type="application/json",
        ),
        client.get(CASES_API),
        client.get(f"{CASES_API}{reference}/"),
        client.get(SUPERVISION_API),
    ]

    assert [(r.status_code, r["Location"].split("?")[0]) for r in pages] == [(302, login)] * 5
    assert [r.status_code for r in apis] == [401] * 5
    assert untouched(matrix) == before


@pytest.mark.parametrize("role", ["shanghai_centre_caseworker", "shanghai_supervisor"])
def test_staff_without_the_second_factor_are_sent_to_it_and_the_dashboard_api_refuses(
    matrix: Matrix, role: str
):
    # The second factor is asked before anything else, the supervision pages included: a
    # caseworker is sent to it there too, and learns nothing about a case.
    client = Client()
    user = matrix.user(role)
    client.force_login(user)
    reference = matrix.cases[SH_MARKET].reference
    before = untouched(matrix)

    pages = [
        client.get(QUEUE),
        client.get(reverse("dashboard:case", args=[reference])),
        client.get(reverse("dashboard:case", args=[UNKNOWN])),
        client.post(
            reverse("dashboard:case_act", args=[reference]),
            {"action": "note", "kind": "internal", "text": "未验证"},
        ),
        client.post(BULK_ASSIGN, {"cases": [reference], "assignee": "me"}),
        client.get(SUPERVISION),
    ]
    apis = [
        client.get(QUEUE_API),
        client.post(
            QUEUE_ASSIGN_API,
            {"cases": [reference], "assignee": user.pk},
            content_type="application/json",
        ),
        client.get(SUPERVISION_API),
    ]

    second_factor = reverse("second_factor")
    assert [(r.status_code, r["Location"].split("?")[0]) for r in pages] == [
        (302, second_factor)
    ] * 6
    assert [r.status_code for r in apis] == [403, 403, 403]
    assert untouched(matrix) == before


def test_staff_without_the_second_factor_cannot_use_the_case_api(matrix: Matrix):
    client = Client()
    client.force_login(matrix.world.caseworker)
    case = matrix.cases[SH_MARKET]
    before = untouched(matrix)

    responses = [
        client.get(CASES_API),
        client.get(f"{CASES_API}{case.reference}/"),
        client.post(
            f"{CASES_API}{case.reference}/transitions/",
            {"transition": "start_review"},
            content_type="application/json",
        ),
    ]

    assert [r.status_code for r in responses] == [403, 403, 403]
    assert untouched(matrix) == before


# --- a grant that ends --------------------------------------------------------------------------


def test_an_auditors_grant_ends_and_the_case_is_404_everywhere_in_the_dashboard(
    matrix: Matrix, time_machine
):
    auditor = matrix.world.auditor
    reference = matrix.cases[SH_MARKET].reference
    page = reverse("dashboard:case", args=[reference])
    assert signed_in(auditor).get(page).status_code == 200

    time_machine.move_to(timezone.now() + timedelta(days=2, minutes=1))
    client = signed_in(auditor)  # a new session: the old one is past its limits too
    before = untouched(matrix)

    case_page = client.get(page).status_code
    note = client.post(
        reverse("dashboard:case_act", args=[reference]),
        {"action": "note", "kind": "internal", "text": "过期后"},
    ).status_code
    queue_page = page_references(client.get(QUEUE, {"view": "agency"}))
    queue_api = api_references(client, f"{QUEUE_API}?view=agency")

    assert (case_page, note, queue_page, queue_api) == (404, 404, set(), set())
    assert untouched(matrix) == before


# --- CSRF ---------------------------------------------------------------------------------------


def test_posts_without_a_csrf_token_are_refused_and_change_nothing(matrix: Matrix):
    client = Client(enforce_csrf_checks=True)
    staff_login(client, matrix.world.supervisor)
    case = matrix.cases[SH_MARKET]
    before = untouched(matrix)

    responses = [
        client.post(
            reverse("dashboard:case_act", args=[case.reference]),
            {"action": "note", "kind": "internal", "text": "无令牌"},
        ),
        client.post(BULK_ASSIGN, {"cases": [case.reference], "assignee": "me"}),
        client.post(
            QUEUE_ASSIGN_API,
            {"cases": [case.reference], "assignee": matrix.world.supervisor.pk},
            content_type="application/json",
        ),
    ]

    assert [r.status_code for r in responses] == [403, 403, 403]
    assert untouched(matrix) == before


# --- the case page's query budget ---------------------------------------------------------------

# The user, their device, roles and agency; the case; its decision, documents, notes, pending
# approval, timeline and its actors, clocks (two reads), the grants, the evidence; the user's
# subjects (twice: the steps and the reveal); the audited read (savepoint, append, seal, release).
CASE_PAGE_QUERIES = 21


def case_page_queries(client: Client, case: Case) -> int:
    with CaptureQueriesContext(connection) as queries:
        response = client.get(reverse("dashboard:case", args=[case.reference]))
    assert response.status_code == 200
    # The session's own bookkeeping (last activity) is written now and then: not the page's.
    return sum("django_session" not in query["sql"] for query in queries.captured_queries)


def test_the_case_page_has_a_fixed_query_budget(matrix: Matrix):
    world = matrix.world
    quiet, busy = matrix.cases[SH_MARKET], matrix.cases[SH_TAX]
    case_note_add(case=quiet, actor=world.caseworker, kind="internal", text="第一条")
    for number in range(20):
        case_note_add(
            case=busy,
            actor=world.caseworker if number % 2 else world.second_caseworker,
            kind="internal" if number % 3 else "message",
            text=f"备注 {number}",
        )
    case_transition(case_id=busy.pk, transition="start_review", actor=world.caseworker)
    case_transition(
        case_id=busy.pk,
        transition="forward",
        actor=world.caseworker,
        data=TransitionInput(reasons="属提供单位更正范围"),
    )
    steps = AuditEvent.objects.filter(action="case.transitioned")
    assert [
        (
            CaseNote.objects.filter(case=case).count(),
            steps.filter(case_reference=case.reference).count(),
        )
        for case in (quiet, busy)
    ] == [(1, 1), (20, 3)]
    client = signed_in(world.supervisor)
    case_page_queries(client, quiet)  # the first request of a session does its own setup

    queries = (case_page_queries(client, quiet), case_page_queries(client, busy))

    assert queries[0] == queries[1]
    # SQLite writes the audited read in three statements more (no single-statement append).
    budget = CASE_PAGE_QUERIES + (0 if connection.vendor == "postgresql" else 3)
    assert queries[0] <= budget
