"""Many events at once (a batch of access-log lines): batch calls, and still fail closed."""

from __future__ import annotations

from typing import Any

import pytest

from chalicelib.audit import AuditEmitter, AuditUnavailable, SqsAuditSink


class CountingSqs:
    """An SQS client that records each call and answers as ``failed_ids`` says."""

    def __init__(self, failed_ids: tuple[str, ...] = ()) -> None:
        self.batches: list[int] = []
        self.failed_ids = failed_ids

    def send_message(self, **request: Any) -> dict[str, Any]:
        self.batches.append(1)
        return {"MessageId": "m"}

    def send_message_batch(self, **request: Any) -> dict[str, Any]:
        entries = request["Entries"]
        self.batches.append(len(entries))
        return {
            "Successful": [{"Id": e["Id"]} for e in entries if e["Id"] not in self.failed_ids],
            "Failed": [{"Id": i, "Code": "InternalError"} for i in self.failed_ids],
        }


def test_many_events_go_in_batch_calls_of_ten() -> None:
    sqs = CountingSqs()

    AuditEmitter(SqsAuditSink(sqs, "q")).emit_all([{"event_id": str(i)} for i in range(25)])

    assert sqs.batches == [10, 10, 5]


def test_an_event_the_queue_refuses_fails_the_whole_call_after_all_were_tried(
    caplog: pytest.LogCaptureFixture,
) -> None:
    sqs = CountingSqs(failed_ids=("3",))

    with pytest.raises(AuditUnavailable, match="1 of 12 events not enqueued"):
        AuditEmitter(SqsAuditSink(sqs, "q")).emit_all([{"event_id": str(i)} for i in range(12)])

    assert sqs.batches == [10, 2]  # the second batch was still sent
    assert '{"event_id":"3"}' in caplog.text  # the refused event is logged in full


def test_a_sink_without_batches_gets_one_event_at_a_time() -> None:
    sent: list[str] = []

    class OneByOne:
        def send(self, line: str) -> None:
            sent.append(line)

    AuditEmitter(OneByOne()).emit_all([{"event_id": "a"}, {"event_id": "b"}])

    assert sent == ['{"event_id":"a"}', '{"event_id":"b"}']
