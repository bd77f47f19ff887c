"""Building a bundle from the bucket and the ledger's state (handed a boto3 client)."""

from __future__ import annotations

import gzip
import hashlib
import json
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from chalicelib.ledger.consistency import Pieces, read_leaves
from chalicelib.ledger.errors import LedgerCorrupt, LedgerUnavailable
from chalicelib.ledger.evidence.paths import RememberingPieces, inclusion_path
from chalicelib.ledger.evidence.selection import (
    BUNDLE_FORMAT,
    BUNDLE_KIND,
    CLOCK_SLACK,
    LATE_WRITES,
    EvidenceError,
    NothingSelected,
    NotYetDigested,
    Selection,
    line_matches,
    parse_moment,
)
from chalicelib.ledger.layout import DIGESTS_PREFIX, line_position, sequence_of
from chalicelib.ledger.merkle import (
    CompactRange,
    leaf_hash,
)
from chalicelib.ledger.notes import SignedNote

if TYPE_CHECKING:
    from chalicelib.ledger.records import ObjectRecord
    from chalicelib.ledger.state import LedgerState


@dataclass(frozen=True, slots=True)
class StoredLine:
    """One stored line and its position in the log (its ledger sequence)."""

    sequence: int
    line: bytes


def _entry(stored: StoredLine, pieces: Pieces, size: int) -> dict[str, Any]:
    return {
        "leaf_index": stored.sequence,
        "line": stored.line.decode("utf-8"),
        "path": [node.hex() for node in inclusion_path(pieces, stored.sequence, size)],
    }


class EvidenceBuilder:
    """Finds selected events in the stored ledger and builds their bundle.

    Parameters
    ----------
    s3:
        A boto3 S3 client that can read the audit bucket.
    bucket:
        The audit bucket.
    state:
        The ledger's state (its object records and event index).
    """

    def __init__(self, s3: Any, bucket: str, state: LedgerState) -> None:
        self._s3 = s3
        self._bucket = bucket
        self._state = state
        self._records: list[ObjectRecord] | None = None

    def records(self) -> list[ObjectRecord]:
        """The committed objects, in order (read once)."""
        if self._records is None:
            self._records = self._state.objects()
        return self._records

    def scan(self, selection: Selection) -> list[StoredLine]:
        """The stored lines ``selection`` (a field selector) matches, in log order.

        Only objects written from :data:`CLOCK_SLACK` before the window to
        :data:`LATE_WRITES` after it are read: an event is stored after it
        happens, and soon after.

        Raises
        ------
        LedgerCorrupt, LedgerUnavailable
            When an object is not the one recorded, or cannot be read.
        """
        first = (parse_moment(selection.start) - CLOCK_SLACK).timestamp()
        last = (parse_moment(selection.end) + LATE_WRITES).timestamp()
        candidates = [r for r in self.records() if first <= r.written_at < last]
        return [
            stored
            for record, lines in zip(candidates, self._lines(candidates), strict=True)
            for stored in _positioned(record, lines)
            if line_matches(stored.line, selection)
        ]

    def locate(self, event_ids: Sequence[str]) -> list[StoredLine]:
        """The stored lines of ``event_ids``, found through the ledger's event index.

        Raises
        ------
        EvidenceError
            When an event is not in the ledger.
        LedgerCorrupt, LedgerUnavailable
            When its object is not the one recorded, or cannot be read.
        """
        holding: dict[str, ObjectRecord] = {}
        for event_id in dict.fromkeys(event_ids):
            record = self._state.object_holding(event_id)
            if record is None:
                raise EvidenceError(f"event {event_id} is not in the ledger")
            holding[event_id] = record
        objects = list({record.key: record for record in holding.values()}.values())
        wanted = set(holding)
        found: dict[str, StoredLine] = {}
        for record, lines in zip(objects, self._lines(objects), strict=True):
            for stored in _positioned(record, lines):
                held, _ = line_position(stored.line)
                if held is not None and held in wanted and held not in found:
                    found[held] = stored
        missing = sorted(wanted - set(found))
        if missing:
            raise LedgerCorrupt(f"the ledger's index names objects that do not hold {missing[0]}")
        return sorted(found.values(), key=lambda stored: stored.sequence)

    def build(
        self,
        selection: Selection,
        found: Sequence[StoredLine],
        *,
        with_range: bool,
        stage: str,
        keys: Mapping[str, Any],
        created_at: str,
    ) -> dict[str, Any]:
        """The bundle of ``found`` (the selected lines) under one checkpoint.

        Raises
        ------
        NothingSelected
            When ``found`` is empty.
        NotYetDigested
            When no format-2 digest's tree holds the last of them yet.
        LedgerCorrupt, LedgerUnavailable
            When the stored objects contradict the ledger, or cannot be read.
        """
        if not found:
            raise NothingSelected(f"nothing matched the {selection.kind} selection")
        chosen = {stored.sequence: stored for stored in found}
        low, high = min(chosen), max(chosen)
        digest_key, document = self._checkpoint(high + 1)
        tree = document["digest"]["tree"]
        size, head = int(tree["size"]), str(tree["root"])
        pieces, lines = self._tree(low, high, size, keep_lines=with_range)
        if pieces.root(0, size).hex() != head:
            raise LedgerCorrupt(
                f"the stored lines give the tree of {size} another root than {digest_key} "
                "signs: run `gatehouse audit verify`"
            )
        from chalicelib.ledger.cosignatures import cosigned_checkpoint

        note = cosigned_checkpoint(
            self._s3, self._bucket, digest_key, SignedNote.parse(document["checkpoint"])
        )
        positions = sorted(chosen)
        return {
            "format": BUNDLE_FORMAT,
            "kind": BUNDLE_KIND,
            "stage": stage,
            "created_at": created_at,
            "selection": selection.to_json(),
            "events": [_entry(chosen[index], pieces, size) for index in positions],
            "range": (
                {
                    "first": low,
                    "last": high,
                    "lines": [
                        _entry(StoredLine(index, lines[index]), pieces, size)
                        for index in range(low, high + 1)
                    ],
                }
                if with_range
                else None
            ),
            "checkpoint": {
                "digest_key": digest_key,
                "document": document,
                "note": note.serialize(),
            },
            "keys": dict(keys),
        }

    def _tree(
        self, low: int, high: int, size: int, *, keep_lines: bool
    ) -> tuple[Pieces, dict[int, bytes]]:
        """The tree of ``size`` leaves from the frontier before ``low``'s object on.

        The objects holding ``low..high`` are read for their lines (kept when
        asked), the rest up to ``size`` for their leaves only.
        """
        records = self.records()
        before = [record for record in records if record.tree_size <= low]
        frontier = _frontier(before[-1]) if before else []
        pieces = RememberingPieces(frontier)
        needed = [record for record in records[len(before) :] if record.first_sequence < size]
        if not needed or needed[-1].tree_size != size:
            raise LedgerCorrupt(f"no committed object ends at the signed tree size {size}")
        spanning = [record for record in needed if record.first_sequence <= high]
        lines: dict[int, bytes] = {}
        for record, text in zip(spanning, self._lines(spanning), strict=True):
            for stored in _positioned(record, text):
                pieces.add(1, leaf_hash(stored.line))
                if keep_lines and low <= stored.sequence <= high:
                    lines[stored.sequence] = stored.line
        for leaves in read_leaves(self._s3, self._bucket, needed[len(spanning) :]):
            for leaf in leaves:
                pieces.add(1, leaf)
        if pieces.size != size:
            raise LedgerCorrupt(f"the objects up to the signed tree of {size} hold {pieces.size}")
        return pieces, lines

    def _checkpoint(self, covers: int) -> tuple[str, dict[str, Any]]:
        """The earliest format-2 digest whose tree holds ``covers`` leaves or more."""
        keys: list[tuple[int, str]] = []
        paginator = self._s3.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=self._bucket, Prefix=DIGESTS_PREFIX):
            for item in page.get("Contents", []):
                key = str(item["Key"])
                size = key.removesuffix(".json").rpartition("-")[2]
                if size.isdigit() and int(size) >= covers:
                    keys.append((int(size), key))
        for _, key in sorted(keys):
            raw = self._s3.get_object(Bucket=self._bucket, Key=key)["Body"].read()
            document = json.loads(raw)
            digest = document.get("digest") if isinstance(document, dict) else None
            if (
                isinstance(digest, dict)
                and digest.get("format", 1) >= 2
                and "checkpoint" in document
            ):
                return key, document
        raise NotYetDigested(
            f"the event at position {covers - 1} is under no signed checkpoint yet: run "
            "`gatehouse audit digest` (or wait for the hourly digest), then ask again"
        )

    def _lines(self, records: Sequence[ObjectRecord]) -> Iterator[list[bytes]]:
        """Each object's lines, read by its recorded version and checked against its SHA-256."""
        from chalicelib.ledger.verify import version_kwargs

        for record in records:
            try:
                body = self._s3.get_object(
                    Bucket=self._bucket, Key=record.key, **version_kwargs(record.version_id)
                )["Body"].read()
            except Exception as exc:
                raise LedgerUnavailable(f"cannot read {record.key}: {exc}") from exc
            if hashlib.sha256(body).hexdigest() != record.sha256:
                raise LedgerCorrupt(
                    f"{record.key} is not the object the ledger recorded: run "
                    "`gatehouse audit verify`"
                )
            yield [line for line in gzip.decompress(body).split(b"\n") if line]


def _positioned(record: ObjectRecord, lines: list[bytes]) -> Iterator[StoredLine]:
    """The lines of ``record``, each with its position (checked against the line's own)."""
    if len(lines) != record.count:
        raise LedgerCorrupt(
            f"{record.key} holds {len(lines)} lines, the ledger recorded {record.count}"
        )
    for offset, line in enumerate(lines):
        sequence = record.first_sequence + offset
        if sequence_of(line) != sequence:
            raise LedgerCorrupt(f"the line at position {sequence} in {record.key} says otherwise")
        yield StoredLine(sequence, line)


def _frontier(record: ObjectRecord) -> list[tuple[int, bytes]]:
    try:
        frontier = CompactRange.from_json([list(entry) for entry in record.frontier])
    except ValueError as exc:
        raise LedgerCorrupt(f"the frontier recorded for {record.key}: {exc}") from exc
    if frontier.size != record.tree_size:
        raise LedgerCorrupt(f"the frontier recorded for {record.key} is not its tree's")
    return list(frontier.subtrees)
