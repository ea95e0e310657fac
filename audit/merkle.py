"""Merkle tree hashing, inclusion and consistency proofs as in RFC 6962 §2.1 / RFC 9162 §2.1.

SHA-256 throughout. Standard library only and no Django: this module is copied as is into the
standalone verifier, so it must stay self-contained.

Two kinds of failure, kept apart on purpose:

- A call that cannot mean anything (a negative size, an index outside the tree, an old size
  larger than the new one, a leaf hash that is not 32 bytes) raises `ValueError`; the caller has a
  bug or has not checked its own inputs.
- A proof or hash that does not check out, or is malformed (wrong length, wrong type, too few or
  too many elements), makes `verify_inclusion` / `verify_consistency` return False. They never
  raise on what a proof contains, because that comes from whoever is being audited.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

__all__ = [
    "EMPTY_ROOT",
    "HASH_SIZE",
    "TreeBuilder",
    "consistency_proof",
    "inclusion_proof",
    "leaf_hash",
    "node_hash",
    "root",
    "verify_consistency",
    "verify_inclusion",
]

HASH_SIZE = 32
# MTH({}) = SHA-256() (RFC 6962 §2.1).
EMPTY_ROOT: bytes = hashlib.sha256(b"").digest()

_LEAF_PREFIX = b"\x00"
_NODE_PREFIX = b"\x01"


def leaf_hash(data: bytes) -> bytes:
    """MTH({d0}) = SHA-256(0x00 || d0)."""
    return hashlib.sha256(_LEAF_PREFIX + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """SHA-256(0x01 || left || right): the domain separation from leaves blocks second preimages."""
    return hashlib.sha256(_NODE_PREFIX + left + right).digest()


def root(leaves: Sequence[bytes]) -> bytes:
    """MTH(D[n]) over the leaf *data* `leaves`."""
    if not leaves:
        return EMPTY_ROOT
    return _subtree_root([leaf_hash(data) for data in leaves], 0, len(leaves))


class TreeBuilder:
    """Streaming MTH of a growing list of leaves in O(log n) memory.

    Holds the roots of the perfect subtrees the leaves so far decompose into, largest (leftmost)
    first: one per set bit of `size`.
    """

    __slots__ = ("_size", "_stack")

    def __init__(self) -> None:
        self._size = 0
        self._stack: list[bytes] = []

    @property
    def size(self) -> int:
        return self._size

    def add(self, data: bytes) -> None:
        """Append a leaf given by its data."""
        self.add_leaf_hash(leaf_hash(data))

    def add_leaf_hash(self, h: bytes) -> None:
        """Append a leaf given by its leaf hash (`leaf_hash(data)`)."""
        if not _is_hash(h):
            raise ValueError(f"a leaf hash is {HASH_SIZE} bytes")
        self._stack.append(h)
        # Each trailing 1 bit of the old size is a perfect subtree the same size as the one just
        # completed: merge them, as a binary counter carries.
        carries = self._size
        while carries & 1:
            right = self._stack.pop()
            self._stack[-1] = node_hash(self._stack[-1], right)
            carries >>= 1
        self._size += 1

    def root(self) -> bytes:
        """MTH of the leaves added so far; the builder stays usable."""
        if not self._stack:
            return EMPTY_ROOT
        # RFC 6962 splits at the largest power of two below n, so the root is the perfect
        # subtrees folded from the right.
        result = self._stack[-1]
        for left in reversed(self._stack[:-1]):
            result = node_hash(left, result)
        return result


def inclusion_proof(leaves: Sequence[bytes], index: int) -> list[bytes]:
    """PATH(index, D[n]) (RFC 6962 §2.1.1) over the leaf data `leaves`, deepest sibling first."""
    size = len(leaves)
    if not 0 <= index < size:
        raise ValueError(f"leaf index {index} is outside a tree of {size} leaves")
    hashes = [leaf_hash(data) for data in leaves]
    # Walk down from the root, taking the sibling subtree at each level; PATH lists them bottom-up.
    path: list[bytes] = []
    low, high = 0, size
    while high - low > 1:
        middle = low + _split(high - low)
        if index < middle:
            path.append(_subtree_root(hashes, middle, high))
            high = middle
        else:
            path.append(_subtree_root(hashes, low, middle))
            low = middle
    path.reverse()
    return path


def consistency_proof(leaves: Sequence[bytes], old_size: int) -> list[bytes]:
    """PROOF(old_size, D[n]) (RFC 6962 §2.1.2) over the leaf data `leaves`.

    Empty when `old_size` is 0 or n: those are consistent without evidence.
    """
    size = len(leaves)
    if not 0 <= old_size <= size:
        raise ValueError(f"old size {old_size} is outside 0..{size}")
    if old_size in (0, size):
        return []
    hashes = [leaf_hash(data) for data in leaves]
    # SUBPROOF(m, D[low:high], b), unrolled: descend until the old tree is a whole subtree, noting
    # the siblings passed on the way; they are listed bottom-up.
    proof: list[bytes] = []
    low, high, remaining, old_tree_whole = 0, size, old_size, True
    while remaining != high - low:
        middle = low + _split(high - low)
        if remaining <= middle - low:
            proof.append(_subtree_root(hashes, middle, high))
            high = middle
        else:
            proof.append(_subtree_root(hashes, low, middle))
            remaining -= middle - low
            low = middle
            old_tree_whole = False
    if not old_tree_whole:
        # The verifier knows MTH(D[0:m]) only when m is the whole subtree reached with b = true.
        proof.append(_subtree_root(hashes, low, high))
    proof.reverse()
    return proof


def verify_inclusion(
    leaf: bytes, index: int, size: int, proof: Sequence[bytes], root: bytes
) -> bool:
    """Whether `proof` shows the leaf *hash* `leaf` at `index` in the tree of `size` with `root`.

    RFC 9162 §2.1.3.2. Raises ValueError unless 0 <= index < size.
    """
    if not 0 <= index < size:
        raise ValueError(f"leaf index {index} is outside a tree of {size} leaves")
    if not (_is_hash(leaf) and _is_hash(root) and _all_hashes(proof)):
        return False
    node, last = index, size - 1
    computed = leaf
    for sibling in proof:
        if last == 0:
            return False  # more elements than the tree has levels
        if node & 1 or node == last:
            computed = node_hash(sibling, computed)
            # A right-edge node without a right sibling is promoted unchanged: skip those levels.
            while not node & 1 and node != 0:
                node >>= 1
                last >>= 1
        else:
            computed = node_hash(computed, sibling)
        node >>= 1
        last >>= 1
    return last == 0 and computed == root


def verify_consistency(
    old_size: int, new_size: int, old_root: bytes, new_root: bytes, proof: Sequence[bytes]
) -> bool:
    """Whether `proof` shows the tree (`new_size`, `new_root`) extends (`old_size`, `old_root`).

    RFC 9162 §2.1.4.2. Equal sizes need an empty proof and equal roots; old size 0 needs an empty
    proof and `old_root` == EMPTY_ROOT (stricter than the RFC, which leaves it unchecked). Raises
    ValueError unless 0 <= old_size <= new_size.
    """
    if not 0 <= old_size <= new_size:
        raise ValueError(f"sizes {old_size} and {new_size} are not 0 <= old size <= new size")
    if not (_is_hash(old_root) and _is_hash(new_root) and _all_hashes(proof)):
        return False
    if old_size == new_size:
        return not proof and old_root == new_root
    if old_size == 0:
        return not proof and old_root == EMPTY_ROOT
    if not proof:
        return False
    path = list(proof)
    if old_size & (old_size - 1) == 0:
        # The old tree is a whole subtree of the new one, so PROOF leaves its root out.
        path.insert(0, old_root)
    node, last = old_size - 1, new_size - 1
    while node & 1:
        node >>= 1
        last >>= 1
    old_computed = new_computed = path[0]
    for sibling in path[1:]:
        if last == 0:
            return False
        if node & 1 or node == last:
            old_computed = node_hash(sibling, old_computed)
            new_computed = node_hash(sibling, new_computed)
            while not node & 1 and node != 0:
                node >>= 1
                last >>= 1
        else:
            new_computed = node_hash(new_computed, sibling)
        node >>= 1
        last >>= 1
    return last == 0 and old_computed == old_root and new_computed == new_root


def _split(count: int) -> int:
    """k: the largest power of two smaller than `count` (count >= 2)."""
    return 1 << ((count - 1).bit_length() - 1)


def _subtree_root(hashes: Sequence[bytes], low: int, high: int) -> bytes:
    """MTH(D[low:high]) from leaf hashes; recursion depth is the tree height."""
    if high - low == 1:
        return hashes[low]
    middle = low + _split(high - low)
    return node_hash(_subtree_root(hashes, low, middle), _subtree_root(hashes, middle, high))


def _is_hash(value: object) -> bool:
    return isinstance(value, bytes) and len(value) == HASH_SIZE


def _all_hashes(values: object) -> bool:
    return isinstance(values, Sequence) and all(_is_hash(value) for value in values)
