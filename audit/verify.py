"""Walks the audit chain and reports the first broken link."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from django.db import connection

from audit.models import GENESIS_HASH, AuditChainHead

_CHUNK = 20_000
_CHAIN_COLUMNS = "sequence, previous_hash, hash, canonical"
_DEEP_COLUMNS = ", action, target_type, target_id, case_reference, actor_id, actor_role"
_SELECT_CHUNK = (
    "SELECT {columns} FROM audit_auditevent WHERE sequence > %s ORDER BY sequence LIMIT %s"
)


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

    @property
    def intact(self) -> bool:
        return self.broken is None


def _rows(*, deep: bool, after: int = 0) -> Iterator[tuple[Any, ...]]:
    """Keyset-paginated scan in sequence order; memory stays constant whatever the log's size.

    Only `deep` reads the searchable columns: the chain itself needs four.
    """
    statement = _SELECT_CHUNK.format(columns=_CHAIN_COLUMNS + (_DEEP_COLUMNS if deep else ""))
    while True:
        with connection.cursor() as cursor:
            cursor.execute(statement, [after, _CHUNK])
            rows = cursor.fetchall()
        if not rows:
            return
        yield from rows
        after = int(rows[-1][0])


def _columns_match(row: tuple[Any, ...]) -> str:
    _, _, _, canonical, action, target_type, target_id, case_ref, actor_id, role = row
    content = json.loads(str(canonical))
    expected = (
        content["action"],
        content["target"][0],
        content["target"][1],
        content["case"],
        content["actor"],
        content["role"],
    )
    if expected != (action, target_type, target_id, case_ref, actor_id, role):
        return "indexed columns differ from the hashed content"
    return ""


def audit_chain_verify(
    *, deep: bool = False, progress: Callable[[int], object] | None = None
) -> VerifyResult:
    """Check sequence continuity, each previous-hash link, each hash and the chain head.

    With `deep`, also check that the searchable columns agree with the hashed content.
    """
    sha256 = hashlib.sha256
    expected_previous = GENESIS_HASH
    expected_sequence = 1
    checked = 0
    for row in _rows(deep=deep):
        sequence, previous_hash, stored_hash, canonical = row[0], row[1], row[2], row[3]
        if sequence != expected_sequence:
            return VerifyResult(
                checked,
                expected_sequence - 1,
                expected_previous,
                ChainBreak(expected_sequence, f"event {expected_sequence} is missing"),
            )
        if previous_hash != expected_previous:
            return VerifyResult(
                checked,
                expected_sequence - 1,
                expected_previous,
                ChainBreak(expected_sequence, "previous-hash link does not match event before"),
            )
        digest = sha256(f"{previous_hash}\n{sequence}\n{canonical}".encode()).hexdigest()
        if digest != stored_hash:
            return VerifyResult(
                checked,
                expected_sequence - 1,
                expected_previous,
                ChainBreak(expected_sequence, "hash does not match the event's content"),
            )
        if deep and (problem := _columns_match(row)):
            return VerifyResult(
                checked, expected_sequence - 1, expected_previous, ChainBreak(sequence, problem)
            )
        expected_previous = digest
        expected_sequence += 1
        checked += 1
        if progress is not None and checked % _CHUNK == 0:
            progress(_CHUNK)
    if progress is not None:
        progress(checked % _CHUNK)
    last_sequence = expected_sequence - 1
    head = AuditChainHead.objects.filter(pk=1).values_list("sequence", "hash").first()
    if head is not None and head != (last_sequence, expected_previous):
        return VerifyResult(
            checked,
            last_sequence,
            expected_previous,
            ChainBreak(
                last_sequence + 1,
                f"chain head is at event {head[0]} but the log ends at event {last_sequence}",
            ),
        )
    return VerifyResult(checked, last_sequence, expected_previous, None)
