"""Inclusion proofs: one event, shown to be in the signed log, checkable offline.

A proof carries the stored line, its leaf index (the event's sequence), the
audit path to the tree head right after the event's object (RFC 9162), and
the signed digest that lists that tree head. Checking it needs only the
stage's public key: the digest's signature, the object entry in it, and the
path from the line's leaf hash to the entry's root.

The path is built from the event's own object and the compact range before
it (the previous object's frontier): every sibling left of the object is one
of that range's subtrees, so no earlier object has to be read.
"""

from __future__ import annotations

import gzip
import json
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from chalicelib.ledger.layout import DIGESTS_PREFIX, line_position
from chalicelib.ledger.merkle import (
    ProofError,
    leaf_hash,
    node_hash,
    root,
    split_point,
    verify_inclusion,
)

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ec import EllipticCurvePublicKey

    from chalicelib.ledger.state import LedgerState

PROOF_FORMAT = 1


def inclusion_path(
    frontier: Sequence[tuple[int, bytes]], leaves: Sequence[bytes], index: int
) -> list[bytes]:
    """The audit path of leaf ``index`` in the tree of the ``frontier`` followed by ``leaves``.

    Raises
    ------
    ProofError
        When ``index`` is not one of ``leaves``, or the frontier is not a compact range.
    """
    start = sum(size for size, _ in frontier)
    size = start + len(leaves)
    if not start <= index < size:
        raise ProofError(f"leaf {index} is not in this object ({start}..{size - 1})")
    known: dict[tuple[int, int], bytes] = {}
    offset = 0
    for subtree_size, digest in frontier:
        known[(offset, offset + subtree_size)] = digest
        offset += subtree_size

    def subtree(low: int, high: int) -> bytes:
        if high <= start:
            try:
                return known[(low, high)]
            except KeyError:
                raise ProofError(f"the frontier has no subtree {low}..{high}") from None
        if low >= start:
            return root(leaves[low - start : high - start])
        k = split_point(high - low)
        return node_hash(subtree(low, low + k), subtree(low + k, high))

    path: list[bytes] = []
    low, high = 0, size
    while high - low > 1:
        k = split_point(high - low)
        if index < low + k:
            path.append(subtree(low + k, high))
            high = low + k
        else:
            path.append(subtree(low, low + k))
            low += k
    path.reverse()
    return path


def build_proof(
    line: bytes,
    index: int,
    path: Sequence[bytes],
    entry: dict[str, Any],
    signed_digest: dict[str, Any],
    digest_key: str,
) -> dict[str, Any]:
    """The proof document ``gatehouse audit prove`` writes."""
    return {
        "format": PROOF_FORMAT,
        "event": line.decode("utf-8"),
        "leaf_index": index,
        "tree_size": int(entry["tree_size"]),
        "root": entry["root"],
        "path": [node.hex() for node in path],
        "object": {"key": entry["key"], "version_id": entry.get("version_id")},
        "digest_key": digest_key,
        "digest": signed_digest,
    }


def check_proof(proof: dict[str, Any], public_key: EllipticCurvePublicKey) -> list[str]:
    """Every reason ``proof`` does not hold (none: it holds).

    Needs nothing but the proof and the stage's public key.
    """
    from chalicelib.ledger.verify import verify_signature

    problems: list[str] = []
    try:
        line = proof["event"].encode("utf-8")
        index, size = int(proof["leaf_index"]), int(proof["tree_size"])
        head = bytes.fromhex(proof["root"])
        path = [bytes.fromhex(node) for node in proof["path"]]
        digest = proof["digest"]["digest"]
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        return [f"not a proof document: {exc}"]
    if not verify_signature(public_key, proof["digest"]):
        problems.append("the digest's signature does not verify with this key")
    listed = [
        entry
        for entry in digest.get("objects", [])
        if int(entry.get("tree_size", -1)) == size and entry.get("root") == proof["root"]
    ]
    if not listed:
        problems.append("the signed digest lists no tree head of this size and root")
    try:
        sequence = json.loads(line)["ledger"]["sequence"]
    except (ValueError, KeyError, TypeError):
        sequence = None
    if sequence != index:
        problems.append(f"the event's ledger sequence is {sequence}, the proof says {index}")
    if not verify_inclusion(leaf_hash(line), index, size, path, head):
        problems.append("the audit path does not lead from the event to the tree head")
    return problems


class Prover:
    """Builds the inclusion proof of a stored event.

    Parameters
    ----------
    s3:
        A boto3 S3 client that can read the audit bucket.
    bucket:
        The audit bucket.
    state:
        The ledger's state (the event index, object records).
    """

    def __init__(self, s3: Any, bucket: str, state: LedgerState) -> None:
        self._s3 = s3
        self._bucket = bucket
        self._state = state

    def prove(self, event_id: str) -> dict[str, Any]:
        """The proof that ``event_id`` is in the signed log.

        Raises
        ------
        ProofError
            When the event is not stored, or not yet covered by a signed digest.
        LedgerUnavailable
            When the table cannot be read.
        """
        from chalicelib.ledger.verify import version_kwargs

        record = self._state.object_holding(event_id)
        if record is None:
            raise ProofError(f"event {event_id} is not in the ledger")
        before = self._state.object_before(record.first_sequence)
        frontier = [(size, bytes.fromhex(h)) for size, h in (before.frontier if before else ())]
        body = self._s3.get_object(
            Bucket=self._bucket, Key=record.key, **version_kwargs(record.version_id)
        )["Body"].read()
        lines = [line for line in gzip.decompress(body).split(b"\n") if line]
        offsets = [i for i, line in enumerate(lines) if line_position(line)[0] == event_id]
        if not offsets:
            raise ProofError(f"{record.key} does not hold event {event_id}")
        index = record.first_sequence + offsets[0]
        path = inclusion_path(frontier, [leaf_hash(line) for line in lines], index)
        key, signed, entry = self._digest_listing(record.key, record.version_id)
        return build_proof(lines[offsets[0]], index, path, entry, signed, key)

    def _digest_listing(
        self, object_key: str, version_id: str | None
    ) -> tuple[str, dict[str, Any], dict[str, Any]]:
        paginator = self._s3.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=self._bucket, Prefix=DIGESTS_PREFIX):
            for item in page.get("Contents", []):
                raw = self._s3.get_object(Bucket=self._bucket, Key=item["Key"])["Body"].read()
                signed = json.loads(raw)
                for entry in signed.get("digest", {}).get("objects", []):
                    if entry.get("key") == object_key and entry.get("version_id") == version_id:
                        return item["Key"], signed, entry
        raise ProofError(
            f"{object_key} is not in a signed digest yet: wait for the hourly digest "
            "(or run `gatehouse audit digest`)"
        )
