"""The one writer of the audit log.

Services wrap their transaction in `audited()` and call `audit_record` inside it: the events of
the transaction are written together, in one statement, just before it commits (see `audited`).
"""

from __future__ import annotations

import base64
import binascii
import functools
import hashlib
import hmac
import json
from contextlib import ContextDecorator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, cast

from asgiref.local import Local
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.db import DEFAULT_DB_ALIAS, connections, models, transaction
from django.utils import timezone

from accounts.roles import primary_role
from audit.context import request_id_var
from audit.models import AuditChainHead, AuditEvent, AuditEventSeal

if TYPE_CHECKING:
    from accounts.models import User


class AuditOutsideTransaction(RuntimeError):
    """audit_record was called without an open transaction: the event could outlive a rollback."""


def chain_hash(*, previous_hash: str, sequence: int, canonical: str) -> str:
    """The hash of one event; PostgreSQL's audit_append() (migration 0003) computes the same."""
    message = f"{previous_hash}\n{sequence}\n{canonical}".encode()
    return hashlib.sha256(message).hexdigest()


def seal(first: int, last: int, last_hash: str) -> str:
    """The application's seal on the events `first` to `last` of one transaction
    (AuditEventSeal): HMAC-SHA256 with the seal key over the range and the last chain hash."""
    message = f"scs-cases audit seal\n{first}\n{last}\n{last_hash}".encode()
    return hmac.digest(_seal_key(), message, "sha256").hex()


def seal_start(sequence: int) -> str:
    """The seal of the first sealed sequence (AuditSealStart)."""
    message = f"scs-cases audit seals start\n{sequence}".encode()
    return hmac.digest(_seal_key(), message, "sha256").hex()


@functools.cache
def _seal_key_of(encoded: str) -> bytes:
    try:
        key = base64.urlsafe_b64decode(encoded)
    except (binascii.Error, ValueError) as error:
        raise ImproperlyConfigured("SCS_AUDIT_SEAL_KEY is not base64") from error
    if len(key) < 32:
        raise ImproperlyConfigured("SCS_AUDIT_SEAL_KEY must encode at least 32 bytes")
    return key


def _seal_key() -> bytes:
    return _seal_key_of(settings.AUDIT_SEAL_KEY)


def canonical_json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


class AuditInsideNestedAtomic(RuntimeError):
    """audit_record ran in a plain `transaction.atomic()` nested in an `audited()` block.

    If that inner block rolled back while the outer one carried on, the event would be written for
    a change that never happened; nest `audited()` instead, whose events go with its savepoint.
    """


# audit_append() (migration 0005) locks the single-row chain head, stamps the events with one
# time that never runs backwards, and appends them in order, each hashed over the previous hash.
# The head's row lock orders writers and keeps the sequence gap-free (a rollback undoes it). It
# returns the head it leaves (migration 0010): the sequence and hash of the last event appended.
_APPEND_POSTGRESQL = (
    "SELECT last_sequence, last_hash FROM audit_append(%s::text[], %s::text[], "
    "%s::timestamptz[], %s::bigint[], %s::text[], %s::text[], %s::text[], %s::text[], "
    "%s::text[], %s::text[])"
)
_SEAL_POSTGRESQL = (
    "INSERT INTO audit_auditeventseal (last_sequence, first_sequence, mac) VALUES (%s, %s, %s)"
)


@dataclass
class _Block:
    events: list[tuple[Any, ...]] = field(default_factory=list)
    depth: int = 0  # the connection's atomic depth inside the block


# The open audited() blocks of each database alias, innermost last, per thread (and per
# asynchronous context), as Django keeps its connections.
_blocks = Local()


def _stack(using: str) -> list[_Block]:
    stack: list[_Block] | None = getattr(_blocks, using, None)
    if stack is None:
        stack = []
        setattr(_blocks, using, stack)
    return stack


class audited(ContextDecorator):
    """A transaction whose audit events are written in one statement just before it commits.

    Use it where a service would use `transaction.atomic`, as a decorator or a context manager.
    `audit_record` inside collects the event; when the outermost `audited()` block ends without
    an exception, its events go to the database in one statement, inside the transaction, after
    every other statement: the chain-head lock is the last lock the transaction takes and is held
    only for that statement and the commit. A nested block is a savepoint whose events are
    dropped with it when it fails.
    """

    def __init__(self, using: str | None = None) -> None:
        self.using = using or DEFAULT_DB_ALIAS
        self._atomic: Any = None

    def _recreate_cm(self) -> audited:
        # Each decorated call gets its own block (recursion and threads share the decorator).
        return audited(self.using)

    def __enter__(self) -> audited:
        self._atomic = transaction.atomic(using=self.using)
        self._atomic.__enter__()
        connection = transaction.get_connection(self.using)
        # savepoint_ids has one entry per open atomic block inside the outermost one.
        _stack(self.using).append(_Block(depth=len(connection.savepoint_ids)))
        return self

    def __exit__(self, exc_type: Any, exc_value: Any, traceback: Any) -> bool | None:
        stack = _stack(self.using)
        block = stack.pop()
        if exc_type is None and block.events:
            try:
                if stack:
                    stack[-1].events.extend(block.events)
                else:
                    _write(block.events, using=self.using)
            except BaseException as error:
                # The transaction must not commit without its events.
                self._atomic.__exit__(type(error), error, error.__traceback__)
                raise
        return cast(bool | None, self._atomic.__exit__(exc_type, exc_value, traceback))


def audit_record(
    *,
    actor: User | None,
    action: str,
    target: models.Model | None = None,
    target_type: str = "",
    target_id: str | int = "",
    case_reference: str = "",
    data: dict[str, Any] | None = None,
    role: str = "",
    using: str = DEFAULT_DB_ALIAS,
) -> None:
    """Record one event of the caller's transaction.

    Inside an `audited()` block the event is written with the block's others just before the
    transaction commits; inside a plain transaction it is written at once. `data` holds ids and
    changed fields; never a full identifier or a document.
    """
    connection = transaction.get_connection(using)
    if not connection.in_atomic_block:
        raise AuditOutsideTransaction(
            f"audit_record({action!r}) must run inside the transaction of the change it records"
        )
    if target is not None:
        target_type = target._meta.label_lower
        target_id = target.pk
    actor_id = actor.pk if actor is not None else None
    role = role or primary_role(actor)
    request_id = request_id_var.get()
    target_id = "" if target_id is None else str(target_id)
    head, tail = _canonical_around_time(
        {
            "action": action,
            "actor": actor_id,
            "case": case_reference,
            "data": data or {},
            "request": request_id,
            "role": role,
            "target": [target_type, target_id],
        }
    )
    row = (
        head,
        tail,
        # The earliest the event may be stamped; the database stamps it under the chain lock.
        timezone.now(),
        actor_id,
        role,
        action,
        target_type,
        target_id,
        case_reference,
        request_id,
    )
    stack = _stack(using)
    if not stack:
        _write([row], using=using)
        return
    if len(connection.savepoint_ids) != stack[-1].depth:
        raise AuditInsideNestedAtomic(
            f"audit_record({action!r}) runs in a transaction.atomic() nested in an audited() "
            "block: make that block audited() too"
        )
    stack[-1].events.append(row)


_TIME_SLOT = "\x01"  # never in canonical JSON: control characters are escaped there


def _canonical_around_time(content: dict[str, Any]) -> tuple[str, str]:
    """The event's canonical JSON, cut where its `recorded_at` value goes.

    The time is put in when the event is written, under the chain-head lock, so that it never
    runs backwards against the sequence.
    """
    text = canonical_json({**content, "recorded_at": _TIME_SLOT})
    slot = text.rindex('"recorded_at":"\\u0001"') + len('"recorded_at":"')
    return text[:slot], text[slot + len("\\u0001") :]


def recorded_at_text(moment: datetime) -> str:
    """`recorded_at` as the canonical JSON holds it (what PostgreSQL's audit_append writes)."""
    return moment.astimezone(UTC).isoformat()


def _write(rows: list[tuple[Any, ...]], *, using: str) -> None:
    connection = connections[using]
    if connection.vendor == "postgresql":
        columns = [list(column) for column in zip(*rows, strict=True)]
        with connection.cursor() as cursor:
            cursor.execute(_APPEND_POSTGRESQL, columns)
            # The head stays locked by this transaction: its last len(rows) events are ours.
            last, last_hash = cursor.fetchone()
            first = last - len(rows) + 1
            cursor.execute(_SEAL_POSTGRESQL, [last, first, seal(first, last, last_hash)])
        return
    for row in rows:
        _insert_portable(row)


def _insert_portable(row: tuple[Any, ...]) -> None:
    # SQLite serialises write transactions, so reading the head and advancing it cannot interleave.
    before, after, earliest, actor_id, role, action, target_type, target_id, case, request = row
    head = AuditChainHead.objects.select_for_update().get(pk=1)
    last = (
        AuditEvent.objects.filter(sequence=head.sequence)
        .values_list("recorded_at", flat=True)
        .first()
    )
    recorded_at = max(earliest, timezone.now(), *([last] if last else []))
    canonical = f"{before}{recorded_at_text(recorded_at)}{after}"
    sequence = head.sequence + 1
    digest = chain_hash(previous_hash=head.hash, sequence=sequence, canonical=canonical)
    AuditChainHead.objects.filter(pk=1).update(
        sequence=sequence, previous_hash=head.hash, hash=digest
    )
    # One event, one range: SQLite's path writes the events of a transaction one by one.
    AuditEventSeal.objects.create(
        last_sequence=sequence, first_sequence=sequence, mac=seal(sequence, sequence, digest)
    )
    AuditEvent.objects.create(
        sequence=sequence,
        recorded_at=recorded_at,
        actor_id=actor_id,
        actor_role=role,
        action=action,
        target_type=target_type,
        target_id=target_id,
        case_reference=case,
        request_id=request,
        canonical=canonical,
        previous_hash=head.hash,
        hash=digest,
    )
