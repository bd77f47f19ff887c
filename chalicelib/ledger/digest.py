"""Signed digests: what the log held at a moment, signed, chained, and anchored elsewhere.

A digest names the objects committed since the previous digest (key,
version id, SHA-256, sequences), the Merkle tree size and root after them,
the previous digest's key and signature, and the consistency proof from the
previous digest's tree to this one's. It is stored, with its checkpoint,
under ``audit/v1/digests/dt=.../hour=.../<end>-<tree size>.json`` with
``If-None-Match: *``::

    {"digest": {...}, "checkpoint": "<origin>\n<size>\n<root>\ngatehouse-digest <sha>\n\n— ..."}

The checkpoint (:mod:`chalicelib.ledger.notes`) is a signed note of a few
hundred bytes: origin, tree size, root, and the SHA-256 of the canonical
JSON of the ``digest`` member. The stage's P-256 key signs it (KMS
``ECDSA_SHA_256``, always ``MessageType=RAW``), so one code path serves
every digest however many objects it names. Digests are written on a
schedule whether or not anything happened (an empty period is a statement
too). The newest checkpoint is also written to a separately configured
anchor, so deleting the newest digests is detected; witnesses
(:mod:`chalicelib.witness`) cosign it.

Digests of format 1 (a signature over the canonical JSON of the ``digest``
member, no checkpoint) are still read and verified.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from chalicelib.ledger.errors import LedgerBusy, LedgerCorrupt, LedgerUnavailable
from chalicelib.ledger.layout import canonical, digest_key, utc_text
from chalicelib.ledger.merkle import EMPTY_ROOT, ProofError
from chalicelib.ledger.notes import CheckpointBody, LogKey, SignedNote, digest_extension
from chalicelib.ledger.records import (
    Checkpoint,
    ConsistencyStep,
    Digest,
    DigestEntry,
    DigestLink,
)
from chalicelib.observability import get_logger

logger = get_logger(__name__)

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


def sign_checkpoint(document: dict[str, Any], log_key: LogKey, signer: Signer) -> SignedNote:
    """The checkpoint of the digest ``document`` (its ``digest`` member), signed by ``signer``.

    The note's text is the origin, the tree's size and root, and the SHA-256
    of the canonical JSON of ``document``; ``log_key`` names the signature.
    """
    tree = document["tree"]
    body = CheckpointBody(
        log_key.name,
        tree["size"],
        bytes.fromhex(tree["root"]),
        (digest_extension(hashlib.sha256(canonical(document)).digest()),),
    )
    return SignedNote(body.text(), (log_key.signature(signer.sign(body.text().encode())),))


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
    origin:
        The checkpoints' origin line (and the stage key's name in them).
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
        origin: str,
        anchor: S3Anchor | None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._s3 = s3
        self._bucket = bucket
        self._state = state
        self._signer = signer
        self._stage = stage
        self._origin = origin
        self._anchor = anchor
        self._clock = clock
        self._log_key: LogKey | None = None
        self._stored = False

    def write(self) -> Checkpoint:
        """Sign and store the digest of everything committed since the previous one.

        Raises
        ------
        LedgerBusy
            When another digest was written meanwhile (nothing is stored twice).
        LedgerCorrupt
            When an object since the previous digest is not the one the ledger recorded.
        LedgerUnavailable, SigningError
            When the state, the bucket, KMS or the anchor cannot be used.
        """
        previous, chain_version = self._state.checkpoint()
        now = self._clock()
        self._state.claim_digest(chain_version, now)
        try:
            return self._write(previous, chain_version, now)
        except Exception:
            # Nothing was stored (or storing failed): let the next run try at once.
            if not self._stored:
                self._state.release_digest_claim(chain_version, now)
            raise

    def _write(self, previous: Checkpoint | None, chain_version: int, now: float) -> Checkpoint:
        self._stored = False
        start_size = previous.tree_size if previous else 0
        objects = self._state.objects(from_sequence=start_size)
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
            origin=self._origin,
            consistency=self._consistency(previous, objects, tree_size),
        )
        document = digest.to_document()
        note = sign_checkpoint(document, self.log_key(), self._signer)
        key = digest_key(now, tree_size)
        self._store(key, {"digest": document, "checkpoint": note.serialize()})
        self._stored = True
        checkpoint = Checkpoint(
            key,
            note.signatures[0].encoded,
            tree_size,
            root,
            utc_text(now),
            carried,
            note.serialize(),
        )
        self._state.advance_checkpoint(chain_version, checkpoint)
        if self._anchor is not None:
            self._anchor.write(checkpoint)
        return checkpoint

    def log_key(self) -> LogKey:
        """The stage's key as the checkpoints' signer (its name is the origin)."""
        if self._log_key is None:
            from cryptography.hazmat.primitives.asymmetric.ec import EllipticCurvePublicKey

            from chalicelib.aws.errors import SigningError
            from chalicelib.identity.keys import parse_jwk

            public = parse_jwk({**self._signer.jwk(), "alg": "ES256"}).public_key
            if not isinstance(public, EllipticCurvePublicKey):
                raise SigningError("the ledger's signing key is not a P-256 key")
            self._log_key = LogKey(self._origin, public)
        return self._log_key

    def _consistency(
        self,
        previous: Checkpoint | None,
        objects: Sequence[ObjectRecord],
        tree_size: int,
    ) -> ConsistencyStep | None:
        """The proof from the previous digest's tree to ``tree_size`` (None: none to give).

        The objects since the previous digest are read (by version, against
        their recorded SHA-256) and hashed onto its signed frontier. When one
        is not the object the ledger recorded, the digest is still signed, with
        no proof: the trail stays signed, verify names the object, and every
        witness refuses the checkpoint until people look.

        Raises
        ------
        LedgerUnavailable
            When an object cannot be read (the next run tries again).
        """
        if previous is None:
            return None
        if tree_size == previous.tree_size or previous.tree_size == 0:
            # Nothing added, or nothing before: the empty path proves it.
            return ConsistencyStep(previous.tree_size, ())
        from chalicelib.ledger.consistency import Pieces, read_leaves

        pieces = Pieces([(size, bytes.fromhex(value)) for size, value in previous.frontier])
        try:
            if pieces.size != previous.tree_size:
                raise LedgerCorrupt("the previous digest's frontier is not its tree's")
            for leaves in read_leaves(self._s3, self._bucket, objects):
                for leaf in leaves:
                    pieces.add(1, leaf)
            path = pieces.consistency_proof(previous.tree_size, tree_size)
        except (LedgerCorrupt, ProofError) as exc:
            logger.error("digest signed without a consistency proof: %s", exc)
            return None
        return ConsistencyStep(previous.tree_size, tuple(node.hex() for node in path))

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
