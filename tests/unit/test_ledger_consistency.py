"""Consistency proofs: built from pieces of the tree, written, and checked offline.

Proofs built from a frontier and the leaves after it are the RFC's own
(:func:`chalicelib.ledger.merkle.consistency_proof`); a proof document
round-trips through JSON and checks with only the stage's public key; every
field changed on its own is refused.
"""

from __future__ import annotations

import base64
import copy
import json
import random
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from chalicelib.aws.signers import LocalSigner
from chalicelib.ledger.checks import SignedDigest
from chalicelib.ledger.consistency import (
    Pieces,
    RecordingRange,
    build_consistency_proof,
    check_consistency_proof,
    check_consistent,
    check_sizes,
)
from chalicelib.ledger.findings import Report
from chalicelib.ledger.layout import canonical
from chalicelib.ledger.merkle import (
    CompactRange,
    ProofError,
    aligned_subtrees,
    consistency_proof,
    leaf_hash,
    root,
)
from chalicelib.ledger.records import Digest

LEAVES = [leaf_hash(b"line %d" % number) for number in range(40)]


def compact(leaves: list[bytes]) -> CompactRange:
    tree = CompactRange()
    for leaf in leaves:
        tree.append(leaf)
    return tree


# --- building proofs from pieces --------------------------------------------------------------


def test_from_single_leaves_every_proof_is_the_rfcs() -> None:
    pieces = Pieces([(1, leaf) for leaf in LEAVES])

    for second in range(1, len(LEAVES) + 1):
        for first in range(1, second + 1):
            assert pieces.consistency_proof(first, second) == consistency_proof(
                LEAVES[:second], first
            ), (first, second)
        assert pieces.root(0, second) == root(LEAVES[:second])


def test_from_a_frontier_and_the_objects_after_it_every_proof_is_the_rfcs() -> None:
    # As the verifier has them: the earlier digest's tree as its compact range,
    # then each object's leaves as the tree's own subtrees; sizes at object ends.
    chunks = random.Random(7)
    for start in range(len(LEAVES)):
        pieces = Pieces(compact(LEAVES[:start]).subtrees)
        ends, position = [start], start
        while position < len(LEAVES):
            end = min(len(LEAVES), position + chunks.randint(1, 9))
            for size, value in aligned_subtrees(position, LEAVES[position:end]):
                pieces.add(size, value)
            ends.append(end)
            position = end
        for first in ends:
            for second in (end for end in ends if first <= end):
                if first:
                    assert pieces.consistency_proof(first, second) == consistency_proof(
                        LEAVES[:second], first
                    ), (start, first, second)


def test_a_node_inside_a_piece_or_past_the_end_is_not_known() -> None:
    pieces = Pieces(compact(LEAVES[:8]).subtrees)  # one subtree of 8

    with pytest.raises(ProofError, match="not known"):
        pieces.root(0, 4)
    with pytest.raises(ProofError, match=r"the leaves 2\.\.2 are not known"):
        pieces.consistency_proof(3, 8)
    with pytest.raises(ProofError, match="no consistency proof from 8 to 9"):
        pieces.consistency_proof(8, 9)
    with pytest.raises(ProofError, match="no consistency proof from 0 to 8"):
        pieces.consistency_proof(0, 8)


def test_a_recording_range_is_a_compact_range_that_keeps_its_pieces() -> None:
    recording, plain = RecordingRange(compact(LEAVES[:5]).subtrees), compact(LEAVES[:5])
    recording.extend_subtrees(aligned_subtrees(5, LEAVES[5:12]))
    plain.extend_subtrees(aligned_subtrees(5, LEAVES[5:12]))
    for leaf in LEAVES[12:15]:
        recording.append(leaf)
        plain.append(leaf)

    assert recording.subtrees == plain.subtrees
    assert recording.pieces.size == 15
    assert recording.pieces.consistency_proof(5, 15) == consistency_proof(LEAVES[:15], 5)


@pytest.mark.parametrize(
    ("old", "new", "size", "message"),
    [
        (0, 5, 9, "at least 1"),
        (6, 5, 9, "larger than the newer size"),
        (3, 10, 9, "holds 9 events: there is no tree of 10"),
    ],
)
def test_sizes_the_ledger_does_not_have_are_refused(
    old: int, new: int, size: int, message: str
) -> None:
    with pytest.raises(ProofError, match=message):
        check_sizes(old, new, size)
    check_sizes(1, size, size)


# --- the verifier's check between two signed digests --------------------------------------------


def digest_of(size: int, head: bytes) -> Digest:
    return Digest("test", None, "2027-01-15T08:00:00Z", size, head.hex(), (), (), None, "kid")


def test_successive_digests_over_the_same_history_are_consistent() -> None:
    earlier = SignedDigest("d1", digest_of(7, root(LEAVES[:7])), "sig")
    report = Report()

    check_consistent(earlier, "d2", digest_of(20, root(LEAVES[:20])), leaves_as_pieces(20), report)

    assert report.findings == []


def test_a_later_digest_over_another_history_is_inconsistent_digests() -> None:
    rewritten = [leaf_hash(b"rewritten"), *LEAVES[1:20]]
    earlier = SignedDigest("d1", digest_of(7, root(LEAVES[:7])), "sig")
    report = Report()

    # The later digest signs the rewritten tree; the leaves read are that tree's.
    check_consistent(
        earlier, "d2", digest_of(20, root(rewritten)), Pieces([(1, x) for x in rewritten]), report
    )

    assert [(f.kind, f.where) for f in report.findings] == [("inconsistent_digests", "d2")]
    assert "does not extend the tree of 7" in report.findings[0].detail


def leaves_as_pieces(size: int) -> Pieces:
    return Pieces([(1, leaf) for leaf in LEAVES[:size]])


# --- the proof document ------------------------------------------------------------------------

SIGNER_KEY = ec.generate_private_key(ec.SECP256R1())
SIGNER = LocalSigner(SIGNER_KEY)


def signed_digest(size: int, head: bytes, *, stage: str = "test") -> dict[str, Any]:
    document = Digest(
        stage, None, "2027-01-15T08:00:00Z", size, head.hex(), (), (), None, SIGNER.kid
    ).to_document()
    signature = base64.b64encode(SIGNER.sign(canonical(document))).decode()
    return {"digest": document, "signature": signature}


def proof_document(first: int = 7, second: int = 20, *, signed: bool = True) -> dict[str, Any]:
    old_root, new_root = root(LEAVES[:first]), root(LEAVES[:second])
    return json.loads(
        json.dumps(
            build_consistency_proof(
                "test",
                (
                    first,
                    old_root,
                    ("k/old.json", signed_digest(first, old_root)) if signed else None,
                ),
                (second, new_root, ("k/new.json", signed_digest(second, new_root))),
                consistency_proof(LEAVES[:second], first),
            )
        )
    )


@pytest.mark.parametrize(("first", "second"), [(1, 1), (1, 2), (4, 8), (7, 20), (20, 20), (13, 40)])
def test_a_proof_document_round_trips_through_json_and_checks(first: int, second: int) -> None:
    document = proof_document(first, second)

    assert check_consistency_proof(document, SIGNER_KEY.public_key()) == []
    assert (document["old"]["tree_size"], document["new"]["tree_size"]) == (first, second)
    assert document["old"]["root"] == root(LEAVES[:first]).hex()
    assert document["new"]["digest"]["digest"]["tree"]["size"] == second
    assert all(len(bytes.fromhex(node)) == 32 for node in document["path"])


def test_a_proof_without_digests_checks_without_a_key() -> None:
    document = proof_document(signed=False)
    document["new"].update(digest=None, digest_key=None)

    assert check_consistency_proof(document, None) == []


def test_a_digest_without_a_key_to_check_it_is_not_taken_on_trust() -> None:
    problems = check_consistency_proof(proof_document(), None)

    assert problems == [
        "the old digest cannot be checked without the stage's public key",
        "the new digest cannot be checked without the stage's public key",
    ]


def _set(*path: Any) -> Callable[[dict[str, Any]], None]:
    *parents, last, value = path

    def change(document: dict[str, Any]) -> None:
        target = document
        for name in parents:
            target = target[name]
        target[last] = value

    return change


def _resign(side: str, **tree: Any) -> Callable[[dict[str, Any]], None]:
    """Replace a side's digest by one properly signed over another tree."""

    def change(document: dict[str, Any]) -> None:
        size = tree.get("size", document[side]["tree_size"])
        head = bytes.fromhex(tree.get("root", document[side]["root"]))
        document[side]["digest"] = signed_digest(size, head, stage=tree.get("stage", "test"))

    return change


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        (_set("path", 0, "00" * 32), "the path does not lead to both roots"),
        (lambda d: d["path"].pop(), "the path does not lead to both roots"),
        (lambda d: d["path"].append("11" * 32), "the path does not lead to both roots"),
        (_set("old", "root", "22" * 32), "the path does not lead to both roots"),
        (_set("new", "root", "33" * 32), "the path does not lead to both roots"),
        (_set("old", "tree_size", 6), "the path does not lead to both roots"),
        # The path alone also leads to that root for 21 leaves: the digest names 20.
        (_set("new", "tree_size", 21), "the new digest signs the tree of 20"),
        (_set("old", "tree_size", 21), "are not an older and a newer tree"),
        (_set("old", "tree_size", "7"), "not a consistency proof document"),
        (_set("path", 1, "zz"), "not a consistency proof document"),
        (_set("format", 2), "not a consistency proof of a format"),
        (
            _set("old", "digest", "signature", base64.b64encode(b"\0" * 64).decode()),
            "the old digest's signature does not verify",
        ),
        (
            _set("new", "digest", "digest", "tree", "size", 21),
            "the new digest's signature does not verify",
        ),
        (_resign("new", size=19), "the new digest signs the tree of 19"),
        (_resign("old", root="44" * 32), "the old digest signs the tree of 7 with root 4444"),
        (_resign("old", stage="prod"), "the old digest is of stage 'prod', not 'test'"),
        (_set("stage", "prod"), "the old digest is of stage 'test', not 'prod'"),
    ],
    ids=[
        "a node changed",
        "a node removed",
        "a node added",
        "old root",
        "new root",
        "old size",
        "new size",
        "sizes swapped",
        "size as text",
        "a node not hex",
        "format",
        "old signature",
        "new digest edited",
        "new digest of another size",
        "old digest of another root",
        "digest of another stage",
        "document of another stage",
    ],
)
def test_a_doctored_proof_is_refused(
    change: Callable[[dict[str, Any]], None], problem: str
) -> None:
    document = proof_document()
    change(document)

    problems = check_consistency_proof(document, SIGNER_KEY.public_key())

    assert any(problem in text for text in problems), problems


def test_a_proof_signed_by_another_key_is_refused() -> None:
    stranger = ec.generate_private_key(ec.SECP256R1()).public_key()

    problems = check_consistency_proof(proof_document(), stranger)

    assert problems == [
        "the old digest's signature does not verify with this key",
        "the new digest's signature does not verify with this key",
    ]


@pytest.mark.parametrize("document", [[], "proof", 7, {"format": 1}])
def test_what_is_not_a_proof_document_is_refused(document: Any) -> None:
    problems = check_consistency_proof(document, SIGNER_KEY.public_key())

    assert len(problems) == 1
    assert problems[0].startswith("not a consistency proof")


# --- check-consistency -------------------------------------------------------------------------


@pytest.fixture
def key_file(tmp_path: Path) -> Path:
    path = tmp_path / "ledger.pem"
    path.write_bytes(
        SIGNER_KEY.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    return path


def run(argv: list[str], tmp_path: Path) -> int:
    from gatehouse.cli import main

    return main(["--state-dir", str(tmp_path / "nowhere"), *argv])


def test_check_consistency_says_what_a_valid_proof_proves(
    tmp_path: Path, key_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    proof = tmp_path / "proof.json"
    proof.write_text(json.dumps(proof_document()))

    assert (
        run(["audit", "check-consistency", str(proof), "--public-key", str(key_file)], tmp_path)
        == 0
    )

    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("valid: the tree of 7 leaves is a prefix of the tree of 20 leaves")
    assert out[1] == f"  old root {root(LEAVES[:7]).hex()}  signed in k/old.json"
    assert out[2] == f"  new root {root(LEAVES[:20]).hex()}  signed in k/new.json"


def test_check_consistency_exits_1_with_the_reason_for_a_doctored_proof(
    tmp_path: Path, key_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    document = proof_document()
    document["path"][0] = "00" * 32
    proof = tmp_path / "proof.json"
    proof.write_text(json.dumps(document))

    assert (
        run(["audit", "check-consistency", str(proof), "--public-key", str(key_file)], tmp_path)
        == 1
    )

    assert capsys.readouterr().out.startswith("INVALID: the path does not lead to both roots")


def test_check_consistency_without_digests_needs_no_key_and_says_the_roots_are_unsigned(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    document = proof_document(signed=False)
    document["new"].update(digest=None, digest_key=None)
    proof = tmp_path / "proof.json"
    proof.write_text(json.dumps(document))

    assert run(["audit", "check-consistency", str(proof)], tmp_path) == 0

    assert "not signed in this file" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("content", "with_key", "message"),
    [
        ("{not json", True, "is not JSON"),
        (json.dumps(proof_document()), False, "carries signed digests: pass --public-key"),
    ],
    ids=["not json", "digests without a key"],
)
def test_check_consistency_usage_errors_are_one_line_and_exit_2(
    tmp_path: Path,
    key_file: Path,
    capsys: pytest.CaptureFixture[str],
    content: str,
    with_key: bool,
    message: str,
) -> None:
    proof = tmp_path / "proof.json"
    proof.write_text(content)
    argv = ["audit", "check-consistency", str(proof)]

    assert run([*argv, "--public-key", str(key_file)] if with_key else argv, tmp_path) == 2

    captured = capsys.readouterr()
    assert message in captured.err
    assert len(captured.err.strip().splitlines()) == 1
    assert captured.out == ""


def test_a_proof_document_is_not_changed_by_checking_it() -> None:
    document = proof_document()
    before = copy.deepcopy(document)

    check_consistency_proof(document, SIGNER_KEY.public_key())

    assert document == before
