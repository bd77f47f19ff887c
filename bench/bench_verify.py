"""`gatehouse audit verify` throughput (budget: >= 200,000 events/s).

A ledger of 100 objects x 1,000 realistic events (about 1.3 KB each), in
the writer's exact format, with four signed digests, is put into
in-process moto; then the verifier re-derives all of it, once from moto
(reference) and then from the same bytes served from memory (against AWS
the downloads wait on the network, in parallel), with one process and with
one per CPU. The figure is the verifier's own work: gunzip, SHA-256 per
object, per line the ledger position and event id, the leaf hash, the
Merkle tree, signatures.

Floor: hashing the same lines (SHA-256 of 0x00 || line), the least any
verifier must do per event.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.bench_writer import event_body

OBJECTS = 100
PER_OBJECT = 1000
DIGESTS = 4
ORIGIN = "example.com/gatehouse-bench"


def main() -> None:
    import boto3
    from cryptography.hazmat.primitives.asymmetric import ec
    from moto import mock_aws

    from chalicelib.aws.signers import LocalSigner
    from chalicelib.ledger.digest import sign_checkpoint
    from chalicelib.ledger.layout import canonical, digest_key, object_key, with_sequence
    from chalicelib.ledger.merkle import CompactRange, leaf_hash
    from chalicelib.ledger.notes import LogKey
    from chalicelib.ledger.records import Digest, DigestEntry, DigestLink
    from chalicelib.ledger.verify import LedgerVerifier

    private = ec.generate_private_key(ec.SECP256R1())
    signer = LocalSigner(private)
    lines: list[bytes] = []
    for n in range(OBJECTS * PER_OBJECT):
        lines.append(with_sequence(event_body(n), n))
    print(f"ledger: {OBJECTS} objects x {PER_OBJECT} events, {len(lines[0])} bytes per line")

    started = time.perf_counter()
    for line in lines:
        leaf_hash(line)
    floor = (time.perf_counter() - started) / len(lines)
    print(f"  {'floor: SHA-256 leaf hash per line':58} {floor * 1e6:9.2f} µs")

    with mock_aws():
        s3_raw = boto3.client("s3", region_name="us-east-1")
        bucket = "gatehouse-bench-audit"
        s3_raw.create_bucket(Bucket=bucket, ObjectLockEnabledForBucket=True)
        tree = CompactRange()
        previous: DigestLink | None = None
        per_digest = OBJECTS // DIGESTS
        entries: list[DigestEntry] = []
        for index in range(OBJECTS):
            chunk = lines[index * PER_OBJECT : (index + 1) * PER_OBJECT]
            payload = gzip.compress(b"".join(line + b"\n" for line in chunk), mtime=0)
            key = object_key(1_800_000_000 + index, index * PER_OBJECT, index + 1)
            put = s3_raw.put_object(
                Bucket=bucket, Key=key, Body=payload, ChecksumAlgorithm="SHA256"
            )
            for line in chunk:
                tree.append(leaf_hash(line))
            entries.append(
                DigestEntry(
                    key=key,
                    version_id=put["VersionId"],
                    sha256=hashlib.sha256(payload).hexdigest(),
                    first_sequence=index * PER_OBJECT,
                    count=len(chunk),
                    tree_size=tree.size,
                    root=tree.root().hex(),
                )
            )
            if len(entries) == per_digest:
                end = 1_800_000_000 + index
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
                    origin=ORIGIN,
                ).to_document()
                note = sign_checkpoint(digest, LogKey(ORIGIN, private.public_key()), signer)
                key = digest_key(end, tree.size)
                s3_raw.put_object(
                    Bucket=bucket,
                    Key=key,
                    Body=canonical({"digest": digest, "checkpoint": note.serialize()}),
                    ChecksumAlgorithm="SHA256",
                )
                previous = DigestLink(key, note.signatures[0].encoded)
                entries = []
        started = time.perf_counter()
        report = LedgerVerifier(s3_raw, bucket, private.public_key()).verify()
        with_moto = time.perf_counter() - started
        assert report.ok, report.findings[:3]
        served = MemoryS3.copy_of(s3_raw, bucket)
    for jobs in (1, os.cpu_count() or 1):
        verifier = LedgerVerifier(served, bucket, private.public_key(), jobs=jobs)
        started = time.perf_counter()
        report = verifier.verify()
        own = time.perf_counter() - started
        assert report.ok, report.findings[:3]
        assert report.events == OBJECTS * PER_OBJECT
        per_event = own / report.events
        print(
            f"  {f'verify, per event, bucket in memory, {jobs} process(es)':58} "
            f"{per_event * 1e6:9.2f} µs  {per_event / floor:5.2f}x floor"
        )
        print(
            f"  {f'verify throughput, {jobs} process(es)':58} {report.events / own:9.0f} events/s"
            "   budget: >= 200,000 events/s"
        )
    label = "reference: reading from in-process moto S3"
    print(f"  {label:58} {report.events / with_moto:9.0f} events/s")


class MemoryS3:
    """The bucket's objects, served from memory with the two calls the verifier makes.

    Against AWS the verifier's downloads wait on the network, in parallel;
    in-process moto would instead spend this process's CPU on them. Serving
    the same bytes from memory leaves the verifier's own work to measure.
    """

    def __init__(self, objects: dict[tuple[str, str | None], bytes]) -> None:
        self._objects = objects

    @classmethod
    def copy_of(cls, s3: Any, bucket: str) -> MemoryS3:
        objects: dict[tuple[str, str | None], bytes] = {}
        for version in s3.list_object_versions(Bucket=bucket).get("Versions", []):
            body = s3.get_object(Bucket=bucket, Key=version["Key"], VersionId=version["VersionId"])[
                "Body"
            ].read()
            objects[(version["Key"], version["VersionId"])] = body
            if version["IsLatest"]:
                objects[(version["Key"], None)] = body
        return cls(objects)

    def get_object(self, Bucket: str, Key: str, VersionId: str | None = None) -> dict[str, Any]:
        return {"Body": io.BytesIO(self._objects[(Key, VersionId)])}

    def get_paginator(self, name: str) -> Any:
        assert name in ("list_object_versions", "list_objects_v2"), name
        versions = sorted((key, version) for key, version in self._objects if version)
        return _Pages(versions, current_only=name == "list_objects_v2")


class _Pages:
    def __init__(self, versions: list[tuple[str, str]], *, current_only: bool) -> None:
        self._versions = versions
        self._current_only = current_only

    def paginate(self, Bucket: str, Prefix: str) -> list[dict[str, Any]]:
        stored = datetime(2027, 1, 15, tzinfo=UTC)
        listed = [
            {"Key": key, "VersionId": version, "IsLatest": True, "LastModified": stored}
            for key, version in self._versions
            if key.startswith(Prefix)
        ]
        if self._current_only:
            return [{"Contents": [{"Key": item["Key"]} for item in listed]}]
        return [{"Versions": listed}]


if __name__ == "__main__":
    main()
