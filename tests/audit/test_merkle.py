"""audit.merkle against the published RFC 6962 test vectors, then by properties.

The vectors are copied from github.com/transparency-dev/merkle (the Go Merkle library behind
Trillian and certificate-transparency-go, Apache-2.0):
  - testonly/constants.go @ 582a6ad190b6848f1d26f8bf08ddef29955d9db1: LeafInputs, NodeHashes,
    RootHashes;
  - proof/verify_test.go @ 02194e9afb6c1d95b5381350007963aa70fff472: inclusionProofs (whose leaf
    numbers are 1-based there, 0-based here), consistencyProofs and the corrupted-proof probes;
  - proof/proof_test.go @ 02a3e2029520f515596d5238c54fb0ac9e19bff4: TestInclusion and
    TestConsistency, which give proofs as node ids (level, index); they are spelled here with the
    NodeHashes of those ids.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from audit.merkle import (
    EMPTY_ROOT,
    HASH_SIZE,
    TreeBuilder,
    consistency_proof,
    inclusion_proof,
    leaf_hash,
    node_hash,
    root,
    verify_consistency,
    verify_inclusion,
)

h = bytes.fromhex

LEAVES = [
    h(""),
    h("00"),
    h("10"),
    h("2021"),
    h("3031"),
    h("40414243"),
    h("5051525354555657"),
    h("606162636465666768696a6b6c6d6e6f"),
]
# NODE[level][index]: the complete subtrees of the tree of LEAVES; level 0 holds the leaf hashes.
NODE = [
    [
        h("6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d"),
        h("96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7"),
        h("0298d122906dcfc10892cb53a73992fc5b9f493ea4c9badb27b791b4127a7fe7"),
        h("07506a85fd9dd2f120eb694f86011e5bb4662e5c415a62917033d4a9624487e7"),
        h("bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b"),
        h("4271a26be0d8a84f0bd54c8c302e7cb3a3b5d1fa6780a40bcce2873477dab658"),
        h("b08693ec2e721597130641e8211e7eedccb4c26413963eee6c1e2ed16ffb1a5f"),
        h("46f6ffadd3d06a09ff3c5860d2755c8b9819db7df44251788c7d8e3180de8eb1"),
    ],
    [
        h("fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125"),
        h("5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e"),
        h("0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a"),
        h("ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0"),
    ],
    [
        h("d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"),
        h("6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4"),
    ],
    [
        h("5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328"),
    ],
]
# ROOTS[n] = MTH(LEAVES[:n]).
ROOTS = [
    h("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"),
    h("6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d"),
    h("fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125"),
    h("aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77"),
    h("d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"),
    h("4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4"),
    h("76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef"),
    h("ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c"),
    h("5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328"),
]
SOME_HASH = h("abacaba000000000000000000000000000000000000000000060061e00123456")

# verify_test.go, inclusionProofs: (index, size, proof).
INCLUSION_HEX = [
    (0, 1, []),
    (
        0,
        8,
        [
            "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
        ],
    ),
    (
        5,
        8,
        [
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        ],
    ),
    (2, 3, ["fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125"]),
    (
        1,
        5,
        [
            "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
        ],
    ),
]
# verify_test.go, consistencyProofs: (old size, new size, proof).
CONSISTENCY_HEX = [
    (1, 1, []),
    (
        1,
        8,
        [
            "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
        ],
    ),
    (
        6,
        8,
        [
            "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        ],
    ),
    (
        2,
        5,
        [
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
        ],
    ),
    (
        6,
        7,
        [
            "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
            "b08693ec2e721597130641e8211e7eedccb4c26413963eee6c1e2ed16ffb1a5f",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        ],
    ),
]
INCLUSION_VECTORS = [(i, n, [h(x) for x in proof]) for i, n, proof in INCLUSION_HEX]
CONSISTENCY_VECTORS = [(m, n, [h(x) for x in proof]) for m, n, proof in CONSISTENCY_HEX]

# proof_test.go names nodes by (level, index), drawn there as
#   level 2:  k = (2, 0)          l = MTH(d4..d7) = (2, 1), or in the tree of 7 leaves l = i.j
#   level 1:  g (1, 0)  h (1, 1)  i (1, 2)
#   level 0:  a b c d e f j = (0, 0) .. (0, 6), and leaf #7 = (0, 7)
# "rehash" there means a right-edge pair is hashed into the missing parent: for 7 leaves the
# sibling l of k is node_hash(i, j), which is not in NodeHashes.
a, b, c, d, e, f, j, leaf7 = NODE[0]
g, hh, i, _ = NODE[1]
k, l8 = NODE[2]
L7 = node_hash(i, j)
NODE_ID_INCLUSION = [
    (1, 0, []),
    (2, 0, [b]),
    (2, 1, [a]),
    (3, 1, [a, c]),
    (7, 0, [b, hh, L7]),
    (7, 1, [a, hh, L7]),
    (7, 2, [d, g, L7]),
    (7, 3, [c, g, L7]),
    (7, 4, [f, j, k]),
    (7, 5, [e, j, k]),
    (7, 6, [i, k]),
    (4, 2, [d, g]),
    (5, 3, [c, g, e]),
    (6, 3, [c, g, i]),
    (6, 4, [f, k]),
]
NODE_ID_CONSISTENCY = [
    (1, 2, [b]),
    (1, 4, [b, hh]),
    (1, 6, [b, hh, i]),
    (2, 3, [c]),
    (2, 8, [hh, l8]),
    (3, 7, [c, d, g, L7]),
    (4, 7, [L7]),
    (5, 7, [e, f, j, k]),
    (6, 7, [i, j, k]),
    (7, 8, [j, leaf7, i, k]),
    *[(n, n, []) for n in (1, 2, 3, 4, 5, 7, 8)],
    (2, 4, [hh]),
    (3, 5, [c, d, g, e]),
    (3, 6, [c, d, g, i]),
    (4, 6, [i]),
    (1, 7, [b, hh, L7]),
]

PROPERTY = settings(max_examples=100, deadline=None)
# Distinct leaves: with repeated leaves a proof for one position can honestly prove another.
UNIQUE_LEAVES = st.lists(st.binary(max_size=12), unique=True, max_size=40)
NONEMPTY_UNIQUE_LEAVES = st.lists(st.binary(max_size=12), unique=True, min_size=1, max_size=40)


def flipped(value: bytes, position: int = 0, mask: int = 0x10) -> bytes:
    changed = bytearray(value)
    changed[position % len(changed)] ^= mask
    return bytes(changed)


def with_element_flipped(proof: Sequence[bytes], at: int, position: int = 0) -> list[bytes]:
    return [flipped(x, position) if n == at else x for n, x in enumerate(proof)]


def inclusion_probes(
    leaf: bytes, index: int, size: int, proof: list[bytes], tree_root: bytes
) -> dict[str, tuple[bytes, int, int, list[bytes], bytes]]:
    """verify_test.go's corruptInclusionProof, less the probes whose index is outside the tree
    (those raise ValueError here, see test_verify_inclusion_refuses_impossible_positions)."""
    probes = {
        "leafIndex - 1": (leaf, index - 1, size, proof, tree_root),
        "leafIndex + 1": (leaf, index + 1, size, proof, tree_root),
        "leafIndex ^ 2": (leaf, index ^ 2, size, proof, tree_root),
        "treeSize * 2": (leaf, index, size * 2, proof, tree_root),
        "treeSize / 2": (leaf, index, size // 2, proof, tree_root),
        "wrong leaf": (b"WrongLeaf", index, size, proof, tree_root),
        "empty root": (leaf, index, size, proof, EMPTY_ROOT),
        "random root": (leaf, index, size, proof, SOME_HASH),
        "trailing garbage": (leaf, index, size, [*proof, b""], tree_root),
        "trailing root": (leaf, index, size, [*proof, tree_root], tree_root),
        "preceding garbage": (leaf, index, size, [b"", *proof], tree_root),
        "preceding root": (leaf, index, size, [tree_root, *proof], tree_root),
    }
    for at in range(len(proof)):
        probes[f"modified proof[{at}] bit 3"] = (
            leaf,
            index,
            size,
            [flipped(x, 0, 0x08) if n == at else x for n, x in enumerate(proof)],
            tree_root,
        )
    if proof:
        probes["removed component"] = (leaf, index, size, proof[:-1], tree_root)
    if len(proof) > 1:
        probes["inserted component"] = (
            leaf,
            index,
            size,
            [proof[0], SOME_HASH, *proof[1:]],
            tree_root,
        )
    return {name: probe for name, probe in probes.items() if 0 <= probe[1] < probe[2]}


def consistency_probes(
    old_size: int, new_size: int, old_root: bytes, new_root: bytes, proof: list[bytes]
) -> dict[str, tuple[int, int, bytes, bytes, list[bytes]]]:
    """verify_test.go's corruptConsistencyProof (for a non-empty proof), less the probes whose sizes
    are out of order (those raise ValueError here)."""
    probes = {
        "size1 - 1": (old_size - 1, new_size, old_root, new_root, proof),
        "size1 + 1": (old_size + 1, new_size, old_root, new_root, proof),
        "size1 ^ 2": (old_size ^ 2, new_size, old_root, new_root, proof),
        "size2 * 2": (old_size, new_size * 2, old_root, new_root, proof),
        "size2 / 2": (old_size, new_size // 2, old_root, new_root, proof),
        "wrong root1": (old_size, new_size, b"WrongRoot", new_root, proof),
        "wrong root2": (old_size, new_size, old_root, b"WrongRoot", proof),
        "swapped roots": (old_size, new_size, new_root, old_root, proof),
        "empty proof": (old_size, new_size, old_root, new_root, []),
        "trailing garbage": (old_size, new_size, old_root, new_root, [*proof, b""]),
        "trailing root1": (old_size, new_size, old_root, new_root, [*proof, old_root]),
        "trailing root2": (old_size, new_size, old_root, new_root, [*proof, new_root]),
        "preceding garbage": (old_size, new_size, old_root, new_root, [b"", *proof]),
        "preceding root1": (old_size, new_size, old_root, new_root, [old_root, *proof]),
        "preceding root2": (old_size, new_size, old_root, new_root, [new_root, *proof]),
        "preceding proof[0]": (old_size, new_size, old_root, new_root, [proof[0], *proof]),
        "truncated proof": (old_size, new_size, old_root, new_root, proof[:-1]),
    }
    for at in range(len(proof)):
        probes[f"modified proof[{at}] bit 4"] = (
            old_size,
            new_size,
            old_root,
            new_root,
            with_element_flipped(proof, at),
        )
    return {name: probe for name, probe in probes.items() if 0 <= probe[0] <= probe[1]}


# --- Published vectors ---------------------------------------------------------------------------


def test_empty_root_is_the_hash_of_nothing() -> None:
    assert ROOTS[0] == EMPTY_ROOT
    assert root([]) == ROOTS[0]
    assert TreeBuilder().root() == ROOTS[0]
    assert TreeBuilder().size == 0


def test_leaf_and_node_hashes_match_the_published_node_hashes() -> None:
    assert [leaf_hash(data) for data in LEAVES] == NODE[0]
    for level in (1, 2, 3):
        below = NODE[level - 1]
        assert [node_hash(below[2 * x], below[2 * x + 1]) for x in range(len(below) // 2)] == (
            NODE[level]
        )


@pytest.mark.parametrize("size", range(9))
def test_root_of_each_prefix_matches_the_published_root(size: int) -> None:
    assert root(LEAVES[:size]) == ROOTS[size]


def test_tree_builder_reaches_each_published_root() -> None:
    builder = TreeBuilder()
    seen = [builder.root()]
    for data in LEAVES:
        builder.add(data)
        seen.append(builder.root())

    assert seen == ROOTS
    assert builder.size == 8


def test_tree_builder_from_leaf_hashes_reaches_the_published_root() -> None:
    builder = TreeBuilder()
    for leaf in NODE[0]:
        builder.add_leaf_hash(leaf)

    assert builder.root() == ROOTS[8]


@pytest.mark.parametrize(("index", "size", "expected"), INCLUSION_VECTORS)
def test_inclusion_proof_matches_the_published_proof(
    index: int, size: int, expected: list[bytes]
) -> None:
    assert inclusion_proof(LEAVES[:size], index) == expected


@pytest.mark.parametrize(("size", "index", "expected"), NODE_ID_INCLUSION)
def test_inclusion_proof_matches_the_published_node_ids(
    size: int, index: int, expected: list[bytes]
) -> None:
    assert inclusion_proof(LEAVES[:size], index) == expected


@pytest.mark.parametrize(
    ("index", "size", "proof"), INCLUSION_VECTORS + [(x, n, p) for n, x, p in NODE_ID_INCLUSION]
)
def test_published_inclusion_proof_verifies_and_its_corruptions_do_not(
    index: int, size: int, proof: list[bytes]
) -> None:
    leaf = NODE[0][index]
    assert verify_inclusion(leaf, index, size, proof, ROOTS[size]) is True

    accepted = [
        name
        for name, probe in inclusion_probes(leaf, index, size, proof, ROOTS[size]).items()
        if verify_inclusion(*probe)
    ]
    assert accepted == []


@pytest.mark.parametrize(("old_size", "new_size", "expected"), CONSISTENCY_VECTORS)
def test_consistency_proof_matches_the_published_proof(
    old_size: int, new_size: int, expected: list[bytes]
) -> None:
    assert consistency_proof(LEAVES[:new_size], old_size) == expected


@pytest.mark.parametrize(("old_size", "new_size", "expected"), NODE_ID_CONSISTENCY)
def test_consistency_proof_matches_the_published_node_ids(
    old_size: int, new_size: int, expected: list[bytes]
) -> None:
    assert consistency_proof(LEAVES[:new_size], old_size) == expected


@pytest.mark.parametrize(
    ("old_size", "new_size", "proof"), CONSISTENCY_VECTORS + NODE_ID_CONSISTENCY
)
def test_published_consistency_proof_verifies_and_its_corruptions_do_not(
    old_size: int, new_size: int, proof: list[bytes]
) -> None:
    old_root, new_root = ROOTS[old_size], ROOTS[new_size]
    assert verify_consistency(old_size, new_size, old_root, new_root, proof) is True
    if not proof:
        return  # as in verify_test.go: the probes are for non-trivial proofs

    accepted = [
        name
        for name, probe in consistency_probes(old_size, new_size, old_root, new_root, proof).items()
        if verify_consistency(*probe)
    ]
    assert accepted == []


# verify_test.go, TestVerifyConsistency's table; "don't care" roots made 32 bytes long, and old
# size 0 held to the empty root (see verify_consistency).
ROOT_1, ROOT_2 = flipped(SOME_HASH, 1), flipped(SOME_HASH, 2)


@pytest.mark.parametrize(
    ("old_size", "new_size", "old_root", "new_root", "proof", "expected"),
    [
        (0, 0, ROOT_1, ROOT_2, [], False),
        (1, 1, ROOT_1, ROOT_2, [], False),
        (0, 0, EMPTY_ROOT, EMPTY_ROOT, [], True),
        (0, 1, EMPTY_ROOT, ROOT_2, [], True),
        (1, 1, ROOT_2, ROOT_2, [], True),
        (1, 2, ROOT_1, ROOT_2, [], False),
        (0, 0, EMPTY_ROOT, ROOT_2, [], False),
        (1, 1, EMPTY_ROOT, ROOT_2, [], False),
        (0, 0, EMPTY_ROOT, EMPTY_ROOT, [EMPTY_ROOT], False),
        (0, 1, EMPTY_ROOT, EMPTY_ROOT, [EMPTY_ROOT], False),
        (1, 1, EMPTY_ROOT, EMPTY_ROOT, [EMPTY_ROOT], False),
        (0, 1, ROOT_1, ROOT_2, [], False),
    ],
)
def test_verify_consistency_of_trivial_sizes(
    old_size: int,
    new_size: int,
    old_root: bytes,
    new_root: bytes,
    proof: list[bytes],
    expected: bool,
) -> None:
    assert verify_consistency(old_size, new_size, old_root, new_root, proof) is expected


def test_verify_inclusion_in_a_single_leaf_tree() -> None:
    # verify_test.go, TestVerifyInclusionSingleEntry: the leaf hash is the root.
    only = leaf_hash(b"data")

    assert verify_inclusion(only, 0, 1, [], only) is True
    assert verify_inclusion(b"", 0, 1, [], only) is False
    assert verify_inclusion(only, 0, 1, [], b"") is False
    assert verify_inclusion(b"", 0, 1, [], b"") is False


def test_an_inclusion_proof_alone_does_not_fix_the_tree_size() -> None:
    # RFC 9162's algorithm only uses the size to place the leaf: leaf 0 sits in the same place in
    # trees of 3 and 4 leaves, so the 4-leaf proof also "verifies" for size 3 against the 4-leaf
    # root. The size has to come with the root from the signed checkpoint, never from the proof.
    proof = inclusion_proof(LEAVES[:4], 0)

    assert verify_inclusion(NODE[0][0], 0, 3, proof, ROOTS[4]) is True
    assert verify_inclusion(NODE[0][0], 0, 3, proof, ROOTS[3]) is False


# --- Bad arguments and malformed proofs ----------------------------------------------------------


@pytest.mark.parametrize(
    ("size", "index"), [(0, 0), (0, 1), (1, 2), (0, 3), (7, 8), (7, 7), (3, -1)]
)
def test_inclusion_proof_refuses_a_position_outside_the_tree(size: int, index: int) -> None:
    with pytest.raises(ValueError, match="outside a tree"):
        inclusion_proof(LEAVES[:size], index)


@pytest.mark.parametrize(("new_size", "old_size"), [(0, 1), (5, 6), (8, 9), (3, -1)])
def test_consistency_proof_refuses_an_old_size_outside_the_tree(
    new_size: int, old_size: int
) -> None:
    with pytest.raises(ValueError, match="old size"):
        consistency_proof(LEAVES[:new_size], old_size)


@pytest.mark.parametrize(("index", "size"), [(0, 0), (1, 0), (2, 1), (1, 1), (-1, 3), (0, -1)])
def test_verify_inclusion_refuses_impossible_positions(index: int, size: int) -> None:
    with pytest.raises(ValueError, match="outside a tree"):
        verify_inclusion(NODE[0][0], index, size, [], ROOTS[1])


@pytest.mark.parametrize(("old_size", "new_size"), [(1, 0), (2, 1), (9, 8), (-1, 3), (-2, -1)])
def test_verify_consistency_refuses_sizes_out_of_order(old_size: int, new_size: int) -> None:
    with pytest.raises(ValueError, match="old size <= new size"):
        verify_consistency(old_size, new_size, ROOTS[1], ROOTS[1], [])


@pytest.mark.parametrize("leaf", [b"", b"\x00" * 31, b"\x00" * 33])
def test_tree_builder_refuses_a_leaf_hash_of_the_wrong_length(leaf: bytes) -> None:
    builder = TreeBuilder()
    builder.add(b"first")

    with pytest.raises(ValueError, match="32 bytes"):
        builder.add_leaf_hash(leaf)
    assert builder.size == 1
    assert builder.root() == leaf_hash(b"first")


GOOD_PROOF = INCLUSION_VECTORS[2][2]  # index 5 in the tree of 8
MALFORMED: list[Any] = [
    [*GOOD_PROOF[:2], GOOD_PROOF[2][:31]],
    [*GOOD_PROOF[:2], GOOD_PROOF[2] + b"\x00"],
    [*GOOD_PROOF[:2], GOOD_PROOF[2].hex()],
    [*GOOD_PROOF[:2], bytearray(GOOD_PROOF[2])],
    [*GOOD_PROOF[:2], None],
    [*GOOD_PROOF[:2], 7],
    b"".join(GOOD_PROOF),
    "".join(x.hex() for x in GOOD_PROOF),
    None,
    42,
    iter(GOOD_PROOF),
]


@pytest.mark.parametrize("proof", MALFORMED)
def test_verify_inclusion_answers_false_to_a_malformed_proof(proof: Any) -> None:
    assert verify_inclusion(NODE[0][5], 5, 8, proof, ROOTS[8]) is False


@pytest.mark.parametrize("proof", MALFORMED)
def test_verify_consistency_answers_false_to_a_malformed_proof(proof: Any) -> None:
    # The published 6 -> 8 proof has three elements too, in the same places.
    assert verify_consistency(6, 8, ROOTS[6], ROOTS[8], proof) is False


@pytest.mark.parametrize("bad", [b"", ROOTS[8][:31], ROOTS[8] + b"\x00", ROOTS[8].hex(), None])
def test_verifiers_answer_false_to_a_malformed_leaf_or_root(bad: Any) -> None:
    index, size, proof = INCLUSION_VECTORS[2]
    leaf = NODE[0][index]

    assert verify_inclusion(bad, index, size, proof, ROOTS[size]) is False
    assert verify_inclusion(leaf, index, size, proof, bad) is False
    assert verify_consistency(6, 8, bad, ROOTS[8], CONSISTENCY_VECTORS[2][2]) is False
    assert verify_consistency(6, 8, ROOTS[6], bad, CONSISTENCY_VECTORS[2][2]) is False


@PROPERTY
@given(
    leaf=st.binary(max_size=40),
    tree_root=st.binary(max_size=40),
    proof=st.lists(st.one_of(st.binary(max_size=40), st.binary(min_size=32, max_size=32))),
    size=st.integers(1, 2**70),
    data=st.data(),
)
def test_verifiers_never_raise_on_arbitrary_proofs(
    leaf: bytes, tree_root: bytes, proof: list[bytes], size: int, data: st.DataObject
) -> None:
    index = data.draw(st.integers(0, size - 1))
    old_size = data.draw(st.integers(0, size))

    assert isinstance(verify_inclusion(leaf, index, size, proof, tree_root), bool)
    assert isinstance(verify_consistency(old_size, size, leaf, tree_root, proof), bool)


# --- Properties ----------------------------------------------------------------------------------


@PROPERTY
@given(leaves=UNIQUE_LEAVES)
def test_tree_builder_root_equals_root_at_every_prefix(leaves: list[bytes]) -> None:
    from_data, from_hashes = TreeBuilder(), TreeBuilder()
    assert from_data.root() == root([])

    for size, data in enumerate(leaves, start=1):
        from_data.add(data)
        from_hashes.add_leaf_hash(leaf_hash(data))

        assert from_data.size == from_hashes.size == size
        assert from_data.root() == from_hashes.root() == root(leaves[:size])


@PROPERTY
@given(leaves=NONEMPTY_UNIQUE_LEAVES, position=st.integers(0, HASH_SIZE - 1))
def test_every_inclusion_proof_verifies_and_any_change_breaks_it(
    leaves: list[bytes], position: int
) -> None:
    size = len(leaves)
    roots = [root(leaves[:n]) for n in range(size + 1)]
    tree_root = roots[size]

    for index in range(size):
        leaf = leaf_hash(leaves[index])
        proof = inclusion_proof(leaves, index)
        assert verify_inclusion(leaf, index, size, proof, tree_root) is True

        # A flipped byte in the leaf, the root or any element of the proof.
        assert verify_inclusion(flipped(leaf, position), index, size, proof, tree_root) is False
        assert verify_inclusion(leaf, index, size, proof, flipped(tree_root, position)) is False
        for at in range(len(proof)):
            changed = with_element_flipped(proof, at, position)
            assert verify_inclusion(leaf, index, size, changed, tree_root) is False
        # Another index in the same tree.
        for other in range(size):
            if other != index:
                assert verify_inclusion(leaf, other, size, proof, tree_root) is False
        # Another size, with that tree's root (the pair a checkpoint signs)...
        for other in range(index + 1, size):
            assert verify_inclusion(leaf, index, other, proof, roots[other]) is False
        # ...or with this root, at the sizes verify_test.go probes: they change the proof's length.
        # (Not every size does: see test_an_inclusion_proof_alone_does_not_fix_the_tree_size.)
        for other in (size * 2, size // 2):
            if other > index:
                assert verify_inclusion(leaf, index, other, proof, tree_root) is False
        # Another root: an earlier tree's, or the empty tree's.
        for other_root in roots[:size]:
            assert verify_inclusion(leaf, index, size, proof, other_root) is False


@PROPERTY
@given(leaves=UNIQUE_LEAVES, position=st.integers(0, HASH_SIZE - 1))
def test_every_consistency_proof_verifies_and_any_change_breaks_it(
    leaves: list[bytes], position: int
) -> None:
    new_size = len(leaves)
    roots = [root(leaves[:n]) for n in range(new_size + 1)]
    new_root = roots[new_size]
    proofs = [consistency_proof(leaves, old_size) for old_size in range(new_size + 1)]

    for old_size, proof in enumerate(proofs):
        old_root = roots[old_size]
        assert verify_consistency(old_size, new_size, old_root, new_root, proof) is True

        changed_old = flipped(old_root, position)
        assert verify_consistency(old_size, new_size, changed_old, new_root, proof) is False
        if old_size > 0 or new_size == 0:
            # The empty tree is a prefix of every tree: nothing about the new root is claimed.
            changed_new = flipped(new_root, position)
            assert verify_consistency(old_size, new_size, old_root, changed_new, proof) is False
        for at in range(len(proof)):
            changed = with_element_flipped(proof, at, position)
            assert verify_consistency(old_size, new_size, old_root, new_root, changed) is False
        if proof:
            truncated, extended = proof[:-1], [*proof, new_root]
            assert verify_consistency(old_size, new_size, old_root, new_root, truncated) is False
            assert verify_consistency(old_size, new_size, old_root, new_root, extended) is False
        # The proof for another old size (only 0 and new_size share a proof: the empty one).
        for other_proof in proofs:
            if other_proof != proof:
                assert (
                    verify_consistency(old_size, new_size, old_root, new_root, other_proof) is False
                )
        # This proof offered for another new size, with that tree's root.
        if proof:
            for other in range(old_size, new_size):
                assert verify_consistency(old_size, other, old_root, roots[other], proof) is False


def rfc6962_mth(data: Sequence[bytes]) -> bytes:
    """RFC 6962 §2.1, MTH, transcribed literally (slices and all) as an independent reference."""
    if not data:
        return EMPTY_ROOT
    if len(data) == 1:
        return leaf_hash(data[0])
    k = 1 << ((len(data) - 1).bit_length() - 1)
    return node_hash(rfc6962_mth(data[:k]), rfc6962_mth(data[k:]))


def rfc6962_path(m: int, data: Sequence[bytes]) -> list[bytes]:
    """RFC 6962 §2.1.1, PATH(m, D[n])."""
    if len(data) == 1:
        return []
    k = 1 << ((len(data) - 1).bit_length() - 1)
    if m < k:
        return [*rfc6962_path(m, data[:k]), rfc6962_mth(data[k:])]
    return [*rfc6962_path(m - k, data[k:]), rfc6962_mth(data[:k])]


def rfc6962_subproof(m: int, data: Sequence[bytes], whole: bool) -> list[bytes]:
    """RFC 6962 §2.1.2, SUBPROOF(m, D[n], b)."""
    if m == len(data):
        return [] if whole else [rfc6962_mth(data)]
    k = 1 << ((len(data) - 1).bit_length() - 1)
    if m <= k:
        return [*rfc6962_subproof(m, data[:k], whole), rfc6962_mth(data[k:])]
    return [*rfc6962_subproof(m - k, data[k:], False), rfc6962_mth(data[:k])]


@PROPERTY
@given(leaves=st.lists(st.binary(max_size=12), max_size=40))
def test_root_and_proofs_equal_the_rfc_6962_definitions(leaves: list[bytes]) -> None:
    assert root(leaves) == rfc6962_mth(leaves)
    for index in range(len(leaves)):
        assert inclusion_proof(leaves, index) == rfc6962_path(index, leaves)
    for old_size in range(1, len(leaves) + 1):
        assert consistency_proof(leaves, old_size) == rfc6962_subproof(old_size, leaves, True)
    assert consistency_proof(leaves, 0) == []
