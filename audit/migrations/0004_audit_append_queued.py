"""`audit_append(...)` returns nothing and fails loudly without a chain head.

The audit writer now queues its call to run in front of the transaction's next statement or its
COMMIT (`scs_cases.db.postgresql`), so nobody reads the row the function used to return, and a
missing head row, which used to show as an empty result, must be an error instead.
"""

from django.db import migrations

FUNCTION = r"""
DROP FUNCTION audit_append(text, timestamptz, bigint, text, text, text, text, text, text);
CREATE FUNCTION audit_append(
    p_canonical text, p_recorded_at timestamptz, p_actor_id bigint, p_actor_role text,
    p_action text, p_target_type text, p_target_id text, p_case_reference text,
    p_request_id text
) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    WITH head AS (
        UPDATE audit_auditchainhead
           SET sequence = audit_auditchainhead.sequence + 1,
               previous_hash = audit_auditchainhead.hash,
               hash = encode(sha256(convert_to(
                   audit_auditchainhead.hash || E'\n'
                   || (audit_auditchainhead.sequence + 1)::text || E'\n' || p_canonical,
                   'UTF8'
               )), 'hex')
         WHERE id = 1
     RETURNING audit_auditchainhead.sequence, audit_auditchainhead.previous_hash,
               audit_auditchainhead.hash
    )
    INSERT INTO audit_auditevent (
        sequence, recorded_at, actor_id, actor_role, action, target_type, target_id,
        case_reference, request_id, canonical, previous_hash, hash
    )
    SELECT head.sequence, p_recorded_at, p_actor_id, p_actor_role, p_action, p_target_type,
           p_target_id, p_case_reference, p_request_id, p_canonical, head.previous_hash,
           head.hash
      FROM head;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'the audit chain head is missing; run the audit migrations'
              USING ERRCODE = 'no_data_found';
    END IF;
END
$$;
"""


def replace(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return  # SQLite computes the hash in Python (audit.services._insert_portable)
    with schema_editor.connection.cursor() as cursor:
        cursor.execute(FUNCTION)


class Migration(migrations.Migration):
    dependencies = [("audit", "0003_audit_append")]

    operations = [migrations.RunPython(replace, migrations.RunPython.noop)]
