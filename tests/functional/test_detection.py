"""Detection in the audit writer and the scheduled check, against moto.

The writer is the container's, built from the stage's settings as Lambda
builds it; alerts go to moto's SNS topic (its subscriber queue), EventBridge
(a rule's target queue) and the audit queue (the alert event).
"""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

import boto3
import pytest

from chalicelib.audit import serialize_event
from chalicelib.audit.schema import (
    DecisionRecord,
    RequestRecord,
    ResourceRecord,
    build_event,
    utc_timestamp,
    uuid7,
)
from chalicelib.config import Settings
from chalicelib.container import Container
from chalicelib.detect.state import DynamoState
from chalicelib.identity import Identity
from chalicelib.reasons import Reason
from tests.functional.conftest import environment, queued_events

if TYPE_CHECKING:
    from gatehouse.dev.bootstrap import Resources

ISSUER = "https://idp.example.com"
T0 = 1_796_724_000.0  # 2026-12-08T10:00:00Z: a window boundary
RULES = {
    "version": 1,
    "rules": [
        {
            "name": "burst",
            "enabled": True,
            "severity": "medium",
            "kind": "deny_burst_principal",
            "threshold": 5,
            "window_seconds": 60,
            "suppress_seconds": 300,
        },
        {"name": "seen", "enabled": True, "severity": "low", "kind": "first_seen_source"},
        {"name": "dlq", "enabled": True, "severity": "high", "kind": "dead_letters"},
        {"name": "verify", "enabled": True, "severity": "critical", "kind": "verify_failed"},
        {"name": "witness", "enabled": True, "severity": "critical", "kind": "witness_refused"},
    ],
}


def sqs() -> Any:
    return boto3.client("sqs", region_name="us-east-1")


@pytest.fixture
def stage_settings(aws: Resources, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    rules = tmp_path / "rules.json"
    rules.write_text(json.dumps(RULES))
    values = environment(
        aws,
        GATEHOUSE_DETECTION_RULES=str(rules),
        GATEHOUSE_ALERT_TOPIC_ARN=aws.alert_topic_arn,
    )
    for name, value in values.items():
        monkeypatch.setenv(name, value)
    return Settings.from_environment()


def container(settings: Settings) -> Container:
    """A fresh Lambda container (its own clients, its own first-seen cache)."""
    return Container(settings)


def decision(
    at: float, *, subject: str = "mallory", outcome: str = "deny", ip: str = "198.51.100.9"
) -> dict[str, Any]:
    identity = Identity(ISSUER, subject, "gatehouse", 1_900_000_000, email=f"{subject}@ex.com")
    request = RequestRecord(
        f"r-{uuid7()}", None, None, None, "test", ip, "curl/8", "h", "GET", "/api/x", None
    )
    reasons = [Reason.NO_MATCHING_RULE if outcome == "deny" else Reason.ALLOW_RULE_MATCHED]
    event = build_event(
        "decision",
        request,
        identity=identity,
        decision=DecisionRecord(outcome, reasons),  # type: ignore[arg-type]
        resource=ResourceRecord("demo"),
    )
    event["event_time"] = utc_timestamp(at)
    return event


def sqs_event(events: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "Records": [
            {"messageId": f"m-{index}", "body": serialize_event(event)}
            for index, event in enumerate(events)
        ]
    }


def alerts_on_sns(aws: Resources) -> list[dict[str, Any]]:
    return [json.loads(body) for body in _drain(aws.alert_console_queue_url)]


def alerts_on_eventbridge(aws: Resources) -> list[dict[str, Any]]:
    return [json.loads(body) for body in _drain(aws.alert_events_queue_url)]


def _drain(url: str) -> list[str]:
    client, bodies = sqs(), []
    while messages := client.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get(
        "Messages", []
    ):
        for message in messages:
            bodies.append(message["Body"])
            client.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
    return bodies


def stored_ids(aws: Resources) -> list[str]:
    from chalicelib.audit.reader import list_event_objects, read_event_object

    s3 = boto3.client("s3", region_name="us-east-1")
    keys = sorted(list_event_objects(s3, aws.audit_bucket, days=1))
    return [e["event_id"] for key in keys for e in read_event_object(s3, aws.audit_bucket, key)]


def test_a_batch_crossing_the_threshold_fires_once_with_its_event_ids(
    aws: Resources, stage_settings: Settings
) -> None:
    writer = container(stage_settings).writer
    first = [decision(T0 + i) for i in range(4)]
    result = writer.handle_sqs_batch(sqs_event(first))
    assert (result.stored is not None, result.failed_message_ids) == (True, ())
    assert alerts_on_sns(aws) == []  # 4 of 5
    assert alerts_on_eventbridge(aws) == []

    second = [decision(T0 + 10 + i) for i in range(3)]
    writer.handle_sqs_batch(sqs_event(second))

    [alert] = alerts_on_sns(aws)
    ids = [event["event_id"] for event in first + second]
    assert alert["rule"] == "burst"
    assert alert["event_ids"] == sorted(ids)
    assert (alert["observed"], alert["threshold"]) == (7, 5)
    assert alert["window"] == {
        "from": "2026-12-08T10:00:00.000Z",
        "to": "2026-12-08T10:01:00.000Z",
        "seconds": 60.0,
    }
    assert alert["principal"]["subject"] == "mallory"
    assert alert["query"]["parameters"]["ids"] == ",".join(sorted(ids))
    [put] = alerts_on_eventbridge(aws)
    assert (put["source"], put["detail-type"]) == ("gatehouse", "Gatehouse Alert")
    assert put["detail"] == alert
    # The alert is an event of the trail, queued like any other, its id the alert's.
    [alert_event] = queued_events(aws)
    assert (alert_event["event_type"], alert_event["event_id"]) == ("alert", alert["alert_id"])
    assert alert_event["alert"]["event_ids"] == alert["event_ids"]
    # ... and the record `gatehouse alerts explain` reads.
    state = DynamoState(boto3.client("dynamodb", region_name="us-east-1"), aws.state_table)
    assert state.alert(alert["alert_id"]) == alert

    # The same burst goes on in the same window: nothing more.
    writer.handle_sqs_batch(sqs_event([decision(T0 + 20 + i) for i in range(10)]))
    assert alerts_on_sns(aws) == []
    # Every event is in the ledger, the alerts' batches too.
    assert set(ids) <= set(stored_ids(aws))


def test_the_alert_event_is_stored_and_feeds_no_rule(
    aws: Resources, stage_settings: Settings
) -> None:
    writer = container(stage_settings).writer
    writer.handle_sqs_batch(sqs_event([decision(T0 + i) for i in range(5)]))
    [alert] = alerts_on_sns(aws)
    alert_events = queued_events(aws)
    writer.handle_sqs_batch(sqs_event(alert_events))
    assert alert["alert_id"] in stored_ids(aws)
    assert alerts_on_sns(aws) == []


def test_a_repeat_in_the_next_window_is_suppressed(
    aws: Resources, stage_settings: Settings
) -> None:
    writer = container(stage_settings).writer
    writer.handle_sqs_batch(sqs_event([decision(T0 + i) for i in range(5)]))
    writer.handle_sqs_batch(sqs_event([decision(T0 + 60 + i) for i in range(5)]))
    # Another principal is another subject: not suppressed by mallory's alert.
    writer.handle_sqs_batch(sqs_event([decision(T0 + i, subject="eve") for i in range(5)]))
    assert [a["principal"]["subject"] for a in alerts_on_sns(aws)] == ["mallory", "eve"]


def test_two_writer_containers_share_the_windows(aws: Resources, stage_settings: Settings) -> None:
    one, two = container(stage_settings).writer, container(stage_settings).writer
    batches = [[decision(T0 + 2 * i), decision(T0 + 2 * i + 1)] for i in range(4)]
    for writer, batch in zip([one, two, one, two], batches, strict=True):
        writer.handle_sqs_batch(sqs_event(batch))
    [alert] = alerts_on_sns(aws)
    # Crossed by the third batch (6 >= 5): its writer fired, with every counted event.
    assert alert["event_ids"] == sorted(e["event_id"] for batch in batches[:3] for e in batch)


def test_concurrent_writers_see_exactly_one_crossing(
    aws: Resources, stage_settings: Settings
) -> None:
    crossings: list[int] = []
    barrier = threading.Barrier(8)

    def add(index: int) -> None:
        state = DynamoState(boto3.client("dynamodb", region_name="us-east-1"), aws.state_table)
        barrier.wait()
        tally = state.add_count("r", "s", 0, 1, [f"e-{index}"], 5, 9_999_999_999)
        if tally is not None and tally.total - 1 < 5 <= tally.total:
            crossings.append(index)

    threads = [threading.Thread(target=add, args=(index,)) for index in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(crossings) == 1


def test_a_first_seen_address_survives_a_new_container(
    aws: Resources, stage_settings: Settings
) -> None:
    container(stage_settings).writer.handle_sqs_batch(
        sqs_event([decision(T0, subject="alice", outcome="allow")])
    )
    later = container(stage_settings).writer
    later.handle_sqs_batch(sqs_event([decision(T0 + 5, subject="alice", outcome="allow")]))
    assert alerts_on_sns(aws) == []
    moved = decision(T0 + 9, subject="alice", outcome="allow", ip="192.0.2.77")
    later.handle_sqs_batch(sqs_event([moved]))
    [alert] = alerts_on_sns(aws)
    assert (alert["rule"], alert["event_ids"]) == ("seen", [moved["event_id"]])


class _Counting:
    """A boto3 client that counts the calls made through it."""

    def __init__(self, client: Any, calls: list[str]) -> None:
        self._client, self._calls = client, calls

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self._client, name)
        if callable(attribute) and not name.startswith(("get_paginator", "_", "meta")):

            def counted(*args: Any, **kwargs: Any) -> Any:
                self._calls.append(name)
                return attribute(*args, **kwargs)

            return counted
        return attribute


def test_a_big_benign_batch_costs_a_few_round_trips(
    aws: Resources, stage_settings: Settings
) -> None:
    built = container(stage_settings)
    calls: list[str] = []
    built.detection_state._dynamodb = _Counting(built.detection_state._dynamodb, calls)
    people = [f"user{n}" for n in range(5)]
    batch = [decision(T0 + i / 100, subject=people[i % 5], outcome="allow") for i in range(600)]
    batch += [decision(T0 + i, subject=people[i], outcome="deny") for i in range(4)]
    built.writer.handle_sqs_batch(sqs_event(batch))
    # One first-seen update per principal, one count per (principal, window) denied.
    assert calls == ["update_item"] * 9
    calls.clear()
    built.writer.handle_sqs_batch(
        sqs_event(
            [
                decision(T0 + 30 + i / 100, subject=people[i % 5], outcome="allow")
                for i in range(600)
            ]
        )
    )
    assert calls == []  # known addresses of known principals: nothing to send
    assert alerts_on_sns(aws) == []


def test_a_detection_failure_keeps_the_batch_and_is_counted(
    aws: Resources, stage_settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    class _Metrics:
        def __init__(self) -> None:
            self.names: list[str] = []

        def add_metric(self, name: str, unit: str, value: float) -> None:
            self.names.append(name)

    metrics = _Metrics()
    built = Container(stage_settings, metrics=metrics)
    # The state table refuses detection (as a missing permission would).
    built.detection_state._table = "no-such-table"
    events = [decision(T0 + i) for i in range(6)]
    result = built.writer.handle_sqs_batch(sqs_event(events))
    assert result.failed_message_ids == ()
    assert result.stored is not None
    assert result.stored.event_count == 6
    assert {e["event_id"] for e in events} <= set(stored_ids(aws))
    assert metrics.names == ["DetectionFailed"]
    assert any(result.stored.key in r.getMessage() for r in caplog.records)
    assert alerts_on_sns(aws) == []


def test_invalid_rules_do_not_stop_the_writer(
    aws: Resources, stage_settings: Settings, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"version": 1, "rules": [{"name": "x", "kind": "nope"}]}))
    import dataclasses

    assert stage_settings.detection is not None
    settings = dataclasses.replace(
        stage_settings, detection=dataclasses.replace(stage_settings.detection, rules_path=str(bad))
    )
    result = container(settings).writer.handle_sqs_batch(sqs_event([decision(T0)]))
    assert result.stored is not None
    assert "rules[0]" in caplog.text or "rule 'x'" in caplog.text


def test_detection_off_builds_no_detector(aws: Resources, monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in environment(aws, GATEHOUSE_DETECTION_RULES="off").items():
        monkeypatch.setenv(name, value)
    built = Container(Settings.from_environment())
    assert built.detector is None
    assert built.writer.handle_sqs_batch(sqs_event([decision(T0)])).stored is not None


# --- the scheduled check -------------------------------------------------------------------


def run_checks(settings: Settings) -> None:
    from chalicelib import entrypoints

    entrypoints.use_container(container(settings))
    try:
        entrypoints.run_detection_checks()
    finally:
        entrypoints.use_container(None)


def test_dead_letters_fire_once_while_they_wait(aws: Resources, stage_settings: Settings) -> None:
    run_checks(stage_settings)
    assert alerts_on_sns(aws) == []
    sqs().send_message(QueueUrl=aws.audit_dlq_url, MessageBody="{}")
    run_checks(stage_settings)
    run_checks(stage_settings)
    [alert] = alerts_on_sns(aws)
    assert (alert["rule"], alert["subject"], alert["observed"]) == ("dlq", "audit-dlq", 1)
    assert alert["query"] is None
    assert "gatehouse audit dlq" in alert["detail"]


def test_a_failed_verification_fires(aws: Resources, stage_settings: Settings) -> None:
    cloudwatch = boto3.client("cloudwatch", region_name="us-east-1")
    cloudwatch.put_metric_data(
        Namespace="Gatehouse",
        MetricData=[
            {
                "MetricName": "LedgerVerifyFindings",
                "Dimensions": [{"Name": "Stage", "Value": "test"}],
                "Value": 2.0,
                "Unit": "Count",
            }
        ],
    )
    run_checks(stage_settings)
    [alert] = alerts_on_sns(aws)
    assert (alert["rule"], alert["observed"]) == ("verify", 2.0)


def test_a_witness_refusal_fires_once(aws: Resources, stage_settings: Settings) -> None:
    s3 = boto3.client("s3", region_name="us-east-1")
    key = "audit/v1/witness/ab12/refused/2026-12-08T10.json"
    s3.put_object(Bucket=aws.audit_bucket, Key=key, Body=b"{}", ChecksumAlgorithm="SHA256")
    s3.put_object(
        Bucket=aws.audit_bucket,
        Key="audit/v1/witness/ab12/cosigned/x.json",
        Body=b"{}",
        ChecksumAlgorithm="SHA256",
    )
    run_checks(stage_settings)
    run_checks(stage_settings)
    [alert] = alerts_on_sns(aws)
    assert (alert["rule"], alert["subject"]) == ("witness", key)


# --- the CLI's writer -----------------------------------------------------------------------


def test_events_the_cli_flushes_meet_the_rules_too(
    aws: Resources,
    stage_settings: Settings,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from gatehouse import cli

    burst = [decision(T0 + i, subject="flushed") for i in range(5)]
    client = sqs()
    for event in burst:
        client.send_message(QueueUrl=aws.audit_queue_url, MessageBody=serialize_event(event))

    code = cli.main(["--state-dir", str(tmp_path / "no-stack"), "audit", "flush"])

    assert code == 0, capsys.readouterr()
    [alert] = alerts_on_sns(aws)
    assert (alert["rule"], alert["principal"]["subject"]) == ("burst", "flushed")
    assert alert["event_ids"] == sorted(event["event_id"] for event in burst)
    [put] = alerts_on_eventbridge(aws)
    assert put["detail"] == alert
    # The flush stored the alert's own event too: the queue is empty, the ledger has both.
    assert queued_events(aws) == []
    assert {alert["alert_id"], *alert["event_ids"]} <= set(stored_ids(aws))


def test_the_cli_flushes_without_rules_when_detection_is_off(
    aws: Resources,
    stage_settings: Settings,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from gatehouse import cli

    monkeypatch.setenv("GATEHOUSE_DETECTION_RULES", "off")
    for event in [decision(T0 + i, subject="unwatched") for i in range(5)]:
        sqs().send_message(QueueUrl=aws.audit_queue_url, MessageBody=serialize_event(event))

    assert cli.main(["--state-dir", str(tmp_path / "no-stack"), "audit", "flush"]) == 0

    assert alerts_on_sns(aws) == []
    assert len(stored_ids(aws)) == 5
