"""The proxy Lambda (``app.app``) fed API Gateway proxy events, forwarding to a real backend.

Each request is first decided by the real authorizer (``app.gatehouse_authorizer``)
and its context is copied into the proxy event the way API Gateway does it
(values become strings). AWS is moto in-process; the upstream is the demo
backend on a loopback socket.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import json
import logging
import socket
import struct
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import boto3
import jwt
import pytest
from cryptography.hazmat.primitives.serialization import load_der_public_key

import app
from chalicelib import entrypoints, observability
from chalicelib.audit.schema import uuid7
from chalicelib.authorize.context import authorizer_context
from chalicelib.config import Settings
from chalicelib.container import Container
from chalicelib.identity import Identity
from chalicelib.policy import AccessRequest
from gatehouse.dev.lambda_context import LambdaContext
from tests.functional.conftest import GATEWAY_ISSUER, policy_document, queued_events
from tests.helpers import AUDIENCE, ISSUER, FakeIdp, b64url, claims, load_event, make_token

if TYPE_CHECKING:
    from gatehouse.dev.backend import DemoBackend
    from gatehouse.dev.bootstrap import Resources

API = "arn:aws:execute-api:us-east-1:123456789012:a1b2c3d4e5/dev"
REQUEST_ID = "c6af9ac6-7b61-11e6-9a41-93e8deadbeef"
JWKS_PATH = "/.well-known/gatehouse/jwks.json"
FIXTURE_BODY = base64.b64decode("AAECA//+/fxnemlwAAAA")
EVERY_BYTE = bytes(range(256)) * 3


@dataclass(frozen=True)
class Reply:
    """A proxy Lambda response, decoded."""

    status: int
    headers: dict[str, list[str]]
    body: bytes
    raw: dict[str, Any] = field(repr=False)

    def header(self, name: str) -> list[str]:
        return [
            v for k, values in self.headers.items() if k.lower() == name.lower() for v in values
        ]

    def json(self) -> Any:
        return json.loads(self.body)


def sent(seen: dict[str, Any], name: str) -> list[str]:
    """Every value of header ``name`` as the backend received it."""
    return [v for k, values in seen["headers"].items() if k.lower() == name.lower() for v in values]


def set_header(event: dict[str, Any], name: str, values: list[str] | None) -> None:
    for key in [key for key in event["multiValueHeaders"] if key.lower() == name.lower()]:
        del event["multiValueHeaders"][key]
        event["headers"].pop(key, None)
    if values:
        event["multiValueHeaders"][name] = list(values)
        event["headers"][name] = values[-1]


def proxy_event(
    token: str,
    *,
    method: str = "POST",
    path: str = "/api/projects/42",
    request_id: str = REQUEST_ID,
    query: dict[str, list[str]] | None = None,
    body: bytes | None = FIXTURE_BODY,
) -> dict[str, Any]:
    """The proxy fixture for ``method path`` (still without an authorizer context)."""
    event = load_event("proxy_request")
    context = event["requestContext"]
    event["httpMethod"] = context["httpMethod"] = method
    event["path"] = path
    context["path"] = f"/dev{path}"
    context["requestId"] = request_id
    event["pathParameters"] = {"proxy": path.lstrip("/")}
    set_header(event, "Authorization", [f"Bearer {token}"])
    if query is not None:
        event["multiValueQueryStringParameters"] = query or None
        event["queryStringParameters"] = {k: v[-1] for k, v in query.items()} or None
    if body is None:
        event["body"], event["isBase64Encoded"] = None, False
    else:
        event["body"], event["isBase64Encoded"] = base64.b64encode(body).decode(), True
    return event


def as_gateway_context(answer: dict[str, Any]) -> dict[str, Any]:
    """The authorizer's context as API Gateway hands it to the integration."""

    def text(value: Any) -> str:
        return ("true" if value else "false") if isinstance(value, bool) else str(value)

    context: dict[str, Any] = {name: text(value) for name, value in answer["context"].items()}
    context["principalId"] = answer["principalId"]
    context["integrationLatency"] = 12
    return context


def authorizer_answer(event: dict[str, Any]) -> dict[str, Any]:
    """The real authorizer's answer for the request of the proxy event ``event``."""
    context = {k: v for k, v in event["requestContext"].items() if k != "authorizer"}
    request = {
        "type": "REQUEST",
        "methodArn": f"{API}/{event['httpMethod']}{event['path']}",
        "resource": event["resource"],
        "path": event["path"],
        "httpMethod": event["httpMethod"],
        "headers": event["headers"],
        "multiValueHeaders": event["multiValueHeaders"],
        "queryStringParameters": event["queryStringParameters"],
        "multiValueQueryStringParameters": event["multiValueQueryStringParameters"],
        "pathParameters": event["pathParameters"],
        "stageVariables": None,
        "requestContext": context,
    }
    answer: dict[str, Any] = app.gatehouse_authorizer(
        request, LambdaContext(aws_request_id="lambda-authorizer")
    )
    return answer


def authorize(event: dict[str, Any]) -> dict[str, Any]:
    """Run the real authorizer on the request of ``event``; put its context into ``event``."""
    answer = authorizer_answer(event)
    method_arn = f"{API}/{event['httpMethod']}{event['path']}"
    effects = [(s["Effect"], s["Resource"]) for s in answer["policyDocument"]["Statement"]]
    assert effects == [("Allow", [method_arn])]
    gateway_context = as_gateway_context(answer)
    event["requestContext"]["authorizer"] = gateway_context
    return gateway_context


def invoke(event: dict[str, Any], lambda_request_id: str = "lambda-proxy-1") -> Reply:
    response = app.app(event, LambdaContext(aws_request_id=lambda_request_id))
    body = response.get("body") or ""
    raw = base64.b64decode(body) if response.get("isBase64Encoded") else body.encode()
    headers = response.get("multiValueHeaders") or {
        k: [v] for k, v in (response.get("headers") or {}).items()
    }
    return Reply(response["statusCode"], headers, raw, response)


def rebuild_container(idp: FakeIdp, monkeypatch: pytest.MonkeyPatch, **env: str) -> Container:
    """Reconfigure the stage (environment only) and install a freshly built, warm container.

    Its assertion key's issuance event is on the queue: the next drain takes it.
    """
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    container = Container(Settings.from_environment(), fetch_json=idp)
    container.assertion_keys.current()
    entrypoints.use_container(container)
    REBUILT.append(container)
    return container


def publish(container: Container, upstream: str, **route: Any) -> None:
    """Activate the conftest policy with ``route`` fields changed on the demo route."""
    document = policy_document(upstream)
    document["routes"][0].update(route)
    container.policy_store.publish(document, actor="test")


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def response_events(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [event for event in events if event["event_type"] == "response"]


REBUILT: list[Container] = []


@pytest.fixture(autouse=True)
def _upstream_connections_closed(stage: Container) -> Iterator[None]:
    """Close the pooled upstream connections of every container the test used.

    A Lambda container keeps them for its whole life; a test throws its
    container away, and a socket left to the garbage collector is a
    ResourceWarning (an error here) in whichever test happens to collect it.
    """
    yield
    for container in [stage, *REBUILT]:
        upstream = vars(container).get("upstream")  # only if the test built one
        if upstream is not None:
            upstream.close()
    REBUILT.clear()


@pytest.fixture
def token(rsa_key: Any) -> str:
    return make_token(rsa_key, "RS256", "rsa-1")


@pytest.fixture
def _powertools_logger() -> None:
    """Build the handlers' Powertools logger before capsys replaces stdout (see test_authorizer)."""
    observability.powertools_logger()


# --- forwarding ------------------------------------------------------------------------------


def test_forwards_method_path_repeated_query_headers_and_body(
    stage: Container, aws: Resources, backend: DemoBackend, token: str, subtests: pytest.Subtests
) -> None:
    for method, body in (("POST", FIXTURE_BODY), ("PATCH", EVERY_BYTE), ("GET", None)):
        with subtests.test(method):
            event = proxy_event(token, method=method, body=body)
            authorize(event)

            reply = invoke(event)

            assert reply.status == 200
            assert reply.raw["isBase64Encoded"] is True
            assert reply.header("X-Request-Id") == [REQUEST_ID]
            seen = reply.json()
            assert seen["method"] == method
            assert seen["path"] == "/api/projects/42"
            assert seen["query"] == [["tag", "red"], ["tag", "blue"]]
            assert sent(seen, "X-Custom") == ["one", "two"]
            assert seen["body_bytes"] == len(body or b"")
            assert seen["body_sha256"] == hashlib.sha256(body or b"").hexdigest()
            queued_events(aws)


def test_binary_response_comes_back_byte_for_byte(
    stage: Container, aws: Resources, backend: DemoBackend, token: str
) -> None:
    event = proxy_event(token, query={"behave": ["binary"]}, body=EVERY_BYTE)
    authorize(event)

    reply = invoke(event)

    assert reply.status == 200
    assert reply.raw["isBase64Encoded"] is True
    assert reply.body == EVERY_BYTE
    assert reply.header("Content-Type") == ["application/octet-stream"]


def test_header_hygiene_as_seen_by_the_backend(
    stage: Container, aws: Resources, backend: DemoBackend, token: str, subtests: pytest.Subtests
) -> None:
    for pass_authorization in (False, True):
        with subtests.test(pass_authorization=pass_authorization):
            if pass_authorization:
                publish(stage, backend.url, pass_authorization=True)
            event = proxy_event(token)
            authorize(event)

            reply = invoke(event)

            assert reply.status == 200
            seen = reply.json()
            credentials = {
                "Authorization": [f"Bearer {token}"],
                "Cookie": ["session=secret-cookie-value"],
            }
            for name, values in credentials.items():
                assert sent(seen, name) == (values if pass_authorization else [])
            for dropped in ("X-Hop", "Connection", "Keep-Alive", "X-Forwarded-Port"):
                assert sent(seen, dropped) == [], dropped
            [assertion] = sent(seen, "X-Gatehouse-Assertion")
            assert assertion != "forged.by.client"
            assert assertion.count(".") == 2
            assert sent(seen, "X-Forwarded-For") == ["203.0.113.7"]
            assert sent(seen, "X-Request-Id") == [REQUEST_ID]
            assert sent(seen, "X-Forwarded-Proto") == ["https"]
            assert sent(seen, "X-Forwarded-Host") == ["gatehouse.example.com"]
            assert sent(seen, "User-Agent") == ["curl/8.5.0"]
            assert "198.51.100.99" not in json.dumps(seen)
            events = json.dumps(queued_events(aws))
            assert token not in events
            assert "secret-cookie-value" not in events


# --- the identity assertion ------------------------------------------------------------------


def jwks_event() -> dict[str, Any]:
    event = load_event("proxy_request")
    context = event["requestContext"]
    del context["authorizer"]
    event["resource"] = context["resourcePath"] = JWKS_PATH
    event["path"] = JWKS_PATH
    context["path"] = f"/dev{JWKS_PATH}"
    event["httpMethod"] = context["httpMethod"] = "GET"
    event["pathParameters"] = None
    event["multiValueQueryStringParameters"] = event["queryStringParameters"] = None
    event["body"], event["isBase64Encoded"] = None, False
    for name in ("Authorization", "Cookie", "X-Gatehouse-Assertion"):
        set_header(event, name, None)
    return event


def rfc7638_thumbprint(key: dict[str, str]) -> str:
    members = {name: key[name] for name in ("crv", "kty", "x", "y")}
    canonical = json.dumps(members, sort_keys=True, separators=(",", ":")).encode()
    return b64url(hashlib.sha256(canonical).digest())


def b64url_int(text: str) -> int:
    return int.from_bytes(base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)), "big")


def certificates_event() -> dict[str, Any]:
    event = jwks_event()
    path = "/.well-known/gatehouse/key-certificates.json"
    event["resource"] = event["requestContext"]["resourcePath"] = event["path"] = path
    event["requestContext"]["path"] = f"/dev{path}"
    return event


def test_assertions_are_signed_by_a_container_key_the_jwks_serves_and_kms_certified(
    stage: Container, aws: Resources, backend: DemoBackend, token: str
) -> None:
    warm = stage.assertion_keys.current().kid  # the fixture's container is warm
    kms_signs: list[str] = []
    stage.clients.kms.meta.events.register(
        "before-call.kms.Sign", lambda **kwargs: kms_signs.append("Sign")
    )

    event = proxy_event(token)
    context = authorize(event)
    before = int(time.time())
    [assertion] = sent(invoke(event).json(), "X-Gatehouse-Assertion")
    for _ in range(3):
        again = proxy_event(token)
        authorize(again)
        [later] = sent(invoke(again).json(), "X-Gatehouse-Assertion")
        assert jwt.get_unverified_header(later)["kid"] == warm
    assert kms_signs == []  # KMS certified the key once, before; never per request

    published = invoke(jwks_event())
    assert published.status == 200
    assert published.header("Content-Type") == ["application/json"]
    [key] = published.json()["keys"]
    assert key["kid"] == warm
    assert (key["kty"], key["crv"], key["alg"]) == ("EC", "P-256", "ES256")
    assert "d" not in key
    assert key["kid"] == rfc7638_thumbprint(key)
    header = jwt.get_unverified_header(assertion)
    assert (header["alg"], header["kid"]) == ("ES256", key["kid"])
    verified = jwt.decode(
        assertion,
        jwt.PyJWK.from_dict(key).key,
        algorithms=["ES256"],
        audience="demo",
        issuer=GATEWAY_ISSUER,
        options={"require": ["iss", "aud", "exp", "iat", "sub"]},
    )
    assert verified["sub"] == "alice"
    assert verified["email"] == "alice@example.com"
    assert verified["groups"] == ["engineering"]
    assert verified["idp"] == ISSUER
    assert verified["rid"] == REQUEST_ID
    assert verified["decision_id"] == context["decision_id"]
    assert 0 < verified["exp"] - verified["iat"] <= 300
    assert before - 5 <= verified["iat"] <= int(time.time()) + 5
    with pytest.raises(jwt.InvalidAudienceError):
        jwt.decode(assertion, jwt.PyJWK.from_dict(key).key, algorithms=["ES256"], audience=AUDIENCE)

    # The key goes back to the KMS key: its certificate verifies under the KMS
    # public key, read from KMS (never from the gateway), with any JWT library.
    der = boto3.client("kms", region_name="us-east-1").get_public_key(KeyId=aws.assertion_key_alias)
    kms_key = load_der_public_key(der["PublicKey"])
    [entry] = invoke(certificates_event()).json()["certificates"]
    assert entry["kid"] == key["kid"]
    certified = jwt.decode(
        entry["certificate"], kms_key, algorithms=["ES256"], options={"verify_exp": False}
    )
    assert certified["jwk"] == key
    assert (certified["iss"], certified["stage"], certified["sub"]) == (
        GATEWAY_ISSUER,
        "test",
        key["kid"],
    )
    assert certified["nbf"] <= verified["iat"] < certified["exp"] <= certified["nbf"] + 6 * 3600
    with pytest.raises(jwt.InvalidSignatureError):  # the assertion key is not the KMS key
        jwt.decode(assertion, kms_key, algorithms=["ES256"], audience="demo")

    assert json.dumps(queued_events(aws)).count(assertion) == 0  # never in the trail


# --- the response event ----------------------------------------------------------------------


def test_response_event_links_to_the_decision_and_flags_spoofed_gatehouse_headers(
    stage: Container, aws: Resources, backend: DemoBackend, token: str, subtests: pytest.Subtests
) -> None:
    cases: list[tuple[str, tuple[str, list[str]] | None, list[str]]] = [
        ("forged-assertion", None, ["client_sent_gatehouse_header"]),
        ("lowercase-namespace", ("x-gatehouse-user", ["admin"]), ["client_sent_gatehouse_header"]),
        ("clean", ("X-Gatehouse-Assertion", []), []),
    ]
    for case, header, anomalies in cases:
        with subtests.test(case):
            event = proxy_event(token, request_id=f"req-{case}")
            if header is not None:
                set_header(event, "X-Gatehouse-Assertion", None)
                set_header(event, header[0], header[1])
            context = authorize(event)

            reply = invoke(event, lambda_request_id=f"lambda-{case}")

            assert reply.status == 200
            events = queued_events(aws)
            assert [e["event_type"] for e in events] == ["decision", "response"]
            decision, response = events
            assert decision["event_id"] == context["decision_id"]
            assert response["request"]["decision_id"] == context["decision_id"]
            assert response["request"]["id"] == f"req-{case}"
            assert response["request"]["lambda_request_id"] == f"lambda-{case}"
            assert response["event_id"] != decision["event_id"]
            outcome = response["outcome"]
            assert outcome["status"] == 200
            assert outcome["bytes_in"] == len(FIXTURE_BODY)
            assert outcome["bytes_out"] == len(reply.body)
            assert outcome["error"] is None
            assert 0 < outcome["upstream_latency_ms"] <= outcome["latency_ms"]
            assert response["decision"]["outcome"] == "allow"
            assert response["decision"]["cached"] is False
            assert response["decision"]["policy_version"] == 1
            assert response["principal"]["subject"] == "alice"
            assert response["resource"]["route_id"] == "demo"
            assert response["resource"]["upstream"] == backend.url
            assert response["source"]["ip"] == "203.0.113.7"
            assert response["action"] == "write"
            assert response["anomalies"] == anomalies


# --- upstream behaviours ---------------------------------------------------------------------


@dataclass(frozen=True)
class Upstream:
    """One upstream behaviour: the request, and what the client must get back."""

    case: str
    query: dict[str, list[str]]
    status: int
    body: bytes | None = None
    headers: dict[str, list[str]] = field(default_factory=dict)
    answer: bytes | None = None  # the exact body the client must get
    message: str | None = None  # the proxy's own JSON error message
    reaches_backend: bool = True
    gzip: bool = False


def assert_gzip_passed_through(reply: Reply) -> None:
    assert reply.header("Content-Length") == []
    assert reply.body[:2] == b"\x1f\x8b"
    inner = gzip.decompress(reply.body)
    assert json.loads(inner)["path"] == "/api/projects/42"
    # Recompress what the backend compressed, with its timestamp: the very same bytes.
    (mtime,) = struct.unpack("<I", reply.body[4:8])
    assert gzip.compress(inner, mtime=mtime) == reply.body


UPSTREAM_CASES = [
    Upstream("redirect", {"behave": ["redirect"]}, 302, headers={"Location": ["/elsewhere"]}),
    Upstream(
        "cookies",
        {"behave": ["cookies"]},
        200,
        headers={"Set-Cookie": ["a=1; Path=/", "b=2; Path=/"]},
    ),
    Upstream("gzip", {"behave": ["gzip"]}, 200, headers={"Content-Encoding": ["gzip"]}, gzip=True),
    Upstream("slow", {"behave": ["slow"], "seconds": ["2"]}, 504, message="upstream timed out"),
    Upstream(
        "response-at-limit", {"behave": ["large"], "bytes": ["1000"]}, 200, answer=b"x" * 1000
    ),
    Upstream(
        "response-over-limit",
        {"behave": ["large"], "bytes": ["1001"]},
        502,
        message="upstream unavailable",
    ),
    Upstream(
        "request-at-limit",
        {"behave": ["binary"]},
        200,
        body=bytes(range(10)),
        answer=bytes(range(10)),
    ),
    Upstream(
        "request-over-limit",
        {"behave": ["binary"]},
        413,
        body=bytes(range(11)),
        message="request body too large",
        reaches_backend=False,
    ),
]


def test_upstream_behaviours_reach_the_client_and_the_audit_trail(
    stage: Container,
    aws: Resources,
    backend: DemoBackend,
    idp: FakeIdp,
    token: str,
    monkeypatch: pytest.MonkeyPatch,
    subtests: pytest.Subtests,
) -> None:
    rebuild_container(
        idp,
        monkeypatch,
        GATEHOUSE_UPSTREAM_READ_TIMEOUT_SECONDS="0.5",
        GATEHOUSE_MAX_RESPONSE_BODY_BYTES="1000",
        GATEHOUSE_MAX_REQUEST_BODY_BYTES="10",
    )
    for case in UPSTREAM_CASES:
        with subtests.test(case.case):
            queued_events(aws)
            method = "POST" if case.body else "GET"
            event = proxy_event(
                token,
                method=method,
                request_id=f"req-{case.case}",
                query=case.query,
                body=case.body,
            )
            authorize(event)
            seen_before = backend.requests_seen
            started = time.perf_counter()

            reply = invoke(event)

            elapsed = time.perf_counter() - started
            request_id = f"req-{case.case}"
            assert reply.status == case.status
            assert reply.header("X-Request-Id") == [request_id]
            for name, values in case.headers.items():
                assert reply.header(name) == values, name
            if case.answer is not None:
                assert reply.body == case.answer
            if case.message is not None:
                assert reply.header("Content-Type") == ["application/json"]
                assert reply.json() == {"message": case.message, "request_id": request_id}
            if case.gzip:
                assert_gzip_passed_through(reply)
            # Never followed, never retried: at most the one request reached the backend.
            assert backend.requests_seen - seen_before == (1 if case.reaches_backend else 0)
            assert elapsed < 1.9  # the slow upstream answers after 2 s: the timeout won
            [response] = response_events(queued_events(aws))
            assert response["request"]["id"] == request_id
            assert response["outcome"]["status"] == case.status
            assert response["outcome"]["bytes_in"] == len(case.body or b"")
            assert response["outcome"]["bytes_out"] == len(reply.body)
            assert (response["outcome"]["error"] is not None) is (case.message is not None)


def test_unreachable_upstream_is_a_502_with_the_request_id(
    stage: Container, aws: Resources, backend: DemoBackend, token: str
) -> None:
    publish(stage, f"http://127.0.0.1:{closed_port()}")
    event = proxy_event(token)
    authorize(event)

    reply = invoke(event)

    assert reply.status == 502
    assert reply.json() == {"message": "upstream unavailable", "request_id": REQUEST_ID}
    assert backend.requests_seen == 0
    [response] = response_events(queued_events(aws))
    assert response["outcome"]["status"] == 502
    assert response["outcome"]["error"]
    assert response["outcome"]["upstream_latency_ms"] is None
    assert response["request"]["id"] == REQUEST_ID


# --- failing closed --------------------------------------------------------------------------


@pytest.mark.usefixtures("_powertools_logger")
def test_unauditable_response_is_a_503_not_the_upstream_answer(
    stage: Container,
    aws: Resources,
    backend: DemoBackend,
    token: str,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
) -> None:
    event = proxy_event(token)
    authorize(event)
    boto3.client("sqs", region_name="us-east-1").delete_queue(QueueUrl=aws.audit_queue_url)

    reply = invoke(event)

    assert reply.status == 503
    assert reply.json() == {"message": "audit trail unavailable", "request_id": REQUEST_ID}
    assert reply.header("X-Request-Id") == [REQUEST_ID]
    logged = [
        json.loads(record.getMessage().split("event follows: ", 1)[1])
        for record in caplog.records
        if "event follows: " in record.getMessage()
    ]
    assert [(e["event_type"], e["request"]["id"]) for e in logged] == [("response", REQUEST_ID)]
    captured = capsys.readouterr()
    text = "\n".join(
        [json.dumps([vars(r) for r in caplog.records], default=str), captured.out, captured.err]
    )
    assert token not in text
    assert "secret-cookie-value" not in text


def test_missing_identity_context_is_a_500_and_audited(
    stage: Container, aws: Resources, backend: DemoBackend, token: str, subtests: pytest.Subtests
) -> None:
    real = proxy_event(token)
    real_context = authorize(real)
    queued_events(aws)
    contexts: list[tuple[str, dict[str, Any] | None]] = [
        ("no-authorizer", None),
        ("empty", {}),
        ("placeholder-principal", load_event("proxy_request")["requestContext"]["authorizer"]),
        ("no-decision-id", {k: v for k, v in real_context.items() if k != "decision_id"}),
        ("principal-without-exp", {**real_context, "principal": json.dumps({"sub": "alice"})}),
        ("policy-version-not-a-number", {**real_context, "policy_version": "latest"}),
    ]
    for case, context in contexts:
        with subtests.test(case):
            event = proxy_event(token)
            if context is not None:
                event["requestContext"]["authorizer"] = context

            reply = invoke(event)

            assert reply.status == 500
            assert reply.json() == {"message": "gateway misconfigured", "request_id": REQUEST_ID}
            assert backend.requests_seen == 0
            [decision] = queued_events(aws)
            assert decision["event_type"] == "decision"
            assert decision["decision"]["outcome"] == "error"
            assert decision["decision"]["reasons"] == ["no_identity_context"]
            assert decision["decision"]["decided_by"] == "proxy"
            assert decision["principal"] is None
            assert decision["request"]["id"] == REQUEST_ID


def test_vanished_policy_version_is_a_503_and_audited(
    stage: Container, aws: Resources, backend: DemoBackend, token: str
) -> None:
    event = proxy_event(token)
    authorize(event)
    queued_events(aws)
    boto3.client("dynamodb", region_name="us-east-1").delete_item(
        TableName=aws.state_table,
        Key={"pk": {"S": "POLICY"}, "sk": {"S": "VERSION#0000000001"}},
    )

    reply = invoke(event)

    assert reply.status == 503
    assert backend.requests_seen == 0
    [decision] = queued_events(aws)
    assert decision["decision"]["outcome"] == "error"
    assert decision["decision"]["reasons"] == ["policy_unavailable"]
    assert decision["principal"]["subject"] == "alice"


# --- authorizer answers served from API Gateway's cache --------------------------------------


def test_cached_allow_is_redecided_by_the_proxy_and_audited(
    stage: Container, aws: Resources, backend: DemoBackend, token: str
) -> None:
    first = proxy_event(token, request_id="req-first")
    context = authorize(first)
    queued_events(aws)
    second = proxy_event(token, request_id="req-second")
    second["requestContext"]["authorizer"] = context

    reply = invoke(second)

    assert reply.status == 200
    assert backend.requests_seen == 1
    events = queued_events(aws)
    assert [e["event_type"] for e in events] == ["decision", "response"]
    decision, response = events
    assert decision["decision"]["outcome"] == "allow"
    assert decision["decision"]["reasons"] == ["allow_rule_matched"]
    assert decision["decision"]["matched_rules"] == ["eng-write"]
    assert decision["decision"]["decided_by"] == "proxy"
    assert decision["decision"]["cached"] is True
    assert decision["request"]["id"] == "req-second"
    assert decision["event_id"] != context["decision_id"]
    assert response["request"]["decision_id"] == decision["event_id"]
    assert response["decision"]["cached"] is True
    [assertion] = sent(reply.json(), "X-Gatehouse-Assertion")
    assert jwt.decode(assertion, options={"verify_signature": False})["rid"] == "req-second"


def test_cached_allow_denied_by_the_active_policy_is_a_403_from_the_proxy(
    stage: Container,
    aws: Resources,
    backend: DemoBackend,
    rsa_key: Any,
    subtests: pytest.Subtests,
) -> None:
    contractor = make_token(
        rsa_key, "RS256", "rsa-1", claims(groups=["engineering", "contractors"])
    )
    alice = make_token(rsa_key, "RS256", "rsa-1")

    def revoke_writes() -> None:
        document = policy_document(backend.url)
        document["rules"] = [rule for rule in document["rules"] if rule["id"] != "eng-write"]
        stage.policy_store.publish(document, actor="test")

    cases: list[tuple[str, str, str, str, Callable[[], None], str, int]] = [
        # (case, token, method, later path, change in between, reason, policy version)
        ("denied-path", contractor, "GET", "/api/billing/7", lambda: None, "deny_rule_matched", 1),
        ("policy-revoked", alice, "POST", "/api/projects/42", revoke_writes, "no_matching_rule", 2),
    ]
    for case, bearer, method, later_path, change, reason, version in cases:
        with subtests.test(case):
            first = proxy_event(bearer, method=method, request_id=f"{case}-first")
            context = authorize(first)
            queued_events(aws)
            change()
            second = proxy_event(bearer, method=method, path=later_path, request_id=f"{case}-2")
            second["requestContext"]["authorizer"] = context

            reply = invoke(second)

            assert reply.status == 403
            assert reply.json() == {"message": "forbidden", "request_id": f"{case}-2"}
            assert backend.requests_seen == 0
            [decision] = queued_events(aws)
            assert decision["event_type"] == "decision"
            assert decision["decision"]["outcome"] == "deny"
            assert decision["decision"]["reasons"] == [reason]
            assert decision["decision"]["policy_version"] == version
            assert decision["decision"]["decided_by"] == "proxy"
            assert decision["decision"]["cached"] is True
            assert decision["resource"]["path"] == later_path


def test_a_denial_under_a_cached_answer_reaches_the_proxy_and_its_retry_is_decided_again(
    stage: Container,
    aws: Resources,
    backend: DemoBackend,
    idp: FakeIdp,
    rsa_key: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # With caching on, a Deny for this method and path would be replayed by the gateway for
    # the whole TTL, unaudited: the on-call engineer's retry with a justification included.
    container = rebuild_container(idp, monkeypatch, GATEHOUSE_AUTHORIZER_TTL_SECONDS="300")
    document = policy_document(backend.url)
    document["break_glass"] = {"groups": ["oncall"]}
    container.policy_store.publish(document, actor="test")
    oncall = make_token(rsa_key, "RS256", "rsa-1", claims(groups=["oncall"]))
    first = proxy_event(oncall, method="GET", request_id="glass-first")
    request = {k: v for k, v in first.items() if k not in ("body", "isBase64Encoded")}
    request["type"], request["methodArn"] = "REQUEST", f"{API}/GET{first['path']}"
    answer = app.gatehouse_authorizer(request, LambdaContext(aws_request_id="lambda-authorizer"))
    [(effect, resources)] = [
        (s["Effect"], s["Resource"]) for s in answer["policyDocument"]["Statement"]
    ]
    assert effect == "Allow"
    assert request["methodArn"] in resources
    context = as_gateway_context(answer)
    assert context["refusal"] == "no_matching_rule"
    queued_events(aws)
    first["requestContext"]["authorizer"] = context

    refused = invoke(first)

    assert refused.status == 403
    assert refused.json() == {"message": "forbidden", "request_id": "glass-first"}
    [response] = queued_events(aws)
    assert response["event_type"] == "response"
    assert response["decision"]["outcome"] == "deny"
    assert response["decision"]["reasons"] == ["no_matching_rule"]
    assert response["outcome"]["status"] == 403
    assert response["request"]["decision_id"] == context["decision_id"]

    retry = proxy_event(oncall, method="GET", request_id="glass-retry")
    set_header(retry, "X-Gatehouse-Justification", ["INC-9 checkout down"])
    retry["requestContext"]["authorizer"] = context  # served from the gateway's cache

    allowed = invoke(retry)

    assert allowed.status == 200
    assert backend.requests_seen == 1
    decision, _ = queued_events(aws)
    assert decision["decision"]["reasons"] == ["break_glass"]
    assert decision["decision"]["decided_by"] == "proxy"
    assert decision["elevation"]["justification"] == "INC-9 checkout down"


def test_cached_allow_for_an_expired_identity_is_a_401(
    stage: Container, aws: Resources, backend: DemoBackend, token: str
) -> None:
    identity = Identity(
        issuer=ISSUER,
        subject="alice",
        audience=AUDIENCE,
        expires_at=int(time.time()) - 1,
        email="alice@example.com",
        groups=frozenset({"engineering"}),
    )
    decision = stage.active_policy.current().evaluate(
        identity, AccessRequest("gatehouse.example.com", "POST", "/api/projects/42")
    )
    assert decision.allowed
    context = authorizer_context(
        identity, decision, decision_id=uuid7(), request_id="an-earlier-request"
    )
    event = proxy_event(token)
    event["requestContext"]["authorizer"] = as_gateway_context(
        {"context": context, "principalId": "alice"}
    )

    reply = invoke(event)

    assert reply.status == 401
    assert reply.json()["request_id"] == REQUEST_ID
    assert backend.requests_seen == 0
    [audited] = queued_events(aws)
    assert audited["decision"]["outcome"] == "deny"
    assert audited["decision"]["reasons"] == ["token_expired"]
    assert audited["decision"]["cached"] is True
    assert audited["principal"]["subject"] == "alice"


@pytest.mark.usefixtures("_powertools_logger")
def test_logging_is_quiet_for_a_normal_request(
    stage: Container,
    aws: Resources,
    backend: DemoBackend,
    token: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    event = proxy_event(token)
    authorize(event)

    assert invoke(event).status == 200
    assert [r for r in caplog.records if r.levelno >= logging.WARNING] == []
