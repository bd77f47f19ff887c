"""The CloudFormation template and the local bootstrap build the same resources."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from gatehouse.resources import (
    AUDIT_QUEUE_MAX_RECEIVES,
    AUDIT_QUEUE_VISIBILITY_SECONDS,
    AUDIT_RETENTION_MODE,
    ResourceNames,
)

TEMPLATE = Path(__file__).resolve().parents[2] / "infra" / "gatehouse.yaml"
GATEWAY_RESPONSES = TEMPLATE.with_name("gateway_responses.json")


class _CfnLoader(yaml.SafeLoader):
    """Reads CloudFormation short-form tags as their long-form dicts."""


def _tag(name: str) -> Any:
    def construct(loader: yaml.SafeLoader, node: yaml.Node) -> dict[str, Any]:
        if isinstance(node, yaml.ScalarNode):
            value: Any = loader.construct_scalar(node)
        elif isinstance(node, yaml.SequenceNode):
            value = loader.construct_sequence(node, deep=True)
        else:
            value = loader.construct_mapping(node, deep=True)  # type: ignore[arg-type]
        return {name: value}

    return construct


for short, long in {
    "Sub": "Fn::Sub",
    "Ref": "Ref",
    "GetAtt": "Fn::GetAtt",
    "If": "Fn::If",
    "Equals": "Fn::Equals",
}.items():
    _CfnLoader.add_constructor(f"!{short}", _tag(long))


def _template() -> dict[str, Any]:
    return yaml.load(TEMPLATE.read_text(), Loader=_CfnLoader)  # noqa: S506 - SafeLoader subclass


def _render(value: Any, stage: str, account: str, region: str) -> str:
    """Render an ``Fn::Sub`` string the way CloudFormation would."""
    text = value["Fn::Sub"]
    variables = {"Stage": stage, "AWS::AccountId": account, "AWS::Region": region}
    return re.sub(r"\$\{([^}]+)\}", lambda match: variables[match.group(1)], text)


@pytest.mark.parametrize("stage", ["dev", "prod"])
def test_template_names_match_the_bootstrap(stage: str) -> None:
    resources = _template()["Resources"]
    names = ResourceNames(stage, "123456789012", "eu-west-1")
    rendered = {
        "PolicyTable": _render(
            resources["PolicyTable"]["Properties"]["TableName"], stage, "123456789012", "eu-west-1"
        ),
        "AuditBucket": _render(
            resources["AuditBucket"]["Properties"]["BucketName"], stage, "123456789012", "eu-west-1"
        ),
        "AuditQueue": _render(
            resources["AuditQueue"]["Properties"]["QueueName"], stage, "123456789012", "eu-west-1"
        ),
        "AnchorBucket": _render(
            resources["AnchorBucket"]["Properties"]["BucketName"],
            stage,
            "123456789012",
            "eu-west-1",
        ),
        "AuditDeadLetterQueue": _render(
            resources["AuditDeadLetterQueue"]["Properties"]["QueueName"],
            stage,
            "123456789012",
            "eu-west-1",
        ),
        "SigningKeyAlias": _render(
            resources["SigningKeyAlias"]["Properties"]["AliasName"],
            stage,
            "123456789012",
            "eu-west-1",
        ),
    }
    assert rendered == {
        "PolicyTable": names.policy_table,
        "AuditBucket": names.audit_bucket,
        "AuditQueue": names.audit_queue,
        "AnchorBucket": names.anchor_bucket,
        "AuditDeadLetterQueue": names.audit_dlq,
        "SigningKeyAlias": names.signing_key_alias,
    }


def test_template_settings_match_the_bootstrap() -> None:
    resources = _template()["Resources"]
    queue = resources["AuditQueue"]["Properties"]
    assert queue["VisibilityTimeout"] == AUDIT_QUEUE_VISIBILITY_SECONDS
    assert queue["RedrivePolicy"]["maxReceiveCount"] == AUDIT_QUEUE_MAX_RECEIVES
    bucket = resources["AuditBucket"]["Properties"]
    assert bucket["ObjectLockEnabled"] is True
    assert bucket["VersioningConfiguration"] == {"Status": "Enabled"}
    mode = bucket["ObjectLockConfiguration"]["Rule"]["DefaultRetention"]["Mode"]["Fn::If"]
    assert mode == ["IsProd", AUDIT_RETENTION_MODE["prod"], AUDIT_RETENTION_MODE["dev"]]
    key = resources["SigningKey"]["Properties"]
    assert (key["KeySpec"], key["KeyUsage"]) == ("ECC_NIST_P256", "SIGN_VERIFY")


def test_gateway_responses_carry_the_request_id_and_fail_closed_with_503() -> None:
    responses = json.loads(GATEWAY_RESPONSES.read_text())
    assert responses["AUTHORIZER_FAILURE"]["statusCode"] == 503
    assert responses["UNAUTHORIZED"]["statusCode"] == 401
    for name, response in responses.items():
        body = response["responseTemplates"]["application/json"]
        assert "$context.requestId" in body, name
        json.loads(body.replace("$context.requestId", "x"))


GRANT_PARTITIONS = {"GRANT", "GRANT-LIVE", "GRANT-OUTBOX"}  # chalicelib/grants/store.py
LEDGER_PARTITIONS = {"LEDGER", "LEDGER-EVENT"}  # chalicelib/ledger/state.py
ITEM_WRITES = {"dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:DeleteItem"}


def test_only_the_functions_role_may_write_grants_and_the_ledger() -> None:
    from chalicelib.grants import store
    from chalicelib.ledger import state

    assert {store._PK, store._LIVE, store._OUTBOX} == GRANT_PARTITIONS
    assert {state._PK, state._EVENTS} == LEDGER_PARTITIONS
    table = _template()["Resources"]["PolicyTable"]["Properties"]
    deny, blind = table["ResourcePolicy"]["PolicyDocument"]["Statement"]
    # Writes whose partition keys IAM cannot see are refused as well.
    assert blind["Effect"] == "Deny"
    assert blind["Condition"]["Null"] == {"dynamodb:LeadingKeys": "true"}
    assert set(blind["Action"]) == set(deny["Action"])
    assert blind["Condition"]["ArnNotEquals"] == deny["Condition"]["ArnNotEquals"]
    assert (deny["Effect"], deny["Principal"]) == ("Deny", "*")
    # Every way to write an item, one at a time, in batches, or through PartiQL.
    assert set(deny["Action"]) >= ITEM_WRITES | {
        "dynamodb:BatchWriteItem",
        "dynamodb:PartiQLInsert",
        "dynamodb:PartiQLUpdate",
        "dynamodb:PartiQLDelete",
    }
    condition = deny["Condition"]
    # ForAnyValue: one grant key in a batch is enough to refuse it.
    protected = set(condition["ForAnyValue:StringLike"]["dynamodb:LeadingKeys"])
    assert protected == GRANT_PARTITIONS | LEDGER_PARTITIONS
    template, variables = condition["ArnNotEquals"]["aws:PrincipalArn"]["Fn::Sub"]
    assert template == "arn:aws:iam::${AWS::AccountId}:role/${Role}"
    assert variables["Role"]["Fn::If"][1] == {"Fn::Sub": "gatehouse-${Stage}"}


@pytest.mark.parametrize("stage", ["dev", "prod"])
def test_the_functions_role_may_make_every_grant_write_the_store_makes(stage: str) -> None:
    policy_file = TEMPLATE.parents[1] / ".chalice" / f"policy-{stage}.json"
    statements = {s["Sid"]: s for s in json.loads(policy_file.read_text())["Statement"]}
    lifecycle = statements["GrantLifecycle"]

    # TransactWriteItems is authorised per item: Put, Update, Delete and ConditionCheck.
    assert set(lifecycle["Action"]) == ITEM_WRITES | {"dynamodb:ConditionCheckItem"}
    assert lifecycle["Resource"].endswith(f":table/gatehouse-{stage}-policy")
    leading = lifecycle["Condition"]["ForAllValues:StringLike"]["dynamodb:LeadingKeys"]
    assert set(leading) == GRANT_PARTITIONS


@pytest.mark.parametrize("stage", ["dev", "prod"])
def test_the_functions_role_may_make_every_call_the_ledger_makes(stage: str) -> None:
    policy_file = TEMPLATE.parents[1] / ".chalice" / f"policy-{stage}.json"
    statements = {s["Sid"]: s for s in json.loads(policy_file.read_text())["Statement"]}
    ledger = statements["Ledger"]

    # LedgerState: get_item, batch_get_item, query, update_item, batch_write_item, and
    # transact_write_items of an Update and a Put.
    assert set(ledger["Action"]) == {
        "dynamodb:GetItem",
        "dynamodb:BatchGetItem",
        "dynamodb:Query",
        "dynamodb:UpdateItem",
        "dynamodb:BatchWriteItem",
        "dynamodb:PutItem",
    }
    leading = ledger["Condition"]["ForAllValues:StringLike"]["dynamodb:LeadingKeys"]
    assert set(leading) == LEDGER_PARTITIONS
    # Recovery reads back an object a crashed writer may have stored.
    assert "s3:GetObject" in statements["AuditStore"]["Action"]


def test_a_non_empty_dead_letter_queue_raises_an_alarm() -> None:
    alarm = _template()["Resources"]["AuditDeadLetterAlarm"]["Properties"]
    assert (alarm["Namespace"], alarm["MetricName"]) == (
        "AWS/SQS",
        "ApproximateNumberOfMessagesVisible",
    )
    [dimension] = alarm["Dimensions"]
    assert dimension["Value"] == {"Fn::GetAtt": "AuditDeadLetterQueue.QueueName"}
    assert (alarm["ComparisonOperator"], alarm["Threshold"]) == ("GreaterThanThreshold", 0)


# The response types API Gateway accepts (developer guide, "Gateway response types").
GATEWAY_RESPONSE_TYPES = {
    "ACCESS_DENIED", "API_CONFIGURATION_ERROR", "AUTHORIZER_CONFIGURATION_ERROR",
    "AUTHORIZER_FAILURE", "BAD_REQUEST_PARAMETERS", "BAD_REQUEST_BODY", "DEFAULT_4XX",
    "DEFAULT_5XX", "EXPIRED_TOKEN", "INTEGRATION_FAILURE", "INTEGRATION_TIMEOUT",
    "INVALID_API_KEY", "INVALID_SIGNATURE", "MISSING_AUTHENTICATION_TOKEN", "QUOTA_EXCEEDED",
    "REQUEST_TOO_LARGE", "RESOURCE_NOT_FOUND", "THROTTLED", "UNAUTHORIZED",
    "UNSUPPORTED_MEDIA_TYPE", "WAF_FILTERED",
}  # fmt: skip


def test_every_customised_gateway_response_is_a_type_api_gateway_knows() -> None:
    from gatehouse.dev.gateway import DEFAULT_GATEWAY_RESPONSES

    declared = set(json.loads(GATEWAY_RESPONSES.read_text()))
    assert declared <= GATEWAY_RESPONSE_TYPES, declared - GATEWAY_RESPONSE_TYPES
    assert set(DEFAULT_GATEWAY_RESPONSES) <= GATEWAY_RESPONSE_TYPES


def test_the_local_gateway_logs_the_stage_access_log_format() -> None:
    from gatehouse.dev.gateway import ACCESS_LOG_KEYS

    declared = json.loads((TEMPLATE.parent / "access_log_format.json").read_text())
    assert list(declared) == list(ACCESS_LOG_KEYS)
