"""Least privilege in the database: the application connects as a role that owns nothing.

The migrations run as the owner role (the owner of the database and of every table, function and
trigger they create). The application role gets the rows it works with, and no more:

* on every table: SELECT, INSERT, UPDATE, DELETE (no TRUNCATE, no DDL: it owns no table, so it
  can neither ALTER one nor disable a trigger);
* on the audit log's tables: SELECT only, and new events only through `audit_append()`, which
  runs with its owner's rights (SECURITY DEFINER, with a fixed search_path); it may add, never
  change, the application's seals (`audit_auditeventseal`), checkpoints and exports' rows it
  writes (`audit_auditcheckpoint`; `audit_auditexport` and `audit_auditintegritycheck` are
  updated as an export or a check runs, and neither can be deleted).

`app_role_grant` applies this, idempotently, after every `migrate` (`manage.py db_roles`); the
deployment runs it as the owner (docker-compose's `migrate` service) and `.ci/run` checks the
application working as such a role.
"""

from __future__ import annotations

from django.db import connection

# The audit log's tables and what the application may do with their rows.
AUDIT_TABLES = {
    "audit_auditevent": "SELECT",
    "audit_auditchainhead": "SELECT",
    "audit_auditsealstart": "SELECT",
    "audit_auditeventseal": "SELECT, INSERT",
    "audit_auditcheckpoint": "SELECT, INSERT",
    "audit_auditexport": "SELECT, INSERT, UPDATE",
    "audit_auditintegritycheck": "SELECT, INSERT, UPDATE",
    # the schema's history is the owner's
    "django_migrations": "SELECT",
}
APPEND_SIGNATURE = (
    "audit_append(text[], text[], timestamptz[], bigint[], text[], text[], text[], text[], "
    "text[], text[])"
)


def _quoted(name: str) -> str:
    with connection.cursor() as cursor:
        cursor.execute("SELECT quote_ident(%s)", [name])
        return str(cursor.fetchone()[0])


def app_role_grant(*, role: str, password: str | None = None) -> list[str]:
    """Create `role` if it does not exist (LOGIN, nothing else) and give it exactly the rights
    above on this database. Returns the statements run. PostgreSQL only; run as the owner."""
    if connection.vendor != "postgresql":
        raise RuntimeError("database roles are a PostgreSQL deployment's concern")
    app = _quoted(role)
    with connection.cursor() as cursor:
        cursor.execute("SELECT current_database(), current_user")
        database, owner = cursor.fetchone()
        cursor.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", [role])
        exists = cursor.fetchone() is not None
    statements: list[tuple[str, list[str]]] = []
    if not exists:
        statements.append(
            (f"CREATE ROLE {app} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOINHERIT", [])
        )
    if password is not None:
        statements.append((f"ALTER ROLE {app} PASSWORD %s", [password]))
    statements += [
        (f"GRANT CONNECT, TEMPORARY ON DATABASE {_quoted(database)} TO {app}", []),
        (f"GRANT USAGE ON SCHEMA public TO {app}", []),
        (f"GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO {app}", []),
        (f"GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO {app}", []),
        (f"REVOKE TRUNCATE, REFERENCES, TRIGGER ON ALL TABLES IN SCHEMA public FROM {app}", []),
    ]
    for table, rights in AUDIT_TABLES.items():
        statements += [
            (f"REVOKE ALL ON {table} FROM {app}", []),
            (f"GRANT {rights} ON {table} TO {app}", []),
        ]
    statements += [
        (f"ALTER FUNCTION {APPEND_SIGNATURE} OWNER TO {_quoted(owner)}", []),
        (f"ALTER FUNCTION {APPEND_SIGNATURE} SECURITY DEFINER", []),
        (f"ALTER FUNCTION {APPEND_SIGNATURE} SET search_path = public, pg_temp", []),
        (f"REVOKE ALL ON FUNCTION {APPEND_SIGNATURE} FROM PUBLIC", []),
        (f"GRANT EXECUTE ON FUNCTION {APPEND_SIGNATURE} TO {app}", []),
    ]
    with connection.cursor() as cursor:
        for statement, params in statements:
            cursor.execute(statement, params or None)
    return [statement for statement, _ in statements]
