"""``make destroy``: remove what may be removed, and say what Object Lock keeps and until when.

It refuses while the audit queue or its dead-letter queue holds events
(deleting the stack deletes the queues and the events with them) unless
forced. The order undoes the deploy: the wiring outside the API, then
``chalice delete`` (functions, API, roles, schedules), the Athena stack (its
results bucket emptied first: it holds copies, not the trail), the infra
stack. Deleting the infra stack removes the CloudTrail trail, both queues,
the alarms, the tampering rules, the alert topic and its key, and the log
groups. The stateful resources are ``Retain`` in the template and stay: the
state table (with deletion protection), the audit, anchor and trail buckets
with their bucket policies, the ledger digest key with its aliases (its public
key verifies the digests) and the assertion key with its alias.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from gatehouse.deploy.chalice_cli import prepare_build, run_chalice
from gatehouse.deploy.errors import QueuesNotEmpty
from gatehouse.deploy.settings import StageSettings, athena_stack_name, infra_stack_name
from gatehouse.deploy.stacks import delete_stack, stack_outputs, stack_status

Say = Callable[[str], None]


@dataclass(frozen=True, slots=True)
class LockReport:
    """What Object Lock keeps in one bucket."""

    bucket: str
    exists: bool
    versions: int = 0
    locked_versions: int = 0
    mode: str | None = None
    default_days: int | None = None
    locked_until: datetime | None = None

    def __str__(self) -> str:
        if not self.exists:
            return f"s3://{self.bucket}: does not exist"
        if not self.versions:
            return f"s3://{self.bucket}: empty; delete it when you like (aws s3 rb)"
        rule = f"{self.mode} {self.default_days} days" if self.mode else "no default retention"
        until = self.locked_until.strftime("%Y-%m-%d %H:%M UTC") if self.locked_until else "-"
        return (
            f"s3://{self.bucket}: {self.locked_versions} of {self.versions} versions still locked "
            f"({rule}), the last until {until}; only then can the bucket be emptied and deleted"
        )


def object_lock_report(s3: Any, bucket: str, *, now: datetime) -> LockReport:
    """Count the bucket's versions and estimate how long Object Lock keeps them.

    Each version's retention is its creation plus the bucket's default (the
    writer never sets one itself); the newest version's retention is read
    exactly. Reading every version's retention would cost a call per object.
    """
    from botocore.exceptions import ClientError

    try:
        rule = s3.get_object_lock_configuration(Bucket=bucket)["ObjectLockConfiguration"]
    except ClientError as exc:
        if exc.response["Error"]["Code"] in ("NoSuchBucket", "404"):
            return LockReport(bucket, exists=False)
        rule = {}
    retention = (rule.get("Rule") or {}).get("DefaultRetention") or {}
    days = retention.get("Days") or (retention.get("Years", 0) * 365) or None
    versions = [
        version
        for page in s3.get_paginator("list_object_versions").paginate(Bucket=bucket)
        for version in page.get("Versions", [])
    ]
    locked = sum(1 for v in versions if days and v["LastModified"] + timedelta(days=days) > now)
    mode, locked_until = retention.get("Mode"), None
    if versions:
        newest = max(versions, key=lambda version: version["LastModified"])
        mode, locked_until = _retention(s3, bucket, newest, mode, days)
    return LockReport(bucket, True, len(versions), locked, mode, days, locked_until)


def _retention(
    s3: Any, bucket: str, version: dict[str, Any], mode: str | None, days: int | None
) -> tuple[str | None, datetime | None]:
    """The version's own retention, or the default's estimate when it cannot be read."""
    from botocore.exceptions import ClientError

    try:
        exact = s3.get_object_retention(
            Bucket=bucket, Key=version["Key"], VersionId=version["VersionId"]
        )["Retention"]
        until: datetime | None = exact["RetainUntilDate"]
        mode = exact.get("Mode", mode)
    except ClientError:
        until = version["LastModified"] + timedelta(days=days) if days else None
    if until is not None and until.tzinfo is None:
        until = until.replace(tzinfo=UTC)
    return mode, until


def _empty_deletable_buckets(cfn: Any, s3: Any, stack: str, say: Say) -> None:
    """Empty the stack's buckets whose DeletionPolicy is Delete (CloudFormation cannot)."""
    import yaml

    from gatehouse.deploy.templates import cfn_yaml_loader

    body = cfn.get_template(StackName=stack)["TemplateBody"]
    # boto3 hands back a JSON template parsed, a YAML one as text.
    template = body if isinstance(body, dict) else yaml.load(body, Loader=cfn_yaml_loader())  # noqa: S506 - SafeLoader subclass
    resources = cfn.describe_stack_resources(StackName=stack)["StackResources"]
    for resource in resources:
        declared = template["Resources"].get(resource["LogicalResourceId"], {})
        if (
            resource["ResourceType"] != "AWS::S3::Bucket"
            or declared.get("DeletionPolicy") != "Delete"
        ):
            continue
        bucket = resource["PhysicalResourceId"]
        for page in s3.get_paginator("list_object_versions").paginate(Bucket=bucket):
            doomed = [
                {"Key": item["Key"], "VersionId": item["VersionId"]}
                for item in page.get("Versions", []) + page.get("DeleteMarkers", [])
            ]
            if doomed:
                s3.delete_objects(Bucket=bucket, Delete={"Objects": doomed, "Quiet": True})
        say(f"emptied s3://{bucket} (Athena query results)")


# The infra stack's queues, by output, and what their messages are.
QUEUE_OUTPUTS = {
    "AuditQueueUrl": "audit events not yet written to the ledger",
    "AuditDeadLetterQueueUrl": "audit events the writer gave up on",
}


def queued_messages(sqs: Any, queue_url: str) -> int:
    """Messages in the queue, visible, in flight or delayed (0 when there is no queue)."""
    from botocore.exceptions import ClientError

    names = [
        "ApproximateNumberOfMessages",
        "ApproximateNumberOfMessagesNotVisible",
        "ApproximateNumberOfMessagesDelayed",
    ]
    try:
        attributes = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=names)
    except ClientError as exc:
        if "NonExistentQueue" in exc.response["Error"]["Code"] or "QueueDoesNotExist" in str(exc):
            return 0
        raise
    return sum(int(attributes["Attributes"].get(name, 0)) for name in names)


def check_queues_empty(sqs: Any, outputs: dict[str, str]) -> None:
    """Refuse while either audit queue holds a message.

    Raises
    ------
    QueuesNotEmpty
        Naming each queue with messages, how many, and what they are.
    """
    waiting = []
    for output, what in QUEUE_OUTPUTS.items():
        url = outputs.get(output)
        if not url:
            continue
        count = queued_messages(sqs, url)
        if count:
            waiting.append(f"{count} in {url.rsplit('/', 1)[-1]} ({what})")
    if waiting:
        raise QueuesNotEmpty(
            f"the audit queues hold messages: {'; '.join(waiting)}. Destroying deletes them. "
            "Let the writer drain the queue and redrive or inspect the dead letters "
            "(`gatehouse audit dlq`), or pass --force to lose them"
        )


# What deleting the infra stack removes: no longer there to record or protect anything.
REMOVED_WITH_THE_STACK = (
    "the CloudTrail trail gatehouse-{stage}: logging of the buckets, table and account stops",
    "the audit queue and its dead-letter queue, and their queue policy",
    "the alarms, the tampering rules, the alert topic and its KMS key (deletion scheduled)",
    "the functions' and the access log's log groups, with their logs",
)


def destroy(
    settings: StageSettings,
    client: Callable[[str], Any],
    *,
    build_dir: Path,
    force: bool = False,
    say: Say = print,
) -> list[LockReport]:
    """Remove the stage's deletable parts; what Object Lock keeps, per bucket.

    Raises
    ------
    QueuesNotEmpty
        When an audit queue holds messages and ``force`` is not set; nothing is removed.
    """
    from gatehouse.deploy.deploy import wiring_target

    stage = settings.stage
    cfn = client("cloudformation")
    infra = infra_stack_name(stage)
    outputs = stack_outputs(cfn, infra) if stack_status(cfn, infra) else {}
    if force:
        say("--force: any events in the audit queues are deleted with them")
    else:
        check_queues_empty(client("sqs"), outputs)
    record_path = settings.project_dir / ".chalice" / "deployed" / f"{stage}.json"
    if outputs and record_path.exists():
        import json

        from gatehouse.deploy.wiring import unwire

        target = wiring_target(settings, outputs, json.loads(record_path.read_text()))
        if target is not None:
            for change in unwire(client, target):
                say(f"  {change}")
    if record_path.exists():
        prepare_build(settings.project_dir, build_dir, stage, outputs, {})
        run_chalice(build_dir, "delete", "--stage", stage)
        record_path.unlink()
        say(f"chalice delete --stage {stage}: functions, API, roles and schedules removed")
    athena = athena_stack_name(stage)
    if stack_status(cfn, athena):
        _empty_deletable_buckets(cfn, client("s3"), athena, say)
        delete_stack(cfn, athena)
        say(f"stack {athena} deleted")
    if delete_stack(cfn, infra):
        say(f"stack {infra} deleted. Removed with it:")
        for removed in REMOVED_WITH_THE_STACK:
            say(f"  {removed.format(stage=stage)}")
    return _say_what_stays(client, outputs, say)


def _say_what_stays(
    client: Callable[[str], Any], outputs: dict[str, str], say: Say
) -> list[LockReport]:
    """Print what the stage leaves behind; what Object Lock keeps, per bucket."""
    now = datetime.now(UTC)
    reports = [
        object_lock_report(client("s3"), bucket, now=now)
        for bucket in (outputs.get("AuditBucket"), outputs.get("AnchorBucket"))
        if bucket
    ]
    say("Kept (Retain, or locked), each bucket with its bucket policy:")
    for report in reports:
        say(f"  {report}")
    for name, what in (
        ("StateTable", "table (deletion protection on; its PITR backups expire by themselves)"),
        (
            "TrailBucket",
            "bucket of CloudTrail log files (not locked; delete when no longer needed)",
        ),
        (
            "SigningKeyArn",
            "KMS key that signs the ledger digests (and its aliases): export its public key "
            "before scheduling its deletion",
        ),
        (
            "AssertionKeyArn",
            "KMS key that certifies the proxy's assertion keys (and its alias): nothing needs "
            "it once the stage is gone",
        ),
    ):
        if outputs.get(name):
            say(f"  {outputs[name]}: {what}")
    return reports
