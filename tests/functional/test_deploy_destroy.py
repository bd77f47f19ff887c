"""``destroy`` refuses while the audit queues hold events, and says what goes and what stays.

On moto's CloudFormation with a stand-in infra stack of the two queues (moto
drops too much of the real template; the unit tests check that one).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws

from gatehouse.deploy.destroy import check_queues_empty, destroy, queued_messages
from gatehouse.deploy.errors import QueuesNotEmpty
from gatehouse.deploy.settings import StageSettings, infra_stack_name
from gatehouse.deploy.stacks import deploy_stack, stack_outputs, stack_status

REGION = "us-east-1"
TEMPLATE = """
AWSTemplateFormatVersion: "2010-09-09"
Resources:
  AuditDeadLetterQueue:
    Type: AWS::SQS::Queue
    Properties:
      QueueName: gatehouse-dev-audit-dlq
  AuditQueue:
    Type: AWS::SQS::Queue
    Properties:
      QueueName: gatehouse-dev-audit
Outputs:
  AuditQueueUrl:
    Value: !Ref AuditQueue
  AuditDeadLetterQueueUrl:
    Value: !Ref AuditDeadLetterQueue
  SigningKeyArn:
    Value: arn:aws:kms:us-east-1:123456789012:key/digest
  AssertionKeyArn:
    Value: arn:aws:kms:us-east-1:123456789012:key/assertion
"""


@pytest.fixture
def client() -> Iterator[Any]:
    with mock_aws():
        yield lambda service: boto3.client(service, region_name=REGION)


@pytest.fixture
def stage(client: Any, tmp_path: Path) -> StageSettings:
    template = tmp_path / "infra.yaml"
    template.write_text(TEMPLATE)
    deploy_stack(client("cloudformation"), infra_stack_name("dev"), template, {}, waiter_delay=1)
    return StageSettings("dev", tmp_path)


def _outputs(client: Any) -> dict[str, str]:
    return stack_outputs(client("cloudformation"), infra_stack_name("dev"))


def test_queued_and_in_flight_messages_both_count(client: Any, stage: StageSettings) -> None:
    sqs, url = client("sqs"), _outputs(client)["AuditQueueUrl"]
    assert queued_messages(sqs, url) == 0
    sqs.send_message(QueueUrl=url, MessageBody="{}")
    sqs.send_message(QueueUrl=url, MessageBody="{}")
    sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=1, VisibilityTimeout=300)

    assert queued_messages(sqs, url) == 2
    gone = url.rsplit("/", 1)[0] + "/gatehouse-dev-nothing"
    assert queued_messages(sqs, gone) == 0


@pytest.mark.parametrize("queue", ["AuditQueueUrl", "AuditDeadLetterQueueUrl"])
def test_destroy_refuses_while_a_queue_holds_events_and_removes_nothing(
    client: Any, stage: StageSettings, tmp_path: Path, queue: str
) -> None:
    url = _outputs(client)[queue]
    client("sqs").send_message(QueueUrl=url, MessageBody="{}")
    said: list[str] = []

    with pytest.raises(QueuesNotEmpty, match=f"1 in {url.rsplit('/', 1)[-1]} .*--force"):
        destroy(stage, client, build_dir=tmp_path / "build", say=said.append)

    assert stack_status(client("cloudformation"), infra_stack_name("dev")) == "CREATE_COMPLETE"
    assert said == []


def test_forced_destroy_says_what_it_removed(
    client: Any, stage: StageSettings, tmp_path: Path
) -> None:
    client("sqs").send_message(QueueUrl=_outputs(client)["AuditQueueUrl"], MessageBody="{}")
    said: list[str] = []

    destroy(stage, client, build_dir=tmp_path / "build", force=True, say=said.append)

    assert stack_status(client("cloudformation"), infra_stack_name("dev")) in (
        None,
        "DELETE_COMPLETE",
    )
    text = "\n".join(said)
    assert "--force" in said[0]
    assert "the CloudTrail trail gatehouse-dev" in text
    assert "the audit queue and its dead-letter queue" in text
    assert "each bucket with its bucket policy" in text
    # Both signing keys are Retain: destroy says they stay, and what each is.
    assert "key/digest: KMS key that signs the ledger digests" in text
    assert "key/assertion: KMS key that certifies the proxy's assertion keys" in text


def test_empty_queues_let_destroy_go_on(client: Any, stage: StageSettings) -> None:
    check_queues_empty(client("sqs"), _outputs(client))
    check_queues_empty(client("sqs"), {})  # no stack: nothing to check
