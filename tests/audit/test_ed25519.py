"""audit.ed25519 against the RFC 8032 test vectors, then against the `cryptography` package.

The vectors are RFC 8032 §7.1 ("Test Vectors for Ed25519": TEST 1, 2, 3, 1024 and SHA(abc)),
copied from the RFC's §7 text as kept, page headers stripped, in github.com/latchset/kryoptic
testdata/rfc8032.txt @ de5de0c9d393cc05b3f8d30e24b5e46723c51142 (the commit that added it; the
RFC itself is https://www.rfc-editor.org/rfc/rfc8032.txt). Two RFC lines of hex make one line
here; nothing else is changed. `cryptography` re-derives each public key and signature from the
secret key, so a slip in the copying fails loudly.
"""

from __future__ import annotations

from typing import NamedTuple

import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa, x25519
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from hypothesis import given, settings
from hypothesis import strategies as st

from audit import checkpoints
from audit.ed25519 import key_id, public_key_from_pem, verify

h = bytes.fromhex

# The order of the base point, L in RFC 8032 §5.1.
L = 2**252 + 27742317777372353535851937790883648493


class Vector(NamedTuple):
    name: str
    secret_key: str
    public_key: str
    message: str
    signature: str


VECTORS = [
    Vector(
        name="TEST 1",
        secret_key="9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60",
        public_key="d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a",
        message="",
        signature=(
            "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e06522490155"
            "5fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b"
        ),
    ),
    Vector(
        name="TEST 2",
        secret_key="4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb",
        public_key="3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c",
        message="72",
        signature=(
            "92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223ebdb69da"
            "085ac1e43e15996e458f3613d0f11d8c387b2eaeb4302aeeb00d291612bb0c00"
        ),
    ),
    Vector(
        name="TEST 3",
        secret_key="c5aa8df43f9f837bedb7442f31dcb7b166d38535076f094b85ce3a2e0b4458f7",
        public_key="fc51cd8e6218a1a38da47ed00230f0580816ed13ba3303ac5deb911548908025",
        message="af82",
        signature=(
            "6291d657deec24024827e69c3abe01a30ce548a284743a445e3680d7db5ac3ac"
            "18ff9b538d16f290ae67f760984dc6594a7c15e9716ed28dc027beceea1ec40a"
        ),
    ),
    Vector(
        name="TEST 1024",
        secret_key="f5e5767cf153319517630f226876b86c8160cc583bc013744c6bf255f5cc0ee5",
        public_key="278117fc144c72340f67d0f2316e8386ceffbf2b2428c9c51fef7c597f1d426e",
        message=(
            "08b8b2b733424243760fe426a4b54908632110a66c2f6591eabd3345e3e4eb98"
            "fa6e264bf09efe12ee50f8f54e9f77b1e355f6c50544e23fb1433ddf73be84d8"
            "79de7c0046dc4996d9e773f4bc9efe5738829adb26c81b37c93a1b270b20329d"
            "658675fc6ea534e0810a4432826bf58c941efb65d57a338bbd2e26640f89ffbc"
            "1a858efcb8550ee3a5e1998bd177e93a7363c344fe6b199ee5d02e82d522c4fe"
            "ba15452f80288a821a579116ec6dad2b3b310da903401aa62100ab5d1a36553e"
            "06203b33890cc9b832f79ef80560ccb9a39ce767967ed628c6ad573cb116dbef"
            "efd75499da96bd68a8a97b928a8bbc103b6621fcde2beca1231d206be6cd9ec7"
            "aff6f6c94fcd7204ed3455c68c83f4a41da4af2b74ef5c53f1d8ac70bdcb7ed1"
            "85ce81bd84359d44254d95629e9855a94a7c1958d1f8ada5d0532ed8a5aa3fb2"
            "d17ba70eb6248e594e1a2297acbbb39d502f1a8c6eb6f1ce22b3de1a1f40cc24"
            "554119a831a9aad6079cad88425de6bde1a9187ebb6092cf67bf2b13fd65f270"
            "88d78b7e883c8759d2c4f5c65adb7553878ad575f9fad878e80a0c9ba63bcbcc"
            "2732e69485bbc9c90bfbd62481d9089beccf80cfe2df16a2cf65bd92dd597b07"
            "07e0917af48bbb75fed413d238f5555a7a569d80c3414a8d0859dc65a46128ba"
            "b27af87a71314f318c782b23ebfe808b82b0ce26401d2e22f04d83d1255dc51a"
            "ddd3b75a2b1ae0784504df543af8969be3ea7082ff7fc9888c144da2af58429e"
            "c96031dbcad3dad9af0dcbaaaf268cb8fcffead94f3c7ca495e056a9b47acdb7"
            "51fb73e666c6c655ade8297297d07ad1ba5e43f1bca32301651339e22904cc8c"
            "42f58c30c04aafdb038dda0847dd988dcda6f3bfd15c4b4c4525004aa06eeff8"
            "ca61783aacec57fb3d1f92b0fe2fd1a85f6724517b65e614ad6808d6f6ee34df"
            "f7310fdc82aebfd904b01e1dc54b2927094b2db68d6f903b68401adebf5a7e08"
            "d78ff4ef5d63653a65040cf9bfd4aca7984a74d37145986780fc0b16ac451649"
            "de6188a7dbdf191f64b5fc5e2ab47b57f7f7276cd419c17a3ca8e1b939ae49e4"
            "88acba6b965610b5480109c8b17b80e1b7b750dfc7598d5d5011fd2dcc5600a3"
            "2ef5b52a1ecc820e308aa342721aac0943bf6686b64b2579376504ccc493d97e"
            "6aed3fb0f9cd71a43dd497f01f17c0e2cb3797aa2a2f256656168e6c496afc5f"
            "b93246f6b1116398a346f1a641f3b041e989f7914f90cc2c7fff357876e506b5"
            "0d334ba77c225bc307ba537152f3f1610e4eafe595f6d9d90d11faa933a15ef1"
            "369546868a7f3a45a96768d40fd9d03412c091c6315cf4fde7cb68606937380d"
            "b2eaaa707b4c4185c32eddcdd306705e4dc1ffc872eeee475a64dfac86aba41c"
            "0618983f8741c5ef68d3a101e8a3b8cac60c905c15fc910840b94c00a0b9d0"
        ),
        signature=(
            "0aab4c900501b3e24d7cdf4663326a3a87df5e4843b2cbdb67cbf6e460fec350"
            "aa5371b1508f9f4528ecea23c436d94b5e8fcd4f681e30a6ac00a9704a188a03"
        ),
    ),
    Vector(
        name="TEST SHA(abc)",
        secret_key="833fe62409237b9d62ec77587520911e9a759cec1d19755b7da901b96dca3d42",
        public_key="ec172b93ad5e563bf4932c70e1245034c35467ef2efd4d64ebf819683467e2bf",
        message=(
            "ddaf35a193617abacc417349ae20413112e6fa4e89a97ea20a9eeee64b55d39a"
            "2192992a274fc1a836ba3c23a3feebbd454d4423643ce80e2a9ac94fa54ca49f"
        ),
        signature=(
            "dc2a4459e7369633a52b1bf277839a00201009a3efbf3ecb69bea2186c26b589"
            "09351fc9ac90b3ecfdfbc7c66431e0303dca179c138ac17ad9bef1177331a704"
        ),
    ),
]

RFC_VECTORS = pytest.mark.parametrize("vector", VECTORS, ids=[vector.name for vector in VECTORS])
CROSS_CHECK = settings(max_examples=50, deadline=None)

secret_keys = st.binary(min_size=32, max_size=32)
messages = st.binary(max_size=200)


def raw(key: Ed25519PublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def pem(key: Ed25519PublicKey) -> bytes:
    return key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def flipped(data: bytes, bit: int) -> bytes:
    mutated = bytearray(data)
    mutated[bit // 8] ^= 1 << bit % 8
    return bytes(mutated)


def message_bits(size: int) -> list[int]:
    """Every bit of a message up to 64 bytes; of a longer one (TEST 1024's 8184 bits would take
    half a minute), every bit of the first and last 8 bytes and one bit of each byte between, a
    different one from byte to byte."""
    if size <= 64:
        return list(range(size * 8))
    ends = [*range(8 * 8), *range((size - 8) * 8, size * 8)]
    return ends + [byte * 8 + byte % 8 for byte in range(8, size - 8)]


def cryptography_verify(public_key: bytes, message: bytes, signature: bytes) -> bool:
    try:
        Ed25519PublicKey.from_public_bytes(public_key).verify(signature, message)
    except (InvalidSignature, ValueError):
        return False
    return True


@RFC_VECTORS
def test_an_rfc_8032_vector_verifies(vector: Vector):
    assert verify(h(vector.public_key), h(vector.message), h(vector.signature)) is True


@RFC_VECTORS
def test_an_rfc_8032_vector_is_what_cryptography_derives_from_its_secret_key(vector: Vector):
    # Ed25519 signing is deterministic, so this checks every copied byte but the secret key's.
    private_key = Ed25519PrivateKey.from_private_bytes(h(vector.secret_key))

    assert raw(private_key.public_key()) == h(vector.public_key)
    assert private_key.sign(h(vector.message)) == h(vector.signature)


@RFC_VECTORS
def test_flipping_any_bit_of_an_rfc_8032_vector_fails(vector: Vector):
    public_key, message, signature = h(vector.public_key), h(vector.message), h(vector.signature)

    accepted = [
        ("public key", bit)
        for bit in range(len(public_key) * 8)
        if verify(flipped(public_key, bit), message, signature)
    ]
    accepted += [
        ("message", bit)
        for bit in message_bits(len(message))
        if verify(public_key, flipped(message, bit), signature)
    ]
    accepted += [
        ("signature", bit)
        for bit in range(len(signature) * 8)
        if verify(public_key, message, flipped(signature, bit))
    ]

    assert accepted == []


@RFC_VECTORS
@pytest.mark.parametrize("multiple", [1, 2])
def test_a_non_canonical_s_is_rejected(vector: Vector, multiple: int):
    public_key, message, signature = h(vector.public_key), h(vector.message), h(vector.signature)
    s = int.from_bytes(signature[32:], "little")
    # S + L is the same scalar modulo L, so the group equation still holds: only the S < L rule
    # of RFC 8032 §5.1.7 refuses it. S + 2L < 3L < 2**254 still fits in 32 bytes.
    malleated = signature[:32] + (s + multiple * L).to_bytes(32, "little")

    assert verify(public_key, message, malleated) is False
    assert cryptography_verify(public_key, message, malleated) is False


@CROSS_CHECK
@given(secret_key=secret_keys, message=messages)
def test_a_signature_made_by_cryptography_verifies(secret_key: bytes, message: bytes):
    private_key = Ed25519PrivateKey.from_private_bytes(secret_key)

    assert verify(raw(private_key.public_key()), message, private_key.sign(message)) is True


@CROSS_CHECK
@given(secret_key=secret_keys, message=messages, data=st.data())
def test_a_mutated_signature_fails_as_it_does_for_cryptography(
    secret_key: bytes, message: bytes, data: st.DataObject
):
    private_key = Ed25519PrivateKey.from_private_bytes(secret_key)
    public_key, signature = raw(private_key.public_key()), private_key.sign(message)
    mutation = data.draw(
        st.sampled_from(["public key", "message", "signature", "other signature", "longer message"])
    )
    if mutation == "public key":
        public_key = flipped(public_key, data.draw(st.integers(0, 255)))
    elif mutation == "message" and message:
        message = flipped(message, data.draw(st.integers(0, len(message) * 8 - 1)))
    elif mutation == "signature":
        signature = flipped(signature, data.draw(st.integers(0, 511)))
    elif mutation == "other signature":
        signature = data.draw(st.binary(min_size=64, max_size=64).filter(lambda s: s != signature))
    else:
        message += data.draw(st.binary(min_size=1, max_size=8))

    assert verify(public_key, message, signature) is False
    assert cryptography_verify(public_key, message, signature) is False


@pytest.mark.parametrize(
    ("public_key_size", "signature_size"), [(31, 64), (33, 64), (32, 63), (32, 65), (0, 0)]
)
def test_wrong_lengths_are_rejected(public_key_size: int, signature_size: int):
    vector = VECTORS[1]
    public_key = h(vector.public_key).ljust(public_key_size, b"\0")[:public_key_size]
    signature = h(vector.signature).ljust(signature_size, b"\0")[:signature_size]

    assert verify(public_key, h(vector.message), signature) is False


def test_what_is_not_bytes_is_rejected_without_raising():
    vector = VECTORS[1]

    assert verify(vector.public_key, h(vector.message), h(vector.signature)) is False  # type: ignore[arg-type]
    assert verify(h(vector.public_key), None, h(vector.signature)) is False  # type: ignore[arg-type]


def test_a_public_key_off_the_curve_is_rejected():
    # y = 2: (y² - 1) / (d y² + 1) has no square root modulo p, so no point has this y.
    off_curve = (2).to_bytes(32, "little")
    vector = VECTORS[1]

    assert verify(off_curve, h(vector.message), h(vector.signature)) is False
    assert cryptography_verify(off_curve, h(vector.message), h(vector.signature)) is False


# The neutral element (0, 1) as a public key: [k]A is neutral, so (R, S) = (B, 1) satisfies the
# group equation for every message. RFC 8032 does not refuse small-order keys, so the canonical
# encoding verifies; that makes it the control for the encodings §5.1.3 says must not decode.
BASE_POINT = h("58" + "66" * 31)
NEUTRAL = (1).to_bytes(32, "little")


def test_a_signature_under_the_canonically_encoded_neutral_key_verifies():
    assert verify(NEUTRAL, b"any message", BASE_POINT + (1).to_bytes(32, "little")) is True


@pytest.mark.parametrize(
    "public_key",
    [
        pytest.param((2**255 - 19 + 1).to_bytes(32, "little"), id="y = p + 1"),
        pytest.param((1 | 1 << 255).to_bytes(32, "little"), id="x = 0 with its sign bit set"),
    ],
)
def test_a_non_canonically_encoded_public_key_is_rejected(public_key: bytes):
    assert verify(public_key, b"any message", BASE_POINT + (1).to_bytes(32, "little")) is False


@pytest.mark.parametrize(
    "r",
    [
        pytest.param((2**255 - 19 + 1).to_bytes(32, "little"), id="y = p + 1"),
        pytest.param((1 | 1 << 255).to_bytes(32, "little"), id="x = 0 with its sign bit set"),
    ],
)
def test_a_non_canonically_encoded_r_is_rejected(r: bytes):
    # Under the neutral key, (R, S) = (neutral, 0) satisfies the group equation.
    assert verify(NEUTRAL, b"any message", NEUTRAL + bytes(32)) is True

    assert verify(NEUTRAL, b"any message", r + bytes(32)) is False


def test_public_key_from_pem_reads_the_key_cryptography_writes():
    public_key = Ed25519PrivateKey.from_private_bytes(bytes(range(32))).public_key()

    assert public_key_from_pem(pem(public_key)) == raw(public_key)
    assert public_key_from_pem(pem(public_key).decode()) == raw(public_key)
    assert public_key_from_pem(b"\n" + pem(public_key).replace(b"\n", b"\r\n")) == raw(public_key)


def rsa_pem() -> bytes:
    return (
        rsa.generate_private_key(public_exponent=65537, key_size=2048)
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )


def ec_pem() -> bytes:
    return (
        ec.generate_private_key(ec.SECP256R1())
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )


def x25519_pem() -> bytes:
    # The same 44-byte DER shape as an Ed25519 key, with the X25519 algorithm identifier.
    return (
        x25519.X25519PrivateKey.from_private_bytes(bytes(range(32)))
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )


def ed25519_private_pem() -> bytes:
    return Ed25519PrivateKey.from_private_bytes(bytes(range(32))).private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def ed25519_pem() -> bytes:
    return pem(Ed25519PrivateKey.from_private_bytes(bytes(range(32))).public_key())


@pytest.mark.parametrize(
    ("text", "refusal"),
    [
        pytest.param(rsa_pem, "not an Ed25519 public key", id="RSA"),
        pytest.param(ec_pem, "not an Ed25519 public key", id="EC P-256"),
        pytest.param(x25519_pem, "not an Ed25519 public key", id="X25519"),
        pytest.param(ed25519_private_pem, "not a PEM block", id="Ed25519 private key"),
        pytest.param(lambda: ed25519_pem() * 2, "not base64", id="two blocks"),
        pytest.param(
            lambda: ed25519_pem().replace(b"MCow", b"MC*w"), "not base64", id="not base64"
        ),
        pytest.param(
            lambda: ed25519_pem().replace(b"MCow", b"MCo"), "not base64", id="bad base64 padding"
        ),
        pytest.param(lambda: ed25519_pem()[:-26], "not a PEM block", id="no END line"),
        pytest.param(lambda: b"", "not a PEM block", id="empty"),
        pytest.param(lambda: "\N{SNOWMAN}".encode(), "ASCII", id="not ASCII"),
    ],
)
def test_public_key_from_pem_refuses_anything_but_an_ed25519_public_key(text, refusal: str):
    with pytest.raises(ValueError, match=refusal):
        public_key_from_pem(text())


@RFC_VECTORS
def test_key_id_is_the_one_audit_checkpoints_gives(vector: Vector):
    public_key = h(vector.public_key)

    assert key_id(public_key) == checkpoints.key_id(Ed25519PublicKey.from_public_bytes(public_key))


def test_key_id_refuses_what_is_not_a_raw_public_key():
    with pytest.raises(ValueError, match="32 bytes"):
        key_id(bytes(33))
