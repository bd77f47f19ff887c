"""``gatehouse alerts list | test | explain`` against a stage in moto."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import boto3
import pytest

from chalicelib.audit.schema import utc_timestamp
from chalicelib.config import Settings
from chalicelib.container import Container
from gatehouse.cli import main
from tests.functional.conftest import environment
from tests.functional.test_detection import decision, sqs_event

if TYPE_CHECKING:
    from gatehouse.dev.bootstrap import Resources

# A minute boundary two minutes ago: the events' window, stored now (this hour's partition).
NOW = time.time()
T = (NOW // 60) * 60 - 120


def when(seconds: float) -> str:
    return utc_timestamp(seconds).replace(".000Z", "Z")


@pytest.fixture
def cli(aws: Resources, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> list[str]:
    for name, value in environment(aws).items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("GATEHOUSE_DETECTION_RULES", raising=False)
    return ["--state-dir", str(tmp_path / "no-local-stack")]


def store(aws: Resources, events: list[dict[str, Any]], *, detect: bool) -> None:
    """Events into the ledger through the stage's writer (detection on or off)."""
    settings = Settings.from_environment(
        {
            **environment(aws),
            "GATEHOUSE_DETECTION_RULES": "" if detect else "off",
            "GATEHOUSE_ALERT_TOPIC_ARN": aws.alert_topic_arn,
        }
    )
    assert Container(settings).writer.handle_sqs_batch(sqs_event(events)).stored is not None


def detect_items(aws: Resources) -> list[dict[str, Any]]:
    table = boto3.client("dynamodb", region_name="us-east-1")
    answer = table.query(
        TableName=aws.state_table,
        KeyConditionExpression="pk = :pk",
        ExpressionAttributeValues={":pk": {"S": "DETECT"}},
    )
    return list(answer["Items"])


def test_list_prints_every_rule_and_json_is_a_rules_document(
    cli: list[str], capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    assert main([*cli, "alerts", "list"]) == 0
    table = capsys.readouterr().out
    for name in ("deny-burst-principal", "break-glass-used", "witness-refused"):
        assert name in table
    assert main([*cli, "alerts", "list", "-o", "json"]) == 0
    document = json.loads(capsys.readouterr().out)
    saved = tmp_path / "rules.json"
    saved.write_text(json.dumps(document))
    assert main([*cli, "alerts", "list", "--rules", str(saved), "-o", "json"]) == 0
    assert json.loads(capsys.readouterr().out) == document


def test_a_bad_rules_file_is_one_line_per_problem_exit_2(
    cli: list[str], capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    bad = tmp_path / "rules.yaml"
    bad.write_text(
        "version: 1\nrules:\n  - name: a\n    enabled: true\n    severity: huge\n"
        "    kind: deny_burst_ip\n    threshold: 0\n"
    )
    assert main([*cli, "alerts", "list", "--rules", str(bad)]) == 2
    lines = capsys.readouterr().err.splitlines()
    assert lines == [
        f"{bad}: rule 'a'.severity: must be one of: low, medium, high, critical",
        f"{bad}: rule 'a'.threshold: must be a whole number 1..1000",
        f"gatehouse: {bad} cannot be used (2 problem(s) above); fix each and run "
        "`gatehouse alerts list --rules FILE` again",
    ]
    assert main([*cli, "alerts", "list", "--rules", str(tmp_path / "none.yaml")]) == 2
    assert "cannot be read" in capsys.readouterr().err


def test_test_replays_the_window_in_memory_and_says_what_would_fire(
    aws: Resources, cli: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    burst = [decision(T + i) for i in range(25)]
    store(aws, burst, detect=False)
    window = ["--from", when(T), "--to", when(T + 60)]
    assert main([*cli, "alerts", "test", *window, "-o", "json"]) == 1
    [alert] = json.loads(capsys.readouterr().out)
    assert alert["rule"] == "deny-burst-principal"
    assert alert["event_ids"] == sorted(e["event_id"] for e in burst[:20])
    assert alert["observed"] == 25
    # Nothing was written: no window state, no alert record.
    assert detect_items(aws) == []
    assert main([*cli, "alerts", "test", *window]) == 1
    out = capsys.readouterr().out
    assert "25 event(s) in 1 object(s), 1 alert(s) would fire" in out
    assert "evidence: gatehouse audit query --named events_by_ids" in out
    # A window before the burst: nothing would fire.
    assert main([*cli, "alerts", "test", "--from", when(T - 600), "--to", when(T)]) == 0
    assert "0 event(s)" in capsys.readouterr().out


def test_test_refuses_a_window_that_holds_nothing(
    cli: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main([*cli, "alerts", "test", "--from", when(T), "--to", when(T - 60)]) == 2
    assert "must be after --from" in capsys.readouterr().err


def test_explain_shows_the_rule_and_the_events(
    aws: Resources, cli: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    burst = [decision(T + i) for i in range(20)]
    store(aws, burst, detect=True)
    [record] = [item for item in detect_items(aws) if item["sk"]["S"].startswith("ALERT#")]
    alert_id = record["sk"]["S"].removeprefix("ALERT#")
    assert main([*cli, "alerts", "explain", alert_id, "-o", "json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["alert"]["alert_id"] == alert_id
    assert shown["rule"]["threshold"] == 20
    assert [e["event_id"] for e in shown["events"]] == [e["event_id"] for e in burst]
    assert main([*cli, "alerts", "explain", alert_id]) == 0
    out = capsys.readouterr().out
    assert "rule deny-burst-principal (kind deny_burst_principal)" in out
    assert "20 event(s) named, 20 found in the ledger:" in out


def test_explain_an_unknown_alert_is_a_negative_answer(
    cli: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main([*cli, "alerts", "explain", "no-such-alert"]) == 1
    error = capsys.readouterr().err
    assert error.startswith("gatehouse: no alert 'no-such-alert'")
    assert "Traceback" not in error
