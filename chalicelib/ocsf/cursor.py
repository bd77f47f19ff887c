"""How far the continuous OCSF export got: one item in the state table, its own partition.

Item (the stage's table)::

    pk="OCSF-EXPORT"  sk="CURSOR"  next_sequence: the first ledger sequence not yet exported
                                   version: bumped by every advance

The cursor only ever moves to the end of a committed ledger object, and only
if it is still where the exporter read it (a conditional write on
``version``): two exporters running at once cannot move it backwards, and
the files they both wrote have the same keys (written once, see
:mod:`chalicelib.ocsf.exporter`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from chalicelib.aws.table import Table
from chalicelib.aws.table_errors import CorruptItem, TableError, WriteRefused
from chalicelib.aws.table_items import integer
from chalicelib.aws.table_layout import ItemKind
from chalicelib.ocsf.errors import ExportUnavailable

# Only the exporter's function writes this partition (infra/ grants it alone).
OCSF_CURSOR = ItemKind("OCSF-EXPORT", "CURSOR")


@dataclass(frozen=True, slots=True)
class CursorState:
    """The first sequence not yet exported, and the item's version (0: never written)."""

    next_sequence: int
    version: int


class ExportCursor:
    """Reads and advances the export cursor.

    Parameters
    ----------
    dynamodb:
        A low-level boto3 DynamoDB client.
    table:
        The stage's table.
    """

    def __init__(self, dynamodb: Any, table: str) -> None:
        self._table = Table(dynamodb, table)

    def read(self) -> CursorState:
        """Where the export stands (sequence 0, version 0 before the first run).

        Raises
        ------
        ExportUnavailable
            When the table cannot be read or the item is corrupt.
        """
        try:
            item = self._table.get(OCSF_CURSOR.key())
            if item is None:
                return CursorState(0, 0)
            return CursorState(integer(item, "next_sequence"), integer(item, "version"))
        except (TableError, CorruptItem, TypeError, ValueError) as exc:
            raise ExportUnavailable(f"cannot read the OCSF export cursor: {exc}") from exc

    def advance(self, state: CursorState, next_sequence: int) -> bool:
        """Move the cursor to ``next_sequence`` if it is still at ``state``.

        Returns False (and changes nothing) when another run moved it first.

        Raises
        ------
        ExportUnavailable
            When the table cannot be written.
        """
        try:
            self._table.update(
                OCSF_CURSOR.key(),
                "SET next_sequence = :next, version = :bumped",
                # Never written, or still the version this run read: nobody moved it meanwhile.
                condition="attribute_not_exists(sk) OR version = :seen",
                values={
                    ":next": next_sequence,
                    ":bumped": state.version + 1,
                    ":seen": state.version,
                },
            )
        except WriteRefused:
            return False
        except TableError as exc:
            raise ExportUnavailable(f"cannot advance the OCSF export cursor: {exc}") from exc
        return True
