"""The application's seal on the events of each transaction (audit.services.seal), append-only;
the start of the seals is the event after the log's head when this runs, itself sealed.

The start's seal is computed here, not by audit.services.seal_start, so that this migration
does not change when the application does; tests/audit/test_seal_migration.py holds the two
equal."""

import base64
import binascii
import hmac

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
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


def seal_start(sequence):
    """HMAC-SHA256, with the base64url-decoded SCS_AUDIT_SEAL_KEY, of the first sealed sequence
    (as audit.services.seal_start was when this migration was written)."""
    try:
        key = base64.urlsafe_b64decode(settings.AUDIT_SEAL_KEY)
    except (binascii.Error, ValueError) as error:
        raise ImproperlyConfigured("SCS_AUDIT_SEAL_KEY is not base64") from error
    if len(key) < 32:
        raise ImproperlyConfigured("SCS_AUDIT_SEAL_KEY must encode at least 32 bytes")
    message = f"scs-cases audit seals start\n{sequence}".encode()
    return hmac.digest(key, message, "sha256").hex()


def start_sealing(apps, schema_editor):
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
