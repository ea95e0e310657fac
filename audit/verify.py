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
from audit.models import GENESIS_HASH, AuditChainHead, AuditSealStart
from audit.services import recorded_at_text, seal, seal_start

if TYPE_CHECKING:
    from audit.checkpoints import SignedHead

_CHUNK = 20_000
# On PostgreSQL the time comes as the text the canonical JSON holds (migration 0005's function),
# which spares the parsing and formatting of a datetime per event.
_SELECT_CHUNK = (
    "SELECT e.sequence, e.previous_hash, e.hash, e.canonical, e.action, e.actor_id, "
    "e.case_reference, {recorded_at}, e.request_id, e.actor_role, e.target_type, e.target_id, "
    "s.mac FROM audit_auditevent e LEFT JOIN audit_auditeventseal s ON s.sequence = e.sequence "
    "WHERE e.sequence > %s ORDER BY e.sequence LIMIT %s"
)
# What json.dumps(..., ensure_ascii=False) writes for a string (audit.services.canonical_json).
_quoted: Callable[[str], str] = json.encoder.encode_basestring


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


def _rows(*, after: int = 0) -> Iterator[tuple[Any, ...]]:
    """Keyset-paginated scan in sequence order; memory stays constant whatever the log's size.
    The time (8th column) is the canonical text of `recorded_at`."""
    postgres = connection.vendor == "postgresql"
    statement = _SELECT_CHUNK.format(
        recorded_at="audit_recorded_at_text(e.recorded_at)" if postgres else "e.recorded_at"
    )
    while True:
        with connection.cursor() as cursor:
            cursor.execute(statement, [after, _CHUNK])
            rows = cursor.fetchall()
        if not rows:
            return
        if postgres:
            yield from rows
        else:
            for row in rows:
                moment = row[7] if isinstance(row[7], datetime) else _parse(row[7])
                yield (*row[:7], recorded_at_text(moment), *row[8:])
        after = int(rows[-1][0])


def _parse(value: str) -> datetime:
    moment = datetime.fromisoformat(value)
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _columns_agree(row: tuple[Any, ...]) -> bool:
    """The event's columns are the ones its hashed text holds.

    The canonical text is the event's JSON with sorted keys (audit.services): every column but
    the sequence and the previous hash, which the hash covers beside it. Rather than parse it,
    the text the columns would give before and after `data` is built and compared, which costs
    about as much as the hash."""
    _, _, _, canonical, action, actor_id, case, recorded_at, request, role, target_type, tid = row[
        :12
    ]
    actor = "null" if actor_id is None else str(actor_id)
    before = f'{{"action":{_quoted(action)},"actor":{actor},"case":{_quoted(case)},"data":'
    after = (
        f',"recorded_at":{_quoted(recorded_at)},"request":{_quoted(request)},'
        f'"role":{_quoted(role)},"target":[{_quoted(target_type)},{_quoted(tid)}]}}'
    )
    return bool(canonical.startswith(before) and canonical.endswith(after))


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
    the log still holds each one: as many events at least, and the same Merkle root over the
    first `tree_size` of them. A shorter, rewritten or forked log fails, naming the checkpoint.
    With `tree`, the result carries the Merkle root of the whole log (for a new checkpoint).
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
    sealed_from = start[0]
    builder = TreeBuilder() if (tree or pending) else None

    def broken(sequence: int, reason: str) -> VerifyResult:
        return VerifyResult(
            checked, expected_sequence - 1, expected_previous, ChainBreak(sequence, reason)
        )

    for row in _rows():
        sequence, previous_hash, stored_hash, canonical = row[0], row[1], row[2], row[3]
        if sequence != expected_sequence:
            return broken(expected_sequence, f"event {expected_sequence} is missing")
        if previous_hash != expected_previous:
            return broken(expected_sequence, "previous-hash link does not match event before")
        digest = sha256(f"{previous_hash}\n{sequence}\n{canonical}".encode()).hexdigest()
        if digest != stored_hash:
            return broken(expected_sequence, "hash does not match the event's content")
        if not _columns_agree(row):
            return broken(sequence, "the event's columns differ from its hashed content")
        if sequence >= sealed_from and row[12] != seal(sequence, digest):
            return broken(
                sequence,
                "the event does not carry the application's seal: it was not written by the "
                "application",
            )
        expected_previous = digest
        expected_sequence += 1
        checked += 1
        if builder is not None:
            builder.add(bytes.fromhex(digest))
            while pending and pending[0].tree_size == checked:
                head = pending.pop(0)
                if (builder.root().hex(), digest) != (head.root_hash, head.last_hash):
                    return broken(
                        checked,
                        f"the first {head.tree_size} events differ from the checkpoint of "
                        f"{head.created_at}: the log was rewritten since",
                    )
        if progress is not None and checked % _CHUNK == 0:
            progress(_CHUNK)
    if progress is not None:
        progress(checked % _CHUNK)
    last_sequence = expected_sequence - 1
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
    root = builder.root().hex() if builder is not None else ""
    return VerifyResult(checked, last_sequence, expected_previous, None, root)
