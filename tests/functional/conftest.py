"""Functional tier: the Lambda handlers fed API Gateway events, AWS is moto in-process."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto import mock_aws

from chalicelib import entrypoints
from chalicelib.config import Settings
from chalicelib.container import Container
from gatehouse.dev.backend import DemoBackend
from gatehouse.dev.bootstrap import Resources, bootstrap
from gatehouse.resources import ResourceNames
from tests.helpers import AUDIENCE, ISSUER, FakeIdp, jwk

GATEWAY_ISSUER = "https://gatehouse.test.example"


@pytest.fixture
def aws() -> Iterator[Resources]:
    """moto (in-process) with every resource the app needs."""
    with mock_aws():
        names = ResourceNames("test", "123456789012", "us-east-1")
        yield bootstrap(lambda service: boto3.client(service, region_name="us-east-1"), names)


@pytest.fixture
def backend() -> Iterator[DemoBackend]:
    """The demo backend on a real loopback socket (it does not verify assertions)."""
    server = DemoBackend()
    server.start()
    yield server
    server.stop()


@pytest.fixture
def idp(rsa_key: Any, ec_key: Any) -> FakeIdp:
    """An issuer publishing an RS256 key ``rsa-1`` and an ES256 key ``ec-1``."""
    return FakeIdp(
        [jwk(rsa_key.public_key(), "rsa-1", "RS256"), jwk(ec_key.public_key(), "ec-1", "ES256")]
    )


def policy_document(upstream: str) -> dict[str, Any]:
    """Engineering may read and write /api/**; contractors never reach billing."""
    return {
        "version": 1,
        "routes": [
            {
                "id": "demo",
                "host": "*",
                "path_prefix": "/",
                "upstream": upstream,
                "audience": "demo",
            }
        ],
        "rules": [
            {
                "id": "eng-read",
                "effect": "allow",
                "routes": ["demo"],
                "subjects": {"groups": ["engineering"]},
                "actions": ["GET", "HEAD", "OPTIONS"],
                "paths": ["/api/**"],
            },
            {
                "id": "eng-write",
                "effect": "allow",
                "routes": ["demo"],
                "subjects": {"groups": ["engineering"]},
                "actions": ["POST", "PUT", "PATCH", "DELETE"],
                "paths": ["/api/**"],
            },
            {
                "id": "no-billing-for-contractors",
                "effect": "deny",
                "routes": ["demo"],
                "subjects": {"groups": ["contractors"]},
                "actions": ["*"],
                "paths": ["/api/billing/**"],
            },
        ],
    }


def environment(resources: Resources, **overrides: str) -> dict[str, str]:
    """The GATEHOUSE_* variables a deployed stage would have."""
    values = {
        "AWS_REGION": "us-east-1",
        "GATEHOUSE_STAGE": "test",
        "GATEHOUSE_STATE_TABLE": resources.state_table,
        "GATEHOUSE_AUDIT_BUCKET": resources.audit_bucket,
        "GATEHOUSE_AUDIT_QUEUE_URL": resources.audit_queue_url,
        "GATEHOUSE_ASSERTION_KEY_ID": resources.signing_key_alias,
        "GATEHOUSE_GATEWAY_ISSUER": GATEWAY_ISSUER,
        "GATEHOUSE_TRUSTED_ISSUERS": json.dumps([{"issuer": ISSUER, "audiences": [AUDIENCE]}]),
        "GATEHOUSE_POLICY_REFRESH_SECONDS": "0",
    }
    values.update(overrides)
    return values


@pytest.fixture
def stage(
    aws: Resources, backend: DemoBackend, idp: FakeIdp, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Container]:
    """A configured stage: environment set, policy active, container installed for the handlers.

    The only stand-in is the IdP's HTTP endpoint (``FakeIdp``); everything
    else is the real code against moto and a real loopback backend.
    """
    for name, value in environment(aws).items():
        monkeypatch.setenv(name, value)
    container = Container(Settings.from_environment(), fetch_json=idp)
    container.policy_store.publish(policy_document(backend.url), actor="test")
    entrypoints.use_container(container)
    yield container
    entrypoints.use_container(None)
    if "upstream" in vars(container):  # built: close its pooled keep-alive sockets
        container.upstream.close()


def queued_events(resources: Resources) -> list[dict[str, Any]]:
    """Every audit event currently on the queue (received and deleted)."""
    sqs = boto3.client("sqs", region_name="us-east-1")
    events = []
    while True:
        messages = sqs.receive_message(
            QueueUrl=resources.audit_queue_url, MaxNumberOfMessages=10
        ).get("Messages", [])
        if not messages:
            return events
        for message in messages:
            events.append(json.loads(message["Body"]))
            sqs.delete_message(
                QueueUrl=resources.audit_queue_url, ReceiptHandle=message["ReceiptHandle"]
            )
