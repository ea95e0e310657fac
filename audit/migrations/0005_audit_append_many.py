"""`audit_append(...)` takes a transaction's audit events at once, just before it commits.

The audit writer (`audit.services.audited`) collects a transaction's events and calls this once,
after every other statement of the transaction. It locks the chain head, stamps the events with
one time that never runs backwards against the sequence (the latest of the database's clock, the
application's, and the previous event's time, taken under the lock), puts that time into each
event's canonical text, and appends the events in order, each hashed over the previous one,
advancing the head one event at a time. The head's row lock is thus the last lock a transaction
takes, held only for this statement and the commit, so it cannot form a lock-order cycle with the
row locks of imports, sweeps or corrections. The one-event form of migration 0004 is replaced.
"""

from django.db import migrations

FUNCTION = r"""
DROP FUNCTION IF EXISTS audit_append(text, timestamptz, bigint, text, text, text, text, text, text);
CREATE FUNCTION audit_recorded_at_text(p_at timestamptz) RETURNS text
LANGUAGE sql IMMUTABLE AS $$
    -- What Python's datetime.isoformat() writes for the same UTC time (audit.services).
    SELECT to_char(p_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS')
        || CASE WHEN (date_part('microseconds', p_at)::bigint % 1000000) = 0 THEN ''
                ELSE '.' || to_char(p_at AT TIME ZONE 'UTC', 'US') END
        || '+00:00'
$$;
CREATE FUNCTION audit_append(
    p_canonical_before text[], p_canonical_after text[], p_earliest timestamptz[],
    p_actor_id bigint[], p_actor_role text[], p_action text[], p_target_type text[],
    p_target_id text[], p_case_reference text[], p_request_id text[]
) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    v_sequence bigint;
    v_hash text;
    v_previous text;
    v_at timestamptz;
    v_at_text text;
    v_canonical text;
BEGIN
    SELECT sequence, hash INTO v_sequence, v_hash
      FROM audit_auditchainhead WHERE id = 1 FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'the audit chain head is missing; run the audit migrations'
              USING ERRCODE = 'no_data_found';
    END IF;
    -- Microseconds, as Python keeps them; never before the previous event (greatest ignores NULL).
    SELECT greatest(
               date_trunc('microseconds', clock_timestamp()),
               (SELECT max(e) FROM unnest(p_earliest) AS e),
               (SELECT recorded_at FROM audit_auditevent WHERE sequence = v_sequence)
           ) INTO v_at;
    v_at_text := audit_recorded_at_text(v_at);
    FOR i IN 1 .. coalesce(array_length(p_canonical_before, 1), 0) LOOP
        v_previous := v_hash;
        v_sequence := v_sequence + 1;
        v_canonical := p_canonical_before[i] || v_at_text || p_canonical_after[i];
        v_hash := encode(sha256(convert_to(
            v_previous || E'\n' || v_sequence::text || E'\n' || v_canonical, 'UTF8'
        )), 'hex');
        INSERT INTO audit_auditevent (
            sequence, recorded_at, actor_id, actor_role, action, target_type, target_id,
            case_reference, request_id, canonical, previous_hash, hash
        ) VALUES (
            v_sequence, v_at, p_actor_id[i], p_actor_role[i], p_action[i], p_target_type[i],
            p_target_id[i], p_case_reference[i], p_request_id[i], v_canonical, v_previous, v_hash
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
        return  # SQLite stamps and hashes in Python (audit.services._insert_portable)
    with schema_editor.connection.cursor() as cursor:
        cursor.execute(FUNCTION)


class Migration(migrations.Migration):
    dependencies = [("audit", "0004_audit_append_queued")]

    operations = [migrations.RunPython(replace, migrations.RunPython.noop)]
