"""`audit_append(...)` returns the chain head it leaves: the last sequence and hash appended.

The audit writer seals the events it appended (audit.services, AuditEventSeal) with the sequence
and hash of the last one. It read them back from the chain head in a statement of its own, one
more round trip in every audited transaction (a logged read has only this one write); the function
already holds them, under the head's row lock, and now returns them. The events, their stamps and
hashes are computed as before (migration 0005); only the result changes, so the function is dropped
and created again: `manage.py db_roles` gives it back to the owner and to the application role
after the migration, as after every migrate.
"""

from django.db import migrations

SIGNATURE = (
    "audit_append(text[], text[], timestamptz[], bigint[], text[], text[], text[], text[], "
    "text[], text[])"
)

ARGUMENTS = """
    p_canonical_before text[], p_canonical_after text[], p_earliest timestamptz[],
    p_actor_id bigint[], p_actor_role text[], p_action text[], p_target_type text[],
    p_target_id text[], p_case_reference text[], p_request_id text[]"""

VARIABLES = """
    v_previous text;
    v_at timestamptz;
    v_at_text text;
    v_canonical text;"""

# The statements of migration 0005, which keep the head in last_sequence and last_hash.
BODY = r"""
BEGIN
    SELECT sequence, hash INTO last_sequence, last_hash
      FROM audit_auditchainhead WHERE id = 1 FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'the audit chain head is missing; run the audit migrations'
              USING ERRCODE = 'no_data_found';
    END IF;
    -- Microseconds, as Python keeps them; never before the previous event (greatest ignores NULL).
    SELECT greatest(
               date_trunc('microseconds', clock_timestamp()),
               (SELECT max(e) FROM unnest(p_earliest) AS e),
               (SELECT recorded_at FROM audit_auditevent WHERE sequence = last_sequence)
           ) INTO v_at;
    v_at_text := audit_recorded_at_text(v_at);
    FOR i IN 1 .. coalesce(array_length(p_canonical_before, 1), 0) LOOP
        v_previous := last_hash;
        last_sequence := last_sequence + 1;
        v_canonical := p_canonical_before[i] || v_at_text || p_canonical_after[i];
        last_hash := encode(sha256(convert_to(
            v_previous || E'\n' || last_sequence::text || E'\n' || v_canonical, 'UTF8'
        )), 'hex');
        INSERT INTO audit_auditevent (
            sequence, recorded_at, actor_id, actor_role, action, target_type, target_id,
            case_reference, request_id, canonical, previous_hash, hash
        ) VALUES (
            last_sequence, v_at, p_actor_id[i], p_actor_role[i], p_action[i], p_target_type[i],
            p_target_id[i], p_case_reference[i], p_request_id[i], v_canonical, v_previous,
            last_hash
        );
        -- One event at a time, as the head's trigger (migration 0002) requires.
        UPDATE audit_auditchainhead
           SET sequence = last_sequence, previous_hash = v_previous, hash = last_hash
         WHERE id = 1;
    END LOOP;
END
"""

FORWARD = f"""
DROP FUNCTION {SIGNATURE};
CREATE FUNCTION audit_append({ARGUMENTS},
    OUT last_sequence bigint, OUT last_hash text
) LANGUAGE plpgsql AS $$
DECLARE {VARIABLES}
{BODY} $$;
"""

# Migration 0005's function, which returns nothing.
BACKWARD = f"""
DROP FUNCTION {SIGNATURE};
CREATE FUNCTION audit_append({ARGUMENTS}
) RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    last_sequence bigint;
    last_hash text; {VARIABLES}
{BODY} $$;
"""


def forward(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return  # SQLite stamps and hashes in Python (audit.services._insert_portable)
    with schema_editor.connection.cursor() as cursor:
        cursor.execute(FORWARD)


def backward(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    with schema_editor.connection.cursor() as cursor:
        cursor.execute(BACKWARD)


class Migration(migrations.Migration):
    dependencies = [("audit", "0009_audit_integrity_check")]

    operations = [migrations.RunPython(forward, backward)]
