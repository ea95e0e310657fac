"""The one writer of the audit log."""

from __future__ import annotations

import hashlib
import json
from typing import TYPE_CHECKING, Any

from django.db import models, transaction
from django.utils import timezone

from accounts.roles import primary_role
from audit.context import request_id_var
from audit.models import AuditChainHead, AuditEvent

if TYPE_CHECKING:
    from accounts.models import User


class AuditOutsideTransaction(RuntimeError):
    """audit_record was called without an open transaction: the event could outlive a rollback."""


def chain_hash(*, previous_hash: str, sequence: int, canonical: str) -> str:
    """The hash of one event; PostgreSQL's audit_append() (migration 0003) computes the same."""
    message = f"{previous_hash}\n{sequence}\n{canonical}".encode()
    return hashlib.sha256(message).hexdigest()


def canonical_json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


# The audit_append() function (migrations 0003, 0004) advances the chain head (its row lock orders
# concurrent writers and keeps the sequence gap-free, because a rollback undoes the advance) and
# inserts the event with the hash computed from the head's previous hash. Being PL/pgSQL, it keeps
# its plan for the session instead of planning the statement on every call. The call is queued
# and travels with the transaction's next statement or its COMMIT (scs_cases.db.postgresql), so
# an audit event costs no round trip of its own, and the head stays locked for less time.
_APPEND_POSTGRESQL = "SELECT audit_append(%s, %s, %s, %s, %s, %s, %s, %s, %s)"


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
) -> None:
    """Append one event to the log, inside the caller's transaction.

    `data` holds ids and changed fields; never a full identifier or a document. On PostgreSQL
    the event is written by the transaction's next statement or by its COMMIT, so a failure to
    append (a missing chain head) surfaces there and rolls the whole transaction back.
    """
    connection = transaction.get_connection()
    if not connection.in_atomic_block:
        raise AuditOutsideTransaction(
            f"audit_record({action!r}) must run inside the transaction of the change it records"
        )
    if target is not None:
        target_type = target._meta.label_lower
        target_id = target.pk
    recorded_at = timezone.now()
    actor_id = actor.pk if actor is not None else None
    role = role or primary_role(actor)
    request_id = request_id_var.get()
    target_id = "" if target_id is None else str(target_id)
    canonical = canonical_json(
        {
            "action": action,
            "actor": actor_id,
            "case": case_reference,
            "data": data or {},
            "recorded_at": recorded_at.isoformat(),
            "request": request_id,
            "role": role,
            "target": [target_type, target_id],
        }
    )
    row = (
        canonical,
        recorded_at,
        actor_id,
        role,
        action,
        target_type,
        target_id,
        case_reference,
        request_id,
    )
    if connection.vendor == "postgresql":
        connection.run_with_next_statement(_APPEND_POSTGRESQL, row)
    else:
        _insert_portable(row)


def _insert_portable(row: tuple[Any, ...]) -> None:
    # SQLite serialises write transactions, so reading the head and advancing it cannot interleave.
    canonical, recorded_at, actor_id, role, action, target_type, target_id, case, request = row
    head = AuditChainHead.objects.select_for_update().get(pk=1)
    sequence = head.sequence + 1
    digest = chain_hash(previous_hash=head.hash, sequence=sequence, canonical=canonical)
    AuditChainHead.objects.filter(pk=1).update(
        sequence=sequence, previous_hash=head.hash, hash=digest
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
