"""The local stack's background pollers report every error: a console line and a count."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import boto3
import pytest

from gatehouse.dev.aws_server import AwsServer
from gatehouse.dev.event_source import DrainResult, EventSourcePoller, drain_queue


def run_until(poller: EventSourcePoller, done: Callable[[], bool], seconds: float = 10) -> None:
    poller.start()
    try:
        deadline = time.monotonic() + seconds
        while not done() and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        poller.stop()


def test_a_failing_poller_prints_one_line_per_error_and_counts_it(
    capsys: pytest.CaptureFixture[str],
) -> None:
    def drain() -> None:
        raise RuntimeError("the table is gone")

    poller = EventSourcePoller(drain, 0.01, name="grant-sweeper")
    run_until(poller, lambda: poller.errors >= 1)

    assert poller.errors >= 1
    assert poller.last_error == "RuntimeError: the table is gone"
    lines = capsys.readouterr().err.splitlines()
    assert lines[0] == "gatehouse dev: grant-sweeper: RuntimeError: the table is gone"
    assert len(lines) == poller.errors  # no traceback without GATEHOUSE_DEV_DEBUG
    assert not any("Traceback" in line for line in lines)


def test_debug_adds_the_traceback(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GATEHOUSE_DEV_DEBUG", "1")

    def drain() -> None:
        raise ValueError("bad digest")

    poller = EventSourcePoller(drain, 0.01, name="ledger-digest")
    run_until(poller, lambda: poller.errors >= 1)

    assert "Traceback" in capsys.readouterr().err


@pytest.fixture
def sqs() -> Iterator[Any]:
    server = AwsServer()
    server.start()
    yield boto3.client(
        "sqs",
        endpoint_url=server.url,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    server.stop()


def test_writer_batch_item_failures_are_reported_and_stay_on_the_queue(sqs: Any) -> None:
    queue = sqs.create_queue(QueueName="audit", Attributes={"VisibilityTimeout": "30"})["QueueUrl"]
    for body in ("good", "bad"):
        sqs.send_message(QueueUrl=queue, MessageBody=body)

    def writer(event: dict[str, Any], context: Any) -> dict[str, Any]:
        failures = [r["messageId"] for r in event["Records"] if r["body"] == "bad"]
        return {"batchItemFailures": [{"itemIdentifier": m} for m in failures]}

    reports: list[tuple[str, str]] = []
    results: list[DrainResult] = []

    def drain() -> DrainResult:
        results.append(drain_queue(sqs, queue, writer, wait_seconds=1))
        return results[-1]

    poller = EventSourcePoller(
        drain, 0, name="audit-writer", report=lambda *report: reports.append(report)
    )
    run_until(poller, lambda: bool(reports))

    assert results[0] == DrainResult(delivered=1, failed=1)
    assert poller.errors == 1
    assert reports[0][0] == "audit-writer"
    assert reports[0][1].startswith("1 message(s) not handled")
    attributes = sqs.get_queue_attributes(
        QueueUrl=queue, AttributeNames=["ApproximateNumberOfMessagesNotVisible"]
    )["Attributes"]
    assert attributes["ApproximateNumberOfMessagesNotVisible"] == "1"  # the failed one, in flight


def test_a_drain_reports_its_progress_and_stops_at_its_batch_bound(sqs: Any) -> None:
    queue_url = sqs.create_queue(QueueName="progress")["QueueUrl"]
    for start in range(0, 250, 10):
        sqs.send_message_batch(
            QueueUrl=queue_url,
            Entries=[{"Id": str(n), "MessageBody": f"event {start + n}"} for n in range(10)],
        )
    seen: list[int] = []

    def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
        return {"batchItemFailures": []}

    first = drain_queue(
        sqs, queue_url, handler, batch_size=100, max_batches=2, progress=seen.append
    )
    rest = drain_queue(sqs, queue_url, handler, batch_size=100, progress=seen.append)

    assert first == DrainResult(200, 0)  # bounded: a queue that keeps filling never holds it
    assert rest == DrainResult(50, 0)
    assert seen == [100, 200, 50]
