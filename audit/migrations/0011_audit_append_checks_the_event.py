"""`audit_append(...)` refuses an event whose hashed text is not its columns, in one form.

The hash covers the event's canonical text (audit.services), and the other columns must be what
that text says. The function joined the text its caller gave without looking at it, so a caller
(the application role, or the database's owner) could append a text with a key twice, or keys of
its own: its hash would verify, while a JSON reader of an export would see other values than the
columns do. Now each event's text must be exactly what its columns give, in the application's
canonical form: `{"action":…,"actor":…,"case":…,"data":…,"recorded_at":…,"request":…,"role":…,
"target":[…,…]}` with each column's value quoted as the application quotes it (recorded_at: the
time the function stamps), and `data` one JSON object. Anything else is refused (SQLSTATE 22023)
and nothing is appended.

The function keeps migration 0010's arguments and result; `manage.py db_roles` gives it back to
the owner and the application role after the migration, as after every migrate.
"""

from django.db import migrations

SIGNATURE = (
    "audit_append(text[], text[], timestamptz[], bigint[], text[], text[], text[], text[], "
    "text[], text[])"
)

ARGUMENTS = """
    p_canonical_before text[], p_canonical_after text[], p_earliest timestamptz[],
    p_actor_id bigint[], p_actor_role text[], p_action text[], p_target_type text[],
    p_target_id text[], p_case_reference text[], p_request_id text[],
    OUT last_sequence bigint, OUT last_hash text"""


def body(*, checked: bool) -> str:
    """The function's body: migration 0010's, with (`checked`) or without the new checks."""
    check = (
        r"""
        -- The text the columns give before and after `data`, quoted as the application's JSON
        -- quotes them (to_json escapes as json.dumps(ensure_ascii=False) does), and between
        -- them one JSON object. Only syntax is read in `data`: a \u0000 there is the
        -- application's to keep.
        v_prefix := '{"action":' || to_json(p_action[i])::text
                 || ',"actor":' || coalesce(p_actor_id[i]::text, 'null')
                 || ',"case":' || to_json(p_case_reference[i])::text || ',"data":';
        v_suffix := ',"recorded_at":' || to_json(v_at_text)::text
                 || ',"request":' || to_json(p_request_id[i])::text
                 || ',"role":' || to_json(p_actor_role[i])::text
                 || ',"target":[' || to_json(p_target_type[i])::text
                 || ',' || to_json(p_target_id[i])::text || ']}';
        v_data := substr(v_canonical, length(v_prefix) + 1,
                         length(v_canonical) - length(v_prefix) - length(v_suffix));
        IF v_prefix IS NULL OR v_suffix IS NULL
           OR left(v_canonical, length(v_prefix)) <> v_prefix
           OR right(v_canonical, length(v_suffix)) <> v_suffix
           OR left(v_data, 1) <> '{' OR right(v_data, 1) <> '}'
           OR length(v_canonical) < length(v_prefix) + length(v_suffix) + 2
        THEN
            RAISE EXCEPTION 'audit event %: its hashed text is not its columns', last_sequence
                  USING ERRCODE = 'invalid_parameter_value';
        END IF;
        PERFORM v_data::json;  -- refused (22P02) unless `data` is one JSON value"""
        if checked
        else ""
    )
    return rf"""
DECLARE
    v_previous text;
    v_at timestamptz;
    v_at_text text;
    v_canonical text;
    v_prefix text;
    v_suffix text;
    v_data text;
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
        v_canonical := p_canonical_before[i] || v_at_text || p_canonical_after[i];{check}
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


def _create(*, checked: bool) -> str:
    return (
        f"CREATE OR REPLACE FUNCTION audit_append({ARGUMENTS}\n) LANGUAGE plpgsql AS $$"
        f"{body(checked=checked)}$$;"
    )


def forward(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return  # SQLite stamps and hashes in Python (audit.services._insert_portable)
    with schema_editor.connection.cursor() as cursor:
        cursor.execute(_create(checked=True))


def backward(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    with schema_editor.connection.cursor() as cursor:
        cursor.execute(_create(checked=False))


class Migration(migrations.Migration):
    dependencies = [("audit", "0010_audit_append_returns_head")]

    operations = [migrations.RunPython(forward, backward)]
