"""The audit event on the wire: byte-for-byte what the ledger has always stored.

The ledger is locked for years and its verification hashes these lines, so
every producer's event must serialise exactly as it did when the golden
lines in ``tests/fixtures/audit_wire/golden.json`` were written (by the
builders that returned dicts, before :class:`AuditEvent` existed). Time and
randomness are pinned so each case is one fixed line.

Regenerate only for a deliberate schema change:
``python -m tests.unit.test_audit_wire``.
"""

from __future__ import annotations

import dataclasses
import inspect
import json
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from chalicelib.audit.access_logs import LOG_FIELDS
from chalicelib.audit.emitter import serialize_event
from chalicelib.audit.gateway_events import gateway_event
from chalicelib.audit.schema import (
    AuditEvent,
    AwsRecord,
    DecisionRecord,
    ElevationRecord,
    RequestRecord,
    ResourceRecord,
    ResponseRecord,
    build_admin_event,
    build_event,
    build_session_event,
)
from chalicelib.audit.sections import SessionSection
from chalicelib.identity import Identity
from chalicelib.reasons import Reason
from tests.helpers import AUDIENCE, ISSUER

GOLDEN = Path(__file__).resolve().parents[1] / "fixtures" / "audit_wire" / "golden.json"
ACCESS_LOGS = Path(__file__).resolve().parents[1] / "fixtures" / "access_logs"
NOW_NS = 1_795_881_637_123_456_789

ALICE = Identity(
    issuer=ISSUER,
    subject="alice",
    audience=AUDIENCE,
    expires_at=1795881637,
    email="alice@example.com",
    groups=frozenset({"eng", "admins"}),
    amr=("pwd", "mfa"),
    auth_time=1795881000,
    client_id="cli-1",
    session_id="sess-1",
    token_id="jti-1",
)


def _request(method: str = "GET", **overrides: Any) -> RequestRecord:
    fields: dict[str, Any] = {
        "request_id": "req-1",
        "extended_request_id": "ext-1",
        "trace_id": "Root=1-abc",
        "lambda_request_id": "lambda-1",
        "stage": "dev",
        "source_ip": "203.0.113.7",
        "user_agent": "curl/8.5.0",
        "host": "gatehouse.example.com",
        "method": method,
        "path": "/api/projects/42",
        "query": "tag=blue&token=REDACTED",
    }
    fields.update(overrides)
    return RequestRecord(**fields)


def _allowed(**overrides: Any) -> DecisionRecord:
    fields: dict[str, Any] = {
        "outcome": "allow",
        "reasons": (Reason.ALLOW_RULE_MATCHED,),
        "matched_rules": ("eng-read",),
        "policy_version": 3,
        "policy_checksum": "sha256:abc",
    }
    fields.update(overrides)
    return DecisionRecord(**fields)


def _decision() -> dict[str, Any]:
    return build_event(
        "decision",
        _request(),
        identity=ALICE,
        decision=_allowed(),
        resource=ResourceRecord("demo", "http://127.0.0.1:9000", True),
        event_id="0195d3a2-6b7e-7c41-9a2f-3e4d5c6b7a89",
    )


def _denied_anonymous() -> dict[str, Any]:
    return build_event(
        "decision",
        _request("DELETE", query=None, user_agent=None, trace_id=None),
        identity=None,
        decision=DecisionRecord(
            outcome="deny",
            reasons=(Reason.MISSING_CREDENTIALS,),
            cached=True,
            detail="x" * 300,
        ),
        resource=ResourceRecord(),
        anomalies=["spoofed_gatehouse_header"],
        event_id="0195d3a2-6b7e-7c41-9a2f-3e4d5c6b7a8a",
    )


def _elevated_aws_decision() -> dict[str, Any]:
    elevation = ElevationRecord("grant-1", "bob@example.com", "incident 42 \u2014 caf\u00e9", False)
    return build_event(
        "decision",
        _request("PUT", user_agent="agent/\u00e9\u4e2d \U0001f600"),
        identity=ALICE,
        decision=_allowed(elevation=elevation, decided_by="proxy"),
        resource=ResourceRecord("s3", "aws:s3", True),
        aws=AwsRecord(
            "arn:aws:iam::123456789012:role/gh",
            "eu-west-1",
            "s3",
            "gh-req-1",
            "alice",
            "ASIAEXAMPLE",
        ),
        event_id="0195d3a2-6b7e-7c41-9a2f-3e4d5c6b7a8b",
    )


def _response() -> dict[str, Any]:
    return build_event(
        "response",
        _request("POST"),
        identity=ALICE,
        decision=_allowed(),
        resource=ResourceRecord("demo"),
        decision_id="0195d3a2-6b7e-7c41-9a2f-3e4d5c6b7a89",
        response=ResponseRecord(201, 10, 20, 12.34567, 3.0001, "upstream_timeout"),
        event_id="0195d3a2-6b7e-7c41-9a2f-3e4d5c6b7a8c",
    )


def _lone_surrogate() -> dict[str, Any]:
    # orjson refuses this text; the standard encoder's escaped form is the wire form.
    return build_event(
        "decision",
        _request(user_agent="evil\udc80agent"),
        identity=None,
        decision=DecisionRecord(outcome="deny", reasons=(Reason.MISSING_CREDENTIALS,)),
        resource=ResourceRecord(),
        event_id="0195d3a2-6b7e-7c41-9a2f-3e4d5c6b7a8d",
    )


def _browser_session_decision() -> dict[str, Any]:
    # A request that came with a session cookie: its principal names the session, last.
    return build_event(
        "decision",
        _request(),
        identity=dataclasses.replace(ALICE, browser_session_id="bs-1"),
        decision=_allowed(),
        resource=ResourceRecord("demo", "http://127.0.0.1:9000", True),
        event_id="0195d3a2-6b7e-7c41-9a2f-3e4d5c6b7a90",
    )


def _random_id_decision() -> dict[str, Any]:
    return build_event(
        "decision",
        _request(),
        identity=ALICE,
        decision=_allowed(),
        resource=ResourceRecord("demo"),
    )


def _policy_change() -> dict[str, Any]:
    return build_admin_event(
        "policy_change",
        stage="prod",
        details={"action": "activated", "version": 5, "checksum": "sha256:" + "a" * 64},
        operator="arn:aws:iam::123456789012:user/ops",
    )


def _grant() -> dict[str, Any]:
    return build_admin_event(
        "grant",
        stage="prod",
        details={"action": "approved", "grant_id": "grant-1", "routes": ["demo"]},
        operator="arn:aws:sts::123456789012:assumed-role/gatehouse-cli/sam",
        identity=ALICE,
        event_id="0195d3a2-6b7e-7c41-9a2f-3e4d5c6b7a8e",
    )


def _grant_by_api() -> dict[str, Any]:
    from chalicelib.apigw.events import parse_proxy_event
    from tests.helpers import load_event

    request = parse_proxy_event(load_event("proxy_request"))
    return build_admin_event(
        "grant",
        stage="dev",
        details={"action": "requested", "grant_id": "grant-2"},
        operator=None,
        identity=ALICE,
        request=request,
    )


def _signing_key() -> dict[str, Any]:
    from chalicelib.audit.sections import SigningKeySection

    return build_admin_event(
        "signing_key",
        stage="prod",
        details=SigningKeySection(
            action="rotated",
            kid="kid-2",
            certified_by="kms-kid",
            not_before=1_900_000_000,
            not_after=1_900_010_800,
            certificate_sha256="c" * 64,
            replaces="kid-1",
        ),
        operator=None,
    )


def _session_signed_in() -> dict[str, Any]:
    from chalicelib.apigw.events import parse_proxy_event
    from tests.helpers import load_event

    return build_session_event(
        SessionSection("signed_in", "bs-1", "okta", expires_at=1_795_910_437),
        stage="dev",
        identity=dataclasses.replace(ALICE, browser_session_id="bs-1"),
        request=parse_proxy_event(load_event("proxy_request")),
    )


def _session_sign_in_failed() -> dict[str, Any]:
    from chalicelib.apigw.events import parse_proxy_event
    from tests.helpers import load_event

    return build_session_event(
        SessionSection(
            "sign_in_failed", idp="okta", reason=Reason.LOGIN_STATE_MISMATCH, detail="x" * 300
        ),
        stage="dev",
        request=parse_proxy_event(load_event("proxy_request")),
    )


def _session_revoked_by_operator() -> dict[str, Any]:
    return build_session_event(
        SessionSection("revoked", "bs-1", "okta", revoked_by="operator", detail="offboarding"),
        stage="prod",
        identity=ALICE,
        operator="arn:aws:sts::123456789012:assumed-role/gatehouse-cli/sam",
    )


def _alert_deny_burst() -> dict[str, Any]:
    from chalicelib.detect.alerts import Alert

    return Alert(
        alert_id="0195d3a2-6b7e-7c41-9a2f-3e4d5c6b7a90",
        rule="deny-burst-principal",
        kind="deny_burst_principal",
        severity="medium",
        stage="prod",
        subject=f"{ISSUER} alice",
        principal={"issuer": ISSUER, "subject": "alice", "email": "alice@example.com"},
        observed=20,
        threshold=20,
        window_from=1_795_881_600.0,
        window_to=1_795_881_660.0,
        event_ids=("e-1", "e-2"),
        detail="20 denied decisions within 60 s (threshold 20)",
        raised_at=1_795_881_661.5,
    ).audit_event()


def _gateway(name: str) -> Callable[[], dict[str, Any]]:
    def build() -> dict[str, Any]:
        line = (ACCESS_LOGS / f"{name}.ndjson").read_text(encoding="utf-8").splitlines()[0]
        return gateway_event(json.loads(line), stage="dev")

    return build


def _gateway_all_dashes() -> dict[str, Any]:
    return gateway_event(dict.fromkeys(LOG_FIELDS, "-"), stage="prod")


CASES: dict[str, Callable[[], dict[str, Any]]] = {
    "decision": _decision,
    "decision_denied_anonymous": _denied_anonymous,
    "decision_elevated_aws": _elevated_aws_decision,
    "decision_lone_surrogate": _lone_surrogate,
    "decision_random_id": _random_id_decision,
    "decision_browser_session": _browser_session_decision,
    "response": _response,
    "policy_change": _policy_change,
    "grant": _grant,
    "grant_by_api": _grant_by_api,
    "signing_key": _signing_key,
    "session_signed_in": _session_signed_in,
    "session_sign_in_failed": _session_sign_in_failed,
    "session_revoked_by_operator": _session_revoked_by_operator,
    "gateway_all_dashes": _gateway_all_dashes,
    "alert_deny_burst": _alert_deny_burst,
    **{
        f"gateway_{path.stem}": _gateway(path.stem)
        for path in sorted(ACCESS_LOGS.glob("*.ndjson"))
        if path.stem != "bad_lines"
    },
}


class _Pinned:
    """Fixed clock and randomness, so ids and timestamps are the same every run."""

    def __init__(self) -> None:
        self.ns = NOW_NS

    def time_ns(self) -> int:
        return self.ns

    @staticmethod
    def urandom(size: int) -> bytes:
        return bytes(range(7, 7 + size))


@pytest.fixture
def pinned(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = _Pinned()
    monkeypatch.setattr(time, "time_ns", clock.time_ns)
    monkeypatch.setattr(os, "urandom", clock.urandom)


def wire_lines() -> dict[str, str]:
    """Each case's serialised event (call with time and randomness pinned)."""
    return {name: serialize_event(build()) for name, build in CASES.items()}


@pytest.mark.parametrize("name", sorted(CASES))
def test_each_event_kind_serialises_to_its_golden_line(name: str, pinned: None) -> None:
    golden = json.loads(GOLDEN.read_text(encoding="utf-8"))

    line = serialize_event(CASES[name]())

    assert line == golden[name]
    assert line.encode("utf-8", "surrogatepass") == golden[name].encode("utf-8", "surrogatepass")


def test_every_golden_line_has_a_case() -> None:
    assert set(json.loads(GOLDEN.read_text(encoding="utf-8"))) == set(CASES)


FIELD_NAMES = [field.name for field in dataclasses.fields(AuditEvent)]


def test_the_field_order_is_the_wire_member_order() -> None:
    values = {name: f"value of {name}" for name in FIELD_NAMES}
    event = AuditEvent(**values)  # type: ignore[arg-type]

    assert list(event.as_dict().items()) == list(values.items())
    # Builders pass the fields positionally: the constructor's order is the field order.
    assert list(inspect.signature(AuditEvent).parameters) == FIELD_NAMES


@pytest.mark.parametrize("name", sorted(CASES))
def test_every_producer_emits_the_fields_in_order(name: str) -> None:
    members = list(CASES[name]())

    # ``gateway``, ``signing_key``, ``session`` and ``alert`` close the event, and only
    # their own events carry them.
    optional = {"gateway", "signing_key", "session", "alert"}
    assert FIELD_NAMES[-len(optional) :] == ["gateway", "signing_key", "session", "alert"]
    expected = [n for n in FIELD_NAMES if n not in optional or name.startswith(n)]
    assert members == expected


PRINCIPAL_MEMBERS = [
    "issuer",
    "subject",
    "email",
    "groups",
    "amr",
    "auth_time",
    "client_id",
    "session_id",
    "token_id",
    "token_expires_at",
]


@pytest.mark.parametrize("name", sorted(CASES))
def test_only_a_browser_sessions_principal_names_it_and_last(name: str) -> None:
    principal = CASES[name]()["principal"]
    if principal is None or name.startswith("gateway"):
        return
    if name in ("decision_browser_session", "session_signed_in"):
        assert list(principal) == [*PRINCIPAL_MEMBERS, "browser_session_id"]
        assert principal["browser_session_id"] == "bs-1"
    else:  # a bearer token's principal: the members it always had, nothing more
        assert list(principal) == PRINCIPAL_MEMBERS


def test_a_bearer_decision_keeps_its_bytes_whatever_the_session_fields() -> None:
    golden = json.loads(GOLDEN.read_text(encoding="utf-8"))

    assert "browser_session_id" not in golden["decision"]
    assert '"session"' not in golden["decision"]
    assert '"browser_session_id":"bs-1"}' in golden["decision_browser_session"]


def test_a_session_event_closes_with_its_section_in_field_order(pinned: None) -> None:
    event = _session_sign_in_failed()

    assert list(event)[-2:] == ["grant", "session"]
    assert list(event["session"]) == [
        "action",
        "session_id",
        "idp",
        "reason",
        "revoked_by",
        "expires_at",
        "detail",
    ]
    # Every member of the section is written, null when unknown.
    assert event["session"]["session_id"] is None
    assert event["session"]["reason"] == "login_state_mismatch"
    assert type(event["session"]["reason"]) is str
    assert event["session"]["detail"] == "x" * 200
    assert event["principal"] is None
    assert event["action"] is None
    assert event["request"]["id"] == "c6af9ac6-7b61-11e6-9a41-93e8deadbeef"


def test_gateway_is_left_out_only_when_unset() -> None:
    values: dict[str, Any] = dict.fromkeys(FIELD_NAMES)

    assert "gateway" not in AuditEvent(**values).as_dict()
    assert AuditEvent(**values | {"gateway": {}}).as_dict()["gateway"] == {}


@pytest.mark.parametrize("name", sorted(CASES))
def test_an_event_and_its_wire_form_serialise_alike(name: str, pinned: None) -> None:
    wire = CASES[name]()
    event = AuditEvent(**wire)

    assert event.as_dict() == wire
    assert list(event.as_dict()) == list(wire)
    assert serialize_event(event) == serialize_event(wire)


def test_an_event_is_frozen() -> None:
    event = AuditEvent(**dict.fromkeys(FIELD_NAMES))  # type: ignore[arg-type]

    with pytest.raises(dataclasses.FrozenInstanceError):
        event.stage = "prod"  # type: ignore[misc]
    assert not hasattr(event, "__dict__")


if __name__ == "__main__":
    with pytest.MonkeyPatch.context() as patch:
        clock = _Pinned()
        patch.setattr(time, "time_ns", clock.time_ns)
        patch.setattr(os, "urandom", clock.urandom)
        lines = wire_lines()
    GOLDEN.write_text(json.dumps(lines, indent=1, ensure_ascii=True) + "\n", encoding="utf-8")
