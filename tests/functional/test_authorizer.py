"""The REQUEST authorizer Lambda (``app.gatehouse_authorizer``) fed API Gateway events.

Everything is real except AWS (moto in-process) and the IdP's HTTP endpoint
(``FakeIdp``): tokens are signed with real keys, the policy is read from
DynamoDB, audit events go through SQS and are read back from the queue.
"""

from __future__ import annotations

import fnmatch
import json
import logging
import re
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import boto3
import pytest

import app
from chalicelib import entrypoints, observability
from chalicelib.authorize import AuthorizerFailure
from chalicelib.config import Settings
from chalicelib.container import Container
from gatehouse.dev.lambda_context import LambdaContext
from tests.functional.conftest import queued_events
from tests.helpers import AUDIENCE, ISSUER, FakeIdp, claims, load_event, make_token

if TYPE_CHECKING:
    from gatehouse.dev.bootstrap import Resources

API = "arn:aws:execute-api:us-east-1:123456789012:a1b2c3d4e5/dev"
REQUEST_ID = "c6af9ac6-7b61-11e6-9a41-93e8deadbeef"
TRACE_ID = "Root=1-6748a3b1-1f2e3d4c5b6a79880a1b2c3d"
ALL_METHODS = ("GET", "HEAD", "OPTIONS", "POST", "PUT", "PATCH", "DELETE")
UUID7 = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}")


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


class Logs:
    """Everything the handlers logged: log records (with every attribute) and stdout/stderr."""

    def __init__(self, caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]):
        self._caplog = caplog
        self._capsys = capsys

    @property
    def records(self) -> list[logging.LogRecord]:
        return list(self._caplog.records)

    def text(self) -> str:
        captured = self._capsys.readouterr()
        records = json.dumps([vars(record) for record in self.records], default=str)
        return "\n".join((self._caplog.text, records, captured.out, captured.err))

    def clear(self) -> None:
        self._caplog.clear()
        self._capsys.readouterr()


@pytest.fixture
def logs(
    _powertools_logger: None, caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
) -> Logs:
    return Logs(caplog, capsys)


@pytest.fixture
def _powertools_logger() -> None:
    """Build the handlers' Powertools logger before capsys replaces stdout.

    It is built once per process, on the first invocation, bound to the
    ``sys.stdout`` of that moment; built under capsys it would keep a stream
    that capsys closes after the test.
    """
    observability.powertools_logger()


# --- allow -----------------------------------------------------------------------------------


def test_allow_is_exact_for_the_method_arn_and_audited_once(
    stage: Container, aws: Resources, backend: Any, rsa_key: Any, logs: Logs
) -> None:
    payload = claims(amr=["pwd", "mfa"], jti="token-id-1")
    token = make_token(rsa_key, "RS256", "rsa-1", payload)
    event = authorizer_event([f"Bearer {token}"])

    answer = app.gatehouse_authorizer(event, LambdaContext(aws_request_id="lambda-auth-1"))

    assert answer["principalId"] == "alice"
    # TTL 0: the answer names exactly this request's method ARN, nothing broader.
    assert answer["policyDocument"] == policy(statement("Allow", [event["methodArn"]]))
    context = answer["context"]
    # API Gateway only accepts primitive context values.
    assert all(isinstance(value, str | int | bool) for value in context.values())
    decision_id = context["decision_id"]
    assert UUID7.fullmatch(decision_id)
    assert {name: value for name, value in context.items() if name != "principal"} == {
        "sub": "alice",
        "email": "alice@example.com",
        "groups": "engineering",
        "decision_id": decision_id,
        "decided_for": REQUEST_ID,
        "policy_version": 1,
        "route_id": "demo",
        "refusal": "",
        "grant_id": "",
        "break_glass": False,
    }
    principal = json.loads(context["principal"])
    assert principal["iss"] == ISSUER
    assert principal["sub"] == "alice"
    assert principal["aud"] == AUDIENCE
    assert principal["exp"] == payload["exp"]
    assert principal["email"] == "alice@example.com"
    assert principal["groups"] == ["engineering"]
    assert sorted(principal["amr"]) == ["mfa", "pwd"]
    assert principal["jti"] == "token-id-1"

    events = queued_events(aws)
    assert len(events) == 1
    decision = events[0]
    active = stage.policy_store.load_active()
    assert active is not None
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
    assert decision["principal"]["token_id"] == "token-id-1"
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
    assert token not in json.dumps(answer)
    assert token not in logs.text()


# --- deny by policy --------------------------------------------------------------------------

POLICY_DENIALS = [
    # (case, groups, method, path, reason, matched rules)
    (
        "deny-rule-beats-allow",
        ["engineering", "contractors"],
        "GET",
        "/api/billing/7",
        "deny_rule_matched",
        ["no-billing-for-contractors"],
    ),
    ("no-rule-for-group", ["sales"], "GET", "/api/projects/42", "no_matching_rule", []),
    ("outside-allowed-paths", ["engineering"], "DELETE", "/admin/users", "no_matching_rule", []),
    ("method-not-allowed", ["engineering"], "GET", "/", "no_matching_rule", []),
]


def test_policy_denial_is_an_explicit_deny_for_the_method_arn(
    stage: Container, aws: Resources, rsa_key: Any, subtests: pytest.Subtests
) -> None:
    for case, groups, method, path, reason, matched in POLICY_DENIALS:
        with subtests.test(case):
            queued_events(aws)
            token = make_token(rsa_key, "RS256", "rsa-1", claims(groups=groups))
            event = authorizer_event([f"Bearer {token}"], method=method, path=path)

            answer = app.gatehouse_authorizer(event, LambdaContext(aws_request_id="lambda-auth-2"))

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


def _bearer(key: Any, kid: str = "rsa-1", alg: str = "RS256", **overrides: Any) -> str:
    return "Bearer " + make_token(key, alg, kid, claims(**overrides))


def credential_failures(key: Any, other: Any) -> list[tuple[str, list[str] | None, str]]:
    """(case, Authorization header values, reason) for every way to present bad credentials."""
    now = int(time.time())
    return [
        ("no-header", None, "missing_credentials"),
        ("basic-scheme", ["Basic YWxpY2U6czNjcjN0LXBhc3N3b3Jk"], "missing_credentials"),
        ("malformed", ["Bearer eyJhbGciOiJSUzI1NiJ9.bm90LWEtand0LWF0LWFsbA"], "malformed_token"),
        ("two-headers", [_bearer(key), _bearer(key, sub="mallory")], "malformed_token"),
        ("expired", [_bearer(key, exp=now - 120, iat=now - 900, nbf=None)], "token_expired"),
        ("unknown-kid", [_bearer(key, kid="rsa-unknown")], "unknown_key"),
        ("wrong-audience", [_bearer(key, aud="another-app")], "wrong_audience"),
        ("signed-by-another-key", [_bearer(other)], "bad_signature"),
        ("alg-none", [_bearer(None, alg="none")], "unsupported_algorithm"),
    ]


def test_credential_failure_is_unauthorized_and_audited_without_the_secret(
    stage: Container,
    aws: Resources,
    rsa_key: Any,
    other_rsa_key: Any,
    logs: Logs,
    subtests: pytest.Subtests,
) -> None:
    for case, authorization, reason in credential_failures(rsa_key, other_rsa_key):
        with subtests.test(case):
            queued_events(aws)
            logs.clear()
            event = authorizer_event(authorization)

            with pytest.raises(Exception) as raised:  # noqa: PT011 (the message is the contract)
                app.gatehouse_authorizer(event, LambdaContext(aws_request_id="lambda-auth-3"))

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
            serialized = json.dumps(events)
            logged = logs.text()
            for value in authorization or ():
                secret = value.split(" ", 1)[1]
                assert secret not in serialized
                assert secret not in logged


# --- fail closed -----------------------------------------------------------------------------


def test_unauditable_decision_fails_closed_and_is_logged_without_the_token(
    stage: Container, aws: Resources, rsa_key: Any, logs: Logs, subtests: pytest.Subtests
) -> None:
    token = make_token(rsa_key, "RS256", "rsa-1")
    boto3.client("sqs", region_name="us-east-1").delete_queue(QueueUrl=aws.audit_queue_url)
    cases = [
        ("valid-token", [f"Bearer {token}"], "allow", ["allow_rule_matched"]),
        ("no-credentials", None, "deny", ["missing_credentials"]),
    ]
    for case, authorization, outcome, reasons in cases:
        with subtests.test(case):
            logs.clear()
            event = authorizer_event(authorization)

            with pytest.raises(AuthorizerFailure) as raised:
                app.gatehouse_authorizer(
                    event, LambdaContext(aws_request_id=f"lambda-auth-fc-{case}")
                )

            # Not "Unauthorized": API Gateway maps any other failure to AUTHORIZER_FAILURE (503).
            assert str(raised.value) != "Unauthorized"
            logged_events = [
                json.loads(record.getMessage().split("event follows: ", 1)[1])
                for record in logs.records
                if "event follows: " in record.getMessage()
            ]
            assert len(logged_events) == 1
            logged = logged_events[0]
            assert logged["event_type"] == "decision"
            assert logged["request"]["id"] == REQUEST_ID
            assert logged["request"]["lambda_request_id"] == f"lambda-auth-fc-{case}"
            assert logged["decision"]["outcome"] == outcome
            assert logged["decision"]["reasons"] == reasons
            text = logs.text()
            assert logged["event_id"] in text
            assert token not in text


def _corrupt_active_pointer(dynamodb: Any, table: str) -> None:
    dynamodb.update_item(
        TableName=table,
        Key={"pk": {"S": "POLICY"}, "sk": {"S": "ACTIVE"}},
        UpdateExpression="SET #d = :d",
        ExpressionAttributeNames={"#d": "document"},
        ExpressionAttributeValues={":d": {"S": '{"version": 1, "routes": ['}},
    )


def _delete_active_pointer(dynamodb: Any, table: str) -> None:
    dynamodb.delete_item(TableName=table, Key={"pk": {"S": "POLICY"}, "sk": {"S": "ACTIVE"}})


def _delete_table(dynamodb: Any, table: str) -> None:
    dynamodb.delete_table(TableName=table)


def test_policy_unavailable_fails_closed_with_an_error_event(
    stage: Container, aws: Resources, rsa_key: Any, subtests: pytest.Subtests
) -> None:
    """Progressively worse: a corrupt pointer, then none, then no table at all."""
    dynamodb = boto3.client("dynamodb", region_name="us-east-1")
    token = make_token(rsa_key, "RS256", "rsa-1")
    breakages = [
        ("corrupt-active-policy", _corrupt_active_pointer),
        ("no-active-policy", _delete_active_pointer),
        ("table-gone", _delete_table),
    ]
    for case, break_policy in breakages:
        with subtests.test(case):
            queued_events(aws)
            break_policy(dynamodb, aws.state_table)

            with pytest.raises(AuthorizerFailure) as raised:
                app.gatehouse_authorizer(
                    authorizer_event([f"Bearer {token}"]),
                    LambdaContext(aws_request_id="lambda-auth-pu"),
                )

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

# Cached answers list allows only: a superset of what the policy allows (method ARNs carry
# no host or route, so no deny translates soundly), plus the request decided, even when
# denied: a cached Deny would refuse it unseen for the whole TTL. The proxy answers a
# denied one 403 and re-decides every request served from a cached answer.
WHOLE_API_ANSWERS: list[tuple[str, list[str], str, str, Callable[[str], dict[str, Any]]]] = [
    (
        "allowed",
        ["engineering"],
        "GET",
        "/api/projects/42",
        lambda arn: policy(statement("Allow", [*ENGINEERING_ALLOW, arn])),
    ),
    (
        "denied-by-rule",
        ["engineering", "contractors"],
        "GET",
        "/api/billing/7",
        lambda arn: policy(statement("Allow", [*ENGINEERING_ALLOW, arn])),
    ),
    (
        "denied-nothing-allowed",
        ["sales"],
        "GET",
        "/api/projects/42",
        lambda arn: policy(statement("Allow", [arn])),
    ),
]


def test_cached_answer_describes_the_whole_api(
    stage: Container,
    aws: Resources,
    idp: FakeIdp,
    rsa_key: Any,
    monkeypatch: pytest.MonkeyPatch,
    subtests: pytest.Subtests,
) -> None:
    rebuild_container(idp, monkeypatch, GATEHOUSE_AUTHORIZER_TTL_SECONDS="300")
    for case, groups, method, path, expected in WHOLE_API_ANSWERS:
        with subtests.test(case):
            queued_events(aws)
            token = make_token(rsa_key, "RS256", "rsa-1", claims(groups=groups))
            event = authorizer_event([f"Bearer {token}"], method=method, path=path)

            answer = app.gatehouse_authorizer(
                event, LambdaContext(aws_request_id="lambda-auth-ttl")
            )

            assert answer["policyDocument"] == expected(event["methodArn"])
            assert len(queued_events(aws)) == 1


def _iam_effect(document: dict[str, Any], arn: str) -> str:
    """How IAM evaluates ``arn`` against an authorizer policy (an explicit deny wins)."""
    effects = {
        item["Effect"]
        for item in document["Statement"]
        if any(fnmatch.fnmatchcase(arn, pattern) for pattern in item["Resource"])
    }
    if "Deny" in effects:
        return "Deny"
    return "Allow" if "Allow" in effects else "ImplicitDeny"


REUSED_ANSWERS: list[tuple[str, list[str], str, dict[tuple[str, str], str]]] = [
    # (case, groups, path of the request decided, gateway effect on later requests)
    (
        "engineer",
        ["engineering"],
        "/api/projects/42",
        {
            ("GET", "/api/projects/42"): "Allow",
            ("POST", "/api/projects"): "Allow",
            ("DELETE", "/api/a/b/c"): "Allow",
            ("HEAD", "/api"): "Allow",
            ("OPTIONS", "/api/x"): "Allow",
            ("GET", "/admin"): "ImplicitDeny",
            ("GET", "/apix"): "ImplicitDeny",
        },
    ),
    (
        "contractor-denied-first",
        ["engineering", "contractors"],
        "/api/billing/7",
        {
            ("GET", "/api/billing/7"): "Allow",  # to the proxy, which refuses it (403)
            ("PUT", "/api/projects/1"): "Allow",
            ("GET", "/api/billingx"): "Allow",
            ("GET", "/admin"): "ImplicitDeny",
        },
    ),
]


def test_cached_answer_lets_through_everything_the_policy_allows(
    stage: Container,
    aws: Resources,
    idp: FakeIdp,
    rsa_key: Any,
    monkeypatch: pytest.MonkeyPatch,
    subtests: pytest.Subtests,
) -> None:
    """API Gateway reuses one answer for every route of the API until the TTL ends.

    Whatever the policy allows must pass the gateway (or the cache would turn
    allowed requests into 403s); the request that was denied passes too, to
    the proxy, which refuses it and decides its repetitions again.
    """
    rebuild_container(idp, monkeypatch, GATEHOUSE_AUTHORIZER_TTL_SECONDS="300")
    for case, groups, decided_path, requests in REUSED_ANSWERS:
        with subtests.test(case):
            queued_events(aws)
            token = make_token(rsa_key, "RS256", "rsa-1", claims(groups=groups))
            event = authorizer_event([f"Bearer {token}"], path=decided_path)
            answer = app.gatehouse_authorizer(event, LambdaContext(aws_request_id="lambda-ttl"))

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

    answer = app.gatehouse_authorizer(event, LambdaContext(aws_request_id="lambda-probe-7"))

    assert answer["context"]["decided_for"] == "0f6a2d4e-1111-4c3b-9d8e-a1b2c3d4e5f6"
    [decision] = queued_events(aws)
    assert decision["request"]["id"] == "0f6a2d4e-1111-4c3b-9d8e-a1b2c3d4e5f6"
    assert decision["request"]["extended_id"] == "Xy7zQ1abcDEFg2A="
    assert decision["request"]["lambda_request_id"] == "lambda-probe-7"
    assert decision["request"]["trace_id"] == "Root=1-00000000-aaaaaaaaaaaaaaaaaaaaaaaa"
    assert decision["source"] == {"ip": "198.51.100.23", "user_agent": "adapter-probe/2.0"}
    assert decision["resource"]["host"] == "probe.example.org"
    assert decision["resource"]["query"] == "view=full&view=short&sig=REDACTED"
