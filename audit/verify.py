"""Walks the audit chain and reports the first broken link."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from django.db import connection

from audit.merkle import TreeBuilder
from audit.models import GENESIS_HASH, AuditChainHead, AuditEventSeal, AuditSealStart
from audit.services import recorded_at_text, seal, seal_start

if TYPE_CHECKING:
    from audit.checkpoints import SignedHead

_CHUNK = 20_000
# The time comes as PostgreSQL's text (the session is in UTC), cheaper to read than a datetime
# and turned into the canonical JSON's form once per distinct value (`_time_json`). The seals
# that end in a chunk are read beside it, keyed by the last event of their range.
_SELECT_CHUNK = (
    "SELECT sequence, previous_hash, hash, canonical, action, actor_id, case_reference, "
    "recorded_at::text, request_id, actor_role, target_type, target_id FROM audit_auditevent "
    "WHERE sequence > %s ORDER BY sequence LIMIT %s"
)
_SELECT_SEALS = (
    "SELECT last_sequence, first_sequence, mac FROM audit_auditeventseal "
    "WHERE last_sequence > %s AND last_sequence <= %s"
)
# What json.dumps(..., ensure_ascii=False) writes for a string (audit.services.canonical_json).
_quoted: Callable[[str], str] = json.encoder.encode_basestring


_UNSEALED = "the event does not carry the application's seal: it was not written by the application"


@dataclass(frozen=True)
class ChainBreak:
    sequence: int
    reason: str


@dataclass(frozen=True)
class VerifyResult:
    events_checked: int
    last_sequence: int
    last_hash: str
    broken: ChainBreak | None
    # The Merkle root (hex) over the chain hashes of the events checked, when asked for.
    root_hash: str = ""

    @property
    def intact(self) -> bool:
        return self.broken is None


def _chunks(*, after: int = 0) -> Iterator[tuple[list[tuple[Any, ...]], dict[int, Any]]]:
    """Keyset-paginated scan in sequence order, a chunk at a time, with the seals that end in it
    ({last sequence: (first sequence, mac)}); memory stays constant whatever the log's size."""
    statement = _SELECT_CHUNK
    if connection.vendor != "postgresql":
        statement = statement.replace("recorded_at::text", "recorded_at")
    while True:
        with connection.cursor() as cursor:
            cursor.execute(statement, [after, _CHUNK])
            rows = cursor.fetchall()
            if not rows:
                return
            last = int(rows[-1][0])
            cursor.execute(_SELECT_SEALS, [after, last])
            seals = {row[0]: row[1:] for row in cursor.fetchall()}
        yield rows, seals
        after = last


def _time_json(raw: object) -> str:
    """`recorded_at` as the canonical JSON holds it (quoted), from the database's value or text."""
    moment = raw if isinstance(raw, datetime) else datetime.fromisoformat(str(raw))
    if moment.tzinfo is None:  # SQLite keeps UTC without saying so
        moment = moment.replace(tzinfo=UTC)
    return _quoted(recorded_at_text(moment))


def audit_chain_verify(
    *,
    progress: Callable[[int], object] | None = None,
    checkpoints: Sequence[SignedHead] = (),
    tree: bool = False,
) -> VerifyResult:
    """Check sequence continuity, each previous-hash link, each hash and the chain head.

    Every column is checked: the hash covers the sequence, the previous hash and the canonical
    text, and the other columns must be the ones that text holds. With
    `checkpoints` (signed tree heads whose signatures the caller has checked), also check that
    the log still holds each one: as many events at least, and the chain hash of its last event
    is the one it signed. Every hash having been recomputed from the events and linked to the one
    before, that hash stands for the whole prefix, so a shorter, rewritten or forked log fails,
    naming the checkpoint. With `tree`, the Merkle root over each checkpoint's prefix is
    recomputed and compared as well (what a new checkpoint's signing does, hourly), and the
    result carries the root of the whole log.
    """
    sha256 = hashlib.sha256
    expected_previous = GENESIS_HASH
    expected_sequence = 1
    checked = 0
    pending = sorted(checkpoints, key=lambda head: head.tree_size)
    start = AuditSealStart.objects.filter(pk=1).values_list("sequence", "mac").first()
    if start is None or seal_start(start[0]) != start[1]:
        return VerifyResult(
            0, 0, GENESIS_HASH, ChainBreak(0, "the start of the application's seals is altered")
        )
    sealed_from = next_sealed = start[0]
    builder = TreeBuilder() if tree else None

    def broken(sequence: int, reason: str) -> VerifyResult:
        return VerifyResult(
            checked, expected_sequence - 1, expected_previous, ChainBreak(sequence, reason)
        )

    # The canonical text is the event's JSON with sorted keys (audit.services): every column but
    # the sequence and the previous hash, which the hash covers beside it. Rather than parse it,
    # the text the columns would give before and after its `data` is built and compared. The
    # loop is written for speed: it is the cost of every verification.
    quoted = _quoted
    raw_time: object = None
    time_json = ""
    for chunk, seals in _chunks():
        for (
            sequence,
            previous_hash,
            stored_hash,
            canonical,
            action,
            actor_id,
            case,
            at,
            request,
            role,
            target_type,
            target_id,
        ) in chunk:
            if sequence != expected_sequence:
                return broken(expected_sequence, f"event {expected_sequence} is missing")
            if previous_hash != expected_previous:
                return broken(expected_sequence, "previous-hash link does not match event before")
            digest = sha256(f"{previous_hash}\n{sequence}\n{canonical}".encode()).hexdigest()
            if digest != stored_hash:
                return broken(expected_sequence, "hash does not match the event's content")
            if at != raw_time:  # the events of one transaction share their time
                raw_time = at
                time_json = _time_json(raw_time)
            actor = "null" if actor_id is None else actor_id
            if not (
                canonical.startswith(
                    f'{{"action":{quoted(action)},"actor":{actor},"case":{quoted(case)},"data":'
                )
                and canonical.endswith(
                    f',"recorded_at":{time_json},"request":{quoted(request)},"role":'
                    f'{quoted(role)},"target":[{quoted(target_type)},{quoted(target_id)}]}}'
                )
            ):
                return broken(sequence, "the event's columns differ from its hashed content")
            sealed = seals.get(sequence)
            if sealed is not None and sequence >= sealed_from:
                # The last event of a sealed range: the range starts where the one before ended.
                if sealed[0] != next_sealed or sealed[1] != seal(sealed[0], sequence, digest):
                    return broken(next_sealed, _UNSEALED)
                next_sealed = sequence + 1
            expected_previous = digest
            expected_sequence += 1
            checked += 1
            if builder is not None:
                builder.add(bytes.fromhex(digest))
            while pending and pending[0].tree_size == sequence:
                head = pending.pop(0)
                if digest != head.last_hash or (
                    builder is not None and builder.root().hex() != head.root_hash
                ):
                    return broken(
                        sequence,
                        f"the first {head.tree_size} events differ from the checkpoint of "
                        f"{head.created_at}: the log was rewritten since",
                    )
        if progress is not None:
            progress(len(chunk))
    last_sequence = expected_sequence - 1
    if next_sealed <= last_sequence:
        return broken(next_sealed, _UNSEALED)
    if pending:
        head = pending[0]
        return broken(
            last_sequence + 1,
            f"the log ends at event {last_sequence}, but the checkpoint of {head.created_at} "
            f"vouches for {head.tree_size} events: events were removed since",
        )
    chain_head = AuditChainHead.objects.filter(pk=1).values_list("sequence", "hash").first()
    if chain_head is not None and chain_head != (last_sequence, expected_previous):
        return broken(
            last_sequence + 1,
            f"chain head is at event {chain_head[0]} but the log ends at event {last_sequence}",
        )
    sealed_to = (
        AuditEventSeal.objects.filter(last_sequence__gt=last_sequence)
        .order_by("-last_sequence")
        .values_list("last_sequence", flat=True)
        .first()
    )
    if sealed_to is not None:
        # The application sealed events that the log no longer holds: its newest were deleted.
        return broken(
            last_sequence + 1,
            f"the log ends at event {last_sequence}, but the application sealed events up to "
            f"{sealed_to}: events were removed since",
        )
    root = builder.root().hex() if builder is not None and tree else ""
    return VerifyResult(checked, last_sequence, expected_previous, None, root)
