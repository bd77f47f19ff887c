"""The deploy's wiring step against moto's server on 127.0.0.1: what Chalice cannot declare.

Resources are created with boto3 the way ``chalice deploy`` and the infra stack
leave them (moto's CloudFormation would drop too much); the wiring then runs
twice, and the second run must change nothing.
"""

from __future__ import annotations

import io
import json
import urllib.request
import zipfile
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto.server import ThreadedMotoServer

from gatehouse.deploy.destroy import object_lock_report
from gatehouse.deploy.errors import NotDeployed
from gatehouse.deploy.settings import HEALTH_BURST_LIMIT, HEALTH_RATE_LIMIT, WriterSource
from gatehouse.deploy.templates import access_log_format, gateway_responses
from gatehouse.deploy.wiring import (
    LOGS_PERMISSION_SID,
    SUBSCRIPTION_FILTER_NAME,
    WiringTarget,
    unwire,
    wire,
)

ROOT_DIR = Path(__file__).resolve().parents[2]
REGION = "eu-west-1"
ACCOUNT = "123456789012"
STAGE = "dev"
WRITER = "gatehouse-dev-audit_writer"
INGEST = "gatehouse-dev-access_log_ingest"
LOG_GROUP = "/aws/apigateway/gatehouse-dev/access"


@pytest.fixture(scope="module")
def moto_url() -> Iterator[str]:
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture
def client(moto_url: str) -> Any:
    request = urllib.request.Request(f"{moto_url}/moto-api/reset", method="POST")  # noqa: S310 - loopback
    urllib.request.urlopen(request).close()  # noqa: S310 - loopback

    def make(service: str) -> Any:
        return boto3.client(service, endpoint_url=moto_url, region_name=REGION)

    return make


def _function(client: Any, name: str, role: str) -> str:
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as zipped:
        zipped.writestr("app.py", "def handler(event, context):\n    return {}\n")
    created = client("lambda").create_function(
        FunctionName=name,
        Runtime="python3.11",
        Role=role,
        Handler="app.handler",
        Code={"ZipFile": archive.getvalue()},
    )
    return str(created["FunctionArn"])


@pytest.fixture
def target(client: Any) -> WiringTarget:
    """A deployed stage as chalice deploy and the infra stack leave it, not yet wired."""
    role = client("iam").create_role(RoleName="gatehouse-dev-x", AssumeRolePolicyDocument="{}")
    _function(client, WRITER, role["Role"]["Arn"])
    _function(client, INGEST, role["Role"]["Arn"])
    sqs = client("sqs")
    queue = sqs.create_queue(QueueName="gatehouse-dev-audit")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])
    client("logs").create_log_group(logGroupName=LOG_GROUP)
    apigateway = client("apigateway")
    api = apigateway.create_rest_api(name="gatehouse")["id"]
    root = apigateway.get_resources(restApiId=api)["items"][0]["id"]
    apigateway.put_method(
        restApiId=api, resourceId=root, httpMethod="GET", authorizationType="NONE"
    )
    apigateway.put_integration(restApiId=api, resourceId=root, httpMethod="GET", type="MOCK")
    apigateway.create_deployment(restApiId=api, stageName=STAGE)
    return WiringTarget(
        stage=STAGE,
        rest_api_id=api,
        access_log_group_name=LOG_GROUP,
        # As CloudFormation's GetAtt gives it (the infra stack's output).
        access_log_group_arn=f"arn:aws:logs:{REGION}:{ACCOUNT}:log-group:{LOG_GROUP}:*",
        audit_queue_arn=queue_arn["Attributes"]["QueueArn"],
        writer_function=WRITER,
        ingest_function=INGEST,
        access_log_format=access_log_format(ROOT_DIR),
        gateway_responses=gateway_responses(ROOT_DIR),
        api_gateway_role_arn=f"arn:aws:iam::{ACCOUNT}:role/gatehouse-dev-apigw-logs",
    )


def _mappings(client: Any, target: WiringTarget) -> list[dict[str, Any]]:
    return list(
        client("lambda").list_event_source_mappings(
            EventSourceArn=target.audit_queue_arn, FunctionName=WRITER
        )["EventSourceMappings"]
    )


def test_wiring_twice_wires_once_and_then_changes_nothing(
    client: Any, target: WiringTarget
) -> None:
    first = wire(client, target)
    second = wire(client, target)

    assert [change.action for change in first] == [
        "updated",  # the account had no CloudWatch role
        "updated",  # gateway responses (and a redeployment)
        "created",  # stage access log
        "created",  # event source mapping
        "created",  # invoke permission
        "created",  # subscription filter
        "updated",  # the health route's throttling
    ], [str(change) for change in first]
    assert [change.action for change in second] == ["unchanged"] * 7, [str(c) for c in second]

    [mapping] = _mappings(client, target)
    assert mapping["BatchSize"] == 1000
    assert mapping["MaximumBatchingWindowInSeconds"] == 30
    assert mapping["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert mapping["ScalingConfig"] == {"MaximumConcurrency": 2}

    stage = client("apigateway").get_stage(restApiId=target.rest_api_id, stageName=STAGE)
    assert stage["accessLogSettings"] == {
        "destinationArn": f"arn:aws:logs:{REGION}:{ACCOUNT}:log-group:{LOG_GROUP}",
        "format": access_log_format(ROOT_DIR),
    }
    assert json.loads(stage["accessLogSettings"]["format"])["requestId"] == "$context.requestId"
    # The unauthenticated health route has its own, lower throttle, per method.
    for method in ("GET", "HEAD"):
        health = stage["methodSettings"][f"~1.gatehouse~1health/{method}"]
        assert health["throttlingRateLimit"] == HEALTH_RATE_LIMIT
        assert health["throttlingBurstLimit"] == HEALTH_BURST_LIMIT

    [subscription] = client("logs").describe_subscription_filters(logGroupName=LOG_GROUP)[
        "subscriptionFilters"
    ]
    ingest_arn = client("lambda").get_function(FunctionName=INGEST)["Configuration"]["FunctionArn"]
    assert (subscription["filterName"], subscription["destinationArn"]) == (
        SUBSCRIPTION_FILTER_NAME,
        ingest_arn,
    )
    assert subscription["filterPattern"] == ""

    policy = json.loads(client("lambda").get_policy(FunctionName=INGEST)["Policy"])
    [statement] = [s for s in policy["Statement"] if s["Sid"] == LOGS_PERMISSION_SID]
    assert statement["Principal"] == {"Service": "logs.amazonaws.com"}
    assert statement["Condition"]["ArnLike"]["AWS:SourceArn"] == target.log_group_arn_for_logs
    assert statement["Condition"]["StringEquals"]["AWS:SourceAccount"] == ACCOUNT

    responses = {
        item["responseType"]: item
        for item in client("apigateway").get_gateway_responses(restApiId=target.rest_api_id)[
            "items"
        ]
    }
    assert responses["AUTHORIZER_FAILURE"]["statusCode"] == "503"
    assert responses["UNAUTHORIZED"]["responseParameters"] == {
        "gatewayresponse.header.WWW-Authenticate": "'Bearer realm=\"gatehouse\"'"
    }
    account = client("apigateway").get_account()
    assert account["cloudwatchRoleArn"] == target.api_gateway_role_arn


def test_an_account_role_already_set_is_kept(client: Any, target: WiringTarget) -> None:
    other = f"arn:aws:iam::{ACCOUNT}:role/someone-elses"
    client("apigateway").update_account(
        patchOperations=[{"op": "replace", "path": "/cloudwatchRoleArn", "value": other}]
    )

    change = wire(client, target)[0]

    assert (change.action, change.detail) == ("kept", other)
    assert client("apigateway").get_account()["cloudwatchRoleArn"] == other


def test_a_loosened_health_throttle_is_put_back(client: Any, target: WiringTarget) -> None:
    wire(client, target)
    client("apigateway").update_stage(
        restApiId=target.rest_api_id,
        stageName=STAGE,
        patchOperations=[
            {
                "op": "replace",
                "path": "/~1.gatehouse~1health/GET/throttling/rateLimit",
                "value": "5000",
            }
        ],
    )

    change = wire(client, target)[-1]

    assert (change.what, change.action) == (
        f"throttling of /.gatehouse/health in stage {STAGE}",
        "updated",
    )
    stage = client("apigateway").get_stage(restApiId=target.rest_api_id, stageName=STAGE)
    assert (
        stage["methodSettings"]["~1.gatehouse~1health/GET"]["throttlingRateLimit"]
        == HEALTH_RATE_LIMIT
    )
    assert wire(client, target)[-1].action == "unchanged"


def test_drift_is_put_back(client: Any, target: WiringTarget) -> None:
    wire(client, target)
    [mapping] = _mappings(client, target)
    lambda_ = client("lambda")
    # Someone lowers the batch size, drops partial failures and disables the mapping.
    lambda_.update_event_source_mapping(
        UUID=mapping["UUID"], BatchSize=10, FunctionResponseTypes=[], Enabled=False
    )
    lambda_.remove_permission(FunctionName=INGEST, StatementId=LOGS_PERMISSION_SID)
    lambda_.add_permission(
        FunctionName=INGEST,
        StatementId=LOGS_PERMISSION_SID,
        Action="lambda:InvokeFunction",
        Principal="logs.amazonaws.com",
        SourceArn=f"arn:aws:logs:{REGION}:{ACCOUNT}:log-group:elsewhere:*",
    )
    client("apigateway").update_stage(
        restApiId=target.rest_api_id,
        stageName=STAGE,
        patchOperations=[
            {"op": "replace", "path": "/accessLogSettings/format", "value": "$context.requestId"}
        ],
    )

    changes = {change.what.split(" ")[0]: change for change in wire(client, target)}

    assert changes["event"].action == "updated"
    assert "FunctionResponseTypes" in changes["event"].detail
    assert changes["invoke"].action == "updated"
    assert changes["access"].action == "updated"
    [mapping] = _mappings(client, target)
    assert (mapping["BatchSize"], mapping["FunctionResponseTypes"], mapping["State"]) == (
        1000,
        ["ReportBatchItemFailures"],
        "Enabled",
    )
    policy = json.loads(lambda_.get_policy(FunctionName=INGEST)["Policy"])
    assert [s["Condition"]["ArnLike"]["AWS:SourceArn"] for s in policy["Statement"]] == [
        target.log_group_arn_for_logs
    ]
    assert [change.action for change in wire(client, target)][1:] == ["unchanged"] * 6


def test_events_per_object_is_the_mapping_batch_size(client: Any, target: WiringTarget) -> None:
    wire(client, target)

    bigger = replace(
        target, writer=WriterSource(events_per_object=5000, batching_window_seconds=60)
    )
    changes = wire(client, bigger)

    [mapping] = _mappings(client, target)
    assert (mapping["BatchSize"], mapping["MaximumBatchingWindowInSeconds"]) == (5000, 60)
    assert "BatchSize" in changes[3].detail


@pytest.mark.parametrize(
    ("events", "window"), [(999, 30), (10_001, 30), (1000, 0), (1000, 301)], ids=str
)
def test_events_per_object_and_window_outside_their_range_are_refused(
    events: int, window: int
) -> None:
    from gatehouse.deploy.errors import DeployError

    with pytest.raises(DeployError, match=r"events per object|batching window"):
        WriterSource(events_per_object=events, batching_window_seconds=window)


def test_a_duplicate_mapping_is_removed(client: Any, target: WiringTarget) -> None:
    for _ in range(2):
        client("lambda").create_event_source_mapping(
            EventSourceArn=target.audit_queue_arn, FunctionName=WRITER, BatchSize=10
        )

    wire(client, target)

    [mapping] = _mappings(client, target)
    assert mapping["FunctionResponseTypes"] == ["ReportBatchItemFailures"]


def test_wiring_a_stage_whose_functions_are_missing_says_so(
    client: Any, target: WiringTarget
) -> None:
    client("lambda").delete_function(FunctionName=WRITER)

    with pytest.raises(NotDeployed, match="audit_writer"):
        wire(client, target)


def test_unwiring_removes_the_mapping_and_the_subscription_once(
    client: Any, target: WiringTarget
) -> None:
    wire(client, target)

    first = unwire(client, target)
    second = unwire(client, target)

    assert [change.action for change in first] == ["deleted", "deleted"]
    assert [change.action for change in second] == ["absent", "absent"]
    assert _mappings(client, target) == []
    assert (
        client("logs").describe_subscription_filters(logGroupName=LOG_GROUP)["subscriptionFilters"]
        == []
    )


def test_destroy_reports_what_object_lock_keeps_and_until_when(client: Any) -> None:
    s3 = client("s3")
    bucket = "gatehouse-dev-audit-123456789012-eu-west-1"
    s3.create_bucket(
        Bucket=bucket,
        CreateBucketConfiguration={"LocationConstraint": REGION},
        ObjectLockEnabledForBucket=True,
    )
    s3.put_object_lock_configuration(
        Bucket=bucket,
        ObjectLockConfiguration={
            "ObjectLockEnabled": "Enabled",
            "Rule": {"DefaultRetention": {"Mode": "COMPLIANCE", "Days": 3}},
        },
    )
    for name in ("a", "b"):
        s3.put_object(
            Bucket=bucket, Key=f"audit/v1/events/{name}", Body=b"x", ChecksumAlgorithm="SHA256"
        )
    s3.put_object(Bucket=bucket, Key="audit/v1/events/a", Body=b"y", ChecksumAlgorithm="SHA256")
    now = datetime.now(UTC)

    report = object_lock_report(s3, bucket, now=now)

    assert (report.versions, report.locked_versions, report.mode) == (3, 3, "COMPLIANCE")
    assert report.locked_until is not None
    assert (
        now + timedelta(days=2, hours=23)
        < report.locked_until
        <= now + timedelta(days=3, minutes=1)
    )
    text = str(report)
    assert bucket in text
    assert "COMPLIANCE" in text
    assert "3 of 3 versions" in text


def test_destroy_reports_a_missing_bucket_as_gone(client: Any) -> None:
    report = object_lock_report(client("s3"), "gatehouse-dev-audit-nope", now=datetime.now(UTC))

    assert report.versions == 0
    assert not report.exists
    assert "does not exist" in str(report)
