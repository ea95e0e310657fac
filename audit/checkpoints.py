"""Signed checkpoints: tree heads over the audit log that the database cannot take back.

A checkpoint is the Merkle root (RFC 6962 style, audit.merkle) over the chain hashes of the first
`tree_size` events, with the chain hash of the last of them, signed with the Ed25519 key in
SCS_AUDIT_SIGNING_KEY. Beat records one every hour when the log has grown, after verifying the
whole chain against the checkpoints before it. Each is stored (`AuditCheckpoint`, append-only)
and, after commit, written outside the database: appended as one JSON line to
SCS_AUDIT_CHECKPOINT_FILE and mailed to SCS_AUDIT_CHECKPOINT_EMAILS. An auditor who keeps those
lines can check the live log against them (`manage.py audit_verify --checkpoints FILE`): a log
made shorter, rewritten or forked since fails, naming the checkpoint it contradicts.

The signed statement is the UTF-8 text

    scs-cases audit checkpoint v1
    <tree_size>
    <root hash, hex>
    <chain hash of event tree_size, hex>
    <created_at, ISO 8601 UTC>

each line ending in a newline. The public key is served at /audit/public-key.pem and printed by
`manage.py audit_public_key`.

Rotating the key: generate a new seed (`manage.py generate_keys`), add the current public key
(`manage.py audit_public_key` prints it as "raw") to SCS_AUDIT_RETIRED_PUBLIC_KEYS, and set the
new seed as SCS_AUDIT_SIGNING_KEY. Checkpoints signed before keep verifying with the retired key;
new ones are signed with the new key. /audit/public-keys.pem serves every key the platform knows,
the signing one first, and each export carries them all. A checkpoint signed by a key that is in
neither setting is reported, never trusted.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.core.mail import send_mail
from django.db import connection, transaction

from audit.models import AuditCheckpoint
from audit.verify import ChainBreak, VerifyResult, audit_chain_verify

logger = logging.getLogger(__name__)

STATEMENT_HEADER = "scs-cases audit checkpoint v1"


@dataclass(frozen=True)
class SignedHead:
    """A checkpoint as it travels: in the database, in the file, in the mail, in an export."""

    tree_size: int
    root_hash: str
    last_hash: str
    created_at: str
    key_id: str
    signature: str

    def statement(self) -> bytes:
        lines = (STATEMENT_HEADER, self.tree_size, self.root_hash, self.last_hash, self.created_at)
        return "".join(f"{line}\n" for line in lines).encode()

    def as_line(self) -> str:
        return json.dumps(asdict(self), sort_keys=True, separators=(",", ":"))

    @classmethod
    def of(cls, checkpoint: AuditCheckpoint) -> SignedHead:
        return cls(
            tree_size=checkpoint.tree_size,
            root_hash=checkpoint.root_hash,
            last_hash=checkpoint.last_hash,
            created_at=_timestamp(checkpoint.created_at),
            key_id=checkpoint.key_id,
            signature=checkpoint.signature,
        )


class CheckpointFileError(ValueError):
    """A checkpoint file line that is not a signed head."""


class ChainBroken(Exception):
    """The log does not verify: it is not vouched for by a new checkpoint."""

    def __init__(self, broken: ChainBreak) -> None:
        super().__init__(f"audit chain broken at event {broken.sequence}: {broken.reason}")
        self.broken = broken


def _timestamp(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat()


def _private_key() -> Ed25519PrivateKey:
    try:
        seed = base64.urlsafe_b64decode(settings.AUDIT_SIGNING_KEY)
    except (binascii.Error, ValueError) as error:
        raise ImproperlyConfigured("SCS_AUDIT_SIGNING_KEY is not base64") from error
    if len(seed) != 32:
        raise ImproperlyConfigured("SCS_AUDIT_SIGNING_KEY must encode 32 bytes (an Ed25519 seed)")
    return Ed25519PrivateKey.from_private_bytes(seed)


def public_key() -> Ed25519PublicKey:
    return _private_key().public_key()


def retired_public_keys() -> list[Ed25519PublicKey]:
    """The keys that signed earlier checkpoints (SCS_AUDIT_RETIRED_PUBLIC_KEYS)."""
    keys = []
    for encoded in settings.AUDIT_RETIRED_PUBLIC_KEYS:
        try:
            keys.append(Ed25519PublicKey.from_public_bytes(base64.urlsafe_b64decode(encoded)))
        except (binascii.Error, ValueError) as error:
            raise ImproperlyConfigured(
                "SCS_AUDIT_RETIRED_PUBLIC_KEYS holds a value that is not a raw Ed25519 public "
                "key in urlsafe base64"
            ) from error
    return keys


def known_public_keys() -> dict[str, Ed25519PublicKey]:
    """Every key whose checkpoints verify, by key ID: the signing key's first, then the retired."""
    keys = [public_key(), *retired_public_keys()]
    return {key_id(key): key for key in keys}


def public_key_pem(key: Ed25519PublicKey | None = None) -> str:
    """The PEM of `key` (default: the signing key's public key)."""
    return (
        (key or public_key())
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )


def public_keys_pem() -> str:
    """Every known key's PEM block, the signing key's first."""
    return "".join(public_key_pem(key) for key in known_public_keys().values())


def raw_public_key(key: Ed25519PublicKey) -> str:
    """The raw key in urlsafe base64, as SCS_AUDIT_RETIRED_PUBLIC_KEYS takes it."""
    raw = key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return base64.urlsafe_b64encode(raw).decode()


def key_id(key: Ed25519PublicKey) -> str:
    """The first 16 hex digits of sha256 over the raw public key."""
    raw = key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


def signature_of(text: bytes) -> tuple[str, str]:
    """(key ID, hex Ed25519 signature) of `text` with the signing key: what an export's
    manifest carries (audit.bundle)."""
    key = _private_key()
    return key_id(key.public_key()), key.sign(text).hex()


def head_problem(head: SignedHead, keys: dict[str, Ed25519PublicKey]) -> str:
    """Why `head` is not a checkpoint signed by one of `keys` (by key ID), or "" when it is."""
    key = keys.get(head.key_id)
    if key is None:
        return (
            f"the checkpoint of {head.created_at} was signed by a key this platform does not "
            f"know ({head.key_id})"
        )
    try:
        key.verify(bytes.fromhex(head.signature), head.statement())
    except (InvalidSignature, ValueError):
        return f"the signature of the checkpoint of {head.created_at} does not verify"
    return ""


def heads_from_file(path: Path) -> list[SignedHead]:
    """The signed heads of a checkpoint file (one JSON object per line; blank lines skipped)."""
    heads = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            data: Any = json.loads(line)
            heads.append(
                SignedHead(
                    tree_size=int(data["tree_size"]),
                    root_hash=str(data["root_hash"]),
                    last_hash=str(data["last_hash"]),
                    created_at=str(data["created_at"]),
                    key_id=str(data["key_id"]),
                    signature=str(data["signature"]),
                )
            )
        except (ValueError, KeyError, TypeError) as error:
            raise CheckpointFileError(f"{path}:{number}: not a signed checkpoint") from error
    return heads


def published_heads() -> list[SignedHead]:
    """The checkpoints written outside the database (SCS_AUDIT_CHECKPOINT_FILE); none when the
    file does not exist yet. CheckpointFileError for a line that is not a signed head."""
    path = Path(settings.AUDIT_CHECKPOINT_FILE)
    return heads_from_file(path) if path.exists() else []


def checkpoint_heads() -> tuple[list[SignedHead], str]:
    """The heads to verify the log against by default: the stored checkpoints and those in the
    checkpoint file. The second value says why they cannot be trusted, or is ""."""
    stored = [SignedHead.of(c) for c in AuditCheckpoint.objects.order_by("tree_size")]
    try:
        published = published_heads()
    except (OSError, CheckpointFileError) as error:
        return stored, f"the checkpoint file cannot be read: {error}"
    kept = set(stored)
    for head in published:
        if head not in kept:
            return stored, (
                f"the checkpoint of {head.created_at} (event {head.tree_size}) is in the "
                "checkpoint file but no longer in the database: stored checkpoints were removed"
            )
    return stored, ""


def audit_log_verify(*, heads: list[SignedHead] | None = None, **options: Any) -> VerifyResult:
    """The chain, and the log against signed checkpoints: `heads` (an auditor's own copies), or
    by default the stored ones and those written to the checkpoint file, which must all be
    stored. A checkpoint whose signature fails is itself reported as the break."""
    if heads is None:
        heads, problem = checkpoint_heads()
        if problem:
            return VerifyResult(0, 0, "", ChainBreak(0, problem))
    keys = known_public_keys()
    for head in heads:
        if problem := head_problem(head, keys):
            return VerifyResult(0, 0, "", ChainBreak(head.tree_size, problem))
    with _one_snapshot():
        return audit_chain_verify(checkpoints=heads, **options)


@contextmanager
def _one_snapshot() -> Iterator[None]:
    """One consistent view of the log for a whole scan while the application keeps writing:
    on PostgreSQL a repeatable-read transaction, so its chunks and the head read one state.
    Inside a caller's transaction, the caller's view is used."""
    if connection.vendor != "postgresql" or connection.in_atomic_block:
        yield
        return
    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
        yield


def audit_checkpoint_create() -> AuditCheckpoint | None:
    """Sign a tree head over the whole log when it has grown since the last checkpoint.

    The chain is verified against the earlier checkpoints first: a log that does not hold
    together is not vouched for (ChainBroken, logged; nothing is stored)."""
    last = AuditCheckpoint.objects.order_by("-tree_size").first()
    result = audit_log_verify(tree=True)
    if result.broken is not None:
        logger.error("audit checkpoint refused: %s", ChainBroken(result.broken))
        raise ChainBroken(result.broken)
    if result.last_sequence == 0 or (last is not None and last.tree_size >= result.last_sequence):
        return None
    key = _private_key()
    created_at = datetime.now(tz=UTC).replace(microsecond=0)
    head = SignedHead(
        tree_size=result.last_sequence,
        root_hash=result.root_hash,
        last_hash=result.last_hash,
        created_at=_timestamp(created_at),
        key_id=key_id(key.public_key()),
        signature="",
    )
    signature = key.sign(head.statement()).hex()
    with transaction.atomic():
        checkpoint = AuditCheckpoint.objects.create(
            created_at=created_at,
            tree_size=head.tree_size,
            root_hash=head.root_hash,
            last_hash=head.last_hash,
            key_id=head.key_id,
            signature=signature,
        )
        transaction.on_commit(partial(checkpoint_publish, checkpoint_id=checkpoint.pk))
    return checkpoint


def checkpoint_publish(*, checkpoint_id: int) -> None:
    """Write a checkpoint outside the database: one line appended to the checkpoint file, and a
    mail to the auditors' addresses. A failure is logged; the stored checkpoint stays."""
    head = SignedHead.of(AuditCheckpoint.objects.get(pk=checkpoint_id))
    line = head.as_line()
    path = Path(settings.AUDIT_CHECKPOINT_FILE)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("a", encoding="utf-8") as handle:
            handle.write(line + "\n")
            handle.flush()
            os.fsync(handle.fileno())
    except OSError:
        logger.exception("audit checkpoint %s not written to %s", head.tree_size, path)
    if settings.AUDIT_CHECKPOINT_EMAILS:
        send_mail(
            subject=f"scs-cases audit checkpoint at event {head.tree_size}",
            message=(
                "Keep this line: `manage.py audit_verify --checkpoints FILE` checks the audit "
                "log against the lines you kept.\n\n"
                f"{line}\n\nPublic key {head.key_id}:\n{public_key_pem()}"
            ),
            from_email=None,
            recipient_list=list(settings.AUDIT_CHECKPOINT_EMAILS),
        )
