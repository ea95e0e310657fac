"""The export bundle: part of the audit log as a zip that an auditor verifies offline.

Format "scs-cases audit export v2", every member written as a stream (constant memory):

- `events.ndjson`: one line per exported event, in sequence order, exactly
  `{"sequence":N,"previous_hash":"<hex>","hash":"<hex>","event":<event>}` where <event> is the
  text the log hashed (`AuditEvent.canonical`: the event's JSON with sorted keys action, actor,
  case, data, recorded_at, request, role and target), embedded as it is. A verifier checks each
  hash on the line's bytes, without parsing them.
- `events.csv`: for reading in a spreadsheet, a header row and one row per event with the
  columns sequence, recorded_at, actor_id, actor_role, action, target_type, target_id,
  case_reference, request_id, data (JSON), previous_hash and hash, each cell passed through the
  verifier's `neutralised` (as `records.content.export_cell`: a cell starting with = + - @ tab,
  CR or an apostrophe gets a leading apostrophe). `verify_bundle.py --full` checks it cell by
  cell against events.ndjson.
- `checkpoint.json`: the signed tree head the export is checked against
  (`audit.checkpoints.SignedHead`, as its `as_line()` writes it); every exported event is in it.
- `checkpoints.json`: {"tree_size": N, "checkpoints": [...]}: every stored checkpoint older than
  that head, each with "consistency_proof", the hex RFC 6962 proof from its tree size to N.
- `proofs.json`: {"tree_size": N, "runs": [{"first", "last", "proof"}, ...]}: for each maximal
  run of consecutive sequence numbers among the exported events, the inclusion proof (hex, RFC
  6962, leaf data = the bytes of the event's chain hash, index = sequence - 1) of the run's last
  event. The previous-hash links anchor the rest of the run to it.
- `public_keys.pem`: every key the platform's checkpoints verify with, the signing key first and
  then those retired by a rotation (they prove nothing by themselves: an auditor compares their
  IDs with ones obtained elsewhere).
- `verifier/verify_bundle.py`, `verifier/bundle_format.py`, `verifier/merkle.py`,
  `verifier/ed25519.py`, `verifier/README.txt`: the standalone verifier (Python standard library
  only) with the exact modules the server uses (`bundle_format.py` also writes this format).
- `manifest.json`, written after them: format, created_at, filters, counts, first and last
  sequence, the checkpoint's tree size and key ID, and the sha256 and size of every member above.
- `manifest.sig`, last: {"key_id", "signature"}, the signing key's Ed25519 signature over
  "scs-cases audit export manifest v2\n<sha256 of manifest.json, hex>\n". It vouches for the
  selection and for every file the manifest lists, events.csv included.

What a bundle proves: every event in it is, unchanged, in the log the signed checkpoint vouches
for, and each run of consecutive events is whole. That the runs are all the events the selection
matched rests on the export's signature over the manifest, not on the log's structure.

The Merkle proofs need the hashes of every subtree of the first N events. They are computed in one
ordered pass over the chain hashes and kept, level by level, in temporary files beside the bundle
(2N x 32 bytes on disk, about 64 MB for a million events), so memory stays O(log N).
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import tempfile
import zipfile
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import IO, Any

from django.db.models import QuerySet

from audit import merkle
from audit.checkpoints import SignedHead, signature_of
from audit.models import AuditEvent
from audit.verifier.bundle_format import (
    CSV_COLUMNS,
    EVENTS,
    EVENTS_CSV,
    FORMAT,
    MANIFEST,
    MANIFEST_SIGNATURE,
    PUBLIC_KEYS,
    csv_row,
    event_line,
    manifest_statement,
)

CHUNK = 5_000
EVENT_FIELDS = ("sequence", "previous_hash", "hash", "canonical")
VERIFIER_FOLDER = Path(__file__).resolve().parent / "verifier"
_VERIFIER_FILES = {
    "verifier/verify_bundle.py": VERIFIER_FOLDER / "verify_bundle.py",
    "verifier/README.txt": VERIFIER_FOLDER / "README.txt",
    "verifier/bundle_format.py": VERIFIER_FOLDER / "bundle_format.py",
    "verifier/merkle.py": Path(__file__).resolve().parent / "merkle.py",
    "verifier/ed25519.py": Path(__file__).resolve().parent / "ed25519.py",
}


class BundleInconsistent(Exception):
    """The log read while exporting does not match the checkpoint it should be under."""


class NodeStore:
    """Every perfect subtree hash (RFC 6962) over a stream of leaves, in a file per level.

    Level h holds MTH(D[k*2^h : (k+1)*2^h]) at offset 32k. Any node of the tree of `size` leaves,
    and so any inclusion or consistency proof, is then O(log n) reads.
    """

    def __init__(self, folder: str) -> None:
        self._folder = folder
        self._levels: list[IO[bytes]] = []
        self._stack: list[bytes] = []
        self.size = 0

    def add(self, data: bytes) -> None:
        node = merkle.leaf_hash(data)
        self._append(0, node)
        self._stack.append(node)
        carries, level = self.size, 0
        while carries & 1:
            right = self._stack.pop()
            self._stack[-1] = merkle.node_hash(self._stack[-1], right)
            level += 1
            self._append(level, self._stack[-1])
            carries >>= 1
        self.size += 1

    def _append(self, level: int, node: bytes) -> None:
        while len(self._levels) <= level:
            self._levels.append(tempfile.TemporaryFile(dir=self._folder))  # noqa: SIM115
        self._levels[level].write(node)

    def close(self) -> None:
        for handle in self._levels:
            handle.close()

    def subtree(self, low: int, high: int) -> bytes:
        """MTH(D[low:high]) for a node of the tree (a perfect subtree or one on the right edge)."""
        count = high - low
        if count & (count - 1) == 0 and low % count == 0:
            handle = self._levels[count.bit_length() - 1]
            handle.seek(low // count * merkle.HASH_SIZE)
            node = handle.read(merkle.HASH_SIZE)
            handle.seek(0, io.SEEK_END)
            return node
        middle = low + _split(count)
        return merkle.node_hash(self.subtree(low, middle), self.subtree(middle, high))

    def root(self) -> bytes:
        return self.subtree(0, self.size) if self.size else merkle.EMPTY_ROOT

    def inclusion_proof(self, index: int) -> list[bytes]:
        """As `audit.merkle.inclusion_proof` over the leaves added, deepest sibling first."""
        if not 0 <= index < self.size:
            raise ValueError(f"leaf index {index} is outside a tree of {self.size} leaves")
        path: list[bytes] = []
        low, high = 0, self.size
        while high - low > 1:
            middle = low + _split(high - low)
            if index < middle:
                path.append(self.subtree(middle, high))
                high = middle
            else:
                path.append(self.subtree(low, middle))
                low = middle
        path.reverse()
        return path

    def consistency_proof(self, old_size: int) -> list[bytes]:
        """As `audit.merkle.consistency_proof` from `old_size` to the leaves added."""
        if not 0 <= old_size <= self.size:
            raise ValueError(f"old size {old_size} is outside 0..{self.size}")
        if old_size in (0, self.size):
            return []
        proof: list[bytes] = []
        low, high, remaining, old_tree_whole = 0, self.size, old_size, True
        while remaining != high - low:
            middle = low + _split(high - low)
            if remaining <= middle - low:
                proof.append(self.subtree(middle, high))
                high = middle
            else:
                proof.append(self.subtree(low, middle))
                remaining -= middle - low
                low = middle
                old_tree_whole = False
        if not old_tree_whole:
            proof.append(self.subtree(low, high))
        proof.reverse()
        return proof


def _split(count: int) -> int:
    return 1 << ((count - 1).bit_length() - 1)


def chain_hashes(*, tree_size: int) -> Iterator[tuple[int, str]]:
    """(sequence, hash) of events 1..tree_size in order, read in keyset chunks."""
    after = 0
    while after < tree_size:
        rows = list(
            AuditEvent.objects.filter(sequence__gt=after, sequence__lte=tree_size)
            .order_by("sequence")
            .values_list("sequence", "hash")[: CHUNK * 4]
        )
        if not rows:
            return
        yield from rows
        after = rows[-1][0]


def event_rows(events: QuerySet[AuditEvent]) -> Iterator[list[tuple[Any, ...]]]:
    """The selected events in sequence order, a chunk at a time (keyset on the sequence)."""
    after = 0
    while True:
        chunk = list(
            events.filter(sequence__gt=after)
            .order_by("sequence")
            .values_list(*EVENT_FIELDS)[:CHUNK]
        )
        if not chunk:
            return
        yield chunk
        after = chunk[-1][0]


class _Member:
    """A zip member written as a stream, with the sha256 and size of what was written."""

    def __init__(self, bundle: zipfile.ZipFile, name: str, files: dict[str, dict[str, Any]]):
        self._stream = bundle.open(name, "w", force_zip64=True)
        self._digest = hashlib.sha256()
        self._size = 0
        self._name = name
        self._files = files

    def write(self, data: bytes) -> None:
        self._stream.write(data)
        self._digest.update(data)
        self._size += len(data)

    def __enter__(self) -> _Member:
        return self

    def __exit__(self, *exc: object) -> None:
        self._stream.close()
        self._files[self._name] = {"sha256": self._digest.hexdigest(), "size": self._size}


def _hex(proof: Iterable[bytes]) -> list[str]:
    return [node.hex() for node in proof]


def bundle_write(
    *,
    path: Path,
    events: QuerySet[AuditEvent],
    head: SignedHead,
    earlier: Iterable[SignedHead],
    public_keys_pem: str,
    description: dict[str, Any],
    progress: Callable[[int], object],
) -> int:
    """Write the bundle of `events` (all within `head`) to `path`; returns the events written.

    `description` (export id, created_at, filters) goes into the manifest as is. `progress` is
    called after each chunk with the number of events written so far.
    """
    files: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory(dir=path.parent, prefix=".scratch-") as scratch:
        store = NodeStore(scratch)
        try:
            _build_tree(store, head)
            with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as bundle:
                counts = _write_events(bundle, files, events, store, head, scratch, progress)
                counts["checkpoints"] = _write_checkpoints(bundle, files, store, head, earlier)
                with _Member(bundle, PUBLIC_KEYS, files) as member:
                    member.write(public_keys_pem.encode())
                for name, source in _VERIFIER_FILES.items():
                    _copy_in(bundle, files, name, source)
                manifest = {
                    "format": FORMAT,
                    **description,
                    "counts": {
                        "events": counts["events"],
                        "runs": counts["runs"],
                        "checkpoints": counts["checkpoints"],
                    },
                    "first_sequence": counts["first"],
                    "last_sequence": counts["last"],
                    "checkpoint_tree_size": head.tree_size,
                    "key_id": head.key_id,
                    "files": dict(sorted(files.items())),
                }
                text = (json.dumps(manifest, ensure_ascii=False, indent=2) + "\n").encode()
                bundle.writestr(MANIFEST, text)
                signer, signature = signature_of(manifest_statement(text))
                bundle.writestr(
                    MANIFEST_SIGNATURE,
                    json.dumps({"key_id": signer, "signature": signature}) + "\n",
                )
        finally:
            store.close()
    return int(counts["events"])


def _build_tree(store: NodeStore, head: SignedHead) -> None:
    last_hash = ""
    for sequence, digest in chain_hashes(tree_size=head.tree_size):
        if sequence != store.size + 1:
            raise BundleInconsistent(f"event {store.size + 1} is missing from the log")
        store.add(bytes.fromhex(digest))
        last_hash = digest
    if (store.size, store.root().hex(), last_hash) != (
        head.tree_size,
        head.root_hash,
        head.last_hash,
    ):
        raise BundleInconsistent(
            f"the log's first {head.tree_size} events do not match the checkpoint of "
            f"{head.created_at}"
        )


def _write_events(
    bundle: zipfile.ZipFile,
    files: dict[str, dict[str, Any]],
    events: QuerySet[AuditEvent],
    store: NodeStore,
    head: SignedHead,
    scratch: str,
    progress: Callable[[int], object],
) -> dict[str, Any]:
    counts: dict[str, Any] = {"events": 0, "runs": 0, "first": None, "last": None}
    csv_path = Path(scratch) / "events.csv"
    proofs_path = Path(scratch) / "proofs.json"
    with (
        _Member(bundle, EVENTS, files) as ndjson,
        csv_path.open("w", encoding="utf-8", newline="") as csv_file,
        proofs_path.open("w", encoding="utf-8") as proofs,
    ):
        writer = csv.writer(csv_file)
        writer.writerow(CSV_COLUMNS)
        proofs.write(f'{{"tree_size":{head.tree_size},"runs":[')
        run_first = previous = 0

        def run_end() -> None:
            separator = "," if counts["runs"] else ""
            entry = {
                "first": run_first,
                "last": previous,
                "proof": _hex(store.inclusion_proof(previous - 1)),
            }
            proofs.write(f"{separator}\n{json.dumps(entry, separators=(',', ':'))}")
            counts["runs"] += 1

        for chunk in event_rows(events):
            for sequence, previous_hash, digest, canonical in chunk:
                if sequence > head.tree_size:
                    raise BundleInconsistent(f"event {sequence} is beyond the checkpoint")
                if "\n" in canonical:
                    raise BundleInconsistent(f"event {sequence}: its hashed text spans lines")
                if previous and sequence != previous + 1:
                    run_end()
                if not previous or sequence != previous + 1:
                    run_first = sequence
                previous = sequence
                ndjson.write(event_line(sequence, previous_hash, digest, canonical))
                writer.writerow(csv_row(sequence, previous_hash, digest, json.loads(canonical)))
                if counts["first"] is None:
                    counts["first"] = sequence
            counts["events"] += len(chunk)
            progress(counts["events"])
        if previous:
            run_end()
            counts["last"] = previous
        proofs.write("\n]}\n")
    _copy_in(bundle, files, EVENTS_CSV, csv_path)
    _copy_in(bundle, files, "proofs.json", proofs_path)
    return counts


def _copy_in(
    bundle: zipfile.ZipFile, files: dict[str, dict[str, Any]], name: str, source: Path
) -> None:
    with _Member(bundle, name, files) as member, source.open("rb") as handle:
        while block := handle.read(1 << 16):
            member.write(block)


def _write_checkpoints(
    bundle: zipfile.ZipFile,
    files: dict[str, dict[str, Any]],
    store: NodeStore,
    head: SignedHead,
    earlier: Iterable[SignedHead],
) -> int:
    with _Member(bundle, "checkpoint.json", files) as member:
        member.write((head.as_line() + "\n").encode())
    count = 0
    with _Member(bundle, "checkpoints.json", files) as member:
        member.write(f'{{"tree_size":{head.tree_size},"checkpoints":['.encode())
        for older in earlier:
            entry = json.loads(older.as_line())
            entry["consistency_proof"] = _hex(store.consistency_proof(older.tree_size))
            separator = "," if count else ""
            member.write(f"{separator}\n{json.dumps(entry, separators=(',', ':'))}".encode())
            count += 1
        member.write(b"\n]}\n")
    return count
