"""`audit_append_many(...)`: a transaction's audit events in one statement, just before it commits.

The audit writer (`audit.services.audited`) collects a transaction's events and calls this once,
after every other statement of the transaction: it locks the chain head, appends the events in
order, each hashed over the previous one, and advances the head once. The head's row lock is thus
the last lock a transaction takes, held only for this statement and the commit, so it cannot form
a lock-order cycle with the row locks of imports, sweeps or corrections. `audit_append` is dropped:
nothing calls it any more.
"""

from django.db import migrations

FUNCTION = r"""
DROP FUNCTION IF EXISTS audit_append(text, timestamptz, bigint, text, text, text, text, text, text);
CREATE FUNCTION audit_append_many(
    p_canonical text[], p_recorded_at timestamptz[], p_actor_id bigint[], p_actor_role text[],
    p_action text[], p_target_type text[], p_target_id text[], p_case_reference text[],
    p_request_id text[]
) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    v_sequence bigint;
    v_hash text;
    v_previous text;
BEGIN
    SELECT sequence, hash INTO v_sequence, v_hash
      FROM audit_auditchainhead WHERE id = 1 FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'the audit chain head is missing; run the audit migrations'
              USING ERRCODE = 'no_data_found';
    END IF;
    FOR i IN 1 .. coalesce(array_length(p_canonical, 1), 0) LOOP
        v_previous := v_hash;
        v_sequence := v_sequence + 1;
        v_hash := encode(sha256(convert_to(
            v_previous || E'\n' || v_sequence::text || E'\n' || p_canonical[i], 'UTF8'
        )), 'hex');
        INSERT INTO audit_auditevent (
            sequence, recorded_at, actor_id, actor_role, action, target_type, target_id,
            case_reference, request_id, canonical, previous_hash, hash
        ) VALUES (
            v_sequence, p_recorded_at[i], p_actor_id[i], p_actor_role[i], p_action[i],
            p_target_type[i], p_target_id[i], p_case_reference[i], p_request_id[i],
            p_canonical[i], v_previous, v_hash
        );
        -- One event at a time, as the head's trigger (migration 0002) requires.
        UPDATE audit_auditchainhead
           SET sequence = v_sequence, previous_hash = v_previous, hash = v_hash
         WHERE id = 1;
    END LOOP;
END
$$;
"""


def replace(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return  # SQLite computes the hash in Python (audit.services._insert_portable)
    with schema_editor.connection.cursor() as cursor:
        cursor.execute(FUNCTION)


class Migration(migrations.Migration):
    dependencies = [("audit", "0004_audit_append_queued")]

    operations = [migrations.RunPython(replace, migrations.RunPython.noop)]
