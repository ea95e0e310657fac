"""Agencies, subjects and catalogue entries that a credit record refers to cannot be deleted.

Credit records carry no per-row foreign-key check (it would cost the bulk import more than the
insert itself); instead, deleting a referenced parent row fails in the database. Deletes of
these rows are rare administrative acts, so the check runs there. PostgreSQL only (TRUNCATE,
an owner's tool that test databases use to reset all tables at once, is not guarded).
"""

from django.db import migrations

PARENTS = [
    # table, column of records_creditrecord that refers to it
    ("records_agency", "agency_id"),
    ("records_subject", "subject_id"),
    ("records_catalogueentry", "category_id"),
]

POSTGRESQL_FUNCTION = r"""
CREATE FUNCTION records_refuse_referenced_delete() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    -- Imports hold this lock shared (records.imports.IMPORT_LOCK_KEY): a delete waits for
    -- running imports, so the check below sees the records they add.
    PERFORM pg_advisory_xact_lock(7261034);
    IF EXISTS (
        SELECT 1 FROM records_creditrecord WHERE
            (TG_TABLE_NAME = 'records_agency' AND agency_id = OLD.id)
            OR (TG_TABLE_NAME = 'records_subject' AND subject_id = OLD.id)
            OR (TG_TABLE_NAME = 'records_catalogueentry' AND category_id = OLD.id)
    ) THEN
        RAISE EXCEPTION '% row % is referenced by credit records and cannot be deleted',
            TG_TABLE_NAME, OLD.id USING ERRCODE = 'foreign_key_violation';
    END IF;
    RETURN OLD;
END
$$;
"""


def create(apps, schema_editor):
    vendor = schema_editor.connection.vendor
    with schema_editor.connection.cursor() as cursor:
        if vendor == "postgresql":
            cursor.execute(POSTGRESQL_FUNCTION)
            for table, _column in PARENTS:
                cursor.execute(
                    f"CREATE TRIGGER {table}_kept_while_referenced BEFORE DELETE ON {table} "
                    "FOR EACH ROW EXECUTE FUNCTION records_refuse_referenced_delete()"
                )
                cursor.execute(
                    f"ALTER TABLE {table} ENABLE ALWAYS TRIGGER {table}_kept_while_referenced"
                )
        # SQLite is the development database: there Django's on_delete=PROTECT is the guard,
        # since its test flush deletes table by table and a trigger would refuse it.


class Migration(migrations.Migration):
    dependencies = [("records", "0001_initial")]

    operations = [migrations.RunPython(create, migrations.RunPython.noop)]
