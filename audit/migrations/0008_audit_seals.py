"""The application's seal on the events of each transaction (audit.services.seal), append-only;
the start of the seals is the event after the log's head when this runs, itself sealed."""

from django.db import migrations, models

POSTGRES = """
CREATE TRIGGER audit_seal_append_only BEFORE UPDATE OR DELETE ON audit_auditeventseal
    FOR EACH ROW EXECUTE FUNCTION audit_refuse_change();
CREATE TRIGGER audit_seal_no_truncate BEFORE TRUNCATE ON audit_auditeventseal
    FOR EACH STATEMENT EXECUTE FUNCTION audit_refuse_change();
CREATE TRIGGER audit_seal_start_fixed BEFORE UPDATE OR DELETE ON audit_auditsealstart
    FOR EACH ROW EXECUTE FUNCTION audit_refuse_change();
CREATE TRIGGER audit_seal_start_no_truncate BEFORE TRUNCATE ON audit_auditsealstart
    FOR EACH STATEMENT EXECUTE FUNCTION audit_refuse_change();
ALTER TABLE audit_auditeventseal ENABLE ALWAYS TRIGGER audit_seal_append_only;
ALTER TABLE audit_auditeventseal ENABLE ALWAYS TRIGGER audit_seal_no_truncate;
ALTER TABLE audit_auditsealstart ENABLE ALWAYS TRIGGER audit_seal_start_fixed;
ALTER TABLE audit_auditsealstart ENABLE ALWAYS TRIGGER audit_seal_start_no_truncate;
"""
SQLITE = [
    f"""CREATE TRIGGER {table}_no_{verb.lower()} BEFORE {verb} ON {table}
       BEGIN SELECT RAISE(ABORT, 'the audit log is append-only: {verb} is refused'); END"""
    for table in ("audit_auditeventseal", "audit_auditsealstart")
    for verb in ("UPDATE", "DELETE")
]


def start_sealing(apps, schema_editor):
    from audit.services import seal_start

    head = apps.get_model("audit", "AuditChainHead").objects.filter(pk=1).first()
    first = (head.sequence if head is not None else 0) + 1
    apps.get_model("audit", "AuditSealStart").objects.create(
        id=1, sequence=first, mac=seal_start(first)
    )
    with schema_editor.connection.cursor() as cursor:
        if schema_editor.connection.vendor == "postgresql":
            cursor.execute(POSTGRES)
        else:
            for statement in SQLITE:
                cursor.execute(statement)


class Migration(migrations.Migration):
    dependencies = [("audit", "0007_audit_exports")]

    operations = [
        migrations.CreateModel(
            name="AuditEventSeal",
            fields=[
                ("last_sequence", models.BigIntegerField(primary_key=True, serialize=False)),
                ("first_sequence", models.BigIntegerField(unique=True)),
                ("mac", models.CharField(max_length=64)),
            ],
        ),
        migrations.CreateModel(
            name="AuditSealStart",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("sequence", models.BigIntegerField()),
                ("mac", models.CharField(max_length=64)),
            ],
            options={
                "constraints": [
                    models.CheckConstraint(
                        condition=models.Q(("id", 1)), name="audit_seal_start_single_row"
                    )
                ],
            },
        ),
        migrations.RunPython(start_sealing, migrations.RunPython.noop),
    ]
