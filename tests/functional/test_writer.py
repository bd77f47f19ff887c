"""The audit writer Lambda (``app.audit_writer``) fed SQS events, storing into moto's S3.

The event bodies are the real messages the authorizer put on the audit
queue; the bucket is the Object Lock bucket the bootstrap creates
(GOVERNANCE, one day, for a test stage).
"""

from __future__ import annotations

import base64
import copy
import gzip
import hashlib
import json
import re
import time
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import boto3
import pytest
from botocore.exceptions import ClientError

import app
from chalicelib import entrypoints
from chalicelib.audit.schema import uuid7
from chalicelib.config import Settings
from chalicelib.container import Container
from chalicelib.ledger.layout import EVENTS_PREFIX
from tests.helpers import FakeIdp, claims, load_event, make_token

if TYPE_CHECKING:
    from gatehouse.dev.bootstrap import Resources

PREFIX = EVENTS_PREFIX
KEY = re.compile(r"audit/v1/events/dt=(\d{4}-\d{2}-\d{2})/hour=(\d{2})/(\d{16})-r(\d+)\.ndjson\.gz")


def s3() -> Any:
    return boto3.client("s3", region_name="us-east-1")


def real_messages(aws: Resources, rsa_key: Any) -> list[tuple[str, str]]:
    """(message id, body) of three real decision events: allow, deny, unauthorized."""
    base = load_event("authorizer_request")
    requests = [
        (make_token(rsa_key, "RS256", "rsa-1"), False),
        (make_token(rsa_key, "RS256", "rsa-1", claims(groups=["sales"])), False),
        ("not-a-token", True),
    ]
    for token, unauthorized in requests:
        event = copy.deepcopy(base)
        event["headers"]["Authorization"] = f"Bearer {token}"
        event["multiValueHeaders"]["Authorization"] = [f"Bearer {token}"]
        if unauthorized:
            with pytest.raises(Exception, match=r"^Unauthorized$"):
                app.gatehouse_authorizer(event, None)
        else:
            app.gatehouse_authorizer(event, None)
    sqs = boto3.client("sqs", region_name="us-east-1")
    messages: list[tuple[str, str]] = []
    while len(messages) < len(requests):
        received = sqs.receive_message(QueueUrl=aws.audit_queue_url, MaxNumberOfMessages=10)
        batch = received.get("Messages", [])
        assert batch, "the authorizer did not queue its events"
        messages += [(m["MessageId"], m["Body"]) for m in batch]
    return messages


def sqs_event(messages: list[tuple[str, str]]) -> dict[str, Any]:
    """An SQS event for the Lambda, in AWS's format, carrying ``messages``."""
    template = load_event("sqs_batch")["Records"][0]
    records = []
    for message_id, body in messages:
        record = copy.deepcopy(template)
        record["messageId"] = message_id
        record["body"] = body
        record["md5OfBody"] = hashlib.md5(body.encode(), usedforsecurity=False).hexdigest()
        records.append(record)
    return {"Records": records}


def stored_keys(bucket: str) -> list[str]:
    listed = s3().list_objects_v2(Bucket=bucket, Prefix=PREFIX)
    return [item["Key"] for item in listed.get("Contents", [])]


def stored_lines(bucket: str, key: str) -> list[str]:
    payload = s3().get_object(Bucket=bucket, Key=key)["Body"].read()
    text = gzip.decompress(payload).decode("utf-8")
    assert text.endswith("\n")
    return text[:-1].split("\n")


def ledger_lines(bodies: list[str], first: int = 0) -> list[str]:
    """The stored form of ``bodies``: each with its ledger position appended."""
    return [
        f'{body[:-1]},"ledger":{{"sequence":{first + offset}}}}}'
        for offset, body in enumerate(bodies)
    ]


def renamed(message: tuple[str, str]) -> tuple[str, str]:
    """The same event under a new event id (and message id): a different event."""
    message_id, body = message
    event = json.loads(body)
    event["event_id"] = uuid7()
    return f"{message_id}-{event['event_id']}", json.dumps(event, separators=(",", ":"))


def failures(answer: dict[str, Any]) -> list[str]:
    assert set(answer) == {"batchItemFailures"}
    return [item["itemIdentifier"] for item in answer["batchItemFailures"]]


def test_a_batch_is_stored_as_one_locked_ndjson_gz_object(
    stage: Container, aws: Resources, rsa_key: Any
) -> None:
    messages = real_messages(aws, rsa_key)
    before = time.time()

    answer = app.audit_writer(sqs_event(messages), None)

    after = time.time()
    assert failures(answer) == []
    [key] = stored_keys(aws.audit_bucket)
    match = KEY.fullmatch(key)
    assert match, key
    partitions = {time.strftime("%Y-%m-%d/%H", time.gmtime(moment)) for moment in (before, after)}
    assert f"{match[1]}/{match[2]}" in partitions
    assert match[3] == "0" * 16  # the first object holds sequences from 0
    assert stored_lines(aws.audit_bucket, key) == ledger_lines([body for _, body in messages])

    client = s3()
    head = client.head_object(Bucket=aws.audit_bucket, Key=key, ChecksumMode="ENABLED")
    payload = client.get_object(Bucket=aws.audit_bucket, Key=key)["Body"].read()
    assert head["ChecksumSHA256"] == base64.b64encode(hashlib.sha256(payload).digest()).decode()
    assert head["ContentType"] == "application/x-ndjson"
    assert head["ContentEncoding"] == "gzip"
    version = head["VersionId"]
    assert version
    assert version != "null"
    # The bucket's default retention applied to this version. (moto does not implement
    # GetObjectRetention; HeadObject reports the same two facts.)
    assert head["ObjectLockMode"] == "GOVERNANCE"
    expected = datetime.now(UTC) + timedelta(days=1)
    assert abs(head["ObjectLockRetainUntilDate"] - expected) < timedelta(minutes=5)


def test_the_stored_version_cannot_be_deleted_without_bypass(
    stage: Container, aws: Resources, rsa_key: Any
) -> None:
    app.audit_writer(sqs_event(real_messages(aws, rsa_key)), None)
    [key] = stored_keys(aws.audit_bucket)
    client = s3()
    version = client.head_object(Bucket=aws.audit_bucket, Key=key)["VersionId"]

    with pytest.raises(ClientError) as refused:
        client.delete_object(Bucket=aws.audit_bucket, Key=key, VersionId=version)

    assert refused.value.response["Error"]["Code"] == "AccessDenied"
    still = client.get_object(Bucket=aws.audit_bucket, Key=key, VersionId=version)
    assert gzip.decompress(still["Body"].read()).count(b"\n") == 3


MALFORMED_BODIES = [
    ("not-json", "this is not json"),
    ("json-array", '[{"event_id": "x"}]'),
    ("json-string", '"event_id"'),
    ("object-without-event-id", '{"event_type": "decision"}'),
    ("two-lines", '{"event_id": "a"}\n{"event_id": "b"}'),
    ("empty", ""),
    ("truncated", '{"event_id": "01938a4e-0000-7000-8000-00000000000'),
    ("carries-a-ledger-position", '{"event_id": "a", "ledger": {"sequence": 0}}'),
    ("event-id-not-a-string", '{"event_id": 7}'),
]


def test_malformed_bodies_are_reported_and_not_stored(
    stage: Container, aws: Resources, rsa_key: Any, subtests: pytest.Subtests
) -> None:
    real = real_messages(aws, rsa_key)[:2]
    stored_before: set[str] = set()
    sequence = 0
    for case, body in MALFORMED_BODIES:
        with subtests.test(case):
            valid = [renamed(message) for message in real]  # new events each time
            bad = (f"bad-{case}", body)

            answer = app.audit_writer(sqs_event([valid[0], bad, valid[1]]), None)

            assert failures(answer) == [f"bad-{case}"]
            new = set(stored_keys(aws.audit_bucket)) - stored_before
            stored_before |= new
            [key] = new
            expected = ledger_lines([valid[0][1], valid[1][1]], sequence)
            assert stored_lines(aws.audit_bucket, key) == expected
            sequence += 2

    with subtests.test("only-malformed"):
        batch = [(f"bad-{case}", body) for case, body in MALFORMED_BODIES]

        answer = app.audit_writer(sqs_event(batch), None)

        assert failures(answer) == [message_id for message_id, _ in batch]
        assert set(stored_keys(aws.audit_bucket)) == stored_before

    with subtests.test("empty-batch"):
        assert failures(app.audit_writer({"Records": []}, None)) == []
        assert set(stored_keys(aws.audit_bucket)) == stored_before


def test_every_message_is_reported_failed_when_s3_refuses(
    stage: Container,
    aws: Resources,
    idp: FakeIdp,
    rsa_key: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    messages = real_messages(aws, rsa_key)
    monkeypatch.setenv("GATEHOUSE_AUDIT_BUCKET", "gatehouse-test-no-such-bucket")
    entrypoints.use_container(Container(Settings.from_environment(), fetch_json=idp))
    batch = [*messages, ("bad-one", "not json")]

    answer = app.audit_writer(sqs_event(batch), None)

    assert sorted(failures(answer)) == sorted(message_id for message_id, _ in batch)
    assert stored_keys(aws.audit_bucket) == []
