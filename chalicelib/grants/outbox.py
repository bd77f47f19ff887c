"""The grant outbox: lifecycle events stored with the changes they record.

Each transition writes its audit event here in the same transaction as
the change (:meth:`GrantOutbox.put_action`): the change and the record of
it are durable together. The event is cleared once enqueued; the sweeper
enqueues what is left (an enqueue failed, or the function died in between),
so no lifecycle event is lost. Redelivery keeps the event id: consumers see
a duplicate, never a gap.
"""

from __future__ import annotations

import json
import time
from typing import TYPE_CHECKING, Any

from chalicelib.aws.table_errors import CorruptItem, TableError
from chalicelib.aws.table_items import number, text
from chalicelib.aws.table_layout import GRANT_OUTBOX
from chalicelib.grants.errors import GrantsUnavailable

if TYPE_CHECKING:
    from chalicelib.aws.table import Table


class GrantOutbox:
    """The outbox's entries in the state table.

    Parameters
    ----------
    table:
        The state table.
    """

    def __init__(self, table: Table) -> None:
        self._table = table

    def put_action(self, event: dict[str, Any]) -> dict[str, Any]:
        """A transaction action writing ``event`` to the outbox, with the change it records."""
        item = {
            **GRANT_OUTBOX.key(str(event["event_id"])),
            "event": json.dumps(event, separators=(",", ":"), ensure_ascii=False),
            "written_at": time.time(),
        }
        # A new event id: an event is in the outbox once.
        return self._table.put_new(item)

    def written_before(self, moment: float) -> list[dict[str, Any]]:
        """Events still in the outbox that were written before ``moment``.

        Raises
        ------
        GrantsUnavailable
            When DynamoDB cannot be read or an entry is corrupt.
        """
        events = []
        try:
            for item in self._table.query(GRANT_OUTBOX):
                try:
                    written = number(item, "written_at")
                    event = json.loads(text(item, "event"))
                except (CorruptItem, ValueError) as exc:
                    raise GrantsUnavailable(f"corrupt outbox entry {item.get('sk')}") from exc
                if written < moment:
                    events.append(event)
        except CorruptItem as exc:
            raise GrantsUnavailable(f"corrupt outbox entry: {exc}") from exc
        except TableError as exc:
            raise GrantsUnavailable(f"cannot read the grant outbox: {exc}") from exc
        return events

    def clear(self, event_id: str) -> None:
        """Forget an event once it is enqueued.

        Raises
        ------
        GrantsUnavailable
            When DynamoDB cannot be written (the event will be enqueued again).
        """
        try:
            self._table.delete(GRANT_OUTBOX.key(event_id))
        except TableError as exc:
            raise GrantsUnavailable(f"cannot clear outbox entry {event_id}: {exc}") from exc
