"""The audit queue sink: one call per event alone, one batch for events sent at once."""

from __future__ import annotations

import threading
from collections import Counter
from typing import TYPE_CHECKING, Any

import boto3
import pytest

from chalicelib.audit import AuditUnavailable, SqsAuditSink
from tests.functional.conftest import queued_events

if TYPE_CHECKING:
    from gatehouse.dev.bootstrap import Resources


def counted_sqs() -> tuple[Any, Counter[str]]:
    sqs = boto3.client("sqs", region_name="us-east-1")
    calls: Counter[str] = Counter()
    sqs.meta.events.register("before-call.sqs.*", lambda model, **_: calls.update([model.name]))
    return sqs, calls


def test_an_event_sent_alone_is_one_send_message(aws: Resources) -> None:
    sqs, calls = counted_sqs()

    SqsAuditSink(sqs, aws.audit_queue_url).send('{"event_id":"one"}')

    assert calls == Counter({"SendMessage": 1})
    assert queued_events(aws) == [{"event_id": "one"}]


def test_events_sent_at_once_arrive_each_exactly_once_in_fewer_calls(aws: Resources) -> None:
    sqs, calls = counted_sqs()
    sink = SqsAuditSink(sqs, aws.audit_queue_url)
    start = threading.Barrier(8)

    def sender(worker: int) -> None:
        start.wait()
        for n in range(40):
            sink.send(f'{{"event_id":"{worker}-{n}"}}')

    threads = [threading.Thread(target=sender, args=(w,)) for w in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    ids = [event["event_id"] for event in queued_events(aws)]
    assert sorted(ids) == sorted(f"{w}-{n}" for w in range(8) for n in range(40))
    assert calls["SendMessageBatch"] > 0
    assert calls["SendMessage"] + calls["SendMessageBatch"] < 320


@pytest.mark.parametrize("senders", [1, 6])
def test_when_the_queue_refuses_every_sender_is_told(aws: Resources, senders: int) -> None:
    sink = SqsAuditSink(boto3.client("sqs", region_name="us-east-1"), aws.audit_queue_url + "x")
    refused: list[str] = []
    start = threading.Barrier(senders)

    def sender(worker: int) -> None:
        start.wait()
        try:
            sink.send(f'{{"event_id":"{worker}"}}')
        except AuditUnavailable as exc:
            refused.append(str(exc))

    threads = [threading.Thread(target=sender, args=(w,)) for w in range(senders)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert len(refused) == senders
    assert all(message.startswith("audit queue rejected the event") for message in refused)
