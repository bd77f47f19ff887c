"""The audit ledger's proofs at 10,000,000 events: their sizes, checking them, building the tree.

- Proof sizes: an inclusion proof with a path of the full length and
  consistency proofs from 1, n/10, n/2 and n - 1 to n, for n = 1M and 10M
  built for real (and checked with ``verify_inclusion`` / ``verify_consistency``),
  for 100M computed from the path lengths (RFC 9162 PATH and SUBPROOF
  walked without hashing), which are checked against every real proof.
  Nodes are 32 bytes raw; a proof document carries them as a JSON list of
  hex strings (66 bytes each with the quotes, plus a comma).
- Checking: one inclusion proof, one consistency proof, the log's ECDSA
  P-256 signature of a checkpoint note and a witness's Ed25519 cosignature,
  each a per-operation median.
- Building: 10M synthetic leaves (``leaf_hash`` of the index as 8 bytes)
  appended to a ``CompactRange`` one by one, all of them, timed; and the
  whole-ledger verify at 10M extrapolated linearly from the per-event cost
  of ``LedgerVerifier.verify`` (1 process), measured here on bench_verify.py's
  kind of ledger at 20,000 events served from memory.

The 10M tree is never held: the leaves are made 64 Ki at a time and kept as
``Pieces`` (the perfect subtrees ``aligned_subtrees`` gives, cut finely at
the leaves and sizes the proofs start from), from which every node the
proofs need is hashed.

Floor: one SHA-256 of a 32-byte input (hashlib). Exits non-zero when a
proof built does not verify or two builds of the tree disagree.
"""

from __future__ import annotations

import base64
import functools
import gc
import gzip
import hashlib
import io
import itertools
import json
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import figure, measure
from chalicelib.ledger.consistency import Pieces
from chalicelib.ledger.merkle import (
    CompactRange,
    aligned_subtrees,
    consistency_proof,
    inclusion_proof,
    leaf_hash,
    split_point,
    verify_consistency,
    verify_inclusion,
)
from chalicelib.ledger.proof import inclusion_path as object_inclusion_path

EVENTS = 10_000_000
CHUNK = 1 << 16  # leaves made (and hashed into pieces) at a time
TREES = (1_000_000, EVENTS, 100_000_000)
# A leaf of the 10M tree's left perfect subtree (2^23 leaves): a path of the full length.
LEAF = 3_141_592
OBJECT = 1000  # the last object's events: a proof as `gatehouse audit prove` builds it
VERIFY_OBJECTS, VERIFY_PER_OBJECT = 20, 1000  # the ledger whose verify is timed per event


def fail(message: str) -> None:
    print(f"bench_proofs: {message}", file=sys.stderr, flush=True)
    raise SystemExit(1)


def old_sizes(n: int) -> list[tuple[str, int]]:
    return [("1", 1), ("n/10", n // 10), ("n/2", n // 2), ("n-1", n - 1)]


def synthetic_leaf(index: int) -> bytes:
    return leaf_hash(index.to_bytes(8, "big"))


# --- path lengths without hashing (RFC 9162 PATH and SUBPROOF) -----------------------------------


def inclusion_length(index: int, size: int) -> int:
    nodes = 0
    while size > 1:
        k = split_point(size)
        index, size = (index, k) if index < k else (index - k, size - k)
        nodes += 1
    return nodes


def consistency_length(m: int, n: int, *, complete: bool = True) -> int:
    if m == n:
        return 0 if complete else 1
    k = split_point(n)
    if m <= k:
        return consistency_length(m, k, complete=complete) + 1
    return consistency_length(m - k, n - k, complete=False) + 1


def json_bytes(nodes: int) -> int:
    """Bytes of the proof's ``path`` as a compact JSON list of hex strings."""
    return 2 + 66 * nodes + max(nodes - 1, 0)


def pieces_inclusion_path(pieces: Pieces, index: int, size: int) -> list[bytes]:
    """RFC 9162 PATH(index, tree of ``size``), its nodes hashed from ``pieces``."""
    path = []
    low, high = 0, size
    while high - low > 1:
        k = split_point(high - low)
        if index < low + k:
            path.append(pieces.root(low + k, high))
            high = low + k
        else:
            path.append(pieces.root(low, low + k))
            low += k
    path.reverse()
    return path


# --- building ------------------------------------------------------------------------------------


def self_check() -> None:
    """On 1,000 leaves: the pieces' paths are those of merkle's reference functions."""
    leaves = [synthetic_leaf(i) for i in range(1000)]
    cuts = [0, 1, 2, 300, 301, 617, 999, 1000]
    pieces = Pieces()
    for low, high in itertools.pairwise(cuts):
        for size, value in aligned_subtrees(low, leaves[low:high]):
            pieces.add(size, value)
    for index in (0, 1, 300):
        if pieces_inclusion_path(pieces, index, 1000) != inclusion_proof(leaves, index):
            fail(f"the inclusion path of leaf {index} from pieces is not RFC 9162's")
    for m in (1, 2, 300, 301, 617, 999):
        if pieces.consistency_proof(m, 1000) != consistency_proof(leaves, m):
            fail(f"the consistency proof from {m} from pieces is not RFC 9162's")


@dataclass
class Built:
    """The 10M tree as a compact range and as pieces, and what building it cost."""

    tree: CompactRange
    pieces: Pieces
    making: float  # seconds making the synthetic leaf hashes
    appending: float  # seconds in CompactRange.append
    subtrees: float  # seconds in aligned_subtrees (the pieces)
    frontier: tuple[tuple[int, bytes], ...]  # the compact range before the last object
    last_object: list[bytes]  # the last object's leaf hashes


def build() -> Built:
    """All 10M leaves: appended to a CompactRange (timed) and kept as pieces."""
    cuts = {0, 1, LEAF, LEAF + 1, EVENTS - OBJECT, EVENTS - OBJECT + 1, EVENTS}
    for n in TREES[:2]:
        cuts.update(size for _, size in old_sizes(n))
        cuts.add(n)
    cuts.update(range(0, EVENTS, CHUNK))
    tree, pieces = CompactRange(), Pieces()
    append = tree.append
    making = appending = subtrees = 0.0
    frontier: tuple[tuple[int, bytes], ...] = ()
    last_object: list[bytes] = []
    gc.collect()
    gc.disable()
    try:
        for low, high in itertools.pairwise(sorted(cuts)):
            started = time.perf_counter()
            leaves = [leaf_hash(i.to_bytes(8, "big")) for i in range(low, high)]
            made = time.perf_counter()
            for leaf in leaves:
                append(leaf)
            appended = time.perf_counter()
            for size, value in aligned_subtrees(low, leaves):
                pieces.add(size, value)
            subtrees += time.perf_counter() - appended
            appending += appended - made
            making += made - started
            if high == EVENTS - OBJECT:
                frontier = tree.subtrees
            if low >= EVENTS - OBJECT:
                last_object += leaves
    finally:
        gc.enable()
    if tree.size != EVENTS or pieces.size != EVENTS:
        fail(f"built {tree.size} leaves and {pieces.size} in pieces, not {EVENTS}")
    if tree.root() != pieces.root(0, EVENTS):
        fail("the compact range and the pieces give the 10M tree different roots")
    return Built(tree, pieces, making, appending, subtrees, frontier, last_object)


# --- the whole-ledger verify, per event ----------------------------------------------------------


def verify_per_event() -> tuple[float, float]:
    """Seconds per event of ``LedgerVerifier.verify`` (1 process) over a small ledger,
    and the floor bench_verify uses (SHA-256 leaf hash of the line).

    bench_verify.py's ledger (its events and layout), served from memory like
    its MemoryS3, at VERIFY_OBJECTS x VERIFY_PER_OBJECT events, without moto;
    digests of format 1 (signature over the canonical JSON), which verify
    still reads.
    """
    from cryptography.hazmat.primitives.asymmetric import ec

    from bench.bench_writer import event_body
    from chalicelib.aws.signers import LocalSigner
    from chalicelib.ledger.layout import canonical, digest_key, object_key, with_sequence
    from chalicelib.ledger.records import Digest, DigestEntry, DigestLink
    from chalicelib.ledger.verify import LedgerVerifier

    private = ec.generate_private_key(ec.SECP256R1())
    signer = LocalSigner(private)
    objects: dict[tuple[str, str | None], bytes] = {}

    def put(key: str, body: bytes) -> str:
        version = f"v{len(objects):08d}"
        objects[(key, version)] = objects[(key, None)] = body
        return version

    lines = [with_sequence(event_body(n), n) for n in range(VERIFY_OBJECTS * VERIFY_PER_OBJECT)]
    started = time.perf_counter()
    for line in lines:
        leaf_hash(line)
    floor = (time.perf_counter() - started) / len(lines)
    tree = CompactRange()
    previous: DigestLink | None = None
    entries: list[DigestEntry] = []
    for index in range(VERIFY_OBJECTS):
        chunk = lines[index * VERIFY_PER_OBJECT : (index + 1) * VERIFY_PER_OBJECT]
        payload = gzip.compress(b"".join(line + b"\n" for line in chunk), mtime=0)
        key = object_key(1_800_000_000 + index, index * VERIFY_PER_OBJECT, index + 1)
        version = put(key, payload)
        for line in chunk:
            tree.append(leaf_hash(line))
        entries.append(
            DigestEntry(
                key=key,
                version_id=version,
                sha256=hashlib.sha256(payload).hexdigest(),
                first_sequence=index * VERIFY_PER_OBJECT,
                count=len(chunk),
                tree_size=tree.size,
                root=tree.root().hex(),
            )
        )
        if len(entries) == VERIFY_OBJECTS // 2:
            digest = Digest(
                stage="bench",
                start=None,
                end=f"2027-01-15T{index:02d}:00:00Z",
                tree_size=tree.size,
                root=tree.root().hex(),
                frontier=tuple((size, value.hex()) for size, value in tree.subtrees),
                objects=tuple(entries),
                previous=previous,
                signing_kid=signer.jwk()["kid"],
                format=1,
            ).to_document()
            signature = base64.b64encode(signer.sign(canonical(digest))).decode()
            key = digest_key(1_800_000_000 + index, tree.size)
            put(key, canonical({"digest": digest, "signature": signature}))
            previous = DigestLink(key, signature)
            entries = []
    verifier = LedgerVerifier(Bucket(objects), "bench", private.public_key(), jobs=1)
    samples = []
    for _ in range(3):
        started = time.perf_counter()
        report = verifier.verify()
        samples.append(time.perf_counter() - started)
        if not report.ok or report.events != len(lines):
            fail(f"the small ledger does not verify: {report.findings[:3]}")
    return sorted(samples)[1] / len(lines), floor


class Bucket:
    """The objects, served from memory with the S3 calls the verifier makes."""

    def __init__(self, objects: dict[tuple[str, str | None], bytes]) -> None:
        self._objects = objects

    def get_object(self, Bucket: str, Key: str, VersionId: str | None = None) -> dict[str, Any]:
        return {"Body": io.BytesIO(self._objects[(Key, VersionId)])}

    def get_paginator(self, name: str) -> Any:
        if name not in ("list_object_versions", "list_objects_v2"):
            raise NotImplementedError(f"the in-memory bucket has no {name}")
        return _Pages(name, sorted((key, version) for key, version in self._objects if version))


class _Pages:
    def __init__(self, name: str, versions: list[tuple[str, str]]) -> None:
        self._name = name
        self._versions = versions

    def paginate(self, Bucket: str, Prefix: str = "") -> list[dict[str, Any]]:
        stored = datetime(2027, 1, 15, tzinfo=UTC)
        listed = [(key, version) for key, version in self._versions if key.startswith(Prefix)]
        if self._name == "list_objects_v2":
            return [{"Contents": [{"Key": key, "LastModified": stored} for key, _ in listed]}]
        return [
            {
                "Versions": [
                    {"Key": key, "VersionId": version, "IsLatest": True, "LastModified": stored}
                    for key, version in listed
                ]
            }
        ]


# --- the figures ---------------------------------------------------------------------------------


def row(label: str, value: float, unit: str) -> None:
    print(f"  {label:58} {value:9.2f} {unit}", flush=True)


Checks = dict[str, tuple[Any, ...]]


def proofs_at(pieces: Pieces, n: int) -> Checks:
    """Build and check the proofs in the tree of ``n``: the arguments that check each."""
    head = pieces.root(0, n)
    index = LEAF if n == EVENTS else 0
    path = pieces_inclusion_path(pieces, index, n)
    checks: Checks = {"inclusion": (synthetic_leaf(index), index, n, path, head)}
    if not verify_inclusion(*checks["inclusion"]):
        fail(f"the inclusion proof of leaf {index} in the tree of {n} does not verify")
    if not len(path) == inclusion_length(index, n) == (n - 1).bit_length():
        fail(f"the inclusion proof in the tree of {n} is not of the full length")
    proofs = {"inclusion": path}
    for name, m in old_sizes(n):
        proof = pieces.consistency_proof(m, n)
        checks[name] = (m, n, pieces.root(0, m), head, proof)
        if not verify_consistency(*checks[name]):
            fail(f"the consistency proof from {m} to {n} does not verify")
        if len(proof) != consistency_length(m, n):
            fail(f"the consistency proof from {m} to {n} is not of the computed length")
        proofs[name] = proof
    for name, proof in proofs.items():
        text = json.dumps([node.hex() for node in proof], separators=(",", ":"))
        if len(text) != json_bytes(len(proof)):
            fail(f"the JSON size of the {name} proof at {n} is not the computed one")
    return checks


def real_proofs(built: Built) -> Checks:
    """Build and check the proofs at 1M and 10M; the arguments to check those at 10M."""
    proofs_at(built.pieces, TREES[0])
    checks = proofs_at(built.pieces, EVENTS)
    # The last object's first event, as `gatehouse audit prove` builds its path.
    first = EVENTS - OBJECT
    path = object_inclusion_path(built.frontier, built.last_object, first)
    if not verify_inclusion(synthetic_leaf(first), first, EVENTS, path, built.tree.root()):
        fail("the inclusion proof built by chalicelib.ledger.proof does not verify")
    if path != pieces_inclusion_path(built.pieces, first, EVENTS):
        fail("chalicelib.ledger.proof and the pieces give different paths")
    checks["object"] = (path,)
    return checks


def print_sizes(checks: Checks) -> None:
    print("\nProof sizes: nodes / raw bytes (32 a node) / JSON bytes (list of hex strings)")
    print("  (1M and 10M: real proofs, verified; 100M: computed, formula = real where built)")
    header = "".join(f"{f'tree {n // 1_000_000}M':>20}" for n in TREES)
    print(f"  {'proof':38}{header}")

    def sizes_row(label: str, lengths: list[int]) -> None:
        cells = "".join(f"{f'{k} / {32 * k} / {json_bytes(k)}':>20}" for k in lengths)
        print(f"  {label:38}{cells}", flush=True)

    sizes_row("inclusion, longest path", [inclusion_length(0, n) for n in TREES])
    for position, (name, _) in enumerate(old_sizes(EVENTS)):
        lengths = [consistency_length(old_sizes(n)[position][1], n) for n in TREES]
        sizes_row(f"consistency from {name} to n", lengths)
    print(f"  (at 10M: inclusion of leaf {LEAF:,}; n/10 = 1,000,000, n/2 = 5,000,000,")
    print(f"   n-1 = 9,999,999; the last object's first event, leaf {EVENTS - OBJECT:,}, as")
    print(f"   chalicelib.ledger.proof builds it: {len(checks['object'][0])} nodes)")


def print_checking(checks: Checks, head: bytes) -> float:
    """Time checking proofs and signatures; the floor."""
    print("\nChecking one proof or signature (median per operation)", flush=True)
    data = bytes(32)
    sha256 = hashlib.sha256
    floor = measure(lambda: sha256(data).digest(), number=20000)
    figure("floor: one SHA-256 of 32 bytes (hashlib)", floor)
    inclusion = checks["inclusion"]
    figure(
        f"verify_inclusion, 10M tree, {len(inclusion[3])} nodes",
        measure(functools.partial(verify_inclusion, *inclusion), number=2000),
        floor=floor,
    )
    for name, m in old_sizes(EVENTS):
        args = checks[name]
        figure(
            f"verify_consistency, {m:,} to 10M, {len(args[4])} nodes",
            measure(functools.partial(verify_consistency, *args), number=2000),
            floor=floor,
        )
    log_key, witness, note = checkpoint_note(head)
    figure(
        "checkpoint note, ECDSA P-256 (LogKey.signed_by)",
        measure(lambda: log_key.signed_by(note), number=300),
        floor=floor,
    )
    figure(
        "witness cosignature, Ed25519 (WitnessKey.cosigned)",
        measure(lambda: witness.cosigned(note), number=300),
        floor=floor,
    )
    return floor


def checkpoint_note(head: bytes) -> tuple[Any, Any, Any]:
    """The 10M tree's checkpoint, signed by the log and cosigned by a witness; both keys."""
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

    from chalicelib.ledger.notes import (
        CheckpointBody,
        LogKey,
        SignedNote,
        WitnessSigner,
        digest_extension,
    )

    private = ec.generate_private_key(ec.SECP256R1())
    origin = "s3.amazonaws.com/gatehouse-bench-audit"
    log_key = LogKey(origin, private.public_key())
    extension = digest_extension(hashlib.sha256(b"the digest document").digest())
    body = CheckpointBody(origin, EVENTS, head, (extension,)).text()
    r, s = decode_dss_signature(private.sign(body.encode(), ec.ECDSA(hashes.SHA256())))
    signer = WitnessSigner("witness.example.com/w1", Ed25519PrivateKey.generate())
    note = SignedNote(body, (log_key.signature(r.to_bytes(32, "big") + s.to_bytes(32, "big")),))
    note = SignedNote.parse(note.with_signature(signer.cosign(body, 1_800_000_000)).serialize())
    if log_key.signed_by(note) is None or signer.key.cosigned(note) is None:
        fail("the checkpoint note's signature or cosignature does not verify")
    return log_key, signer.key, note


def print_building(built: Built, floor: float) -> None:
    print(f"\nBuilding the tree of {EVENTS:,} leaves (all of them, not extrapolated)", flush=True)
    row("synthetic leaf hashes made (leaf_hash of 8 bytes), total", built.making, "s")
    row("CompactRange.append, 10M leaf hashes, total", built.appending, "s")
    figure("CompactRange.append, per leaf", built.appending / EVENTS, floor=floor)
    row("aligned_subtrees over 64 Ki-leaf chunks (the pieces), total", built.subtrees, "s")
    per_event, line_floor = verify_per_event()
    events = VERIFY_OBJECTS * VERIFY_PER_OBJECT
    print(
        f"\nVerifying a {EVENTS:,}-event ledger (measured: per event, over {events:,} events"
        "\n  in memory; extrapolated: x 10M)",
        flush=True,
    )
    figure("floor: SHA-256 leaf hash of a 1.3 KB line", line_floor)
    figure("LedgerVerifier.verify, per event, 1 process", per_event, floor=line_floor)
    row("verify 10M events, 1 process (extrapolated linearly)", per_event * EVENTS, "s")


def main() -> None:
    begun = time.perf_counter()
    self_check()
    print(f"Audit ledger proofs at {EVENTS:,} events (synthetic leaves)", flush=True)
    built = build()
    checks = real_proofs(built)
    print_sizes(checks)
    floor = print_checking(checks, built.tree.root())
    print_building(built, floor)
    print()
    row("this run, total", time.perf_counter() - begun, "s")


if __name__ == "__main__":
    main()
