"""The format of an scs-cases audit export ("scs-cases audit export v2"): what the server's writer
(audit.bundle) writes and the standalone verifier (verify_bundle.py, beside this file in every
bundle) checks. Python's standard library only.

Each line of events.ndjson is exactly

    {"sequence":N,"previous_hash":"<64 hex>","hash":"<64 hex>","event":<event>}

where <event> is the hashed text itself, the event's JSON with sorted keys (action, actor, case,
data, recorded_at, request, role, target), compact separators and UTF-8; its hash is sha256 over
previous_hash, "\\n", the sequence, "\\n" and that text. events.csv holds the same events in
columns, each cell neutralised for spreadsheets. The signed texts are `statement` (a checkpoint)
and `manifest_statement` (the manifest).
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

FORMAT = "scs-cases audit export v2"
STATEMENT_HEADER = "scs-cases audit checkpoint v1"
MANIFEST_STATEMENT_HEADER = "scs-cases audit export manifest v2"
MANIFEST = "manifest.json"
MANIFEST_SIGNATURE = "manifest.sig"
PUBLIC_KEYS = "public_keys.pem"
EVENTS = "events.ndjson"
EVENTS_CSV = "events.csv"
# The keys of an event's hashed JSON, and the columns of events.csv.
EVENT_KEYS = ("action", "actor", "case", "data", "recorded_at", "request", "role", "target")
CSV_COLUMNS = (
    "sequence",
    "recorded_at",
    "actor_id",
    "actor_role",
    "action",
    "target_type",
    "target_id",
    "case_reference",
    "request_id",
    "data",
    "previous_hash",
    "hash",
)
FORMULA_LEADING = ("=", "+", "-", "@", "\t", "\r")


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


def manifest_statement(manifest: bytes) -> bytes:
    """The text the manifest's signature covers: a header and the manifest's sha256, in lines."""
    return f"{MANIFEST_STATEMENT_HEADER}\n{hashlib.sha256(manifest).hexdigest()}\n".encode()


def canonical(value: object) -> str:
    """JSON as the log hashes it (audit.services.canonical_json)."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def event_line(sequence: int, previous_hash: str, digest: str, event: str) -> bytes:
    """One line of events.ndjson; `event` is the hashed text."""
    return (
        f'{{"sequence":{sequence},"previous_hash":"{previous_hash}","hash":"{digest}",'
        f'"event":{event}}}\n'
    ).encode()


def neutralised(value: object) -> str:
    """A cell as events.csv holds it (records.content.export_cell)."""
    text = "" if value is None else str(value)
    return "'" + text if text.startswith((*FORMULA_LEADING, "'")) else text


def csv_row(sequence: int, previous_hash: str, digest: str, event: dict[str, Any]) -> list[str]:
    """The row of events.csv for an event (`event`: its hashed JSON, parsed)."""
    target_type, target_id = event["target"]
    cells = (
        sequence,
        event["recorded_at"],
        event["actor"],
        event["role"],
        event["action"],
        target_type,
        target_id,
        event["case"],
        event["request"],
        canonical(event["data"]),
        previous_hash,
        digest,
    )
    return [neutralised(cell) for cell in cells]
