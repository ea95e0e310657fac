"""The staff queue at 1,000,000 records and 100,000 open cases, served by gunicorn (issue 14).

Run alone: `.venv/bin/python -m bench.dashboard_queue`.

In one run:
1. seed, in SQL and COPY: the demo registry and workflows, 20,000 subjects (identifiers
   encrypted once each), 1,000,000 credit records of the 16 providing units (INSERT ... SELECT
   over generate_series), then 120,000 routed cases on every eighth record, 100,000 of them open,
   each with its clock (running, or paused in a state that waits on the applicant; stopped once
   closed); most handled by the credit centres, the rest by the providing unit under the
   workflows that say so; caseworkers at each responsible agency, about 2,000 open cases each,
   some cases unassigned; then VACUUM ANALYZE;
2. gunicorn (one worker, one thread, keep-alive) serves `bench.urls`: the project's URLs plus a
   bare view reading one case by primary key; each response carries the server time measured
   around Django's handler and the number of statements it ran;
3. a local client with one keep-alive connection per user GETs the bare view, the queue page
   (each view, each filter, a page 200 deep by its cursor), the queue API and the Django admin's
   changelist of cases, taking turns URL by URL in a shuffled order each round;
4. EXPLAIN (ANALYZE, BUFFERS) of the statements each queue URL runs (captured in-process through
   the same URLconf and session): the indexes used, sequential scans and sorts, and any COUNT.

Targets: the queue page's p95 within 3x the bare view's p95, and below the admin changelist's.
"""

from __future__ import annotations

import csv
import http.client
import io
import os
import random
import re
import signal
import socket
import subprocess
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

from django.conf import settings
from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY
from django.contrib.auth.models import Group
from django.contrib.sessions.backends.db import SessionStore
from django.db import connection, transaction
from django.test import Client, override_settings
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from django_otp import DEVICE_ID_SESSION_KEY
from django_otp.plugins.otp_totp.models import TOTPDevice

from accounts import roles
from accounts.models import User
from bench import common
from objections.models import Case, WorkflowDefinition
from objections.services import workflow_definitions_sync
from objections.services.definitions import definition_of
from objections.services.routes import builtin_routes
from records import demo
from records.crypto import identifier_encrypt, identifier_hash
from records.identifiers import mask_identifier
from records.models import Agency, CatalogueEntry, Subject

RECORDS = 1_000_000
OPEN_CASES = 100_000
CLOSED_CASES = 20_000
SUBJECTS = 20_000
CASE_EVERY = 8  # a case on every eighth record
PER_CASEWORKER = 2_000  # open cases, about
UNASSIGNED_SHARE = 0.08
CENTRE_SHARE = 0.8  # where a jurisdiction has both, the share of the credit centre's workflow
REPAIR_SHARE = 0.25
SLOTS = 1_000  # (agency, category) pairs the records are spread over, by weight
SEED = 20261204
WARM_UP = 5
ROUNDS = 100
DEEP_PAGE = 200
ROWS_PER_PAGE = 50
TARGET_RATIO = 3.0
HOST = "localhost"
SHANGHAI = ZoneInfo("Asia/Shanghai")
JURISDICTION_WEIGHTS = {"shanghai": 0.45, "zhejiang": 0.30, "hubei": 0.15, "national": 0.10}
UNIT_WEIGHTS = {"market": 0.40, "tax": 0.30, "ecology": 0.20, "transport": 0.10}
BIG_TABLES = ("objections_case", "records_creditrecord", "objections_clock", "records_subject")
GUNICORN = ".venv/bin/gunicorn"
SERVE_COMMAND = (
    f"{GUNICORN} bench.urls:application --workers 1 --worker-class gthread --threads 1 "
    "--keep-alive 60 --bind 127.0.0.1:<free port>"
)


# --- seeding --------------------------------------------------------------------------------------


def _subjects() -> dict[int, str]:
    """The subject pool: each subject's id and clear identifier (the search looks one up)."""
    generated = demo.subjects_generate(SUBJECTS, seed=SEED)
    rows = [
        Subject(
            kind=subject.kind,
            name=subject.name,
            identifier_encrypted=identifier_encrypt(subject.identifier),
            identifier_hash=identifier_hash(subject.kind, subject.identifier),
            identifier_masked=mask_identifier(subject.identifier),
        )
        for subject in generated
    ]
    created = Subject.objects.bulk_create(rows, batch_size=5_000)
    return {row.pk: subject.identifier for row, subject in zip(created, generated, strict=True)}


def _records(subject_ids: list[int]) -> None:
    """RECORDS records over SLOTS (agency, category) pairs drawn by weight, in one statement."""
    rng = random.Random(SEED)
    units = list(
        Agency.objects.filter(kind=Agency.Kind.PROVIDING_UNIT).select_related("jurisdiction")
    )
    weights = [
        JURISDICTION_WEIGHTS[unit.jurisdiction.code]
        * UNIT_WEIGHTS[unit.code.removeprefix(f"{unit.jurisdiction.code}-")]
        for unit in units
    ]
    lawful: dict[str, list[int]] = {}
    for code in JURISDICTION_WEIGHTS:
        lawful[code] = list(
            CatalogueEntry.objects.filter(
                active=True, jurisdiction__code__in=["national", code]
            ).values_list("pk", flat=True)
        )
    slots = []
    for slot in range(SLOTS):
        unit = rng.choices(units, weights)[0]
        slots.append((slot, unit.pk, rng.choice(lawful[unit.jurisdiction.code])))
    common.execute(
        "CREATE TABLE bench_slot (slot int PRIMARY KEY, agency_id bigint, category_id bigint)"
    )
    with connection.cursor() as cursor:
        cursor.executemany("INSERT INTO bench_slot VALUES (%s, %s, %s)", slots)
        cursor.execute(
            """
            INSERT INTO records_creditrecord (
                created_at, updated_at, public_id, record_number, title, facts,
                decision_document_number, decision_date, conduct_ended_on, publication_start,
                publication_end, retention_end, status, under_objection, version, content_hash,
                agency_id, category_id, subject_id
            )
            SELECT now(), now(), gen_random_uuid(), 'B' || lpad(g::text, 8, '0'), '违法行为',
                '经查，当事人违法行为，违反了相关规定，依法作出处罚决定。',
                '罚决字〔' || extract(year FROM d)::int || '〕' || g || '号',
                d, d - 30, d, d + 365, d + 1825, 'published', false, 1,
                md5(g::text) || md5((g + 1)::text),
                s.agency_id, s.category_id,
                (%(subjects)s::bigint[])[1 + (g::bigint * 7919) %% %(count)s]
            FROM generate_series(1, %(records)s) AS g
            CROSS JOIN LATERAL (SELECT current_date - (g %% 700)::int AS d) AS day
            JOIN bench_slot AS s ON s.slot = (g::bigint * 104729) %% %(slots)s
            """,
            {
                "subjects": subject_ids,
                "count": len(subject_ids),
                "records": RECORDS,
                "slots": SLOTS,
            },
        )
    common.execute("DROP TABLE bench_slot")


@dataclass(frozen=True)
class _Flow:
    workflow_id: int
    centre: bool  # the credit centre handles it (else the providing unit)
    open_states: list[tuple[str, bool]]  # (state, untimed), the initial state first


def _flows() -> dict[tuple[str, str], list[_Flow]]:
    """The newest stored workflow of each key, by (jurisdiction code, case kind)."""
    newest: dict[str, WorkflowDefinition] = {}
    for row in workflow_definitions_sync():
        newest[row.key] = row
    flows: dict[tuple[str, str], list[_Flow]] = {}
    for row in newest.values():
        definition = definition_of(row)
        if definition.case_kind not in (Case.Kind.OBJECTION, Case.Kind.REPAIR):
            continue
        states = [
            (name, state.untimed)
            for name, state in definition.states.items()
            if not state.terminal and not name.startswith("decided") and name != "executing"
        ]
        states.sort(key=lambda item: item[0] != definition.initial)
        flows.setdefault((definition.jurisdiction, definition.case_kind), []).append(
            _Flow(row.pk, definition.responsible == "credit_centre", states)
        )
    return flows


@dataclass
class _Seeded:
    case_ids: list[int]
    caseworker: User  # a Shanghai centre caseworker with about PER_CASEWORKER open cases
    colleague: User  # another caseworker of the same centre
    unit_caseworker: User  # a caseworker of the Shanghai market regulator
    administrator: User
    reference: str  # an open case in the caseworker's agency
    identifier: str  # the clear identifier of a subject with open cases there
    state: str  # the second most common open state at the centre (the initial one is first)
    category_id: int  # a catalogue entry of the centre's open cases, neither rare nor common
    unit_id: int  # the Shanghai market regulator
    mine: int
    team: int
    agency: int  # the same cases as the team's: a credit centre provides no records
    by_state: Counter[str] = field(default_factory=Counter)


def _cases(now: datetime, citizen: User) -> dict[int, list[Any]]:
    """Plan the cases on every CASE_EVERY-th record; returns the rows by responsible agency,
    without their assignee (column 20) yet."""
    rng = random.Random(SEED + 1)
    flows = _flows()
    prefix = {code: entry.prefix for code, entry in builtin_routes().items()}
    agencies = {a.pk: a for a in Agency.objects.select_related("jurisdiction")}
    centres = {
        a.jurisdiction.code: a for a in agencies.values() if a.kind == Agency.Kind.CREDIT_CENTRE
    }
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT id, agency_id, subject_id FROM records_creditrecord WHERE id %% %s = 0 "
            "ORDER BY id LIMIT %s",
            [CASE_EVERY, OPEN_CASES + CLOSED_CASES],
        )
        records = cursor.fetchall()
    planned: dict[int, list[Any]] = {}
    for number, (record_id, agency_id, subject_id) in enumerate(records, start=1):
        unit = agencies[agency_id]
        code = unit.jurisdiction.code
        kind = Case.Kind.REPAIR if rng.random() < REPAIR_SHARE else Case.Kind.OBJECTION
        choices = flows.get((code, kind)) or flows[("national", kind)]
        centre_flows = [flow for flow in choices if flow.centre]
        unit_flows = [flow for flow in choices if not flow.centre]
        if centre_flows and (not unit_flows or rng.random() < CENTRE_SHARE):
            flow, responsible = rng.choice(centre_flows), centres[code]
        else:
            flow, responsible = rng.choice(unit_flows), unit
        filed_at = now - timedelta(days=rng.uniform(0, 60))
        filed_at = filed_at.astimezone(SHANGHAI).replace(hour=9 + rng.randrange(8))
        is_open = number % 6 != 0
        state, untimed = rng.choice(flow.open_states[:1] * 3 + flow.open_states)
        due_on: date | None = timezone.localdate(filed_at) + timedelta(days=rng.randint(10, 45))
        closed_at = None
        if not is_open:
            state, untimed, due_on = rng.choice(("closed", "withdrawn")), False, None
            closed_at = min(filed_at + timedelta(days=rng.randint(1, 20)), now)
        elif untimed:
            due_on = None
        grounds = "obligation_fulfilled" if kind == Case.Kind.REPAIR else "inaccurate"
        remedy = "end_publication" if kind == Case.Kind.REPAIR else "correct"
        planned.setdefault(responsible.pk, []).append(
            [
                now,  # created_at
                now,  # updated_at
                f"{prefix[code]}-{filed_at.year}-{number:06d}",
                kind,
                "[]",
                grounds,
                "benchmark",
                remedy,
                "{}",
                state,
                "t" if is_open else "f",
                0,
                "",
                "" if is_open else "granted",
                "",
                filed_at.isoformat(),
                (filed_at + timedelta(seconds=3)).isoformat(),
                closed_at.isoformat() if closed_at else None,
                due_on.isoformat() if due_on else None,
                2,
                None,  # assignee_id, filled in by _assign
                citizen.pk,
                unit.jurisdiction_id,
                None,
                record_id,
                None,
                responsible.pk,
                subject_id,
                flow.workflow_id,
            ]
        )
    return planned


_CASE_COLUMNS = (
    "created_at, updated_at, reference, kind, fields_objected, grounds, statement, "
    "requested_remedy, correction, state, is_open, reviews_requested, review_statement, outcome, "
    "reasons, filed_at, routed_at, closed_at, next_due_on, lock_version, assignee_id, "
    "filed_by_id, jurisdiction_id, parent_id, record_id, representative_id, "
    "responsible_agency_id, subject_id, workflow_id"
)
_ASSIGNEE = 20  # the column of assignee_id


def _assign(planned: dict[int, list[Any]]) -> dict[int, list[User]]:
    """Caseworkers at each responsible agency, about PER_CASEWORKER open cases each, and the
    cases given out among them (some left unassigned)."""
    rng = random.Random(SEED + 2)
    group = Group.objects.get_or_create(name=roles.CASEWORKER)[0]
    codes = dict(Agency.objects.values_list("pk", "code"))
    staff: dict[int, list[User]] = {}
    for agency_id, rows in planned.items():
        open_rows = sum(1 for row in rows if row[10] == "t")
        count = max(1, round(open_rows * (1 - UNASSIGNED_SHARE) / PER_CASEWORKER))
        users = User.objects.bulk_create(
            User(username=f"bench-{codes[agency_id]}-{n}", agency_id=agency_id)
            for n in range(1, count + 1)
        )
        group.user_set.add(*users)
        staff[agency_id] = users
        for row in rows:
            if rng.random() >= UNASSIGNED_SHARE:
                row[_ASSIGNEE] = rng.choice(users).pk
    return staff


def _copy_cases(planned: dict[int, list[Any]]) -> None:
    rows = [row for agency_rows in planned.values() for row in agency_rows]
    rows.sort(key=lambda row: row[15])  # in filing order, as the platform writes them
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    for row in rows:
        writer.writerow(r"\N" if value is None else value for value in row)
    buffer.seek(0)
    with connection.cursor() as cursor:
        cursor.cursor.copy_expert(
            f"COPY objections_case ({_CASE_COLUMNS}) FROM STDIN WITH (FORMAT csv, NULL '\\N')",
            buffer,
        )


_CLOCKS = """
INSERT INTO objections_clock (
    created_at, updated_at, timer, state, unit, amount, extended_by, started_on, due_on,
    remind_on, trace, on_expiry, source_citation, source_verified, status, stopped_at, case_id,
    provisional, provisional_years
)
SELECT c.created_at, c.created_at, 'decision_deadline', c.state, 'working', 15, 0, d.started,
    d.due, d.due - 3, 'benchmark', 'escalate', 'benchmark', true,
    CASE WHEN NOT c.is_open THEN 'stopped' WHEN c.next_due_on IS NULL THEN 'paused'
        ELSE 'running' END,
    c.closed_at, c.id, false, '[]'
FROM objections_case AS c
CROSS JOIN LATERAL (
    SELECT (c.filed_at AT TIME ZONE 'Asia/Shanghai')::date AS started,
        coalesce(c.next_due_on, (c.filed_at AT TIME ZONE 'Asia/Shanghai')::date + 21) AS due
) AS d
"""


def _session(user: User) -> str:
    """A session of `user` past the second factor: what logging in with a TOTP code leaves."""
    device = TOTPDevice.objects.create(user=user, name="bench", confirmed=True)
    store = SessionStore()
    store[SESSION_KEY] = str(user.pk)
    store[BACKEND_SESSION_KEY] = settings.AUTHENTICATION_BACKENDS[0]
    store[HASH_SESSION_KEY] = user.get_session_auth_hash()
    store[DEVICE_ID_SESSION_KEY] = device.persistent_id
    store.create()
    return str(store.session_key)


def _seed(now: datetime) -> _Seeded:
    common.stage("seed: registry, workflows, subjects")
    demo.registry_load()
    citizen = User.objects.create_user(username="bench-citizen")
    identifiers = _subjects()
    common.stage(f"seed: {RECORDS:,} records (INSERT ... SELECT over generate_series)")
    with transaction.atomic():
        _records(list(identifiers))
    common.stage(f"seed: {OPEN_CASES + CLOSED_CASES:,} cases (COPY) and their clocks")
    with transaction.atomic():
        planned = _cases(now, citizen)
        staff = _assign(planned)
        _copy_cases(planned)
        common.execute(_CLOCKS)
    common.stage("seed: VACUUM ANALYZE")
    common.execute("VACUUM ANALYZE")

    centre = Agency.objects.get(code="shanghai-credit-centre")
    unit = Agency.objects.get(code="shanghai-market")
    caseworker, colleague = staff[centre.pk][:2]
    administrator = User.objects.create_superuser(username="bench-admin", password=None)
    open_at_centre = Case.objects.filter(is_open=True, responsible_agency=centre)
    by_state = Counter(open_at_centre.values_list("state", flat=True))
    categories = Counter(open_at_centre.values_list("record__category_id", flat=True))
    ranked = [category for category, _ in categories.most_common()]
    reference, subject_id = open_at_centre.order_by("pk").values_list("reference", "subject_id")[
        OPEN_CASES // 10
    ]
    return _Seeded(
        case_ids=list(Case.objects.values_list("pk", flat=True)),
        caseworker=caseworker,
        colleague=colleague,
        unit_caseworker=staff[unit.pk][0] if unit.pk in staff else caseworker,
        administrator=administrator,
        reference=reference,
        identifier=identifiers[subject_id],
        state=by_state.most_common(2)[-1][0],
        category_id=ranked[len(ranked) // 2],
        unit_id=unit.pk,
        mine=Case.objects.filter(is_open=True, assignee=caseworker).count(),
        team=open_at_centre.count(),
        agency=open_at_centre.count(),
        by_state=by_state,
    )


# --- serving and measuring ------------------------------------------------------------------------


@dataclass(frozen=True)
class _Target:
    name: str
    who: str  # whose session: caseworker, unit (a providing unit's caseworker), admin
    url: str  # "" for the bare view, which reads a random case each time
    kind: str  # bare, page, api, admin
    expect: str = ""  # text the body must hold


@dataclass
class _Answer:
    status: int
    body: bytes
    server_ms: float
    db_ms: float
    statements: int
    counts: int
    client_ms: float


_TIMING = re.compile(r"app;dur=(?P<app>[\d.]+), db;dur=(?P<db>[\d.]+)")
_REFERENCE = re.compile(rb"\b(?:SH|ZJ|HB|CN)-\d{4}-\d{6}\b")


class _Connection:
    """One keep-alive HTTP connection with one user's session cookie."""

    def __init__(self, port: int, session_key: str) -> None:
        self.port = port
        self.cookie = f"{settings.SESSION_COOKIE_NAME}={session_key}"
        self.http = http.client.HTTPConnection("127.0.0.1", port, timeout=120)

    def get(self, url: str) -> _Answer:
        for attempt in (1, 2):
            try:
                start = time.perf_counter()
                self.http.request("GET", url, headers={"Host": HOST, "Cookie": self.cookie})
                response = self.http.getresponse()
                body = response.read()
                client_ms = (time.perf_counter() - start) * 1000
                break
            except (http.client.HTTPException, ConnectionError):
                # The server closed an idle connection: open another, once.
                self.http.close()
                self.http = http.client.HTTPConnection("127.0.0.1", self.port, timeout=120)
                if attempt == 2:
                    raise
        timing = _TIMING.search(response.getheader("Server-Timing") or "")
        if timing is None:
            raise common.BenchError(
                f"GET {url}: no Server-Timing header (status {response.status})"
            )
        return _Answer(
            status=response.status,
            body=body,
            server_ms=float(timing["app"]),
            db_ms=float(timing["db"]),
            statements=int(response.getheader("X-Bench-Statements") or 0),
            counts=int(response.getheader("X-Bench-Counts") or 0),
            client_ms=client_ms,
        )


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _serve(port: int) -> subprocess.Popen[bytes]:
    environment = {**os.environ, "DEBUG": "0", "DJANGO_SETTINGS_MODULE": "scs_cases.settings"}
    command = [
        GUNICORN,
        "bench.urls:application",
        "--workers=1",
        "--worker-class=gthread",
        "--threads=1",
        "--keep-alive=60",
        f"--bind=127.0.0.1:{port}",
        "--log-level=warning",
    ]
    return subprocess.Popen(command, cwd=common.REPO_ROOT, env=environment)  # noqa: S603


def _wait_ready(port: int, session_key: str, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise common.BenchError(f"gunicorn exited with status {process.returncode}")
        try:
            _Connection(port, session_key).get("/bench/bare/1/")
            return
        except (OSError, http.client.HTTPException):
            time.sleep(0.2)
    raise common.BenchError("gunicorn did not answer within 60 s")


def _stop(process: subprocess.Popen[bytes]) -> None:
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def _percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]


@dataclass
class _Measured:
    target: _Target
    server: list[float] = field(default_factory=list)
    database: list[float] = field(default_factory=list)
    client: list[float] = field(default_factory=list)
    statements: set[int] = field(default_factory=set)
    counts: set[int] = field(default_factory=set)
    rows: int = 0
    size: int = 0

    def p50(self) -> float:
        return _percentile(self.server, 0.5)

    def p95(self) -> float:
        return _percentile(self.server, 0.95)


def _rows(target: _Target, body: bytes) -> int:
    if target.kind == "api":
        return body.count(b'"reference"')
    return len(set(_REFERENCE.findall(body)))


def _measure(
    targets: list[_Target], connections: dict[str, _Connection], case_ids: list[int]
) -> dict[str, _Measured]:
    """WARM_UP + ROUNDS rounds, each GETting every target once in a shuffled order."""
    rng = random.Random(SEED + 3)  # an order of measurement, not a secret
    measured = {target.name: _Measured(target) for target in targets}
    for round_number in range(WARM_UP + ROUNDS):
        for target in rng.sample(targets, len(targets)):
            url = target.url or f"/bench/bare/{rng.choice(case_ids)}/"
            answer = connections[target.who].get(url)
            if answer.status != 200 or target.expect.encode() not in answer.body:
                raise common.BenchError(
                    f"GET {url} as {target.who} answered {answer.status}: {answer.body[:300]!r}"
                )
            if round_number < WARM_UP:
                continue
            figures = measured[target.name]
            figures.server.append(answer.server_ms)
            figures.database.append(answer.db_ms)
            figures.client.append(answer.client_ms)
            figures.statements.add(answer.statements)
            figures.counts.add(answer.counts)
            figures.rows = _rows(target, answer.body)
            figures.size = len(answer.body)
        if round_number + 1 in (WARM_UP, WARM_UP + ROUNDS // 2):
            common.stage(f"requests: round {round_number + 1} of {WARM_UP + ROUNDS}")
    return measured


# --- query plans ----------------------------------------------------------------------------------


@dataclass
class _Plan:
    """What EXPLAIN (ANALYZE, BUFFERS) says of one statement."""

    sql: str
    milliseconds: float
    planning: float
    indexes: list[str]
    sequential: list[str]  # big tables read whole
    sorted_rows: int  # the most rows a Sort node took in
    rows_read: int  # rows of the big tables read, kept or discarded by a filter
    hit: int
    read: int

    @property
    def served_by_index(self) -> bool:
        return not self.sequential and self.sorted_rows <= 1_000 and self.rows_read <= 5_000


def _walk(node: dict[str, Any], plan: _Plan) -> None:
    loops = int(node.get("Actual Loops", 1))
    relation = node.get("Relation Name", "")
    if relation in BIG_TABLES:
        rows = int(node.get("Actual Rows", 0)) + int(node.get("Rows Removed by Filter", 0))
        plan.rows_read += rows * loops
        if node["Node Type"] == "Seq Scan":
            plan.sequential.append(relation)
    if "Index Name" in node and (relation in BIG_TABLES or "Relation Name" not in node):
        plan.indexes.append(str(node["Index Name"]))
    children = node.get("Plans", [])
    if node["Node Type"] == "Sort" and children:
        taken = int(children[0].get("Actual Rows", 0)) * int(children[0].get("Actual Loops", 1))
        plan.sorted_rows = max(plan.sorted_rows, taken)
    for child in children:
        _walk(child, plan)


def _explain(sql: str) -> _Plan:
    with connection.cursor() as cursor:
        cursor.execute(f"EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) {sql}")
        (document,) = cursor.fetchone()
    top = (document if isinstance(document, list) else [document])[0]
    root = top["Plan"]
    plan = _Plan(
        sql=sql,
        milliseconds=float(top["Execution Time"]),
        planning=float(top.get("Planning Time", 0.0)),
        indexes=[],
        sequential=[],
        sorted_rows=0,
        rows_read=0,
        hit=int(root.get("Shared Hit Blocks", 0)),
        read=int(root.get("Shared Read Blocks", 0)),
    )
    _walk(root, plan)
    plan.indexes = list(dict.fromkeys(plan.indexes))
    return plan


def _plans(target: _Target, session_key: str) -> list[_Plan]:
    """The statements one GET of `target` runs on the big tables, each explained."""
    client = Client(HTTP_HOST=HOST)
    client.cookies[settings.SESSION_COOKIE_NAME] = session_key
    with (
        override_settings(ROOT_URLCONF="bench.urls"),
        CaptureQueriesContext(connection) as captured,
    ):
        response = client.get(target.url)
    if response.status_code != 200:
        raise common.BenchError(f"GET {target.url} in-process answered {response.status_code}")
    statements = [
        query["sql"]
        for query in captured.captured_queries
        if query["sql"].lstrip().upper().startswith("SELECT")
        and any(f'"{table}"' in query["sql"] for table in BIG_TABLES)
        and '"django_session"' not in query["sql"]
    ]
    return [_explain(sql) for sql in statements]


def _plan_summary(plan: _Plan) -> str:
    parts = [", ".join(plan.indexes) or "no index"]
    if plan.sequential:
        parts.append("SEQ SCAN " + ", ".join(plan.sequential))
    if plan.sorted_rows > ROWS_PER_PAGE + 1:
        parts.append(f"sort of {plan.sorted_rows:,} rows")
    parts.append(f"{plan.rows_read:,} rows read")
    parts.append(f"executed in {plan.milliseconds:.2f} ms, planned in {plan.planning:.2f} ms")
    parts.append(f"buffers hit {plan.hit:,} read {plan.read:,}")
    return "; ".join(parts)


# --- the run --------------------------------------------------------------------------------------

BARE = "bare view: one case by primary key"
ADMIN = "admin changelist of cases"


def _targets(seeded: _Seeded, deep_cursor: str) -> list[_Target]:
    def page(name: str, expect: str = "", who: str = "caseworker", **query: Any) -> _Target:
        return _Target(name, who, f"/dashboard/?{urlencode(query)}", "page", expect)

    return [
        _Target(BARE, "caseworker", "", "bare"),
        page(f"queue, mine ({seeded.mine:,} open)", view="mine"),
        page(f"queue, team ({seeded.team:,} open)", view="team"),
        page(f"queue, agency ({seeded.agency:,} open)", view="agency"),
        page(f"queue, agency, page {DEEP_PAGE} by cursor", view="agency", cursor=deep_cursor),
        page(
            f"queue, agency, state={seeded.state} ({seeded.by_state[seeded.state]:,})",
            view="agency",
            state=seeded.state,
        ),
        page("queue, agency, kind=repair", view="agency", kind="repair"),
        page("queue, agency, jurisdiction=shanghai", view="agency", jurisdiction="shanghai"),
        page("queue, agency, agency=shanghai-market", view="agency", agency=seeded.unit_id),
        page("queue, agency, category", view="agency", category=seeded.category_id),
        page("queue, agency, assignee=a colleague", view="agency", assignee=seeded.colleague.pk),
        page("queue, agency, assignee=none", view="agency", assignee="none"),
        page("queue, agency, q=reference", seeded.reference, view="agency", q=seeded.reference),
        page("queue, agency, q=identifier", view="agency", q=seeded.identifier),
        page("queue of a providing unit's caseworker, agency", who="unit", view="agency"),
        _Target("queue API, agency", "caseworker", "/api/v1/queue/?view=agency", "api", "results"),
        _Target(ADMIN, "admin", "/admin/objections/case/", "admin", "result_list"),
    ]


def _deep_cursor(seeded: _Seeded) -> str:
    """The cursor of page DEEP_PAGE of the agency view, as the pages before it hand it on."""
    from objections.dashboard.selectors import QUEUE_KEYS, QueueFilters, queue_for_user
    from scs_cases.pagination import keyset_page

    user = User.objects.get(pk=seeded.caseworker.pk)
    cases = queue_for_user(user=user, filters=QueueFilters(view="agency"))
    page = keyset_page(cases, keys=QUEUE_KEYS, cursor=None, limit=ROWS_PER_PAGE * (DEEP_PAGE - 1))
    if page.next_cursor is None:
        raise common.BenchError(f"the agency view has fewer than {DEEP_PAGE} pages")
    return page.next_cursor


def _plan_note(target: _Target, plans: list[_Plan]) -> str:
    """The plan of the statement that reads the most rows, and the others in short while they
    are served by an index (the queue's other one is the clock badges' prefetch)."""
    main = _main_plan(plans)
    if main is None:
        return f"Plan of `{target.name}`: no statement on the big tables."
    others = [plan for plan in plans if plan is not main]
    text = f"Plan of `{target.name}`: {_plan_summary(main)}"
    if others and all(plan.served_by_index for plan in others):
        most = max(plan.rows_read for plan in others)
        text += (
            f"; {len(others)} other statement(s) on the big tables, served by an index, at "
            f"most {most:,} rows read"
        )
    else:
        text += "".join(f"; then {_plan_summary(plan)}" for plan in others)
    return text + "."


def _main_plan(plans: list[_Plan]) -> _Plan | None:
    """The statement that reads the page's cases (the one that reads the most rows)."""
    return max(plans, key=lambda plan: plan.rows_read, default=None)


def run() -> common.Result:
    started = time.perf_counter()
    common.fresh_database()
    now = timezone.now()
    with common.stopwatch() as seeding:
        seeded = _seed(now)
    sessions = {
        "caseworker": _session(seeded.caseworker),
        "unit": _session(seeded.unit_caseworker),
        "admin": _session(seeded.administrator),
    }
    targets = _targets(seeded, _deep_cursor(seeded))
    common.checkpoint()
    port = _free_port()
    common.stage(f"serving: {SERVE_COMMAND.replace('<free port>', str(port))}")
    process = _serve(port)
    try:
        _wait_ready(port, sessions["caseworker"], process)
        connections = {who: _Connection(port, key) for who, key in sessions.items()}
        common.stage(
            f"requests: {WARM_UP} warm-up and {ROUNDS} timed rounds of {len(targets)} URLs"
        )
        measured = _measure(targets, connections, seeded.case_ids)
    finally:
        _stop(process)
    common.stage("EXPLAIN (ANALYZE, BUFFERS) of the statements of each URL")
    plans = {t.name: _plans(t, sessions[t.who]) for t in targets if t.kind != "bare"}
    return _result(seeded, targets, measured, plans, seeding[0], started)


def _result(
    seeded: _Seeded,
    targets: list[_Target],
    measured: dict[str, _Measured],
    plans: dict[str, list[_Plan]],
    seeding: float,
    started: float,
) -> common.Result:
    bare, admin = measured[BARE], measured[ADMIN]
    queue = [t for t in targets if t.kind in ("page", "api")]
    rows: list[tuple[str, ...]] = []
    notes: list[str] = []
    unserved: list[str] = []
    counting: list[str] = []
    for target in targets:
        figures = measured[target.name]
        main = _main_plan(plans.get(target.name, []))
        served = "" if main is None else ("yes" if main.served_by_index else "**no**")
        if target.kind in ("page", "api") and main is not None and not main.served_by_index:
            unserved.append(target.name)
        if target.kind in ("page", "api") and max(figures.counts):
            counting.append(target.name)
        statements = "/".join(str(n) for n in sorted(figures.statements))
        counts = max(figures.counts)
        rows.append(
            (
                target.name,
                f"{figures.rows:,}" if target.kind != "bare" else "1",
                statements + (f" ({counts} COUNT)" if counts else ""),
                f"{figures.p50():.1f}",
                f"{figures.p95():.1f}",
                f"{_percentile(figures.database, 0.5):.1f}",
                f"{_percentile(figures.client, 0.95):.1f}",
                f"{figures.p95() / bare.p95():.2f}",
                f"{figures.p95() / admin.p95():.2f}",
                served,
            )
        )
        if target.kind != "bare":
            notes.append(_plan_note(target, plans.get(target.name, [])))
    worst = max(queue, key=lambda t: measured[t.name].p95())
    worst_p95 = measured[worst.name].p95()
    first = measured[queue[0].name]
    met = (
        worst_p95 <= TARGET_RATIO * bare.p95()
        and all(measured[t.name].p95() < admin.p95() for t in queue)
        and not unserved
        and not counting
    )
    headline = (
        f"first page p95 {first.p95():.1f} ms = {first.p95() / bare.p95():.2f}x the bare view "
        f"({bare.p95():.1f} ms), {first.p95() / admin.p95():.2f}x the admin changelist "
        f"({admin.p95():.1f} ms); slowest queue URL ({worst.name}) p95 {worst_p95:.1f} ms = "
        f"{worst_p95 / bare.p95():.2f}x the bare view"
    )
    admin_counts = max(admin.counts)
    admin_statements = max(admin.statements)
    intro = [
        f"Data: {RECORDS:,} credit records of 16 providing units in 4 jurisdictions (Shanghai "
        f"45%, Zhejiang 30%, Hubei 15%, national 10%) about {SUBJECTS:,} subjects; "
        f"{OPEN_CASES + CLOSED_CASES:,} routed cases on every {CASE_EVERY}th record, "
        f"{OPEN_CASES:,} open, each with its clock (running, or paused in a state that waits "
        f"on the applicant, stopped once closed); {REPAIR_SHARE:.0%} credit repairs; "
        f"{CENTRE_SHARE:.0%} handled by the credit centre where the jurisdiction's workflows "
        f"let either handle them; caseworkers at each responsible agency with about "
        f"{PER_CASEWORKER:,} open cases each, {UNASSIGNED_SHARE:.0%} unassigned. Seeding "
        f"(INSERT ... SELECT over generate_series, COPY, VACUUM ANALYZE) took {seeding:.0f} s.",
        f"Who: a caseworker of the Shanghai credit centre ({seeded.mine:,} open cases of their "
        f"own, {seeded.team:,} open at the centre), a caseworker of the Shanghai market "
        "regulator (the agency view: cases it handles or about its records), and a superuser "
        "for the admin; each signed in by a session past the second factor (a confirmed TOTP "
        "device), one keep-alive connection each.",
        f"Times: server time, measured in the gunicorn worker around Django's WSGI handler "
        f"(every middleware, session, view and template; not the network) and sent back in "
        f"a Server-Timing header; `client p95` is the round trip seen by the local client. "
        f"{WARM_UP} warm-up rounds, then {ROUNDS} rounds, each GETting every URL once in a "
        "shuffled order, so that whatever else the machine does falls on all URLs alike. "
        "Percentiles by nearest rank.",
        "Statements: counted in the worker by an execute wrapper around Django's handler "
        "(session, user, roles, device, the page's reads); COUNT: statements holding COUNT(*). "
        "`in SQL`: the time spent inside those statements' execute calls (planning, execution, "
        "the rows' transfer), the rest of the server time being Python (ORM, view, template).",
        f"Plans: each URL's SELECTs on the big tables ({', '.join(BIG_TABLES)}), captured "
        "in-process through the same URLconf and session and run again under EXPLAIN "
        "(ANALYZE, BUFFERS); `served by an index` means no sequential scan of a big table, no "
        "sort of more than 1,000 rows and at most 5,000 rows of the big tables read (kept or "
        "filtered out), for the statement that reads the most rows.",
        f"The admin changelist ran {admin_statements} statements per page, {admin_counts} of "
        "them COUNT(*): its paginator counts every case (`show_full_result_count = False` "
        "spares only a second count of the unfiltered list); that is the admin's business, "
        "reported for the comparison.",
    ]
    if admin_statements > 2 * ROWS_PER_PAGE:
        intro.append(
            "Most of the admin's statements read one row's responsible agency each: a nullable "
            "foreign key in `list_display`, which the changelist's automatic `select_related()` "
            "does not follow (`list_select_related` naming it would)."
        )
    if unserved:
        intro.append("Not served by an index: " + "; ".join(unserved) + ".")
    if counting:
        intro.append("Queue URLs that ran a COUNT: " + "; ".join(counting) + ".")
    result = common.Result(
        key="dashboard_queue",
        title=f"The staff queue at {RECORDS:,} records and {OPEN_CASES:,} open cases",
        target=(
            f"every queue URL's p95 <= {TARGET_RATIO:.0f}x the bare view's and below the admin "
            "changelist's; no COUNT; each filter with its ordering served by an index"
        ),
        met=met,
        headline=headline,
        commands=[
            f"{common.PYTHON} -m bench.dashboard_queue",
            "# seed in SQL: records by INSERT ... SELECT over generate_series, cases by COPY, "
            "clocks by INSERT ... SELECT",
            "# " + SERVE_COMMAND + " (DEBUG=0)",
            "# http.client GETs with a session cookie, one keep-alive connection per user",
        ],
        headers=(
            "URL",
            "rows",
            "statements",
            "server p50 ms",
            "server p95 ms",
            "in SQL p50 ms",
            "client p95 ms",
            "p95 / bare",
            "p95 / admin",
            "served by an index",
        ),
        rows=rows,
        notes=intro + notes,
    )
    common.record(result, seconds=time.perf_counter() - started)
    return result


if __name__ == "__main__":
    run()
