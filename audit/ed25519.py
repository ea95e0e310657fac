"""Ed25519 signature verification (RFC 8032 §5.1), and reading the key it needs.

Standard library only and no Django: this module is copied as is into the standalone audit export
bundles, whose auditors check checkpoint signatures without third-party packages. It verifies and
never signs, so it holds no secret and need not be constant-time.

`verify` is strict where RFC 8032 allows a choice:

- S must be below L (§5.1.7), so a signature has one encoding;
- the key and R must be canonical encodings of curve points (§5.1.3: y < p, and no sign bit on
  x = 0);
- the group equation is checked without the cofactor, [S]B = R + [k]A, which §5.1.7 allows and
  which accepts a subset of what the cofactored [8][S]B = [8]R + [8][k]A does. OpenSSL, and so
  the `cryptography` package the application signs with, checks it the same way.
"""

from __future__ import annotations

import base64
import binascii
import hashlib

__all__ = [
    "PUBLIC_KEY_SIZE",
    "SIGNATURE_SIZE",
    "key_id",
    "public_key_from_pem",
    "verify",
]

PUBLIC_KEY_SIZE = 32
SIGNATURE_SIZE = 64

# Points are (X, Y, Z, T) in extended homogeneous coordinates: x = X/Z, y = Y/Z, x*y = T/Z.
_Point = tuple[int, int, int, int]

_P = 2**255 - 19
# The order of the base point, written L in RFC 8032 §5.1.
_L = 2**252 + 27742317777372353535851937790883648493
_D = -121665 * pow(121666, -1, _P) % _P
_D2 = 2 * _D % _P
_SQRT_M1 = pow(2, (_P - 1) // 4, _P)

_IDENTITY: _Point = (0, 1, 1, 0)
_BASE_Y = 4 * pow(5, -1, _P) % _P
_BASE_X = 15112221349535400772501151409588531511454012693041857206046113283949847762202
_BASE: _Point = (_BASE_X, _BASE_Y, 1, _BASE_X * _BASE_Y % _P)

# DER of an Ed25519 SubjectPublicKeyInfo (RFC 8410 §4) up to the key: SEQUENCE { SEQUENCE { OID
# 1.3.101.112 }, BIT STRING of 33 bytes with no unused bits }.
_SPKI_PREFIX = bytes.fromhex("302a300506032b6570032100")
_PEM_BEGIN = "-----BEGIN PUBLIC KEY-----"
_PEM_END = "-----END PUBLIC KEY-----"


def verify(public_key: bytes, message: bytes, signature: bytes) -> bool:
    """Whether `signature` is a valid Ed25519 signature of `message` under the raw `public_key`.

    False, never an exception, for anything that is not: wrong lengths or types, S >= L, a key
    that is not a canonically encoded curve point, or a signature that does not check out.
    """
    if not (_is_bytes(public_key) and _is_bytes(message) and _is_bytes(signature)):
        return False
    if len(public_key) != PUBLIC_KEY_SIZE or len(signature) != SIGNATURE_SIZE:
        return False
    public_key, message, signature = bytes(public_key), bytes(message), bytes(signature)
    encoded_r, encoded_s = signature[:32], signature[32:]
    s = int.from_bytes(encoded_s, "little")
    if s >= _L:
        return False
    a = _decode_point(public_key)
    if a is None:
        return False
    digest = hashlib.sha512(encoded_r + public_key + message).digest()
    k = int.from_bytes(digest, "little") % _L
    # R = [S]B - [k]A. Comparing its (canonical) encoding with the bytes given rejects an R that
    # does not decode, or decodes only non-canonically, just as decoding R first would.
    return _encode_point(_double_multiply(s, _BASE, k, _negate(a))) == encoded_r


def public_key_from_pem(pem: str | bytes) -> bytes:
    """The raw 32-byte key in a PEM "PUBLIC KEY" block holding an Ed25519 SubjectPublicKeyInfo.

    The text must be exactly one such block (surrounding whitespace aside); anything else, an
    RSA or EC key among them, raises ValueError.
    """
    if isinstance(pem, bytes):
        try:
            pem = pem.decode("ascii")
        except UnicodeDecodeError:
            raise ValueError("a PEM public key is ASCII text") from None
    lines = pem.strip().splitlines()
    if len(lines) < 3 or lines[0].strip() != _PEM_BEGIN or lines[-1].strip() != _PEM_END:
        raise ValueError("not a PEM block of type PUBLIC KEY")
    body = "".join(line.strip() for line in lines[1:-1])
    try:
        der = base64.b64decode(body, validate=True)
    except binascii.Error:
        raise ValueError("the PEM body is not base64") from None
    if len(der) != len(_SPKI_PREFIX) + PUBLIC_KEY_SIZE or not der.startswith(_SPKI_PREFIX):
        raise ValueError("not an Ed25519 public key")
    return der[len(_SPKI_PREFIX) :]


def key_id(public_key: bytes) -> str:
    """The first 16 hex digits of sha256 over the raw public key (as audit.checkpoints.key_id)."""
    if not _is_bytes(public_key) or len(public_key) != PUBLIC_KEY_SIZE:
        raise ValueError(f"an Ed25519 public key is {PUBLIC_KEY_SIZE} bytes")
    return hashlib.sha256(public_key).hexdigest()[:16]


def _is_bytes(value: object) -> bool:
    return isinstance(value, bytes | bytearray)


def _add(p: _Point, q: _Point) -> _Point:
    """P + Q by the complete addition formulas of RFC 8032 §5.1.4 (valid for P = Q too)."""
    x1, y1, z1, t1 = p
    x2, y2, z2, t2 = q
    a = (y1 - x1) * (y2 - x2) % _P
    b = (y1 + x1) * (y2 + x2) % _P
    c = t1 * _D2 * t2 % _P
    d = 2 * z1 * z2 % _P
    e, f, g, h = b - a, d - c, d + c, b + a
    return (e * f % _P, g * h % _P, f * g % _P, e * h % _P)


def _double(p: _Point) -> _Point:
    """2P by the doubling formulas of RFC 8032 §5.1.4."""
    x1, y1, z1, _ = p
    a = x1 * x1 % _P
    b = y1 * y1 % _P
    c = 2 * z1 * z1 % _P
    h = a + b
    e = h - (x1 + y1) * (x1 + y1) % _P
    g = a - b
    f = c + g
    return (e * f % _P, g * h % _P, f * g % _P, e * h % _P)


def _negate(p: _Point) -> _Point:
    x, y, z, t = p
    return (-x % _P, y, z, -t % _P)


def _double_multiply(m: int, p: _Point, n: int, q: _Point) -> _Point:
    """[m]P + [n]Q with one shared run of doublings (Straus-Shamir)."""
    table = (_IDENTITY, p, q, _add(p, q))
    result = _IDENTITY
    for bit in reversed(range(max(m.bit_length(), n.bit_length()))):
        result = _double(result)
        index = (m >> bit & 1) | (n >> bit & 1) << 1
        if index:
            result = _add(result, table[index])
    return result


def _decode_point(encoded: bytes) -> _Point | None:
    """The point a 32-byte encoding stands for (RFC 8032 §5.1.3), or None if it stands for none."""
    y = int.from_bytes(encoded, "little")
    sign = y >> 255
    y &= (1 << 255) - 1
    if y >= _P:
        return None
    u = (y * y - 1) % _P
    v = (_D * y * y + 1) % _P
    # x = sqrt(u/v) in one exponentiation: candidate (u/v)^((p+3)/8) = u v^3 (u v^7)^((p-5)/8).
    x = u * pow(v, 3, _P) * pow(u * pow(v, 7, _P), (_P - 5) // 8, _P) % _P
    vxx = v * x * x % _P
    if vxx != u:
        if vxx != -u % _P:
            return None
        x = x * _SQRT_M1 % _P
    if x == 0 and sign:
        return None
    if x & 1 != sign:
        x = _P - x
    return (x, y, 1, x * y % _P)


def _encode_point(p: _Point) -> bytes:
    """The canonical 32-byte encoding of a point (RFC 8032 §5.1.2)."""
    x, y, z, _ = p
    z_inverse = pow(z, -1, _P)
    x = x * z_inverse % _P
    y = y * z_inverse % _P
    return (y | (x & 1) << 255).to_bytes(32, "little")
