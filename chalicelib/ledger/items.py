"""The ledger's records as items of the state table (plain values, as :class:`Table` takes them).

The attribute names and types here are the stored format: numbers are
written as numbers (``N``), everything else as text (``S``); the tree, the
frontier, the reservation and the checkpoint are JSON text. Keys come from
the item kinds of :mod:`chalicelib.aws.table_layout`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from chalicelib.aws.table_errors import CorruptItem
from chalicelib.aws.table_items import Item, integer, number, optional_text, text
from chalicelib.aws.table_layout import LEDGER_EVENT, LEDGER_FENCE, LEDGER_OBJECT
from chalicelib.ledger.merkle import CompactRange
from chalicelib.ledger.records import Checkpoint, LedgerHead, ObjectRecord, Reservation


def head_from_item(item: Mapping[str, Any]) -> LedgerHead:
    """The head stored in ``item``.

    Raises
    ------
    CorruptItem
        When an attribute is missing or unreadable.
    """
    try:
        pending = optional_text(item, "pending")
        return LedgerHead(
            version=integer(item, "version"),
            next_sequence=integer(item, "next_sequence"),
            tree=CompactRange.from_json(json.loads(text(item, "tree"))),
            objects=integer(item, "objects"),
            pending=Reservation.from_json(pending) if pending else None,
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise CorruptItem(str(exc)) from exc


def object_item(record: ObjectRecord) -> Item:
    """The item recording the committed object ``record``."""
    item: Item = {
        **LEDGER_OBJECT.key(record.first_sequence),
        "key": record.key,
        "sha256": record.sha256,
        "first_sequence": record.first_sequence,
        "count": record.count,
        "tree_size": record.tree_size,
        "root": record.root,
        "reservation": record.reservation,
        "written_at": record.written_at,
        "frontier": json.dumps([list(entry) for entry in record.frontier]),
    }
    if record.version_id is not None:
        item["version_id"] = record.version_id
    return item


def object_from_item(item: Mapping[str, Any]) -> ObjectRecord:
    """The committed object recorded in ``item``.

    Raises
    ------
    CorruptItem
        When an attribute is missing or unreadable.
    """
    try:
        return ObjectRecord(
            key=text(item, "key"),
            version_id=optional_text(item, "version_id"),
            sha256=text(item, "sha256"),
            first_sequence=integer(item, "first_sequence"),
            count=integer(item, "count"),
            tree_size=integer(item, "tree_size"),
            root=text(item, "root"),
            reservation=integer(item, "reservation"),
            written_at=number(item, "written_at"),
            frontier=tuple(
                (int(size), str(digest)) for size, digest in json.loads(text(item, "frontier"))
            ),
        )
    except (TypeError, ValueError) as exc:
        raise CorruptItem(str(exc)) from exc


def event_item(event_id: str, reservation: Reservation) -> Item:
    """The index entry naming the reservation that took ``event_id``."""
    return {
        **LEDGER_EVENT.key(event_id),
        "start": reservation.start,
        "reservation": reservation.version,
    }


def claim_from_item(item: Mapping[str, Any]) -> tuple[str, int, int]:
    """An index entry: the event id, and the first sequence and version of its reservation.

    Raises
    ------
    CorruptItem
        When an attribute is missing or unreadable.
    """
    return LEDGER_EVENT.name(item), integer(item, "start"), integer(item, "reservation")


def fence_item(reservation: Reservation, fence_version_id: str | None) -> Item:
    """The record of ``reservation``, abandoned, and the version id fencing its key."""
    item: Item = {
        **LEDGER_FENCE.key(reservation.version),
        "key": reservation.key,
        "start": reservation.start,
    }
    if fence_version_id is not None:
        item["version_id"] = fence_version_id
    return item


def checkpoint_from_item(item: Mapping[str, Any]) -> tuple[Checkpoint, int]:
    """The newest digest's checkpoint stored in ``item``, and the chain's version.

    Raises
    ------
    CorruptItem
        When an attribute is missing or unreadable.
    """
    try:
        checkpoint = Checkpoint.from_dict(json.loads(text(item, "checkpoint")))
    except (KeyError, TypeError, ValueError) as exc:
        raise CorruptItem(str(exc)) from exc
    return checkpoint, integer(item, "version")


def checkpoint_text(checkpoint: Checkpoint) -> str:
    """``checkpoint`` as the chain's head stores it."""
    return json.dumps(checkpoint.as_dict(), sort_keys=True)
