"""Consistency proofs: the tree signed later holds the tree signed earlier, unchanged.

A consistency proof (RFC 9162 section 2.1.4) between the tree of ``old``
leaves and the tree of ``new`` leaves is a few node hashes from which both
roots follow: whoever holds the older root (a signed digest, a checkpoint
handed out earlier) can check that the log only grew since, that no leaf
before ``old`` was changed, removed or reordered. It needs no leaf.

The proof document ``gatehouse audit consistency`` writes names both sizes
and roots, the proof's nodes (hex), and for each size the signed digest of
exactly that size when there is one (the stored document, as signed):

.. code-block:: json

    {"format": 1, "proof": "consistency", "stage": "prod",
     "old": {"tree_size": 7, "root": "<hex>", "digest_key": "...", "digest": {...}},
     "new": {"tree_size": 20, "root": "<hex>", "digest_key": null, "digest": null},
     "path": ["<hex>", ...]}

:func:`check_consistency_proof` checks one with nothing but the stage's
public key. The proof is built from :class:`Pieces`: perfect subtrees
already hashed (a digest's or an object's frontier, the subtrees of an
object's leaves) and single leaves, so that neither the verifier nor the
command has to hold or read every leaf before the older tree's frontier.
"""

from __future__ import annotations

import gzip
import hashlib
import json
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

from chalicelib.ledger.errors import LedgerCorrupt
from chalicelib.ledger.findings import FindingKind, Report
from chalicelib.ledger.layout import DIGESTS_PREFIX
from chalicelib.ledger.merkle import (
    EMPTY_ROOT,
    CompactRange,
    ProofError,
    leaf_hash,
    node_hash,
    split_point,
    verify_consistency,
)

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ec import EllipticCurvePublicKey

    from chalicelib.ledger.checks import SignedDigest
    from chalicelib.ledger.records import Digest, ObjectRecord
    from chalicelib.ledger.state import LedgerState

CONSISTENCY_FORMAT = 1
CONSISTENCY_PROOF = "consistency"


class Pieces:
    """The leaves ``0..size`` as consecutive perfect subtrees ``(size, hash)``, left to right.

    A piece of one is a leaf hash. Any node of the tree made of whole
    pieces can be hashed; one inside a piece cannot (:class:`ProofError`).
    """

    def __init__(self, pieces: Sequence[tuple[int, bytes]] = ()) -> None:
        self._known: dict[tuple[int, int], bytes] = {}
        self.size = 0
        for size, value in pieces:
            self.add(size, value)

    def add(self, size: int, value: bytes) -> None:
        """Append the next piece (a leaf hash when ``size`` is 1)."""
        self._known[(self.size, self.size + size)] = value
        self.size += size

    def root(self, low: int, high: int) -> bytes:
        """The RFC 9162 hash of the leaves ``low..high``.

        Raises
        ------
        ProofError
            When it needs a node inside a piece.
        """
        if low == high:
            return EMPTY_ROOT
        found = self._known.get((low, high))
        if found is not None:
            return found
        if high - low == 1 or high > self.size:
            raise ProofError(f"the leaves {low}..{high - 1} are not known")
        k = split_point(high - low)
        return node_hash(self.root(low, low + k), self.root(low + k, high))

    def consistency_proof(self, first: int, second: int) -> list[bytes]:
        """The proof (RFC 9162 SUBPROOF) that the tree of ``first`` is a prefix of ``second``'s.

        Equals :func:`chalicelib.ledger.merkle.consistency_proof` over the same leaves.

        Raises
        ------
        ProofError
            Unless 0 < first <= second <= :attr:`size`, or when a node needed is unknown.
        """
        if not 0 < first <= second <= self.size:
            raise ProofError(
                f"no consistency proof from {first} to {second} in a tree of {self.size}"
            )
        return self._subproof(first, 0, second, complete=True)

    def _subproof(self, m: int, low: int, high: int, *, complete: bool) -> list[bytes]:
        n = high - low
        if m == n:
            return [] if complete else [self.root(low, high)]
        k = split_point(n)
        if m <= k:
            return [*self._subproof(m, low, low + k, complete=complete), self.root(low + k, high)]
        return [*self._subproof(m - k, low + k, high, complete=False), self.root(low, low + k)]


class RecordingRange(CompactRange):
    """A compact range that also keeps, as :class:`Pieces`, everything added to it."""

    __slots__ = ("pieces",)

    def __init__(self, subtrees: Sequence[tuple[int, bytes]] = ()) -> None:
        super().__init__(subtrees)
        self.pieces = Pieces(subtrees)

    def append(self, leaf: bytes) -> None:
        super().append(leaf)
        self.pieces.add(1, leaf)

    def extend_subtrees(self, subtrees: Sequence[tuple[int, bytes]]) -> None:
        super().extend_subtrees(subtrees)
        for size, value in subtrees:
            self.pieces.add(size, value)


def check_consistent(
    earlier: SignedDigest, key: str, later: Digest, pieces: Pieces, report: Report
) -> None:
    """Name ``later`` (stored at ``key``) when its signed tree does not extend ``earlier``'s.

    ``pieces`` are the leaves the verifier rebuilt up to ``later``'s tree
    size; the proof built from them has to lead to both signed roots.
    """
    first, second = earlier.digest.tree_size, later.tree_size
    if first == 0 or pieces.size != second or first > second:
        return  # nothing to prove, or a size the lines do not reach (named elsewhere)
    try:
        path = pieces.consistency_proof(first, second)
        holds = verify_consistency(
            first, second, bytes.fromhex(earlier.digest.root), bytes.fromhex(later.root), path
        )
    except (ProofError, ValueError):
        holds = False
    if not holds:
        report.add(
            FindingKind.INCONSISTENT_DIGESTS,
            key,
            f"its signed tree of {second} (root {later.root[:16]}...) does not extend the "
            f"tree of {first} (root {earlier.digest.root[:16]}...) signed in {earlier.key}",
        )


# --- the proof document ------------------------------------------------------------------------


def build_consistency_proof(
    stage: str,
    old: tuple[int, bytes, tuple[str, dict[str, Any]] | None],
    new: tuple[int, bytes, tuple[str, dict[str, Any]] | None],
    path: Sequence[bytes],
) -> dict[str, Any]:
    """The document: each side ``(tree size, root, (digest key, signed digest) or None)``."""

    def side(size: int, head: bytes, signed: tuple[str, dict[str, Any]] | None) -> dict[str, Any]:
        return {
            "tree_size": size,
            "root": head.hex(),
            "digest_key": signed[0] if signed else None,
            "digest": signed[1] if signed else None,
        }

    return {
        "format": CONSISTENCY_FORMAT,
        "proof": CONSISTENCY_PROOF,
        "stage": stage,
        "old": side(*old),
        "new": side(*new),
        "path": [node.hex() for node in path],
    }


def signed_sides(proof: object) -> list[str]:
    """Which sides (``old``, ``new``) of a proof document carry a signed digest."""
    if not isinstance(proof, dict):
        return []
    return [
        name
        for name in ("old", "new")
        if isinstance(proof.get(name), dict) and proof[name].get("digest") is not None
    ]


def check_consistency_proof(
    proof: dict[str, Any], public_key: EllipticCurvePublicKey | None
) -> list[str]:
    """Every reason ``proof`` does not hold (none: it holds).

    The path must lead to both roots; each signed digest the document
    carries must verify with ``public_key`` and name that side's size and
    root (and the document's stage). ``public_key`` may be None only when
    the document carries no digest.
    """
    try:
        if proof["format"] != CONSISTENCY_FORMAT or proof["proof"] != CONSISTENCY_PROOF:
            return ["not a consistency proof of a format this version knows"]
        old, new = proof["old"], proof["new"]
        first, second = _size(old["tree_size"]), _size(new["tree_size"])
        first_root, second_root = _hash(old["root"]), _hash(new["root"])
        path = [_hash(node) for node in proof["path"]]
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        return [f"not a consistency proof document: {exc}"]
    problems: list[str] = []
    if first < 1 or first > second:
        problems.append(f"the sizes {first} and {second} are not an older and a newer tree")
    elif not verify_consistency(first, second, first_root, second_root, path):
        problems.append(
            f"the path does not lead to both roots: the tree of {first} is not shown to be "
            f"a prefix of the tree of {second}"
        )
    for name in signed_sides(proof):
        problems += _digest_problems(name, proof[name], proof.get("stage"), public_key)
    return problems


def _digest_problems(
    name: str, side: dict[str, Any], stage: object, public_key: EllipticCurvePublicKey | None
) -> list[str]:
    from chalicelib.ledger.verify import verify_signature

    signed = side["digest"]
    if public_key is None:
        return [f"the {name} digest cannot be checked without the stage's public key"]
    if not isinstance(signed, dict) or not verify_signature(public_key, signed):
        return [f"the {name} digest's signature does not verify with this key"]
    digest = signed["digest"]
    tree = digest.get("tree") if isinstance(digest, dict) else None
    if not isinstance(tree, dict):
        return [f"the {name} digest names no tree"]
    problems = []
    if tree.get("size") != side["tree_size"] or tree.get("root") != side["root"]:
        problems.append(
            f"the {name} digest signs the tree of {tree.get('size')} with root "
            f"{str(tree.get('root'))[:16]}..., not the {name} tree of the proof"
        )
    if digest.get("stage") != stage:
        problems.append(f"the {name} digest is of stage {digest.get('stage')!r}, not {stage!r}")
    return problems


def _size(value: object) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise ValueError(f"a tree size is a whole number, not {value!r}")
    return value


def _hash(value: object) -> bytes:
    digest = bytes.fromhex(str(value))
    if len(digest) != hashlib.sha256().digest_size:
        raise ValueError("a node is 32 bytes of hex")
    return digest


# --- building it from the stored ledger ----------------------------------------------------------


def check_sizes(old: int, new: int, size: int) -> None:
    """Refuse sizes that are not 1 <= ``old`` <= ``new`` <= ``size`` (the ledger's).

    Raises
    ------
    ProofError
        Naming what is wrong.
    """
    if old < 1:
        raise ProofError(f"the older size must be at least 1, not {old}")
    if old > new:
        raise ProofError(f"the older size {old} is larger than the newer size {new}")
    if new > size:
        raise ProofError(f"the ledger holds {size} events: there is no tree of {new}")


def _frontier(record: ObjectRecord) -> CompactRange:
    try:
        frontier = CompactRange.from_json([list(entry) for entry in record.frontier])
    except ValueError as exc:
        raise LedgerCorrupt(f"the frontier recorded for {record.key}: {exc}") from exc
    if frontier.size != record.tree_size:
        raise LedgerCorrupt(f"the frontier recorded for {record.key} is not its tree's")
    return frontier


def read_leaves(
    s3: Any, bucket: str, records: Sequence[ObjectRecord], *, workers: int = 8
) -> Iterator[list[bytes]]:
    """The leaf hashes of each object in ``records``, in order, read a few at a time.

    Each object is read by its recorded version and checked against its
    recorded SHA-256.

    Raises
    ------
    LedgerCorrupt
        When an object is not the one the ledger recorded.
    LedgerUnavailable
        When one cannot be read.
    """
    from concurrent.futures import ThreadPoolExecutor

    from chalicelib.ledger.errors import LedgerUnavailable
    from chalicelib.ledger.verify import version_kwargs

    def leaves(record: ObjectRecord) -> list[bytes]:
        try:
            body = s3.get_object(
                Bucket=bucket, Key=record.key, **version_kwargs(record.version_id)
            )["Body"].read()
        except Exception as exc:
            raise LedgerUnavailable(f"cannot read {record.key}: {exc}") from exc
        if hashlib.sha256(body).hexdigest() != record.sha256:
            raise LedgerCorrupt(
                f"{record.key} is not the object the ledger recorded: run `gatehouse audit verify`"
            )
        return [leaf_hash(line) for line in gzip.decompress(body).split(b"\n") if line]

    if not records:
        return
    with ThreadPoolExecutor(max_workers=min(workers, len(records))) as pool:
        yield from pool.map(leaves, records)


class ConsistencyProver:
    """Builds the consistency proof between two sizes of the stored ledger.

    The tree before the older size starts from the frontier of the last
    object that ends at or before it; the objects from there on are read
    (by version, checked against their recorded SHA-256) and hashed.

    Parameters
    ----------
    s3:
        A boto3 S3 client that can read the audit bucket.
    bucket:
        The audit bucket.
    state:
        The ledger's state (the committed objects).
    stage:
        The stage name (written into the document, named by its digests).
    """

    def __init__(self, s3: Any, bucket: str, state: LedgerState, stage: str) -> None:
        self._s3 = s3
        self._bucket = bucket
        self._state = state
        self._stage = stage

    def prove(self, old: int, new: int) -> dict[str, Any]:
        """The proof document from the tree of ``old`` leaves to that of ``new``.

        Raises
        ------
        ProofError
            When the sizes are not 1 <= old <= new <= the ledger's size.
        LedgerCorrupt
            When the stored objects or digests contradict the ledger's records.
        LedgerUnavailable
            When the table cannot be read.
        """
        records = self._state.objects()
        check_sizes(old, new, records[-1].tree_size if records else 0)
        before = [record for record in records if record.tree_size <= old]
        pieces = Pieces(_frontier(before[-1]).subtrees if before else ())
        ends: dict[int, str] = {record.tree_size: record.root for record in before[-1:]}
        needed = []
        for record in records[len(before) :]:
            if record.first_sequence >= new:
                break
            needed.append(record)
            ends[record.tree_size] = record.root
        for leaves in read_leaves(self._s3, self._bucket, needed):
            for leaf in leaves:
                if pieces.size < new:
                    pieces.add(1, leaf)
        path = pieces.consistency_proof(old, new)
        old_root, new_root = pieces.root(0, old), pieces.root(0, new)
        for tree_size, head in ((old, old_root), (new, new_root)):
            recorded = ends.get(tree_size)
            if recorded is not None and recorded != head.hex():
                raise LedgerCorrupt(
                    f"the stored lines give the tree of {tree_size} another root than the "
                    "ledger recorded: run `gatehouse audit verify`"
                )
        return build_consistency_proof(
            self._stage,
            (old, old_root, self._digest_of(old, old_root)),
            (new, new_root, self._digest_of(new, new_root)),
            path,
        )

    def _digest_of(self, size: int, head: bytes) -> tuple[str, dict[str, Any]] | None:
        """The first signed digest of exactly ``size`` leaves, when there is one."""
        suffix = f"-{size:016d}.json"
        keys = []
        paginator = self._s3.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=self._bucket, Prefix=DIGESTS_PREFIX):
            keys += [item["Key"] for item in page.get("Contents", [])]
        for key in sorted(key for key in keys if key.endswith(suffix)):
            raw = self._s3.get_object(Bucket=self._bucket, Key=key)["Body"].read()
            signed: dict[str, Any] = json.loads(raw)
            tree = signed.get("digest", {}).get("tree", {})
            if tree.get("size") != size:
                continue
            if tree.get("root") != head.hex():
                raise LedgerCorrupt(
                    f"the digest {key} signs another root for the tree of {size} than the "
                    "stored lines give: run `gatehouse audit verify`"
                )
            return key, signed
        return None
