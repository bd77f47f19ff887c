"""Stack create / no-op / update / delete through boto3, on moto's CloudFormation.

moto's CloudFormation drops much of the infra template (Object Lock, KMS key
specs...), so this uses a small template of its own: it tests the deploy's
stack handling, not the template (cfn-lint and the unit tests do that).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws

from gatehouse.deploy.stacks import delete_stack, deploy_stack, stack_parameters, stack_status

TEMPLATE = """
AWSTemplateFormatVersion: "2010-09-09"
Parameters:
  Stage: {Type: String}
Resources:
  Queue:
    Type: AWS::SQS::Queue
    Properties:
      QueueName: gatehouse-dev-audit
Outputs:
  AuditQueueUrl:
    Value: !Ref Queue
  StageName:
    Value: !Ref Stage
"""


@pytest.fixture
def cfn() -> Iterator[Any]:
    with mock_aws():
        yield boto3.client("cloudformation", region_name="us-east-1")


def test_create_then_nothing_then_update_then_delete(cfn: Any, tmp_path: Path) -> None:
    template = tmp_path / "t.yaml"
    template.write_text(TEMPLATE)

    created = deploy_stack(cfn, "gatehouse-dev-infra", template, {"Stage": "dev"}, waiter_delay=1)
    again = deploy_stack(cfn, "gatehouse-dev-infra", template, {"Stage": "dev"}, waiter_delay=1)

    assert created.action == "created"
    assert created.outputs["AuditQueueUrl"].endswith("/gatehouse-dev-audit")
    assert again.action in ("unchanged", "updated")  # moto may not detect "no updates"
    assert again.outputs == created.outputs

    changed = deploy_stack(cfn, "gatehouse-dev-infra", template, {"Stage": "x"}, waiter_delay=1)
    assert changed.action == "updated"
    assert changed.outputs["StageName"] == "x"

    assert delete_stack(cfn, "gatehouse-dev-infra", waiter_delay=1) is True
    assert stack_status(cfn, "gatehouse-dev-infra") in (None, "DELETE_COMPLETE")


# A stack as deployed before the assertion key: no DigestKeyPolicy parameter yet.
PRE_SPLIT = """
AWSTemplateFormatVersion: "2010-09-09"
Parameters:
  Stage: {Type: String}
  KeyAdminRoleArn: {Type: String, Default: ""}
Resources:
  Queue:
    Type: AWS::SQS::Queue
    Properties:
      QueueName: gatehouse-prod-audit
"""


@pytest.mark.parametrize(
    ("key_admin", "chosen"),
    [("", "legacy"), ("arn:aws:iam::123456789012:role/break-glass", "legacy")],
)
def test_the_deploy_reads_the_existing_stack_to_keep_the_digest_key_policy(
    cfn: Any, tmp_path: Path, key_admin: str, chosen: str
) -> None:
    from gatehouse.deploy.deploy import infra_parameters
    from gatehouse.deploy.settings import StageSettings

    template = tmp_path / "t.yaml"
    template.write_text(PRE_SPLIT)
    settings = StageSettings("prod", tmp_path)
    assert stack_parameters(cfn, "gatehouse-prod-infra") is None
    assert infra_parameters(settings, None)["DigestKeyPolicy"] == "narrow"

    parameters = {"Stage": "prod", "KeyAdminRoleArn": key_admin}
    deploy_stack(cfn, "gatehouse-prod-infra", template, parameters, waiter_delay=1)
    existing = stack_parameters(cfn, "gatehouse-prod-infra")

    assert existing is not None
    assert existing.get("KeyAdminRoleArn", "") == key_admin
    assert "DigestKeyPolicy" not in existing
    assert infra_parameters(settings, existing)["DigestKeyPolicy"] == chosen
