"""Sending audit events to the queue, before the response returns.

If an event cannot be enqueued the caller must fail the request closed. The
event is then logged in full (it holds no secrets by construction) so that
nothing is lost even when SQS is down.
"""

from __future__ import annotations

import json
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
    """Sends each event as one SQS message."""

    def __init__(self, sqs: Any, queue_url: str) -> None:
        self._sqs = sqs
        self._queue_url = queue_url

    def send(self, line: str) -> None:
        """Send ``line``; raise :class:`AuditUnavailable` on any failure."""
        try:
            self._sqs.send_message(QueueUrl=self._queue_url, MessageBody=line)
        except Exception as exc:  # botocore's error types are many; every one means "not stored"
            raise AuditUnavailable(f"audit queue rejected the event: {type(exc).__name__}") from exc


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
