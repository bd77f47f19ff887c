"""``gatehouse audit dlq``: what the writer gave up on, why, and moving it back.

Against moto's queues, through the CLI's ``main`` with the stage taken from
the environment (no local stack).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import boto3
import pytest

from chalicelib.audit.schema import uuid7
from gatehouse.cli import main

if TYPE_CHECKING:
    from gatehouse.dev.bootstrap import Resources


@pytest.fixture
def cli(aws: Resources, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> list[str]:
    monkeypatch.setenv("AWS_REGION", "us-east-1")
    monkeypatch.setenv("GATEHOUSE_AUDIT_BUCKET", aws.audit_bucket)
    monkeypatch.setenv("GATEHOUSE_AUDIT_QUEUE_URL", aws.audit_queue_url)
    monkeypatch.setenv("GATEHOUSE_AUDIT_DLQ_URL", aws.audit_dlq_url)
    monkeypatch.setenv("GATEHOUSE_STATE_TABLE", aws.state_table)
    return ["--state-dir", str(tmp_path / "no-local-stack")]


def sqs() -> Any:
    return boto3.client("sqs", region_name="us-east-1")


POISON = [
    ("not json at all", "not JSON"),
    ('{"event_type": "decision"}', "no event_id"),
    ('{"event_id": "e-1", "ledger": {"sequence": 3}}', "carries a ledger position"),
    ('{"event_id": "e-2"}\n{"event_id": "e-3"}', "more than one line"),
]


def test_the_dlq_lists_each_message_with_why_it_failed_and_leaves_it_there(
    aws: Resources, cli: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    valid = json.dumps(
        {"schema_version": 1, "event_id": uuid7(), "event_type": "decision"},
        separators=(",", ":"),
    )
    for body in [*(body for body, _ in POISON), valid]:
        sqs().send_message(QueueUrl=aws.audit_dlq_url, MessageBody=body)

    assert main([*cli, "audit", "dlq", "--json"]) == 1  # non-zero while anything waits

    listed = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    problems = sorted(letter["problem"] for letter in listed)
    expected = sorted([*(why for _, why in POISON)])
    assert len(problems) == 5
    for why in expected:
        assert any(problem.startswith(why) for problem in problems), (why, problems)
    assert any(problem.startswith("valid event") for problem in problems)
    # Listing took nothing: all five are still there, visible.
    assert main([*cli, "audit", "dlq"]) == 1
    assert capsys.readouterr().out.endswith("5 messages in the dead-letter queue\n")


def test_redrive_moves_every_message_back_to_the_audit_queue(
    aws: Resources, cli: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    bodies = [json.dumps({"event_id": uuid7()}) for _ in range(13)]
    for body in bodies:
        sqs().send_message(QueueUrl=aws.audit_dlq_url, MessageBody=body)

    assert main([*cli, "audit", "dlq", "--redrive"]) == 0

    assert capsys.readouterr().out == "moved 13 messages back to the audit queue\n"
    moved = []
    while (
        batch := sqs()
        .receive_message(QueueUrl=aws.audit_queue_url, MaxNumberOfMessages=10)
        .get("Messages", [])
    ):
        moved += [message["Body"] for message in batch]
    assert sorted(moved) == sorted(bodies)
    assert main([*cli, "audit", "dlq"]) == 0
    assert capsys.readouterr().out == "0 messages in the dead-letter queue\n"


def test_a_stage_without_a_dlq_says_so(
    aws: Resources,
    cli: list[str],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.delenv("GATEHOUSE_AUDIT_DLQ_URL")

    assert main([*cli, "audit", "dlq"]) == 2

    assert "no dead-letter queue" in capsys.readouterr().err
