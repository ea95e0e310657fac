"""Verify an scs-cases audit export bundle offline, with Python's standard library only.

    python verify_bundle.py BUNDLE.zip [--public-key KEY.pem | --key-id HEX]

Run it from the bundle's extracted `verifier/` folder (it loads `merkle.py` and `ed25519.py`
beside it). It checks, stopping at the first problem:

1. every member of the zip against the sha256 and size in manifest.json, and that no member is
   missing or unlisted;
2. the signature of checkpoint.json (the signed tree head) with the public key you give
   (--public-key, a PEM file you obtained yourself), or with the bundled public_key.pem when its
   ID is the --key-id you trust; without either, with the bundled key and a warning, because a
   key that travels with the bundle proves nothing by itself;
3. every older checkpoint in checkpoints.json: its signature and its consistency proof to the
   signed head (the log only grew between them);
4. each event of events.ndjson: its hash is sha256(previous_hash "\\n" sequence "\\n" canonical),
   its columns agree with its canonical JSON, it follows the previous event of its run (the
   previous-hash link), and the last event of each run of consecutive sequences is in the
   signed tree (its inclusion proof in proofs.json leads to the checkpoint's root);
5. events.csv against events.ndjson, row by row (cells starting with = + - @ tab or CR carry a
   leading apostrophe there), and the counts in manifest.json.

It prints "OK: N events verified against the checkpoint at event M (key ID)" and exits 0, or
"FAIL: <the first problem>" and exits 1.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import importlib.util
import io
import json
import sys
import zipfile
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

FORMAT = "scs-cases audit export v1"
STATEMENT_HEADER = "scs-cases audit checkpoint v1"
COLUMNS = (
    "sequence",
    "recorded_at",
    "actor_id",
    "actor_role",
    "action",
    "target_type",
    "target_id",
    "case_reference",
    "request_id",
    "canonical",
    "previous_hash",
    "hash",
)
HEAD_FIELDS = ("tree_size", "root_hash", "last_hash", "created_at", "key_id", "signature")
FORMULA_LEADING = ("=", "+", "-", "@", "\t", "\r")
# What json.dumps(..., ensure_ascii=False) writes for a string, as the project's canonical JSON.
_quoted = json.encoder.encode_basestring  # type: ignore[attr-defined]


def _sibling(name: str) -> ModuleType:
    """`name`.py beside this script (in a bundle) or in the folder above (in the repository)."""
    here = Path(__file__).resolve().parent
    for folder in (here, here.parent):
        path = folder / f"{name}.py"
        if path.is_file():
            spec = importlib.util.spec_from_file_location(f"_bundle_{name}", path)
            if spec is None or spec.loader is None:
                break
            module = importlib.util.module_from_spec(spec)
            sys.modules[spec.name] = module
            spec.loader.exec_module(module)
            return module
    raise SystemExit(f"FAIL: {name}.py is not beside verify_bundle.py")


merkle = _sibling("merkle")
ed25519 = _sibling("ed25519")


class Failure(Exception):
    """The first problem found; its text follows "FAIL: "."""


def statement(head: dict[str, Any]) -> bytes:
    """The text a checkpoint's signature covers (audit.checkpoints.SignedHead.statement)."""
    lines = (
        STATEMENT_HEADER,
        head["tree_size"],
        head["root_hash"],
        head["last_hash"],
        head["created_at"],
    )
    return "".join(f"{line}\n" for line in lines).encode()


def neutralised(value: object) -> str:
    """A cell as events.csv holds it (records.content.export_cell)."""
    text = "" if value is None else str(value)
    return "'" + text if text.startswith((*FORMULA_LEADING, "'")) else text


def _hash(text: object, what: str) -> bytes:
    if not isinstance(text, str) or len(text) != 64:
        raise Failure(f"{what} is not a sha256 in hex")
    try:
        return bytes.fromhex(text)
    except ValueError:
        raise Failure(f"{what} is not a sha256 in hex") from None


def _proof(value: object, what: str) -> list[bytes]:
    if not isinstance(value, list):
        raise Failure(f"{what} is not a list of hashes")
    return [_hash(node, what) for node in value]


def _json(bundle: zipfile.ZipFile, name: str) -> Any:
    try:
        return json.loads(bundle.read(name).decode("utf-8"))
    except (KeyError, ValueError, UnicodeDecodeError):
        raise Failure(f"{name} is missing or not JSON") from None


def _head(value: object, where: str) -> dict[str, Any]:
    if not isinstance(value, dict) or any(field not in value for field in HEAD_FIELDS):
        raise Failure(f"{where} is not a signed checkpoint")
    if not isinstance(value["tree_size"], int) or value["tree_size"] < 1:
        raise Failure(f"{where} has no tree size")
    for field in ("created_at", "key_id", "signature"):
        if not isinstance(value[field], str):
            raise Failure(f"{where} has no {field}")
    _hash(value["root_hash"], f"{where}: root_hash")
    _hash(value["last_hash"], f"{where}: last_hash")
    return value


def check_files(bundle: zipfile.ZipFile) -> dict[str, Any]:
    manifest = _json(bundle, "manifest.json")
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise Failure(f'manifest.json: not an "{FORMAT}" manifest')
    listed = manifest.get("files")
    if not isinstance(listed, dict):
        raise Failure("manifest.json lists no files")
    present = {info.filename for info in bundle.infolist()} - {"manifest.json"}
    for name in sorted(present - set(listed)):
        raise Failure(f"{name} is in the bundle but not in the manifest")
    for name, expected in sorted(listed.items()):
        if name not in present:
            raise Failure(f"{name} is in the manifest but not in the bundle")
        digest, size = hashlib.sha256(), 0
        with bundle.open(name) as member:
            while block := member.read(1 << 16):
                digest.update(block)
                size += len(block)
        if not isinstance(expected, dict) or expected.get("size") != size:
            raise Failure(f"{name}: its size does not match the manifest")
        if expected.get("sha256") != digest.hexdigest():
            raise Failure(f"{name}: its sha256 does not match the manifest")
    return manifest


def choose_key(bundle: zipfile.ZipFile, public_key: str | None, key_id: str | None) -> bytes:
    if public_key is not None:
        try:
            return bytes(ed25519.public_key_from_pem(Path(public_key).read_bytes()))
        except (OSError, ValueError) as error:
            raise Failure(f"{public_key}: not an Ed25519 public key ({error})") from None
    try:
        key = bytes(ed25519.public_key_from_pem(bundle.read("public_key.pem")))
    except (KeyError, ValueError):
        raise Failure("public_key.pem is missing or not an Ed25519 public key") from None
    bundled_id = str(ed25519.key_id(key))
    if key_id is None:
        print(
            f"WARNING: checked with the public key inside the bundle (ID {bundled_id}). A key "
            "that travels with the bundle proves nothing unless its ID is one you trust: obtain "
            "the ID separately and pass --key-id, or pass --public-key.",
            file=sys.stderr,
        )
    elif bundled_id != key_id.strip().lower():
        raise Failure(
            f"public_key.pem has ID {bundled_id}, not the ID you trust ({key_id.strip()})"
        )
    return key


def check_signature(head: dict[str, Any], key: bytes, where: str) -> None:
    expected_id = str(ed25519.key_id(key))
    if head["key_id"] != expected_id:
        raise Failure(f"{where} was signed by another key ({head['key_id']}, not {expected_id})")
    try:
        signature = bytes.fromhex(head["signature"])
    except ValueError:
        signature = b""
    if not ed25519.verify(key, statement(head), signature):
        raise Failure(f"{where}: the signature does not verify with key {expected_id}")


def check_checkpoints(bundle: zipfile.ZipFile, head: dict[str, Any], key: bytes) -> int:
    data = _json(bundle, "checkpoints.json")
    if not isinstance(data, dict) or not isinstance(data.get("checkpoints"), list):
        raise Failure("checkpoints.json lists no checkpoints")
    if data.get("tree_size") != head["tree_size"]:
        raise Failure("checkpoints.json: its proofs are to another tree size than checkpoint.json")
    new_root = bytes.fromhex(head["root_hash"])
    for older in data["checkpoints"]:
        where = "checkpoints.json: the checkpoint at event {}".format(
            older.get("tree_size") if isinstance(older, dict) else "?"
        )
        older = _head(older, where)
        check_signature(older, key, where)
        if older["tree_size"] >= head["tree_size"]:
            raise Failure(f"{where} is not older than checkpoint.json")
        proof = _proof(older.get("consistency_proof"), f"{where}: consistency_proof")
        if not merkle.verify_consistency(
            older["tree_size"],
            head["tree_size"],
            bytes.fromhex(older["root_hash"]),
            new_root,
            proof,
        ):
            raise Failure(
                f"{where} is not consistent with checkpoint.json (event {head['tree_size']}): "
                "the log was not only appended to between them"
            )
    return len(data["checkpoints"])


def _runs(bundle: zipfile.ZipFile, head: dict[str, Any]) -> list[tuple[int, int, list[bytes]]]:
    data = _json(bundle, "proofs.json")
    if not isinstance(data, dict) or not isinstance(data.get("runs"), list):
        raise Failure("proofs.json lists no runs")
    if data.get("tree_size") != head["tree_size"]:
        raise Failure("proofs.json: its proofs are to another tree size than checkpoint.json")
    runs: list[tuple[int, int, list[bytes]]] = []
    after = 0
    for run in data["runs"]:
        first = run.get("first") if isinstance(run, dict) else None
        last = run.get("last") if isinstance(run, dict) else None
        if not (isinstance(first, int) and isinstance(last, int) and after < first <= last):
            raise Failure(f"proofs.json: the run after event {after} is malformed or out of order")
        if last > head["tree_size"]:
            raise Failure(
                f"proofs.json: the run {first}-{last} is beyond the checkpoint "
                f"(event {head['tree_size']})"
            )
        runs.append((first, last, _proof(run.get("proof"), f"proofs.json: run {first}-{last}")))
        after = last
    return runs


def _ndjson(bundle: zipfile.ZipFile) -> Iterator[tuple[int, dict[str, Any]]]:
    with bundle.open("events.ndjson") as raw:
        for number, line in enumerate(io.TextIOWrapper(raw, encoding="utf-8"), start=1):
            try:
                event = json.loads(line)
            except ValueError:
                raise Failure(f"events.ndjson line {number}: not JSON") from None
            if not isinstance(event, dict) or set(event) != set(COLUMNS):
                raise Failure(f"events.ndjson line {number}: not an event")
            yield number, event


def check_event(event: dict[str, Any], number: int) -> int:
    """The event's own checks: its hash and its columns against its canonical text."""
    sequence = event["sequence"]
    if not isinstance(sequence, int) or isinstance(sequence, bool) or sequence < 1:
        raise Failure(f"events.ndjson line {number}: no sequence number")
    canonical, previous = event["canonical"], event["previous_hash"]
    if not all(isinstance(value, str) for value in (canonical, previous, event["hash"])):
        raise Failure(f"event {sequence}: canonical, previous_hash and hash are text")
    message = f"{previous}\n{sequence}\n{canonical}".encode()
    if hashlib.sha256(message).hexdigest() != event["hash"]:
        raise Failure(f"event {sequence}: its hash does not match its content")
    # The canonical text is the event's JSON with sorted keys; rather than parse it again, the
    # text its columns would give before and after `data` is built and compared.
    actor = event["actor_id"]
    if actor is not None and (not isinstance(actor, int) or isinstance(actor, bool)):
        raise Failure(f"event {sequence}: its actor_id is not a number")
    try:
        before = (
            f'{{"action":{_quoted(event["action"])},"actor":{"null" if actor is None else actor},'
            f'"case":{_quoted(event["case_reference"])},"data":'
        )
        after = (
            f',"recorded_at":{_quoted(event["recorded_at"])},"request":'
            f'{_quoted(event["request_id"])},"role":{_quoted(event["actor_role"])},"target":['
            f"{_quoted(event['target_type'])},{_quoted(event['target_id'])}]}}"
        )
    except TypeError:
        raise Failure(f"event {sequence}: a column is not text") from None
    if not (canonical.startswith(before) and canonical.endswith(after)):
        raise Failure(f"event {sequence}: its columns differ from its hashed content")
    return sequence


def check_events(
    bundle: zipfile.ZipFile, head: dict[str, Any], runs: list[tuple[int, int, list[bytes]]]
) -> tuple[int, int | None, int | None]:
    root = bytes.fromhex(head["root_hash"])
    size = head["tree_size"]
    pending = iter(runs)
    run = next(pending, None)
    expected = run[0] if run else None  # the next sequence the runs vouch for
    previous: dict[str, Any] | None = None
    count, first = 0, None
    with bundle.open("events.csv") as raw_csv:
        rows = csv.reader(io.TextIOWrapper(raw_csv, encoding="utf-8", newline=""))
        if next(rows, None) != list(COLUMNS):
            raise Failure("events.csv: its header is not the event columns")
        lines = _ndjson(bundle)
        ahead = next(lines, None)
        while ahead is not None:
            number, event = ahead
            ahead = next(lines, None)
            sequence = check_event(event, number)
            if previous is not None and sequence <= previous["sequence"]:
                raise Failure(
                    f"event {sequence}: not in sequence order (after event {previous['sequence']})"
                )
            if sequence > size:
                raise Failure(f"event {sequence} is beyond the checkpoint (event {size})")
            if run is None or expected is None or sequence < expected:
                raise Failure(f"event {sequence} is in no run of proofs.json")
            if sequence > expected:
                following = ahead[1].get("sequence") if ahead else None
                if isinstance(following, int) and following < sequence:
                    raise Failure(
                        f"event {following}: not in sequence order (after event {sequence})"
                    )
                raise Failure(
                    f"event {expected} is missing: proofs.json vouches for events "
                    f"{run[0]} to {run[1]}"
                )
            linked = sequence == run[0] or previous is None
            if not linked and event["previous_hash"] != previous["hash"]:  # type: ignore[index]
                raise Failure(
                    f"event {sequence}: its previous hash is not the hash of event "
                    f"{previous['sequence']}"  # type: ignore[index]
                )
            if sequence == run[1]:
                leaf = merkle.leaf_hash(_hash(event["hash"], f"event {sequence}: hash"))
                if not merkle.verify_inclusion(leaf, sequence - 1, size, run[2], root):
                    raise Failure(
                        f"event {sequence}: its inclusion proof does not lead to the "
                        f"checkpoint's root (event {size})"
                    )
                run = next(pending, None)
                expected = run[0] if run else None
            else:
                expected = sequence + 1
            row = next(rows, None)
            if row != [neutralised(event[column]) for column in COLUMNS]:
                raise Failure(f"events.csv: the row of event {sequence} differs from events.ndjson")
            previous = event
            count += 1
            first = sequence if first is None else first
        if run is not None:
            raise Failure(
                f"event {expected} is missing: events.ndjson ends, but proofs.json vouches for "
                f"events {run[0]} to {run[1]}"
            )
        if next(rows, None) is not None:
            raise Failure("events.csv has rows that events.ndjson does not")
    return count, first, previous["sequence"] if previous else None


def verify(path: str, public_key: str | None = None, key_id: str | None = None) -> str:
    """The OK line for the bundle at `path`; Failure at the first problem."""
    try:
        bundle = zipfile.ZipFile(path)
    except (OSError, zipfile.BadZipFile) as error:
        raise Failure(f"{path}: not a readable zip file ({error})") from None
    with bundle:
        manifest = check_files(bundle)
        key = choose_key(bundle, public_key, key_id)
        head = _head(_json(bundle, "checkpoint.json"), "checkpoint.json")
        check_signature(head, key, "checkpoint.json")
        checkpoints = check_checkpoints(bundle, head, key)
        runs = _runs(bundle, head)
        count, first, last = check_events(bundle, head, runs)
        summary = {
            "checkpoint_tree_size": head["tree_size"],
            "key_id": head["key_id"],
            "first_sequence": first,
            "last_sequence": last,
        }
        for field, value in summary.items():
            if manifest.get(field) != value:
                raise Failure(f"manifest.json: {field} is {manifest.get(field)}, not {value}")
        counts = {"events": count, "runs": len(runs), "checkpoints": checkpoints}
        if manifest.get("counts") != counts:
            raise Failure(f"manifest.json: the counts are {manifest.get('counts')}, not {counts}")
    return (
        f"OK: {count} events verified against the checkpoint at event {head['tree_size']} "
        f"(key {head['key_id']})"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Verify an scs-cases audit export bundle.")
    parser.add_argument("bundle", help="the export's zip file")
    keys = parser.add_mutually_exclusive_group()
    keys.add_argument("--public-key", help="a PEM file with the public key you trust")
    keys.add_argument("--key-id", help="the ID (16 hex digits) of the key you trust")
    arguments = parser.parse_args(argv)
    try:
        print(verify(arguments.bundle, arguments.public_key, arguments.key_id))
    except Failure as failure:
        print(f"FAIL: {failure}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
