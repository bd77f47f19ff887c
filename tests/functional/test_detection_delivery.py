"""Alert delivery is at least once: an alert a channel did not take is sent again.

Against moto, with channels that fail for real: an event bus or a topic that
does not exist. Only a partial PutEvents failure (some entries of a call
refused, as EventBridge does when it throttles) is beyond moto: there the
events client forwards the other entries to moto and answers as EventBridge
does. The writer is the container's; the scheduled run is
``entrypoints.run_detection_checks``, given a clock past the grace period.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import boto3
import pytest

from chalicelib.config import Settings
from chalicelib.container import Container
from chalicelib.detect.alerts import PENDING_GRACE_SECONDS
from chalicelib.detect.checks import STUCK_AFTER_ATTEMPTS
from chalicelib.detect.state import PARTITION, PENDING_PREFIX, DynamoState
from tests.functional.conftest import environment, queued_events
from tests.functional.test_detection import (
    RULES,
    T0,
    alerts_on_eventbridge,
    alerts_on_sns,
    decision,
    sqs_event,
)

if TYPE_CHECKING:
    from gatehouse.dev.bootstrap import Resources

NO_SUCH_TOPIC = "arn:aws:sns:us-east-1:123456789012:no-such-topic"


class _Metrics:
    def __init__(self) -> None:
        self.counted: list[tuple[str, float]] = []

    def add_metric(self, name: str, unit: str, value: float) -> None:
        self.counted.append((name, value))

    def names(self) -> list[str]:
        return [name for name, _ in self.counted]


@pytest.fixture
def rules_file(tmp_path: Path) -> Path:
    path = tmp_path / "rules.json"
    path.write_text(json.dumps(RULES))
    return path


def settings_for(
    aws: Resources, rules_file: Path, monkeypatch: pytest.MonkeyPatch, **overrides: str
) -> Settings:
    values = environment(
        aws,
        **{
            "GATEHOUSE_DETECTION_RULES": str(rules_file),
            "GATEHOUSE_ALERT_TOPIC_ARN": aws.alert_topic_arn,
            **overrides,
        },
    )
    for name, value in values.items():
        monkeypatch.setenv(name, value)
    return Settings.from_environment()


def state(aws: Resources) -> DynamoState:
    return DynamoState(boto3.client("dynamodb", region_name="us-east-1"), aws.state_table)


def pending_items(aws: Resources) -> dict[str, dict[str, Any]]:
    """Every pending record, by alert id, as stored (whatever its age)."""
    answer = boto3.client("dynamodb", region_name="us-east-1").query(
        TableName=aws.state_table,
        KeyConditionExpression="pk = :pk AND begins_with(sk, :prefix)",
        ExpressionAttributeValues={":pk": {"S": PARTITION}, ":prefix": {"S": PENDING_PREFIX}},
        ConsistentRead=True,
    )
    return {
        item["sk"]["S"].removeprefix(PENDING_PREFIX): {
            "alert": json.loads(item["alert"]["S"]),
            "attempts": int(item["attempts"]["N"]),
            "since": float(item["since"]["N"]),
        }
        for item in answer["Items"]
    }


def scheduled_run(settings: Settings, at: float, metrics: _Metrics | None = None) -> None:
    """The ``detection_checks`` function, in a container of its own, its clock at ``at``."""
    from chalicelib import entrypoints

    entrypoints.use_container(Container(settings, metrics=metrics or _Metrics()))
    try:
        entrypoints.run_detection_checks(clock=lambda: at)
    finally:
        entrypoints.use_container(None)


def burst(subject: str = "mallory", at: float = T0) -> list[dict[str, Any]]:
    return [decision(at + i, subject=subject) for i in range(5)]


def test_a_delivered_alert_leaves_nothing_pending(
    aws: Resources, rules_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = settings_for(aws, rules_file, monkeypatch)
    Container(settings).writer.handle_sqs_batch(sqs_event(burst()))
    [alert] = alerts_on_sns(aws)
    assert [put["detail"] for put in alerts_on_eventbridge(aws)] == [alert]
    assert pending_items(aws) == {}
    scheduled_run(settings, time.time() + 3600)
    assert (alerts_on_sns(aws), alerts_on_eventbridge(aws)) == ([], [])


@pytest.mark.parametrize(
    ("broken", "delivered_on"),
    [
        ({"GATEHOUSE_ALERT_EVENT_BUS": "no-such-bus"}, "sns"),
        ({"GATEHOUSE_ALERT_TOPIC_ARN": NO_SUCH_TOPIC}, "eventbridge"),
    ],
    ids=["eventbridge fails", "sns fails"],
)
def test_an_undelivered_alert_is_sent_again_after_the_grace_period_and_recorded_once(
    aws: Resources,
    rules_file: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    broken: dict[str, str],
    delivered_on: str,
) -> None:
    metrics = _Metrics()
    writer = Container(settings_for(aws, rules_file, monkeypatch, **broken), metrics=metrics)
    result = writer.writer.handle_sqs_batch(sqs_event(burst()))
    # The batch is stored and answered as usual: delivery never fails the writer.
    assert (result.stored is not None, result.failed_message_ids) == (True, ())
    # The alert is raised (and counted), not a detection failure.
    assert metrics.names() == ["AlertsFired"]
    [alert_event] = queued_events(aws)
    alert_id = alert_event["alert"]["alert_id"]
    assert alert_event["event_id"] == alert_id
    assert any(alert_id in r.getMessage() and "pending" in r.getMessage() for r in caplog.records)
    # The channel that works took it; the other did not.
    took = {"sns": alerts_on_sns(aws), "eventbridge": alerts_on_eventbridge(aws)}
    assert [len(took["sns"]), len(took["eventbridge"])] == (
        [1, 0] if delivered_on == "sns" else [0, 1]
    )
    [record] = pending_items(aws).values()
    assert (record["alert"]["alert_id"], record["attempts"]) == (alert_id, 1)
    assert record["alert"] == state(aws).alert(alert_id)

    # The channels work again (the scheduled function's own container).
    fixed = settings_for(
        aws,
        rules_file,
        monkeypatch,
        GATEHOUSE_ALERT_EVENT_BUS="default",
        GATEHOUSE_ALERT_TOPIC_ARN=aws.alert_topic_arn,
    )
    claimed = record["since"]
    # Within the grace period the writer may still be delivering it: left alone.
    scheduled_run(fixed, claimed + PENDING_GRACE_SECONDS - 1)
    assert (alerts_on_sns(aws), alerts_on_eventbridge(aws)) == ([], [])
    assert pending_items(aws)[alert_id]["attempts"] == 1

    run_metrics = _Metrics()
    scheduled_run(fixed, claimed + PENDING_GRACE_SECONDS + 1, run_metrics)
    # Sent again to the channel that did not take it, only: the same alert, once each.
    again = {"sns": alerts_on_sns(aws), "eventbridge": alerts_on_eventbridge(aws)}
    missing = "eventbridge" if delivered_on == "sns" else "sns"
    assert again[delivered_on] == []
    [sent] = again[missing]
    assert (sent if missing == "sns" else sent["detail"]) == record["alert"]
    assert pending_items(aws) == {}
    assert run_metrics.counted == []
    # The ledger's record of it is the one enqueued when it was raised: no second.
    assert queued_events(aws) == []

    scheduled_run(fixed, claimed + 3600)
    assert (alerts_on_sns(aws), alerts_on_eventbridge(aws), queued_events(aws)) == ([], [], [])


def test_attempts_are_counted_and_an_alert_never_delivered_is_counted_every_run(
    aws: Resources, rules_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    broken = settings_for(aws, rules_file, monkeypatch, GATEHOUSE_ALERT_EVENT_BUS="no-such-bus")
    Container(broken).writer.handle_sqs_batch(sqs_event(burst()))
    [alert_id] = pending_items(aws)
    claimed = pending_items(aws)[alert_id]["since"]
    alerts_on_sns(aws)
    every_run: list[list[tuple[str, float]]] = []
    for run in range(1, STUCK_AFTER_ATTEMPTS + 1):
        metrics = _Metrics()
        scheduled_run(broken, claimed + run * 300, metrics)
        every_run.append(metrics.counted)
        # Counted before each attempt; kept however often it fails.
        assert pending_items(aws)[alert_id]["attempts"] == run + 1
    # Quiet (logged) until its tenth attempt; from then on counted on every run,
    # as DetectionFailed too, whose alarm reaches the topic without EventBridge.
    stuck = [("AlertDeliveryFailed", 1), ("DetectionFailed", 1)]
    assert every_run == [[]] * (STUCK_AFTER_ATTEMPTS - 2) + [stuck, stuck]
    assert alerts_on_sns(aws) == []  # SNS took it the first time: never sent it again

    fixed = settings_for(aws, rules_file, monkeypatch, GATEHOUSE_ALERT_EVENT_BUS="default")
    scheduled_run(fixed, claimed + 86400)
    [put] = alerts_on_eventbridge(aws)
    assert put["detail"]["alert_id"] == alert_id
    assert pending_items(aws) == {}
    # One alert event in all, whatever the attempts.
    assert [e["event_id"] for e in queued_events(aws)] == [alert_id]


class _RefusingEvents:
    """An EventBridge client that refuses some entries of a call, as EventBridge does.

    The other entries go to moto; the answer has one result per entry, an
    ``ErrorCode`` for each refused (moto never refuses a well-formed entry).
    """

    def __init__(self, refuse: str) -> None:
        self._client = boto3.client("events", region_name="us-east-1")
        self._refuse = refuse
        self.calls = 0

    def put_events(self, Entries: list[dict[str, Any]]) -> dict[str, Any]:
        self.calls += 1
        taken = [e for e in Entries if self._refuse not in e["Detail"]]
        results = iter(self._client.put_events(Entries=taken)["Entries"] if taken else [])
        answer = [
            {"ErrorCode": "ThrottlingException", "ErrorMessage": "Rate exceeded"}
            if self._refuse in entry["Detail"]
            else next(results)
            for entry in Entries
        ]
        return {"FailedEntryCount": len(Entries) - len(taken), "Entries": answer}


def test_a_partial_put_events_failure_leaves_only_the_refused_alerts_pending(
    aws: Resources, rules_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = settings_for(aws, rules_file, monkeypatch)
    built = Container(settings)
    events = _RefusingEvents(refuse='"subject": "eve"')
    built.clients._clients["events"] = events
    built.writer.handle_sqs_batch(sqs_event(burst("mallory") + burst("eve") + burst("trent")))
    assert events.calls == 1  # the three alerts in one PutEvents
    on_sns = {a["principal"]["subject"]: a["alert_id"] for a in alerts_on_sns(aws)}
    assert set(on_sns) == {"mallory", "eve", "trent"}
    assert sorted(e["detail"]["principal"]["subject"] for e in alerts_on_eventbridge(aws)) == [
        "mallory",
        "trent",
    ]
    assert set(pending_items(aws)) == {on_sns["eve"]}
    assert len(queued_events(aws)) == 3

    claimed = pending_items(aws)[on_sns["eve"]]["since"]
    scheduled_run(settings, claimed + PENDING_GRACE_SECONDS + 1)
    [again] = alerts_on_eventbridge(aws)
    assert again["detail"]["alert_id"] == on_sns["eve"]
    assert pending_items(aws) == {}
    assert queued_events(aws) == []


def test_a_scheduled_alert_undelivered_is_sent_again_by_a_later_run(
    aws: Resources, rules_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    broken = settings_for(aws, rules_file, monkeypatch, GATEHOUSE_ALERT_TOPIC_ARN=NO_SUCH_TOPIC)
    boto3.client("sqs", region_name="us-east-1").send_message(
        QueueUrl=aws.audit_dlq_url, MessageBody="{}"
    )
    now = time.time()
    metrics = _Metrics()
    scheduled_run(broken, now, metrics)  # the check's own alert: not a failed invocation
    assert metrics.counted == []
    [put] = alerts_on_eventbridge(aws)
    [(alert_id, record)] = pending_items(aws).items()
    assert (put["detail"]["rule"], record["since"]) == ("dlq", now)

    fixed = settings_for(aws, rules_file, monkeypatch)
    scheduled_run(fixed, now + 300)
    [alert] = alerts_on_sns(aws)
    assert alert["alert_id"] == alert_id
    # Sent again (to SNS only: EventBridge had it), not raised again: suppression holds.
    assert alerts_on_eventbridge(aws) == []
    assert alert == put["detail"]
    assert pending_items(aws) == {}
    assert [e["event_id"] for e in queued_events(aws)] == [alert_id]


# --- the rights the functions need -----------------------------------------------------------

_TRANSACT_ACTIONS = {
    "Put": "PutItem",
    "Update": "UpdateItem",
    "Delete": "DeleteItem",
    "ConditionCheck": "ConditionCheckItem",
}


class _RecordedCalls:
    """The (IAM action, partition key) pairs a boto3 DynamoDB client was asked for.

    Calls on one item or one partition; the ledger's batch calls (no single
    partition key) are not detection's and are left out.
    """

    def __init__(self) -> None:
        self.calls: set[tuple[str, str]] = set()

    def attach(self, client: Any) -> None:
        client.meta.events.register("provide-client-params.dynamodb.*", self._record)

    def _record(self, params: dict[str, Any], model: Any, **_: Any) -> None:
        if model.name == "TransactWriteItems":
            for item in params["TransactItems"]:
                [(kind, request)] = item.items()
                self._add(_TRANSACT_ACTIONS[kind], request)
        else:
            self._add(model.name, params)

    def _add(self, operation: str, request: dict[str, Any]) -> None:
        if operation == "Query":
            key = request.get("ExpressionAttributeValues", {}).get(":pk")
        else:
            key = (request.get("Item") or request.get("Key") or {}).get("pk")
        if key is not None:
            self.calls.add((f"dynamodb:{operation}", key["S"]))


def _detect_rights(stage: str, function: str) -> set[tuple[str, str]]:
    from tests.unit.test_infra import _statements

    statement = _statements(stage, function)["DetectionState"]
    assert statement["Resource"].endswith(f":table/gatehouse-{stage}-state")
    [partition] = statement["Condition"]["ForAllValues:StringEquals"]["dynamodb:LeadingKeys"]
    return {(action, partition) for action in statement["Action"]}


def test_the_writer_and_the_scheduled_check_may_make_every_detection_call_they_make(
    aws: Resources, rules_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    broken = settings_for(aws, rules_file, monkeypatch, GATEHOUSE_ALERT_EVENT_BUS="no-such-bus")
    writer_calls = _RecordedCalls()
    built = Container(broken)
    writer_calls.attach(built.clients.dynamodb)
    built.writer.handle_sqs_batch(sqs_event(burst("mallory")))  # undelivered: stays pending
    fixed = settings_for(aws, rules_file, monkeypatch, GATEHOUSE_ALERT_EVENT_BUS="default")
    built = Container(fixed)
    writer_calls.attach(built.clients.dynamodb)
    built.writer.handle_sqs_batch(sqs_event(burst("eve")))  # delivered: cleared
    detect = {call for call in writer_calls.calls if call[1] == PARTITION}
    assert {action for action, _ in detect} == {
        "dynamodb:UpdateItem",  # windows, first-seen sets
        "dynamodb:PutItem",  # the claim's record, pending record and suppression
        "dynamodb:DeleteItem",  # a delivered alert's pending record
    }

    check_calls = _RecordedCalls()
    from chalicelib import entrypoints

    scheduler = Container(fixed)
    check_calls.attach(scheduler.clients.dynamodb)
    boto3.client("sqs", region_name="us-east-1").send_message(
        QueueUrl=aws.audit_dlq_url, MessageBody="{}"
    )
    entrypoints.use_container(scheduler)
    entrypoints.run_detection_checks(clock=lambda: time.time() + 3600)
    entrypoints.use_container(None)
    assert pending_items(aws) == {}
    assert {action for action, _ in check_calls.calls} == {
        "dynamodb:Query",  # the pending alerts
        "dynamodb:UpdateItem",  # an attempt counted
        "dynamodb:DeleteItem",  # ... and the record cleared once delivered
        "dynamodb:PutItem",  # the dead letters' claim
    }
    for stage in ("dev", "prod"):
        assert detect <= _detect_rights(stage, "audit_writer")
        assert check_calls.calls <= _detect_rights(stage, "detection_checks")
