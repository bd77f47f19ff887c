"""Inclusion paths in a tree built from pieces (whole subtrees and leaves)."""

from __future__ import annotations

from collections.abc import Sequence

from chalicelib.ledger.consistency import Pieces
from chalicelib.ledger.merkle import (
    ProofError,
    split_point,
)

# Nodes at least this wide are remembered once hashed: paths share them, and the
# narrower ones are cheaper to hash again than to keep.
REMEMBERED_WIDTH = 16


class RememberingPieces(Pieces):
    """:class:`Pieces` that keep the wider nodes they hash: many paths share them."""

    def __init__(self, pieces: Sequence[tuple[int, bytes]] = ()) -> None:
        super().__init__(pieces)
        self._hashed: dict[tuple[int, int], bytes] = {}

    def root(self, low: int, high: int) -> bytes:
        found = self._hashed.get((low, high))
        if found is None:
            found = super().root(low, high)
            if high - low >= REMEMBERED_WIDTH:
                self._hashed[(low, high)] = found
        return found


def inclusion_path(pieces: Pieces, index: int, size: int) -> list[bytes]:
    """The audit path (RFC 9162 PATH) of leaf ``index`` in the tree of the first ``size`` leaves.

    Equals :func:`chalicelib.ledger.merkle.inclusion_proof` over the same leaves.

    Raises
    ------
    ProofError
        When ``index`` is not below ``size``, ``size`` is past the pieces, or a
        sibling lies inside a piece.
    """
    if not 0 <= index < size <= pieces.size:
        raise ProofError(f"leaf {index} is not in a tree of {size} (pieces hold {pieces.size})")
    path: list[bytes] = []
    low, high = 0, size
    while high - low > 1:
        k = split_point(high - low)
        if index < low + k:
            path.append(pieces.root(low + k, high))
            high = low + k
        else:
            path.append(pieces.root(low, low + k))
            low += k
    path.reverse()
    return path
