"""Through the running local stack: checkpoints, witnesses, and what ``verify`` makes of forks.

The shared stack signs a digest every 30 s and its local witness cosigns each
checkpoint every 2 s. The first test checks that on the live bucket (a digest
far larger than 4 KB is still a checkpoint of a few hundred bytes, cosigned).

The others play an insider who holds the stage's KMS key and may bypass
GOVERNANCE retention. They never touch the live bucket: the live ledger is
copied into buckets of the same moto (Object Lock, GOVERNANCE), re-signed by
the stage's key (the copies' objects have other version ids, so every digest
of a copy is signed anew, as the stage would have signed it), with an anchor
bucket of their own. Witnesses of the tests' own (fresh Ed25519 keys, state in
``tmp_path``) watch the copies and publish into them.
"""

from __future__ import annotations

import calendar
import copy
import gzip
import hashlib
import json
import re
import time
import uuid
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import load_der_public_key

from chalicelib.aws.signers import KmsSigner
from chalicelib.ledger.digest import DigestWriter, S3Anchor, sign_checkpoint
from chalicelib.ledger.errors import LedgerBusy
from chalicelib.ledger.layout import (
    DIGESTS_PREFIX,
    canonical,
    cosigned_key,
    digest_key,
    object_key,
    refusal_key,
    utc_text,
)
from chalicelib.ledger.merkle import CompactRange, consistency_proof, leaf_hash
from chalicelib.ledger.notes import LogKey, SignedNote, WitnessKey, WitnessSigner
from chalicelib.ledger.records import Checkpoint
from chalicelib.ledger.state import LedgerState
from chalicelib.ledger.verify import LedgerVerifier
from chalicelib.witness.state import FileWitnessState
from chalicelib.witness.witness import Verdict, WatchedLog, Witness
from gatehouse.audit_commands.ledger import sign_digest, verify, witness_keys
from gatehouse.audit_commands.stage import ledger_state
from gatehouse.state import STATE_FILE_NAME
from gatehouse.target import resolve_target
from tests.e2e.support import (
    GatewayClient,
    RunningStack,
    alice,
    run_cli_status,
    token_for,
)

if TYPE_CHECKING:
    from chalicelib.ledger.findings import Report
    from gatehouse.state import DevState
    from gatehouse.target import Target

pytestmark = pytest.mark.e2e

LOCAL_WITNESS = "witness.localhost/gatehouse-dev"
COSIGNATURE_DEADLINE_SECONDS = 15.0
SETTLE_DEADLINE_SECONDS = 20.0


# --------------------------------------------------------------------------- the live stack


@pytest.fixture(scope="module")
def target(running_stack: RunningStack) -> Target:
    return resolve_target(running_stack.state_dir)


def send_mix(stack: DevState, requests: int) -> None:
    """``requests`` requests through the gateway: allowed, unauthenticated and denied ones."""
    client = GatewayClient(stack)  # its own: the trail test accounts for the shared one
    engineer = alice(stack)
    contractor = token_for(stack, "dave", groups=["contractors"])
    for number in range(requests):
        match number % 3:
            case 0:
                exchange = client.send("GET", f"/api/witnessed/{number}", token=engineer)
                assert exchange.status == 200, str(exchange)
            case 1:
                exchange = client.send("GET", f"/api/witnessed/{number}")
                assert exchange.status == 401, str(exchange)
            case _:
                exchange = client.send("DELETE", "/api/billing/witnessed", token=contractor)
                assert exchange.status == 403, str(exchange)


def settle(target: Target, at_least: int) -> None:
    """Wait until the ledger holds ``at_least`` events and has taken none for a second."""
    state = ledger_state(target)
    deadline = time.monotonic() + SETTLE_DEADLINE_SECONDS
    last, since = -1, time.monotonic()
    while time.monotonic() < deadline:
        size = state.head().next_sequence
        if size != last:
            last, since = size, time.monotonic()
        elif size >= at_least and time.monotonic() - since >= 1.0:
            return
        time.sleep(0.2)
    pytest.fail(f"the ledger did not settle at {at_least}+ events (it holds {last})")


# The stack's digest poller: its first run 30 s after it starts, then 30 s after each run.
SCHEDULE_SECONDS = 30.0
SIGNED_HERE: set[str] = set()


def out_of_the_schedule(target: Target, state_dir: Path) -> None:
    """Wait while the stack's own digest is due (within about two seconds).

    Two digest writers that read the chain at once both store a digest naming the
    same predecessor (see test_two_digest_writers_racing_leave_no_fork_in_the_bucket):
    signing next to the schedule would fork the shared ledger.
    """
    scheduled = [
        key
        for key in digest_keys(target.client("s3"), target.audit_bucket)
        if key not in SIGNED_HERE
    ]
    started = (state_dir / STATE_FILE_NAME).stat().st_mtime
    last = max([started, *(_epoch(key.rsplit("/", 1)[1][:16]) for key in scheduled)])
    due = last + SCHEDULE_SECONDS
    while due - 2.0 <= time.time() <= due + 3.0:
        time.sleep(0.2)


def sign_now(target: Target, state_dir: Path) -> Checkpoint:
    """``gatehouse audit digest``, away from the stack's own 30 s digest."""
    for _ in range(5):
        out_of_the_schedule(target, state_dir)
        try:
            checkpoint = sign_digest(target)
        except LedgerBusy:
            time.sleep(1.1)  # a digest key names its second
            continue
        SIGNED_HERE.add(checkpoint.key)
        return checkpoint
    pytest.fail("could not sign a digest: the chain kept moving")


def stored_document(target: Target, key: str) -> dict[str, Any]:
    body = target.client("s3").get_object(Bucket=target.audit_bucket, Key=key)["Body"].read()
    document: dict[str, Any] = json.loads(body)
    return document


def digest_keys(s3: Any, bucket: str) -> list[str]:
    paginator = s3.get_paginator("list_objects_v2")
    return sorted(
        str(item["Key"])
        for page in paginator.paginate(Bucket=bucket, Prefix=DIGESTS_PREFIX)
        for item in page.get("Contents", [])
    )


def newest_digest_key(s3: Any, bucket: str) -> str:
    keys = digest_keys(s3, bucket)
    assert keys, f"no digest in {bucket}"
    return keys[-1]


def exists(s3: Any, bucket: str, key: str) -> bool:
    listed = s3.list_objects_v2(Bucket=bucket, Prefix=key)
    return any(item["Key"] == key for item in listed.get("Contents", []))


def local_witness_id(stack: DevState) -> str:
    [vkey] = stack.witness_keys
    return WitnessKey.from_vkey(vkey).key_id.hex()


def wait_for_local_cosignature(target: Target, stack: DevState, digest: str) -> str:
    """The key of the local witness's cosignature of ``digest`` (fails after 15 s)."""
    key = cosigned_key(local_witness_id(stack), digest)
    s3 = target.client("s3")
    deadline = time.monotonic() + COSIGNATURE_DEADLINE_SECONDS
    while not exists(s3, target.audit_bucket, key):
        if time.monotonic() > deadline:
            pytest.fail(f"the local witness did not cosign {digest} within 15 s")
        time.sleep(0.25)
    return key


def verified_with_cosignature(target: Target, stack: DevState) -> Report:
    """``verify`` requiring the local witness, once it cosigned the newest checkpoint.

    The stack signs a digest every 30 s: one signed between the wait and the
    verification is waited for too (a few times at most).
    """
    s3 = target.client("s3")
    for _ in range(3):
        newest = newest_digest_key(s3, target.audit_bucket)
        wait_for_local_cosignature(target, stack, newest)
        report = verify(target, witnesses=witness_keys(target, ()), require_witnesses=1, jobs=1)
        if newest_digest_key(s3, target.audit_bucket) == newest:
            return report
    return report


def digest_of_a_batch(
    target: Target, running_stack: RunningStack, requests: int
) -> tuple[Checkpoint, dict[str, Any]]:
    """Send ``requests``, then sign the digest of all they left in the ledger.

    When the stack's own 30 s digest took part of the batch first, the batch is
    sent again (a few times at most).
    """
    state = ledger_state(target)
    for _ in range(3):
        previous, _version = state.checkpoint()
        before = state.head().next_sequence
        send_mix(running_stack.state, requests)
        settle(target, before + requests)
        checkpoint = sign_now(target, running_stack.state_dir)
        document = stored_document(target, checkpoint.key)
        link = document["digest"]["previous"]
        if (link["key"] if link else None) == (previous.key if previous else None):
            return checkpoint, document
    pytest.fail("the stack's own digests kept splitting the batch")


# --------------------------------------------------------------------------- 1. the 4 KB case


def test_a_digest_larger_than_4_kb_is_a_small_checkpoint_the_local_witness_cosigns(
    running_stack: RunningStack, stack: DevState, target: Target
) -> None:
    checkpoint, document = digest_of_a_batch(target, running_stack, 60)

    # KMS signs at most 4096 bytes as a RAW message: the digest is far more, its checkpoint not.
    assert len(canonical(document)) > 4096
    assert len(canonical(document["digest"])) > 4096
    note = SignedNote.parse(document["checkpoint"])
    assert len(note.text.encode()) < 300
    assert note.text.splitlines()[:2] == [target.ledger_origin, str(checkpoint.tree_size)]
    assert [signature.name for signature in note.signatures] == [target.ledger_origin]

    cosigned = wait_for_local_cosignature(target, stack, checkpoint.key)
    published = SignedNote.parse(
        target.client("s3")
        .get_object(Bucket=target.audit_bucket, Key=cosigned)["Body"]
        .read()
        .decode()
    )
    assert published.text == note.text
    [trusted] = witness_keys(target, ())
    assert trusted.name == LOCAL_WITNESS
    assert trusted.cosigned(published) is not None

    report = verified_with_cosignature(target, stack)

    assert report.ok, report.findings
    assert report.cosigned_by == [LOCAL_WITNESS]
    assert report.cosigned_size is not None
    assert report.cosigned_size >= checkpoint.tree_size
    assert report.untrusted_refusals == 0


# --------------------------------------------------------------------------- copies of the ledger


@dataclass(frozen=True)
class Snapshot:
    """The live ledger as read once: its digests (chain order) and the digested objects."""

    digests: list[tuple[str, dict[str, Any]]]  # key, stored document
    bodies: dict[str, bytes]  # object key -> the digested version's bytes

    def entries(self, index: int) -> list[dict[str, Any]]:
        objects: list[dict[str, Any]] = self.digests[index][1]["digest"]["objects"]
        return objects

    def with_objects(self) -> list[int]:
        """The indexes of the digests that name objects."""
        return [index for index in range(len(self.digests)) if self.entries(index)]


@dataclass
class Stage:
    """What the insider (and the copies) sign with: the stage's KMS key, its origin."""

    s3: Any
    signer: KmsSigner
    log_key: LogKey
    public_key: Any
    origin: str


@pytest.fixture(scope="module")
def stage(target: Target) -> Stage:
    kms = target.client("kms")
    public_key = load_der_public_key(kms.get_public_key(KeyId=target.digest_key_id)["PublicKey"])
    assert target.digest_key_id
    return Stage(
        target.client("s3"),
        KmsSigner(kms, target.digest_key_id),
        LogKey(target.ledger_origin, public_key),  # type: ignore[arg-type]
        public_key,
        target.ledger_origin,
    )


@pytest.fixture(scope="module")
def snapshot(
    running_stack: RunningStack, stack: DevState, target: Target, stage: Stage
) -> Snapshot:
    """Three more digests with objects on the live ledger, then the whole ledger, read."""
    for _ in range(3):
        before = ledger_state(target).head().next_sequence
        send_mix(stack, 6)
        settle(target, before + 6)
        sign_now(target, running_stack.state_dir)
    s3 = stage.s3
    documents = [
        (key, stored_document(target, key)) for key in digest_keys(s3, target.audit_bucket)
    ]
    documents.sort(
        key=lambda item: (
            item[1]["digest"]["tree"]["size"],
            item[1]["digest"]["period"]["end"],
            item[0],
        )
    )
    entries = [entry for _, document in documents for entry in document["digest"]["objects"]]

    def read(entry: dict[str, Any]) -> tuple[str, bytes]:
        body = s3.get_object(
            Bucket=target.audit_bucket, Key=entry["key"], VersionId=entry["version_id"]
        )["Body"].read()
        return entry["key"], body

    with ThreadPoolExecutor(max_workers=8) as pool:
        bodies = dict(pool.map(read, entries))
    taken = Snapshot(documents, bodies)
    assert len(taken.with_objects()) >= 3
    return taken


def locked_bucket(s3: Any, purpose: str) -> str:
    """A new bucket with Object Lock (GOVERNANCE, a day), as the stage's own."""
    name = f"gatehouse-e2e-{purpose}-{uuid.uuid4().hex[:10]}"
    s3.create_bucket(Bucket=name, ObjectLockEnabledForBucket=True)
    s3.put_object_lock_configuration(
        Bucket=name,
        ObjectLockConfiguration={
            "ObjectLockEnabled": "Enabled",
            "Rule": {"DefaultRetention": {"Mode": "GOVERNANCE", "Days": 1}},
        },
    )
    return name


def put(s3: Any, bucket: str, key: str, body: bytes) -> str:
    """Store ``body`` once (as the writer does); its version id."""
    version: str = s3.put_object(
        Bucket=bucket, Key=key, Body=body, ChecksumAlgorithm="SHA256", IfNoneMatch="*"
    )["VersionId"]
    return version


def remove(s3: Any, bucket: str, key: str) -> None:
    """Delete every version of ``key``, as an insider allowed to bypass GOVERNANCE."""
    listed = s3.list_object_versions(Bucket=bucket, Prefix=key)
    for version in listed.get("Versions", []):
        if version["Key"] == key:
            s3.delete_object(
                Bucket=bucket,
                Key=key,
                VersionId=version["VersionId"],
                BypassGovernanceRetention=True,
            )


def lines_of(body: bytes) -> list[bytes]:
    return [line for line in gzip.decompress(body).split(b"\n") if line]


def gzipped(lines: Sequence[bytes]) -> bytes:
    return gzip.compress(b"".join(line + b"\n" for line in lines), mtime=0)


def link_of(document: dict[str, Any]) -> str:
    """What the next digest names this one by: the stage's signature in its checkpoint."""
    return SignedNote.parse(document["checkpoint"]).signatures[0].encoded


def resign(
    stage: Stage,
    digests: Sequence[tuple[str, dict[str, Any]]],
    bodies: dict[str, bytes],
    versions: dict[str, str],
    *,
    start: int = 0,
) -> list[tuple[str, dict[str, Any]]]:
    """``digests`` from index ``start`` on, signed anew over ``bodies`` stored as ``versions``.

    Every object entry, tree, frontier and consistency proof from ``start`` on is
    computed again from the lines, each digest names the one before it by its
    (new) signature, and the stage's key signs each checkpoint: what the stage
    would have signed had the bucket held these bytes.
    """
    tree, leaves = CompactRange(), list[bytes]()
    result = list(digests[:start])
    for index, (key, stored) in enumerate(digests):
        document = copy.deepcopy(stored["digest"])
        for entry in document["objects"]:
            lines = lines_of(bodies[entry["key"]])
            for line in lines:
                tree.append(leaf_hash(line))
                leaves.append(leaf_hash(line))
            entry.update(
                version_id=versions[entry["key"]],
                sha256=hashlib.sha256(bodies[entry["key"]]).hexdigest(),
                count=len(lines),
                tree_size=tree.size,
                root=tree.root().hex(),
            )
        if index < start:
            continue
        document["tree"] = {
            "size": tree.size,
            "root": tree.root().hex(),
            "frontier": tree.to_json(),
        }
        if index == 0:
            document["previous"], document["consistency"] = None, None
        else:
            before_key, before = result[index - 1]
            document["previous"] = {"key": before_key, "signature": link_of(before)}
            size = before["digest"]["tree"]["size"]
            path = consistency_proof(leaves, size) if 0 < size < tree.size else []
            document["consistency"] = (
                {"from_size": size, "path": [node.hex() for node in path]} if size else None
            )
        note = sign_checkpoint(document, stage.log_key, stage.signer)
        result.append((key, {"digest": document, "checkpoint": note.serialize()}))
    return result


@dataclass
class LedgerCopy:
    """A copy of the live ledger in buckets of its own, signed by the stage's key."""

    stage: Stage
    bucket: str
    anchor: S3Anchor
    digests: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    bodies: dict[str, bytes] = field(default_factory=dict)
    versions: dict[str, str] = field(default_factory=dict)

    @property
    def s3(self) -> Any:
        return self.stage.s3

    def store_digests(self, digests: Sequence[tuple[str, dict[str, Any]]]) -> None:
        """Store (or replace, bypassing GOVERNANCE) digests; anchor each, as the stage does."""
        known = dict(self.digests)
        for key, document in digests:
            if key in known:
                remove(self.s3, self.bucket, key)
            put(self.s3, self.bucket, key, canonical(document))
            known[key] = document
        self.digests = sorted(
            known.items(),
            key=lambda item: (
                item[1]["digest"]["tree"]["size"],
                item[1]["digest"]["period"]["end"],
            ),
        )

    def anchor_all(self, digests: Sequence[tuple[str, dict[str, Any]]]) -> None:
        for key, document in digests:
            tree = document["digest"]["tree"]
            self.anchor.write(
                Checkpoint(
                    key,
                    link_of(document),
                    tree["size"],
                    tree["root"],
                    document["digest"]["period"]["end"],
                    tuple((size, value) for size, value in tree["frontier"]),
                    document["checkpoint"],
                )
            )

    def rewrite_object(self, key: str, body: bytes) -> str:
        """The insider replaces an object: the new bytes as the only version left."""
        remove(self.s3, self.bucket, key)
        self.bodies[key] = body
        self.versions[key] = put(self.s3, self.bucket, key, body)
        return self.versions[key]

    def verify(self, witnesses: Sequence[WitnessKey] = (), required: int = 0) -> Report:
        verifier = LedgerVerifier(self.s3, self.bucket, self.stage.public_key, jobs=1)
        return verifier.verify(
            anchor_versions=self.anchor.versions(),
            witnesses=witnesses,
            require_witnesses=required,
        )

    def next_digest(self, *, lines: Sequence[bytes] = ()) -> str:
        """The insider signs the next digest (``lines`` as one new object), after all the others."""
        before_key, before = self.digests[-1]
        document = copy.deepcopy(before["digest"])
        size = document["tree"]["size"]
        end = max(time.time(), _epoch(document["period"]["end"]) + 1)
        document["period"] = {"start": document["period"]["end"], "end": utc_text(end)}
        document["objects"] = []
        document["previous"] = {"key": before_key, "signature": link_of(before)}
        document["consistency"] = {"from_size": size, "path": []}
        if lines:
            tree = CompactRange.from_json(document["tree"]["frontier"])
            key = object_key(end, size, 999_999)
            body = gzipped(lines)
            self.bodies[key] = body
            self.versions[key] = put(self.s3, self.bucket, key, body)
            for line in lines:
                tree.append(leaf_hash(line))
            document["objects"] = [
                {
                    "key": key,
                    "version_id": self.versions[key],
                    "sha256": hashlib.sha256(body).hexdigest(),
                    "first_sequence": size,
                    "count": len(lines),
                    "tree_size": tree.size,
                    "root": tree.root().hex(),
                }
            ]
            document["tree"] = {
                "size": tree.size,
                "root": tree.root().hex(),
                "frontier": tree.to_json(),
            }
            # From what the insider's own digests signed: a proof over the rewritten leaves.
            all_leaves = [
                leaf_hash(line)
                for _, stored in self.digests
                for entry in stored["digest"]["objects"]
                for line in lines_of(self.bodies[entry["key"]])
            ] + [leaf_hash(line) for line in lines]
            path = consistency_proof(all_leaves, size)
            document["consistency"] = {"from_size": size, "path": [node.hex() for node in path]}
        note = sign_checkpoint(document, self.stage.log_key, self.stage.signer)
        key = digest_key(end, document["tree"]["size"])
        self.store_digests([(key, {"digest": document, "checkpoint": note.serialize()})])
        return key


def _epoch(text: str) -> float:
    """``2026-12-08T03:00:44Z`` or ``20261208T030044Z``: epoch seconds."""
    form = "%Y-%m-%dT%H:%M:%SZ" if "-" in text else "%Y%m%dT%H%M%SZ"
    return float(calendar.timegm(time.strptime(text, form)))


def honest_copy(stage: Stage, snapshot: Snapshot, purpose: str) -> LedgerCopy:
    """The live ledger, copied (objects, digests re-signed, every checkpoint anchored)."""
    bucket = locked_bucket(stage.s3, purpose)
    anchor_bucket = locked_bucket(stage.s3, f"{purpose}-anchor")
    ledger = LedgerCopy(
        stage, bucket, S3Anchor(stage.s3, anchor_bucket, "ledger/dev/checkpoint.json")
    )

    def store(item: tuple[str, bytes]) -> tuple[str, str]:
        return item[0], put(stage.s3, bucket, item[0], item[1])

    with ThreadPoolExecutor(max_workers=8) as pool:
        ledger.versions = dict(pool.map(store, snapshot.bodies.items()))
    ledger.bodies = dict(snapshot.bodies)
    signed = resign(stage, snapshot.digests, ledger.bodies, ledger.versions)
    ledger.store_digests(signed)
    ledger.anchor_all(signed)
    return ledger


class OwnWitness(Witness):
    """A witness of the tests' own: a fresh key, its memory in ``state``."""

    def __init__(
        self, stage: Stage, state: Path, name: str, bucket: str, publish_to: str | None = None
    ) -> None:
        signer = WitnessSigner(name, Ed25519PrivateKey.generate())
        super().__init__(
            signer,
            FileWitnessState(state),
            stage.s3,
            [WatchedLog(stage.origin, stage.public_key, bucket, publish_to)],
            log=lambda _line: None,
        )
        self.key = signer.key  # what a verifier trusts


def found(report: Report) -> list[tuple[str, str]]:
    return sorted((str(finding.kind), finding.where) for finding in report.findings)


def rewritten(line: bytes) -> bytes:
    """The event backdated to 2020 (the line keeps its id and ledger position)."""
    changed, count = re.subn(
        rb'"event_time":"[^"]*"', b'"event_time":"2020-01-01T00:00:00.000Z"', line, count=1
    )
    assert count == 1, line[:200]
    return changed


def middle(snapshot: Snapshot, lines: int = 1) -> tuple[int, str]:
    """An object of ``lines``+ lines in a middle digest (neither the first nor the newest)."""
    candidates = [
        (index, entry["key"])
        for index in snapshot.with_objects()
        if 0 < index < len(snapshot.digests) - 1
        for entry in snapshot.entries(index)
        if entry["count"] >= lines
    ]
    assert candidates, f"no middle digest names an object of {lines}+ lines"
    return candidates[len(candidates) // 2]


def test_an_honest_copy_verifies_and_a_witness_cosigns_every_checkpoint(
    stage: Stage, snapshot: Snapshot, tmp_path: Path
) -> None:
    ledger = honest_copy(stage, snapshot, "honest")
    witness = OwnWitness(stage, tmp_path / "w.json", "example.com/honest", ledger.bucket)

    run = witness.run()

    assert [o.verdict for o in run.outcomes] == [Verdict.COSIGNED] * len(snapshot.digests)
    report = ledger.verify([witness.key], 1)
    assert report.ok, report.findings
    assert report.digests == len(snapshot.digests)
    assert report.cosigned_by == ["example.com/honest"]


# --------------------------------------------------------------------------- 2. a split view


@dataclass
class SplitView:
    """The public copy, and two witnesses: A shown it, B shown the insider's fork."""

    public: LedgerCopy
    a: OwnWitness
    b: OwnWitness
    forked: list[str]  # the digests (keys) the two were shown differently


def split_view(stage: Stage, snapshot: Snapshot, tmp_path: Path) -> SplitView:
    public = honest_copy(stage, snapshot, "public")
    index, target_object = middle(snapshot)
    # The insider's fork: one line of a middle object rewritten, the digests from the one
    # naming it on signed again over the rewritten tree. Witness B is shown only the fork.
    fork = locked_bucket(stage.s3, "fork")
    lines = lines_of(public.bodies[target_object])
    body = gzipped([rewritten(lines[0]), *lines[1:]])
    versions = {**public.versions, target_object: put(stage.s3, fork, target_object, body)}
    forked = resign(
        stage, public.digests, {**public.bodies, target_object: body}, versions, start=index
    )
    for key, document in forked:
        put(stage.s3, fork, key, canonical(document))
    pairs = zip(public.digests, forked, strict=True)
    for position, ((key, honest), (_, shown)) in enumerate(pairs):
        # The same trees before the rewritten object; from it on, the same sizes, other roots.
        assert shown["digest"]["tree"]["size"] == honest["digest"]["tree"]["size"], key
        assert (shown["checkpoint"] == honest["checkpoint"]) == (position < index), key
    a = OwnWitness(stage, tmp_path / "a.json", "example.com/a", public.bucket)
    b = OwnWitness(stage, tmp_path / "b.json", "example.com/b", fork, public.bucket)
    # Each witness sees one consistent history, and cosigns all of it.
    for witness in (a, b):
        assert {o.verdict for o in witness.run().outcomes} == {Verdict.COSIGNED}
    return SplitView(public, a, b, [key for key, _ in public.digests[index:]])


def test_a_split_view_between_two_witnesses_is_a_forked_checkpoint(
    stage: Stage, snapshot: Snapshot, tmp_path: Path
) -> None:
    view = split_view(stage, snapshot, tmp_path)

    # Both publish where the public reads: the stage's key signed two trees of one size.
    forks = [("forked_checkpoint", cosigned_key(view.b.key_id, key)) for key in view.forked]
    newest = view.public.digests[-1][0]

    report = view.public.verify([view.a.key], 1)
    assert found(report) == sorted(forks)
    assert report.cosigned_by == ["example.com/a"]

    report = view.public.verify([view.a.key, view.b.key], 2)
    assert found(report) == sorted([*forks, ("missing_cosignatures", newest)])
    assert report.cosigned_by == ["example.com/a"]
    [missing] = [f for f in report.findings if f.kind == "missing_cosignatures"]
    assert "cosigned by 1 of the 2" in missing.detail


def test_a_split_view_hidden_behind_delete_markers_is_still_named(
    stage: Stage, snapshot: Snapshot, tmp_path: Path
) -> None:
    view = split_view(stage, snapshot, tmp_path)
    evidence = [cosigned_key(view.b.key_id, key) for key in view.forked]
    # A delete marker needs no retention bypass: the locked versions stay, unread.
    for key in evidence:
        view.public.s3.delete_object(Bucket=view.public.bucket, Key=key)

    report = view.public.verify([view.a.key], 1)

    named = {f.where for f in report.findings if f.kind in ("forked_checkpoint", "hidden_version")}
    assert set(evidence) <= named, found(report)


# --------------------------------------------------------------------------- 3. a rewritten middle


def test_a_rewritten_middle_signed_again_is_named_and_refused_by_the_witness(
    stage: Stage, snapshot: Snapshot, tmp_path: Path
) -> None:
    ledger = honest_copy(stage, snapshot, "rewritten")
    witness = OwnWitness(stage, tmp_path / "w.json", "example.com/w", ledger.bucket)
    trusted = [witness.key]
    assert len(witness.run().cosigned) == len(snapshot.digests)
    honest_newest = ledger.digests[-1]
    index, target_object = middle(snapshot)

    # The insider rewrites a middle object (the only version left) and signs every digest
    # from the one naming it on again, in place: the bucket holds one consistent history.
    lines = lines_of(ledger.bodies[target_object])
    body = gzipped([*lines[:-1], rewritten(lines[-1])])
    version = ledger.rewrite_object(target_object, body)
    ledger.store_digests(resign(stage, ledger.digests, ledger.bodies, ledger.versions, start=index))
    resigned = [key for key, _ in ledger.digests[index:]]
    newest = ledger.digests[-1][0]
    assert newest == honest_newest[0]
    assert (
        ledger.digests[-1][1]["digest"]["tree"]["size"]
        == (honest_newest[1]["digest"]["tree"]["size"])
    )
    assert (
        ledger.digests[-1][1]["digest"]["tree"]["root"]
        != (honest_newest[1]["digest"]["tree"]["root"])
    )
    assert any(e["version_id"] == version for e in ledger.digests[index][1]["digest"]["objects"])

    # Nothing in the objects or digests contradicts itself (no altered_object, no
    # inconsistent_digests: every proof was made anew). What the witness published and
    # the anchor still hold the honest checkpoints.
    report = ledger.verify(trusted, 1)
    assert found(report) == sorted(
        [
            *[("forked_checkpoint", cosigned_key(witness.key_id, key)) for key in resigned],
            ("truncated_tail", newest),
            ("missing_cosignatures", newest),
        ]
    )
    [tail] = [f for f in report.findings if f.kind == "truncated_tail"]
    assert tail.detail == "the anchor's signature differs"

    # A witness never reads back what it has passed: the rewrite in place is not judged...
    assert witness.run().outcomes == []
    # ...until the next checkpoint: the same tree size, another root; then a larger tree
    # whose proof leads from the rewritten root, not from the one the witness cosigned.
    same_size = ledger.next_digest()
    size = ledger.digests[-1][1]["digest"]["tree"]["size"]
    event = (
        b'{"schema_version":1,"event_id":"' + str(uuid.uuid4()).encode() + b'",'
        b'"event_type":"decision","ledger":{"sequence":%d}}' % size
    )
    grown = ledger.next_digest(lines=[event])

    run = witness.run()

    assert [(o.digest_key, o.verdict) for o in run.outcomes] == [
        (same_size, Verdict.FORK),
        (grown, Verdict.INCONSISTENT),
    ]
    for key in (same_size, grown):
        assert exists(stage.s3, ledger.bucket, refusal_key(witness.key_id, key))
    report = ledger.verify(trusted, 1)
    assert found(report) == sorted(
        [
            *[("forked_checkpoint", cosigned_key(witness.key_id, key)) for key in resigned],
            ("truncated_tail", newest),
            ("witness_refused", same_size),
            ("witness_refused", grown),
            ("missing_cosignatures", grown),
        ]
    )
    refused = {f.where: f.detail for f in report.findings if f.kind == "witness_refused"}
    assert ": fork: " in refused[same_size]
    assert ": inconsistent: " in refused[grown]


def test_a_rewritten_middle_with_only_the_later_digests_signed_again_breaks_the_tree(
    stage: Stage, snapshot: Snapshot
) -> None:
    ledger = honest_copy(stage, snapshot, "later")
    index, target_object = middle(snapshot)
    digested = ledger.versions[target_object]
    lines = lines_of(ledger.bodies[target_object])

    # The insider rewrites the object and signs again only the digests after the one
    # naming it: that one still names the version deleted, and the next one's tree does
    # not extend the tree it signed.
    ledger.rewrite_object(target_object, gzipped([*lines[:-1], rewritten(lines[-1])]))
    ledger.store_digests(
        resign(stage, ledger.digests, ledger.bodies, ledger.versions, start=index + 1)
    )
    after, document = ledger.digests[index + 1]

    report = ledger.verify()

    where = f"{target_object}?versionId={digested}"
    assert found(report) == sorted(
        [
            ("missing_object", where),
            ("hidden_version", where),
            ("inconsistent_digests", after),  # the proof it carries
            ("inconsistent_digests", after),  # the proof the verifier builds from the lines
            *[
                ("inconsistent_tree", f"{entry['key']}?versionId={entry['version_id']}")
                for entry in document["digest"]["objects"]
            ],
            ("inconsistent_tree", after),
            ("truncated_tail", ledger.digests[-1][0]),
        ]
    )


# --------------------------------------------------------------------------- 4. a truncated tail


def test_deleted_newest_digests_are_a_truncated_tail_and_a_smaller_tree_a_rollback(
    stage: Stage, snapshot: Snapshot, tmp_path: Path
) -> None:
    ledger = honest_copy(stage, snapshot, "truncated")
    witness = OwnWitness(stage, tmp_path / "w.json", "example.com/w", ledger.bucket)
    trusted = [witness.key]
    assert len(witness.run().cosigned) == len(snapshot.digests)
    largest = ledger.digests[-1][1]["digest"]["tree"]["size"]
    deleted = [key for key, d in ledger.digests if d["digest"]["tree"]["size"] == largest]
    anchored = ledger.anchor.versions()[0].key
    assert anchored == ledger.digests[-1][0]

    # The insider deletes the newest digests (every one of the largest tree).
    for key in deleted:
        remove(stage.s3, ledger.bucket, key)
    ledger.digests = [(k, d) for k, d in ledger.digests if k not in deleted]
    kept = ledger.digests[-1][0]
    assert ledger.digests[-1][1]["digest"]["tree"]["size"] < largest

    report = ledger.verify(trusted, 1)
    # The anchor's versions know the larger tree; the witness's cosignatures of the deleted
    # digests are checkpoints the stage signed that the bucket no longer holds.
    assert found(report) == sorted(
        [
            ("truncated_tail", anchored),
            *[("forked_checkpoint", cosigned_key(witness.key_id, key)) for key in deleted],
        ]
    )
    assert report.cosigned_by == ["example.com/w"]  # the newest digest left was cosigned

    # The next digest the insider signs chains on from what is left: a smaller tree, signed
    # later (a digest's key sorts by its second, then its size: one signed in the very
    # second of a deleted one would sort before it, where a witness does not look).
    time.sleep(max(0.0, _epoch(deleted[-1].rsplit("/", 1)[1][:16]) + 1.1 - time.time()))
    smaller = ledger.next_digest()
    run = witness.run()

    assert [(o.digest_key, o.verdict) for o in run.outcomes] == [(smaller, Verdict.ROLLBACK)]
    assert f"signed after the tree of {largest}" in run.outcomes[0].detail
    report = ledger.verify(trusted, 1)
    assert found(report) == sorted(
        [
            ("truncated_tail", anchored),
            *[("forked_checkpoint", cosigned_key(witness.key_id, key)) for key in deleted],
            ("witness_refused", smaller),
            ("missing_cosignatures", smaller),
        ]
    )
    assert kept != smaller


# --------------------------------------------------------------------------- 5. reordered lines


def test_lines_stored_out_of_order_under_a_good_signature_are_reordered_lines(
    stage: Stage, snapshot: Snapshot
) -> None:
    # Two lines of an object swapped before the digests were signed (the key signed what
    # the bucket holds): every signature, tree and proof holds; only the order does not.
    index, target_object = middle(snapshot, lines=2)
    lines = lines_of(snapshot.bodies[target_object])
    swapped = gzipped([lines[1], lines[0], *lines[2:]])
    ledger = honest_copy(
        stage, Snapshot(snapshot.digests, {**snapshot.bodies, target_object: swapped}), "swapped"
    )

    report = ledger.verify()

    version = ledger.versions[target_object]
    assert found(report) == [("reordered_lines", f"{target_object}?versionId={version}")]
    assert index > 0


def test_lines_reordered_after_signing_leave_the_digested_version_missing(
    stage: Stage, snapshot: Snapshot
) -> None:
    # Without the key, the insider can only replace the version the digest names.
    ledger = honest_copy(stage, snapshot, "reordered")
    _, target_object = middle(snapshot, lines=2)
    digested = ledger.versions[target_object]
    lines = lines_of(ledger.bodies[target_object])
    ledger.rewrite_object(target_object, gzipped([lines[1], lines[0], *lines[2:]]))

    report = ledger.verify()

    where = f"{target_object}?versionId={digested}"
    assert found(report) == [("hidden_version", where), ("missing_object", where)]


# --------------------------------------------------------------------------- 6. the CLI


def test_witness_run_and_verify_requiring_a_witness_through_the_cli(
    running_stack: RunningStack, stack: DevState, target: Target
) -> None:
    wait_for_local_cosignature(
        target, stack, newest_digest_key(target.client("s3"), target.audit_bucket)
    )

    ran = run_cli_status(running_stack.state_dir, "witness", "run")

    assert ran.returncode == 0, ran.stdout + ran.stderr
    shown = ran.stdout.splitlines()
    assert shown == ["nothing new to witness"] or all(
        line.startswith("cosigned ") for line in shown
    ), ran.stdout

    for _ in range(3):  # a digest the stack signs meanwhile is cosigned within 2 s
        newest = newest_digest_key(target.client("s3"), target.audit_bucket)
        wait_for_local_cosignature(target, stack, newest)
        verified = run_cli_status(
            running_stack.state_dir, "audit", "verify", "--require-witnesses", "1"
        )
        if newest_digest_key(target.client("s3"), target.audit_bucket) == newest:
            break
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert "ok: " in verified.stdout
    assert f"cosigned by 1 trusted witness(es): {LOCAL_WITNESS}" in verified.stdout


def test_a_refusal_hidden_behind_a_delete_marker_is_still_named(
    stage: Stage, snapshot: Snapshot, tmp_path: Path
) -> None:
    public = honest_copy(stage, snapshot, "refusal")
    # The witness is shown the public digests and then, only to it, a checkpoint of the
    # newest tree with another root; it publishes where the public reads.
    shown = locked_bucket(stage.s3, "shown")
    for key, stored in public.digests:
        put(stage.s3, shown, key, canonical(stored))
    honest_key, honest = public.digests[-1]
    document = copy.deepcopy(honest["digest"])
    document["tree"]["root"] = "00" * 32
    end = time.time() + 5
    document["period"] = {"start": document["period"]["end"], "end": utc_text(end)}
    document["objects"] = []
    document["previous"] = {"key": honest_key, "signature": link_of(honest)}
    document["consistency"] = {"from_size": document["tree"]["size"], "path": []}
    note = sign_checkpoint(document, stage.log_key, stage.signer)
    forked = digest_key(end, document["tree"]["size"])
    put(stage.s3, shown, forked, canonical({"digest": document, "checkpoint": note.serialize()}))
    witness = OwnWitness(stage, tmp_path / "w.json", "example.com/w", shown, public.bucket)
    run = witness.run()
    assert [o.verdict for o in run.outcomes] == [Verdict.COSIGNED] * len(public.digests) + [
        Verdict.FORK
    ]
    assert found(public.verify([witness.key], 1)) == [("witness_refused", forked)]
    refusal = refusal_key(witness.key_id, forked)

    public.s3.delete_object(Bucket=public.bucket, Key=refusal)  # a delete marker, no bypass

    report = public.verify([witness.key], 1)
    named = {f.where for f in report.findings if f.kind in ("witness_refused", "hidden_version")}
    assert {forked, refusal} & named, found(report)


# --------------------------------------------------------------------------- racing digest writers


class StaleRead(LedgerState):
    """The ledger's state, whose chain head reads as it was a moment ago."""

    def __init__(self, dynamodb: Any, table: str, seen: tuple[Checkpoint | None, int]) -> None:
        super().__init__(dynamodb, table)
        self._seen = seen

    def checkpoint(self) -> tuple[Checkpoint | None, int]:
        return self._seen


def test_two_digest_writers_racing_leave_no_fork_in_the_bucket(
    stage: Stage, target: Target
) -> None:
    # All real but the timing: the stage's KMS key, a ledger state table and an Object
    # Lock bucket of the test's own (empty: every digest names no object).
    dynamodb = target.client("dynamodb")
    table = f"gatehouse-e2e-race-{uuid.uuid4().hex[:10]}"
    dynamodb.create_table(
        TableName=table,
        AttributeDefinitions=[
            {"AttributeName": "pk", "AttributeType": "S"},
            {"AttributeName": "sk", "AttributeType": "S"},
        ],
        KeySchema=[
            {"AttributeName": "pk", "KeyType": "HASH"},
            {"AttributeName": "sk", "KeyType": "RANGE"},
        ],
        BillingMode="PAY_PER_REQUEST",
    )
    state = LedgerState(dynamodb, table)
    bucket = locked_bucket(stage.s3, "race")
    anchor = S3Anchor(
        stage.s3, locked_bucket(stage.s3, "race-anchor"), "ledger/dev/checkpoint.json"
    )
    now = time.time()

    def writer(view: LedgerState, at: float) -> DigestWriter:
        return DigestWriter(
            stage.s3,
            bucket,
            view,
            stage.signer,
            stage="dev",
            origin=stage.origin,
            anchor=anchor,
            clock=lambda: at,
        )

    first = writer(state, now).write()
    seen = state.checkpoint()  # what the operator's `audit digest` read...
    scheduled = writer(state, now + 1).write()  # ...before the schedule's digest moved the chain
    with pytest.raises(LedgerBusy):
        writer(StaleRead(dynamodb, table, seen), now + 2).write()
    assert state.checkpoint()[0] == scheduled
    # The stale writer's claim was refused before it stored anything.
    assert len(digest_keys(stage.s3, bucket)) == 2
    assert first.key in {key for key in digest_keys(stage.s3, bucket)}

    report = LedgerVerifier(stage.s3, bucket, stage.public_key, jobs=1).verify(
        anchor_versions=anchor.versions()
    )

    assert report.ok, found(report)
