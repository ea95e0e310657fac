"""Encryption at rest and the keyed blind index for subject identifiers."""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import os

from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

_NONCE_BYTES = 12


def _key(value: str, name: str) -> bytes:
    try:
        key = base64.urlsafe_b64decode(value.encode())
    except ValueError as error:
        raise ImproperlyConfigured(f"{name} is not valid base64") from error
    if len(key) != 32:
        raise ImproperlyConfigured(f"{name} must decode to 32 bytes")
    return key


@functools.lru_cache(maxsize=4)
def _cipher(encoded_key: str) -> AESGCM:
    return AESGCM(_key(encoded_key, "SCS_IDENTIFIER_ENCRYPTION_KEY"))


@functools.lru_cache(maxsize=4)
def _hash_key(encoded_key: str) -> bytes:
    return _key(encoded_key, "SCS_IDENTIFIER_HASH_KEY")


def identifier_encrypt(identifier: str) -> bytes:
    nonce = os.urandom(_NONCE_BYTES)
    return nonce + _cipher(settings.IDENTIFIER_ENCRYPTION_KEY).encrypt(
        nonce, identifier.encode(), None
    )


def identifier_decrypt(ciphertext: bytes | memoryview) -> str:
    data = bytes(ciphertext)
    cipher = _cipher(settings.IDENTIFIER_ENCRYPTION_KEY)
    return cipher.decrypt(data[:_NONCE_BYTES], data[_NONCE_BYTES:], None).decode()


def identifier_hasher() -> hmac.HMAC:
    """A keyed hash ready to be copied per identifier; the bulk import uses it directly."""
    return hmac.new(_hash_key(settings.IDENTIFIER_HASH_KEY), digestmod=hashlib.sha256)


def identifier_hash(kind: str, identifier: str) -> str:
    """The blind index of a normalised identifier: HMAC-SHA256 over kind and value."""
    hasher = identifier_hasher()
    hasher.update(f"{kind}:{identifier}".encode())
    return hasher.hexdigest()


def generate_key() -> str:
    return base64.urlsafe_b64encode(os.urandom(32)).decode()
