"""Verify an scs-cases audit export bundle offline, with Python's standard library only.

    python verify_bundle.py BUNDLE.zip [--public-key KEYS.pem ... | --key-id HEX ...] [--full]

Run it from the bundle's extracted `verifier/` folder (it loads `bundle_format.py`, `merkle.py`
and `ed25519.py` beside it). It checks, stopping at the first problem:

1. the signature of manifest.json (manifest.sig) with the public keys you trust: those in the PEM
   files you give (--public-key, obtained yourself), or those in the bundled public_keys.pem
   whose IDs you give (--key-id); without either, the bundled keys with a warning, because a key
   that travels with the bundle proves nothing by itself. After a key rotation, name the retired
   key too: older checkpoints carry its signature. The signed manifest names the selection, the
   counts and the sha256 and size of every other member;
2. every member of the zip against the manifest, and that no member is missing or unlisted;
3. the signature of checkpoint.json (the signed tree head), and every older checkpoint in
   checkpoints.json: its signature and its consistency proof to the signed head (the log only
   grew between them);
4. each line of events.ndjson, read as bytes: its shape, its hash
   (sha256 of previous_hash "\\n" sequence "\\n" event, where event is the exact text the log
   hashed), that it follows the previous line of its run (the previous-hash link), and that the
   last event of each run of consecutive sequences is in the signed tree (its inclusion proof in
   proofs.json leads to the checkpoint's root);
5. with --full, also: every event parses as JSON and is written in the log's canonical form, and
   events.csv says the same as events.ndjson, cell by cell (cells starting with = + - @ tab, CR
   or an apostrophe carry a leading apostrophe there). Without it, events.csv is checked by its
   sha256 in the signed manifest only: it is the file the export wrote, but only --full shows
   that it agrees with the events.

It prints "OK: N events verified against the checkpoint at event M (key ID)" and exits 0, or
"FAIL: <the first problem>" and exits 1.

The format ("scs-cases audit export v2") is in `bundle_format.py`, beside this file.
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
from typing import IO, Any

HEAD_FIELDS = ("tree_size", "root_hash", "last_hash", "created_at", "key_id", "signature")

# An events.ndjson line, by byte offset: the sequence runs from _SEQUENCE to the first comma C;
# then come the fixed parts below, at C + their offset.
_LINE_START = b'{"sequence":'
_SEQUENCE = len(_LINE_START)
_PREVIOUS = b',"previous_hash":"'
_HASH = b'","hash":"'
_EVENT = b'","event":'
_PREVIOUS_AT = len(_PREVIOUS)
_HASH_AT = _PREVIOUS_AT + 64
_EVENT_AT = _HASH_AT + len(_HASH) + 64
_EVENT_TEXT_AT = _EVENT_AT + len(_EVENT)
_HEX = frozenset(b"0123456789abcdef")
_PEM_BEGIN = "-----BEGIN PUBLIC KEY-----"
_PEM_END = "-----END PUBLIC KEY-----"


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


fmt = _sibling("bundle_format")
merkle = _sibling("merkle")
ed25519 = _sibling("ed25519")


class Failure(Exception):
    """The first problem found; its text follows "FAIL: "."""


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


def pem_keys(text: bytes, where: str) -> dict[str, bytes]:
    """The Ed25519 public keys of every PEM block in `text`, by key ID, in their order."""
    keys: dict[str, bytes] = {}
    try:
        blocks = text.decode("ascii").split(_PEM_END)
    except UnicodeDecodeError:
        raise Failure(f"{where} is not PEM text") from None
    for block in blocks[:-1]:
        begin = block.find(_PEM_BEGIN)
        try:
            key = bytes(ed25519.public_key_from_pem(block[begin:] + _PEM_END))
        except ValueError as error:
            raise Failure(f"{where}: not an Ed25519 public key ({error})") from None
        keys[str(ed25519.key_id(key))] = key
    if not keys or blocks[-1].strip():
        raise Failure(f"{where} holds no Ed25519 public key, or text after its last one")
    return keys


def choose_keys(
    bundle: zipfile.ZipFile, public_keys: list[str], key_ids: list[str]
) -> dict[str, bytes]:
    """The keys you trust, by ID: from your PEM files, or those of the bundle's that you name."""
    if public_keys:
        trusted: dict[str, bytes] = {}
        for path in public_keys:
            try:
                text = Path(path).read_bytes()
            except OSError as error:
                raise Failure(f"{path}: not readable ({error})") from None
            trusted.update(pem_keys(text, path))
        return trusted
    try:
        bundled = pem_keys(bundle.read(fmt.PUBLIC_KEYS), fmt.PUBLIC_KEYS)
    except KeyError:
        raise Failure(f"{fmt.PUBLIC_KEYS} is missing") from None
    if not key_ids:
        print(
            f"WARNING: checked with the public keys inside the bundle (IDs "
            f"{', '.join(bundled)}). A key that travels with the bundle proves nothing unless its "
            "ID is one you trust: obtain the IDs separately and pass --key-id, or pass "
            "--public-key.",
            file=sys.stderr,
        )
        return bundled
    trusted = {}
    for wanted in (key_id.strip().lower() for key_id in key_ids):
        if wanted not in bundled:
            raise Failure(
                f"{fmt.PUBLIC_KEYS} has no key with the ID you trust ({wanted}); it has "
                f"{', '.join(bundled)}"
            )
        trusted[wanted] = bundled[wanted]
    return trusted


def _signature_checks(
    keys: dict[str, bytes], key_id: object, signature: object, text: bytes
) -> str:
    """Why `signature` (hex) is not that of the trusted key `key_id` over `text`, or ""."""
    key = keys.get(key_id) if isinstance(key_id, str) else None
    if key is None:
        return f"it was signed by key {key_id}, not one you trust ({', '.join(keys)})"
    try:
        raw = bytes.fromhex(signature) if isinstance(signature, str) else b""
    except ValueError:
        raw = b""
    if not ed25519.verify(key, text, raw):
        return f"its signature does not verify with key {key_id}"
    return ""


def check_signature(head: dict[str, Any], keys: dict[str, bytes], where: str) -> None:
    problem = _signature_checks(keys, head["key_id"], head["signature"], fmt.statement(head))
    if problem:
        raise Failure(f"{where}: {problem}")


def check_manifest(bundle: zipfile.ZipFile, keys: dict[str, bytes]) -> dict[str, Any]:
    """The manifest, once its signature (manifest.sig) verifies."""
    try:
        text = bundle.read(fmt.MANIFEST)
    except KeyError:
        raise Failure(f"{fmt.MANIFEST} is missing") from None
    signed = _json(bundle, fmt.MANIFEST_SIGNATURE)
    if not isinstance(signed, dict):
        raise Failure(f"{fmt.MANIFEST_SIGNATURE} is not a signature")
    problem = _signature_checks(
        keys, signed.get("key_id"), signed.get("signature"), fmt.manifest_statement(text)
    )
    if problem:
        raise Failure(f"{fmt.MANIFEST}: {problem}")
    try:
        manifest = json.loads(text.decode("utf-8"))
    except ValueError:
        raise Failure(f"{fmt.MANIFEST} is not JSON") from None
    if not isinstance(manifest, dict) or manifest.get("format") != fmt.FORMAT:
        raise Failure(f'{fmt.MANIFEST}: not an "{fmt.FORMAT}" manifest')
    if not isinstance(manifest.get("files"), dict):
        raise Failure(f"{fmt.MANIFEST} lists no files")
    return manifest


def _digest_problem(name: str, expected: object, size: int, digest: str) -> str:
    if not isinstance(expected, dict) or expected.get("size") != size:
        return f"{name}: its size does not match the manifest"
    if expected.get("sha256") != digest:
        return f"{name}: its sha256 does not match the manifest"
    return ""


def check_files(bundle: zipfile.ZipFile, manifest: dict[str, Any]) -> None:
    """Every member against the manifest; events.ndjson's digest is taken while it is checked."""
    listed = manifest["files"]
    names = [info.filename for info in bundle.infolist()]
    for name in sorted({name for name in names if names.count(name) > 1}):
        raise Failure(f"{name} is in the zip more than once: tools differ on which one they read")
    present = set(names) - {fmt.MANIFEST, fmt.MANIFEST_SIGNATURE}
    for name in sorted(present - set(listed)):
        raise Failure(f"{name} is in the bundle but not in the manifest")
    for name, expected in sorted(listed.items()):
        if name not in present:
            raise Failure(f"{name} is in the manifest but not in the bundle")
        if name == fmt.EVENTS:
            continue
        digest, size = hashlib.sha256(), 0
        with bundle.open(name) as member:
            while block := member.read(1 << 20):
                digest.update(block)
                size += len(block)
        problem = _digest_problem(name, expected, size, digest.hexdigest())
        if problem:
            raise Failure(problem)


def check_checkpoints(bundle: zipfile.ZipFile, head: dict[str, Any], keys: dict[str, bytes]) -> int:
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
        check_signature(older, keys, where)
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


class _Lines:
    """The lines of a member, without their newline, read in blocks; the sha256 and size of
    every byte read."""

    def __init__(self, member: IO[bytes]) -> None:
        self._member = member
        self.digest = hashlib.sha256()
        self.size = 0
        self.number = 0  # of the line last given

    def __iter__(self) -> Iterator[bytes]:
        tail = b""
        while block := self._member.read(1 << 20):
            self.digest.update(block)
            self.size += len(block)
            lines = (tail + block).split(b"\n")
            tail = lines.pop()
            for line in lines:
                self.number += 1
                yield line
        if tail:
            raise Failure(f"{fmt.EVENTS} line {self.number + 1}: it does not end with a newline")


def parse_line(line: bytes, number: int) -> tuple[int, bytes, bytes, bytes, bytes]:
    """(sequence, its digits, previous hash, hash, hashed event text) of an events.ndjson line,
    checked against its fixed shape."""
    comma = line.find(b",", _SEQUENCE)
    digits = line[_SEQUENCE:comma]
    if not (
        line.startswith(_LINE_START)
        and digits.isdigit()
        and digits[:1] != b"0"
        and line[comma : comma + _PREVIOUS_AT] == _PREVIOUS
        and line[comma + _HASH_AT : comma + _HASH_AT + len(_HASH)] == _HASH
        and line[comma + _EVENT_AT : comma + _EVENT_TEXT_AT] == _EVENT
        and line[comma + _EVENT_TEXT_AT : comma + _EVENT_TEXT_AT + 1] == b"{"
        and line.endswith(b"}")
    ):
        raise Failure(f"{fmt.EVENTS} line {number}: not an event")
    return (
        int(digits),
        digits,
        line[comma + _PREVIOUS_AT : comma + _HASH_AT],
        line[comma + _HASH_AT + len(_HASH) : comma + _EVENT_AT],
        line[comma + _EVENT_TEXT_AT : -1],
    )


def check_events(
    bundle: zipfile.ZipFile,
    manifest: dict[str, Any],
    head: dict[str, Any],
    runs: list[tuple[int, int, list[bytes]]],
) -> tuple[int, int | None, int | None]:
    """Every line of events.ndjson (step 4): (events, first sequence, last sequence)."""
    root = bytes.fromhex(head["root_hash"])
    size = head["tree_size"]
    sha256 = hashlib.sha256
    pending = iter(runs)
    run = next(pending, None)
    expected = run[0] if run else None  # the next sequence the runs vouch for
    previous_hash = b""
    count, first, last = 0, None, 0
    with bundle.open(fmt.EVENTS) as member:
        lines = _Lines(member)
        each = iter(lines)
        for line in each:
            sequence, digits, linked_to, digest, event = parse_line(line, lines.number)
            if sha256(linked_to + b"\n" + digits + b"\n" + event).hexdigest().encode() != digest:
                raise Failure(f"event {sequence}: its hash does not match its content")
            if sequence <= last:
                raise Failure(f"event {sequence}: not in sequence order (after event {last})")
            if sequence > size:
                raise Failure(f"event {sequence} is beyond the checkpoint (event {size})")
            if run is None or expected is None or sequence < expected:
                raise Failure(f"event {sequence} is in no run of proofs.json")
            if sequence > expected:
                following = next(each, b"")
                if following.startswith(_LINE_START):
                    after = following[_SEQUENCE : following.find(b",", _SEQUENCE)]
                    if after.isdigit() and int(after) < sequence:
                        raise Failure(
                            f"event {int(after)}: not in sequence order (after event {sequence})"
                        )
                raise Failure(
                    f"event {expected} is missing: proofs.json vouches for events "
                    f"{run[0]} to {run[1]}"
                )
            if sequence != run[0]:
                if linked_to != previous_hash:
                    raise Failure(
                        f"event {sequence}: its previous hash is not the hash of event {last}"
                    )
            elif not _HEX.issuperset(linked_to):  # a run's first link is checked by its hash
                raise Failure(f"event {sequence}: its previous hash is not a sha256 in hex")
            if sequence == run[1]:
                leaf = merkle.leaf_hash(bytes.fromhex(digest.decode()))
                if not merkle.verify_inclusion(leaf, sequence - 1, size, run[2], root):
                    raise Failure(
                        f"event {sequence}: its inclusion proof does not lead to the "
                        f"checkpoint's root (event {size})"
                    )
                run = next(pending, None)
                expected = run[0] if run else None
            else:
                expected = sequence + 1
            previous_hash, last = digest, sequence
            count += 1
            first = sequence if first is None else first
    if run is not None:
        raise Failure(
            f"event {expected} is missing: {fmt.EVENTS} ends, but proofs.json vouches for "
            f"events {run[0]} to {run[1]}"
        )
    problem = _digest_problem(
        fmt.EVENTS, manifest["files"][fmt.EVENTS], lines.size, lines.digest.hexdigest()
    )
    if problem:
        raise Failure(problem)
    return count, first, last or None


def check_full(bundle: zipfile.ZipFile) -> None:
    """Step 5 (--full): each event is canonical JSON, and events.csv agrees with events.ndjson."""
    with bundle.open(fmt.EVENTS) as member, bundle.open(fmt.EVENTS_CSV) as raw_csv:
        rows = csv.reader(io.TextIOWrapper(raw_csv, encoding="utf-8", newline=""))
        if next(rows, None) != list(fmt.CSV_COLUMNS):
            raise Failure(f"{fmt.EVENTS_CSV}: its header is not the event columns")
        lines = _Lines(member)
        for line in lines:
            sequence, _, previous_hash, digest, text = parse_line(line, lines.number)
            try:
                event = json.loads(text)
                written = fmt.canonical(event).encode()
            except ValueError:
                raise Failure(f"event {sequence}: its event is not JSON") from None
            if written != text or list(event) != list(fmt.EVENT_KEYS):
                raise Failure(f"event {sequence}: its event is not in the log's canonical form")
            target = event["target"]
            if not (isinstance(target, list) and len(target) == 2):
                raise Failure(f"event {sequence}: its target is not a pair")
            row = fmt.csv_row(sequence, previous_hash.decode(), digest.decode(), event)
            if next(rows, None) != row:
                raise Failure(
                    f"{fmt.EVENTS_CSV}: the row of event {sequence} differs from {fmt.EVENTS}"
                )
        if next(rows, None) is not None:
            raise Failure(f"{fmt.EVENTS_CSV} has rows that {fmt.EVENTS} does not")


def verify(
    path: str,
    public_keys: list[str] | None = None,
    key_ids: list[str] | None = None,
    *,
    full: bool = False,
) -> str:
    """The OK line for the bundle at `path`; Failure at the first problem."""
    try:
        bundle = zipfile.ZipFile(path)
    except (OSError, zipfile.BadZipFile) as error:
        raise Failure(f"{path}: not a readable zip file ({error})") from None
    with bundle:
        keys = choose_keys(bundle, public_keys or [], key_ids or [])
        manifest = check_manifest(bundle, keys)
        check_files(bundle, manifest)
        head = _head(_json(bundle, "checkpoint.json"), "checkpoint.json")
        check_signature(head, keys, "checkpoint.json")
        checkpoints = check_checkpoints(bundle, head, keys)
        runs = _runs(bundle, head)
        count, first, last = check_events(bundle, manifest, head, runs)
        if full:
            check_full(bundle)
        summary = {
            "checkpoint_tree_size": head["tree_size"],
            "key_id": head["key_id"],
            "first_sequence": first,
            "last_sequence": last,
        }
        for field, value in summary.items():
            if manifest.get(field) != value:
                raise Failure(f"{fmt.MANIFEST}: {field} is {manifest.get(field)}, not {value}")
        counts = {"events": count, "runs": len(runs), "checkpoints": checkpoints}
        if manifest.get("counts") != counts:
            raise Failure(f"{fmt.MANIFEST}: the counts are {manifest.get('counts')}, not {counts}")
    return (
        f"OK: {count} events verified against the checkpoint at event {head['tree_size']} "
        f"(key {head['key_id']})" + ("; events.csv agrees with them" if full else "")
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Verify an scs-cases audit export bundle.")
    parser.add_argument("bundle", help="the export's zip file")
    keys = parser.add_mutually_exclusive_group()
    keys.add_argument(
        "--public-key",
        action="append",
        help="a PEM file with the public key(s) you trust (repeat it for several files)",
    )
    keys.add_argument(
        "--key-id",
        action="append",
        help="the ID (16 hex digits) of a key you trust, among the bundle's (repeat it after a "
        "key rotation: checkpoints signed before it carry the retired key's ID)",
    )
    parser.add_argument(
        "--full",
        action="store_true",
        help="also parse every event and compare events.csv with events.ndjson cell by cell",
    )
    arguments = parser.parse_args(argv)
    try:
        print(verify(arguments.bundle, arguments.public_key, arguments.key_id, full=arguments.full))
    except Failure as failure:
        print(f"FAIL: {failure}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
