"""Signed checkpoints: tree heads over the audit log, kept outside the database, that a shorter,
rewritten or forked log contradicts (issue 12's mutations that the chain alone cannot see)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import load_pem_public_key
from django.core import mail
from django.core.exceptions import ImproperlyConfigured
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import DatabaseError, connection, transaction
from django.test import Client

from audit import merkle
from audit.checkpoints import (
    ChainBroken,
    SignedHead,
    audit_checkpoint_create,
    audit_log_verify,
    heads_from_file,
    key_id,
    known_public_keys,
    public_key,
    raw_public_key,
)
from audit.models import (
    GENESIS_HASH,
    AuditChainHead,
    AuditCheckpoint,
    AuditEvent,
    AuditEventSeal,
)
from audit.services import audit_record, audited, canonical_json, chain_hash, seal
from tests.audit.test_audit import record_events

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def checkpoint_file(settings, tmp_path: Path) -> Path:
    settings.AUDIT_CHECKPOINT_FILE = str(tmp_path / "checkpoints.jsonl")
    settings.AUDIT_CHECKPOINT_EMAILS = ["auditors@example.org"]
    return tmp_path / "checkpoints.jsonl"


def chain_hashes() -> list[bytes]:
    return [bytes.fromhex(h) for h in AuditEvent.objects.values_list("hash", flat=True)]


def checkpointed(django_capture_on_commit_callbacks, events: int = 5) -> AuditCheckpoint:
    record_events(events)
    with django_capture_on_commit_callbacks(execute=True):
        checkpoint = audit_checkpoint_create()
    assert checkpoint is not None
    return checkpoint


def test_a_checkpoint_signs_the_merkle_root_of_the_whole_log(django_capture_on_commit_callbacks):
    checkpoint = checkpointed(django_capture_on_commit_callbacks)

    head = AuditChainHead.objects.get(pk=1)
    assert (checkpoint.tree_size, checkpoint.last_hash) == (head.sequence, head.hash)
    assert checkpoint.root_hash == merkle.root(chain_hashes()).hex()
    signed = SignedHead.of(checkpoint)
    statement = (
        f"scs-cases audit checkpoint v1\n{head.sequence}\n{checkpoint.root_hash}\n"
        f"{head.hash}\n{signed.created_at}\n"
    )
    assert signed.statement() == statement.encode()
    key = load_pem_public_key(Client().get("/audit/public-key.pem").content)
    assert isinstance(key, Ed25519PublicKey)
    key.verify(bytes.fromhex(checkpoint.signature), statement.encode())  # raises if it fails
    assert checkpoint.key_id == key_id(public_key())


def test_no_checkpoint_is_signed_while_the_log_has_not_grown(django_capture_on_commit_callbacks):
    checkpointed(django_capture_on_commit_callbacks)

    assert audit_checkpoint_create() is None
    assert AuditCheckpoint.objects.count() == 1


def test_each_checkpoint_is_written_to_the_file_and_mailed_after_commit(
    django_capture_on_commit_callbacks, checkpoint_file: Path
):
    record_events(3)
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        checkpoint = audit_checkpoint_create()
    # nothing leaves before commit
    assert not checkpoint_file.exists()
    assert not mail.outbox

    for callback in callbacks:
        callback()

    line = SignedHead.of(checkpoint).as_line()  # type: ignore[arg-type]
    assert checkpoint_file.read_text(encoding="utf-8") == line + "\n"
    assert heads_from_file(checkpoint_file) == [SignedHead.of(checkpoint)]  # type: ignore[arg-type]
    [message] = mail.outbox
    assert message.to == ["auditors@example.org"]
    assert line in message.body
    assert json.loads(line)["tree_size"] == checkpoint.tree_size  # type: ignore[union-attr]


def test_the_public_key_is_served_and_printed(capsys):
    response = Client().get("/audit/public-key.pem")
    call_command("audit_public_key")

    assert response.status_code == 200
    assert response["X-Key-Id"] == key_id(public_key())
    printed = capsys.readouterr().out
    assert printed == (
        f"key id {key_id(public_key())}\n{response.content.decode()}"
        f"raw {raw_public_key(public_key())}\n"
    )


# --- rotating the signing key ------------------------------------------------------------------

NEW_SEED = "bmV3LWF1ZGl0LXNpZ25pbmcta2V5LWZvci10ZXN0cyE="  # 32 bytes


def rotated(settings) -> tuple[Ed25519PublicKey, Ed25519PublicKey]:
    """The signing key replaced by a new one, the old one retired: (old, new)."""
    old = public_key()
    settings.AUDIT_RETIRED_PUBLIC_KEYS = [raw_public_key(old)]
    settings.AUDIT_SIGNING_KEY = NEW_SEED
    return old, public_key()


def test_after_a_rotation_old_checkpoints_verify_with_the_retired_key(
    settings, capsys, django_capture_on_commit_callbacks
):
    before = checkpointed(django_capture_on_commit_callbacks)
    old, new = rotated(settings)
    after = checkpointed(django_capture_on_commit_callbacks, events=3)

    assert key_id(new) != key_id(old)
    assert (before.key_id, after.key_id) == (key_id(old), key_id(new))
    assert list(known_public_keys()) == [key_id(new), key_id(old)]
    assert audit_log_verify().intact
    served = Client().get("/audit/public-keys.pem")
    assert served["X-Key-Ids"] == f"{key_id(new)},{key_id(old)}"
    assert (
        [
            key_id(load_pem_public_key(f"-----BEGIN{block}".encode()))  # type: ignore[arg-type]
            for block in served.content.decode().split("-----BEGIN")[1:]
        ]
        == [key_id(new), key_id(old)]
    )
    assert Client().get("/audit/public-key.pem")["X-Key-Id"] == key_id(new)
    call_command("audit_public_key")
    printed = capsys.readouterr().out
    assert printed.index(f"key id {key_id(new)}") < printed.index("retired keys")
    assert printed.index("retired keys") < printed.index(f"key id {key_id(old)}")


def test_a_checkpoint_signed_by_a_key_the_platform_does_not_know_is_reported(
    settings, django_capture_on_commit_callbacks
):
    before = checkpointed(django_capture_on_commit_callbacks)
    settings.AUDIT_SIGNING_KEY = NEW_SEED  # rotated without retiring the old key

    result = audit_log_verify()

    assert result.broken is not None
    assert result.broken.sequence == before.tree_size
    assert result.broken.reason == (
        f"the checkpoint of {SignedHead.of(before).created_at} was signed by a key this platform "
        f"does not know ({before.key_id})"
    )


@pytest.mark.parametrize("value", ["not base64!", "c2hvcnQ="])
def test_a_retired_key_that_is_not_a_key_is_refused(settings, value):
    settings.AUDIT_RETIRED_PUBLIC_KEYS = [value]

    with pytest.raises(ImproperlyConfigured, match="SCS_AUDIT_RETIRED_PUBLIC_KEYS"):
        known_public_keys()


def test_the_untouched_log_verifies_against_its_checkpoints(django_capture_on_commit_callbacks):
    first = checkpointed(django_capture_on_commit_callbacks)
    second = checkpointed(django_capture_on_commit_callbacks, events=4)

    result = audit_log_verify()

    assert result.intact
    assert (first.tree_size + 4, second.tree_size) == (second.tree_size, result.last_sequence)


# --- what only checkpoints reveal (applied as the tables' owner, with the triggers off) ---------


def as_owner(*statements: str, params: list[object] | None = None) -> None:
    """An owner's rewrite of the log; the test's transaction rolls it back."""
    with connection.cursor() as cursor:
        cursor.execute("ALTER TABLE audit_auditevent DISABLE TRIGGER USER")
        cursor.execute("ALTER TABLE audit_auditchainhead DISABLE TRIGGER USER")
        cursor.execute("ALTER TABLE audit_auditcheckpoint DISABLE TRIGGER USER")
        cursor.execute("ALTER TABLE audit_auditeventseal DISABLE TRIGGER USER")
        for statement in statements:
            cursor.execute(statement, params or [])


def rewind_to(sequence: int, *, seals_too: bool = False) -> None:
    """Delete the events after `sequence` and point the head at it, so the chain verifies; with
    `seals_too`, delete the application's seals of those events as well."""
    if sequence:
        last = AuditEvent.objects.get(sequence=sequence)
        head = (sequence, last.previous_hash, last.hash)
    else:
        head = (0, GENESIS_HASH, GENESIS_HASH)
    as_owner(
        f"DELETE FROM audit_auditevent WHERE sequence > {int(sequence)}",
        "UPDATE audit_auditchainhead SET sequence = %s, previous_hash = %s, hash = %s",
        params=list(head),
    )
    if seals_too:
        as_owner(f"DELETE FROM audit_auditeventseal WHERE last_sequence > {int(sequence)}")


def sealed_up_to() -> int:
    return max(AuditEventSeal.objects.values_list("last_sequence", flat=True))


def rewrite_from(sequence: int, *, with_seals: bool = True) -> None:
    """Change event `sequence`'s action (its text and its column) and recompute its hash and
    every later one, and the head: a forged history whose chain verifies on its own. With
    `with_seals`, the forger also holds the application's seal key and seals the forgery."""
    events = list(AuditEvent.objects.filter(sequence__gte=sequence).order_by("sequence"))
    previous = events[0].previous_hash
    updates = []
    for event in events:
        canonical = event.canonical
        if event.sequence == sequence:
            canonical = canonical_json({**json.loads(canonical), "action": "record.forged"})
        digest = chain_hash(previous_hash=previous, sequence=event.sequence, canonical=canonical)
        updates.append((canonical, previous, digest, event.sequence))
        previous = digest
    with connection.cursor() as cursor:
        as_owner()
        cursor.executemany(
            "UPDATE audit_auditevent SET canonical = %s, previous_hash = %s, hash = %s "
            "WHERE sequence = %s",
            updates,
        )
        cursor.execute(
            "UPDATE audit_auditevent SET action = 'record.forged' WHERE sequence = %s", [sequence]
        )
        if with_seals:
            cursor.execute("ALTER TABLE audit_auditeventseal DISABLE TRIGGER USER")
            digests = {number: digest for _, _, digest, number in updates}
            ranges = AuditEventSeal.objects.filter(last_sequence__in=digests)
            cursor.executemany(
                "UPDATE audit_auditeventseal SET mac = %s WHERE last_sequence = %s",
                [
                    (
                        seal(r.first_sequence, r.last_sequence, digests[r.last_sequence]),
                        r.last_sequence,
                    )
                    for r in ranges
                ],
            )
        cursor.execute(
            "UPDATE audit_auditchainhead SET previous_hash = %s, hash = %s",
            [updates[-1][1], updates[-1][2]],
        )


@pytest.mark.postgres
@pytest.mark.parametrize("removed", [1, 20])
def test_deleting_the_newest_events_and_rewinding_the_head_is_caught(
    django_capture_on_commit_callbacks, removed: int
):
    checkpoint = checkpointed(django_capture_on_commit_callbacks, events=25)
    sealed = sealed_up_to()
    rewind_to(checkpoint.tree_size - removed)
    unsealed = audit_log_verify(heads=[])  # without checkpoints, the seals left behind tell
    assert unsealed.broken is not None
    assert unsealed.broken.reason == (
        f"the log ends at event {checkpoint.tree_size - removed}, but the application sealed "
        f"events up to {sealed}: events were removed since"
    )

    result = audit_log_verify()

    assert result.broken is not None
    assert result.broken.sequence == checkpoint.tree_size - removed + 1
    assert result.broken.reason == (
        f"the log ends at event {checkpoint.tree_size - removed}, but the checkpoint of "
        f"{SignedHead.of(checkpoint).created_at} vouches for {checkpoint.tree_size} events: "
        "events were removed since"
    )


@pytest.mark.postgres
def test_deleting_the_newest_events_and_their_seals_is_caught_by_the_checkpoint(
    django_capture_on_commit_callbacks,
):
    checkpoint = checkpointed(django_capture_on_commit_callbacks, events=25)
    boundary = max(
        AuditEventSeal.objects.filter(last_sequence__lt=checkpoint.tree_size).values_list(
            "last_sequence", flat=True
        )
    )
    rewind_to(boundary, seals_too=True)
    assert audit_log_verify(heads=[]).intact  # neither the chain nor the seals can tell

    result = audit_log_verify()

    assert result.broken is not None
    assert result.broken.sequence == boundary + 1
    assert f"vouches for {checkpoint.tree_size} events" in result.broken.reason


@pytest.mark.postgres
def test_emptying_the_log_and_resetting_the_head_to_genesis_is_caught(
    django_capture_on_commit_callbacks,
):
    checkpoint = checkpointed(django_capture_on_commit_callbacks)
    rewind_to(0, seals_too=True)
    assert audit_log_verify(heads=[]).intact

    result = audit_log_verify()

    assert result.broken is not None
    assert "the log ends at event 0" in result.broken.reason
    assert f"vouches for {checkpoint.tree_size} events" in result.broken.reason


@pytest.mark.postgres
def test_a_rewritten_history_with_every_later_hash_recomputed_is_caught(
    django_capture_on_commit_callbacks,
):
    checkpoint = checkpointed(django_capture_on_commit_callbacks, events=10)
    rewrite_from(checkpoint.tree_size - 5)
    assert audit_log_verify(heads=[]).intact

    result = audit_log_verify()

    assert result.broken is not None
    assert result.broken.sequence == checkpoint.tree_size
    assert result.broken.reason.startswith(
        f"the first {checkpoint.tree_size} events differ from the checkpoint of "
    )


@pytest.mark.postgres
def test_a_rewritten_history_without_the_seal_key_fails_at_the_first_forged_event(
    django_capture_on_commit_callbacks,
):
    checkpoint = checkpointed(django_capture_on_commit_callbacks, events=10)
    forged = checkpoint.tree_size - 5
    rewrite_from(forged, with_seals=False)

    result = audit_log_verify(heads=[])

    assert result.broken is not None
    assert (result.broken.sequence, result.broken.reason) == (
        forged,
        "the event does not carry the application's seal: it was not written by the application",
    )


@pytest.mark.postgres
def test_the_auditors_copy_catches_what_the_database_owner_also_erased(
    django_capture_on_commit_callbacks, checkpoint_file: Path
):
    checkpoint = checkpointed(django_capture_on_commit_callbacks, events=10)
    auditors_copy = checkpoint_file.with_name("kept-by-the-auditor.jsonl")
    auditors_copy.write_bytes(checkpoint_file.read_bytes())
    rewrite_from(checkpoint.tree_size - 2)
    as_owner("DELETE FROM audit_auditcheckpoint")

    erased = audit_log_verify()  # the checkpoint file still holds what the database lost
    assert erased.broken is not None
    assert erased.broken.reason == (
        f"the checkpoint of {SignedHead.of(checkpoint).created_at} (event "
        f"{checkpoint.tree_size}) is in the checkpoint file but no longer in the database: "
        "stored checkpoints were removed"
    )
    checkpoint_file.unlink()  # and when the deployment's file is gone too
    assert audit_log_verify().intact  # nothing left on the platform contradicts the log
    with pytest.raises(CommandError, match="differ from the checkpoint"):
        call_command("audit_verify", "--checkpoints", str(auditors_copy), "--no-progress")


@pytest.mark.postgres
def test_a_forged_checkpoint_fails_its_signature(django_capture_on_commit_callbacks):
    checkpoint = checkpointed(django_capture_on_commit_callbacks)
    forged = SignedHead.of(checkpoint)
    forged = SignedHead(**{**json.loads(forged.as_line()), "root_hash": "ab" * 32})

    result = audit_log_verify(heads=[forged])

    assert result.broken is not None
    assert result.broken.reason == (
        f"the signature of the checkpoint of {forged.created_at} does not verify"
    )


def test_a_log_that_does_not_verify_is_not_vouched_for(django_capture_on_commit_callbacks):
    checkpointed(django_capture_on_commit_callbacks)
    record_events(2)
    stored = AuditCheckpoint.objects.count()
    with connection.cursor() as cursor:
        if connection.vendor != "postgresql":
            pytest.skip("rewrites the log with PostgreSQL's trigger control")
        cursor.execute("ALTER TABLE audit_auditevent DISABLE TRIGGER USER")
        cursor.execute(
            "UPDATE audit_auditevent SET canonical = canonical || ' ' "
            "WHERE sequence = (SELECT max(sequence) FROM audit_auditevent)"
        )

    with pytest.raises(ChainBroken, match="hash does not match"):
        audit_checkpoint_create()
    assert AuditCheckpoint.objects.count() == stored
    with pytest.raises(CommandError, match="no checkpoint: audit chain broken"):
        call_command("audit_checkpoint")


def test_the_checkpoint_table_is_append_only(django_capture_on_commit_callbacks):
    from django.db import DatabaseError, transaction

    checkpoint = checkpointed(django_capture_on_commit_callbacks)

    for statement in (
        "UPDATE audit_auditcheckpoint SET root_hash = 'x'",
        "DELETE FROM audit_auditcheckpoint",
    ):
        with (
            pytest.raises(DatabaseError, match="append-only"),
            transaction.atomic(),
            connection.cursor() as cursor,
        ):
            cursor.execute(statement)
    assert AuditCheckpoint.objects.get().root_hash == checkpoint.root_hash


# --- the application's seal: what no signature over the past can see ----------------------------


@pytest.mark.postgres
def test_an_event_appended_through_audit_append_without_the_application_is_caught():
    """audit_append() is open to the database's owner; only the application can seal."""
    record_events(2)
    before, after = FORGED_BEFORE, FORGED_AFTER
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT audit_append(ARRAY[%s], ARRAY[%s], ARRAY[now()], ARRAY[NULL]::bigint[], "
            "ARRAY['system'], ARRAY['record.deleted'], ARRAY['records.creditrecord'], "
            "ARRAY['1'], ARRAY[''], ARRAY[''])",
            [before, after],
        )
    forged = AuditChainHead.objects.get(pk=1).sequence

    result = audit_log_verify()

    assert result.broken is not None
    assert (result.broken.sequence, result.broken.reason) == (
        forged,
        "the event does not carry the application's seal: it was not written by the application",
    )


FORGED_BEFORE = '{"action":"record.deleted","actor":null,"case":"","data":{},"recorded_at":"'
FORGED_AFTER = '","request":"","role":"system","target":["records.creditrecord","1"]}'


@pytest.mark.postgres
@pytest.mark.parametrize(
    ("before", "after", "action"),
    [
        # a key twice: a JSON reader would see the second action, the column says the first
        (FORGED_BEFORE.replace('"data":{}', '"data":{},"action":"case.closed"'), FORGED_AFTER,
         "record.deleted"),
        # a key of its own
        (FORGED_BEFORE, FORGED_AFTER.replace('"request":""', '"request":"","extra":1'),
         "record.deleted"),
        # a column other than the text says
        (FORGED_BEFORE, FORGED_AFTER, "record.published"),
        # not JSON at all
        ("not json ", FORGED_AFTER, "record.deleted"),
        # the target as one string
        (FORGED_BEFORE, FORGED_AFTER.replace('["records.creditrecord","1"]', '"x"'),
         "record.deleted"),
    ],
)  # fmt: skip
def test_audit_append_refuses_a_text_that_is_not_its_columns(before, after, action):
    record_events(1)
    head = AuditChainHead.objects.values_list("sequence", "hash").get(pk=1)

    with pytest.raises(DatabaseError), transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(
            "SELECT audit_append(ARRAY[%s], ARRAY[%s], ARRAY[now()], ARRAY[NULL]::bigint[], "
            "ARRAY['system'], ARRAY[%s], ARRAY['records.creditrecord'], ARRAY['1'], "
            "ARRAY[''], ARRAY[''])",
            [before, after, action],
        )

    assert AuditChainHead.objects.values_list("sequence", "hash").get(pk=1) == head
    assert AuditEvent.objects.count() == head[0]


@pytest.mark.postgres
def test_audit_append_takes_the_application_s_events_with_any_text():
    texts = ["\\u0000", '"quoted"', "\u2028\x7f\x1f", "形式 /", ""]  # NUL: in data only
    with audited():
        for text in texts:
            audit_record(
                actor=None,
                action=f"test.{text}",
                target_type=text,
                target_id=text,
                case_reference=text,
                data={"note": text, text: [text], "nul": f"a\x00{text}"},
            )

    stored = AuditEvent.objects.order_by("-sequence")[: len(texts)]
    assert sorted(event.payload["note"] for event in stored) == sorted(texts)
    assert sorted(event.payload["nul"] for event in stored) == sorted(f"a\x00{t}" for t in texts)
    assert audit_log_verify().intact


@pytest.mark.postgres
def test_moving_the_start_of_the_seals_to_excuse_a_forgery_is_caught():
    record_events(2)
    head = AuditChainHead.objects.get(pk=1).sequence
    with connection.cursor() as cursor:
        cursor.execute("ALTER TABLE audit_auditsealstart DISABLE TRIGGER USER")
        cursor.execute("UPDATE audit_auditsealstart SET sequence = %s", [head + 1])

    result = audit_log_verify()

    assert result.broken is not None
    assert result.broken.reason == "the start of the application's seals is altered"
