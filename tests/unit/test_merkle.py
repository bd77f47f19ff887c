"""RFC 9162 Merkle hashing and proofs, against the Certificate Transparency reference
vectors (RFC 6962 test data), a recursive reference built from the RFC's definitions,
and every leaf and size of larger trees with tampering rejected.
"""

from __future__ import annotations

import hashlib
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chalicelib.ledger.merkle import (
    EMPTY_ROOT,
    ProofError,
    consistency_proof,
    inclusion_proof,
    leaf_hash,
    node_hash,
    root,
    verify_consistency,
    verify_inclusion,
)

ENTRIES = [
    bytes.fromhex(h)
    for h in (
        "",
        "00",
        "10",
        "2021",
        "3031",
        "40414243",
        "5051525354555657",
        "606162636465666768696a6b6c6d6e6f",
    )
]
LEAVES = [leaf_hash(entry) for entry in ENTRIES]
ROOTS = [
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
]
INCLUSION = [
    (0, 8, ["96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4"]),
    (5, 8, ["bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"]),
]  # fmt: skip
CONSISTENCY = [
    (2, 8, ["5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4"]),
    (6, 8, ["0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"]),
    (2, 5, ["5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b"]),
]  # fmt: skip


def reference_root(leaves: list[bytes]) -> bytes:
    """MTH as the RFC defines it, recursively."""
    if not leaves:
        return hashlib.sha256(b"").digest()
    if len(leaves) == 1:
        return leaves[0]
    k = 1
    while k * 2 < len(leaves):
        k *= 2
    return node_hash(reference_root(leaves[:k]), reference_root(leaves[k:]))


@pytest.mark.parametrize("size", range(9))
def test_roots_match_the_reference_vectors(size: int) -> None:
    assert root(LEAVES[:size]).hex() == ROOTS[size]


def test_the_split_is_the_largest_power_of_two_not_the_midpoint() -> None:
    leaves = LEAVES[:5]
    midpoint = node_hash(root(leaves[:3]), root(leaves[3:]))
    assert root(leaves) != midpoint
    assert root(leaves) == node_hash(root(leaves[:4]), leaves[4])
    assert root([]) == EMPTY_ROOT


@pytest.mark.parametrize(("index", "size", "path"), INCLUSION)
def test_inclusion_proofs_match_the_reference_vectors(
    index: int, size: int, path: list[str]
) -> None:
    proof = inclusion_proof(LEAVES[:size], index)
    assert [node.hex() for node in proof] == path
    assert verify_inclusion(LEAVES[index], index, size, proof, root(LEAVES[:size]))


@pytest.mark.parametrize(("first", "second", "path"), CONSISTENCY)
def test_consistency_proofs_match_the_reference_vectors(
    first: int, second: int, path: list[str]
) -> None:
    proof = consistency_proof(LEAVES[:second], first)
    assert [node.hex() for node in proof] == path
    assert verify_consistency(first, second, root(LEAVES[:first]), root(LEAVES[:second]), proof)


MANY = [leaf_hash(bytes([n, n * 7 % 256])) for n in range(40)]


def test_every_leaf_of_every_size_proves_and_tampering_fails() -> None:
    # A claimed size is not checked here: like RFC 9162, the ledger commits to
    # sizes in its signed checkpoints, and a proof alone cannot pin one.
    for size in range(1, len(MANY) + 1):
        tree = MANY[:size]
        head = root(tree)
        assert head == reference_root(tree)
        for index in range(size):
            proof = inclusion_proof(tree, index)
            assert verify_inclusion(tree[index], index, size, proof, head)
            assert not verify_inclusion(leaf_hash(b"forged"), index, size, proof, head)
            if size > 1:
                assert not verify_inclusion(tree[index], (index + 1) % size, size, proof, head)
                assert not verify_inclusion(tree[index], index, size, proof[:-1], head)
                flipped = [bytes([proof[0][0] ^ 1]) + proof[0][1:], *proof[1:]]
                assert not verify_inclusion(tree[index], index, size, flipped, head)


def test_every_pair_of_sizes_is_consistent_and_a_rewritten_history_is_not() -> None:
    for second in range(1, 25):
        for first in range(1, second + 1):
            proof = consistency_proof(MANY[:second], first)
            old, new = root(MANY[:first]), root(MANY[:second])
            assert verify_consistency(first, second, old, new, proof)
            rewritten = root([leaf_hash(b"rewritten"), *MANY[1:first]])
            assert not verify_consistency(first, second, rewritten, new, proof)
            if first < second:
                assert not verify_consistency(first, second, old, new, proof[:-1])


def test_edge_cases() -> None:
    assert verify_consistency(0, 5, EMPTY_ROOT, root(MANY[:5]), [])
    assert verify_consistency(3, 3, root(MANY[:3]), root(MANY[:3]), [])
    assert not verify_consistency(3, 3, root(MANY[:3]), root(MANY[:4]), [])
    assert not verify_consistency(4, 3, root(MANY[:3]), root(MANY[:4]), [])
    assert not verify_inclusion(MANY[0], 0, 0, [], EMPTY_ROOT)
    with pytest.raises(ProofError):
        inclusion_proof(MANY[:3], 3)
    with pytest.raises(ProofError):
        consistency_proof(MANY[:3], 0)


@settings(max_examples=100, deadline=None)
@given(st.lists(st.binary(max_size=16), min_size=1, max_size=70), st.data())
def test_proofs_hold_for_arbitrary_trees(lines: list[bytes], data: st.DataObject) -> None:
    leaves = [leaf_hash(line) for line in lines]
    index = data.draw(st.integers(0, len(leaves) - 1))
    first = data.draw(st.integers(1, len(leaves)))
    assert root(leaves) == reference_root(leaves)
    assert verify_inclusion(
        leaves[index], index, len(leaves), inclusion_proof(leaves, index), root(leaves)
    )
    assert verify_consistency(
        first, len(leaves), root(leaves[:first]), root(leaves), consistency_proof(leaves, first)
    )


@settings(max_examples=300, deadline=None)
@given(st.integers(1, 70), st.data())
def test_a_path_built_from_a_frontier_is_the_path_over_all_leaves(size: int, data: Any) -> None:
    from chalicelib.ledger.merkle import CompactRange
    from chalicelib.ledger.proof import inclusion_path

    leaves = [leaf_hash(str(n).encode()) for n in range(size)]
    start = data.draw(st.integers(0, size - 1))
    index = data.draw(st.integers(start, size - 1))
    before = CompactRange()
    for leaf in leaves[:start]:
        before.append(leaf)

    path = inclusion_path(before.subtrees, leaves[start:], index)

    assert path == inclusion_proof(leaves, index)
    assert verify_inclusion(leaves[index], index, size, path, root(leaves))


def test_a_leaf_outside_the_object_has_no_path_from_its_frontier() -> None:
    from chalicelib.ledger.merkle import CompactRange, ProofError
    from chalicelib.ledger.proof import inclusion_path

    leaves = [leaf_hash(bytes([n])) for n in range(9)]
    before = CompactRange()
    for leaf in leaves[:5]:
        before.append(leaf)

    with pytest.raises(ProofError, match="not in this object"):
        inclusion_path(before.subtrees, leaves[5:], 4)


@settings(max_examples=300, deadline=None)
@given(st.integers(0, 300), st.lists(st.integers(0, 40), min_size=1, max_size=5))
def test_subtrees_hashed_elsewhere_give_the_tree_of_appending_each_leaf(
    first: int, chunks: list[int]
) -> None:
    from chalicelib.ledger.merkle import CompactRange, aligned_subtrees

    one_by_one, in_bulk = CompactRange(), CompactRange()
    for n in range(first):
        one_by_one.append(leaf_hash(b"%d" % n))
    in_bulk = one_by_one.copy()
    position = first
    for chunk in chunks:
        leaves = [leaf_hash(b"%d" % n) for n in range(position, position + chunk)]
        subtrees = aligned_subtrees(position, leaves)
        for leaf in leaves:
            one_by_one.append(leaf)
        in_bulk.extend_subtrees(subtrees)
        position += chunk

        assert sum(size for size, _ in subtrees) == chunk
        assert in_bulk.subtrees == one_by_one.subtrees
    assert in_bulk.root() == root([leaf_hash(b"%d" % n) for n in range(position)])


@pytest.mark.parametrize(
    ("held", "subtree_size", "problem"),
    [
        (1, 2, "a subtree of 2 cannot start at leaf 1"),
        (6, 4, "a subtree of 4 cannot start at leaf 6"),
        (0, 3, "a subtree of 3 cannot start at leaf 0"),
        (0, 0, "a subtree of 0 cannot start at leaf 0"),
    ],
)
def test_a_subtree_that_does_not_start_at_a_multiple_of_its_size_is_refused(
    held: int, subtree_size: int, problem: str
) -> None:
    from chalicelib.ledger.merkle import CompactRange

    tree = CompactRange()
    for n in range(held):
        tree.append(leaf_hash(bytes([n])))
    before = tree.subtrees

    with pytest.raises(ValueError, match=problem):
        tree.extend_subtrees([(subtree_size, leaf_hash(b"x"))])
    assert tree.subtrees == before
