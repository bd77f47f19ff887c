"""The audit event schema: ids, timestamps, redaction, the event shape, object keys."""

from __future__ import annotations

import dataclasses
import json
import re
import time
import uuid

import pytest

from chalicelib.apigw.events import parse_authorizer_event, parse_proxy_event
from chalicelib.audit.redaction import REDACTED, redact_query
from chalicelib.audit.schema import (
    DecisionRecord,
    ElevationRecord,
    RequestRecord,
    ResourceRecord,
    ResponseRecord,
    action_for_method,
    build_admin_event,
    build_event,
    build_session_event,
    utc_timestamp,
    uuid7,
)
from chalicelib.audit.sections import SESSION_ACTIONS, SESSION_REVOKERS, SessionSection
from chalicelib.authorize.decider import Outcome, decision_record
from chalicelib.config import DEFAULT_QUERY_REDACTION, DEFAULT_QUERY_VALUE_REDACTION
from chalicelib.identity import Identity
from chalicelib.ledger.layout import object_key
from chalicelib.policy import Decision
from chalicelib.policy.globs import compile_glob
from chalicelib.policy.grant import Grant
from chalicelib.readable import MAX_JUSTIFICATION, TRUNCATED
from chalicelib.reasons import Reason
from tests.helpers import AUDIENCE, ISSUER, load_event

TOKEN = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9.c2lnbmF0dXJl"
REDACTION = re.compile(DEFAULT_QUERY_REDACTION)
TOP_LEVEL_FIELDS = {
    "schema_version",
    "event_id",
    "event_type",
    "event_time",
    "stage",
    "request",
    "principal",
    "source",
    "resource",
    "action",
    "decision",
    "outcome",
    "elevation",
    "aws",
    "anomalies",
    "policy_change",
    "grant",
}
TOP_LEVEL_ORDER = [
    "schema_version",
    "event_id",
    "event_type",
    "event_time",
    "stage",
    "request",
    "principal",
    "source",
    "resource",
    "action",
    "decision",
    "outcome",
    "elevation",
    "aws",
    "anomalies",
    "policy_change",
    "grant",
]
UUID7 = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}")
TIMESTAMP = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z")


# --- uuid7 -------------------------------------------------------------------------------


def test_uuid7_has_version_7_and_rfc_variant() -> None:
    for _ in range(200):
        text = uuid7()
        assert UUID7.fullmatch(text), text
        parsed = uuid.UUID(text)
        assert parsed.version == 7
        assert parsed.variant == uuid.RFC_4122


def test_uuid7_starts_with_unix_milliseconds() -> None:
    before = time.time_ns() // 1_000_000
    text = uuid7()
    after = time.time_ns() // 1_000_000

    millis = int(text.replace("-", "")[:12], 16)

    assert before <= millis <= after


def test_uuid7_values_are_unique() -> None:
    assert len({uuid7() for _ in range(1000)}) == 1000


def _next_millisecond(after: int) -> None:
    """Spin (no sleep) until the wall clock is past millisecond ``after``."""
    deadline = time.monotonic() + 1.0
    while time.time_ns() // 1_000_000 <= after:
        assert time.monotonic() < deadline, "clock did not advance"


def test_uuid7_sorts_by_creation_time_across_milliseconds() -> None:
    ids = []
    for _ in range(5):
        ids.append(uuid7())
        _next_millisecond(int(ids[-1].replace("-", "")[:12], 16))

    assert sorted(ids) == ids


# --- utc_timestamp -----------------------------------------------------------------------

TIMESTAMP_CASES = [
    pytest.param(1795881037.0, "2026-11-28T15:50:37.000Z", id="whole second"),
    pytest.param(1795881037.5, "2026-11-28T15:50:37.500Z", id="half second"),
    pytest.param(1795881037.123, "2026-11-28T15:50:37.123Z", id="milliseconds 123"),
    pytest.param(1700000000.001, "2023-11-14T22:13:20.001Z", id="milliseconds 001"),
    pytest.param(1795881037.9995, "2026-11-28T15:50:37.999Z", id="never rounds into next second"),
    pytest.param(0.0, "1970-01-01T00:00:00.000Z", id="epoch"),
]


@pytest.mark.parametrize(("epoch", "expected"), TIMESTAMP_CASES)
def test_utc_timestamp_of_epoch(epoch: float, expected: str) -> None:
    assert utc_timestamp(epoch) == expected


def test_utc_timestamp_defaults_to_now() -> None:
    before = time.time()
    stamp = utc_timestamp()

    assert TIMESTAMP.fullmatch(stamp)
    assert utc_timestamp(before)[:19] <= stamp[:19] <= utc_timestamp(time.time())[:19]


# --- redact_query ------------------------------------------------------------------------

SECRET_NAMES = [
    "access_token",
    "id_token",
    "refresh_token",
    "code",
    "CODE",
    "api_key",
    "apikey",
    "password",
    "secret",
    "client_secret",
    "state",
    "session_id",
    "sig",
    "signature",
    "X-Amz-Signature",
    "X-Amz-Security-Token",
    "auth",
]


@pytest.mark.parametrize("name", SECRET_NAMES)
def test_secret_query_value_is_redacted(name: str) -> None:
    query = redact_query([(name, "s3cr3t-value")], REDACTION)

    assert query == f"{name}={REDACTED}"


@pytest.mark.parametrize(
    "name",
    ["tag", "page", "sort", "q", "encoding", "keyboard"],
)
def test_ordinary_query_value_is_kept(name: str) -> None:
    assert redact_query([(name, "blue")], REDACTION) == f"{name}=blue"


def test_redact_query_keeps_order_and_repeats_and_quotes() -> None:
    pairs = [("tag", "red"), ("access_token", "t0k"), ("tag", "blue&green"), ("a b", "c=d")]

    query = redact_query(pairs, REDACTION)

    assert query == "tag=red&access_token=REDACTED&tag=blue%26green&a%20b=c%3Dd"


def test_redact_query_of_no_pairs_is_none() -> None:
    assert redact_query([], REDACTION) is None


# Credentials under names that say nothing: the value gives them away.
SECRET_VALUES = [
    pytest.param(TOKEN, id="JWT"),
    pytest.param("eyJhbGciOiJub25lIn0.eyJzdWIiOiJtYWxsb3J5In0.", id="unsecured JWT"),
    pytest.param(
        "eyJhbGciOiJSU0EtT0FFUCIsImVuYyI6IkEyNTZHQ00ifQ.OKOawDo13gRp2ojaHV7LFpZcgV7T6DVZKTyKOMTYUmKoTCVJRgckCL9kiMT03JGeipsEdY3mx_etLbbWSrFr05kLzcSr4qKAq7YN7e9jwQRb23nfa6c9d-StnImGyFDbSv04uVuxIp5Zms1gNxKKK2Da14B8S4rzVRltdYwam_lDp5XnZAYpQdb76FdIKLaVmqgfwX7XWRxv2322i-vDxRfqNzo_tETKzpVLzfiwQyeyPGLBIO56YJ7eObdv0je81860ppamavo35UgoRdbYaBcoh9QcfylQr66oc6vFWXRcZ_ZT2LawVCWTIy3brGPi6UklfCpIMfIjf7iGdXKHzg.48V1_ALb6US04U3b.5eym8TW_c8SuK0ltJ3rpYIzOeDQz7TALvtu6UG9oMo4vpzs9tX_EFShS8iB7j6jiSdiwkIr3ajwQzaBtQD_A.XFBoMYUZodetZdvTiFvSkQ",
        id="JWE",
    ),
    pytest.param("Bearer " + TOKEN, id="JWT after a scheme"),
    pytest.param("https://app.example.com/cb?x=" + TOKEN, id="JWT inside a URL"),
    pytest.param("AKIAIOSFODNN7EXAMPLE", id="AWS access key id"),
    pytest.param("ASIAY34FZKBOKMUTVV7A", id="AWS session key id"),
    pytest.param("ghp_" + "R8vKq2Lm" * 4 + "x1Yz", id="GitHub token"),
    pytest.param("github_pat_11ABCDEFG0abcdefghijklmnop", id="GitHub fine-grained token"),
    pytest.param("xoxb-1234567890-abcdefghijklmnop", id="Slack token"),
    pytest.param("sk_live_4eC39HqLyjWDarjtT1zdp7dc", id="Stripe key"),
    pytest.param("glpat-xyz12345678901234567", id="GitLab token"),
    pytest.param("da39a3ee5e6b4b0d3255bfef95601890afd80709", id="40 hex"),
    pytest.param("E3B0C44298FC1C149AFBF4C8996FB92427AE41E4649B934CA495991B7852B855", id="64 HEX"),
    pytest.param("session:9f86d081884c7d659a2feaa0c55ad015", id="hex after a label"),
    pytest.param("q2Vz8Lk3Xp0aRt7Bn4Mw1Yc6Hd9Je5Gs", id="base64url 32"),
    pytest.param("k7Jf+Q2m/Xz9Lp4Rt8Vb1Nc6Hd3Ws5Ga0Ey==", id="base64 with padding"),
]


@pytest.mark.parametrize("value", SECRET_VALUES)
def test_credential_looking_values_are_redacted_whatever_the_name(value: str) -> None:
    assert redact_query([("next", value), ("tag", "blue")], REDACTION) == (
        f"next={REDACTED}&tag=blue"
    )


ORDINARY_VALUES = [
    pytest.param("blue", id="word"),
    pytest.param("quarterly report 2026", id="words and a number"),
    pytest.param("1" * 40, id="40 digits"),
    pytest.param("2026-03-09T14:05:17.101Z", id="timestamp"),
    pytest.param("7c9e6679-7425-40de-944b-e07fc1f90ae7", id="UUID"),
    pytest.param("0195d3a2-6b7e-7c41-9a2f-3e4d5c6b7a89", id="UUIDv7"),
    pytest.param("alice.smith@example.com", id="email"),
    pytest.param("/api/projects/42/files/report-final-v2.pdf", id="path"),
    pytest.param("the-quick-brown-fox-jumps-over-the-lazy-dog-again", id="long slug"),
    pytest.param("SomeVeryLongCamelCaseIdentifierWithoutDigits", id="long camel case"),
    pytest.param("abcdefabcdefabcdefabcdefabcdefabcdef", id="hex letters only"),
    pytest.param("eyJ", id="a bare JSON header start"),
    pytest.param("AKIA1234", id="short AKIA"),
]


@pytest.mark.parametrize("value", ORDINARY_VALUES)
def test_ordinary_values_under_ordinary_names_are_kept(value: str) -> None:
    query = redact_query([("q", value)], REDACTION)

    assert query is not None
    assert REDACTED not in query
    assert query.startswith("q=")


@pytest.mark.parametrize(
    "name",
    [pytest.param(TOKEN, id="JWT"), pytest.param("AKIAIOSFODNN7EXAMPLE", id="AWS key id")],
)
def test_a_credential_sent_as_a_parameter_name_is_redacted_with_its_value(name: str) -> None:
    # "?<token>" and "?<token>=x" arrive as a name.
    for value in ("", "x"):
        query = redact_query([("tag", "red"), (name, value)], REDACTION)

        assert query == f"tag=red&{REDACTED}={REDACTED}"


def test_value_redaction_off_leaves_names_to_decide() -> None:
    pairs = [("next", TOKEN), ("access_token", "t0k")]

    assert redact_query(pairs, REDACTION, None) == (f"next={TOKEN}&access_token={REDACTED}")


def test_a_custom_value_rule_replaces_the_default_and_anchors_on_each_value() -> None:
    rule = re.compile(r"^internal-\d+$")
    pairs = [("a", "internal-42"), ("b", TOKEN), ("c", "not internal-42"), ("internal-7", "")]

    assert redact_query(pairs, REDACTION, rule) == (
        f"a={REDACTED}&b={TOKEN}&c=not%20internal-42&{REDACTED}={REDACTED}"
    )


@pytest.mark.parametrize(
    "event_name", ["authorizer_request", "proxy_request"], ids=["authorizer", "proxy"]
)
def test_the_request_record_redacts_credential_values_of_either_handlers_event(
    event_name: str,
) -> None:
    event = load_event(event_name)
    event["multiValueQueryStringParameters"] = {"tag": ["red"], "next": [TOKEN]}
    event["queryStringParameters"] = {"tag": "red", "next": TOKEN}
    parse = parse_authorizer_event if event_name == "authorizer_request" else parse_proxy_event
    request = parse(event)

    record = RequestRecord.from_request(request, None, REDACTION)
    unredacted = RequestRecord.from_request(request, None, REDACTION, value_redaction=None)

    assert record.query == f"tag=red&next={REDACTED}"
    assert unredacted.query == f"tag=red&next={TOKEN}"


@pytest.mark.parametrize(
    "shape",
    [
        pytest.param("a-", id="dashed run"),
        pytest.param("aB", id="no digits"),
        pytest.param("0a", id="hex"),
        pytest.param("eyJ", id="header starts"),
        pytest.param("+/", id="base64 symbols"),
        pytest.param(" ", id="spaces"),
        pytest.param("eyJa.", id="dotted headers"),
        pytest.param("AKIA", id="key id starts"),
    ],
)
def test_a_long_value_costs_linear_time(shape: str) -> None:
    rule = re.compile(DEFAULT_QUERY_VALUE_REDACTION)
    value = shape * (64_000 // len(shape))

    started = time.perf_counter()
    rule.search(value)
    elapsed = time.perf_counter() - started

    # About 10 ms on a laptop; a rule retrying each run from each position takes seconds.
    assert elapsed < 0.5


# --- action_for_method -------------------------------------------------------------------

ACTION_CASES = [
    ("GET", "read"),
    ("HEAD", "read"),
    ("OPTIONS", "read"),
    ("get", "read"),
    ("POST", "write"),
    ("PUT", "write"),
    ("PATCH", "write"),
    ("DELETE", "delete"),
    ("delete", "delete"),
]


@pytest.mark.parametrize(("method", "action"), ACTION_CASES, ids=[m for m, _ in ACTION_CASES])
def test_action_for_method(method: str, action: str) -> None:
    assert action_for_method(method) == action


# --- build_event -------------------------------------------------------------------------


def request(method: str = "GET", query: str | None = None) -> RequestRecord:
    return RequestRecord(
        request_id="req-1",
        extended_request_id="ext-1",
        trace_id="Root=1-abc",
        lambda_request_id="lambda-1",
        stage="dev",
        source_ip="203.0.113.7",
        user_agent="curl/8.5.0",
        host="gatehouse.example.com",
        method=method,
        path="/api/projects/42",
        query=query,
    )


ALICE = Identity(
    issuer=ISSUER,
    subject="alice",
    audience=AUDIENCE,
    expires_at=1795881637,
    email="alice@example.com",
    groups=frozenset({"eng", "admins"}),
    amr=("pwd", "mfa"),
    auth_time=1795881000,
    session_id="sess-1",
    token_id="jti-1",
    claims={"raw_token": TOKEN, "email": "alice@example.com"},
)


def test_decision_event_has_every_top_level_field() -> None:
    decision = DecisionRecord(
        outcome="allow",
        reasons=(Reason.ALLOW_RULE_MATCHED,),
        matched_rules=("eng-read",),
        policy_version=3,
        policy_checksum="sha256:abc",
    )

    event = build_event(
        "decision",
        request(),
        identity=ALICE,
        decision=decision,
        resource=ResourceRecord("demo", "http://127.0.0.1:9000", True),
    )

    assert set(event) == TOP_LEVEL_FIELDS
    assert event["schema_version"] == 1
    assert event["event_type"] == "decision"
    assert UUID7.fullmatch(event["event_id"])
    assert TIMESTAMP.fullmatch(event["event_time"])
    assert event["stage"] == "dev"
    assert event["request"] == {
        "id": "req-1",
        "extended_id": "ext-1",
        "lambda_request_id": "lambda-1",
        "trace_id": "Root=1-abc",
        "decision_id": event["event_id"],
    }
    assert event["principal"]["subject"] == "alice"
    assert event["principal"]["groups"] == ["admins", "eng"]
    assert event["principal"]["amr"] == ["pwd", "mfa"]
    assert event["source"] == {"ip": "203.0.113.7", "user_agent": "curl/8.5.0"}
    assert event["resource"]["route_id"] == "demo"
    assert event["resource"]["sensitive"] is True
    assert event["action"] == "read"
    assert event["decision"]["reasons"] == ["allow_rule_matched"]
    assert event["decision"]["matched_rules"] == ["eng-read"]
    assert event["outcome"] is None
    assert (event["elevation"], event["aws"], event["anomalies"]) == (None, None, [])
    assert (event["policy_change"], event["grant"]) == (None, None)


def test_anonymous_denied_event_has_every_top_level_field() -> None:
    event = build_event(
        "decision",
        request("DELETE"),
        identity=None,
        decision=DecisionRecord(outcome="deny", reasons=(Reason.MISSING_CREDENTIALS,)),
        resource=ResourceRecord(),
        anomalies=["spoofed_gatehouse_header"],
    )

    assert set(event) == TOP_LEVEL_FIELDS
    assert (event["policy_change"], event["grant"], event["elevation"]) == (None, None, None)
    assert event["principal"] is None
    assert event["action"] == "delete"
    assert event["decision"]["outcome"] == "deny"
    assert event["decision"]["policy_version"] is None
    assert event["resource"]["route_id"] is None
    assert event["anomalies"] == ["spoofed_gatehouse_header"]


def test_response_event_links_to_its_decision_and_has_every_field() -> None:
    event = build_event(
        "response",
        request("POST"),
        identity=ALICE,
        decision=DecisionRecord(outcome="allow", reasons=(Reason.ALLOW_RULE_MATCHED,)),
        resource=ResourceRecord("demo"),
        decision_id="decision-7",
        response=ResponseRecord(201, 10, 20, 12.34567, None),
        event_id="event-8",
    )

    assert set(event) == TOP_LEVEL_FIELDS
    assert event["event_id"] == "event-8"
    assert event["request"]["decision_id"] == "decision-7"
    assert event["action"] == "write"
    assert event["outcome"] == {
        "status": 201,
        "bytes_in": 10,
        "bytes_out": 20,
        "latency_ms": 12.346,
        "upstream_latency_ms": None,
        "error": None,
    }


def test_event_never_contains_a_token() -> None:
    query = redact_query([("access_token", TOKEN), ("tag", "blue")], REDACTION)

    event = build_event(
        "decision",
        request(query=query),
        identity=ALICE,
        decision=DecisionRecord(outcome="allow", reasons=(Reason.ALLOW_RULE_MATCHED,)),
        resource=ResourceRecord(),
    )
    text = json.dumps(event)

    assert TOKEN not in text
    assert "raw_token" not in text
    assert event["resource"]["query"] == "access_token=REDACTED&tag=blue"


def test_event_is_json_serialisable_and_detail_is_bounded() -> None:
    event = build_event(
        "decision",
        request(),
        identity=ALICE,
        decision=DecisionRecord(
            outcome="error", reasons=(Reason.POLICY_UNAVAILABLE,), detail="x" * 500
        ),
        resource=ResourceRecord(),
    )

    assert json.loads(json.dumps(event)) == event
    assert event["decision"]["detail"] == "x" * 200


# --- object_key --------------------------------------------------------------------------

OBJECT_KEY = re.compile(
    r"audit/v1/events/dt=(\d{4}-\d{2}-\d{2})/hour=(\d{2})/(\d{16})-r(\d+)\.ndjson\.gz"
)
KEY_CASES = [
    pytest.param(1795881037.5, 0, 1, ("2026-11-28", "15", "0" * 16, "1"), id="afternoon"),
    pytest.param(
        1704067199.0, 4096, 12, ("2023-12-31", "23", "0000000000004096", "12"), id="year end"
    ),
    pytest.param(
        1704067200.0, 10**15, 7, ("2024-01-01", "00", "1000000000000000", "7"), id="midnight"
    ),
]


@pytest.mark.parametrize(("epoch", "first", "reservation", "parts"), KEY_CASES)
def test_object_key_is_partitioned_by_day_and_hour_and_named_by_its_first_sequence(
    epoch: float, first: int, reservation: int, parts: tuple[str, str, str, str]
) -> None:
    match = OBJECT_KEY.fullmatch(object_key(epoch, first, reservation))

    assert match is not None
    assert match.groups() == parts


def test_object_keys_sort_by_sequence_within_an_hour() -> None:
    keys = [object_key(1795881037.5, first, first + 1) for first in (0, 9, 10, 999, 1000)]
    assert sorted(keys) == keys


# --- elevation -----------------------------------------------------------------------------

GRANT = Grant(
    id="0192f0c2-0000-7000-8000-0000000000aa",
    issuer=ISSUER,
    subject="alice",
    email="alice@example.com",
    routes=("demo",),
    actions=frozenset({"GET"}),
    paths=(compile_glob("/api/**"),),
    duration_seconds=3600,
    justification="INC-42 restore data",
    status="approved",
    requested_at=1795880000.0,
    approved_at=1795880100.0,
    expires_at=1795883700.0,
    approver=f"{ISSUER}|sam (sam@example.com)",
)


def decision(
    allowed: bool = True,
    reasons: tuple[Reason, ...] = (Reason.ALLOW_RULE_MATCHED,),
    matched: tuple[str, ...] = ("eng-read",),
    **elevation: object,
) -> Decision:
    return Decision(
        allowed=allowed,
        reasons=reasons,
        matched_rules=matched,
        route=None,
        policy_version=4,
        policy_checksum="sha256:" + "0" * 64,
        **elevation,  # type: ignore[arg-type]
    )


ELEVATION_CASES = [
    pytest.param(decision(), None, id="standing allow"),
    pytest.param(
        decision(False, (Reason.DENY_RULE_MATCHED,), ("no-delete",)), None, id="deny by rule"
    ),
    pytest.param(
        decision(False, (Reason.MFA_REQUIRED,), ("admin",), justification="ignored"),
        None,
        id="deny with a justification sent",
    ),
    pytest.param(
        decision(True, (Reason.GRANT_MATCHED,), (), grant=GRANT),
        {
            "grant_id": GRANT.id,
            "approver": GRANT.approver,
            "justification": "INC-42 restore data",
            "break_glass": False,
        },
        id="grant",
    ),
    pytest.param(
        decision(True, (Reason.BREAK_GLASS,), (), break_glass=True, justification="INC-7 db"),
        {"grant_id": None, "approver": None, "justification": "INC-7 db", "break_glass": True},
        id="break-glass",
    ),
    pytest.param(
        decision(True, (Reason.BREAK_GLASS,), (), break_glass=True),
        {"grant_id": None, "approver": None, "justification": None, "break_glass": True},
        id="break-glass without a justification",
    ),
]


@pytest.mark.parametrize(("the_decision", "section"), ELEVATION_CASES)
def test_elevation_section_comes_from_the_decision(
    the_decision: Decision, section: dict[str, object] | None
) -> None:
    record = decision_record(Outcome(the_decision.reasons[0], decision=the_decision))
    event = build_event(
        "decision", request(), identity=ALICE, decision=record, resource=ResourceRecord("demo")
    )

    assert event["elevation"] == section
    assert event["decision"]["outcome"] == ("allow" if the_decision.allowed else "deny")
    assert event["decision"]["reasons"] == [reason.value for reason in the_decision.reasons]
    assert event["decision"]["matched_rules"] == list(the_decision.matched_rules)
    assert event["decision"]["policy_version"] == 4
    assert (event["policy_change"], event["grant"]) == (None, None)
    assert json.loads(json.dumps(event)) == event


@pytest.mark.parametrize(
    ("length", "kept"),
    [
        pytest.param(MAX_JUSTIFICATION, MAX_JUSTIFICATION, id="at the cap"),
        pytest.param(MAX_JUSTIFICATION + 1, MAX_JUSTIFICATION, id="one over"),
        pytest.param(10 * MAX_JUSTIFICATION, MAX_JUSTIFICATION, id="far over"),
    ],
)
def test_a_justification_is_capped(length: int, kept: int) -> None:
    text = "j" * length
    section = ElevationRecord(justification=text, break_glass=True).as_dict()

    assert len(section["justification"]) == kept
    if length > MAX_JUSTIFICATION:
        assert section["justification"].endswith(TRUNCATED)
    else:
        assert section["justification"] == text


# --- administrative events -------------------------------------------------------------------

ADMIN_CASES = [
    pytest.param(
        "policy_change",
        {"action": "activated", "version": 5, "checksum": "sha256:" + "a" * 64},
        "arn:aws:iam::123456789012:user/ops",
        None,
        id="policy change by an AWS caller",
    ),
    pytest.param(
        "grant",
        {"action": "approved", "grant_id": GRANT.id, "routes": ["demo"]},
        "arn:aws:sts::123456789012:assumed-role/gatehouse-cli/sam",
        ALICE,
        id="grant approved by a principal",
    ),
    pytest.param(
        "grant",
        {"action": "expired", "grant_id": GRANT.id},
        None,
        None,
        id="grant expired by the sweeper",
    ),
]


@pytest.mark.parametrize(("event_type", "details", "operator", "identity"), ADMIN_CASES)
def test_admin_event_has_every_field_and_only_its_own_section(
    event_type: str, details: dict[str, object], operator: str | None, identity: Identity | None
) -> None:
    event = build_admin_event(
        event_type,  # type: ignore[arg-type]
        stage="prod",
        details=details,
        operator=operator,
        identity=identity,
    )
    other = "grant" if event_type == "policy_change" else "policy_change"

    assert set(event) == TOP_LEVEL_FIELDS
    assert event["schema_version"] == 1
    assert event["event_type"] == event_type
    assert UUID7.fullmatch(event["event_id"])
    assert TIMESTAMP.fullmatch(event["event_time"])
    assert event["stage"] == "prod"
    assert event[event_type] == details
    assert event[other] is None
    assert event["action"] == "admin"
    assert event["aws"] == ({"caller_arn": operator} if operator else None)
    for section in ("request", "source", "resource", "decision", "outcome", "elevation"):
        assert event[section] is None, section
    assert event["anomalies"] == []
    if identity is None:
        assert event["principal"] is None
    else:
        assert event["principal"]["subject"] == identity.subject
        assert event["principal"]["issuer"] == identity.issuer
    assert json.loads(json.dumps(event)) == event


def test_admin_event_keeps_a_given_id_and_never_carries_a_token() -> None:
    event = build_admin_event(
        "grant",
        stage="dev",
        details={"action": "requested", "grant_id": GRANT.id},
        operator=None,
        identity=ALICE,
        event_id="event-9",
    )

    assert event["event_id"] == "event-9"
    assert TOKEN not in json.dumps(event)
    assert "raw_token" not in json.dumps(event)


def test_admin_events_get_distinct_ids() -> None:
    ids = {
        build_admin_event("policy_change", stage="dev", details={}, operator=None)["event_id"]
        for _ in range(100)
    }
    assert len(ids) == 100


@pytest.mark.parametrize(
    ("name", "value", "kept"),
    [
        pytest.param("pass", "hunter2", False, id="pass"),
        pytest.param("passphrase", "correct horse", False, id="passphrase"),
        pytest.param("totp", "123456", False, id="totp"),
        pytest.param("mfa_code", "123456", False, id="mfa code"),
        pytest.param("oauth_code", "abc", False, id="oauth code"),
        pytest.param("accessKey", "abc", False, id="camelCase key"),
        pytest.param("bearer", "abc", False, id="bearer"),
        pytest.param("redirect", "https://bob:hunter2@example.com/", False, id="userinfo"),
        pytest.param("next", "/cb?password=hunter2", False, id="nested query"),
        pytest.param("next", "/cb?page=2", True, id="nested harmless query"),
        pytest.param("next", "/cb#access_token=abc", False, id="token in a nested fragment"),
        pytest.param("pw", "hunter2", False, id="pw"),
        pytest.param("PHPSESSID", "q3lm8v0c2k4j6h8g0f2d4s6a8p", False, id="php session id"),
        pytest.param("hmac", "abc", False, id="hmac"),
        pytest.param("magic", "q3lm8v0c2k4j6h8g0f2d4s6a8pq3lm8v0c2", False, id="lower-case link"),
        pytest.param("order", "1234567890", True, id="a number"),
        pytest.param("q", "quarterly report 2026", True, id="search words"),
        pytest.param("page", "2", True, id="page"),
    ],
)
def test_credentials_by_name_shape_and_nesting_are_redacted(
    name: str, value: str, kept: bool
) -> None:
    names = re.compile(DEFAULT_QUERY_REDACTION)
    recorded = redact_query([(name, value)], names, re.compile(DEFAULT_QUERY_VALUE_REDACTION))
    assert recorded is not None
    assert (REDACTED not in recorded) is kept


# --- session events ----------------------------------------------------------------------


def test_session_actions_and_revokers_are_closed_sets() -> None:
    assert {
        "signed_in",
        "sign_in_failed",
        "refreshed",
        "refresh_failed",
        "signed_out",
        "revoked",
        "idp_logged_out",
        "idp_logout_refused",
    } == SESSION_ACTIONS
    assert {"user", "operator", "idp"} == SESSION_REVOKERS


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        pytest.param({"action": "logged_in"}, "session action", id="unknown action"),
        pytest.param(
            {"action": "revoked", "revoked_by": "admin"}, "session revoker", id="unknown revoker"
        ),
        pytest.param(
            {"action": "sign_in_failed", "reason": "bad_luck"}, "bad_luck", id="not a reason code"
        ),
    ],
)
def test_a_session_section_outside_its_closed_sets_is_refused(
    fields: dict[str, str], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        SessionSection(**fields)


def test_a_session_event_has_every_field_then_its_own_section() -> None:
    request = parse_proxy_event(load_event("proxy_request"))
    browser = dataclasses.replace(ALICE, browser_session_id="bs-9")

    event = build_session_event(
        SessionSection("signed_in", "bs-9", "okta", expires_at=1_795_900_000),
        stage="dev",
        identity=browser,
        request=request,
        event_id="event-1",
    )

    assert list(event) == [*TOP_LEVEL_ORDER, "session"]
    assert event["event_type"] == "session"
    assert event["event_id"] == "event-1"
    assert TIMESTAMP.fullmatch(event["event_time"])
    assert event["request"] == {
        "id": request.request_id,
        "extended_id": request.extended_request_id,
        "lambda_request_id": None,
        "trace_id": request.trace_id,
        "decision_id": None,
    }
    assert event["source"] == {"ip": request.source_ip, "user_agent": request.user_agent}
    assert event["principal"]["browser_session_id"] == "bs-9"
    assert event["aws"] is None
    for section in ("resource", "action", "decision", "outcome", "elevation", "grant"):
        assert event[section] is None, section
    assert event["session"] == {
        "action": "signed_in",
        "session_id": "bs-9",
        "idp": "okta",
        "reason": None,
        "revoked_by": None,
        "expires_at": 1_795_900_000,
        "detail": None,
    }
    assert TOKEN not in json.dumps(event)
    assert json.loads(json.dumps(event)) == event


def test_an_operators_revocation_names_the_operator_and_a_failure_its_reason() -> None:
    revoked = build_session_event(
        SessionSection("revoked", "bs-9", "okta", Reason.SESSION_REVOKED, "operator"),
        stage="prod",
        operator="arn:aws:iam::123456789012:user/ops",
    )
    failed = build_session_event(
        SessionSection("refresh_failed", "bs-9", "okta", "login_code_rejected", detail="é" * 250),
        stage="prod",
    )

    assert revoked["aws"] == {"caller_arn": "arn:aws:iam::123456789012:user/ops"}
    assert revoked["principal"] is None
    assert revoked["request"] is None
    assert revoked["source"] is None
    assert revoked["session"]["reason"] == "session_revoked"
    assert revoked["session"]["revoked_by"] == "operator"
    assert failed["session"]["reason"] == "login_code_rejected"
    assert failed["session"]["detail"] == "é" * 200
    assert failed["aws"] is None


def test_request_and_admin_events_carry_no_session_member() -> None:
    admin = build_admin_event("policy_change", stage="dev", details={}, operator=None)
    decision = build_event(
        "decision",
        RequestRecord("r1", None, None, None, "dev", "203.0.113.7", None, "h", "GET", "/", None),
        identity=ALICE,
        decision=DecisionRecord("allow", (Reason.ALLOW_RULE_MATCHED,)),
        resource=ResourceRecord(),
    )

    assert "session" not in admin
    assert "session" not in decision
    assert "browser_session_id" not in decision["principal"]
