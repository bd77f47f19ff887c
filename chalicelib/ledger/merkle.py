"""RFC 9162 (Certificate Transparency v2) Merkle tree hashing and proofs.

leaf = SHA-256(0x00 || line), node = SHA-256(0x01 || left || right); the
hash of the empty tree is SHA-256 of nothing. A tree of n > 1 leaves splits
at k, the largest power of two smaller than n (not at the midpoint), so
roots and proofs agree with every other RFC 6962/9162 implementation: a log
only one implementation can check proves nothing to anyone else.

Everything here works on leaf *hashes*; :func:`leaf_hash` makes them.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

HASH_SIZE = 32
EMPTY_ROOT = hashlib.sha256(b"").digest()


class ProofError(ValueError):
    """A proof was asked for sizes or indexes the tree does not have."""


def leaf_hash(line: bytes) -> bytes:
    """The hash of one stored line."""
    return hashlib.sha256(b"\x00" + line).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """The hash of an interior node."""
    return hashlib.sha256(b"\x01" + left + right).digest()


def split_point(size: int) -> int:
    """The largest power of two smaller than ``size`` (``size`` > 1)."""
    return 1 << ((size - 1).bit_length() - 1)


def root(leaves: Sequence[bytes]) -> bytes:
    """The tree head of ``leaves`` (leaf hashes), in one pass.

    Leaves are folded into perfect subtrees as they come (a compact range);
    the remaining subtrees, largest first, are then joined right to left,
    which is exactly the RFC's split at the largest power of two.
    """
    if not leaves:
        return EMPTY_ROOT
    stack: list[tuple[int, bytes]] = []
    for leaf in leaves:
        size, value = 1, leaf
        while stack and stack[-1][0] == size:
            left_size, left = stack.pop()
            size, value = left_size + size, node_hash(left, value)
        stack.append((size, value))
    value = stack[-1][1]
    for _, left in reversed(stack[:-1]):
        value = node_hash(left, value)
    return value


def aligned_subtrees(first: int, leaves: Sequence[bytes]) -> list[tuple[int, bytes]]:
    """The fewest perfect subtrees, ``(size, hash)`` left to right, that hold ``leaves``.

    ``leaves`` are the leaf hashes at indexes ``first`` onwards. Each subtree
    is one the whole tree has (it starts at a multiple of its size), so a
    tree of ``first`` leaves takes them with :meth:`CompactRange.extend_subtrees`
    at a cost of a few hashes: the hashing itself can be done elsewhere.
    """
    left: list[tuple[int, bytes]] = []
    right: list[tuple[int, bytes]] = []
    nodes = list(leaves)
    index, width = first, 1
    sha256 = hashlib.sha256
    while nodes:
        # A node whose sibling lies before ``first`` (odd index) or after the
        # last leaf (odd one out) is as high as its subtree goes.
        if index & 1:
            left.append((width, nodes[0]))
            nodes = nodes[1:]
            index += 1
        if len(nodes) & 1:
            right.append((width, nodes.pop()))
        pairs = zip(nodes[::2], nodes[1::2], strict=True)
        nodes = [sha256(b"\x01" + a + b).digest() for a, b in pairs]
        index, width = index >> 1, width << 1
    right.reverse()
    return left + right


class CompactRange:
    """The tree of every leaf so far, kept as its perfect subtrees, largest first.

    What the ledger carries from one object to the next: appending a leaf
    costs amortised one node hash, the root costs one hash per subtree
    (at most 64), and the whole state is a few hundred bytes however large
    the log grows. ``root()`` equals :func:`root` over the same leaves.
    """

    __slots__ = ("_subtrees",)

    def __init__(self, subtrees: Sequence[tuple[int, bytes]] = ()) -> None:
        self._subtrees = list(subtrees)

    @property
    def size(self) -> int:
        """How many leaves the tree has."""
        return sum(size for size, _ in self._subtrees)

    @property
    def subtrees(self) -> tuple[tuple[int, bytes], ...]:
        """``(size, hash)`` of each perfect subtree, largest first."""
        return tuple(self._subtrees)

    def append(self, leaf: bytes) -> None:
        """Add one leaf hash."""
        size, value = 1, leaf
        subtrees = self._subtrees
        while subtrees and subtrees[-1][0] == size:
            left_size, left = subtrees.pop()
            size, value = left_size + size, node_hash(left, value)
        subtrees.append((size, value))

    def extend_subtrees(self, subtrees: Sequence[tuple[int, bytes]]) -> None:
        """Add the perfect subtrees (``(size, hash)``, left to right) that follow this tree.

        They are what :func:`aligned_subtrees` gives for leaves starting at
        :attr:`size`; each then starts at a multiple of its own size.

        Raises
        ------
        ValueError
            When a subtree would not start at a multiple of its size.
        """
        position = self.size
        for size, _ in subtrees:
            if size < 1 or size & (size - 1) or position % size:
                raise ValueError(f"a subtree of {size} cannot start at leaf {position}")
            position += size
        own = self._subtrees
        for size, value in subtrees:
            while own and own[-1][0] == size:
                left_size, left = own.pop()
                size, value = left_size + size, node_hash(left, value)
            own.append((size, value))

    def root(self) -> bytes:
        """The tree head."""
        if not self._subtrees:
            return EMPTY_ROOT
        value = self._subtrees[-1][1]
        for _, left in reversed(self._subtrees[:-1]):
            value = node_hash(left, value)
        return value

    def copy(self) -> CompactRange:
        """An independent copy (to append to without changing this one)."""
        return CompactRange(self._subtrees)

    def to_json(self) -> list[list[object]]:
        """``[[size, hex], ...]``: the stored form."""
        return [[size, value.hex()] for size, value in self._subtrees]

    @classmethod
    def from_json(cls, value: object) -> CompactRange:
        """Parse :meth:`to_json`'s form.

        Raises
        ------
        ValueError
            When it is not a list of decreasing powers of two with 32-byte hashes.
        """
        if not isinstance(value, list):
            raise ValueError("a compact range is a list")
        subtrees: list[tuple[int, bytes]] = []
        for entry in value:
            if not (isinstance(entry, list) and len(entry) == 2):
                raise ValueError("a compact range entry is [size, hex]")
            size, text = entry
            if not isinstance(size, int) or size < 1 or size & (size - 1):
                raise ValueError(f"subtree size {size!r} is not a power of two")
            if subtrees and size >= subtrees[-1][0]:
                raise ValueError("subtree sizes must decrease")
            digest = bytes.fromhex(str(text))
            if len(digest) != HASH_SIZE:
                raise ValueError("a subtree hash is 32 bytes")
            subtrees.append((size, digest))
        return cls(subtrees)


def inclusion_proof(leaves: Sequence[bytes], index: int) -> list[bytes]:
    """The audit path of leaf ``index`` in the tree of ``leaves`` (RFC 9162 PATH).

    Raises
    ------
    ProofError
        When ``index`` is not a leaf of the tree.
    """
    if not 0 <= index < len(leaves):
        raise ProofError(f"leaf {index} is not in a tree of {len(leaves)}")
    path: list[bytes] = []
    low, high = 0, len(leaves)
    # Walk down from the root, remembering the sibling subtree at each level.
    while high - low > 1:
        k = split_point(high - low)
        if index < low + k:
            path.append(root(leaves[low + k : high]))
            high = low + k
        else:
            path.append(root(leaves[low : low + k]))
            low += k
    path.reverse()  # the RFC lists siblings from the leaf up
    return path


def verify_inclusion(
    leaf: bytes, index: int, size: int, path: Sequence[bytes], expected_root: bytes
) -> bool:
    """Whether ``path`` proves ``leaf`` is leaf ``index`` of the tree of ``size`` with that root."""
    if not 0 <= index < size:
        return False
    fn, sn, value = index, size - 1, leaf
    for sibling in path:
        if sn == 0 or len(sibling) != HASH_SIZE:
            return False
        if fn & 1 or fn == sn:
            value = node_hash(sibling, value)
            while fn and not fn & 1:
                fn >>= 1
                sn >>= 1
        else:
            value = node_hash(value, sibling)
        fn >>= 1
        sn >>= 1
    return sn == 0 and value == expected_root


def consistency_proof(leaves: Sequence[bytes], first: int) -> list[bytes]:
    """The proof that the tree of ``leaves[:first]`` is a prefix of the tree of ``leaves``.

    Raises
    ------
    ProofError
        Unless 0 < first <= len(leaves).
    """
    second = len(leaves)
    if not 0 < first <= second:
        raise ProofError(f"no consistency proof from {first} to {second}")
    return _subproof(leaves, first, 0, second, complete=True)


def _subproof(
    leaves: Sequence[bytes], m: int, low: int, high: int, *, complete: bool
) -> list[bytes]:
    n = high - low
    if m == n:
        return [] if complete else [root(leaves[low:high])]
    k = split_point(n)
    if m <= k:
        return [
            *_subproof(leaves, m, low, low + k, complete=complete),
            root(leaves[low + k : high]),
        ]
    return [*_subproof(leaves, m - k, low + k, high, complete=False), root(leaves[low : low + k])]


def verify_consistency(
    first: int, second: int, first_root: bytes, second_root: bytes, path: Sequence[bytes]
) -> bool:
    """Whether ``path`` proves the tree of ``first`` leaves is a prefix of that of ``second``."""
    if not 0 <= first <= second:
        return False
    if first == second:
        return not path and first_root == second_root
    if first == 0:
        return not path  # the empty tree is a prefix of every tree
    if not path or any(len(node) != HASH_SIZE for node in path):
        return False
    nodes = list(path)
    if first & (first - 1) == 0:  # a power of two: the old root is a node of the new tree
        nodes.insert(0, first_root)
    heads = _replay_consistency(first - 1, second - 1, nodes)
    return heads == (first_root, second_root)


def _replay_consistency(fn: int, sn: int, nodes: list[bytes]) -> tuple[bytes, bytes] | None:
    """RFC 9162 section 2.1.4.2, steps 3 to 7: both heads, or None when the path is malformed."""
    while fn & 1:
        fn >>= 1
        sn >>= 1
    first_value = second_value = nodes[0]
    for node in nodes[1:]:
        if sn == 0:
            return None
        if fn & 1 or fn == sn:
            first_value = node_hash(node, first_value)
            second_value = node_hash(node, second_value)
            while fn and not fn & 1:
                fn >>= 1
                sn >>= 1
        else:
            second_value = node_hash(second_value, node)
        fn >>= 1
        sn >>= 1
    return (first_value, second_value) if sn == 0 else None
