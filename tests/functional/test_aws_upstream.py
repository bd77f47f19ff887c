"""Routes with an AWS upstream: per-principal STS sessions (moto), SigV4, the ``aws`` audit section.

The upstream is the local stack's emulated AWS API (mounted on the demo
backend), which recomputes each signature with the session's secret key. In
the local stack it learns sessions from the STS recorder; here moto's own STS
backend tells it (moto keeps the secret of every session it issued).
"""

from __future__ import annotations

import gzip
import json
import re
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, timedelta
from typing import TYPE_CHECKING, Any

import boto3
import pytest
from botocore.stub import Stubber

from chalicelib.aws import RoleRefused, RoleUnavailable
from chalicelib.aws.sessions import RoleSessions
from chalicelib.identity import Identity
from gatehouse.dev.aws_upstream import AwsUpstream
from gatehouse.dev.cloudtrail import IssuedSession, IssuedSessions, TrailWriter
from tests.functional.conftest import policy_document, queued_events
from tests.functional.test_proxy import (
    REQUEST_ID,
    authorize,
    closed_port,
    invoke,
    proxy_event,
    rebuild_container,
    response_events,
)
from tests.helpers import FakeIdp, make_token

if TYPE_CHECKING:
    from chalicelib.container import Container
    from gatehouse.dev.backend import DemoBackend
    from gatehouse.dev.bootstrap import Resources

ACCOUNT = "123456789012"
ROLE = f"arn:aws:iam::{ACCOUNT}:role/gatehouse-upstream-demo"
SECOND_REQUEST = "d7bf0bd7-8c72-22f7-0b52-04f9efcafe00"


class MotoIssuedSessions(IssuedSessions):
    """Sessions as moto's STS backend knows them (stands in for the local stack's recorder)."""

    def get(self, access_key_id: str) -> IssuedSession | None:
        from moto.sts.models import sts_backends

        role = sts_backends[ACCOUNT]["aws"].get_assumed_role_from_access_key(access_key_id)
        if role is None:
            return None
        expires = role.expiration.replace(tzinfo=UTC)
        return IssuedSession(
            access_key_id=role.access_key_id,
            secret_access_key=role.secret_access_key,
            session_token=role.session_token,
            role_arn=role.role_arn,
            assumed_role_id=role.user_id,
            assumed_role_arn=role.arn,
            session_name=role.session_name,
            source_identity=None,  # moto does not keep it; the recorder does
            created=expires - timedelta(seconds=900),
            expires=expires,
        )


@pytest.fixture
def token(rsa_key: Any) -> str:
    return make_token(rsa_key, "RS256", "rsa-1")


@pytest.fixture
def trail(aws: Resources) -> TrailWriter:
    s3 = boto3.client("s3", region_name="us-east-1")
    return TrailWriter(lambda: s3, aws.trail_bucket, ACCOUNT)


@pytest.fixture
def aws_api(backend: DemoBackend, trail: TrailWriter) -> AwsUpstream:
    api = AwsUpstream(MotoIssuedSessions(), trail, region="us-east-1")
    backend.aws_upstream = api
    return api


@pytest.fixture
def assume_calls(stage: Container) -> list[dict[str, Any]]:
    """The parameters of every AssumeRole call the stage's STS client makes."""
    calls: list[dict[str, Any]] = []

    def capture(params: dict[str, Any], **_: Any) -> None:
        calls.append(dict(params))

    stage.clients.sts.meta.events.register("provide-client-params.sts.AssumeRole", capture)
    return calls


def publish_aws_route(stage: Container, backend: DemoBackend, **aws: str) -> None:
    document = policy_document(backend.url)
    document["routes"].append(
        {
            "id": "orders",
            "path_prefix": "/aws",
            "upstream": backend.url + "/aws-upstream",
            "audience": "orders",
            "aws": {"role_arn": ROLE, "service": "execute-api", "region": "us-east-1", **aws},
        }
    )
    document["rules"].append(
        {
            "id": "eng-orders",
            "effect": "allow",
            "routes": ["orders"],
            "subjects": {"groups": ["engineering"]},
            "actions": ["GET", "POST"],
            "paths": ["/aws/**"],
        }
    )
    stage.policy_store.publish(document, actor="test")


def moto_secrets() -> set[str]:
    from moto.sts.models import sts_backends

    roles = sts_backends[ACCOUNT]["aws"].assumed_roles
    return {r.secret_access_key for r in roles} | {r.session_token for r in roles}


def send(token: str, request_id: str = REQUEST_ID, path: str = "/aws/orders/7") -> Any:
    event = proxy_event(token, path=path, request_id=request_id, query={"expand": ["lines"]})
    authorize(event)
    return invoke(event)


def test_request_is_signed_with_the_principals_session_and_audited(
    stage: Container,
    aws: Resources,
    backend: DemoBackend,
    aws_api: AwsUpstream,
    trail: TrailWriter,
    token: str,
    assume_calls: list[dict[str, Any]],
) -> None:
    publish_aws_route(stage, backend)

    reply = send(token)

    assert reply.status == 200, reply.body
    seen = reply.json()
    assert seen["aws"]["signature"] == "valid"
    assert seen["path"] == "/aws-upstream/aws/orders/7"
    [call] = assume_calls
    assert call == {
        "RoleArn": ROLE,
        "RoleSessionName": f"gh-{REQUEST_ID}",
        "SourceIdentity": "alice@example.com",
        "Tags": [
            {"Key": "principal", "Value": "alice@example.com"},
            {"Key": "groups", "Value": "engineering"},
        ],
        "DurationSeconds": 900,
    }
    agents = [v for k, vs in seen["headers"].items() if k.lower() == "user-agent" for v in vs]
    assert len(agents) == 1
    assert agents[0].endswith(f"gatehouse/{REQUEST_ID}")
    assert not [k for k in seen["headers"] if k.lower() == "cookie"]
    events = queued_events(aws)
    [response] = response_events(events)
    assert response["aws"] == {
        "caller_arn": None,
        "role_arn": ROLE,
        "session_name": f"gh-{REQUEST_ID}",
        "source_identity": "alice@example.com",
        "access_key_id": seen["aws"]["access_key_id"],
        "region": "us-east-1",
        "service": "execute-api",
    }
    assert response["aws"]["access_key_id"].startswith("ASIA")
    assert response["outcome"]["status"] == 200
    text = json.dumps(events)
    secrets = moto_secrets()
    assert secrets
    assert not [s for s in secrets if s in text]

    [key] = trail.flush()
    assert re.fullmatch(
        rf"AWSLogs/{ACCOUNT}/CloudTrail/us-east-1/\d{{4}}/\d{{2}}/\d{{2}}/"
        rf"{ACCOUNT}_CloudTrail_us-east-1_\d{{8}}T\d{{4}}Z_[0-9A-F]{{16}}\.json\.gz",
        key,
    )
    stored = boto3.client("s3", region_name="us-east-1").get_object(
        Bucket=aws.trail_bucket, Key=key
    )
    [record] = json.loads(gzip.decompress(stored["Body"].read()))["Records"]
    identity = record["userIdentity"]
    assert identity["type"] == "AssumedRole"
    assert identity["accessKeyId"] == response["aws"]["access_key_id"]
    assert identity["arn"] == (
        f"arn:aws:sts::{ACCOUNT}:assumed-role/gatehouse-upstream-demo/gh-{REQUEST_ID}"
    )
    assert identity["sessionContext"]["sessionIssuer"]["arn"] == ROLE
    assert f"gatehouse/{REQUEST_ID}" in record["userAgent"]
    assert (record["eventSource"], record["eventType"]) == (
        "execute-api.amazonaws.com",
        "AwsApiCall",
    )
    assert not [s for s in secrets if s in json.dumps(record)]


def test_the_session_is_reused_across_requests_of_the_principal(
    stage: Container,
    aws: Resources,
    backend: DemoBackend,
    aws_api: AwsUpstream,
    token: str,
    rsa_key: Any,
    assume_calls: list[dict[str, Any]],
) -> None:
    publish_aws_route(stage, backend)

    first, second = send(token), send(token, SECOND_REQUEST)
    other = make_token(rsa_key, "RS256", "rsa-1")  # same principal, another token
    third = send(other, "e8c01ce8-9d83-33a8-1c63-15fa00dbef11")

    assert [r.status for r in (first, second, third)] == [200, 200, 200]
    assert len(assume_calls) == 1
    sections = [e["aws"] for e in response_events(queued_events(aws))]
    assert {s["session_name"] for s in sections} == {f"gh-{REQUEST_ID}"}
    assert len({s["access_key_id"] for s in sections}) == 1


def test_sts_unreachable_fails_closed_with_503_and_is_audited(
    stage: Container,
    aws: Resources,
    backend: DemoBackend,
    aws_api: AwsUpstream,
    idp: FakeIdp,
    token: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    publish_aws_route(stage, backend)
    broken = rebuild_container(
        idp, monkeypatch, GATEHOUSE_STS_ENDPOINT_URL=f"http://127.0.0.1:{closed_port()}"
    )
    try:
        reply = send(token)
    finally:
        if "upstream" in vars(broken):
            broken.upstream.close()

    assert reply.status == 503
    assert reply.json() == {"message": "AWS credentials unavailable", "request_id": REQUEST_ID}
    assert aws_api.verified_requests == 0
    assert backend.requests_seen == 0
    [response] = response_events(queued_events(aws))
    assert response["outcome"]["status"] == 503
    assert "sts:AssumeRole" in response["outcome"]["error"]
    assert response["aws"] == {
        "caller_arn": None,
        "role_arn": ROLE,
        "session_name": None,
        "source_identity": None,
        "access_key_id": None,
        "region": "us-east-1",
        "service": "execute-api",
    }


def test_a_signature_the_upstream_rejects_reaches_the_client_as_its_403(
    stage: Container, aws: Resources, backend: DemoBackend, aws_api: AwsUpstream, token: str
) -> None:
    publish_aws_route(stage, backend, region="eu-west-1")  # the API is in us-east-1

    reply = send(token)

    assert reply.status == 403
    assert "credential scope" in reply.json()["message"]
    [response] = response_events(queued_events(aws))
    assert response["outcome"]["status"] == 403
    assert response["aws"]["region"] == "eu-west-1"
    assert response["aws"]["access_key_id"].startswith("ASIA")


# --- the provider on its own -----------------------------------------------------------------


def alice(groups: frozenset[str] = frozenset({"engineering"}), subject: str = "alice") -> Identity:
    return Identity(
        issuer="https://idp.test.example",
        subject=subject,
        audience="gatehouse",
        expires_at=2_000_000_000,
        email=f"{subject}@example.com",
        groups=groups,
    )


class Clock:
    def __init__(self) -> None:
        self.now = 1_700_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def sts(aws: Resources) -> Any:
    return boto3.client("sts", region_name="us-east-1")


def test_sessions_are_cached_until_a_minute_before_expiry(sts: Any) -> None:
    clock = Clock()
    sessions = RoleSessions(lambda: sts, clock=clock)
    first = sessions.session_for(ROLE, alice(), "req-1")
    clock.now = first.expires_at - 61

    assert sessions.session_for(ROLE, alice(), "req-2") is first

    clock.now = first.expires_at - 59
    renewed = sessions.session_for(ROLE, alice(), "req-3")

    assert renewed.access_key_id != first.access_key_id
    assert renewed.session_name == "gh-req-3"
    clock.now = renewed.expires_at - 600
    assert sessions.session_for(ROLE, alice(), "req-4") is renewed


def test_sessions_are_per_role_principal_and_groups(sts: Any) -> None:
    sessions = RoleSessions(lambda: sts)
    base = sessions.session_for(ROLE, alice(), "r1")
    keys = {
        base.access_key_id,
        sessions.session_for(ROLE, alice(subject="bob"), "r2").access_key_id,
        sessions.session_for(ROLE, alice(frozenset({"engineering", "oncall"})), "r3").access_key_id,
        sessions.session_for(ROLE + "-other", alice(), "r4").access_key_id,
    }

    assert len(keys) == 4
    assert sessions.session_for(ROLE, alice(), "r5") is base


def test_the_oldest_sessions_are_dropped_beyond_the_limit(sts: Any) -> None:
    sessions = RoleSessions(lambda: sts, max_sessions=2)
    first = sessions.session_for(ROLE, alice(subject="a"), "r1")
    sessions.session_for(ROLE, alice(subject="b"), "r2")
    sessions.session_for(ROLE, alice(subject="c"), "r3")

    assert sessions.session_for(ROLE, alice(subject="a"), "r4") is not first


@pytest.mark.parametrize(
    ("code", "status", "failure"),
    [
        ("AccessDenied", 403, RoleRefused),
        ("RegionDisabledException", 403, RoleRefused),
        ("Throttling", 400, RoleUnavailable),
        ("InternalFailure", 500, RoleUnavailable),
    ],
)
def test_sts_errors_fail_closed_with_the_right_status(
    sts: Any, code: str, status: int, failure: type[Exception]
) -> None:
    sessions = RoleSessions(lambda: sts)
    with Stubber(sts) as stub:
        stub.add_client_error(
            "assume_role", service_error_code=code, service_message="nope", http_status_code=status
        )
        with pytest.raises(failure) as caught:
            sessions.session_for(ROLE, alice(), "r1")

    assert code in str(caught.value)
    assert ROLE in str(caught.value)
    assert caught.value.status == (502 if failure is RoleRefused else 503)  # type: ignore[attr-defined]


class CountingSts:
    """moto's STS, counting AssumeRole calls; each waits ``pause`` s (a round trip) first."""

    def __init__(self, sts: Any, pause: float = 0.0) -> None:
        self._sts = sts
        self._pause = pause
        self.calls = 0
        self._lock = threading.Lock()

    def assume_role(self, **kwargs: Any) -> Any:
        with self._lock:
            self.calls += 1
        time.sleep(self._pause)
        return self._sts.assume_role(**kwargs)


def test_concurrent_first_requests_of_a_principal_assume_the_role_once(sts: Any) -> None:
    counting = CountingSts(sts, pause=0.2)
    sessions = RoleSessions(lambda: counting)

    with ThreadPoolExecutor(max_workers=8) as pool:
        got = list(pool.map(lambda n: sessions.session_for(ROLE, alice(), f"r{n}"), range(8)))

    assert counting.calls == 1
    assert len({session.access_key_id for session in got}) == 1
    assert sessions.session_for(ROLE, alice(subject="bob"), "r9") is not got[0]
    assert counting.calls == 2


def test_a_refused_principal_is_not_asked_for_again_for_a_while(sts: Any) -> None:
    from chalicelib.aws.sessions import REFUSAL_CACHE_SECONDS

    clock = Clock()
    sessions = RoleSessions(lambda: sts, clock=clock)
    with Stubber(sts) as stub:
        stub.add_client_error(
            "assume_role", service_error_code="AccessDenied", http_status_code=403
        )
        with pytest.raises(RoleRefused, match="AccessDenied"):
            sessions.session_for(ROLE, alice(), "r1")
        # No further answer is queued: a second STS call would fail the Stubber.
        for n in range(5):
            with pytest.raises(RoleRefused, match="AccessDenied"):
                sessions.session_for(ROLE, alice(), f"r{n + 2}")
        stub.assert_no_pending_responses()

    clock.now += REFUSAL_CACHE_SECONDS + 1
    assert sessions.session_for(ROLE, alice(), "r9").session_name == "gh-r9"


def test_a_principal_whose_groups_do_not_fit_a_tag_gets_no_session(sts: Any) -> None:
    from chalicelib.aws import SessionTagTooLong

    counting = CountingSts(sts)
    sessions = RoleSessions(lambda: counting)
    many = frozenset(f"team-{index:03d}" for index in range(40))

    with pytest.raises(SessionTagTooLong) as refused:
        sessions.session_for(ROLE, alice(many), "r1")

    assert refused.value.status == 502
    assert counting.calls == 0
