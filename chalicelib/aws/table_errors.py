"""What the state table adapter raises: the stores turn these into their own errors.

::

    TableError
     ├── TableUnavailable   the table cannot be read or written
     ├── WriteRefused       a condition failed or a transaction was cancelled (``reasons``)
     └── CorruptItem        a stored item cannot be read as its kind requires
"""

from __future__ import annotations

_RACE_REASONS = frozenset({"ConditionalCheckFailed", "TransactionConflict"})


class TableError(Exception):
    """The table could not serve a request; ``str()`` is the underlying error's message."""


class TableUnavailable(TableError):
    """The table cannot be read or written (network, throttling, validation, permissions)."""


class WriteRefused(TableError):
    """A conditional write or a transaction was refused.

    ``reasons`` holds a cancelled transaction's reason code per action
    (``"None"`` for an action that was not the cause); a single conditional
    write refused by its condition has ``("ConditionalCheckFailed",)``.
    """

    def __init__(self, message: str, reasons: tuple[str, ...]) -> None:
        super().__init__(message)
        self.reasons = reasons

    @property
    def lost_race(self) -> bool:
        """Whether the write lost to another writer, rather than failed for another reason.

        A failed condition or a concurrent transaction on the same item is a
        lost race; anything else among the reasons (throttling, validation,
        capacity) is not, and retrying as if another writer had won would hide it.
        """
        codes = set(self.reasons)
        return bool(codes & _RACE_REASONS) and codes <= _RACE_REASONS | {"None"}


class CorruptItem(TableError):
    """A stored item (or one of its attributes) cannot be read as its kind requires."""
