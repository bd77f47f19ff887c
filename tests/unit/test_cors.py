"""CORS at the edge: the ``cors`` block's validation, preflight matching, answer headers."""

from __future__ import annotations

from typing import Any

import pytest

from chalicelib.authorize.cors import (
    Preflight,
    decide_preflight,
    preflight_headers,
    preflight_of,
    with_response_cors,
)
from chalicelib.policy import CorsPolicy, PolicyInvalid, parse_policy
from chalicelib.reasons import Reason

APP = "https://app.example.com"
POLICY = CorsPolicy(
    origins=frozenset({APP, "http://localhost:3000"}),
    methods=frozenset({"GET", "POST", "PATCH"}),
    headers=frozenset({"content-type", "authorization"}),
    max_age=600,
    credentials=True,
)
ANY_ORIGIN = CorsPolicy(origins=frozenset({"*"}), methods=frozenset({"GET"}))


def document(cors: Any) -> dict[str, Any]:
    route = {"id": "spa", "upstream": "https://spa.internal", "audience": "spa", "cors": cors}
    return {"version": 1, "routes": [route]}


# --- what a preflight is ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "headers", "expected"),
    [
        pytest.param(
            "OPTIONS",
            [("Origin", APP), ("Access-Control-Request-Method", "POST")],
            Preflight(APP, "POST"),
            id="preflight",
        ),
        pytest.param(
            "OPTIONS",
            [
                ("origin", APP),
                ("access-control-request-method", "GET"),
                ("Access-Control-Request-Headers", "Content-Type, X-A,,x-b"),
            ],
            Preflight(APP, "GET", ("content-type", "x-a", "x-b")),
            id="headers listed, any case",
        ),
        pytest.param("OPTIONS", [("Origin", APP)], None, id="no request method: not one"),
        pytest.param(
            "OPTIONS",
            [("Origin", APP), ("Access-Control-Request-Method", "GET"), ("Authorization", "x")],
            None,
            id="with Authorization: an ordinary request",
        ),
        pytest.param(
            "OPTIONS",
            [("Origin", APP), ("Access-Control-Request-Method", "GET"), ("cookie", "a=b")],
            None,
            id="with a cookie: an ordinary request",
        ),
        pytest.param(
            "OPTIONS", [("Access-Control-Request-Method", "GET")], None, id="no origin: not one"
        ),
        pytest.param(
            "GET",
            [("Origin", APP), ("Access-Control-Request-Method", "GET")],
            None,
            id="not OPTIONS: not one",
        ),
        pytest.param(
            "OPTIONS",
            [
                ("Origin", APP),
                ("Origin", "https://x.test"),
                ("Access-Control-Request-Method", "GET"),
            ],
            Preflight("", "GET"),
            id="two origins: no origin matches",
        ),
    ],
)
def test_what_counts_as_a_preflight(
    method: str, headers: list[tuple[str, str]], expected: Preflight | None
) -> None:
    assert preflight_of(method, headers) == expected


# --- matching -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("cors", "preflight", "reason"),
    [
        pytest.param(POLICY, Preflight(APP, "POST"), Reason.CORS_PREFLIGHT_ALLOWED, id="listed"),
        pytest.param(
            POLICY,
            Preflight("http://localhost:3000", "GET", ("content-type", "authorization")),
            Reason.CORS_PREFLIGHT_ALLOWED,
            id="listed origin with port, listed headers",
        ),
        pytest.param(
            POLICY,
            Preflight("https://evil.test", "GET"),
            Reason.CORS_ORIGIN_NOT_ALLOWED,
            id="other",
        ),
        pytest.param(
            POLICY,
            Preflight("https://app.example.com.evil.test", "GET"),
            Reason.CORS_ORIGIN_NOT_ALLOWED,
            id="suffix of a listed origin",
        ),
        pytest.param(
            POLICY,
            Preflight("http://app.example.com", "GET"),
            Reason.CORS_ORIGIN_NOT_ALLOWED,
            id="other scheme",
        ),
        pytest.param(
            POLICY,
            Preflight("https://app.example.com:8443", "GET"),
            Reason.CORS_ORIGIN_NOT_ALLOWED,
            id="other port",
        ),
        pytest.param(
            POLICY,
            Preflight("https://APP.example.com", "GET"),
            Reason.CORS_ORIGIN_NOT_ALLOWED,
            id="not as browsers spell it",
        ),
        pytest.param(POLICY, Preflight("null", "GET"), Reason.CORS_ORIGIN_NOT_ALLOWED, id="null"),
        pytest.param(POLICY, Preflight("", "GET"), Reason.CORS_ORIGIN_NOT_ALLOWED, id="ambiguous"),
        pytest.param(
            ANY_ORIGIN, Preflight("null", "GET"), Reason.CORS_ORIGIN_NOT_ALLOWED, id="* not null"
        ),
        pytest.param(
            ANY_ORIGIN, Preflight("https://x.test", "GET"), Reason.CORS_PREFLIGHT_ALLOWED, id="*"
        ),
        pytest.param(
            POLICY, Preflight(APP, "DELETE"), Reason.CORS_METHOD_NOT_ALLOWED, id="other method"
        ),
        pytest.param(
            POLICY,
            Preflight(APP, "patch"),
            Reason.CORS_METHOD_NOT_ALLOWED,
            id="methods are case-sensitive (fetch does not upper-case patch)",
        ),
        pytest.param(
            POLICY,
            Preflight(APP, "GET", ("content-type", "x-secret")),
            Reason.CORS_HEADERS_NOT_ALLOWED,
            id="one header not listed",
        ),
        pytest.param(
            ANY_ORIGIN,
            Preflight("https://x.test", "GET", ("content-type",)),
            Reason.CORS_HEADERS_NOT_ALLOWED,
            id="no headers listed",
        ),
    ],
)
def test_preflight_matching(cors: CorsPolicy, preflight: Preflight, reason: Reason) -> None:
    assert decide_preflight(cors, preflight) is reason
    assert reason.is_cors_preflight


def test_an_allowed_preflight_is_answered_with_the_route_policy_and_the_origin_echoed() -> None:
    assert preflight_headers(POLICY, Preflight(APP, "POST")) == {
        "Access-Control-Allow-Origin": [APP],
        "Access-Control-Allow-Methods": ["GET, POST, PATCH"],
        "Access-Control-Allow-Headers": ["authorization, content-type"],
        "Access-Control-Max-Age": ["600"],
        "Access-Control-Allow-Credentials": ["true"],
        "Vary": ["Origin"],
    }
    assert preflight_headers(ANY_ORIGIN, Preflight("https://x.test", "GET")) == {
        "Access-Control-Allow-Origin": ["https://x.test"],
        "Access-Control-Allow-Methods": ["GET"],
        "Vary": ["Origin"],
    }


@pytest.mark.parametrize(
    ("origins", "upstream", "expected"),
    [
        pytest.param(
            [APP],
            {"Access-Control-Allow-Origin": ["*"], "Vary": ["Accept"]},
            {
                "Vary": ["Accept", "Origin"],
                "Access-Control-Allow-Origin": [APP],
                "Access-Control-Allow-Credentials": ["true"],
            },
            id="listed: named, the upstream's replaced",
        ),
        pytest.param(
            ["https://evil.test"],
            {"access-control-allow-origin": ["https://evil.test"]},
            {"Vary": ["Origin"]},
            id="other: the upstream's removed",
        ),
        pytest.param([], {}, {"Vary": ["Origin"]}, id="no origin"),
        pytest.param([APP, APP], {}, {"Vary": ["Origin"]}, id="two origins"),
        pytest.param([APP], {"vary": ["origin"]}, None, id="vary kept"),
    ],
)
def test_answers_on_a_cors_route(
    origins: list[str], upstream: dict[str, list[str]], expected: dict[str, list[str]] | None
) -> None:
    answered = with_response_cors(POLICY, origins, upstream)
    if expected is None:
        assert answered["vary"] == ["origin"]
        assert "Vary" not in answered
    else:
        assert answered == expected


def test_answers_on_a_route_without_cors_are_left_alone() -> None:
    upstream = {"Access-Control-Allow-Origin": ["*"]}
    assert with_response_cors(None, [APP], upstream) == upstream


# --- validation -----------------------------------------------------------------------------


def test_a_valid_block_is_read_as_written() -> None:
    cors = {
        "origins": [APP, "http://localhost:3000", "http://[::1]:8080"],
        "methods": ["GET", "POST"],
        "headers": ["Content-Type", "X-Requested-With"],
        "max_age": 0,
        "credentials": True,
    }
    [route] = parse_policy(document(cors)).routes
    assert route.cors == CorsPolicy(
        origins=frozenset(cors["origins"]),
        methods=frozenset({"GET", "POST"}),
        headers=frozenset({"content-type", "x-requested-with"}),
        max_age=0,
        credentials=True,
    )
    assert route.identity_headers is False


@pytest.mark.parametrize(
    ("cors", "field", "says"),
    [
        pytest.param(
            {"origins": ["*"], "methods": ["GET"], "credentials": True},
            "origins",
            "cannot be used with credentials",
            id="* with credentials",
        ),
        pytest.param(
            {"origins": ["*", APP], "methods": ["GET"]}, "origins", "list it alone", id="* and more"
        ),
        pytest.param(
            {"origins": ["https://app.example.com/"], "methods": ["GET"]},
            "origins",
            "not an origin",
            id="trailing slash",
        ),
        pytest.param(
            {"origins": ["https://app.example.com/path"], "methods": ["GET"]},
            "origins",
            "not an origin",
            id="path",
        ),
        pytest.param(
            {"origins": ["app.example.com"], "methods": ["GET"]},
            "origins",
            "not an origin",
            id="no scheme",
        ),
        pytest.param(
            {"origins": ["ftp://app.example.com"], "methods": ["GET"]},
            "origins",
            "not an origin",
            id="other scheme",
        ),
        pytest.param(
            {"origins": ["https://App.example.com"], "methods": ["GET"]},
            "origins",
            "not an origin",
            id="upper case",
        ),
        pytest.param(
            {"origins": ["https://app.example.com:443"], "methods": ["GET"]},
            "origins",
            "default port",
            id="default port",
        ),
        pytest.param(
            {"origins": ["https://app.example.com:70000"], "methods": ["GET"]},
            "origins",
            "65535",
            id="port out of range",
        ),
        pytest.param({"origins": [], "methods": ["GET"]}, "origins", "at least one", id="none"),
        pytest.param({"methods": ["GET"]}, "origins", "list", id="origins missing"),
        pytest.param({"origins": [APP], "methods": ["*"]}, "methods", "no wildcard", id="*"),
        pytest.param({"origins": [APP], "methods": ["get"]}, "methods", "HTTP method", id="case"),
        pytest.param({"origins": [APP]}, "methods", "list", id="methods missing"),
        pytest.param(
            {"origins": [APP], "methods": ["GET"], "headers": ["*"]},
            "headers",
            "no wildcard",
            id="header wildcard",
        ),
        pytest.param(
            {"origins": [APP], "methods": ["GET"], "headers": ["X_Thing"]},
            "headers",
            "no _",
            id="header with _",
        ),
        pytest.param(
            {"origins": [APP], "methods": ["GET"], "max_age": -1}, "max_age", "0 to", id="negative"
        ),
        pytest.param(
            {"origins": [APP], "methods": ["GET"], "max_age": True}, "max_age", "0 to", id="bool"
        ),
        pytest.param(
            {"origins": [APP], "methods": ["GET"], "max_age": 86401}, "max_age", "0 to", id="long"
        ),
        pytest.param(
            {"origins": [APP], "methods": ["GET"], "credentials": "yes"},
            "credentials",
            "true or false",
            id="credentials not a boolean",
        ),
        pytest.param(
            {"origins": [APP], "methods": ["GET"], "allow": True}, "allow", "", id="unknown field"
        ),
        pytest.param([APP], "cors", "mapping", id="not a mapping"),
    ],
)
def test_a_malformed_block_is_refused_naming_the_field(cors: Any, field: str, says: str) -> None:
    with pytest.raises(PolicyInvalid) as refused:
        parse_policy(document(cors))
    text = str(refused.value)
    assert field in text
    assert says in text


def test_identity_headers_must_be_a_boolean() -> None:
    doc = document({"origins": [APP], "methods": ["GET"]})
    doc["routes"][0]["identity_headers"] = "yes"
    with pytest.raises(PolicyInvalid, match="identity_headers"):
        parse_policy(doc)


# --- the reason codes -------------------------------------------------------------------------

CORS_REASONS = [
    Reason.CORS_PREFLIGHT_ALLOWED,
    Reason.CORS_ORIGIN_NOT_ALLOWED,
    Reason.CORS_METHOD_NOT_ALLOWED,
    Reason.CORS_HEADERS_NOT_ALLOWED,
]


@pytest.mark.parametrize("reason", CORS_REASONS, ids=str)
def test_preflight_codes_are_decisions_of_their_own(reason: Reason) -> None:
    """Counted as allowed or denied, never as a credential failure or a failure to decide."""
    assert reason.is_cors_preflight
    assert not reason.is_credential_failure
    assert not reason.is_decision_failure
    assert not reason.is_ambiguous
    assert Reason(reason.value) is reason  # codes are their own values


def test_no_other_code_is_a_preflight_code() -> None:
    assert [r for r in Reason if r.is_cors_preflight] == CORS_REASONS
