"""The bundle's standalone verifier (issue 12): it accepts an untouched export and names what was
tampered with (a flipped byte, a deleted, inserted or swapped event, a truncated tail, a replaced
checkpoint, a bad signature, a manifest or CSV changed), with the keys the auditor trusts."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import pytest

from audit.checkpoints import (
    SignedHead,
    audit_checkpoint_create,
    key_id,
    public_key,
    raw_public_key,
)
from audit.services import chain_hash
from audit.verifier import verify_bundle
from tests.audit.exporting import (
    CASE,
    built,
    bundle_path,
    case_events,
    csv_of,
    events_of,
    ndjson,
    rewritten,
    run_verifier,
    trusted_key,
    verdict,
    with_events,
)
from tests.audit.test_audit import record_events

pytestmark = [
    pytest.mark.django_db,
    pytest.mark.postgres,
    pytest.mark.usefixtures("private_folders"),
]


def test_without_a_trusted_key_it_verifies_with_a_warning(case_bundle, tmp_path: Path):
    result = run_verifier(case_bundle["path"], tmp_path)

    assert result.returncode == 0
    assert "proves nothing unless its ID is one you trust" in result.stderr


def test_a_key_id_the_bundle_does_not_carry_fails(case_bundle, tmp_path: Path):
    result = run_verifier(case_bundle["path"], tmp_path, "--key-id", "0" * 16)

    assert result.returncode == 1
    assert result.stdout == (
        f"FAIL: public_keys.pem has no key with the ID you trust ({'0' * 16}); it has "
        f"{trusted_key()}\n"
    )


def test_after_a_key_rotation_an_export_verifies_with_both_keys_trusted(
    settings, auditor, django_capture_on_commit_callbacks, tmp_path: Path
):
    case_events(3)
    older = audit_checkpoint_create()
    retired = public_key()
    settings.AUDIT_RETIRED_PUBLIC_KEYS = [raw_public_key(retired)]
    settings.AUDIT_SIGNING_KEY = "bmV3LWF1ZGl0LXNpZ25pbmcta2V5LWZvci10ZXN0cyE="
    case_events(2, start=3)
    export = built(auditor, {"case_reference": CASE}, django_capture_on_commit_callbacks)
    path = bundle_path(export)
    new, old = key_id(public_key()), key_id(retired)

    only_new = run_verifier(path, tmp_path, "--key-id", new)
    both = run_verifier(path, tmp_path, "--key-id", new, "--key-id", old, "--full")

    assert only_new.stdout == (
        f"FAIL: checkpoints.json: the checkpoint at event {older.tree_size}: it was signed by "
        f"key {old}, not one you trust ({new})\n"
    )
    assert (both.returncode, both.stdout[:22]) == (0, "OK: 5 events verified ")
    assert f"(key {new})" in both.stdout


@pytest.mark.parametrize(
    ("member", "before", "after", "failure"),
    [
        ("events.ndjson", b'"n":1', b'"n":7', "event {second}: its hash does not match its "
         "content"),
        ("events.ndjson", b'"sequence":', b'"sequence" :', "events.ndjson line 1: not an event"),
        ("events.csv", b"case.transitioned", b"case.transitionee", "events.csv: its sha256 does "
         "not match the manifest"),
        ("verifier/README.txt", b"Verifying", b"Verifyinh", "verifier/README.txt: its sha256 "
         "does not match the manifest"),
    ],
)  # fmt: skip
def test_a_flipped_byte_fails(case_bundle, tmp_path: Path, member, before, after, failure):
    path = case_bundle["path"]
    with zipfile.ZipFile(path) as source, zipfile.ZipFile(tmp_path / "flip.zip", "w") as out:
        for name in source.namelist():
            data = source.read(name)
            if name == member:
                assert before in data
                data = data.replace(before, after, 1)
            out.writestr(name, data)

    second = case_bundle["runs"][0][1]
    assert verdict(tmp_path / "flip.zip", tmp_path) == "FAIL: " + failure.format(second=second)


def test_a_changed_event_fails_its_hash_even_with_the_manifest_rewritten(case_bundle, tmp_path):
    events = events_of(case_bundle["path"])
    events[1]["canonical"] = events[1]["canonical"].replace('"n":1', '"n":7')

    assert verdict(with_events(case_bundle["path"], tmp_path, events), tmp_path) == (
        f"FAIL: event {events[1]['sequence']}: its hash does not match its content"
    )


def test_a_line_in_another_shape_fails_even_when_it_is_the_same_json(case_bundle, tmp_path):
    events = events_of(case_bundle["path"])
    lines = ndjson(events).splitlines(keepends=True)
    same = json.loads(lines[1])
    lines[1] = (json.dumps(same, sort_keys=True, separators=(",", ":")) + "\n").encode()

    tampered = rewritten(case_bundle["path"], tmp_path, **{"events.ndjson": b"".join(lines)})

    assert verdict(tampered, tmp_path) == "FAIL: events.ndjson line 2: not an event"


def test_the_full_check_refuses_an_event_not_written_in_the_canonical_form(tmp_path):
    """What only --full sees: a log that hashed JSON not in its canonical form (the chain itself
    would hold), and a CSV row that differs."""
    canonical = (
        '{"action":"case.filed","actor":null,"case":"SH-1","data":{"n":1},'
        '"recorded_at":"2026-12-01T00:00:00+00:00","request":"","role":"system",'
        '"target":["objections.case","1"]}'
    )
    event = {"sequence": 1, "previous_hash": "0" * 64, "hash": "a" * 64, "canonical": canonical}
    good = csv_of([event])

    def full_check(text: str, table: bytes) -> str:
        path = tmp_path / "events.zip"
        with zipfile.ZipFile(path, "w") as archive:
            archive.writestr("events.ndjson", ndjson([dict(event, canonical=text)]))
            archive.writestr("events.csv", table)
        with zipfile.ZipFile(path) as archive:
            try:
                verify_bundle.check_full(archive)
            except verify_bundle.Failure as failure:
                return str(failure)
        return "OK"

    assert full_check(canonical, good) == "OK"
    assert full_check(canonical.replace('"n":1', '"n": 1'), good) == (
        "event 1: its event is not in the log's canonical form"
    )
    assert full_check(canonical.replace('{"n":1}', '{"n":1,"n":1}'), good) == (
        "event 1: its event is not in the log's canonical form"
    )
    assert full_check(canonical, good.replace(b"case.filed", b"case.decided")) == (
        "events.csv: the row of event 1 differs from events.ndjson"
    )


def test_a_deleted_event_fails(case_bundle, tmp_path):
    events = events_of(case_bundle["path"])
    deleted = events.pop(1)
    first, _ = case_bundle["runs"]

    assert verdict(with_events(case_bundle["path"], tmp_path, events), tmp_path) == (
        f"FAIL: event {deleted['sequence']} is missing: proofs.json vouches for events "
        f"{first[0]} to {first[-1]}"
    )


def test_an_inserted_event_fails_even_when_chained_and_declared(case_bundle, tmp_path):
    events = events_of(case_bundle["path"])
    last = events[2]
    forged = dict(last, sequence=last["sequence"] + 1, previous_hash=last["hash"])
    forged["hash"] = chain_hash(
        previous_hash=last["hash"], sequence=forged["sequence"], canonical=forged["canonical"]
    )
    events.insert(3, forged)
    with zipfile.ZipFile(case_bundle["path"]) as archive:
        proofs = json.loads(archive.read("proofs.json"))
    proofs["runs"][0]["last"] = forged["sequence"]

    tampered = with_events(
        case_bundle["path"], tmp_path, events, **{"proofs.json": json.dumps(proofs).encode()}
    )

    assert verdict(tampered, tmp_path) == (
        f"FAIL: event {forged['sequence']}: its inclusion proof does not lead to the "
        f"checkpoint's root (event {case_bundle['head'].tree_size})"
    )


def test_two_swapped_events_fail(case_bundle, tmp_path):
    events = events_of(case_bundle["path"])
    events[0], events[1] = events[1], events[0]

    assert verdict(with_events(case_bundle["path"], tmp_path, events), tmp_path) == (
        f"FAIL: event {events[1]['sequence']}: not in sequence order "
        f"(after event {events[0]['sequence']})"
    )


def test_a_truncated_tail_fails(case_bundle, tmp_path):
    events = events_of(case_bundle["path"])
    dropped = events.pop()
    _, second = case_bundle["runs"]

    assert verdict(with_events(case_bundle["path"], tmp_path, events), tmp_path) == (
        f"FAIL: event {dropped['sequence']} is missing: events.ndjson ends, but proofs.json "
        f"vouches for events {second[0]} to {second[-1]}"
    )


def test_a_truncated_zip_fails(case_bundle, tmp_path):
    data = case_bundle["path"].read_bytes()
    (tmp_path / "short.zip").write_bytes(data[: len(data) // 2])

    assert verdict(tmp_path / "short.zip", tmp_path, case_bundle["path"]).startswith(
        f"FAIL: {tmp_path / 'short.zip'}: not a readable zip file"
    )


def test_a_replaced_checkpoint_fails(case_bundle, tmp_path):
    record_events(3)
    later = audit_checkpoint_create()
    path = case_bundle["path"]
    with zipfile.ZipFile(path) as archive:
        checkpoints = json.loads(archive.read("checkpoints.json"))
        proofs = json.loads(archive.read("proofs.json"))
    checkpoints["tree_size"] = proofs["tree_size"] = later.tree_size

    tampered = rewritten(
        path,
        tmp_path,
        **{
            "checkpoint.json": (SignedHead.of(later).as_line() + "\n").encode(),
            "checkpoints.json": json.dumps(checkpoints).encode(),
            "proofs.json": json.dumps(proofs).encode(),
        },
    )

    oldest = checkpoints["checkpoints"][0]["tree_size"]
    assert verdict(tampered, tmp_path) == (
        f"FAIL: checkpoints.json: the checkpoint at event {oldest} is not consistent with "
        f"checkpoint.json (event {later.tree_size}): the log was not only appended to between them"
    )


def test_a_bad_signature_fails(case_bundle, tmp_path):
    head = json.loads(zipfile.ZipFile(case_bundle["path"]).read("checkpoint.json"))
    head["signature"] = head["signature"][:-1] + ("0" if head["signature"][-1] != "0" else "1")

    tampered = rewritten(
        case_bundle["path"], tmp_path, **{"checkpoint.json": json.dumps(head).encode()}
    )

    assert verdict(tampered, tmp_path) == (
        f"FAIL: checkpoint.json: its signature does not verify with key {trusted_key()}"
    )


def test_a_manifest_changed_without_the_key_fails_its_signature(case_bundle, tmp_path):
    with zipfile.ZipFile(case_bundle["path"]) as archive:
        manifest = json.loads(archive.read("manifest.json"))
    manifest["filters"] = {"case_reference": "SH-2026-000001"}
    changed = json.dumps(manifest).encode()

    tampered = rewritten(case_bundle["path"], tmp_path, signed=False, **{"manifest.json": changed})

    assert verdict(tampered, tmp_path) == (
        f"FAIL: manifest.json: its signature does not verify with key {trusted_key()}"
    )


def test_a_bundle_without_the_manifest_signature_fails(case_bundle, tmp_path):
    tampered = rewritten(case_bundle["path"], tmp_path, **{"manifest.sig": b""})

    assert verdict(tampered, tmp_path) == "FAIL: manifest.sig is missing or not JSON"


def test_the_full_check_accepts_an_untouched_bundle(case_bundle, tmp_path):
    result = run_verifier(case_bundle["path"], tmp_path, "--key-id", trusted_key(), "--full")

    assert (result.returncode, result.stderr) == (0, "")
    assert result.stdout.endswith("; events.csv agrees with them\n")


def test_a_changed_csv_cell_fails_its_signed_digest_and_the_full_check(case_bundle, tmp_path):
    events = events_of(case_bundle["path"])
    shown = [dict(event) for event in events]
    shown[2]["canonical"] = shown[2]["canonical"].replace(
        '"action":"case.transitioned"', '"action":"case.withdrawn"'
    )
    unsigned = rewritten(
        case_bundle["path"], tmp_path, signed=False, **{"events.csv": csv_of(shown)}
    )
    assert verdict(unsigned, tmp_path) == (
        f"FAIL: manifest.json: its signature does not verify with key {trusted_key()}"
    )

    # Even with the manifest signed again, by someone who holds the key:
    tampered = rewritten(case_bundle["path"], tmp_path, **{"events.csv": csv_of(shown)})
    result = run_verifier(tampered, tmp_path, "--key-id", trusted_key(), "--full")

    assert result.stdout == (
        f"FAIL: events.csv: the row of event {events[2]['sequence']} differs from events.ndjson\n"
    )


@pytest.mark.filterwarnings("ignore:Duplicate name:UserWarning")
def test_a_member_added_twice_fails(case_bundle, tmp_path):
    forged = tmp_path / "twice.zip"
    with zipfile.ZipFile(case_bundle["path"]) as source, zipfile.ZipFile(forged, "w") as out:
        out.writestr("events.csv", b"sequence\r\n")  # first, where some tools look
        for name in source.namelist():
            out.writestr(name, source.read(name))

    assert verdict(forged, tmp_path) == (
        "FAIL: events.csv is in the zip more than once: tools differ on which one they read"
    )
