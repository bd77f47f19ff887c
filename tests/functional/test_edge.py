"""What IAP users expect at the edge: health, CORS preflights, identity headers, revocation.

Handlers fed the API Gateway proxy fixture (``tests/events/proxy_request.json``)
through ``app.app``, each request decided first by the real authorizer (its
answer copied into the event as API Gateway does); AWS is moto in-process and
the upstream is the demo backend, which answers with what it received.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest

from chalicelib import entrypoints
from chalicelib.grants.api import GrantApi
from gatehouse.grant_commands import revocation_bound_text
from tests.functional.conftest import queued_events
from tests.functional.test_grant_api import REQUEST_BODY, call, token_for
from tests.functional.test_proxy import (
    API,
    as_gateway_context,
    authorize,
    authorizer_answer,
    invoke,
    proxy_event,
    publish,
    sent,
    set_header,
)
from tests.helpers import claims, load_event, make_token

if TYPE_CHECKING:
    from chalicelib.container import Container
    from gatehouse.dev.backend import DemoBackend
    from gatehouse.dev.bootstrap import Resources

APP_ORIGIN = "https://app.example.com"
CORS = {
    "origins": [APP_ORIGIN, "http://localhost:3000"],
    "methods": ["GET", "POST"],
    "headers": ["Authorization", "Content-Type"],
    "max_age": 600,
    "credentials": True,
}


@pytest.fixture
def token(rsa_key: Any) -> str:
    return make_token(rsa_key, "RS256", "rsa-1")


def preflight_event(
    origin: str | None, method: str, *, path: str = "/api/projects/42", headers: str = ""
) -> dict[str, Any]:
    """A browser's preflight: OPTIONS, no credentials, Origin and Access-Control-Request-*."""
    event = proxy_event("unused", method="OPTIONS", path=path, body=None)
    set_header(event, "Authorization", None)
    set_header(event, "Cookie", None)
    set_header(event, "Origin", [origin] if origin else None)
    set_header(event, "Access-Control-Request-Method", [method])
    set_header(event, "Access-Control-Request-Headers", [headers] if headers else None)
    return event


def effects(answer: dict[str, Any]) -> list[tuple[str, list[str]]]:
    return [(s["Effect"], s["Resource"]) for s in answer["policyDocument"]["Statement"]]


def decisions(aws: Resources) -> list[dict[str, Any]]:
    return [e for e in queued_events(aws) if e["event_type"] == "decision"]


# --- health -------------------------------------------------------------------------------


def health_event(method: str) -> dict[str, Any]:
    event = load_event("proxy_request")
    context = event["requestContext"]
    context.pop("authorizer")
    event.update(resource="/.gatehouse/health", path="/.gatehouse/health", httpMethod=method)
    context.update(resourcePath="/.gatehouse/health", httpMethod=method)
    event["headers"] = {"Host": "gatehouse.example.com"}
    event["multiValueHeaders"] = {"Host": ["gatehouse.example.com"]}
    event["pathParameters"] = event["body"] = None
    return event


@pytest.mark.parametrize(("method", "body"), [("GET", b'{"status":"ok"}'), ("HEAD", b"")])
def test_health_answers_without_a_token_builds_nothing_and_writes_no_audit_event(
    stage: Container, aws: Resources, method: str, body: bytes
) -> None:
    entrypoints.use_container(None)  # a cold container: health must not build one
    try:
        reply = invoke(health_event(method))
        built = entrypoints._container
    finally:
        entrypoints.use_container(stage)

    assert (reply.status, reply.body) == (200, body)
    assert reply.header("Cache-Control") == ["no-store"]
    assert reply.header("Content-Type") == ["application/json"]
    assert built is None  # no settings read, no client built: no AWS call
    assert queued_events(aws) == []


# --- CORS preflights ----------------------------------------------------------------------


def test_a_preflight_from_a_listed_origin_is_answered_by_gatehouse_and_audited(
    stage: Container, aws: Resources, backend: DemoBackend
) -> None:
    publish(stage, backend.url, cors=CORS)
    event = preflight_event(APP_ORIGIN, "POST", headers="content-type, authorization")
    seen_before = backend.requests_seen

    answer = authorizer_answer(event)
    assert effects(answer) == [("Allow", [f"{API}/OPTIONS/api/projects/42"])]
    event["requestContext"]["authorizer"] = as_gateway_context(answer)
    reply = invoke(event)

    assert (reply.status, reply.body) == (204, b"")
    assert reply.header("Access-Control-Allow-Origin") == [APP_ORIGIN]
    assert reply.header("Access-Control-Allow-Methods") == ["GET, POST"]
    assert reply.header("Access-Control-Allow-Headers") == ["authorization, content-type"]
    assert reply.header("Access-Control-Allow-Credentials") == ["true"]
    assert reply.header("Access-Control-Max-Age") == ["600"]
    assert reply.header("Vary") == ["Origin"]
    assert backend.requests_seen == seen_before  # never forwarded
    [decision] = decisions(aws)
    assert decision["decision"]["outcome"] == "allow"
    assert decision["decision"]["reasons"] == ["cors_preflight_allowed"]
    assert decision["resource"]["route_id"] == "demo"
    assert decision["principal"] is None


@pytest.mark.parametrize(
    ("origin", "method", "headers", "reason"),
    [
        pytest.param("https://evil.example", "POST", "", "cors_origin_not_allowed", id="origin"),
        pytest.param("null", "GET", "", "cors_origin_not_allowed", id="null origin"),
        pytest.param(APP_ORIGIN, "DELETE", "", "cors_method_not_allowed", id="method"),
        pytest.param(APP_ORIGIN, "GET", "x-secret", "cors_headers_not_allowed", id="header"),
    ],
)
def test_a_preflight_not_allowed_is_denied_at_the_gateway_without_cors_headers(
    stage: Container,
    aws: Resources,
    backend: DemoBackend,
    origin: str,
    method: str,
    headers: str,
    reason: str,
) -> None:
    publish(stage, backend.url, cors=CORS)

    answer = authorizer_answer(preflight_event(origin, method, headers=headers))

    # An explicit Deny: API Gateway answers 403 (its ACCESS_DENIED response, no CORS headers).
    assert effects(answer) == [("Deny", [f"{API}/OPTIONS/api/projects/42"])]
    assert answer["context"]["cors_preflight"] == reason
    [decision] = decisions(aws)
    assert (decision["decision"]["outcome"], decision["decision"]["reasons"]) == ("deny", [reason])


def test_the_proxy_refuses_a_preflight_it_would_not_have_allowed(
    stage: Container, aws: Resources, backend: DemoBackend
) -> None:
    """A context that says allowed is not enough: the same policy version must agree."""
    publish(stage, backend.url, cors=CORS)
    event = preflight_event(APP_ORIGIN, "GET")
    event["requestContext"]["authorizer"] = as_gateway_context(authorizer_answer(event))
    set_header(event, "Origin", ["https://evil.example"])  # changed after the decision

    reply = invoke(event)

    assert reply.status == 403
    assert reply.header("Access-Control-Allow-Origin") == []


def test_a_preflight_to_a_route_without_cors_is_decided_like_any_other_request(
    stage: Container, aws: Resources, backend: DemoBackend, token: str
) -> None:
    # No cors on the route: without a token, 401 like any request.
    from chalicelib.authorize import AuthorizerFailure

    with pytest.raises(Exception, match="Unauthorized") as raised:
        authorizer_answer(preflight_event(APP_ORIGIN, "GET"))
    assert not isinstance(raised.value, AuthorizerFailure)
    assert decisions(aws)[0]["decision"]["reasons"] == ["missing_credentials"]

    # With a token, the rules decide (engineering may OPTIONS /api/**) and it is forwarded.
    event = preflight_event(APP_ORIGIN, "GET")
    set_header(event, "Authorization", [f"Bearer {token}"])
    authorize(event)
    reply = invoke(event)
    assert reply.status == 200
    assert reply.json()["method"] == "OPTIONS"
    assert reply.header("Access-Control-Allow-Origin") == []


def test_an_options_request_with_credentials_to_a_cors_route_is_an_ordinary_request(
    stage: Container, backend: DemoBackend, token: str
) -> None:
    """Browsers never send credentials with a preflight: this is decided by the rules."""
    publish(stage, backend.url, cors=CORS)
    event = preflight_event(APP_ORIGIN, "GET")
    set_header(event, "Authorization", [f"Bearer {token}"])
    authorize(event)
    reply = invoke(event)
    assert reply.status == 200
    assert reply.json()["method"] == "OPTIONS"
    assert reply.header("Access-Control-Allow-Origin") == [APP_ORIGIN]  # an answer, named


@pytest.mark.parametrize(
    ("origin", "allowed"),
    [(APP_ORIGIN, True), ("https://evil.example", False)],
    ids=["listed origin", "other origin"],
)
def test_answers_to_a_listed_origin_name_it_and_the_upstreams_cors_headers_are_replaced(
    stage: Container, backend: DemoBackend, token: str, origin: str, allowed: bool
) -> None:
    publish(stage, backend.url, cors=CORS)
    event = proxy_event(token, method="GET", body=None)
    set_header(event, "Origin", [origin])
    authorize(event)

    reply = invoke(event)

    assert reply.status == 200
    assert reply.header("Access-Control-Allow-Origin") == ([origin] if allowed else [])
    assert reply.header("Access-Control-Allow-Credentials") == (["true"] if allowed else [])
    assert "Origin" in reply.header("Vary")


# --- identity headers ---------------------------------------------------------------------

CLIENT_COPIES = {
    "X-Gatehouse-User": ["root"],
    "x-gatehouse-email": ["ceo@example.com"],
    "X-GATEHOUSE-GROUPS": ["admins"],
    "X_Gatehouse_User": ["root"],
    "X-Gatehouse-Anything": ["else"],
}


@pytest.mark.parametrize("feature", [True, False], ids=["identity_headers", "without"])
def test_identity_headers_reach_the_upstream_exactly_and_client_copies_never_do(
    stage: Container, backend: DemoBackend, rsa_key: Any, feature: bool
) -> None:
    publish(stage, backend.url, identity_headers=feature)
    groups = ["engineering", "on call", "r&d,eu"]
    token = make_token(rsa_key, "RS256", "rsa-1", claims(groups=groups))
    event = proxy_event(token, method="GET", body=None)
    for name, values in CLIENT_COPIES.items():
        set_header(event, name, values)
    authorize(event)

    seen = invoke(event).json()

    gatehouse = {
        name.lower(): values
        for name, values in seen["headers"].items()
        if name.lower().replace("_", "-").startswith("x-gatehouse-")
    }
    expected = {"x-gatehouse-assertion"}
    if feature:
        expected |= {"x-gatehouse-user", "x-gatehouse-email", "x-gatehouse-groups"}
    assert set(gatehouse) == expected
    assert sent(seen, "X-Gatehouse-Assertion") != ["forged.by.client"]
    if feature:
        assert sent(seen, "X-Gatehouse-User") == ["alice"]
        assert sent(seen, "X-Gatehouse-Email") == ["alice@example.com"]
        # Sorted, comma-separated; a space and a comma inside a name are percent-encoded.
        assert sent(seen, "X-Gatehouse-Groups") == ["engineering,on%20call,r&d%2Ceu"]


# --- revocation bound ---------------------------------------------------------------------


def test_revoke_answers_and_prints_when_the_revocation_is_in_force(
    granting: Container, rsa_key: Any
) -> None:
    vars(granting)["grant_api"] = GrantApi(
        granting.verifier,
        granting.grant_store,
        granting.active_policy,
        granting.emitter,
        stage="test",
        grant_refresh_seconds=granting.settings.policy_refresh_seconds,
    )
    erin = token_for(rsa_key, "erin", ["support"])
    sam = token_for(rsa_key, "sam", ["security"])
    _, requested = call("POST", "/.gatehouse/grants", erin, REQUEST_BODY)
    call("POST", f"/.gatehouse/grants/{requested['id']}/approve", sam)

    status, revoked = call("POST", f"/.gatehouse/grants/{requested['id']}/revoke", erin)

    assert (status, revoked["status"]) == (200, "revoked")
    refresh = granting.settings.policy_refresh_seconds
    assert revoked["in_effect_within_seconds"] == refresh
    assert revoked["in_effect_within_seconds_at_most"] == max(refresh, 60.0)
    said = revocation_bound_text(revoked)
    assert f"in effect within {refresh:g} s" in said
    assert "at most 60 s" in said
