"""Functional tier: the Lambda handlers fed API Gateway events, AWS is moto in-process."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto import mock_aws

from chalicelib import entrypoints
from chalicelib.audit import AuditEmitter, SqsAuditSink
from chalicelib.config import Settings, TrustedIssuer
from chalicelib.container import Container
from chalicelib.grants import Grant, GrantDesk, GrantStore
from chalicelib.identity import Identity, JwksCache, TokenVerifier
from chalicelib.policy import parse_policy
from gatehouse.dev import moto_kms
from gatehouse.dev.backend import DemoBackend
from gatehouse.dev.bootstrap import Resources, bootstrap
from gatehouse.resources import ResourceNames
from tests.helpers import AUDIENCE, ISSUER, Clock, FakeIdp, claims, jwk, make_token

GATEWAY_ISSUER = "https://gatehouse.test.example"
# The sign-in routes and their methods, as app.py declares them (none behind the authorizer).
SIGN_IN_ROUTES = {
    "/.gatehouse/login": {"get"},
    "/.gatehouse/callback": {"get"},
    "/.gatehouse/refresh": {"get"},
    "/.gatehouse/signed-out": {"get"},
    "/.gatehouse/logout": {"get", "post"},
    "/.gatehouse/backchannel-logout": {"post"},
}

moto_kms.install()  # KMS signs MessageType=DIGEST as AWS does (the local stack's moto too)


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
        "GATEHOUSE_ASSERTION_KEY_ID": resources.assertion_key_alias,
        "GATEHOUSE_DIGEST_KEY_ID": resources.digest_key_alias,
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

    The container is warm (see ``tests/functional/test_signing_keys.py`` for a
    cold one). The only stand-in is the IdP's HTTP endpoint (``FakeIdp``); everything
    else is the real code against moto and a real loopback backend.
    """
    for name, value in environment(aws).items():
        monkeypatch.setenv(name, value)
    container = Container(Settings.from_environment(), fetch_json=idp)
    container.policy_store.publish(policy_document(backend.url), actor="test")
    # A warm container: its assertion key is certified and its issuance is
    # recorded already, so each test's queue holds its own requests' events.
    container.assertion_keys.current()
    queued_events(aws)
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


# --- grants: shared by the test_grant_*.py files -----------------------------------------------

GRANTS = {"approver_groups": ["security"], "max_duration": "4h"}
T0 = 1_800_000_000.0
OPERATOR = "arn:aws:iam::123456789012:user/ops"
NO_SUCH_GRANT = "01a00000-0000-7000-8000-000000000000"


@pytest.fixture
def people(idp: FakeIdp, rsa_key: Any) -> dict[str, Identity]:
    """Verified identities, each from a real signed token."""
    verifier = TokenVerifier(
        (TrustedIssuer(ISSUER, (AUDIENCE,)),),
        JwksCache(idp, cooldown_seconds=30, max_age_seconds=3600),
    )

    def verified(sub: str, groups: list[str], email: str | None = None) -> Identity:
        payload = claims(sub=sub, groups=groups, email=email or f"{sub}@example.com")
        return verifier.verify(make_token(rsa_key, "RS256", "rsa-1", payload))

    return {
        "erin": verified("erin", ["support"]),
        "sam": verified("sam", ["security"]),
        "tess": verified("tess", ["security", "oncall"]),
        "mallory": verified("mallory", ["support"]),
        # The requester, also an approver: still may not approve her own grant.
        "erin-approver": verified("erin", ["security"]),
        # Another account with the requester's mailbox is the same person.
        "erin-alias": verified("erin-2", ["security"], email="erin@example.com"),
        "erin-shouting": verified("erin-3", ["security"], email="ERIN@Example.COM"),
    }


@pytest.fixture
def granting(stage: Container, backend: DemoBackend) -> Container:
    """The stage with a ``grants`` block in its active policy."""
    document = policy_document(backend.url)
    document["grants"] = GRANTS
    stage.policy_store.publish(document, actor="test")
    return stage


def store(aws: Resources, dynamodb: Any = None) -> GrantStore:
    return GrantStore(
        dynamodb or boto3.client("dynamodb", region_name="us-east-1"), aws.state_table
    )


def emitter(aws: Resources, sqs: Any = None) -> AuditEmitter:
    return AuditEmitter(
        SqsAuditSink(sqs or boto3.client("sqs", region_name="us-east-1"), aws.audit_queue_url)
    )


def desk(aws: Resources, clock: Clock, grants: dict[str, Any] | None = GRANTS) -> GrantDesk:
    """The grant desk under ``clock``, for a policy with routes ``demo`` and ``ops``."""
    document = policy_document("http://127.0.0.1:9")
    document["routes"].append({**document["routes"][0], "id": "ops", "path_prefix": "/ops"})
    if grants is not None:
        document["grants"] = grants
    return GrantDesk(
        store(aws),
        parse_policy(document),
        emitter(aws),
        default_issuer=ISSUER,
        stage="test",
        operator=OPERATOR,
        clock=clock,
    )


def ask(grants: GrantDesk, who: Identity, **changes: Any) -> Grant:
    """``who`` requests GET on /api/customers/** of ``demo`` for 2 h, with ``changes``."""
    request: dict[str, Any] = {
        "routes": ["demo"],
        "actions": ["GET"],
        "paths": ["/api/customers/**"],
        "duration": "2h",
        "justification": "TICKET-9 customer escalation",
    }
    request.update(changes)
    return grants.request(who, **request)


def grant_events(aws: Resources) -> list[dict[str, Any]]:
    """The grant events on the audit queue (every queued event is consumed)."""
    return [e for e in queued_events(aws) if e["event_type"] == "grant"]
