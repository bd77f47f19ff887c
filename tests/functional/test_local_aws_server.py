"""The local stack's moto process: SQS under concurrent senders and consumers, long polling.

Real moto in its own process (``gatehouse.dev.aws_server``), as ``gatehouse dev`` runs it.
"""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from collections.abc import Iterator
from typing import Any

import boto3
import pytest

from gatehouse.dev.aws_server import AwsServer

SENDERS = 8
PER_SENDER = 150
RECEIVED_LOCK = threading.Lock()


@pytest.fixture(scope="module")
def endpoint() -> Iterator[str]:
    server = AwsServer()
    server.start()
    yield server.url
    server.stop()


def sqs(endpoint: str) -> Any:
    return boto3.client(
        "sqs",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )


def queue_with_dlq(
    client: Any, name: str, *, visibility: int, max_receives: int
) -> tuple[str, str]:
    dlq = client.create_queue(QueueName=f"{name}-dlq")["QueueUrl"]
    dlq_arn = client.get_queue_attributes(QueueUrl=dlq, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    redrive = {"deadLetterTargetArn": dlq_arn, "maxReceiveCount": str(max_receives)}
    queue = client.create_queue(
        QueueName=name,
        Attributes={"VisibilityTimeout": str(visibility), "RedrivePolicy": json.dumps(redrive)},
    )["QueueUrl"]
    return queue, dlq


def depth(client: Any, url: str) -> int:
    attributes = client.get_queue_attributes(
        QueueUrl=url,
        AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
    )["Attributes"]
    return int(attributes["ApproximateNumberOfMessages"]) + int(
        attributes["ApproximateNumberOfMessagesNotVisible"]
    )


def send_all(endpoint: str, queue: str, sender: int, errors: list[BaseException]) -> None:
    client = sqs(endpoint)
    try:
        for index in range(PER_SENDER):
            client.send_message(QueueUrl=queue, MessageBody=f"{sender}-{index}")
    except BaseException as exc:
        errors.append(exc)


def consume_all(
    endpoint: str,
    queue: str,
    received: Counter[str],
    senders_done: threading.Event,
    errors: list[BaseException],
) -> None:
    client = sqs(endpoint)
    try:
        while True:
            messages = client.receive_message(
                QueueUrl=queue, MaxNumberOfMessages=10, WaitTimeSeconds=1
            ).get("Messages", [])
            if not messages and senders_done.is_set():
                return
            with RECEIVED_LOCK:
                received.update(m["Body"] for m in messages)
            if messages:
                entries = [
                    {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]}
                    for i, m in enumerate(messages)
                ]
                client.delete_message_batch(QueueUrl=queue, Entries=entries)
    except BaseException as exc:
        errors.append(exc)


def test_concurrent_senders_and_consumers_lose_and_duplicate_nothing(endpoint: str) -> None:
    queue, dlq = queue_with_dlq(sqs(endpoint), "burst", visibility=30, max_receives=5)
    received: Counter[str] = Counter()
    errors: list[BaseException] = []
    senders_done = threading.Event()
    consume = (endpoint, queue, received, senders_done, errors)
    consumers = [threading.Thread(target=consume_all, args=consume) for _ in range(3)]
    senders = [
        threading.Thread(target=send_all, args=(endpoint, queue, n, errors)) for n in range(SENDERS)
    ]
    for thread in consumers + senders:
        thread.start()
    for thread in senders:
        thread.join(120)
    senders_done.set()
    for thread in consumers:
        thread.join(120)

    assert not errors, errors
    expected = {f"{s}-{i}" for s in range(SENDERS) for i in range(PER_SENDER)}
    assert set(received) == expected
    assert [body for body, n in received.items() if n > 1] == []
    assert depth(sqs(endpoint), queue) == 0
    assert depth(sqs(endpoint), dlq) == 0


def test_long_poll_wakes_when_a_message_is_sent(endpoint: str) -> None:
    client = sqs(endpoint)
    queue = client.create_queue(QueueName="wake")["QueueUrl"]
    answer: dict[str, Any] = {}

    def poll() -> None:
        started = time.monotonic()
        answer["messages"] = client.receive_message(QueueUrl=queue, WaitTimeSeconds=10).get(
            "Messages", []
        )
        answer["waited"] = time.monotonic() - started

    poller = threading.Thread(target=poll)
    poller.start()
    time.sleep(0.5)
    # The long poll holds no lock: a send goes through while it waits.
    sent = time.monotonic()
    sqs(endpoint).send_message(QueueUrl=queue, MessageBody="hello")
    assert time.monotonic() - sent < 5
    poller.join(15)
    assert [m["Body"] for m in answer["messages"]] == ["hello"]
    assert answer["waited"] < 5


def test_unhandled_messages_come_back_and_go_to_the_dlq_after_max_receives(endpoint: str) -> None:
    client = sqs(endpoint)
    queue, dlq = queue_with_dlq(client, "redrive", visibility=1, max_receives=2)
    client.send_message(QueueUrl=queue, MessageBody="poison")
    receives = 0
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and depth(client, dlq) == 0:
        # A long poll also wakes for a message whose visibility timeout ran out.
        messages = client.receive_message(QueueUrl=queue, WaitTimeSeconds=3).get("Messages", [])
        receives += len(messages)
    assert receives == 2
    assert depth(client, dlq) == 1
    assert depth(client, queue) == 0
