"""The ledger's records: what its state, its digests and its anchor hold.

- :class:`Reservation`, :class:`LedgerHead`, :class:`ObjectRecord`: the
  state in DynamoDB (:mod:`chalicelib.ledger.state` reads and writes them);
- :class:`Digest` (with its :class:`DigestEntry` and :class:`DigestLink`):
  the signed statement of what the log held, written by
  :class:`~chalicelib.ledger.digest.DigestWriter` and read back by the
  verifier;
- :class:`Checkpoint`: the newest digest, as the state and the anchor keep it.

Each converts to and from its stored form here; the stored forms do not
change (digests are signed, and old ones must keep verifying).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from chalicelib.ledger.errors import DigestFormatError

if TYPE_CHECKING:
    from chalicelib.ledger.merkle import CompactRange

# 1: the stage's key signs the digest document itself (read, never written any more).
# 2: the document carries a checkpoint (a signed note) that binds it.
DIGEST_FORMAT = 2


@dataclass(frozen=True, slots=True)
class Reservation:
    """A range of sequence numbers held for one object about to be written."""

    version: int  # the HEAD version that holds it
    start: int
    count: int
    key: str
    reserved_at: float = 0.0

    def as_json(self) -> str:
        return json.dumps(
            {
                "version": self.version,
                "start": self.start,
                "count": self.count,
                "key": self.key,
                "reserved_at": self.reserved_at,
            }
        )

    @classmethod
    def from_json(cls, text: str) -> Reservation:
        value = json.loads(text)
        return cls(
            int(value["version"]),
            int(value["start"]),
            int(value["count"]),
            value["key"],
            float(value.get("reserved_at", 0.0)),
        )


@dataclass(frozen=True, slots=True)
class LedgerHead:
    """Where the log stands."""

    version: int
    next_sequence: int
    tree: CompactRange
    objects: int
    pending: Reservation | None = None


@dataclass(frozen=True, slots=True)
class ObjectRecord:
    """One stored object, as the ledger committed it."""

    key: str
    version_id: str | None
    sha256: str
    first_sequence: int
    count: int
    tree_size: int
    root: str
    reservation: int
    written_at: float
    # The compact range after this object (its subtrees' sizes and hashes): lets a
    # digest, and a verifier starting from it, carry on without every earlier leaf.
    frontier: tuple[tuple[int, str], ...] = ()


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """The newest digest, as the ledger state and the anchor remember it."""

    key: str
    signature: str
    tree_size: int
    root: str
    end: str
    frontier: tuple[tuple[int, str], ...] = ()
    # The signed checkpoint note (digest format 2; "" for a format 1 digest).
    note: str = ""

    def as_dict(self) -> dict[str, Any]:
        value: dict[str, Any] = {
            "key": self.key,
            "signature": self.signature,
            "tree_size": self.tree_size,
            "root": self.root,
            "end": self.end,
            "frontier": [list(entry) for entry in self.frontier],
        }
        if self.note:
            value["note"] = self.note
        return value

    @classmethod
    def from_dict(cls, value: dict[str, Any]) -> Checkpoint:
        return cls(
            key=str(value["key"]),
            signature=str(value["signature"]),
            tree_size=int(value["tree_size"]),
            root=str(value["root"]),
            end=str(value["end"]),
            frontier=tuple(
                (int(size), str(digest)) for size, digest in value.get("frontier") or ()
            ),
            note=str(value.get("note") or ""),
        )


@dataclass(frozen=True, slots=True)
class DigestEntry:
    """One object a digest names: which version, its SHA-256, and the tree after it."""

    key: str
    version_id: str | None
    sha256: str
    first_sequence: int
    count: int
    tree_size: int
    root: str

    @classmethod
    def of(cls, record: ObjectRecord) -> DigestEntry:
        """The entry naming the committed object ``record``."""
        return cls(
            record.key,
            record.version_id,
            record.sha256,
            record.first_sequence,
            record.count,
            record.tree_size,
            record.root,
        )

    def to_document(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "version_id": self.version_id,
            "sha256": self.sha256,
            "first_sequence": self.first_sequence,
            "count": self.count,
            "tree_size": self.tree_size,
            "root": self.root,
        }

    @classmethod
    def from_document(cls, value: object) -> DigestEntry:
        """Parse :meth:`to_document`'s form.

        Raises
        ------
        DigestFormatError
            When ``value`` is not an object entry.
        """
        entry = _member(value, "an object entry")
        version_id = entry.get("version_id")
        if version_id is not None and not isinstance(version_id, str):
            raise DigestFormatError("an object's version_id is a string or null")
        return cls(
            key=_text(entry, "key"),
            version_id=version_id,
            sha256=_text(entry, "sha256"),
            first_sequence=_number(entry, "first_sequence"),
            count=_number(entry, "count"),
            tree_size=_number(entry, "tree_size"),
            root=_text(entry, "root"),
        )


@dataclass(frozen=True, slots=True)
class DigestLink:
    """The digest before this one, named by its key and signature."""

    key: str
    signature: str


@dataclass(frozen=True, slots=True)
class ConsistencyStep:
    """The consistency proof from the previous digest's tree to this digest's."""

    from_size: int
    path: tuple[str, ...]  # hex nodes


@dataclass(frozen=True, slots=True)
class Digest:
    """A digest: what the log held at the end of a period, as signed.

    Format 2 (written today): the stored document carries a checkpoint note
    (:mod:`chalicelib.ledger.notes`) whose extension line is the SHA-256 of
    the canonical JSON of :meth:`to_document`; the stage's key signs the
    note. Format 1 (still read): the signature covers that canonical JSON.
    Reading a stored digest does not round-trip it: it is checked against
    the document as stored, never against this re-encoding.
    """

    stage: str
    start: str | None  # the previous digest's end (None: the first digest)
    end: str
    tree_size: int
    root: str
    # The compact range of the tree: a verifier can start here without earlier leaves.
    frontier: tuple[tuple[int, str], ...]
    objects: tuple[DigestEntry, ...]
    previous: DigestLink | None
    signing_kid: str
    format: int = DIGEST_FORMAT
    origin: str | None = None  # format 2: the checkpoint's origin line
    consistency: ConsistencyStep | None = None  # format 2, when there is a previous tree

    def to_document(self) -> dict[str, Any]:
        """The ``digest`` member of the stored document (what is signed)."""
        document = {
            "format": self.format,
            "stage": self.stage,
            "period": {"start": self.start, "end": self.end},
            "tree": {
                "size": self.tree_size,
                "root": self.root,
                "frontier": [list(entry) for entry in self.frontier],
            },
            "objects": [entry.to_document() for entry in self.objects],
            "previous": (
                {"key": self.previous.key, "signature": self.previous.signature}
                if self.previous
                else None
            ),
            "signing_key": {"kid": self.signing_kid, "alg": "ES256"},
        }
        if self.format >= 2:
            document["origin"] = self.origin
            document["consistency"] = (
                {"from_size": self.consistency.from_size, "path": list(self.consistency.path)}
                if self.consistency
                else None
            )
        return document

    @classmethod
    def from_document(cls, value: object) -> Digest:
        """Parse the ``digest`` member of a stored document.

        ``objects``, ``previous`` and the tree's ``frontier`` may be absent
        (no objects, no predecessor, no frontier), as verification has
        always read them; the frontier's sizes and hashes are judged when
        it is used, not here.

        Raises
        ------
        DigestFormatError
            When ``value`` is not a digest.
        """
        digest = _member(value, "a digest")
        period = _member(digest.get("period"), "a digest's period")
        tree = _member(digest.get("tree"), "a digest's tree")
        start = period.get("start")
        if start is not None and not isinstance(start, str):
            raise DigestFormatError("a period's start is a string or null")
        frontier = tree.get("frontier") or []
        objects = digest.get("objects", [])
        if not isinstance(frontier, list) or not isinstance(objects, list):
            raise DigestFormatError("a digest's frontier and objects are lists")
        previous = digest.get("previous")
        signing_key = _member(digest.get("signing_key"), "a digest's signing key")
        return cls(
            stage=_text(digest, "stage"),
            start=start,
            end=_text(period, "end"),
            tree_size=_number(tree, "size"),
            root=_text(tree, "root"),
            frontier=tuple(_frontier_entry(entry) for entry in frontier),
            objects=tuple(DigestEntry.from_document(entry) for entry in objects),
            previous=(
                None
                if previous is None
                else DigestLink(
                    _text(_member(previous, "a digest's previous"), "key"),
                    _text(previous, "signature"),
                )
            ),
            signing_kid=_text(signing_key, "kid"),
            format=_number(digest, "format"),
            origin=_text(digest, "origin") if digest.get("format", 1) >= 2 else None,
            consistency=_consistency(digest.get("consistency")),
        )


def _consistency(value: object) -> ConsistencyStep | None:
    if value is None:
        return None
    step = _member(value, "a digest's consistency proof")
    path = step.get("path")
    if not isinstance(path, list) or not all(isinstance(node, str) for node in path):
        raise DigestFormatError("a consistency proof's path is a list of hex nodes")
    return ConsistencyStep(_number(step, "from_size"), tuple(path))


def _member(value: object, what: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise DigestFormatError(f"{what} is a JSON object")
    return value


def _text(value: dict[str, Any], name: str) -> str:
    found = value.get(name)
    if not isinstance(found, str):
        raise DigestFormatError(f"{name!r} is a string")
    return found


def _number(value: dict[str, Any], name: str) -> int:
    found = value.get(name)
    if not isinstance(found, int) or isinstance(found, bool):
        raise DigestFormatError(f"{name!r} is an integer")
    return found


def _frontier_entry(entry: object) -> tuple[int, str]:
    if not (
        isinstance(entry, list)
        and len(entry) == 2
        and isinstance(entry[0], int)
        and isinstance(entry[1], str)
    ):
        raise DigestFormatError("a frontier entry is [size, hex]")
    return entry[0], entry[1]
