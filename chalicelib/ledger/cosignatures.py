"""What witnesses published about the ledger's checkpoints, read back from the bucket.

A witness (:mod:`chalicelib.witness`) that cosigns a digest's checkpoint
publishes the whole note, the stage's signature and its own, at
:func:`~chalicelib.ledger.layout.cosigned_key`; one that refuses a
checkpoint publishes a signed refusal at
:func:`~chalicelib.ledger.layout.refusal_key`. Both are written once
(``If-None-Match``) under the bucket's Object Lock.

Nothing here trusts what it reads: a cosignature counts only once a
configured witness key verifies it (:meth:`~chalicelib.ledger.notes.WitnessKey.cosigned`).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from chalicelib.ledger.layout import WITNESS_PREFIX, digest_stem
from chalicelib.ledger.notes import NoteError, SignedNote


@dataclass(frozen=True, slots=True)
class Published:
    """One object a witness published: where, and its text (as first stored)."""

    key: str
    witness_dir: str  # the key id (hex) the object is filed under
    kind: str  # "cosigned" or "refused"
    stem: str  # the digest it is about (dt=.../hour=.../<end>-<size>)
    body: bytes
    # A delete marker or a later version stands in front of what was first stored.
    hidden: bool = False


def published(s3: Any, bucket: str) -> Iterator[Published]:
    """Every object witnesses published in ``bucket``, read from its first stored version.

    What a witness publishes is written once and locked: a delete marker or
    another version in front of it is someone hiding it (a refusal, a
    cosigned fork), so the first version is the one read, and ``hidden`` says so.
    """
    versions: dict[str, list[tuple[str, str]]] = {}
    markers: set[str] = set()
    paginator = s3.get_paginator("list_object_versions")
    for page in paginator.paginate(Bucket=bucket, Prefix=WITNESS_PREFIX):
        for version in page.get("Versions", []):
            stamp = str(version.get("LastModified", ""))
            versions.setdefault(str(version["Key"]), []).append((stamp, str(version["VersionId"])))
        for marker in page.get("DeleteMarkers", []):
            markers.add(str(marker["Key"]))
    for key, stored in sorted(versions.items()):
        witness_dir, _, rest = key[len(WITNESS_PREFIX) :].partition("/")
        kind, _, name = rest.partition("/")
        if kind not in ("cosigned", "refused") or not name:
            continue
        # S3 lists a key's versions newest first: the last listed is the first stored.
        first = stored[-1][1]
        body = s3.get_object(Bucket=bucket, Key=key, VersionId=first)["Body"].read()
        hidden = key in markers or len(stored) > 1
        yield Published(key, witness_dir, kind, name.rsplit(".", 1)[0], body, hidden)


def with_cosignatures(note: SignedNote, found: Iterator[Published], digest_key: str) -> SignedNote:
    """``note`` with every signature line a witness published for the same text.

    Lines are added unverified: whoever checks the note verifies each with
    the witness keys they trust, and ignores the rest (signed-note).
    """
    stem = digest_stem(digest_key)
    merged = note
    for item in found:
        if item.kind != "cosigned" or item.stem != stem:
            continue
        try:
            other = SignedNote.parse(item.body.decode("utf-8"))
        except (NoteError, UnicodeDecodeError):
            continue
        if other.text != note.text:
            continue
        for signature in other.signatures:
            merged = merged.with_signature(signature)
    return merged


def cosigned_checkpoint(s3: Any, bucket: str, digest_key: str, note: SignedNote) -> SignedNote:
    """The checkpoint ``note`` of the digest at ``digest_key``, with its published cosignatures."""
    return with_cosignatures(note, published(s3, bucket), digest_key)


def refusal(body: bytes) -> dict[str, Any] | None:
    """A published refusal record (None: not one)."""
    try:
        value = json.loads(body)
    except ValueError:
        return None
    return value if isinstance(value, dict) and "refusal" in value else None
