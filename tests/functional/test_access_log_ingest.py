"""The access-log Lambda (``app.access_log_ingest``): API Gateway's own log lines into the ledger.

Requests the authorizer never saw (a missing token, throttling, WAF) reach
the trail as ``gateway`` events. The subscription payload is CloudWatch
Logs' format (gzip, base64) carrying the fixtures of AWS's access-log lines;
the events go through the real queue and the real ledger writer, and a
batch CloudWatch Logs delivers twice is stored once.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import app
from gatehouse.deploy.templates import load_template
from gatehouse.dev.gateway import render_access_log
from tests.functional.conftest import queued_events
from tests.functional.test_audit_writer import sqs_event
from tests.unit.test_gateway_access_logs import LOG_FORMAT, fixture_lines, subscription_event

if TYPE_CHECKING:
    import pytest

    from chalicelib.container import Container
    from gatehouse.dev.bootstrap import Resources

ROOT = Path(__file__).resolve().parents[2]
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


def test_hostile_lines_still_reach_the_queue_and_unreadable_ones_reach_their_alarm(
    stage: Container,
    aws: Resources,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("POWERTOOLS_METRICS_DISABLED", "false")
    honest = json.loads(fixture_lines("throttled")[0])
    agent = 'x","status":"200","sourceIp":"6.6.6.6'
    hostile = render_access_log(LOG_FORMAT, {**honest, "userAgent": agent, "path": '/dev/a"b\\'})
    unreadable = hostile[: hostile.index('"status":')]  # cut inside what the gateway vouches for

    answer = app.access_log_ingest(subscription_event([hostile, unreadable]), None)

    assert answer == {"events": 1, "rejected": 1}
    [event] = queued_events(aws)
    assert event["request"]["id"] == honest["requestId"]
    assert (event["outcome"]["status"], event["source"]["ip"]) == (429, honest["sourceIp"])
    assert (event["source"]["user_agent"], event["resource"]["path"]) == (agent, '/a"b\\')
    assert event["anomalies"] == ["access_log_not_json"]
    # The rejected line is counted exactly where its alarm looks.
    alarm = load_template(ROOT / "infra" / "gatehouse.yaml")["Resources"]
    watched = alarm["AccessLogLinesRejectedAlarm"]["Properties"]
    [emf] = [
        json.loads(line)
        for line in capsys.readouterr().out.splitlines()
        if line.startswith("{") and '"_aws"' in line
    ]
    [directive] = emf["_aws"]["CloudWatchMetrics"]
    assert emf[watched["MetricName"]] in (1.0, [1.0])
    assert directive["Namespace"] == watched["Namespace"]
    assert directive["Dimensions"] == [[d["Name"] for d in watched["Dimensions"]]]
    assert all(emf[d["Name"]] == d["Value"] for d in watched["Dimensions"])


def _messages(aws: Resources) -> list[tuple[str, str]]:
    import boto3

    sqs = boto3.client("sqs", region_name="us-east-1")
    found = []
    while batch := sqs.receive_message(QueueUrl=aws.audit_queue_url, MaxNumberOfMessages=10).get(
        "Messages", []
    ):
        found += [(m["MessageId"], m["Body"]) for m in batch]
    return found
