"""The local stack's console writes whole lines, however many threads print at once."""

from __future__ import annotations

import io
import json
import threading
import time

import pytest

from gatehouse.dev.console import (
    Decided,
    DecisionTap,
    LineAtomicStream,
    RequestConsole,
    whole_lines,
)
from gatehouse.dev.gateway.messages import Exchange, GatewayAnswer, IncomingRequest


class _RecordingTarget(io.StringIO):
    """Keeps every write call apart, and yields the GIL inside each to invite interleaving."""

    def __init__(self) -> None:
        super().__init__()
        self.writes: list[str] = []

    def write(self, text: str) -> int:
        time.sleep(0)
        self.writes.append(text)
        return super().write(text)


def test_concurrent_prints_never_share_a_line() -> None:
    target = _RecordingTarget()
    stream = LineAtomicStream(target)
    start = threading.Barrier(8)

    def emit(worker: int) -> None:
        start.wait()
        for index in range(300):
            # print's two writes (text, then newline), as Powertools' metrics flush makes them.
            print(json.dumps({"worker": worker, "index": index, "pad": "x" * 50}), file=stream)

    threads = [threading.Thread(target=emit, args=(worker,)) for worker in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    # Every call the target saw is whole lines: a plain stream would see print's
    # text and its newline as two calls, which another thread can land between.
    assert all(text.endswith("\n") for text in target.writes)
    lines = target.getvalue().splitlines()
    assert len(lines) == 8 * 300
    seen = {(record["worker"], record["index"]) for record in map(json.loads, lines)}
    assert len(seen) == 8 * 300


def test_a_partial_line_waits_for_its_newline_or_a_flush() -> None:
    target = io.StringIO()
    stream = LineAtomicStream(target)
    stream.write("draining 3 of ")
    assert target.getvalue() == ""
    stream.write("10\nnext")
    assert target.getvalue() == "draining 3 of 10\n"
    stream.flush()
    assert target.getvalue() == "draining 3 of 10\nnext"


def test_whole_lines_restores_stdout_and_writes_what_was_left(capsys) -> None:  # type: ignore[no-untyped-def]
    import sys

    before = sys.stdout
    with whole_lines():
        assert sys.stdout is not before
        print("unfinished", end="")
    assert sys.stdout is before
    assert capsys.readouterr().out == "unfinished"


# --------------------------------------------------------------------------- one line per request


def _decision_event(request_id: str, outcome: str, *reasons: str) -> str:
    return json.dumps(
        {
            "event_type": "decision",
            "request": {"id": request_id},
            "decision": {"outcome": outcome, "reasons": list(reasons)},
        },
        separators=(",", ":"),
    )


def test_the_tap_reads_decisions_as_they_are_sent_to_the_audit_queue() -> None:
    import boto3
    from moto import mock_aws

    with mock_aws():
        sqs = boto3.client("sqs", region_name="us-east-1")
        audit = sqs.create_queue(QueueName="audit")["QueueUrl"]
        other = sqs.create_queue(QueueName="other")["QueueUrl"]
        tap = DecisionTap(audit)
        tap.install(sqs)

        sqs.send_message(QueueUrl=audit, MessageBody=_decision_event("r1", "deny", "mfa_required"))
        sqs.send_message_batch(
            QueueUrl=audit,
            Entries=[
                {"Id": "0", "MessageBody": _decision_event("r2", "allow", "allow_rule_matched")},
                {"Id": "1", "MessageBody": '{"event_type":"gateway","request":{"id":"r3"}}'},
            ],
        )
        sqs.send_message(QueueUrl=other, MessageBody=_decision_event("r4", "allow", "x"))

    assert tap.take("r1") == Decided("deny", ("mfa_required",))
    assert tap.take("r1") is None  # taken once
    assert tap.take("r2") == Decided("allow", ("allow_rule_matched",))
    assert tap.take("r3") is None  # not a decision
    assert tap.take("r4") is None  # not the audit queue


def _completed(
    console: RequestConsole, *, facts: dict[str, str], status: int, path: str = "/api/hello"
) -> None:
    request = IncomingRequest("GET", path, "", [], b"", "127.0.0.1")
    exchange = Exchange("req-1", "Root=1-0-0", started=10.0, facts=facts)
    console(request, exchange, GatewayAnswer(status, [], b""))


@pytest.mark.parametrize(
    ("decided", "facts", "status", "line"),
    [
        pytest.param(
            ("allow", "allow_rule_matched"), {}, 200,
            "gateway: GET /api/hello 200 allow allow_rule_matched 42ms", id="allowed",
        ),
        pytest.param(
            ("deny", "token_expired"), {"errorResponseType": "UNAUTHORIZED"}, 401,
            "gateway: GET /api/hello 401 deny token_expired 42ms", id="denied",
        ),
        pytest.param(
            None, {"errorResponseType": "MISSING_AUTHENTICATION_TOKEN"}, 404,
            "gateway: GET /api/hello 404 gateway missing_authentication_token 42ms",
            id="answered-by-the-gateway",
        ),
        pytest.param(None, {}, 200, "gateway: GET /api/hello 200 - - 42ms", id="open-route"),
    ],
)  # fmt: skip
def test_one_line_per_request_with_its_decision(
    decided: tuple[str, str] | None, facts: dict[str, str], status: int, line: str
) -> None:
    tap = DecisionTap("queue")
    if decided is not None:
        tap.seen(_decision_event("req-1", *decided))
    lines: list[str] = []

    _completed(RequestConsole(tap, lines.append, clock=lambda: 10.042), facts=facts, status=status)

    assert lines == [line]


def test_a_path_cannot_write_control_characters_to_the_console() -> None:
    lines: list[str] = []

    _completed(
        RequestConsole(DecisionTap("q"), lines.append, clock=lambda: 10.0),
        facts={},
        status=404,
        path="/x\x1b[2J\ny",
    )

    assert len(lines) == 1
    assert "\x1b" not in lines[0]
    assert "\n" not in lines[0]
