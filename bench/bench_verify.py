"""`gatehouse audit verify` throughput (issue 4 budget: >= 200,000 events/s).

A ledger of 100 objects x 1,000 realistic events (about 1.3 KB each), in
the writer's exact format, with four signed digests, is put into
in-process moto; then the verifier re-derives all of it. S3 calls are timed
by a thin proxy and subtracted (against AWS they are network), so the figure
is the verifier's own work: gunzip, SHA-256 per object, per line the ledger
position and event id, the leaf hash, the Merkle tree, signatures.

Floor: hashing the same lines (SHA-256 of 0x00 || line), the least any
verifier must do per event.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.bench_writer import Timed, event_body

OBJECTS = 100
PER_OBJECT = 1000
DIGESTS = 4


def main() -> None:
    import boto3
    from cryptography.hazmat.primitives.asymmetric import ec
    from moto import mock_aws

    from chalicelib.audit.writer import object_key
    from chalicelib.ledger.digest import DigestWriter, canonical, digest_key
    from chalicelib.ledger.merkle import CompactRange, leaf_hash
    from chalicelib.ledger.verify import LedgerVerifier
    from chalicelib.proxy.assertion import LocalSigner

    private = ec.generate_private_key(ec.SECP256R1())
    signer = LocalSigner(private)
    lines: list[bytes] = []
    for n in range(OBJECTS * PER_OBJECT):
        body = event_body(n)
        lines.append(f'{body[:-1]},"ledger":{{"sequence":{n}}}}}'.encode())
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
        previous: dict[str, Any] | None = None
        per_digest = OBJECTS // DIGESTS
        entries: list[dict[str, Any]] = []
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
                {
                    "key": key,
                    "version_id": put["VersionId"],
                    "sha256": hashlib.sha256(payload).hexdigest(),
                    "first_sequence": index * PER_OBJECT,
                    "count": len(chunk),
                    "tree_size": tree.size,
                    "root": tree.root().hex(),
                }
            )
            if len(entries) == per_digest:
                end = 1_800_000_000 + index
                digest = {
                    "format": 1,
                    "stage": "bench",
                    "period": {"start": None, "end": f"2027-01-15T{index:02d}:00:00Z"},
                    "tree": {
                        "size": tree.size,
                        "root": tree.root().hex(),
                        "frontier": [list(e) for e in tree.to_json()],
                    },
                    "objects": entries,
                    "previous": previous,
                    "signing_key": {"kid": signer.jwk()["kid"], "alg": "ES256"},
                }
                signature = base64.b64encode(signer.sign(canonical(digest))).decode()
                key = digest_key(end, tree.size)
                s3_raw.put_object(
                    Bucket=bucket,
                    Key=key,
                    Body=canonical({"digest": digest, "signature": signature}),
                    ChecksumAlgorithm="SHA256",
                )
                previous = {"key": key, "signature": signature}
                entries = []
        assert DigestWriter is not None  # the format above is the digest writer's
        spent = [0.0]
        verifier = LedgerVerifier(Timed(s3_raw, spent), bucket, private.public_key())
        started = time.perf_counter()
        report = verifier.verify()
        total = time.perf_counter() - started
    assert report.ok, report.findings[:3]
    assert report.events == OBJECTS * PER_OBJECT
    own = total - spent[0]
    per_event = own / report.events
    print(
        f"  {'verify, per event, excluding S3 calls':58} {per_event * 1e6:9.2f} µs"
        f"  {per_event / floor:5.2f}x floor"
    )
    print(
        f"  {'verify throughput, excluding S3 calls':58} {report.events / own:9.0f} events/s"
        "   budget: >= 200,000 events/s"
    )
    print(f"  {'reference: including moto S3':58} {report.events / total:9.0f} events/s")


if __name__ == "__main__":
    main()
