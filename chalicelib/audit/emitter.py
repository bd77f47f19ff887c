"""Sending audit events to the queue, before the response returns.

If an event cannot be enqueued the caller must fail the request closed. The
event is then logged in full (it holds no secrets by construction) so that
nothing is lost even when SQS is down.
"""

from __future__ import annotations

import json
import threading
from typing import Any, Protocol

import orjson

from chalicelib.audit.errors import AuditUnavailable
from chalicelib.audit.schema import AuditEvent
from chalicelib.observability import get_logger

logger = get_logger(__name__)


class AuditSink(Protocol):
    """Where serialised events go."""

    def send(self, line: str) -> None:
        """Deliver one serialised event or raise :class:`AuditUnavailable`."""


def serialize_event(event: AuditEvent | dict[str, Any]) -> str:
    """One event as one compact JSON line (no newline).

    ``event`` is an :class:`AuditEvent` or its wire form (what the builders
    return, :meth:`AuditEvent.as_dict`): the members, in order, are the line's.

    orjson is ten times faster than ``json`` here, on every request; text it
    refuses (lone surrogates smuggled in through a header) is escaped by the
    standard encoder instead of failing the request.
    """
    if isinstance(event, AuditEvent):
        event = event.as_dict()
    try:
        return orjson.dumps(event).decode("utf-8")
    except orjson.JSONEncodeError:
        return json.dumps(event, separators=(",", ":"), ensure_ascii=True)


class SqsAuditSink:
    """Sends events to the audit queue; concurrent senders share one batch call.

    A Lambda container handles one request at a time, so there each event is
    one ``SendMessage``. Where one process serves many requests at once (the
    local stack), events sent while a call is in flight wait for it and then
    go together in one ``SendMessageBatch`` (group commit): no sender waits for
    anyone who is not already sending, and each returns only once SQS has
    taken its own event, so failing closed is unchanged.
    """

    def __init__(self, sqs: Any, queue_url: str) -> None:
        self._sqs = sqs
        self._queue_url = queue_url
        self._lock = threading.Lock()
        self._pending: list[_Pending] = []
        self._sending = False

    def send(self, line: str) -> None:
        """Send ``line``; raise :class:`AuditUnavailable` on any failure."""
        entry = _Pending(line)
        with self._lock:
            self._pending.append(entry)
            lead = not self._sending
            if lead:
                self._sending = True
        if lead:
            self._send_until_empty()
        entry.done.wait()
        if entry.error is not None:
            raise AuditUnavailable(entry.error)

    def _send_until_empty(self) -> None:
        while True:
            with self._lock:
                batch = _take_batch(self._pending)
                if not batch:
                    self._sending = False
                    return
            self._send_batch(batch)

    def _send_batch(self, batch: list[_Pending]) -> None:
        try:
            if len(batch) == 1:
                self._sqs.send_message(QueueUrl=self._queue_url, MessageBody=batch[0].line)
                failed: dict[str, str] = {}
            else:
                answer = self._sqs.send_message_batch(
                    QueueUrl=self._queue_url,
                    Entries=[
                        {"Id": str(index), "MessageBody": entry.line}
                        for index, entry in enumerate(batch)
                    ],
                )
                failed = {f["Id"]: f.get("Code", "failed") for f in answer.get("Failed", [])}
        except Exception as exc:  # botocore's error types are many; every one means "not stored"
            failed = {str(index): type(exc).__name__ for index in range(len(batch))}
        for index, entry in enumerate(batch):
            code = failed.get(str(index))
            if code is not None:
                entry.error = f"audit queue rejected the event: {code}"
            entry.done.set()


class _Pending:
    __slots__ = ("done", "error", "line")

    def __init__(self, line: str) -> None:
        self.line = line
        self.error: str | None = None
        self.done = threading.Event()


# SendMessageBatch takes at most 10 messages and 256 KiB in all.
_BATCH_MESSAGES = 10
_BATCH_BYTES = 200 * 1024


def _take_batch(pending: list[_Pending]) -> list[_Pending]:
    """Remove and return the first events of ``pending`` that fit in one batch call."""
    size = 0
    count = 0
    for entry in pending[:_BATCH_MESSAGES]:
        size += len(entry.line.encode("utf-8", "surrogatepass"))
        if count and size > _BATCH_BYTES:
            break
        count += 1
    batch = pending[:count]
    del pending[:count]
    return batch


class AuditEmitter:
    """Serialises events and hands them to a sink."""

    def __init__(self, sink: AuditSink) -> None:
        self._sink = sink

    def emit(self, event: AuditEvent | dict[str, Any]) -> None:
        """Enqueue ``event``.

        Raises
        ------
        AuditUnavailable
            When the event could not be enqueued; it has been logged in full.
        """
        line = serialize_event(event)
        try:
            self._sink.send(line)
        except AuditUnavailable as exc:
            logger.error("audit event not enqueued (%s); event follows: %s", exc, line)
            raise
