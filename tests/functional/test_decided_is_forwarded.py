"""What the policy decides is exactly what is forwarded and exactly what is recorded.

The real authorizer and proxy handlers run on API Gateway events; the
upstream is the demo backend on a loopback socket, which reports the request
target exactly as it arrived. For every raw path a client could send, the
path the backend reads equals the path that was decided and audited, or the
request is refused as ambiguous (400, audited) and never forwarded.
"""

from __future__ import annotations

import gzip
import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, unquote_to_bytes, urlsplit

import jwt
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from chalicelib.config import Settings
from chalicelib.container import Container
from tests.functional.conftest import policy_document, queued_events
from tests.functional.test_proxy import (
    REBUILT,
    REQUEST_ID,
    as_gateway_context,
    authorize,
    authorizer_answer,
    invoke,
    proxy_event,
    set_header,
)
from tests.helpers import FakeIdp, claims, make_token

if TYPE_CHECKING:
    from gatehouse.dev.backend import DemoBackend
    from gatehouse.dev.bootstrap import Resources


def _publish(container: Container, upstream: str, *rules: dict[str, Any], **blocks: Any) -> None:
    document = policy_document(upstream)
    document["rules"].extend(rules)
    document.update(blocks)
    container.policy_store.publish(document, actor="test")


def _events_for(aws: Resources, request_id: str) -> list[dict[str, Any]]:
    return [e for e in queued_events(aws) if (e["request"] or {}).get("id") == request_id]


def _backend_reads(target: str) -> str:
    """The path a backend serves for a request target: cut at ? and #, percent-decoded."""
    return unquote_to_bytes(urlsplit(target).path).decode("utf-8")


# --- property: the decided path is the forwarded path ----------------------------------------

PIECES = st.one_of(
    st.sampled_from(
        ["/", "api", "billing", "x", ".", "..", "%", "#", "?", "%23", "%3F", "%3f", "%2F", "%25"]
    ),
    st.sampled_from([";", "\\", " ", "%20", "+", "&", "=", "@", ":", "~", "!", "*", "'"]),
    st.characters(codec="utf-8").map(lambda char: quote(char, safe="")),
    st.characters(codec="utf-8", blacklist_categories=("Cs",)),
)
RAW_PATHS = st.lists(PIECES, max_size=10).map(lambda pieces: "/api/" + "".join(pieces))


@settings(
    max_examples=250,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(raw_path=RAW_PATHS)
@example(raw_path="/api/billing#x")
@example(raw_path="/api/billing%23x")
@example(raw_path="/api/files/x.xlsx#.pdf")
@example(raw_path="/api/a?b")
@example(raw_path="/api/caf%C3%A9/a%20b")
@example(raw_path="/api/adm\u0131n")
def test_backend_receives_exactly_the_path_that_was_decided_and_audited(
    stage: Container, aws: Resources, backend: DemoBackend, rsa_key: Any, raw_path: str
) -> None:
    token = make_token(rsa_key, "RS256", "rsa-1")
    event = proxy_event(token, method="GET", path=raw_path, body=None, query={})
    authorize(event)

    reply = invoke(event)

    decision, response = _events_for(aws, REQUEST_ID)
    assert decision["event_type"] == "decision"
    assert response["event_type"] == "response"
    if reply.status == 400:
        assert decision["decision"]["reasons"] == ["ambiguous_path"]
        assert response["decision"]["reasons"] == ["ambiguous_path"]
        assert response["outcome"]["status"] == 400
        assert reply.json()["message"] == "ambiguous path"
        return
    assert reply.status == 200, (raw_path, reply.body)
    seen = reply.json()
    decided = decision["resource"]["path"]
    assert decision["decision"]["outcome"] == "allow"
    assert _backend_reads(seen["target"]) == decided
    assert response["resource"]["path"] == decided
    [assertion] = seen["headers"]["X-Gatehouse-Assertion"]
    signed = jwt.decode(assertion, options={"verify_signature": False})  # checked elsewhere
    assert signed["htu"] == "https://gatehouse.example.com" + seen["target"]


@pytest.mark.parametrize(
    "raw_path",
    [
        pytest.param("/api/billing#x", id="raw fragment escapes a deny"),
        pytest.param("/api/billing%23x", id="encoded fragment"),
        pytest.param("/api/billing?x", id="raw question mark"),
        pytest.param("/api/billing/%3F", id="encoded question mark"),
        pytest.param("/api/BILL\u0131NG/x", id="dotless i upper-cased by the backend"),
        pytest.param("/api/\uff42illing/x", id="fullwidth b under NFKC"),
    ],
)
def test_a_path_a_backend_would_read_differently_is_refused_not_forwarded(
    stage: Container, aws: Resources, backend: DemoBackend, rsa_key: Any, raw_path: str
) -> None:
    contractor = make_token(
        rsa_key, "RS256", "rsa-1", claims(groups=["engineering", "contractors"])
    )
    event = proxy_event(contractor, method="GET", path=raw_path, body=None)
    authorize(event)

    reply = invoke(event)

    assert reply.status == 400
    decision, response = _events_for(aws, REQUEST_ID)
    assert decision["decision"]["outcome"] == "deny"
    assert decision["decision"]["reasons"] == ["ambiguous_path"]
    assert decision["resource"]["path"] == raw_path  # no canonical form: the raw one is kept
    assert response["outcome"]["status"] == 400
    assert response["outcome"]["upstream_latency_ms"] is None  # the backend was never called
    assert reply.json()["message"] == "ambiguous path"


def test_deny_on_billing_holds_in_every_letter_case(
    stage: Container, aws: Resources, backend: DemoBackend, rsa_key: Any
) -> None:
    contractor = make_token(
        rsa_key, "RS256", "rsa-1", claims(groups=["engineering", "contractors"])
    )
    for path in ("/api/billing/x", "/API/Billing/x", "/api/BILLING", "/api/%62illing/x"):
        event = proxy_event(contractor, method="GET", path=path, body=None)
        request = authorizer_answer(event)
        assert request["policyDocument"]["Statement"][0]["Effect"] == "Deny", path
    queued_events(aws)


# --- routes match prefixes ignoring case -----------------------------------------------------


def test_route_prefix_matches_in_any_case_so_another_routes_rules_never_apply(
    stage: Container, aws: Resources, backend: DemoBackend, rsa_key: Any
) -> None:
    document = policy_document(backend.url)
    document["routes"].insert(
        0,
        {
            "id": "admin",
            "host": "*",
            "path_prefix": "/api/admin",
            "upstream": backend.url,
            "audience": "demo",
        },
    )
    stage.policy_store.publish(document, actor="test")
    engineer = make_token(rsa_key, "RS256", "rsa-1")
    for path in ("/api/admin/users", "/API/ADMIN/users", "/api/Admin"):
        event = proxy_event(engineer, method="GET", path=path, body=None)
        answer = authorizer_answer(event)
        assert answer["policyDocument"]["Statement"][0]["Effect"] == "Deny", path
        (decision,) = _events_for(aws, REQUEST_ID)
        assert decision["resource"]["route_id"] == "admin", path
        assert decision["decision"]["reasons"] == ["no_matching_rule"]


# --- method-override parameters ---------------------------------------------------------------


def test_method_override_in_the_query_is_refused_by_the_authorizer_and_the_proxy(
    stage: Container, aws: Resources, backend: DemoBackend, rsa_key: Any
) -> None:
    token = make_token(rsa_key, "RS256", "rsa-1")
    event = proxy_event(token, method="POST", query={"_METHOD": ["DELETE"]})
    authorize(event)  # let through (Allow) so that the proxy answers 400, not 403

    reply = invoke(event)

    assert reply.status == 400
    assert reply.json()["message"].startswith("ambiguous request")
    decision, response = _events_for(aws, REQUEST_ID)
    assert decision["decision"]["reasons"] == ["ambiguous_request"]
    assert "query string" in decision["decision"]["detail"]
    assert response["outcome"]["status"] == 400


@pytest.mark.parametrize(
    ("content_type", "body"),
    [
        pytest.param("application/x-www-form-urlencoded", b"name=x&_method=DELETE", id="form"),
        pytest.param(
            "application/x-www-form-urlencoded; charset=utf-8", b"%5Fmethod=delete", id="form enc"
        ),
        pytest.param(
            "multipart/form-data; boundary=b",
            b'--b\r\nContent-Disposition: form-data; name="_method"\r\n\r\nDELETE\r\n--b--\r\n',
            id="multipart",
        ),
        pytest.param("application/json", b'{"_method": "DELETE"}', id="json"),
        pytest.param("application/json", b'{"\\u005fmethod": "DELETE"}', id="json escaped"),
        pytest.param("application/json", b'{"_\\u006Dethod": "DELETE"}', id="json half escaped"),
        pytest.param(
            "application/x-www-form-urlencoded", b"X-HTTP-Method-Override=PUT", id="asp.net form"
        ),
        pytest.param(None, b"_method=DELETE", id="no content type (Rack reads a form)"),
        pytest.param(
            "application/x-www-form-urlencoded, text/plain", b"_method=DELETE", id="type list"
        ),
        pytest.param(
            "application/x-www-form-urlencoded charset=utf-8", b"_method=DELETE", id="no ;"
        ),
        pytest.param("text/json", b'{"_method": "DELETE"}', id="text/json"),
        pytest.param("application/x-www-form-urlencoded", b".method=DELETE", id="php dot"),
        pytest.param("application/x-www-form-urlencoded", b"_method%00x=DELETE", id="php NUL"),
        pytest.param("application/x-www-form-urlencoded", b"+_method=DELETE", id="php space"),
        pytest.param(
            "multipart/form-data; boundary=b",
            b"--b\r\nContent-Disposition: form-data; name='_method'\r\n\r\nDELETE\r\n--b--\r\n",
            id="multipart single quotes",
        ),
        pytest.param(
            "multipart/form-data; boundary=b",
            b"--b\r\nContent-Disposition: form-data; name*=utf-8''%5Fmethod\r\n\r\nX\r\n--b--\r\n",
            id="multipart RFC 5987 name",
        ),
        pytest.param(
            "application/json",
            b'\xff\xfe{\x00"\x00_\x00m\x00e\x00t\x00h\x00o\x00d\x00"\x00:\x001\x00}\x00',
            id="json utf-16",
        ),
        pytest.param(
            "application/x-www-form-urlencoded",
            b"\x00\x00&_method=DELETE&",
            id="NULs in front (read as sent, not as UTF-16)",
        ),
        pytest.param("application/x-www-form-urlencoded", b"_method[]=DELETE", id="array"),
        pytest.param("application/x-www-form-urlencoded", b"_method[0]=DELETE", id="index"),
        pytest.param(
            "application/json; charset=utf-7",
            b'{"+AF8AbQBlAHQAaABvAGQ-":"DELETE"}',
            id="json utf-7",
        ),
        pytest.param(
            "application/json", b'{"x":"\xff","_method":"DELETE"}', id="json invalid utf-8"
        ),
        pytest.param(
            "multipart/form-data; boundary=b",
            b'--b\r\nContent-Disposition: form-data; name="=?UTF-8?B?X21ldGhvZA==?="'
            b"\r\n\r\nDELETE\r\n--b--\r\n",
            id="multipart RFC 2047 name",
        ),
        pytest.param(
            "multipart/form-data; boundary=b",
            b'--b\r\nContent-Disposition: form-data; name*0="_met"; name*1="hod"'
            b"\r\n\r\nDELETE\r\n--b--\r\n",
            id="multipart RFC 2231 continuations",
        ),
    ],
)
def test_method_override_in_the_body_is_refused_by_the_proxy(
    stage: Container,
    aws: Resources,
    backend: DemoBackend,
    rsa_key: Any,
    content_type: str | None,
    body: bytes,
) -> None:
    token = make_token(rsa_key, "RS256", "rsa-1")
    event = proxy_event(token, method="POST", body=body, query={})
    set_header(event, "Content-Type", [content_type] if content_type else None)
    authorize(event)

    reply = invoke(event)

    assert reply.status == 400
    events = _events_for(aws, REQUEST_ID)
    assert events[-1]["event_type"] == "response"
    assert events[-1]["decision"]["reasons"] == ["ambiguous_request"]
    assert "request body" in events[-1]["decision"]["detail"]


@pytest.mark.parametrize(
    ("content_type", "body"),
    [
        pytest.param("application/x-www-form-urlencoded", b"method=DELETE&x_method=1", id="form"),
        pytest.param("application/json", b'{"comment": "use _method carefully"}', id="json value"),
        pytest.param("text/plain", b"_method=DELETE", id="not a form"),
    ],
)
def test_bodies_that_only_mention_the_word_are_forwarded(
    stage: Container,
    aws: Resources,
    backend: DemoBackend,
    rsa_key: Any,
    content_type: str,
    body: bytes,
) -> None:
    token = make_token(rsa_key, "RS256", "rsa-1")
    event = proxy_event(token, method="POST", body=body, query={})
    set_header(event, "Content-Type", [content_type])
    authorize(event)

    assert invoke(event).status == 200
    queued_events(aws)


# --- every decision path is counted ----------------------------------------------------------


@dataclass
class RecordedMetrics:
    """A MetricsRecorder that keeps what it is given (the handlers' only metrics interface)."""

    points: list[tuple[str, float]] = field(default_factory=list)

    def add_metric(self, name: str, unit: str, value: float) -> None:
        self.points.append((name, value))


def test_break_glass_under_a_cached_answer_is_counted_by_the_proxy(
    stage: Container,
    aws: Resources,
    backend: DemoBackend,
    rsa_key: Any,
    idp: FakeIdp,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("GATEHOUSE_AUTHORIZER_TTL_SECONDS", "300")
    recorded = RecordedMetrics()
    container = Container(Settings.from_environment(), fetch_json=idp, metrics=recorded)
    from chalicelib import entrypoints

    entrypoints.use_container(container)
    REBUILT.append(container)
    _publish(container, backend.url, break_glass={"groups": ["oncall"]})
    token = make_token(rsa_key, "RS256", "rsa-1", claims(groups=["oncall"]))
    first = proxy_event(token, method="GET", path="/admin/console", body=None)
    set_header(first, "X-Gatehouse-Justification", ["INC-1: pager"])
    set_header(first, "X-Gatehouse-Assertion", None)
    first["requestContext"]["authorizer"] = as_gateway_context(authorizer_answer(first))
    assert invoke(first).status == 200
    assert recorded.points.count(("BreakGlassUsed", 1)) == 1  # the authorizer's

    # The next request is served under API Gateway's cached answer: only the proxy decides.
    later = proxy_event(token, method="GET", path="/admin/other", request_id="req-2", body=None)
    set_header(later, "X-Gatehouse-Justification", ["INC-1: pager"])
    set_header(later, "X-Gatehouse-Assertion", None)
    later["requestContext"]["authorizer"] = dict(first["requestContext"]["authorizer"])

    assert invoke(later).status == 200

    assert recorded.points.count(("BreakGlassUsed", 1)) == 2
    assert recorded.points.count(("AccessAllowed", 1)) == 2
    (redecided,) = [e for e in _events_for(aws, "req-2") if e["event_type"] == "decision"]
    assert redecided["elevation"]["break_glass"] is True
    assert json.dumps(redecided).count("INC-1: pager") == 1


# --- credential-shaped query values ----------------------------------------------------------

JWT_VALUE = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9.c2lnbmF0dXJlLXNpZ25hdHVyZS1zaWduYXR1cmU"


@pytest.mark.parametrize(
    ("setting", "recorded"),
    [
        pytest.param(None, "REDACTED", id="default rule"),
        pytest.param("", JWT_VALUE, id="rule turned off"),
        pytest.param("^tok-", JWT_VALUE, id="custom rule that does not match"),
    ],
)
def test_query_value_redaction_setting_reaches_the_authorizer_and_the_proxy(
    stage: Container,
    aws: Resources,
    backend: DemoBackend,
    rsa_key: Any,
    idp: FakeIdp,
    monkeypatch: pytest.MonkeyPatch,
    setting: str | None,
    recorded: str,
) -> None:
    if setting is not None:
        monkeypatch.setenv("GATEHOUSE_AUDIT_QUERY_VALUE_REDACTION", setting)
    container = Container(Settings.from_environment(), fetch_json=idp)
    from chalicelib import entrypoints

    entrypoints.use_container(container)
    REBUILT.append(container)
    token = make_token(rsa_key, "RS256", "rsa-1")
    event = proxy_event(token, method="GET", body=None, query={"next": [JWT_VALUE]})
    authorize(event)

    assert invoke(event).status == 200

    decision, response = _events_for(aws, REQUEST_ID)
    for audited in (decision, response):
        assert audited["resource"]["query"] == f"next={quote(recorded, safe='')}"


@pytest.mark.parametrize(
    ("headers", "body", "refused"),
    [
        pytest.param(
            {"Content-Encoding": ["gzip"]},
            gzip.compress(b"_method=DELETE"),
            True,
            id="gzip form with an override",
        ),
        pytest.param(
            {"Content-Encoding": ["gzip"]}, gzip.compress(b"name=x"), False, id="gzip form"
        ),
        pytest.param({"Content-Encoding": ["br"]}, b"\x8b\x03\x80x\x03", True, id="unreadable"),
        pytest.param(
            {"Content-Encoding": ["gzip"]},
            gzip.compress(b"a=1") + gzip.compress(b"&_method=DELETE"),
            True,
            id="gzip, override in the second member",
        ),
        pytest.param(
            {"Content-Encoding": ["identity", "gzip"]},
            gzip.compress(b"_method=DELETE"),
            True,
            id="two content encodings",
        ),
        pytest.param(
            {"Content-Type": ["application/json; charset=x-unheard-of"]},
            b'{"a": 1}',
            True,
            id="unknown charset",
        ),
        pytest.param(
            {"Content-Type": ["text/plain", "application/x-www-form-urlencoded"]},
            b"name=x",
            True,
            id="two content types",
        ),
    ],
)
def test_a_body_the_gateway_cannot_read_as_the_upstream_will_is_refused(
    stage: Container,
    aws: Resources,
    backend: DemoBackend,
    rsa_key: Any,
    headers: dict[str, list[str]],
    body: bytes,
    refused: bool,
) -> None:
    token = make_token(rsa_key, "RS256", "rsa-1")
    event = proxy_event(token, method="POST", body=body, query={})
    set_header(event, "Content-Type", ["application/x-www-form-urlencoded"])
    for name, values in headers.items():
        set_header(event, name, values)
    authorize(event)

    assert invoke(event).status == (400 if refused else 200)
    queued_events(aws)
