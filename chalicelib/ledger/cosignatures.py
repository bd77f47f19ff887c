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
    """One object a witness published: where, and its text."""

    key: str
    witness_dir: str  # the key id (hex) the object is filed under
    kind: str  # "cosigned" or "refused"
    stem: str  # the digest it is about (dt=.../hour=.../<end>-<size>)
    body: bytes


def published(s3: Any, bucket: str) -> Iterator[Published]:
    """Every object witnesses published in ``bucket`` (current versions)."""
    paginator = s3.get_paginator("list_objects_v2")
    for page in paginator.paginate(Bucket=bucket, Prefix=WITNESS_PREFIX):
        for item in page.get("Contents", []):
            key = str(item["Key"])
            witness_dir, _, rest = key[len(WITNESS_PREFIX) :].partition("/")
            kind, _, name = rest.partition("/")
            if kind not in ("cosigned", "refused") or not name:
                continue
            stem = name.rsplit(".", 1)[0]
            body = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
            yield Published(key, witness_dir, kind, stem, body)


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
