"""`audit_append(...)`: the audit writer's statement as a PL/pgSQL function.

PL/pgSQL keeps the statement's plan for the session, so each audited change no longer pays for
planning it (about 0.13 ms of the 0.33 ms the statement took). The statement is the one that
`audit.services` ran directly before: advance the single-row chain head (its row lock orders
writers and keeps the sequence gap-free) and insert the event hashed over the previous hash.
"""

from django.db import migrations

FUNCTION = r"""
CREATE FUNCTION audit_append(
    p_canonical text, p_recorded_at timestamptz, p_actor_id bigint, p_actor_role text,
    p_action text, p_target_type text, p_target_id text, p_case_reference text,
    p_request_id text
) RETURNS TABLE (out_sequence bigint, out_previous_hash text, out_hash text)
LANGUAGE plpgsql AS $$
BEGIN
    RETURN QUERY
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
    INSERT INTO audit_auditevent AS event (
        sequence, recorded_at, actor_id, actor_role, action, target_type, target_id,
        case_reference, request_id, canonical, previous_hash, hash
    )
    SELECT head.sequence, p_recorded_at, p_actor_id, p_actor_role, p_action, p_target_type,
           p_target_id, p_case_reference, p_request_id, p_canonical, head.previous_hash,
           head.hash
      FROM head
    RETURNING event.sequence, event.previous_hash::text, event.hash::text;
END
$$;
"""


def create(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return  # SQLite computes the hash in Python (audit.services._insert_portable)
    with schema_editor.connection.cursor() as cursor:
        cursor.execute(FUNCTION)


class Migration(migrations.Migration):
    dependencies = [("audit", "0002_append_only")]

    operations = [migrations.RunPython(create, migrations.RunPython.noop)]
