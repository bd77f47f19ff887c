"""Security regressions of the foundation: header hygiene, the authorizer context, a second
issuer's namesakes, issuer availability, the identity assertion, and what client text reaches
the trail."""

from __future__ import annotations

import http.client
import json
import re
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from chalicelib.apigw.events import parse_authorizer_event
from chalicelib.audit.redaction import redact_query
from chalicelib.audit.schema import RequestRecord
from chalicelib.authorize.context import authorizer_context, granted_access
from chalicelib.aws.signers import LocalSigner
from chalicelib.config import DEFAULT_QUERY_REDACTION, TrustedIssuer
from chalicelib.identity import Identity, JwksCache, TokenRejected
from chalicelib.proxy.assertion import AssertionIssuer
from chalicelib.proxy.headers import ForwardedFor, client_response_headers, upstream_request_headers
from chalicelib.readable import MAX_USER_AGENT, TRUNCATED
from chalicelib.reasons import Reason
from tests.helpers import ISSUER, load_event

REDACTION = re.compile(DEFAULT_QUERY_REDACTION)
FORWARDED = ForwardedFor("203.0.113.7", "https", "gatehouse.example.com", "req-1")


def _sent(headers: list[tuple[str, str]]) -> dict[str, list[str]]:
    result = upstream_request_headers(
        headers, FORWARDED, pass_authorization=False, assertion="a.b.c"
    )
    sent: dict[str, list[str]] = {}
    for name, value in result.headers:
        sent.setdefault(name.lower(), []).append(value)
    return sent


# --- headers that change the method, path or client --------------------------------------------


@pytest.mark.parametrize(
    "name",
    [
        "X-HTTP-Method-Override",
        "X-Method-Override",
        "X-HTTP-Method",
        "X-Original-URL",
        "X-Rewrite-URL",
        "True-Client-IP",
        "X-Client-IP",
        "CF-Connecting-IP",
        "X-Cluster-Client-IP",
        "X-Forwarded-Prefix",
    ],
)
def test_headers_that_change_method_path_or_client_are_not_forwarded(name: str) -> None:
    assert name.lower() not in _sent([(name, "DELETE /admin 6.6.6.6"), ("Accept", "*/*")])


def test_forwarded_proto_is_the_gateways_not_the_clients() -> None:
    assert _sent([("X-Forwarded-Proto", "http")])["x-forwarded-proto"] == ["https"]


# --- header names servers read as others -------------------------------------------------------


@pytest.mark.parametrize(
    "name",
    [
        "Transfer-Encoding ",
        "Content-Length\t",
        "X Custom",
        "X_Gatehouse_Assertion",
        "X_Forwarded_For",
    ],
    ids=[
        "trailing space",
        "trailing tab",
        "inner space",
        "underscore gatehouse",
        "underscore forwarded",
    ],
)
def test_header_names_that_servers_could_read_as_another_header_are_dropped(name: str) -> None:
    sent = _sent([(name, "x")])

    assert name.lower() not in sent
    assert sent["x-gatehouse-assertion"] == ["a.b.c"]


def test_underscore_spelling_of_the_gateway_namespace_is_reported_as_spoofing() -> None:
    result = upstream_request_headers(
        [("X_Gatehouse_User", "root")], FORWARDED, pass_authorization=False, assertion="a.b.c"
    )

    assert result.spoofed == ("x_gatehouse_user",)


# --- upstream response headers -----------------------------------------------------------------


def test_folded_upstream_header_values_are_unfolded_and_request_id_is_the_gateways() -> None:
    headers = client_response_headers(
        [
            ("X-Note", "a\r\n Set-Cookie: evil=1"),
            ("x-request-id", "upstream-id"),
            ("Set-Cookie", "a=1"),
        ]
    )

    assert headers["X-Note"] == ["a Set-Cookie: evil=1"]
    assert "x-request-id" not in {name.lower() for name in headers}
    assert headers["Set-Cookie"] == ["a=1"]


# --- the authorizer context --------------------------------------------------------------------


def test_a_context_without_a_decision_is_complete_and_readable_by_the_proxy() -> None:
    identity = Identity(ISSUER, "alice", "gatehouse", 2_000_000_000, groups=frozenset({"eng"}))

    context = authorizer_context(identity, None, decision_id="d-1", request_id="r-1")
    access = granted_access({key: str(value) for key, value in context.items()})

    assert (access.policy_version, access.route_id, access.decided_for) == (0, "", "r-1")
    assert access.identity.groups == frozenset({"eng"})


# --- the authorizer context, round trip --------------------------------------------------------


@pytest.mark.parametrize("claimed", [True, False])
def test_whether_groups_were_claimed_survives_the_authorizer_context(claimed: bool) -> None:
    identity = Identity(ISSUER, "alice", "gatehouse", 2_000_000_000, groups_claimed=claimed)

    context = authorizer_context(identity, None, decision_id="d", request_id="r")

    assert granted_access(context).identity.groups_claimed is claimed


# --- a second issuer's namesakes ---------------------------------------------------------------

PARTNER = "https://partner.example.net"


def test_a_second_issuers_namesake_matches_none_of_the_first_issuers_rules() -> None:
    from chalicelib.aws.sessions import source_identity_of
    from chalicelib.policy import AccessRequest, CompiledPolicy, parse_policy

    route = {"id": "app", "path_prefix": "/", "upstream": "http://app", "audience": "app"}
    grant = {"effect": "allow", "routes": ["app"], "actions": ["GET"]}
    policy = CompiledPolicy(
        parse_policy(
            {
                "version": 1,
                "routes": [route],
                "rules": [
                    {"id": "alice", "subjects": {"users": ["alice", "alice@corp.com"]}, **grant},
                    {"id": "admins", "subjects": {"groups": ["admins"]}, **grant},
                    {"id": "corp", "subjects": {"domains": ["corp.com"]}, **grant},
                ],
                "break_glass": {"groups": ["admins"], "require_justification": False},
            }
        ),
        1,
        default_issuer=ISSUER + "/",
    )
    ours = Identity(ISSUER, "alice", "app", 2_000_000_000, "alice@corp.com", frozenset({"admins"}))
    theirs = Identity(
        PARTNER, "alice", "app", 2_000_000_000, "alice@corp.com", frozenset({"admins"})
    )
    request = AccessRequest("h", "GET", "/x")

    # Through the authorizer context, as the proxy decides again.
    context = authorizer_context(theirs, None, decision_id="d", request_id="r")
    replayed = granted_access(context).identity

    assert policy.evaluate(ours, request).matched_rules == ("alice", "admins", "corp")
    for identity in (theirs, replayed):
        decision = policy.evaluate(identity, request)
        assert (decision.allowed, decision.break_glass) == (False, False)
        assert source_identity_of(identity, ISSUER) != source_identity_of(ours, ISSUER)


# --- issuer availability -----------------------------------------------------------------------


def test_a_jwks_fetch_that_raises_anything_keeps_the_issuer_merely_unavailable() -> None:
    def broken(url: str) -> Any:
        raise http.client.LineTooLong("header line")

    cache = JwksCache(broken, cooldown_seconds=30, max_age_seconds=3600)
    issuer = TrustedIssuer(ISSUER, ("gatehouse",), jwks_uri=f"{ISSUER}/jwks")

    with pytest.raises(TokenRejected) as rejected:
        cache.get_key(issuer, "k1")

    assert rejected.value.reason is Reason.ISSUER_UNAVAILABLE


# --- the identity assertion --------------------------------------------------------------------


@pytest.fixture(scope="module")
def signer() -> LocalSigner:
    return LocalSigner(ec.generate_private_key(ec.SECP256R1()))


def _issue(signer: LocalSigner, identity: Identity, now: float = 1_800_000_000) -> dict[str, Any]:
    issuer = AssertionIssuer(signer, issuer="https://gw.example", ttl_seconds=60, clock=lambda: now)
    token = issuer.issue(
        identity,
        audience="app",
        request_id="r-1",
        decision_id="d-1",
        method="POST",
        url="https://gw.example/api/items",
    )
    key = jwt.PyJWK.from_dict(signer.jwk()).key
    return jwt.decode(
        token,
        key,
        algorithms=["ES256"],
        audience="app",
        options={"verify_exp": False, "verify_iat": False, "verify_nbf": False},
    )


def test_the_assertion_names_its_request(signer: LocalSigner) -> None:
    claims = _issue(signer, Identity(ISSUER, "alice", "gatehouse", 2_000_000_000))

    assert (claims["htm"], claims["htu"], claims["rid"]) == (
        "POST",
        "https://gw.example/api/items",
        "r-1",
    )


def test_the_assertion_never_outlives_the_token(signer: LocalSigner) -> None:
    claims = _issue(
        signer, Identity(ISSUER, "alice", "gatehouse", 1_800_000_010), now=1_800_000_000
    )

    assert claims["exp"] == 1_800_000_010


def test_a_claim_orjson_refuses_is_still_signed(signer: LocalSigner) -> None:
    claims = _issue(
        signer, Identity(ISSUER, "alice", "gatehouse", 2_000_000_000, email="a\ud800@x.io")
    )

    assert claims["sub"] == "alice"


# --- query redaction ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name",
    [
        "jwt",
        "SAMLResponse",
        "code_verifier",
        "ticket",
        "otp",
        "pwd",
        "pin",
        "sid",
        "nonce",
        "privatekey",
    ],
)
def test_more_secret_looking_query_values_are_redacted(name: str) -> None:
    assert redact_query([(name, "s3cr3t")], REDACTION) == f"{name}=REDACTED"


# --- client text is capped ---------------------------------------------------------------------


def test_client_text_in_audit_records_is_capped() -> None:
    event = load_event("authorizer_request")
    event["multiValueHeaders"]["User-Agent"] = ["x" * 20_000]
    request = parse_authorizer_event(event)

    record = RequestRecord.from_request(request, None, REDACTION)

    assert record.user_agent is not None
    assert len(record.user_agent) == MAX_USER_AGENT
    assert record.user_agent.endswith(TRUNCATED)
    assert json.dumps(record.query).count("REDACTED") == 1  # access_token in the fixture
