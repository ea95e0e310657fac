"""The audit log is append-only in the database itself, and its chain head is a single row.

PostgreSQL: row triggers refuse UPDATE and DELETE, a statement trigger refuses TRUNCATE (row
triggers do not fire on TRUNCATE), all ENABLE ALWAYS so that session_replication_role = replica
does not silence them. The chain head may only advance by one event at a time and never be deleted.
SQLite: BEFORE UPDATE / BEFORE DELETE triggers (SQLite has no TRUNCATE; DELETE without WHERE fires
the row trigger once triggers exist).
"""

from django.db import migrations

POSTGRESQL = r"""
CREATE FUNCTION audit_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'the audit log is append-only: % on % is refused', TG_OP, TG_TABLE_NAME
        USING ERRCODE = 'insufficient_privilege';
END
$$;
CREATE TRIGGER audit_event_append_only BEFORE UPDATE OR DELETE ON audit_auditevent
    FOR EACH ROW EXECUTE FUNCTION audit_refuse_change();
CREATE TRIGGER audit_event_no_truncate BEFORE TRUNCATE ON audit_auditevent
    FOR EACH STATEMENT EXECUTE FUNCTION audit_refuse_change();
CREATE TRIGGER audit_head_no_delete BEFORE DELETE ON audit_auditchainhead
    FOR EACH ROW EXECUTE FUNCTION audit_refuse_change();
CREATE TRIGGER audit_head_no_truncate BEFORE TRUNCATE ON audit_auditchainhead
    FOR EACH STATEMENT EXECUTE FUNCTION audit_refuse_change();
CREATE TRIGGER audit_head_advances_by_one BEFORE UPDATE ON audit_auditchainhead
    FOR EACH ROW WHEN (NEW.sequence <> OLD.sequence + 1 OR NEW.previous_hash <> OLD.hash)
    EXECUTE FUNCTION audit_refuse_change();
CREATE INDEX audit_recorded_at_brin ON audit_auditevent USING brin (recorded_at);
ALTER TABLE audit_auditevent ENABLE ALWAYS TRIGGER audit_event_append_only;
ALTER TABLE audit_auditevent ENABLE ALWAYS TRIGGER audit_event_no_truncate;
ALTER TABLE audit_auditchainhead ENABLE ALWAYS TRIGGER audit_head_no_delete;
ALTER TABLE audit_auditchainhead ENABLE ALWAYS TRIGGER audit_head_no_truncate;
ALTER TABLE audit_auditchainhead ENABLE ALWAYS TRIGGER audit_head_advances_by_one;
"""

SQLITE = [
    """CREATE TRIGGER audit_event_no_update BEFORE UPDATE ON audit_auditevent
       BEGIN SELECT RAISE(ABORT, 'the audit log is append-only: UPDATE is refused'); END""",
    """CREATE TRIGGER audit_event_no_delete BEFORE DELETE ON audit_auditevent
       BEGIN SELECT RAISE(ABORT, 'the audit log is append-only: DELETE is refused'); END""",
    """CREATE TRIGGER audit_head_no_delete BEFORE DELETE ON audit_auditchainhead
       BEGIN SELECT RAISE(ABORT, 'the audit log is append-only: DELETE is refused'); END""",
    """CREATE TRIGGER audit_head_advances_by_one BEFORE UPDATE ON audit_auditchainhead
       WHEN NEW.sequence <> OLD.sequence + 1 OR NEW.previous_hash <> OLD.hash
       BEGIN SELECT RAISE(ABORT, 'the audit chain head may only advance by one event'); END""",
]


def create_head_and_triggers(apps, schema_editor):
    AuditChainHead = apps.get_model("audit", "AuditChainHead")
    AuditChainHead.objects.create(id=1, sequence=0, previous_hash="0" * 64, hash="0" * 64)
    vendor = schema_editor.connection.vendor
    if vendor == "postgresql":
        # A plain cursor: schema_editor.execute would read RAISE's % placeholders as parameters.
        with schema_editor.connection.cursor() as cursor:
            cursor.execute(POSTGRESQL)
    elif vendor == "sqlite":
        for statement in SQLITE:
            schema_editor.execute(statement)
    else:
        raise RuntimeError(f"no append-only triggers for database {vendor!r}")


class Migration(migrations.Migration):
    dependencies = [("audit", "0001_initial")]

    operations = [migrations.RunPython(create_head_and_triggers, migrations.RunPython.noop)]
