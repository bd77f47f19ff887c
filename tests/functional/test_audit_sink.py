"""The audit queue sink: one call per event alone, one batch for events sent at once."""

from __future__ import annotations

import threading
import time
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


class ScriptedSqs:
    """An SQS client whose answers a test scripts (to reach what moto never answers)."""

    def __init__(self, answer: Any = None, delay: float = 0.0) -> None:
        self.answer = answer
        self.delay = delay
        self.calls = 0

    def send_message(self, **request: Any) -> dict[str, Any]:
        self.calls += 1
        time.sleep(self.delay)
        if isinstance(self.answer, BaseException):
            raise self.answer
        return {"MessageId": "m"}

    def send_message_batch(self, **request: Any) -> dict[str, Any]:
        self.calls += 1
        time.sleep(self.delay)
        if isinstance(self.answer, BaseException):
            raise self.answer
        if self.answer is not None:
            return dict(self.answer)
        return {"Successful": [{"Id": e["Id"]} for e in request["Entries"]], "Failed": []}


def _send_at_once(sink: SqsAuditSink, senders: int) -> tuple[list[str], list[str]]:
    accepted: list[str] = []
    refused: list[str] = []
    start = threading.Barrier(senders)

    def sender(worker: int) -> None:
        start.wait()
        try:
            sink.send(f'{{"event_id":"{worker}"}}')
            accepted.append(str(worker))
        except AuditUnavailable as exc:
            refused.append(str(exc))

    threads = [threading.Thread(target=sender, args=(w,)) for w in range(senders)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
        assert not thread.is_alive(), "a sender never returned"
    return accepted, refused


def test_an_event_sqs_does_not_list_as_successful_is_refused() -> None:
    sqs = ScriptedSqs(answer={"Successful": [], "Failed": []}, delay=0.05)

    accepted, refused = _send_at_once(SqsAuditSink(sqs, "q"), 6)

    # The first sender goes alone (SendMessage); the others share batches nobody answered.
    assert len(accepted) + len(refused) == 6
    assert len(refused) >= 1
    assert all("no answer for the event" in message for message in refused)


def test_a_leader_returns_once_its_own_event_is_answered_under_steady_load() -> None:
    sink = SqsAuditSink(ScriptedSqs(delay=0.02), "q")
    stop = threading.Event()

    def steady() -> None:
        while not stop.is_set():
            sink.send('{"event_id":"background"}')

    background = [threading.Thread(target=steady) for _ in range(4)]
    for thread in background:
        thread.start()
    try:
        started = time.monotonic()
        sink.send('{"event_id":"mine"}')
        took = time.monotonic() - started
    finally:
        stop.set()
        for thread in background:
            thread.join(5)

    assert took < 1.0  # a few calls' worth, never "until the queue is empty"


def test_a_leader_interrupted_mid_call_fails_its_batch_and_others_carry_on() -> None:
    sqs = ScriptedSqs(answer=KeyboardInterrupt(), delay=0.05)
    sink = SqsAuditSink(sqs, "q")

    with pytest.raises(KeyboardInterrupt):
        sink.send('{"event_id":"interrupted"}')
    sqs.answer = None

    accepted, refused = _send_at_once(sink, 4)
    assert (len(accepted), refused) == (4, [])


def test_a_sender_nobody_answers_gives_up_in_its_time() -> None:
    sink = SqsAuditSink(ScriptedSqs(delay=1.5), "q", wait_seconds=0.3)

    accepted, refused = _send_at_once(sink, 3)

    assert len(accepted) >= 1  # the leader's own call was answered
    assert refused
    assert all("did not answer in time" in message for message in refused)
