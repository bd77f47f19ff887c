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

from chalicelib.audit.access_logs import (
    CLIENT_FIELDS,
    END_MARKER,
    FORMAT_KEYS,
    GATEWAY_FIELDS,
    LOG_FIELDS,
    AccessLogInvalid,
    parse_subscription_payload,
)
from chalicelib.audit.emitter import serialize_event
from chalicelib.audit.gateway_events import gateway_event, gateway_events
from chalicelib.audit.schema import (
    ResponseRecord,
    build_admin_event,
    principal_record,
)
from chalicelib.identity import Identity
from chalicelib.readable import TRUNCATED
from gatehouse.deploy.templates import access_log_format
from gatehouse.dev.gateway import render_access_log
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

    assert list(fmt) == list(FORMAT_KEYS)
    assert {key for key in fmt if not key.endswith(END_MARKER)} == set(LOG_FIELDS)
    assert fmt["requestTime"] == "$context.requestTimeEpoch"
    for key, variable in fmt.items():
        assert re.fullmatch(r"\$context\.[A-Za-z_.]+", variable), key
        assert not re.search(r"header|authorization|cookie|apiKey|caller|user\b", variable, re.I)
    # The stage setting takes one line; API Gateway writes one record per line.
    one_line = json.dumps(fmt, separators=(",", ":"))
    assert "\n" not in one_line
    # API Gateway refuses an access-log template over 3 KB.
    assert len(one_line.encode()) < 3 * 1024


def test_client_text_comes_last_each_value_closed_by_the_request_id() -> None:
    fmt = json.loads(FORMAT_FILE.read_text(encoding="utf-8"))
    keys = list(fmt)

    assert keys[: len(GATEWAY_FIELDS)] == list(GATEWAY_FIELDS)
    # Every variable that can carry text a client (or an IdP, or an error quoting a
    # request) chose is a client field.
    assert {fmt[name] for name in CLIENT_FIELDS} == {
        "$context.xrayTraceId",
        "$context.error.message",
        "$context.authorizer.error",
        "$context.authorizer.principalId",
        "$context.domainName",
        "$context.path",
        "$context.identity.userAgent",
    }
    for name in CLIENT_FIELDS[:-1]:
        assert keys[keys.index(name) + 1] == name + END_MARKER
        assert fmt[name + END_MARKER] == fmt["requestId"] == "$context.requestId"
    assert keys[-1] == CLIENT_FIELDS[-1]


# --- client text in the line -------------------------------------------------
#
# API Gateway puts each $context value into the format unescaped. Every line
# below is written that way (the local gateway's writer, from the deployed
# format), with hostile text in one client-controlled field.

LOG_FORMAT = access_log_format(ROOT)
BASELINE = {
    key: value
    for key, value in json.loads(fixture_lines("allowed_authorizer_called")[0]).items()
    if not key.endswith(END_MARKER)
}
# Where each client field lands in the event, and how much of it is kept.
CLIENT_TEXT = {
    "xrayTraceId": ("request.trace_id", 256),
    "errorMessage": ("gateway.error_message", 200),
    "authorizerError": ("gateway.authorizer_error", 200),
    "principalId": ("principal.subject", 128),
    "domainName": ("resource.host", 256),
    "path": ("resource.path", 4096),
    "userAgent": ("source.user_agent", 512),
}
NOT_JSON = ["access_log_not_json"]
# (sent, recorded, anomalies): recorded is what the line's JSON says when the
# line is still JSON in the format's shape, else the text as written.
HOSTILE = [
    pytest.param('Mozilla "quoted"', 'Mozilla "quoted"', NOT_JSON, id="quote"),
    pytest.param("C:\\dir\\", "C:\\dir\\", NOT_JSON, id="trailing backslash"),
    pytest.param("a\\tb", "a\tb", [], id="backslash escape read as JSON"),
    pytest.param("a\\xffb", "a\\xffb", NOT_JSON, id="invalid JSON escape"),
    pytest.param("a\nb\r\nc", "a\nb\r\nc", [], id="newline"),
    pytest.param("a\x1b[31mred\x1b[0m", "a\x1b[31mred\x1b[0m", [], id="ESC"),
    pytest.param("a\u2028b\u2029c", "a\u2028b\u2029c", [], id="line separators"),
    pytest.param("bad \udcff byte", "bad \udcff byte", [], id="invalid UTF-8 as a surrogate"),
    pytest.param("bad \ufffd byte", "bad \ufffd byte", [], id="invalid UTF-8 replaced"),
    pytest.param('", "status": "200', '", "status": "200', NOT_JSON, id="JSON injection"),
    pytest.param(
        'x","status":"200","requestId":"forged","sourceIp":"6.6.6.6',
        'x","status":"200","requestId":"forged","sourceIp":"6.6.6.6',
        NOT_JSON,
        id="compact injection",
    ),
    pytest.param(
        'x","pathEnd":"00000000-0000-4000-8000-000000000000","userAgent":"y',
        'x","pathEnd":"00000000-0000-4000-8000-000000000000","userAgent":"y',
        NOT_JSON,
        id="forged end marker",
    ),
    pytest.param(
        'x"}\n{"requestId":"forged', 'x"}\n{"requestId":"forged', NOT_JSON, id="second line"
    ),
    pytest.param("A" * 10_000, "A" * 10_000, [], id="10 kB"),
    pytest.param('A"' * 5_000, 'A"' * 5_000, NOT_JSON, id="10 kB of quotes"),
]


def hostile_line(field: str, text: str) -> str:
    sent = f"/dev/api/{text}" if field == "path" else text
    return render_access_log(LOG_FORMAT, {**BASELINE, field: sent})


def kept(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - len(TRUNCATED)] + TRUNCATED


@pytest.mark.parametrize("field", CLIENT_FIELDS)
@pytest.mark.parametrize(("sent", "recorded", "anomalies"), HOSTILE)
def test_hostile_client_text_never_costs_the_event_nor_what_the_gateway_vouches_for(
    field: str, sent: str, recorded: str, anomalies: list[str]
) -> None:
    events, rejected = gateway_events(subscription_event([hostile_line(field, sent)]), stage="dev")

    assert rejected == []
    (event,) = events
    honest = one_event("allowed_authorizer_called")
    for trusted in (
        "event_id",
        "event_time",
        "request.id",
        "request.extended_id",
        "request.decision_id",
        "source.ip",
        "resource.method",
        "action",
        "outcome",
        "gateway.authorizer_status",
        "gateway.integration_status",
        "gateway.policy_version",
        "gateway.resource_path",
        "gateway.served_by",
    ):
        assert dig(event, trusted) == dig(honest, trusted), trusted
    where, limit = CLIENT_TEXT[field]
    if field == "path":  # capped as logged, then without the stage
        expected = kept(f"/dev/api/{recorded}", limit).removeprefix("/dev")
    else:
        expected = kept(recorded, limit)
    assert dig(event, where) == expected
    assert event["anomalies"] == anomalies
    # The event can be sent and stored as it is.
    assert json.loads(serialize_event(event))["request"]["id"] == honest["request"]["id"]


# Fragments of the format itself, and characters that matter to JSON, among any.
HOSTILE_TEXT = st.lists(
    st.sampled_from(['"', "\\", '","', '":"', '"}', "{", "-", "\n", "\x1b", "\u2028", "\udcff"])
    | st.sampled_from([f'","{name}":"' for name in FORMAT_KEYS])
    | st.characters(),
    max_size=20,
).map("".join)


@settings(max_examples=300, deadline=None)
@given(st.fixed_dictionaries({name: HOSTILE_TEXT for name in CLIENT_FIELDS}))
def test_any_text_in_every_client_field_at_once(texts: dict[str, str]) -> None:
    sent = {**texts, "path": "/p/" + texts["path"]}
    line = render_access_log(LOG_FORMAT, {**BASELINE, **sent})

    events, rejected = gateway_events(subscription_event([line]), stage="dev")

    assert rejected == []
    (event,) = events
    assert event["request"]["id"] == BASELINE["requestId"]
    assert event["outcome"]["status"] == int(BASELINE["status"])
    assert event["source"]["ip"] == BASELINE["sourceIp"]
    assert event["request"]["decision_id"] == BASELINE["decisionId"]
    assert event["anomalies"] in ([], NOT_JSON)
    if event["anomalies"]:  # read as written: every value exactly as sent
        for name, (where, limit) in CLIENT_TEXT.items():
            expected = None if sent[name] in ("", "-") else kept(sent[name], limit)
            section, key = where.split(".")
            assert (event[section] or {}).get(key) == expected, name


def test_text_in_several_client_fields_at_once_stays_in_its_own_field() -> None:
    # Together valid JSON when written unescaped, with the old layout's keys.
    host, agent = 'h", "path": {"a":"', 'ua"}, "userAgent": "z'
    line = render_access_log(LOG_FORMAT, {**BASELINE, "domainName": host, "userAgent": agent})

    events, rejected = gateway_events(subscription_event([line]), stage="dev")

    assert rejected == []
    (event,) = events
    assert (event["resource"]["host"], event["source"]["user_agent"]) == (host, agent)
    assert event["resource"]["path"] == BASELINE["path"]
    assert event["anomalies"] == NOT_JSON


@pytest.mark.parametrize(
    "cut",
    [
        pytest.param(lambda line: line[:-2], id="no closing"),
        pytest.param(lambda line: line[: line.index('"path":')], id="cut before the path"),
        pytest.param(lambda line: line.replace('"pathEnd"', '"pathStop"'), id="marker missing"),
    ],
)
def test_a_line_cut_short_keeps_what_the_gateway_vouches_for_and_names_what_is_lost(
    cut: Any,
) -> None:
    line = cut(hostile_line("userAgent", 'say "hi"'))

    events, rejected = gateway_events(subscription_event([line]), stage="dev")

    assert rejected == []
    (event,) = events
    assert event["request"]["id"] == BASELINE["requestId"]
    assert event["outcome"]["status"] == int(BASELINE["status"])
    assert event["source"]["ip"] == BASELINE["sourceIp"]
    assert event["source"]["user_agent"] is None
    assert event["anomalies"][0] == "access_log_not_json"
    assert "access_log_unrecovered:userAgent" in event["anomalies"]


def test_end_markers_are_not_trusted_when_the_request_id_could_be_guessed() -> None:
    line = render_access_log(
        LOG_FORMAT, {**BASELINE, "requestId": "1", "path": '/x","pathEnd":"1","userAgent":"y'}
    )

    (event,), rejected = gateway_events(subscription_event([line]), stage="dev")

    assert rejected == []
    assert event["request"]["id"] == "1"
    assert event["resource"]["path"] is None
    assert event["source"]["user_agent"] is None
    assert event["anomalies"] == [
        "access_log_not_json",
        *(f"access_log_unrecovered:{name}" for name in CLIENT_FIELDS),
    ]


def test_a_line_in_the_layout_before_the_format_changed_is_still_read() -> None:
    old_layout = {key: BASELINE[key] for key in sorted(BASELINE)}

    (event,), rejected = gateway_events(subscription_event([json.dumps(old_layout)]), stage="dev")

    assert rejected == []
    assert event["request"]["id"] == BASELINE["requestId"]
    assert event["source"]["user_agent"] == BASELINE["userAgent"]
    assert event["anomalies"] == []


def test_a_line_cut_inside_what_the_gateway_vouches_for_is_rejected() -> None:
    line = hostile_line("userAgent", "curl/8")

    batch = parse_subscription_payload(subscription_event([line[: line.index('"status":')]]))

    assert batch.records == []
    [(event_id, reason)] = batch.rejected
    assert event_id == log_event_id(0)
    assert reason.startswith("message is not JSON")


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
