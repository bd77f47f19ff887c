"""The CloudFormation template and the local bootstrap build the same resources."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from gatehouse.deploy.templates import load_template
from gatehouse.resources import (
    AUDIT_QUEUE_MAX_RECEIVES,
    AUDIT_QUEUE_VISIBILITY_SECONDS,
    AUDIT_RETENTION_MODE,
    ResourceNames,
)

TEMPLATE = Path(__file__).resolve().parents[2] / "infra" / "gatehouse.yaml"
GATEWAY_RESPONSES = TEMPLATE.with_name("gateway_responses.json")


def _template() -> dict[str, Any]:
    return load_template(TEMPLATE)


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
        "TrailBucket": _render(
            resources["TrailBucket"]["Properties"]["BucketName"], stage, "123456789012", "eu-west-1"
        ),
    }
    assert rendered == {
        "PolicyTable": names.policy_table,
        "AuditBucket": names.audit_bucket,
        "AuditQueue": names.audit_queue,
        "AnchorBucket": names.anchor_bucket,
        "AuditDeadLetterQueue": names.audit_dlq,
        "SigningKeyAlias": names.signing_key_alias,
        "TrailBucket": names.trail_bucket,
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


GRANT_WRITERS = {"api_handler", "gatehouse_authorizer", "grant_sweeper"}
LEDGER_WRITERS = {"audit_writer", "ledger_digest"}
FUNCTIONS = GRANT_WRITERS | LEDGER_WRITERS | {"access_log_ingest"}


def _roles(statement: dict[str, Any]) -> set[str]:
    arns = statement["Condition"]["ArnNotEquals"]["aws:PrincipalArn"]
    prefix = "arn:${AWS::Partition}:iam::${AWS::AccountId}:role/gatehouse-${Stage}-"
    assert all(arn["Fn::Sub"].startswith(prefix) for arn in arns), arns
    return {arn["Fn::Sub"].removeprefix(prefix) for arn in arns}


def test_only_the_functions_that_write_a_partition_may_write_it() -> None:
    from chalicelib.grants import store
    from chalicelib.ledger import state

    assert {store._PK, store._LIVE, store._OUTBOX} == GRANT_PARTITIONS
    assert {state._PK, state._EVENTS} == LEDGER_PARTITIONS
    table = _template()["Resources"]["PolicyTable"]["Properties"]
    grants, ledger, blind = table["ResourcePolicy"]["PolicyDocument"]["Statement"]
    for deny in (grants, ledger, blind):
        assert (deny["Effect"], deny["Principal"]) == ("Deny", "*")
        # Every way to write an item, one at a time, in batches, or through PartiQL.
        assert set(deny["Action"]) == ITEM_WRITES | {
            "dynamodb:BatchWriteItem",
            "dynamodb:PartiQLInsert",
            "dynamodb:PartiQLUpdate",
            "dynamodb:PartiQLDelete",
        }
    # ForAnyValue: one protected key in a batch is enough to refuse it.
    assert set(grants["Condition"]["ForAnyValue:StringLike"]["dynamodb:LeadingKeys"]) == (
        GRANT_PARTITIONS
    )
    assert _roles(grants) == GRANT_WRITERS
    assert set(ledger["Condition"]["ForAnyValue:StringLike"]["dynamodb:LeadingKeys"]) == (
        LEDGER_PARTITIONS
    )
    assert _roles(ledger) == LEDGER_WRITERS
    # Writes whose partition keys IAM cannot see are refused to all but the writers.
    assert blind["Condition"]["Null"] == {"dynamodb:LeadingKeys": "true"}
    assert _roles(blind) == GRANT_WRITERS | LEDGER_WRITERS


def _statements(stage: str, function: str) -> dict[str, dict[str, Any]]:
    policy_file = TEMPLATE.parents[1] / ".chalice" / f"policy-{stage}-{function}.json"
    return {s["Sid"]: s for s in json.loads(policy_file.read_text())["Statement"]}


def _writes(statement: dict[str, Any]) -> set[str]:
    return {action for action in statement["Action"] if not action.endswith(("GetItem", "Query"))}


@pytest.mark.parametrize("stage", ["dev", "prod"])
def test_a_function_may_write_a_partition_only_if_the_table_lets_it(stage: str) -> None:
    for function in FUNCTIONS:
        for statement in _statements(stage, function).values():
            leading = statement.get("Condition", {}).get("ForAllValues:StringEquals", {})
            partitions = set(leading.get("dynamodb:LeadingKeys", []))
            if not _writes(statement) or not partitions:
                continue
            if partitions & GRANT_PARTITIONS:
                assert function in GRANT_WRITERS, (function, statement["Sid"])
            if partitions & LEDGER_PARTITIONS:
                assert function in LEDGER_WRITERS, (function, statement["Sid"])


@pytest.mark.parametrize("stage", ["dev", "prod"])
@pytest.mark.parametrize("function", sorted(GRANT_WRITERS))
def test_the_grant_writers_may_make_every_grant_write_the_store_makes(
    stage: str, function: str
) -> None:
    lifecycle = _statements(stage, function)["GrantLifecycle"]

    # TransactWriteItems is authorised per item: Put, Update, Delete and ConditionCheck.
    assert set(lifecycle["Action"]) == ITEM_WRITES | {"dynamodb:ConditionCheckItem"}
    assert lifecycle["Resource"].endswith(f":table/gatehouse-{stage}-policy")
    leading = lifecycle["Condition"]["ForAllValues:StringEquals"]["dynamodb:LeadingKeys"]
    assert set(leading) == GRANT_PARTITIONS


@pytest.mark.parametrize("stage", ["dev", "prod"])
def test_the_writer_may_make_every_call_the_ledger_makes(stage: str) -> None:
    statements = _statements(stage, "audit_writer")
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
    leading = ledger["Condition"]["ForAllValues:StringEquals"]["dynamodb:LeadingKeys"]
    assert set(leading) == LEDGER_PARTITIONS
    # Recovery reads back an object a crashed writer may have stored.
    assert set(statements["AuditStore"]["Action"]) == {"s3:PutObject", "s3:GetObject"}
    # The event source mapping polls with the function's role.
    assert set(statements["AuditQueueSource"]["Action"]) >= {
        "sqs:ReceiveMessage",
        "sqs:DeleteMessage",
        "sqs:GetQueueAttributes",
    }


@pytest.mark.parametrize("stage", ["dev", "prod"])
def test_the_digest_signs_and_stores_only_digests_and_the_anchor(stage: str) -> None:
    from chalicelib.ledger.digest import DIGESTS_PREFIX, EVENTS_PREFIX

    statements = _statements(stage, "ledger_digest")
    assert statements["DigestStore"]["Resource"].endswith(f"/{DIGESTS_PREFIX}*")
    assert _statements(stage, "audit_writer")["AuditStore"]["Resource"].endswith(
        f"/{EVENTS_PREFIX}*"
    )
    assert statements["LedgerAnchor"]["Resource"].endswith(f"/ledger/{stage}/checkpoint.json")
    assert set(statements["SigningKey"]["Action"]) == {"kms:Sign", "kms:GetPublicKey"}
    assert statements["SigningKey"]["Condition"]["ForAnyValue:StringEquals"] == {
        "kms:ResourceAliases": f"alias/gatehouse-{stage}-signing"
    }


def test_only_the_proxy_and_the_digest_may_sign() -> None:
    key = _template()["Resources"]["SigningKey"]["Properties"]["KeyPolicy"]["Statement"]
    signers = [statement for statement in key if "kms:Sign" in _as_list(statement["Action"])]
    [only] = signers
    arns = only["Condition"]["ArnEquals"]["aws:PrincipalArn"]
    assert {arn["Fn::Sub"].rsplit("${Stage}-", 1)[-1] for arn in arns} == {
        "api_handler",
        "ledger_digest",
    }
    admin = next(s for s in key if s["Sid"] == "AccountAdministersTheKey")
    assert "kms:*" not in admin["Action"]
    for stage in ("dev", "prod"):
        for function in FUNCTIONS - {"api_handler", "ledger_digest"}:
            assert "SigningKey" not in _statements(stage, function), function


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def test_the_upstream_role_sessions_belong_to_the_proxy_alone() -> None:
    for stage in ("dev", "prod"):
        for function in FUNCTIONS:
            statements = _statements(stage, function)
            assert ("UpstreamRoleSessions" in statements) == (function == "api_handler")
        upstream = _statements(stage, "api_handler")["UpstreamRoleSessions"]
        assert upstream["Resource"] == "arn:aws:iam::*:role/gatehouse-upstream-*"
        assert upstream["Condition"] == {"Null": {"sts:SourceIdentity": "false"}}


def test_prod_policies_are_dev_policies_for_the_prod_stage() -> None:
    for function in FUNCTIONS:
        dev = (TEMPLATE.parents[1] / ".chalice" / f"policy-dev-{function}.json").read_text()
        prod = (TEMPLATE.parents[1] / ".chalice" / f"policy-prod-{function}.json").read_text()
        assert prod == dev.replace("gatehouse-dev-", "gatehouse-prod-").replace(
            "/ledger/dev/", "/ledger/prod/"
        ), function


def test_the_config_gives_each_function_its_reviewed_policy() -> None:
    config = json.loads((TEMPLATE.parents[1] / ".chalice" / "config.json").read_text())
    assert config["autogen_policy"] is False
    assert set(config["stages"]) == {"dev", "prod"}
    for stage, settings in config["stages"].items():
        functions = settings["lambda_functions"]
        assert set(functions) == FUNCTIONS
        for function, options in functions.items():
            assert options["iam_policy_file"] == f"policy-{stage}-{function}.json"
            assert {"lambda_memory_size", "lambda_timeout"} <= set(options)
        # Not a stage-wide file: a function without its own would get it.
        assert "iam_policy_file" not in settings
        # The writer finishes before its reservation counts as abandoned (50 s)
        # and before its messages become visible again (60 s).
        assert functions["audit_writer"]["lambda_timeout"] < 50 < AUDIT_QUEUE_VISIBILITY_SECONDS


def test_a_non_empty_dead_letter_queue_raises_an_alarm() -> None:
    alarm = _template()["Resources"]["AuditDeadLetterAlarm"]["Properties"]
    assert (alarm["Namespace"], alarm["MetricName"]) == (
        "AWS/SQS",
        "ApproximateNumberOfMessagesVisible",
    )
    [dimension] = alarm["Dimensions"]
    assert dimension["Value"] == {"Fn::GetAtt": ["AuditDeadLetterQueue", "QueueName"]}
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
