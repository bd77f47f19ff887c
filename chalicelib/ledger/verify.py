"""Verify the ledger from the bucket alone (and the public key, and the anchor).

Everything is re-derived: every digest's signature and its link to the one
before; every object the digests name, by version id, against its SHA-256;
every line's sequence and event id; the Merkle tree after every object and
every digest, and that each digest's signed tree extends the one before it
(a consistency proof, :mod:`chalicelib.ledger.consistency`). Each problem is
a :class:`~chalicelib.ledger.findings.Finding` of one
:class:`~chalicelib.ledger.findings.FindingKind` (the table there).

This module reads the bucket: it lists keys and versions, reads digests,
fetches objects (through :mod:`chalicelib.ledger.feed`), and hands what it
read to the checks of :mod:`chalicelib.ledger.checks`, which read nothing.

Objects past the newest digest are not judged: the next digest will name
them (or show them to be foreign). The report counts them.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from chalicelib.ledger.checks import (
    SignedDigest,
    StoredKey,
    check_anchor,
    check_chain,
    check_current_versions,
    check_digest,
    check_witnesses,
    frontier_tree,
)
from chalicelib.ledger.cosignatures import published
from chalicelib.ledger.errors import ChecksumMismatch, DigestFormatError
from chalicelib.ledger.feed import ObjectFeed
from chalicelib.ledger.findings import FindingKind, Report
from chalicelib.ledger.layout import (
    DIGESTS_PREFIX,
    EVENTS_PREFIX,
    FENCE,
    canonical,
    object_first_sequence,
)
from chalicelib.ledger.merkle import CompactRange
from chalicelib.ledger.notes import DIGEST_EXTENSION, CheckpointBody, LogKey, SignedNote
from chalicelib.ledger.records import Digest

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ec import EllipticCurvePublicKey

    from chalicelib.ledger.notes import WitnessKey
    from chalicelib.ledger.records import Checkpoint


def verify_signature(public_key: EllipticCurvePublicKey, document: dict[str, Any]) -> bool:
    """Whether the stored digest ``document`` is signed by ``public_key`` (either format)."""
    return digest_signature(public_key, document) is not None


def digest_signature(public_key: EllipticCurvePublicKey, document: dict[str, Any]) -> str | None:
    """The signature that links the next digest to ``document``, when ``public_key`` signed it.

    Format 2: the checkpoint note must name the digest's origin, tree size and
    root, bind the ``digest`` member by its SHA-256, and carry the stage key's
    signature line (its base64 part is the link). Format 1: the ``signature``
    over the canonical JSON of the ``digest`` member. None: neither holds.
    """
    try:
        if "checkpoint" in document:
            return _checkpoint_signature(public_key, document)
        raw = base64.b64decode(document["signature"], validate=True)
        signed = canonical(document["digest"])
    except (KeyError, ValueError, TypeError, AttributeError):
        return None
    from chalicelib.identity.keys import VerificationKey

    key = VerificationKey(kid="ledger", alg="ES256", public_key=public_key)
    return str(document["signature"]) if key.verify(signed, raw) else None


def _checkpoint_signature(
    public_key: EllipticCurvePublicKey, document: dict[str, Any]
) -> str | None:
    digest, note = document["digest"], SignedNote.parse(document["checkpoint"])
    body = CheckpointBody.parse(note.text)
    bound = base64.b64encode(hashlib.sha256(canonical(digest)).digest()).decode("ascii")
    if (
        digest["format"] < 2
        or body.origin != digest["origin"]
        or body.tree_size != digest["tree"]["size"]
        or body.root.hex() != digest["tree"]["root"]
        or body.extension(DIGEST_EXTENSION) != bound
    ):
        return None
    line = LogKey(body.origin, public_key).signed_by(note)
    return line.encoded if line else None


def version_kwargs(version_id: str | None) -> dict[str, str]:
    """``VersionId=...`` for a boto3 S3 call, when there is a version to name."""
    return {"VersionId": version_id} if version_id else {}


class LedgerVerifier:
    """Re-derives the ledger from the bucket.

    Parameters
    ----------
    s3:
        A boto3 S3 client that can read the audit bucket (all versions).
    bucket:
        The audit bucket.
    public_key:
        The stage's P-256 public key.
    jobs:
        Worker processes that read objects (default: one per CPU); 1 reads
        them in this process.
    """

    def __init__(
        self,
        s3: Any,
        bucket: str,
        public_key: EllipticCurvePublicKey,
        *,
        jobs: int | None = None,
    ) -> None:
        self._s3 = s3
        self._bucket = bucket
        self._public_key = public_key
        self._jobs = max(1, jobs if jobs is not None else (os.cpu_count() or 1))

    def verify(
        self,
        *,
        anchor: Checkpoint | None = None,
        anchor_versions: Sequence[Checkpoint] = (),
        since: str | None = None,
        until: str | None = None,
        witnesses: Sequence[WitnessKey] = (),
        require_witnesses: int = 0,
        progress: Callable[[int, int, int], None] | None = None,
    ) -> Report:
        """Check every digest (whose period ends within ``since``..``until``, ISO UTC).

        A bounded check starts from the digest before ``since``: its signed
        frontier stands in for every earlier leaf. ``anchor_versions`` (newest
        first, see :meth:`~chalicelib.ledger.digest.S3Anchor.versions`) take
        the place of ``anchor``: the bucket is held to the largest tree any of
        them names, and a current version older than that is itself a finding.

        ``witnesses`` are the witness keys trusted: what they published is
        judged (:func:`check_witnesses`), and fewer than ``require_witnesses``
        of them cosigning the newest checkpoint is a finding.

        ``progress``, when given, is called after each digest checked with
        ``(digests checked, digests to check, events read so far)``.
        """
        if anchor_versions:
            anchor = max(anchor_versions, key=lambda checkpoint: checkpoint.tree_size)
        started = time.perf_counter()
        report = Report()
        digests = self._digests(report)
        check_chain(digests, report)
        chosen = [
            index
            for index, signed in enumerate(digests)
            if (since is None or signed.digest.end >= since)
            and (until is None or signed.digest.end <= until)
        ]
        tree, seen_events = CompactRange(), set[bytes]()
        if chosen and chosen[0] > 0:
            tree = frontier_tree(digests[chosen[0] - 1].digest, report)
        entries = [entry for index in chosen for entry in digests[index].digest.objects]
        with ObjectFeed(self._object, entries, self._jobs) as feed:
            for index in chosen:
                signed = digests[index]
                earlier = digests[index - 1] if index > 0 else None
                tree = check_digest(
                    signed.key, signed.digest, feed, tree, seen_events, report, earlier=earlier
                )
                report.digests += 1
                if progress is not None:
                    progress(report.digests, len(chosen), report.events)
        stored = self._versions(EVENTS_PREFIX)
        check_current_versions(entries, stored, report)
        self._check_unledgered(digests, stored, report)
        if anchor is not None:
            check_anchor(anchor, digests, report)
        if anchor_versions and anchor_versions[0].tree_size < (anchor.tree_size if anchor else 0):
            report.add(
                FindingKind.TRUNCATED_TAIL,
                "anchor",
                f"its current version names tree size {anchor_versions[0].tree_size}, older "
                f"than the {anchor.tree_size if anchor else 0} of a version it replaced",
            )
        check_witnesses(
            self._public_key,
            digests,
            list(published(self._s3, self._bucket)),
            witnesses,
            require_witnesses,
            report,
        )
        report.tree_size, report.root = tree.size, tree.root().hex()
        report.seconds = time.perf_counter() - started
        return report

    def _digests(self, report: Report) -> list[SignedDigest]:
        """Every digest, read from the version first stored under its key.

        A digest is written once (``If-None-Match``) and locked: a delete
        marker or a later version in front of it is someone hiding it, so it
        is named, and the first version is the one judged.
        """
        found = []
        for key, stored in self._versions(DIGESTS_PREFIX).items():
            if not stored.versions:
                continue  # only delete markers left: the chain names the gap
            if stored.delete_markers or len(stored.versions) > 1:
                report.add(
                    FindingKind.HIDDEN_VERSION,
                    key,
                    f"{len(stored.versions)} versions and {stored.delete_markers} delete "
                    "markers where one version was written: the first is the one checked",
                )
            first = stored.versions[0]
            try:
                body = self._object(key, first)
            except ChecksumMismatch:
                report.add(FindingKind.BAD_SIGNATURE, key, "its bytes are not the ones stored")
                continue
            if body is None:
                continue  # gone since it was listed: the chain names the gap
            try:
                document = json.loads(body)
                digest = Digest.from_document(document["digest"])
            except (ValueError, KeyError, TypeError, DigestFormatError):
                report.add(FindingKind.BAD_SIGNATURE, key, "not a digest document")
                continue
            # The signature covers the document as stored, not the parsed digest.
            link = digest_signature(self._public_key, document)
            if link is None:
                what = "checkpoint" if "checkpoint" in document else "signature"
                report.add(
                    FindingKind.BAD_SIGNATURE,
                    key,
                    f"the {what} does not verify"
                    + (" or does not bind this digest" if what == "checkpoint" else ""),
                )
                continue
            found.append(SignedDigest(key, digest, link, document.get("checkpoint")))
        found.sort(key=lambda signed: (signed.digest.tree_size, signed.digest.end, signed.key))
        return found

    def _object(self, key: str, version: str | None) -> bytes | None:
        from botocore.exceptions import ClientError, FlexibleChecksumError

        try:
            response = self._s3.get_object(Bucket=self._bucket, Key=key, **version_kwargs(version))
            body: bytes = response["Body"].read()
        except ClientError as exc:
            if exc.response["Error"]["Code"] in ("NoSuchKey", "NoSuchVersion", "404"):
                return None
            raise
        except FlexibleChecksumError as exc:
            raise ChecksumMismatch(key) from exc
        return body

    def _check_unledgered(
        self,
        digests: list[SignedDigest],
        stored: dict[str, StoredKey],
        report: Report,
    ) -> None:
        """Name objects under the ledger's prefix that no digest names.

        Anyone who may put objects into the bucket could add one at a new
        key: verification of what the digests name would pass, while Athena
        and the local engine would count its lines. A key the digests do not
        name is fine only as a fence (an abandoned reservation's empty member)
        or when its first sequence lies past the newest digest (not digested yet).
        """
        named = {entry.key for signed in digests for entry in signed.digest.objects}
        digested = max((signed.digest.tree_size for signed in digests), default=0)
        # An object stored well before the newest digest was stored would be in it.
        signed = max(
            (listed.first_stored for listed in self._versions(DIGESTS_PREFIX).values()),
            default="",
        )
        for key, listed in stored.items():
            if key in named or not listed.versions:
                continue
            first = object_first_sequence(key)
            if (
                first is not None
                and first >= digested
                and not _long_before(listed.first_stored, signed)
            ):
                report.undigested_objects += 1
                continue
            for version in listed.versions:
                try:
                    body = self._object(key, version)
                except ChecksumMismatch:
                    body = b"?"
                if body is not None and body != FENCE:
                    report.add(
                        FindingKind.UNLEDGERED_OBJECT,
                        f"{key}?versionId={version}",
                        f"no digest names it, though the digests cover sequences below "
                        f"{digested}: its lines are not the ledger's",
                    )

    def _versions(self, prefix: str) -> dict[str, StoredKey]:
        """Each key under ``prefix`` with its versions (oldest first) and delete markers."""
        found: dict[str, StoredKey] = {}
        paginator = self._s3.get_paginator("list_object_versions")
        for page in paginator.paginate(Bucket=self._bucket, Prefix=prefix):
            for version in page.get("Versions", []):
                stored = found.setdefault(version["Key"], StoredKey())
                stored.newest_first.append(str(version["VersionId"]))
                stored.first_stored = _iso(version.get("LastModified"))
                if version.get("IsLatest"):
                    stored.latest = str(version["VersionId"])
            for marker in page.get("DeleteMarkers", []):
                found.setdefault(marker["Key"], StoredKey()).delete_markers += 1
        return found


# How long a commit may trail its object's PUT (a digest signed in between
# does not name the object yet).
_COMMIT_GRACE_SECONDS = 600


def _iso(moment: Any) -> str:
    """An S3 ``LastModified`` (datetime) as ``YYYY-MM-DDTHH:MM:SSZ`` ("" when absent)."""
    if moment is None:
        return ""
    return str(moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"))


def _long_before(stored: str, signed: str) -> bool:
    """Whether ``stored`` is more than the commit grace before ``signed`` (ISO UTC)."""
    if not stored or not signed:
        return False
    try:
        gap = datetime.fromisoformat(signed) - datetime.fromisoformat(stored)
    except ValueError:
        return False
    return gap.total_seconds() > _COMMIT_GRACE_SECONDS
