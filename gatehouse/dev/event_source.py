"""An SQS event source mapping, as Lambda runs it, for the audit writer.

Receives batches from the audit queue, invokes the writer handler with an
SQS event in Lambda's format, and deletes the messages the handler did not
report in ``batchItemFailures``. Reported messages stay on the queue, become
visible again and, after the queue's ``maxReceiveCount``, go to the DLQ.
The same poller plays EventBridge for scheduled functions (the grant sweeper).
"""

from __future__ import annotations

import os
import sys
import threading
import time
import traceback
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

DEBUG_VARIABLE = "GATEHOUSE_DEV_DEBUG"  # set: poller errors print their traceback too
WriterHandler = Callable[[dict[str, Any], Any], dict[str, Any]]


@dataclass(frozen=True, slots=True)
class DrainResult:
    """What one drain did."""

    delivered: int
    failed: int


def sqs_event(messages: list[dict[str, Any]], queue_arn: str, region: str) -> dict[str, Any]:
    """Lambda's SQS event for ``messages`` (as returned by ReceiveMessage)."""
    return {
        "Records": [
            {
                "messageId": message["MessageId"],
                "receiptHandle": message["ReceiptHandle"],
                "body": message["Body"],
                "attributes": message.get("Attributes", {}),
                "messageAttributes": message.get("MessageAttributes", {}),
                "md5OfBody": message.get("MD5OfBody", ""),
                "eventSource": "aws:sqs",
                "eventSourceARN": queue_arn,
                "awsRegion": region,
            }
            for message in messages
        ]
    }


def drain_queue(
    sqs: Any,
    queue_url: str,
    handler: WriterHandler,
    *,
    batch_size: int = 100,
    region: str = "us-east-1",
    max_batches: int = 1000,
    wait_seconds: int = 0,
    queue_arn: str | None = None,
    progress: Callable[[int], None] | None = None,
) -> DrainResult:
    """Deliver everything currently on the queue to ``handler``, batch by batch.

    With ``wait_seconds`` the first receive long-polls: it returns as soon as
    a message arrives (or after that many seconds with nothing), so a caller
    in a loop waits for work instead of polling every so often. ``progress``
    is told the running count of delivered events after each batch. At most
    ``max_batches`` batches: a queue that keeps filling never holds a caller.
    """
    if queue_arn is None:
        queue_arn = queue_arn_of(sqs, queue_url)
    delivered = failed = 0
    for batch in range(max_batches):
        messages = _receive_batch(sqs, queue_url, batch_size, wait_seconds if batch == 0 else 0)
        if not messages:
            break
        response = handler(sqs_event(messages, queue_arn, region), None) or {}
        failures = {item["itemIdentifier"] for item in response.get("batchItemFailures", [])}
        done = [m for m in messages if m["MessageId"] not in failures]
        for start in range(0, len(done), 10):
            entries = [
                {"Id": str(index), "ReceiptHandle": m["ReceiptHandle"]}
                for index, m in enumerate(done[start : start + 10])
            ]
            sqs.delete_message_batch(QueueUrl=queue_url, Entries=entries)
        delivered += len(done)
        failed += len(failures)
        if progress is not None:
            progress(delivered)
        if failures:
            break  # failed messages stay invisible until their timeout; do not spin on them
    return DrainResult(delivered, failed)


def queue_arn_of(sqs: Any, queue_url: str) -> str:
    """The ARN of the queue at ``queue_url``."""
    attributes = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])
    return str(attributes["Attributes"]["QueueArn"])


def _receive_batch(
    sqs: Any, queue_url: str, batch_size: int, wait_seconds: int = 0
) -> list[dict[str, Any]]:
    messages: list[dict[str, Any]] = []
    while len(messages) < batch_size:
        response = sqs.receive_message(
            QueueUrl=queue_url,
            MaxNumberOfMessages=min(10, batch_size - len(messages)),
            WaitTimeSeconds=0 if messages else wait_seconds,
            AttributeNames=["All"],
        )
        received = response.get("Messages", [])
        if not received:
            break
        messages.extend(received)
    return messages


def scheduled_event(region: str, account: str) -> dict[str, Any]:
    """An EventBridge ``Scheduled Event``, as a ``rate(...)`` rule delivers it."""
    return {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": "Scheduled Event",
        "source": "aws.events",
        "account": account,
        "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "region": region,
        "resources": [],
        "detail": {},
    }


PollerReport = Callable[[str, str], None]


def print_poller_error(name: str, message: str) -> None:
    """One line on stderr per poller error (the console of ``gatehouse dev``).

    Written in one call, so that a line of another thread cannot land inside it.
    """
    sys.stderr.write(f"gatehouse dev: {name}: {message}\n")
    sys.stderr.flush()


class EventSourcePoller:
    """Runs ``drain`` in a background thread every interval, like Lambda's event
    source mapping (for the audit queue) or an EventBridge schedule (for the sweeper).

    No error passes silently: each exception ``drain`` raises, and each
    :class:`DrainResult` with failed messages, is counted in :attr:`errors`
    and reported to ``report`` (by default one line on stderr; with
    ``GATEHOUSE_DEV_DEBUG=1`` in the environment, the traceback too).

    Parameters
    ----------
    drain:
        What to run.
    interval_seconds:
        The pause between runs; 0 for a ``drain`` that waits for work itself
        (a long poll). After an error it pauses at least a second.
    name:
        The thread's name, and how reports name the poller.
    report:
        Called with ``(name, message)`` for each error.
    """

    def __init__(
        self,
        drain: Callable[[], object],
        interval_seconds: float = 1.0,
        name: str = "audit-event-source",
        report: PollerReport | None = None,
    ) -> None:
        self._drain = drain
        self._interval = interval_seconds
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._report = report or print_poller_error
        self.name = name
        self.runs = 0
        self.errors = 0
        self.last_error = ""

    def start(self) -> None:
        """Start polling."""
        self._thread.start()

    def stop(self) -> None:
        """Stop polling and wait for the current batch."""
        self._stop.set()
        self._thread.join(timeout=10)

    def _run(self) -> None:
        pause = self._interval
        while not self._stop.wait(pause):
            pause = self._interval
            try:
                result = self._drain()
            except Exception as exc:  # keep polling, as Lambda would retry the batch
                self._failed(f"{type(exc).__name__}: {exc}", traceback.format_exc())
                pause = max(pause, 1.0)
                continue
            finally:
                self.runs += 1
            if isinstance(result, DrainResult) and result.failed:
                self._failed(
                    f"{result.failed} message(s) not handled; they stay on the queue, are"
                    " retried after the visibility timeout, and go to the DLQ after"
                    " maxReceiveCount receives",
                    "",
                )

    def _failed(self, message: str, details: str) -> None:
        self.errors += 1
        self.last_error = message
        if details and os.environ.get(DEBUG_VARIABLE):
            message = f"{message}\n{details}"
        try:
            self._report(self.name, message)
        except Exception as exc:  # a broken report must not stop the poller; say so
            print_poller_error(self.name, f"{message} (and reporting it failed: {exc!r})")


def log_subscription_event(
    messages: list[str], *, log_group: str, owner: str, first_id: int = 0
) -> dict[str, Any]:
    """What CloudWatch Logs hands a subscribed Lambda: ``{"awslogs": {"data": ...}}``.

    ``data`` is the base64 of the gzip of the JSON batch.
    """
    import base64
    import gzip
    import json

    now = int(time.time() * 1000)
    payload = {
        "messageType": "DATA_MESSAGE",
        "owner": owner,
        "logGroup": log_group,
        "logStream": "gatehouse-dev",
        "subscriptionFilters": ["gatehouse-gateway-audit"],
        "logEvents": [
            {"id": f"{first_id + index:056d}", "timestamp": now, "message": message}
            for index, message in enumerate(messages)
        ],
    }
    data = gzip.compress(json.dumps(payload).encode("utf-8"))
    return {"awslogs": {"data": base64.b64encode(data).decode("ascii")}}
