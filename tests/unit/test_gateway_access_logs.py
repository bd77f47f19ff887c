"""API Gateway access logs as ``gateway`` audit events: envelope, mapping, allow-list."""

from __future__ import annotations

import base64
import gzip
import json
import re
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chalicelib.audit.gateway_events import (
    LOG_FIELDS,
    AccessLogInvalid,
    gateway_event,
    gateway_events,
    parse_subscription_payload,
)
from chalicelib.audit.schema import ResponseRecord, build_admin_event, principal_record
from chalicelib.identity import Identity
from tests.helpers import AUDIENCE, ISSUER

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "tests" / "fixtures" / "access_logs"
FORMAT_FILE = ROOT / "infra" / "access_log_format.json"
UUID7 = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}")
LOG_GROUP = "/aws/apigateway/gatehouse-dev/access"
TOKEN = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9.c2lnbmF0dXJl"
COOKIE = "__Host-gatehouse_session=s3cr3t-sess10n"
MARKER = "marker-7f3a9c1e-not-allow-listed"


def fixture_lines(name: str) -> list[str]:
    return (FIXTURES / f"{name}.ndjson").read_text(encoding="utf-8").splitlines()


def log_event_id(index: int) -> str:
    # CloudWatch Logs event ids are 56-digit decimal strings.
    return f"{37_912_804_118_126_459_867_291_384_756_102_948_576_301_928_475_610 + index:056d}"


def encode(payload: object) -> dict[str, Any]:
    """The Lambda event CloudWatch Logs delivers for ``payload``."""
    data = gzip.compress(json.dumps(payload).encode("utf-8"))
    return {"awslogs": {"data": base64.b64encode(data).decode("ascii")}}


def subscription_event(lines: list[str]) -> dict[str, Any]:
    """A DATA_MESSAGE subscription event carrying ``lines`` as log events."""
    return encode(
        {
            "messageType": "DATA_MESSAGE",
            "owner": "123456789012",
            "logGroup": LOG_GROUP,
            "logStream": "e4da3b7fbbce2345d7772b0674a318d5",
            "subscriptionFilters": ["gatehouse-dev-gateway-audit"],
            "logEvents": [
                {"id": log_event_id(i), "timestamp": 1773065117000 + i, "message": line}
                for i, line in enumerate(lines)
            ],
        }
    )


def one_event(name: str) -> dict[str, Any]:
    events, rejected = gateway_events(subscription_event(fixture_lines(name)), stage="dev")
    assert rejected == []
    assert len(events) == 1
    return events[0]


def all_dashes(**overrides: Any) -> dict[str, Any]:
    record: dict[str, Any] = dict.fromkeys(LOG_FIELDS, "-")
    record.update(overrides)
    return record


# --- the mapping, one fixture per way a request can end at the gateway -------

ALICE_DECISION = "0195d3a2-6b7e-7c41-9a2f-3e4d5c6b7a89"
EXPECTED: dict[str, dict[str, Any]] = {
    "unauthorized_missing_token": {
        "event_time": "2026-03-09T14:05:17.101Z",
        "request.id": "7c9e6679-7425-40de-944b-e07fc1f90ae7",
        "request.decision_id": None,
        "principal": None,
        "resource.method": "GET",
        "resource.path": "/api/reports",
        "action": "read",
        "outcome.status": 401,
        "outcome.bytes_out": 79,
        "outcome.latency_ms": 3,
        "outcome.upstream_latency_ms": None,
        "outcome.error": "UNAUTHORIZED",
        "gateway.response_type": "UNAUTHORIZED",
        "gateway.error_message": "Unauthorized",
        "gateway.authorizer_status": None,
        "gateway.served_by": "gateway",
        "gateway.cached_authorizer": False,
    },
    "throttled": {
        "event_time": "2026-03-09T14:05:17.202Z",
        "principal": None,
        "source.ip": "198.51.100.77",
        "resource.method": "POST",
        "resource.path": "/api/jobs",
        "action": "write",
        "outcome.status": 429,
        "outcome.latency_ms": 0,
        "gateway.response_type": "THROTTLED",
        "gateway.error_message": "Too Many Requests",
        "gateway.served_by": "gateway",
        "gateway.cached_authorizer": False,
    },
    "allowed_authorizer_called": {
        "event_time": "2026-03-09T14:05:17.303Z",
        "request.decision_id": ALICE_DECISION,
        "request.trace_id": "1-67cda0ad-4f1a2b3c4d5e6f7081928374",
        "principal.subject": "alice",
        "principal.email": None,
        "outcome.status": 200,
        "outcome.bytes_out": 1532,
        "outcome.latency_ms": 212,
        "outcome.upstream_latency_ms": 171,
        "outcome.error": None,
        "gateway.response_type": None,
        "gateway.authorizer_status": 200,
        "gateway.authorizer_latency_ms": 38,
        "gateway.authorizer_integration_status": 200,
        "gateway.integration_status": 200,
        "gateway.integration_latency_ms": 171,
        "gateway.policy_version": 7,
        "gateway.resource_path": "/{proxy+}",
        "gateway.served_by": "integration",
        "gateway.cached_authorizer": False,
    },
    "allowed_authorizer_cached": {
        "request.decision_id": ALICE_DECISION,
        "principal.subject": "alice",
        "resource.path": "/api/reports/42",
        "outcome.status": 200,
        "gateway.authorizer_status": None,
        "gateway.authorizer_latency_ms": None,
        "gateway.served_by": "integration",
        "gateway.cached_authorizer": True,
    },
    "denied_cached_policy": {
        "principal.subject": "bob@example.com",
        "request.decision_id": "0195d3a1-0f2e-7d3c-8b4a-59687a6b5c4d",
        "resource.method": "DELETE",
        "resource.path": "/admin/users/bob",
        "action": "delete",
        "outcome.status": 403,
        "outcome.error": "ACCESS_DENIED",
        "gateway.error_message": "User is not authorized to access this resource",
        "gateway.authorizer_status": None,
        "gateway.resource_path": "/admin/{proxy+}",
        "gateway.served_by": "gateway",
        "gateway.cached_authorizer": True,
    },
    "waf_blocked": {
        "principal": None,
        "source.user_agent": "sqlmap/1.8.2#stable (https://sqlmap.org)",
        "outcome.status": 403,
        "gateway.response_type": "WAF_FILTERED",
        "gateway.waf_response_code": "WAF_BLOCK",
        "gateway.served_by": "gateway",
        "gateway.cached_authorizer": False,
    },
    "integration_failure": {
        "principal.subject": "carol",
        "resource.method": "PUT",
        "action": "write",
        "outcome.status": 502,
        "outcome.latency_ms": 1244,
        "outcome.upstream_latency_ms": 1231,
        "gateway.error_message": "Internal server error",
        "gateway.integration_status": 200,
        "gateway.waf_response_code": "WAF_ALLOW",
        "gateway.served_by": "integration",
        "gateway.cached_authorizer": False,
    },
}


def dig(event: dict[str, Any], dotted: str) -> Any:
    value: Any = event
    for part in dotted.split("."):
        value = value[part]
    return value


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_fixture_maps_to_gateway_event(name: str) -> None:
    event = one_event(name)

    assert event["event_type"] == "gateway"
    assert event["stage"] == "dev"
    assert UUID7.fullmatch(event["event_id"])
    assert event["request"]["lambda_request_id"] is None
    assert event["resource"]["host"] == "a1b2c3d4e5.execute-api.eu-west-1.amazonaws.com"
    assert event["resource"]["query"] is None
    assert event["decision"] is None
    assert event["outcome"]["bytes_in"] is None
    for dotted, expected in EXPECTED[name].items():
        assert dig(event, dotted) == expected, dotted


def test_every_fixture_is_covered() -> None:
    names = {path.stem for path in FIXTURES.glob("*.ndjson")} - {"bad_lines"}
    assert names == set(EXPECTED)


def test_cached_principal_has_the_principal_record_shape() -> None:
    identity = Identity(issuer=ISSUER, subject="alice", audience=AUDIENCE, expires_at=1795881637)
    full = principal_record(identity)
    assert full is not None

    principal = one_event("allowed_authorizer_cached")["principal"]

    assert set(principal) == set(full)
    assert principal == dict.fromkeys(full) | {"subject": "alice"}


def test_outcome_has_the_keys_of_a_response_outcome() -> None:
    response = ResponseRecord(
        status=200, bytes_in=0, bytes_out=0, latency_ms=1.0, upstream_latency_ms=None
    )

    assert set(one_event("allowed_authorizer_called")["outcome"]) == set(response.as_dict())


def test_top_level_keys_are_the_builders_keys_plus_gateway() -> None:
    admin = build_admin_event("policy_change", stage="dev", details={}, operator=None)

    for name in EXPECTED:
        assert set(one_event(name)) == set(admin) | {"gateway"}
    assert "gateway" not in admin


def test_a_batch_keeps_delivery_order() -> None:
    names = sorted(EXPECTED)
    lines = [line for name in names for line in fixture_lines(name)]

    events, rejected = gateway_events(subscription_event(lines), stage="dev")

    assert rejected == []
    assert [event["request"]["id"] for event in events] == [
        json.loads(line)["requestId"] for line in lines
    ]


# --- absent values -------------------------------------------------------------


def test_dash_is_none_everywhere() -> None:
    event = gateway_event(all_dashes(), stage="prod")

    assert event["principal"] is None
    assert event["action"] is None
    assert event["request"] == {
        "id": None,
        "extended_id": None,
        "lambda_request_id": None,
        "trace_id": None,
        "decision_id": None,
    }
    assert event["source"] == {"ip": None, "user_agent": None}
    assert set(event["resource"].values()) == {None}
    assert set(event["outcome"].values()) == {None}
    gateway = dict(event["gateway"])
    assert (gateway.pop("served_by"), gateway.pop("cached_authorizer")) == ("gateway", False)
    assert set(gateway.values()) == {None}
    assert re.fullmatch(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z", event["event_time"])


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        pytest.param("200", 200, id="numeric string"),
        pytest.param(" 429 ", 429, id="padded"),
        pytest.param(503, 503, id="json number"),
        pytest.param("-", None, id="dash"),
        pytest.param("", None, id="empty"),
        pytest.param("2OO", None, id="not digits"),
        pytest.param("12.5", None, id="fraction"),
        pytest.param(True, None, id="bool"),
        pytest.param(["200"], None, id="list"),
        pytest.param("9" * 40, None, id="too long"),
    ],
)
def test_numbers_are_ints_or_none(value: object, expected: int | None) -> None:
    assert gateway_event(all_dashes(status=value), stage="dev")["outcome"]["status"] == expected


@pytest.mark.parametrize(
    ("fields", "served_by", "cached"),
    [
        pytest.param({}, "gateway", False, id="nothing happened"),
        pytest.param({"integrationLatency": "29000"}, "integration", False, id="timed out"),
        pytest.param({"principalId": "alice"}, "gateway", True, id="cached answer"),
        pytest.param(
            {"principalId": "alice", "authorizerStatus": "200"}, "gateway", False, id="authorizer"
        ),
        pytest.param(
            {"principalId": "alice", "authorizerIntegrationStatus": "200"},
            "gateway",
            False,
            id="authorizer integration only",
        ),
    ],
)
def test_served_by_and_cached_authorizer(
    fields: dict[str, str], served_by: str, cached: bool
) -> None:
    gateway = gateway_event(all_dashes(**fields), stage="dev")["gateway"]

    assert (gateway["served_by"], gateway["cached_authorizer"]) == (served_by, cached)


@pytest.mark.parametrize(
    ("path", "domain", "expected"),
    [
        pytest.param("/dev/api/x", "abc.execute-api.us-east-1.amazonaws.com", "/api/x", id="stage"),
        pytest.param("/dev", "abc.execute-api.us-east-1.amazonaws.com", "/", id="stage root"),
        pytest.param(
            "/devices", "abc.execute-api.us-east-1.amazonaws.com", "/devices", id="prefix"
        ),
        pytest.param("/dev/api/x", "gatehouse.example.com", "/dev/api/x", id="custom domain"),
    ],
)
def test_stage_prefix_is_removed_on_execute_api_only(path: str, domain: str, expected: str) -> None:
    event = gateway_event(all_dashes(path=path, domainName=domain, stage="dev"), stage="dev")

    assert event["resource"]["path"] == expected


def test_client_text_is_capped() -> None:
    event = gateway_event(
        all_dashes(userAgent="A" * 10_000, errorMessage="e" * 10_000), stage="dev"
    )

    assert len(event["source"]["user_agent"]) == 512
    assert event["source"]["user_agent"].endswith("...[truncated]")
    assert len(event["gateway"]["error_message"]) == 200


def test_request_time_is_the_event_time() -> None:
    event = gateway_event(all_dashes(requestTime="1773065117999"), stage="dev")

    assert event["event_time"] == "2026-03-09T14:05:17.999Z"


# --- nothing outside the allow-list ------------------------------------------


def test_headers_and_secrets_never_reach_the_event() -> None:
    record = json.loads(fixture_lines("allowed_authorizer_called")[0])
    record |= {
        "Authorization": f"Bearer {TOKEN}",
        "authorization": TOKEN,
        "cookie": COOKIE,
        "headers": {"Authorization": f"Bearer {TOKEN}", "Cookie": COOKIE},
        "requestHeaders": f"authorization: Bearer {TOKEN}",
        "tokenCopy": TOKEN,
    }
    events, _ = gateway_events(subscription_event([json.dumps(record)]), stage="dev")
    text = json.dumps(events[0])

    assert TOKEN not in text
    assert "s3cr3t" not in text
    assert not {"authorization", "cookie", "headers"} & {k.lower() for k in all_keys(events[0])}


def all_keys(value: Any) -> set[str]:
    if isinstance(value, dict):
        return set(value) | {k for child in value.values() for k in all_keys(child)}
    return set()


def test_format_logs_exactly_the_allow_list_and_no_header() -> None:
    text = FORMAT_FILE.read_text(encoding="utf-8")
    fmt = json.loads(text)

    assert set(fmt) == set(LOG_FIELDS)
    assert fmt["requestTime"] == "$context.requestTimeEpoch"
    for key, variable in fmt.items():
        assert re.fullmatch(r"\$context\.[A-Za-z_.]+", variable), key
        assert not re.search(r"header|authorization|cookie|apiKey|caller|user\b", variable, re.I)
    # The stage setting takes one line; API Gateway writes one record per line.
    assert "\n" not in json.dumps(fmt, separators=(",", ":"))


# --- envelopes and lines -------------------------------------------------------


def gz_b64(raw: bytes) -> dict[str, Any]:
    return {"awslogs": {"data": base64.b64encode(raw).decode("ascii")}}


@pytest.mark.parametrize(
    ("event", "message"),
    [
        pytest.param({}, "no awslogs.data", id="missing awslogs"),
        pytest.param({"awslogs": "x"}, "no awslogs.data", id="awslogs not an object"),
        pytest.param({"awslogs": {"data": 42}}, "no awslogs.data", id="data not a string"),
        pytest.param({"awslogs": {"data": "not base64!"}}, "not valid base64", id="not base64"),
        pytest.param(gz_b64(b'{"messageType": "DATA_MESSAGE"}'), "not gzip", id="not gzip"),
        pytest.param(
            gz_b64(gzip.compress(b'{"logEvents": [')[:-8]), "truncated", id="truncated gzip"
        ),
        pytest.param(gz_b64(gzip.compress(b"<xml/>")), "does not hold JSON", id="not JSON"),
        pytest.param(gz_b64(gzip.compress(b"[1, 2]")), "not hold a JSON object", id="JSON array"),
        pytest.param(encode({"logEvents": []}), "unknown messageType", id="no messageType"),
        pytest.param(
            encode({"messageType": "DATA_MESSAGE", "logEvents": {}}),
            "no logEvents list",
            id="logEvents not a list",
        ),
    ],
)
def test_malformed_envelope_raises(event: dict[str, Any], message: str) -> None:
    with pytest.raises(AccessLogInvalid, match=message):
        gateway_events(event, stage="dev")


def test_access_log_invalid_is_a_value_error() -> None:
    assert issubclass(AccessLogInvalid, ValueError)


def test_control_message_has_no_records() -> None:
    control = json.loads((FIXTURES / "control_message.json").read_text(encoding="utf-8"))

    batch = parse_subscription_payload(encode(control))

    assert (batch.records, batch.rejected) == ([], [])
    assert gateway_events(encode(control), stage="dev") == ([], [])


def test_bad_lines_are_rejected_with_their_ids_not_dropped() -> None:
    good = fixture_lines("throttled")
    bad = fixture_lines("bad_lines")

    events, rejected = gateway_events(subscription_event(good + bad), stage="dev")

    assert [event["outcome"]["status"] for event in events] == [429]
    assert [event_id for event_id, _ in rejected] == [log_event_id(i) for i in range(1, 5)]
    reasons = [reason for _, reason in rejected]
    assert reasons[0].startswith("message is not JSON")
    assert reasons[1] == "message is JSON list, not an object"
    assert reasons[2].startswith("duplicate key 'principalId'")
    assert reasons[3].startswith("message is not JSON")


def test_log_events_without_a_message_are_rejected() -> None:
    payload = {
        "messageType": "DATA_MESSAGE",
        "logEvents": [{"id": "1", "message": None}, "junk", {"message": "{}"}],
    }

    batch = parse_subscription_payload(encode(payload))

    assert batch.rejected == [
        ("1", "log event has no message string"),
        ("#1", "log event is not an object"),
    ]
    assert batch.records == [{}]


# --- any object line ---------------------------------------------------------

JSON_SCALARS = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats()
    | st.text()
    | st.sampled_from(["-", "", "200", "0", "WAF_BLOCK", "/dev/x"])
)
JSON_VALUES = st.recursive(
    JSON_SCALARS,
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=5), children, max_size=3)
    ),
    max_leaves=8,
)
RECORDS = st.dictionaries(st.sampled_from(LOG_FIELDS) | st.text(max_size=10), JSON_VALUES)


@settings(max_examples=300, deadline=None)
@given(RECORDS)
def test_any_object_line_gives_an_event_that_round_trips(record: dict[str, Any]) -> None:
    record["xAmznSecretHeader"] = MARKER  # not an allow-listed field

    events, rejected = gateway_events(subscription_event([json.dumps(record)]), stage="dev")

    assert rejected == []
    (event,) = events
    text = json.dumps(event)
    assert json.loads(text) == event
    assert event["event_type"] == "gateway"
    assert MARKER not in text


def test_the_same_log_line_ingested_twice_is_the_same_event() -> None:
    import uuid

    record = {"requestId": "c6af9ac6-7b61-11e6-9a41-93e8deadbeef", "requestTime": "1795881037123"}
    other = {**record, "requestId": "c6af9ac6-7b61-11e6-9a41-000000000000"}

    first, again = gateway_event(record, stage="prod"), gateway_event(record, stage="prod")

    assert first["event_id"] == again["event_id"]
    assert gateway_event(other, stage="prod")["event_id"] != first["event_id"]
    parsed = uuid.UUID(first["event_id"])
    assert parsed.version == 7
    assert parsed.variant == uuid.RFC_4122
    assert parsed.int >> 80 == 1795881037123  # the request time, as v7 ids sort by it


def test_a_line_without_a_request_id_gets_a_fresh_event_id() -> None:
    record = {"requestTime": "1795881037123"}

    assert (
        gateway_event(record, stage="prod")["event_id"]
        != gateway_event(record, stage="prod")["event_id"]
    )
