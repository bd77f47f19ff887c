"""The REQUEST authorizer Lambda (``app.gatehouse_authorizer``) fed API Gateway events.

Everything is real except AWS (moto in-process) and the IdP's HTTP endpoint
(``FakeIdp``): tokens are signed with real keys, the policy is read from
DynamoDB, audit events go through SQS and are read back from the queue.
"""

from __future__ import annotations

import fnmatch
import json
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import boto3
import pytest

import app
from chalicelib import entrypoints
from chalicelib.authorize import AuthorizerFailure
from chalicelib.config import Settings
from chalicelib.container import Container
from gatehouse.dev.bootstrap import Resources
from tests.functional.conftest import queued_events
from tests.helpers import AUDIENCE, ISSUER, FakeIdp, claims, load_event, make_token

API = "arn:aws:execute-api:us-east-1:123456789012:a1b2c3d4e5/dev"
REQUEST_ID = "c6af9ac6-7b61-11e6-9a41-93e8deadbeef"
TRACE_ID = "Root=1-6748a3b1-1f2e3d4c5b6a79880a1b2c3d"
ALL_METHODS = ("GET", "HEAD", "OPTIONS", "POST", "PUT", "PATCH", "DELETE")
UUID7 = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}")


@dataclass(frozen=True)
class LambdaContext:
    """The one attribute of the Lambda context object the handlers read."""

    aws_request_id: str


def authorizer_event(
    authorization: list[str] | None, *, method: str = "GET", path: str = "/api/projects/42"
) -> dict[str, Any]:
    """The REQUEST authorizer fixture for ``method path`` with these Authorization values."""
    event = load_event("authorizer_request")
    event["httpMethod"] = event["requestContext"]["httpMethod"] = method
    event["path"] = path
    event["requestContext"]["path"] = f"/dev{path}"
    event["pathParameters"] = {"proxy": path.lstrip("/")}
    event["methodArn"] = f"{API}/{method}{path}"
    del event["headers"]["Authorization"]
    del event["multiValueHeaders"]["Authorization"]
    if authorization:
        event["headers"]["Authorization"] = authorization[-1]
        event["multiValueHeaders"]["Authorization"] = list(authorization)
    return event


def rebuild_container(idp: FakeIdp, monkeypatch: pytest.MonkeyPatch, **env: str) -> Container:
    """Reconfigure the stage (environment only) and install a freshly built container."""
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    container = Container(Settings.from_environment(), fetch_json=idp)
    entrypoints.use_container(container)
    return container


def statement(effect: str, resources: list[str]) -> dict[str, Any]:
    return {"Action": "execute-api:Invoke", "Effect": effect, "Resource": sorted(resources)}


def policy(*statements: dict[str, Any]) -> dict[str, Any]:
    return {"Version": "2012-10-17", "Statement": list(statements)}


def broad(methods: tuple[str, ...], *paths: str) -> list[str]:
    return [f"{API}/{method}/{path}" for method in methods for path in paths]


def logged_text(caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]) -> str:
    captured = capsys.readouterr()
    return caplog.text + captured.out + captured.err


# --- allow -----------------------------------------------------------------------------------


def test_allow_is_exact_for_the_method_arn_and_carries_the_principal(
    stage: Container, aws: Resources, rsa_key: Any
) -> None:
    payload = claims(amr=["pwd", "mfa"], jti="token-id-1")
    token = make_token(rsa_key, "RS256", "rsa-1", payload)
    event = authorizer_event([f"Bearer {token}"])

    answer = app.gatehouse_authorizer(event, LambdaContext("lambda-auth-1"))

    assert answer["principalId"] == "alice"
    # TTL 0: the answer names exactly this request's method ARN, nothing broader.
    assert answer["policyDocument"] == policy(statement("Allow", [event["methodArn"]]))
    context = answer["context"]
    # API Gateway only accepts primitive context values.
    assert all(isinstance(value, str | int | bool) for value in context.values())
    assert context["sub"] == "alice"
    assert context["email"] == "alice@example.com"
    assert context["groups"] == "engineering"
    assert UUID7.fullmatch(context["decision_id"])
    assert context["decided_for"] == REQUEST_ID
    assert context["policy_version"] == 1
    assert context["route_id"] == "demo"
    principal = json.loads(context["principal"])
    assert principal["iss"] == ISSUER
    assert principal["sub"] == "alice"
    assert principal["aud"] == AUDIENCE
    assert principal["exp"] == payload["exp"]
    assert principal["email"] == "alice@example.com"
    assert principal["groups"] == ["engineering"]
    assert principal["amr"] == ["pwd", "mfa"]
    assert principal["jti"] == "token-id-1"
    assert token not in json.dumps(answer)


def test_allow_queues_one_complete_decision_event(
    stage: Container,
    aws: Resources,
    backend: Any,
    rsa_key: Any,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
) -> None:
    token = make_token(rsa_key, "RS256", "rsa-1")
    event = authorizer_event([f"Bearer {token}"])

    answer = app.gatehouse_authorizer(event, LambdaContext("lambda-auth-1"))

    events = queued_events(aws)
    assert len(events) == 1
    decision = events[0]
    active = stage.policy_store.load_active()
    assert active is not None
    decision_id = answer["context"]["decision_id"]
    assert decision["schema_version"] == 1
    assert decision["event_type"] == "decision"
    assert decision["event_id"] == decision_id
    assert decision["stage"] == "dev"
    assert decision["request"] == {
        "id": REQUEST_ID,
        "extended_id": "Cb9Xq0kVoAMEbVw=",
        "lambda_request_id": "lambda-auth-1",
        "trace_id": TRACE_ID,
        "decision_id": decision_id,
    }
    assert decision["principal"]["issuer"] == ISSUER
    assert decision["principal"]["subject"] == "alice"
    assert decision["principal"]["email"] == "alice@example.com"
    assert decision["principal"]["groups"] == ["engineering"]
    assert decision["source"] == {"ip": "203.0.113.7", "user_agent": "curl/8.5.0"}
    assert decision["resource"] == {
        "host": "gatehouse.example.com",
        "method": "GET",
        "path": "/api/projects/42",
        "query": "tag=red&tag=blue&access_token=REDACTED",
        "route_id": "demo",
        "upstream": backend.url,
        "sensitive": False,
    }
    assert decision["action"] == "read"
    assert decision["decision"] == {
        "outcome": "allow",
        "reasons": ["allow_rule_matched"],
        "matched_rules": ["eng-read"],
        "policy_version": 1,
        "policy_checksum": active.checksum,
        "decided_by": "authorizer",
        "cached": False,
        "detail": None,
    }
    assert decision["outcome"] is None
    serialized = json.dumps(events)
    assert "should-be-redacted" not in serialized
    assert token not in serialized
    assert token not in logged_text(caplog, capsys)


# --- deny by policy --------------------------------------------------------------------------

POLICY_DENIALS = [
    pytest.param(
        ["engineering", "contractors"],
        "GET",
        "/api/billing/7",
        "deny_rule_matched",
        ["no-billing-for-contractors"],
        id="deny-rule-beats-allow",
    ),
    pytest.param(["sales"], "GET", "/api/projects/42", "no_matching_rule", [], id="no-rule-for-group"),
    pytest.param(["engineering"], "DELETE", "/admin/users", "no_matching_rule", [], id="outside-paths"),
]


@pytest.mark.parametrize(("groups", "method", "path", "reason", "matched"), POLICY_DENIALS)
def test_policy_denial_is_an_explicit_deny_for_the_method_arn(
    stage: Container,
    aws: Resources,
    rsa_key: Any,
    groups: list[str],
    method: str,
    path: str,
    reason: str,
    matched: list[str],
) -> None:
    token = make_token(rsa_key, "RS256", "rsa-1", claims(groups=groups))
    event = authorizer_event([f"Bearer {token}"], method=method, path=path)

    answer = app.gatehouse_authorizer(event, LambdaContext("lambda-auth-2"))

    assert answer["principalId"] == "alice"
    assert answer["policyDocument"] == policy(statement("Deny", [event["methodArn"]]))
    events = queued_events(aws)
    assert len(events) == 1
    decision = events[0]
    assert decision["event_type"] == "decision"
    assert decision["decision"]["outcome"] == "deny"
    assert decision["decision"]["reasons"] == [reason]
    assert decision["decision"]["matched_rules"] == matched
    assert decision["decision"]["policy_version"] == 1
    assert decision["principal"]["subject"] == "alice"
    assert decision["principal"]["groups"] == sorted(groups)
    assert decision["resource"]["method"] == method
    assert decision["resource"]["path"] == path
    assert token not in json.dumps(events)


# --- credential failures ---------------------------------------------------------------------

Credentials = Callable[[Any, Any], list[str] | None]


def _valid(rsa_key: Any, other_key: Any) -> list[str]:
    return [f"Bearer {make_token(rsa_key, 'RS256', 'rsa-1')}"]


CREDENTIAL_FAILURES: list[Any] = [
    pytest.param(lambda key, other: None, "missing_credentials", id="no-header"),
    pytest.param(lambda key, other: ["Basic YWxpY2U6czNjcjN0"], "missing_credentials", id="basic"),
    pytest.param(
        lambda key, other: ["Bearer eyJhbGciOiJSUzI1NiJ9.bm90LWEtand0LWF0LWFsbA"],
        "malformed_token",
        id="malformed",
    ),
    pytest.param(
        lambda key, other: _valid(key, other) + _valid(other, key),
        "malformed_token",
        id="two-authorization-headers",
    ),
    pytest.param(
        lambda key, other: [
            "Bearer "
            + make_token(
                key,
                "RS256",
                "rsa-1",
                claims(exp=int(time.time()) - 120, iat=int(time.time()) - 900, nbf=None),
            )
        ],
        "token_expired",
        id="expired",
    ),
    pytest.param(
        lambda key, other: ["Bearer " + make_token(key, "RS256", "rsa-unknown")],
        "unknown_key",
        id="unknown-kid",
    ),
    pytest.param(
        lambda key, other: ["Bearer " + make_token(key, "RS256", "rsa-1", claims(aud="other-app"))],
        "wrong_audience",
        id="wrong-audience",
    ),
    pytest.param(
        lambda key, other: ["Bearer " + make_token(other, "RS256", "rsa-1")],
        "bad_signature",
        id="signed-by-another-key",
    ),
    pytest.param(
        lambda key, other: ["Bearer " + make_token(None, "none", "rsa-1")],
        "unsupported_algorithm",
        id="alg-none",
    ),
]


@pytest.mark.parametrize(("credentials", "reason"), CREDENTIAL_FAILURES)
def test_credential_failure_is_unauthorized_and_audited_without_the_secret(
    stage: Container,
    aws: Resources,
    rsa_key: Any,
    other_rsa_key: Any,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
    credentials: Credentials,
    reason: str,
) -> None:
    authorization = credentials(rsa_key, other_rsa_key)
    event = authorizer_event(authorization)

    with pytest.raises(Exception) as raised:  # noqa: PT011 (the message is the contract)
        app.gatehouse_authorizer(event, LambdaContext("lambda-auth-3"))

    # API Gateway answers 401 only for this exact message.
    assert str(raised.value) == "Unauthorized"
    events = queued_events(aws)
    assert len(events) == 1
    decision = events[0]
    assert decision["event_type"] == "decision"
    assert decision["decision"]["outcome"] == "deny"
    assert decision["decision"]["reasons"] == [reason]
    assert decision["principal"] is None
    assert decision["request"]["id"] == REQUEST_ID
    assert decision["request"]["lambda_request_id"] == "lambda-auth-3"
    assert decision["source"]["ip"] == "203.0.113.7"
    secrets = [value.split(" ", 1)[1] for value in authorization or ()]
    serialized = json.dumps(events)
    logs = logged_text(caplog, capsys)
    for secret in secrets:
        assert secret not in serialized
        assert secret not in logs


# --- fail closed -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("with_token", "outcome", "reasons"),
    [
        pytest.param(True, "allow", ["allow_rule_matched"], id="valid-token"),
        pytest.param(False, "deny", ["missing_credentials"], id="no-credentials"),
    ],
)
def test_unauditable_decision_fails_closed_and_is_logged_without_the_token(
    stage: Container,
    aws: Resources,
    rsa_key: Any,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
    with_token: bool,
    outcome: str,
    reasons: list[str],
) -> None:
    token = make_token(rsa_key, "RS256", "rsa-1")
    event = authorizer_event([f"Bearer {token}"] if with_token else None)
    boto3.client("sqs", region_name="us-east-1").delete_queue(QueueUrl=aws.audit_queue_url)

    with pytest.raises(AuthorizerFailure) as raised:
        app.gatehouse_authorizer(event, LambdaContext("lambda-auth-fc"))

    # Not "Unauthorized": API Gateway maps any other failure to AUTHORIZER_FAILURE (503).
    assert str(raised.value) != "Unauthorized"
    logs = logged_text(caplog, capsys)
    assert token not in logs
    assert REQUEST_ID in logs
    logged = [
        json.loads(record.getMessage().split("event follows: ", 1)[1])
        for record in caplog.records
        if "event follows: " in record.getMessage()
    ]
    assert len(logged) == 1
    assert logged[0]["event_type"] == "decision"
    assert logged[0]["request"]["id"] == REQUEST_ID
    assert logged[0]["request"]["lambda_request_id"] == "lambda-auth-fc"
    assert logged[0]["decision"]["outcome"] == outcome
    assert logged[0]["decision"]["reasons"] == reasons
    assert logged[0]["event_id"] in logs


def _delete_active_pointer(dynamodb: Any, table: str) -> None:
    dynamodb.delete_item(TableName=table, Key={"pk": {"S": "POLICY"}, "sk": {"S": "ACTIVE"}})


def _corrupt_active_pointer(dynamodb: Any, table: str) -> None:
    dynamodb.update_item(
        TableName=table,
        Key={"pk": {"S": "POLICY"}, "sk": {"S": "ACTIVE"}},
        UpdateExpression="SET #d = :d",
        ExpressionAttributeNames={"#d": "document"},
        ExpressionAttributeValues={":d": {"S": '{"version": 1, "routes": ['}},
    )


def _delete_table(dynamodb: Any, table: str) -> None:
    dynamodb.delete_table(TableName=table)


@pytest.mark.parametrize(
    "break_policy",
    [
        pytest.param(_delete_active_pointer, id="no-active-policy"),
        pytest.param(_corrupt_active_pointer, id="corrupt-active-policy"),
        pytest.param(_delete_table, id="table-gone"),
    ],
)
def test_policy_unavailable_fails_closed_with_an_error_event(
    stage: Container,
    aws: Resources,
    rsa_key: Any,
    break_policy: Callable[[Any, str], None],
) -> None:
    break_policy(boto3.client("dynamodb", region_name="us-east-1"), aws.policy_table)
    token = make_token(rsa_key, "RS256", "rsa-1")
    event = authorizer_event([f"Bearer {token}"])

    with pytest.raises(AuthorizerFailure) as raised:
        app.gatehouse_authorizer(event, LambdaContext("lambda-auth-pu"))

    assert str(raised.value) != "Unauthorized"
    events = queued_events(aws)
    assert len(events) == 1
    decision = events[0]
    assert decision["decision"]["outcome"] == "error"
    assert decision["decision"]["reasons"] == ["policy_unavailable"]
    assert decision["principal"]["subject"] == "alice"
    assert decision["request"]["id"] == REQUEST_ID


# --- result cache (TTL > 0) ------------------------------------------------------------------

ENGINEERING_ALLOW = broad(ALL_METHODS, "api", "api/*")


@pytest.mark.parametrize(
    ("groups", "method", "path", "expected"),
    [
        pytest.param(
            ["engineering"],
            "GET",
            "/api/projects/42",
            lambda arn: policy(statement("Allow", [*ENGINEERING_ALLOW, arn])),
            id="allowed",
        ),
        pytest.param(
            ["engineering", "contractors"],
            "GET",
            "/api/billing/7",
            lambda arn: policy(
                statement("Deny", [*broad(("*",), "api/billing", "api/billing/*"), arn]),
                statement("Allow", ENGINEERING_ALLOW),
            ),
            id="denied-by-rule",
        ),
        pytest.param(
            ["sales"],
            "GET",
            "/api/projects/42",
            lambda arn: policy(statement("Deny", [arn])),
            id="denied-nothing-allowed",
        ),
    ],
)
def test_cached_answer_describes_the_whole_api(
    stage: Container,
    aws: Resources,
    idp: FakeIdp,
    rsa_key: Any,
    monkeypatch: pytest.MonkeyPatch,
    groups: list[str],
    method: str,
    path: str,
    expected: Callable[[str], dict[str, Any]],
) -> None:
    rebuild_container(idp, monkeypatch, GATEHOUSE_AUTHORIZER_TTL_SECONDS="300")
    token = make_token(rsa_key, "RS256", "rsa-1", claims(groups=groups))
    event = authorizer_event([f"Bearer {token}"], method=method, path=path)

    answer = app.gatehouse_authorizer(event, LambdaContext("lambda-auth-ttl"))

    assert answer["policyDocument"] == expected(event["methodArn"])
    assert len(queued_events(aws)) == 1


def _iam_effect(document: dict[str, Any], arn: str) -> str:
    """How IAM evaluates ``arn`` against an authorizer policy (explicit deny wins)."""
    effects = {
        item["Effect"]
        for item in document["Statement"]
        if any(fnmatch.fnmatchcase(arn, pattern) for pattern in item["Resource"])
    }
    if "Deny" in effects:
        return "Deny"
    return "Allow" if "Allow" in effects else "ImplicitDeny"


@pytest.mark.parametrize(
    ("groups", "requests"),
    [
        pytest.param(
            ["engineering"],
            {
                ("GET", "/api/projects/42"): "Allow",
                ("POST", "/api/projects"): "Allow",
                ("DELETE", "/api/a/b/c"): "Allow",
                ("HEAD", "/api"): "Allow",
                ("GET", "/admin"): "ImplicitDeny",
                ("GET", "/apix"): "ImplicitDeny",
            },
            id="engineer",
        ),
        pytest.param(
            ["engineering", "contractors"],
            {
                ("PUT", "/api/projects/1"): "Allow",
                ("GET", "/api/billing"): "Deny",
                ("POST", "/api/billing/invoices/9"): "Deny",
                ("GET", "/api/billingx"): "Allow",
            },
            id="contractor",
        ),
    ],
)
def test_cached_answer_gives_the_policy_decision_for_other_routes(
    stage: Container,
    aws: Resources,
    idp: FakeIdp,
    rsa_key: Any,
    monkeypatch: pytest.MonkeyPatch,
    groups: list[str],
    requests: dict[tuple[str, str], str],
) -> None:
    """API Gateway reuses the answer for the whole API: it must agree with the policy."""
    rebuild_container(idp, monkeypatch, GATEHOUSE_AUTHORIZER_TTL_SECONDS="300")
    token = make_token(rsa_key, "RS256", "rsa-1", claims(groups=groups))
    answer = app.gatehouse_authorizer(
        authorizer_event([f"Bearer {token}"]), LambdaContext("lambda-auth-ttl")
    )

    effects = {
        (method, path): _iam_effect(answer["policyDocument"], f"{API}/{method}{path}")
        for method, path in requests
    }
    assert effects == requests


# --- the REQUEST adapter hands over the whole event --------------------------------------------


def test_handler_sees_headers_source_ip_and_request_id_of_the_event(
    stage: Container, aws: Resources, rsa_key: Any
) -> None:
    """A TOKEN authorizer sees none of these; this guards the REQUEST-authorizer adapter."""
    token = make_token(rsa_key, "RS256", "rsa-1")
    event = authorizer_event([f"Bearer {token}"])
    context = event["requestContext"]
    context["requestId"] = "0f6a2d4e-1111-4c3b-9d8e-a1b2c3d4e5f6"
    context["extendedRequestId"] = "Xy7zQ1abcDEFg2A="
    context["identity"]["sourceIp"] = "198.51.100.23"
    for name, value in (
        ("User-Agent", "adapter-probe/2.0"),
        ("X-Amzn-Trace-Id", "Root=1-00000000-aaaaaaaaaaaaaaaaaaaaaaaa"),
        ("Host", "probe.example.org"),
    ):
        event["headers"][name] = value
        event["multiValueHeaders"][name] = [value]
    event["multiValueQueryStringParameters"] = {"view": ["full", "short"], "sig": ["abc"]}
    event["queryStringParameters"] = {"view": "short", "sig": "abc"}

    answer = app.gatehouse_authorizer(event, LambdaContext("lambda-probe-7"))

    assert answer["context"]["decided_for"] == "0f6a2d4e-1111-4c3b-9d8e-a1b2c3d4e5f6"
    [decision] = queued_events(aws)
    assert decision["request"]["id"] == "0f6a2d4e-1111-4c3b-9d8e-a1b2c3d4e5f6"
    assert decision["request"]["extended_id"] == "Xy7zQ1abcDEFg2A="
    assert decision["request"]["lambda_request_id"] == "lambda-probe-7"
    assert decision["request"]["trace_id"] == "Root=1-00000000-aaaaaaaaaaaaaaaaaaaaaaaa"
    assert decision["source"] == {"ip": "198.51.100.23", "user_agent": "adapter-probe/2.0"}
    assert decision["resource"]["host"] == "probe.example.org"
    assert decision["resource"]["query"] == "view=full&view=short&sig=REDACTED"
