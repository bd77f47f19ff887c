"""Creates every AWS resource the app needs, with the names and settings of ``infra/``.

moto's CloudFormation silently drops Object Lock, TTL, KMS key specs and
more, so the local stack does not deploy the template into moto: it creates
the same resources here, with boto3, idempotently.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import ClientError

from gatehouse.resources import (
    AUDIT_QUEUE_MAX_RECEIVES,
    AUDIT_QUEUE_VISIBILITY_SECONDS,
    AUDIT_RETENTION_DAYS,
    AUDIT_RETENTION_MODE,
    ResourceNames,
)


@dataclass(frozen=True, slots=True)
class Resources:
    """What the bootstrap created (or found)."""

    state_table: str
    audit_bucket: str
    audit_queue_url: str
    audit_dlq_url: str
    digest_key_id: str  # signs ledger digests
    digest_key_alias: str
    assertion_key_alias: str  # certifies the proxy's assertion keys
    anchor_bucket: str = ""
    trail_bucket: str = ""
    upstream_role_arn: str = ""
    alert_topic_arn: str = ""
    alert_console_queue_url: str = ""
    alert_events_queue_url: str = ""

    @property
    def ledger_anchor(self) -> str:
        """The ``GATEHOUSE_LEDGER_ANCHOR`` of the stage."""
        return f"s3://{self.anchor_bucket}/ledger"


def bootstrap(client: Callable[[str], Any], names: ResourceNames) -> Resources:
    """Create (or find) the stage's resources.

    Parameters
    ----------
    client:
        Builds a boto3 client for a service name, pointed at moto.
    names:
        The stage's resource names.
    """
    _state_table(client("dynamodb"), names.state_table)
    _audit_bucket(client("s3"), names)
    _locked_bucket(client("s3"), names, names.anchor_bucket)
    _trail_bucket(client("s3"), names)
    role_arn = _upstream_role(client("iam"), names)
    dlq_url, queue_url = _audit_queues(client("sqs"), names)
    kms = client("kms")
    digest_key_id = _signing_key(kms, names.digest_key_alias, "ledger digest signing key")
    _signing_key(kms, names.assertion_key_alias, "assertion key certifying key")
    topic_arn, console_url, events_url = _alerts(
        client("sns"), client("events"), client("sqs"), names
    )
    return Resources(
        state_table=names.state_table,
        audit_bucket=names.audit_bucket,
        audit_queue_url=queue_url,
        audit_dlq_url=dlq_url,
        digest_key_id=digest_key_id,
        digest_key_alias=names.digest_key_alias,
        assertion_key_alias=names.assertion_key_alias,
        anchor_bucket=names.anchor_bucket,
        trail_bucket=names.trail_bucket,
        upstream_role_arn=role_arn,
        alert_topic_arn=topic_arn,
        alert_console_queue_url=console_url,
        alert_events_queue_url=events_url,
    )


ALERT_EVENT_PATTERN = {"source": ["gatehouse"], "detail-type": ["Gatehouse Alert"]}


def _alerts(sns: Any, events: Any, sqs: Any, names: ResourceNames) -> tuple[str, str, str]:
    """The alert topic, and two queues where the local stack sees alerts.

    The console reads the topic's subscriber; the EventBridge rule's target
    (what detection puts on the default bus) is for tests and operators.
    """
    topic_arn = str(sns.create_topic(Name=names.alert_topic)["TopicArn"])
    console_url = sqs.create_queue(QueueName=names.alert_console_queue)["QueueUrl"]
    console_arn = sqs.get_queue_attributes(QueueUrl=console_url, AttributeNames=["QueueArn"])[
        "Attributes"
    ]["QueueArn"]
    sns.subscribe(
        TopicArn=topic_arn,
        Protocol="sqs",
        Endpoint=console_arn,
        Attributes={"RawMessageDelivery": "true"},
    )
    events_url = sqs.create_queue(QueueName=names.alert_events_queue)["QueueUrl"]
    events_arn = sqs.get_queue_attributes(QueueUrl=events_url, AttributeNames=["QueueArn"])[
        "Attributes"
    ]["QueueArn"]
    rule = f"{names.alert_events_queue}-rule"
    events.put_rule(Name=rule, EventPattern=json.dumps(ALERT_EVENT_PATTERN), State="ENABLED")
    events.put_targets(Rule=rule, Targets=[{"Id": "alert-events", "Arn": events_arn}])
    return topic_arn, console_url, events_url


# The demo policy's AWS route assumes this role. The functions' IAM policy
# (.chalice/policy-*.json) may assume roles named gatehouse-upstream-* only.
DEMO_UPSTREAM_ROLE = "gatehouse-upstream-demo"
# What an upstream role's trust policy must allow the functions' role: without
# SetSourceIdentity and TagSession, AssumeRole with SourceIdentity and Tags is denied.
UPSTREAM_TRUST_ACTIONS = ["sts:AssumeRole", "sts:SetSourceIdentity", "sts:TagSession"]


def upstream_trust_policy(names: ResourceNames) -> dict[str, Any]:
    """The trust policy an upstream role needs: the functions' role may open tagged sessions."""
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"AWS": f"arn:aws:iam::{names.account}:role/gatehouse-{names.stage}"},
                "Action": UPSTREAM_TRUST_ACTIONS,
            }
        ],
    }


def _upstream_role(iam: Any, names: ResourceNames) -> str:
    try:
        return str(iam.get_role(RoleName=DEMO_UPSTREAM_ROLE)["Role"]["Arn"])
    except ClientError as exc:
        if exc.response["Error"]["Code"] != "NoSuchEntity":
            raise
    role = iam.create_role(
        RoleName=DEMO_UPSTREAM_ROLE,
        AssumeRolePolicyDocument=json.dumps(upstream_trust_policy(names)),
        Description="The demo AWS upstream's caller role (sessions per principal)",
        MaxSessionDuration=3600,
    )
    iam.put_role_policy(
        RoleName=DEMO_UPSTREAM_ROLE,
        PolicyName="invoke-demo-api",
        PolicyDocument=json.dumps(
            {
                "Version": "2012-10-17",
                "Statement": [
                    {
                        "Effect": "Allow",
                        "Action": "execute-api:Invoke",
                        "Resource": f"arn:aws:execute-api:{names.region}:{names.account}:*",
                    }
                ],
            }
        ),
    )
    return str(role["Role"]["Arn"])


def _trail_bucket(s3: Any, names: ResourceNames) -> None:
    try:
        kwargs: dict[str, Any] = {"Bucket": names.trail_bucket}
        if names.region != "us-east-1":
            kwargs["CreateBucketConfiguration"] = {"LocationConstraint": names.region}
        s3.create_bucket(**kwargs)
    except ClientError as exc:
        if exc.response["Error"]["Code"] not in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists"):
            raise
    s3.put_public_access_block(
        Bucket=names.trail_bucket,
        PublicAccessBlockConfiguration={
            "BlockPublicAcls": True,
            "IgnorePublicAcls": True,
            "BlockPublicPolicy": True,
            "RestrictPublicBuckets": True,
        },
    )


def _state_table(dynamodb: Any, table: str) -> None:
    try:
        dynamodb.create_table(
            TableName=table,
            AttributeDefinitions=[
                {"AttributeName": "pk", "AttributeType": "S"},
                {"AttributeName": "sk", "AttributeType": "S"},
            ],
            KeySchema=[
                {"AttributeName": "pk", "KeyType": "HASH"},
                {"AttributeName": "sk", "KeyType": "RANGE"},
            ],
            BillingMode="PAY_PER_REQUEST",
            SSESpecification={"Enabled": True},
        )
    except ClientError as exc:
        if exc.response["Error"]["Code"] != "ResourceInUseException":
            raise
    dynamodb.update_continuous_backups(
        TableName=table,
        PointInTimeRecoverySpecification={"PointInTimeRecoveryEnabled": True},
    )
    if dynamodb.describe_time_to_live(TableName=table)["TimeToLiveDescription"].get(
        "TimeToLiveStatus"
    ) not in ("ENABLED", "ENABLING"):
        dynamodb.update_time_to_live(
            TableName=table, TimeToLiveSpecification={"AttributeName": "ttl", "Enabled": True}
        )


def _audit_bucket(s3: Any, names: ResourceNames) -> None:
    _locked_bucket(s3, names, names.audit_bucket)


def _locked_bucket(s3: Any, names: ResourceNames, bucket: str) -> None:
    try:
        kwargs: dict[str, Any] = {"Bucket": bucket, "ObjectLockEnabledForBucket": True}
        if names.region != "us-east-1":
            kwargs["CreateBucketConfiguration"] = {"LocationConstraint": names.region}
        s3.create_bucket(**kwargs)
    except ClientError as exc:
        if exc.response["Error"]["Code"] not in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists"):
            raise
    s3.put_object_lock_configuration(
        Bucket=bucket,
        ObjectLockConfiguration={
            "ObjectLockEnabled": "Enabled",
            "Rule": {
                "DefaultRetention": {
                    "Mode": AUDIT_RETENTION_MODE.get(names.stage, "GOVERNANCE"),
                    "Days": AUDIT_RETENTION_DAYS.get(names.stage, 1),
                }
            },
        },
    )
    s3.put_public_access_block(
        Bucket=bucket,
        PublicAccessBlockConfiguration={
            "BlockPublicAcls": True,
            "IgnorePublicAcls": True,
            "BlockPublicPolicy": True,
            "RestrictPublicBuckets": True,
        },
    )


def _audit_queues(sqs: Any, names: ResourceNames) -> tuple[str, str]:
    dlq_url = sqs.create_queue(
        QueueName=names.audit_dlq,
        Attributes={"MessageRetentionPeriod": str(14 * 86400), "SqsManagedSseEnabled": "true"},
    )["QueueUrl"]
    dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    queue_url = sqs.create_queue(
        QueueName=names.audit_queue,
        Attributes={
            "VisibilityTimeout": str(AUDIT_QUEUE_VISIBILITY_SECONDS),
            "MessageRetentionPeriod": str(14 * 86400),
            "SqsManagedSseEnabled": "true",
            "RedrivePolicy": json.dumps(
                {"deadLetterTargetArn": dlq_arn, "maxReceiveCount": str(AUDIT_QUEUE_MAX_RECEIVES)}
            ),
        },
    )["QueueUrl"]
    return dlq_url, queue_url


def _signing_key(kms: Any, alias: str, what: str) -> str:
    try:
        return str(kms.describe_key(KeyId=alias)["KeyMetadata"]["KeyId"])
    except ClientError as exc:
        if exc.response["Error"]["Code"] != "NotFoundException":
            raise
    key_id = str(
        kms.create_key(
            KeySpec="ECC_NIST_P256",
            KeyUsage="SIGN_VERIFY",
            Description=f"Gatehouse {what}",
        )["KeyMetadata"]["KeyId"]
    )
    kms.create_alias(AliasName=alias, TargetKeyId=key_id)
    return key_id
