"""An AWS route through the running stack: SigV4 upstream, the audit's ``aws`` section, CloudTrail.

The stack's emulated AWS API checks the signature with the secret STS issued;
the stack's CloudTrail emulation writes the records AWS would, into the trail
bucket in CloudTrail's layout. The correlation the query contract describes
(access key id, SourceIdentity, ``gatehouse/<request id>`` in the user agent)
must hold between the two.
"""

from __future__ import annotations

import gzip
import json
import time
from typing import TYPE_CHECKING, Any

import boto3
import pytest

from tests.e2e.support import GatewayClient, RunningStack, alice, events_of, wait_for_audit

if TYPE_CHECKING:
    from gatehouse.state import DevState

pytestmark = pytest.mark.e2e

TRAIL_DEADLINE_SECONDS = 20.0


def trail_records(stack: DevState) -> list[tuple[str, dict[str, Any]]]:
    """Every CloudTrail record in the trail bucket, with its object key."""
    s3 = boto3.client(
        "s3",
        endpoint_url=stack.aws_endpoint_url,
        region_name=stack.region,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    prefix = f"AWSLogs/{stack.account_id}/CloudTrail/{stack.region}/"
    records = []
    for page in s3.get_paginator("list_objects_v2").paginate(
        Bucket=stack.trail_bucket, Prefix=prefix
    ):
        for item in page.get("Contents", []):
            body = s3.get_object(Bucket=stack.trail_bucket, Key=item["Key"])["Body"].read()
            records += [(item["Key"], r) for r in json.loads(gzip.decompress(body))["Records"]]
    return records


def test_aws_route_is_signed_audited_and_in_the_emulated_cloudtrail(
    gateway: GatewayClient, stack: DevState, running_stack: RunningStack
) -> None:
    exchange = gateway.send(
        "GET", "/aws/orders/42?expand=lines", token=alice(stack), headers=[("User-Agent", "e2e/1")]
    )

    assert exchange.status == 200, str(exchange)
    seen = exchange.json()["aws"]
    assert seen["signature"] == "valid"
    assert seen["source_identity"] == "alice@example.com"
    assert seen["access_key_id"].startswith("ASIA")
    request_id = exchange.request_id

    deadline = time.monotonic() + TRAIL_DEADLINE_SECONDS
    while True:
        records = trail_records(stack)
        calls = [
            (key, r)
            for key, r in records
            if f"gatehouse/{request_id}" in r.get("userAgent", "")
            and r["eventName"] != "AssumeRole"
        ]
        if calls or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert len(calls) == 1, [r for _, r in records]
    key, call = calls[0]
    assert key.endswith(".json.gz")
    assert f"_CloudTrail_{stack.region}_" in key
    identity = call["userIdentity"]
    assert identity["type"] == "AssumedRole"
    assert identity["accessKeyId"] == seen["access_key_id"]
    assert identity["sessionContext"]["sourceIdentity"] == "alice@example.com"
    assert identity["arn"].startswith(f"arn:aws:sts::{stack.account_id}:assumed-role/")
    assert call["userAgent"].startswith("e2e/1 ")
    assert (call["eventSource"], call["eventType"]) == ("execute-api.amazonaws.com", "AwsApiCall")
    [assumed] = [
        r
        for _, r in records
        if r["eventName"] == "AssumeRole"
        and (r["responseElements"] or {}).get("credentials", {}).get("accessKeyId")
        == seen["access_key_id"]
    ]
    assert assumed["requestParameters"]["sourceIdentity"] == "alice@example.com"
    assert assumed["requestParameters"]["roleSessionName"] == seen["session_name"]
    assert "sessionToken" not in assumed["responseElements"]["credentials"]

    snapshot = wait_for_audit(
        running_stack.state_dir, lambda index: bool(events_of(index, request_id, "response"))
    )
    [response] = events_of(snapshot.by_request, request_id, "response")
    assert response["aws"] == {
        "caller_arn": None,
        "role_arn": seen["role_arn"],
        "session_name": seen["session_name"],
        "source_identity": "alice@example.com",
        "access_key_id": seen["access_key_id"],
        "region": stack.region,
        "service": "execute-api",
    }
