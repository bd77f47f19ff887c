"""``gatehouse stage env``: a deployed stage's CLI settings, from its stacks' outputs (moto)."""

from __future__ import annotations

import json
import shlex
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.exceptions import EndpointConnectionError
from moto import mock_aws

from chalicelib.variables import VARIABLES, Reader
from gatehouse.cli import main
from gatehouse.deploy.templates import load_template
from gatehouse.errors import InputError, Unavailable
from gatehouse.stage_commands import (
    ATHENA_OUTPUTS,
    INFRA_OUTPUTS,
    render_exports,
    stage_settings,
)

PROJECT_DIR = Path(__file__).resolve().parents[2]
REGION = "eu-west-1"
INFRA_VALUES = {
    "StateTable": "gatehouse-prod-state",
    "AuditBucket": "gatehouse-prod-audit-123456789012",
    "AuditDeadLetterQueueUrl": "https://sqs.eu-west-1.amazonaws.com/123456789012/dlq",
    "DigestKeyAlias": "alias/gatehouse-prod-digest",
    "LedgerAnchor": "s3://gatehouse-prod-anchor/ledger",
    "TrailBucket": "gatehouse-prod-trail-123456789012",
    "AlertTopicArn": "arn:aws:sns:eu-west-1:123456789012:alerts",  # not a CLI setting
}


def _template(outputs: dict[str, Any]) -> str:
    return json.dumps(
        {
            "Resources": {"Queue": {"Type": "AWS::SQS::Queue", "Properties": {"QueueName": "q"}}},
            "Outputs": {key: {"Value": value} for key, value in outputs.items()},
        }
    )


@pytest.fixture
def cloudformation() -> Iterator[Any]:
    with mock_aws():
        yield boto3.client("cloudformation", region_name=REGION)


def _deploy_infra(cloudformation: Any, **overrides: Any) -> None:
    # The queue URL as the real template gives it: a Ref to the queue.
    outputs: dict[str, Any] = {**INFRA_VALUES, "AuditQueueUrl": {"Ref": "Queue"}, **overrides}
    cloudformation.create_stack(
        StackName="gatehouse-prod-infra",
        TemplateBody=_template({k: v for k, v in outputs.items() if v is not None}),
    )


def _no_record(stage: str) -> None:
    return None


def test_the_settings_come_from_the_infra_stacks_outputs(cloudformation: Any) -> None:
    _deploy_infra(cloudformation)

    settings = stage_settings("prod", REGION, cloudformation, _no_record)

    assert settings["AWS_REGION"] == REGION
    assert settings["GATEHOUSE_STAGE"] == "prod"
    assert settings["GATEHOUSE_STATE_TABLE"] == "gatehouse-prod-state"
    assert settings["GATEHOUSE_AUDIT_BUCKET"] == "gatehouse-prod-audit-123456789012"
    assert settings["GATEHOUSE_AUDIT_QUEUE_URL"].endswith("/123456789012/q")
    assert settings["GATEHOUSE_AUDIT_DLQ_URL"] == INFRA_VALUES["AuditDeadLetterQueueUrl"]
    assert settings["GATEHOUSE_DIGEST_KEY_ID"] == "alias/gatehouse-prod-digest"
    assert settings["GATEHOUSE_LEDGER_ANCHOR"] == "s3://gatehouse-prod-anchor/ledger"
    assert settings["GATEHOUSE_TRAIL_BUCKET"] == "gatehouse-prod-trail-123456789012"
    assert settings["GATEHOUSE_TRAIL_ACCOUNT_ID"] == "123456789012"  # from the stack's ARN
    assert "GATEHOUSE_ATHENA_WORKGROUP" not in settings  # no Athena stack
    assert "GATEHOUSE_GATEWAY_URL" not in settings  # no Chalice record
    assert not any("ALERT" in name for name in settings)


def test_the_athena_stack_and_chalices_record_add_theirs(cloudformation: Any) -> None:
    _deploy_infra(cloudformation)
    cloudformation.create_stack(
        StackName="gatehouse-prod-athena",
        TemplateBody=_template({"WorkGroupName": "gatehouse-prod", "DatabaseName": "gh_prod"}),
    )
    record = {
        "resources": [
            {"name": "api_handler", "resource_type": "lambda_function"},
            {
                "name": "rest_api",
                "rest_api_url": "https://abc.execute-api.eu-west-1.amazonaws.com/api/",
            },
        ]
    }

    settings = stage_settings("prod", REGION, cloudformation, lambda stage: record)

    assert settings["GATEHOUSE_ATHENA_WORKGROUP"] == "gatehouse-prod"
    assert settings["GATEHOUSE_ATHENA_DATABASE"] == "gh_prod"
    assert (
        settings["GATEHOUSE_GATEWAY_URL"] == "https://abc.execute-api.eu-west-1.amazonaws.com/api"
    )


def test_every_setting_printed_is_one_the_cli_reads() -> None:
    cli_names = {name for name, v in VARIABLES.items() if v.reader in (Reader.CLI, Reader.BOTH)}

    assert set(INFRA_OUTPUTS) | set(ATHENA_OUTPUTS) <= cli_names


@pytest.mark.parametrize(
    ("template", "mapping"),
    [("infra/gatehouse.yaml", INFRA_OUTPUTS), ("infra/athena.yaml", ATHENA_OUTPUTS)],
    ids=["infra", "athena"],
)
def test_every_output_read_is_one_the_template_declares(
    template: str, mapping: dict[str, str]
) -> None:
    declared = set(load_template(PROJECT_DIR / template)["Outputs"])

    assert set(mapping.values()) <= declared


def test_export_lines_survive_a_shell_whatever_the_value() -> None:
    text = render_exports({"GATEHOUSE_X": "a b'c$HOME", "AWS_REGION": "us-east-1"})

    lines = [shlex.split(line) for line in text.splitlines()]
    assert lines == [["export", "GATEHOUSE_X=a b'c$HOME"], ["export", "AWS_REGION=us-east-1"]]


def test_the_command_prints_export_lines_for_eval(
    cloudformation: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    _deploy_infra(cloudformation)

    assert main(["stage", "env", "--stage", "prod", "--region", REGION]) == 0

    exports = dict(
        shlex.split(line)[1].split("=", 1) for line in capsys.readouterr().out.splitlines()
    )
    assert exports["GATEHOUSE_AUDIT_BUCKET"] == "gatehouse-prod-audit-123456789012"
    assert exports["AWS_REGION"] == REGION


def test_the_command_prints_json_on_request(
    cloudformation: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    _deploy_infra(cloudformation)

    assert main(["stage", "env", "--stage", "prod", "--region", REGION, "-o", "json"]) == 0

    settings = json.loads(capsys.readouterr().out)
    assert settings["GATEHOUSE_STATE_TABLE"] == "gatehouse-prod-state"


def test_a_stage_without_a_stack_is_one_line_and_exit_2(
    cloudformation: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["stage", "env", "--stage", "prod", "--region", REGION]) == 2

    err = capsys.readouterr().err
    assert err.startswith(f"gatehouse: no stack gatehouse-prod-infra in {REGION}: ")
    assert len(err.splitlines()) == 1


def test_a_stack_without_a_required_output_is_exit_2(cloudformation: Any) -> None:
    _deploy_infra(cloudformation, AuditBucket=None)

    with pytest.raises(InputError, match="has no output AuditBucket"):
        stage_settings("prod", REGION, cloudformation, _no_record)


def test_no_credentials_is_one_line_and_exit_3(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # Not mocked: botocore finds no credentials and sends nothing.
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(name)

    assert main(["stage", "env", "--stage", "prod", "--region", REGION]) == 3

    err = capsys.readouterr().err
    assert err.startswith("gatehouse: no AWS credentials: ")
    assert len(err.splitlines()) == 1


def test_no_network_is_unavailable() -> None:
    class Unreachable:
        def describe_stacks(self, **_: Any) -> None:
            raise EndpointConnectionError(endpoint_url="https://cloudformation.eu-west-1")

    with pytest.raises(Unavailable, match="cannot reach CloudFormation in eu-west-1") as raised:
        stage_settings("prod", REGION, Unreachable(), _no_record)
    assert raised.value.exit_code == 3


def test_no_region_is_exit_2(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("AWS_DEFAULT_REGION")

    assert main(["stage", "env", "--stage", "prod"]) == 2
    assert (
        capsys.readouterr().err == "gatehouse: no AWS region: pass --region R, or set AWS_REGION\n"
    )
