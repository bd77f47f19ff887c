"""The access-log Lambda (``app.access_log_ingest``): API Gateway's own log lines into the ledger.

Requests the authorizer never saw (a missing token, throttling, WAF) reach
the trail as ``gateway`` events. The subscription payload is CloudWatch
Logs' format (gzip, base64) carrying the fixtures of AWS's access-log lines;
the events go through the real queue and the real ledger writer, and a
batch CloudWatch Logs delivers twice is stored once.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import app
from tests.functional.conftest import queued_events
from tests.functional.test_writer import sqs_event
from tests.unit.test_gateway_access_logs import fixture_lines, subscription_event

if TYPE_CHECKING:
    from chalicelib.container import Container
    from gatehouse.dev.bootstrap import Resources

FIXTURES = [
    "unauthorized_missing_token",
    "throttled",
    "waf_blocked",
    "allowed_authorizer_cached",
    "denied_cached_policy",
]


def test_gateway_log_lines_become_gateway_events_on_the_audit_queue(
    stage: Container, aws: Resources
) -> None:
    lines = [line for name in FIXTURES for line in fixture_lines(name)]

    answer = app.access_log_ingest(subscription_event(lines), None)

    assert answer == {"events": len(lines), "rejected": 0}
    events = queued_events(aws)
    assert [event["event_type"] for event in events] == ["gateway"] * len(lines)
    assert sorted(event["request"]["id"] for event in events) == sorted(
        json.loads(line)["requestId"] for line in lines
    )
    statuses = {event["outcome"]["status"] for event in events}
    assert {401, 429} <= statuses


def test_a_batch_delivered_twice_is_stored_once(stage: Container, aws: Resources) -> None:
    lines = fixture_lines("unauthorized_missing_token") + fixture_lines("throttled")
    payload = subscription_event(lines)

    app.access_log_ingest(payload, None)
    app.access_log_ingest(payload, None)  # CloudWatch Logs retried the invocation
    messages = _messages(aws)
    assert len(messages) == 2 * len(lines)

    answer = app.audit_writer(sqs_event(messages), None)

    assert answer == {"batchItemFailures": []}
    head = stage.ledger_state.head()
    assert head.next_sequence == len(lines)


def test_lines_that_are_no_json_object_are_counted_not_dropped_silently(
    stage: Container, aws: Resources
) -> None:
    lines = [*fixture_lines("throttled"), "not json", "[1, 2]"]

    answer = app.access_log_ingest(subscription_event(lines), None)

    assert answer == {"events": 1, "rejected": 2}
    assert len(queued_events(aws)) == 1


def _messages(aws: Resources) -> list[tuple[str, str]]:
    import boto3

    sqs = boto3.client("sqs", region_name="us-east-1")
    found = []
    while batch := sqs.receive_message(QueueUrl=aws.audit_queue_url, MaxNumberOfMessages=10).get(
        "Messages", []
    ):
        found += [(m["MessageId"], m["Body"]) for m in batch]
    return found
