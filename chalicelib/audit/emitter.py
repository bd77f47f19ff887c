"""Sending audit events to the queue, before the response returns.

If an event cannot be enqueued the caller must fail the request closed. The
event is then logged in full (it holds no secrets by construction) so that
nothing is lost even when SQS is down.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Sequence
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
    local stack), events sent while a call is in flight wait for it, and the
    next call takes them together in one ``SendMessageBatch`` (group commit).
    A sender leads (makes the calls) only until its own event is answered, then
    hands over to a waiting sender; each returns only once SQS has answered for
    its own event, and an event counts as taken only when SQS lists it as
    successful, so failing closed is unchanged.
    """

    def __init__(self, sqs: Any, queue_url: str, *, wait_seconds: float = 30.0) -> None:
        self._sqs = sqs
        self._queue_url = queue_url
        self._wait_seconds = wait_seconds
        self._turn = threading.Condition()
        self._pending: list[_Pending] = []
        self._leading = False

    def send(self, line: str) -> None:
        """Send ``line``; raise :class:`AuditUnavailable` on any failure."""
        entry = _Pending(line)
        deadline = time.monotonic() + self._wait_seconds
        with self._turn:
            self._pending.append(entry)
            while not entry.done and self._leading:
                answered = self._turn.wait(max(0.0, deadline - time.monotonic()))
                if not answered and entry in self._pending:  # nobody took it: give up on it
                    self._pending.remove(entry)
                    raise AuditUnavailable("audit queue did not answer in time")
            if not entry.done:
                self._leading = True
        if not entry.done:
            self._lead_until_answered(entry)
        if entry.error is not None:
            raise AuditUnavailable(entry.error)

    def send_all(self, lines: list[str]) -> list[tuple[str, str]]:
        """Send ``lines`` in as few batch calls as fit; return each line not taken, with why.

        For a caller with many events at once (a batch of access-log lines):
        they go out in batch calls of their own, neither waiting for nor
        holding up single events sent concurrently. Every line is tried even
        when an earlier batch fails.
        """
        pending = [_Pending(line) for line in lines]
        failed: list[tuple[str, str]] = []
        while batch := _take_batch(pending):
            self._send_batch(batch)
            failed.extend((entry.line, entry.error or "") for entry in batch if entry.error)
        return failed

    def _lead_until_answered(self, entry: _Pending) -> None:
        batch: list[_Pending] = []
        try:
            while not entry.done:
                with self._turn:
                    batch = _take_batch(self._pending)
                if not batch:  # cannot happen while ``entry`` waits; never spin
                    break
                self._send_batch(batch)
                with self._turn:
                    self._turn.notify_all()
        finally:
            with self._turn:
                for unanswered in (*batch, entry):
                    if not unanswered.done:
                        unanswered.answer("audit queue send interrupted")
                self._leading = False
                self._turn.notify_all()

    def _send_batch(self, batch: list[_Pending]) -> None:
        try:
            if len(batch) == 1:
                self._sqs.send_message(QueueUrl=self._queue_url, MessageBody=batch[0].line)
                taken = {"0"}
                refused: dict[str, str] = {}
            else:
                answer = self._sqs.send_message_batch(
                    QueueUrl=self._queue_url,
                    Entries=[
                        {"Id": str(index), "MessageBody": entry.line}
                        for index, entry in enumerate(batch)
                    ],
                )
                taken = {str(item.get("Id")) for item in answer.get("Successful", [])}
                refused = {
                    str(f.get("Id")): str(f.get("Code", "failed")) for f in answer.get("Failed", [])
                }
        except Exception as exc:  # botocore's error types are many; every one means "not stored"
            taken, refused = set(), {}
            reason = type(exc).__name__
        else:
            reason = "no answer for the event"
        for index, entry in enumerate(batch):
            key = str(index)
            if key in taken:
                entry.answer(None)
            else:
                entry.answer(f"audit queue rejected the event: {refused.get(key, reason)}")


class _Pending:
    """One event waiting for SQS's answer (fields guarded by the sink's condition)."""

    __slots__ = ("done", "error", "line")

    def __init__(self, line: str) -> None:
        self.line = line
        self.error: str | None = None
        self.done = False

    def answer(self, error: str | None) -> None:
        self.error = error
        self.done = True


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

    def emit_all(self, events: Sequence[AuditEvent | dict[str, Any]]) -> None:
        """Enqueue every one of ``events``, in batch calls when the sink takes them.

        Raises
        ------
        AuditUnavailable
            When any event could not be enqueued (after trying all of them);
            each such event has been logged in full.
        """
        send_all = getattr(self._sink, "send_all", None)
        if send_all is None:
            for event in events:
                self.emit(event)
            return
        failed = send_all([serialize_event(event) for event in events])
        for line, reason in failed:
            logger.error("audit event not enqueued (%s); event follows: %s", reason, line)
        if failed:
            raise AuditUnavailable(f"{len(failed)} of {len(events)} events not enqueued")
