"""The application's database role owns nothing: it can neither rewrite the audit log nor switch
its triggers off, and it appends events only through audit_append()."""

from __future__ import annotations

from collections.abc import Iterator

import psycopg2
import pytest
from django.core.management import call_command
from django.db import connection

from audit.models import AuditChainHead
from audit.privileges import app_role_grant
from audit.services import audited, seal
from audit.verify import audit_chain_verify
from tests.audit.test_audit import record_events
from tests.conftest import FLUSHABLE_APPS

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.django_db(transaction=True, available_apps=FLUSHABLE_APPS),
]

APP_ROLE = "scs_app_test"


@pytest.fixture
def as_app() -> Iterator[psycopg2.extensions.cursor]:
    """A cursor connected to the test database as the application's role, after db_roles.
    (A test limited to `available_apps` does not see the audit app's commands: the service.)"""
    app_role_grant(role=APP_ROLE)
    settings = connection.settings_dict
    other = psycopg2.connect(
        dbname=settings["NAME"],
        user=APP_ROLE,
        host=settings["HOST"],
        port=settings["PORT"] or 5432,
    )
    other.autocommit = True
    try:
        yield other.cursor()
    finally:
        other.close()


REFUSED = [
    ("ALTER TABLE audit_auditevent DISABLE TRIGGER USER", "must be owner"),
    ("ALTER TABLE audit_auditevent ADD COLUMN note text", "must be owner"),
    (
        "ALTER TABLE audit_auditchainhead DISABLE TRIGGER audit_head_advances_by_one",
        "must be owner",
    ),
    ("UPDATE audit_auditevent SET action = 'record.forged'", "permission denied"),
    ("DELETE FROM audit_auditevent", "permission denied"),
    ("TRUNCATE audit_auditevent", "permission denied"),
    (
        "INSERT INTO audit_auditevent (sequence, recorded_at, actor_role, action, target_type, "
        "target_id, case_reference, request_id, canonical, previous_hash, hash) "
        "VALUES (999999, now(), 'system', 'x', '', '', '', '', '{}', '', '')",
        "permission denied",
    ),
    ("UPDATE audit_auditchainhead SET sequence = 0", "permission denied"),
    ("DELETE FROM audit_auditeventseal", "permission denied"),
    ("UPDATE audit_auditeventseal SET mac = ''", "permission denied"),
    ("DELETE FROM audit_auditcheckpoint", "permission denied"),
    ("DELETE FROM audit_auditintegritycheck", "permission denied"),
    ("DELETE FROM audit_auditexport", "permission denied"),
    ("UPDATE audit_auditsealstart SET sequence = 1", "permission denied"),
    ("TRUNCATE records_creditrecord", "permission denied"),
    ("ALTER TABLE records_creditrecord DISABLE TRIGGER ALL", "must be owner"),
    ("DELETE FROM django_migrations", "permission denied"),
]


@pytest.mark.parametrize(("statement", "error"), REFUSED)
def test_the_application_role_cannot_rewrite_the_log_or_switch_off_its_guards(
    as_app: psycopg2.extensions.cursor, statement: str, error: str
):
    with audited():
        record_events(3)
    before = audit_chain_verify()

    with pytest.raises(psycopg2.Error, match=error):
        as_app.execute(statement)

    after = audit_chain_verify()
    assert after.intact
    assert (after.last_sequence, after.last_hash) == (before.last_sequence, before.last_hash)


def test_the_application_role_appends_through_audit_append_and_works_its_tables(
    as_app: psycopg2.extensions.cursor,
):
    """What audit.services does as that role: append, then seal what it appended."""
    head = AuditChainHead.objects.get(pk=1).sequence
    as_app.execute(
        "SELECT audit_append(ARRAY[%s], ARRAY[%s], ARRAY[now()], ARRAY[NULL]::bigint[], "
        "ARRAY['system'], ARRAY['test.appended'], ARRAY[''], ARRAY[''], ARRAY[''], ARRAY[''])",
        [
            '{"action":"test.appended","actor":null,"case":"","data":{},"recorded_at":"',
            '","request":"","role":"system","target":["",""]}',
        ],
    )
    as_app.execute("SELECT sequence, hash FROM audit_auditevent WHERE sequence = %s", [head + 1])
    sequence, event_hash = as_app.fetchone()
    as_app.execute(
        "INSERT INTO audit_auditeventseal (last_sequence, first_sequence, mac) VALUES (%s, %s, %s)",
        [sequence, sequence, seal(sequence, sequence, event_hash)],
    )
    as_app.execute(
        "INSERT INTO objections_calendaroverride (created_at, updated_at, day, working, source) "
        "VALUES (now(), now(), '2027-02-13', true, 'notice') RETURNING id"
    )
    as_app.execute("DELETE FROM objections_calendaroverride")

    assert AuditChainHead.objects.get(pk=1).sequence == head + 1
    assert audit_chain_verify().intact
    as_app.execute(
        "SELECT rolsuper, rolcreaterole, rolcreatedb FROM pg_roles WHERE rolname = %s", [APP_ROLE]
    )
    assert as_app.fetchone() == (False, False, False)
    as_app.execute(
        "SELECT count(*) FROM pg_class c JOIN pg_roles r ON r.oid = c.relowner "
        "WHERE r.rolname = %s",
        [APP_ROLE],
    )
    assert as_app.fetchone() == (0,)


@pytest.mark.django_db
def test_db_roles_applies_the_grants_and_says_so(capsys):
    call_command("db_roles", app_role=APP_ROLE)

    assert capsys.readouterr().out.startswith(f"{APP_ROLE}: ")
