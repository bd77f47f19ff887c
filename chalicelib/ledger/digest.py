"""Signed digests: what the log held at a moment, signed, chained, and anchored elsewhere.

A digest names the objects committed since the previous digest (key,
version id, SHA-256, sequences), the Merkle tree size and root after them,
and the previous digest's key and signature; it is signed with the stage's
P-256 key (KMS ``ECDSA_SHA_256``) and stored under
``audit/v1/digests/dt=.../hour=.../<end>-<tree size>.json`` with
``If-None-Match: *``. Digests are written on a schedule whether or not
anything happened (an empty period is a statement too). The newest
checkpoint (digest key, tree size, root, signature) is also written to a
separately configured anchor, so deleting the newest digests is detected.

Anyone with the bucket and the public key can check it: the signature
covers the canonical JSON (sorted keys, no spaces) of the ``digest`` member.
"""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from chalicelib.ledger.errors import LedgerBusy, LedgerUnavailable
from chalicelib.ledger.layout import canonical, digest_key, utc_text
from chalicelib.ledger.merkle import EMPTY_ROOT
from chalicelib.ledger.records import Checkpoint, Digest, DigestEntry, DigestLink

if TYPE_CHECKING:
    from chalicelib.aws.signers import Signer
    from chalicelib.ledger.records import ObjectRecord
    from chalicelib.ledger.state import LedgerState


class S3Anchor:
    """The anchor: the newest checkpoint, kept in a separately controlled bucket.

    Parameters
    ----------
    s3:
        A boto3 S3 client allowed to write the anchor (ideally another account's bucket).
    bucket, key:
        Where the checkpoint lives.
    """

    def __init__(self, s3: Any, bucket: str, key: str) -> None:
        self._s3 = s3
        self.bucket = bucket
        self.key = key

    @classmethod
    def from_uri(cls, s3: Any, uri: str, stage: str) -> S3Anchor:
        """``s3://bucket/prefix`` -> the anchor at ``prefix/<stage>/checkpoint.json``.

        Raises
        ------
        ValueError
            When ``uri`` is not an ``s3://`` URI with a bucket.
        """
        if not uri.startswith("s3://") or len(uri) <= 5:
            raise ValueError(f"the ledger anchor must be s3://bucket[/prefix], not {uri!r}")
        bucket, _, prefix = uri[5:].partition("/")
        prefix = prefix.strip("/")
        key = f"{prefix}/{stage}/checkpoint.json" if prefix else f"{stage}/checkpoint.json"
        return cls(s3, bucket, key)

    def write(self, checkpoint: Checkpoint) -> None:
        """Replace the checkpoint.

        Raises
        ------
        LedgerUnavailable
            When it cannot be written.
        """
        try:
            self._s3.put_object(
                Bucket=self.bucket,
                Key=self.key,
                Body=canonical(checkpoint.as_dict()),
                ContentType="application/json",
                ChecksumAlgorithm="SHA256",
            )
        except Exception as exc:
            raise LedgerUnavailable(
                f"cannot write the anchor s3://{self.bucket}/{self.key}"
            ) from exc

    def versions(self) -> list[Checkpoint]:
        """Every stored version of the checkpoint, newest first.

        The anchor is rewritten at each digest: its current version alone
        could be an older checkpoint put back (or a delete marker) to hide
        the newest digests. Its earlier versions are kept (versioning, Object
        Lock), so the verifier reads them all and holds the bucket to the
        largest tree any of them names.

        Raises
        ------
        LedgerUnavailable
            When they cannot be read, or one is not a checkpoint.
        """
        found: list[Checkpoint] = []  # S3 lists a key's versions newest first
        try:
            paginator = self._s3.get_paginator("list_object_versions")
            for page in paginator.paginate(Bucket=self.bucket, Prefix=self.key):
                for version in page.get("Versions", []):
                    if version["Key"] != self.key:
                        continue
                    body = self._s3.get_object(
                        Bucket=self.bucket, Key=self.key, VersionId=version["VersionId"]
                    )["Body"].read()
                    found.append(_checkpoint(body))
        except LedgerUnavailable:
            raise
        except Exception as exc:
            raise LedgerUnavailable(f"cannot read the anchor's versions: {exc}") from exc
        return found

    def read(self) -> Checkpoint | None:
        """The checkpoint, or None when there is none yet.

        Raises
        ------
        LedgerUnavailable
            When it cannot be read or is not a checkpoint.
        """
        from botocore.exceptions import ClientError

        try:
            body = self._s3.get_object(Bucket=self.bucket, Key=self.key)["Body"].read()
        except ClientError as exc:
            if exc.response["Error"]["Code"] in ("NoSuchKey", "404"):
                return None
            raise LedgerUnavailable(f"cannot read the anchor: {exc}") from exc
        return _checkpoint(body)


def _checkpoint(body: bytes) -> Checkpoint:
    try:
        return Checkpoint.from_dict(json.loads(body))
    except (ValueError, KeyError, TypeError) as exc:
        raise LedgerUnavailable("the anchor is not a checkpoint") from exc


class DigestWriter:
    """Writes the next signed digest of the ledger.

    Parameters
    ----------
    s3:
        A boto3 S3 client.
    bucket:
        The Object Lock audit bucket.
    state:
        The ledger's state (objects, the digest chain's head).
    signer:
        The stage's P-256 key.
    stage:
        The stage name (in every digest).
    anchor:
        Where the newest checkpoint also goes (None: nowhere, which verify reports).
    clock:
        Epoch seconds now.
    """

    def __init__(
        self,
        s3: Any,
        bucket: str,
        state: LedgerState,
        signer: Signer,
        *,
        stage: str,
        anchor: S3Anchor | None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._s3 = s3
        self._bucket = bucket
        self._state = state
        self._signer = signer
        self._stage = stage
        self._anchor = anchor
        self._clock = clock

    def write(self) -> Checkpoint:
        """Sign and store the digest of everything committed since the previous one.

        Raises
        ------
        LedgerBusy
            When another digest was written meanwhile (nothing is stored twice).
        LedgerUnavailable, SigningError
            When the state, the bucket, KMS or the anchor cannot be used.
        """
        previous, chain_version = self._state.checkpoint()
        start_size = previous.tree_size if previous else 0
        objects = self._state.objects(from_sequence=start_size)
        now = self._clock()
        last: ObjectRecord | None = objects[-1] if objects else None
        tree_size = last.tree_size if last else start_size
        root = last.root if last else (previous.root if previous else EMPTY_ROOT.hex())
        carried = last.frontier if last else (previous.frontier if previous else ())
        digest = Digest(
            stage=self._stage,
            start=previous.end if previous else None,
            end=utc_text(now),
            tree_size=tree_size,
            root=root,
            frontier=carried,
            objects=tuple(DigestEntry.of(record) for record in objects),
            previous=DigestLink(previous.key, previous.signature) if previous else None,
            signing_kid=self._signer.jwk()["kid"],
        )
        document = digest.to_document()
        signature = base64.b64encode(self._signer.sign(canonical(document))).decode("ascii")
        key = digest_key(now, tree_size)
        self._store(key, {"digest": document, "signature": signature})
        checkpoint = Checkpoint(key, signature, tree_size, root, utc_text(now), carried)
        self._state.advance_checkpoint(chain_version, checkpoint)
        if self._anchor is not None:
            self._anchor.write(checkpoint)
        return checkpoint

    def _store(self, key: str, document: dict[str, Any]) -> None:
        from botocore.exceptions import ClientError

        try:
            self._s3.put_object(
                Bucket=self._bucket,
                Key=key,
                Body=canonical(document),
                ContentType="application/json",
                ChecksumAlgorithm="SHA256",
                IfNoneMatch="*",
            )
        except ClientError as exc:
            if exc.response["Error"]["Code"] == "PreconditionFailed":
                raise LedgerBusy(f"a digest is already stored at {key}") from exc
            raise LedgerUnavailable(f"cannot store the digest {key}: {exc}") from exc
        except Exception as exc:
            raise LedgerUnavailable(f"cannot store the digest {key}: {exc}") from exc
