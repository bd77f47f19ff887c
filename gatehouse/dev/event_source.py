"""An SQS event source mapping, as Lambda runs it, for the audit writer.

Receives batches from the audit queue, invokes the writer handler with an
SQS event in Lambda's format, and deletes the messages the handler did not
report in ``batchItemFailures``. Reported messages stay on the queue, become
visible again and, after the queue's ``maxReceiveCount``, go to the DLQ.
The same poller plays EventBridge for scheduled functions (the grant sweeper).
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

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
) -> DrainResult:
    """Deliver everything currently on the queue to ``handler``, batch by batch."""
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])[
        "Attributes"
    ]["QueueArn"]
    delivered = failed = 0
    for _ in range(max_batches):
        messages = _receive_batch(sqs, queue_url, batch_size)
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
        if failures:
            break  # failed messages stay invisible until their timeout; do not spin on them
    return DrainResult(delivered, failed)


def _receive_batch(sqs: Any, queue_url: str, batch_size: int) -> list[dict[str, Any]]:
    messages: list[dict[str, Any]] = []
    while len(messages) < batch_size:
        response = sqs.receive_message(
            QueueUrl=queue_url,
            MaxNumberOfMessages=min(10, batch_size - len(messages)),
            WaitTimeSeconds=0,
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


class EventSourcePoller:
    """Runs ``drain`` in a background thread every interval, like Lambda's event
    source mapping (for the audit queue) or an EventBridge schedule (for the sweeper)."""

    def __init__(
        self,
        drain: Callable[[], object],
        interval_seconds: float = 1.0,
        name: str = "audit-event-source",
    ) -> None:
        self._drain = drain
        self._interval = interval_seconds
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self.errors = 0

    def start(self) -> None:
        """Start polling."""
        self._thread.start()

    def stop(self) -> None:
        """Stop polling and wait for the current batch."""
        self._stop.set()
        self._thread.join(timeout=10)

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            try:
                self._drain()
            except Exception:  # keep polling, as Lambda would retry the batch
                self.errors += 1


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
