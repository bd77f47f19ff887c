"""Browser sign-in through the handlers: the dev issuer on loopback, AWS in moto, real cookies.

A small "browser" keeps the cookies the handlers set and follows their
redirects: through ``entrypoints.sign_in`` for ``/.gatehouse/*``, through the
authorizer and then the proxy (as API Gateway would) for every other path,
and over real HTTP to the dev issuer.
"""

from __future__ import annotations

import base64
import json
import re
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlencode, urlsplit

import boto3
import jwt
import pytest

from chalicelib import entrypoints
from chalicelib.authenticate.logout_tokens import BACKCHANNEL_LOGOUT_EVENT
from chalicelib.aws.table import Table
from chalicelib.config import Settings
from chalicelib.container import Container
from chalicelib.reasons import Reason
from chalicelib.sessions.cookies import LOGIN_COOKIE, SESSION_COOKIE
from chalicelib.sessions.keys import rotate_session_keys
from chalicelib.sessions.model import BrowserSession
from chalicelib.sessions.store import SessionStore
from gatehouse.dev.idp import DevIssuer, load_or_create_key
from tests.functional.conftest import (
    GATEWAY_ISSUER,
    environment,
    policy_document,
    queued_events,
)
from tests.helpers import AUDIENCE, load_event

if TYPE_CHECKING:
    from gatehouse.dev.backend import DemoBackend
    from gatehouse.dev.bootstrap import Resources

CLIENT_ID = "gatehouse-test"
KEYS_SECRET = "gatehouse/test/session-keys"
API = "arn:aws:execute-api:us-east-1:123456789012:abc123/dev"
BROWSER_ACCEPT = "text/html,application/xhtml+xml;q=0.9,*/*;q=0.8"


def started_issuer(directory: Path) -> Iterator[DevIssuer]:
    """A dev issuer on loopback with the gateway registered as its client."""
    server = DevIssuer([load_or_create_key(directory, "RS256")])
    server.start()
    server.register_client(
        CLIENT_ID,
        redirect_uris=[f"{GATEWAY_ISSUER}/.gatehouse/callback"],
        post_logout_redirect_uris=[f"{GATEWAY_ISSUER}/.gatehouse/signed-out"],
        backchannel_logout_uri=None,
    )
    yield server
    server.stop()


@pytest.fixture(scope="module")
def issuer(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DevIssuer]:
    yield from started_issuer(tmp_path_factory.mktemp("idp"))


@pytest.fixture
def signing_in(
    aws: Resources, backend: DemoBackend, issuer: DevIssuer, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Container]:
    """A stage whose people sign in with the dev issuer."""
    rotate_session_keys(boto3.client("secretsmanager", region_name="us-east-1"), KEYS_SECRET)
    trusted = [
        {"issuer": issuer.url, "audiences": [AUDIENCE], "name": "dev", "client_id": CLIENT_ID}
    ]
    overrides = {
        "GATEHOUSE_TRUSTED_ISSUERS": json.dumps(trusted),
        "GATEHOUSE_ALLOW_HTTP_ISSUERS": "true",
        "GATEHOUSE_SESSION_KEYS_SECRET": KEYS_SECRET,
        "GATEHOUSE_SESSION_REVOCATION_REFRESH_SECONDS": "0",
    }
    for name, value in environment(aws, **overrides).items():
        monkeypatch.setenv(name, value)
    container = Container(Settings.from_environment())
    document = policy_document(backend.url)
    document["rules"].append(
        {
            "id": "staff-app",
            "effect": "allow",
            "routes": ["demo"],
            "subjects": {"domains": ["example.com"]},
            "actions": ["GET", "HEAD"],
            "paths": ["/app/**"],
        }
    )
    container.policy_store.publish(document, actor="test")
    container.assertion_keys.current()
    queued_events(aws)
    entrypoints.use_container(container)
    yield container
    entrypoints.use_container(None)
    if "upstream" in vars(container):
        container.upstream.close()


@dataclass
class Answer:
    status: int
    headers: dict[str, list[str]]
    body: bytes

    @property
    def location(self) -> str:
        return self.headers["Location"][0]

    def cookies_set(self) -> dict[str, str]:
        found = {}
        for value in self.headers.get("Set-Cookie", []):
            name, _, rest = value.partition("=")
            found[name] = rest.split(";", 1)[0]
        return found


@dataclass
class Browser:
    """Keeps cookies (no Secure/port rules needed: one gateway) and makes requests."""

    cookies: dict[str, str] = field(default_factory=dict)
    request_number: int = 0

    def gateway(
        self, method: str, url: str, *, accept: str = BROWSER_ACCEPT, body: bytes = b""
    ) -> Answer:
        parts = urlsplit(url)
        assert f"{parts.scheme}://{parts.netloc}" == GATEWAY_ISSUER, url
        self.request_number += 1
        event = self._event(method, parts.path, parts.query, accept, body)
        if parts.path.startswith("/.gatehouse/"):
            answer = _answer(entrypoints.sign_in(event, None))
        else:
            answer = self._through_authorizer(event)
        for name, value in answer.cookies_set().items():
            if value:
                self.cookies[name] = value
            else:
                self.cookies.pop(name, None)
        return answer

    def _event(
        self, method: str, path: str, query: str, accept: str, body: bytes
    ) -> dict[str, Any]:
        event = load_event("proxy_request")
        context = event["requestContext"]
        event["httpMethod"] = context["httpMethod"] = method
        event["path"] = path
        context["path"] = f"/dev{path}"
        context["requestId"] = f"req-{self.request_number}"
        event["resource"] = context["resourcePath"] = "/{proxy+}"
        event["pathParameters"] = {"proxy": path.lstrip("/")}
        headers: dict[str, list[str]] = {
            "Host": ["gatehouse.test.example"],
            "Accept": [accept],
            "User-Agent": ["test-browser"],
        }
        if self.cookies:
            headers["Cookie"] = ["; ".join(f"{k}={v}" for k, v in self.cookies.items())]
        if body:
            headers["Content-Type"] = ["application/x-www-form-urlencoded"]
        event["multiValueHeaders"] = headers
        event["headers"] = {name: values[-1] for name, values in headers.items()}
        pairs = parse_qs(query, keep_blank_values=True)
        event["multiValueQueryStringParameters"] = pairs or None
        event["queryStringParameters"] = {k: v[-1] for k, v in pairs.items()} or None
        event["body"] = base64.b64encode(body).decode() if body else None
        event["isBase64Encoded"] = bool(body)
        return event

    def _through_authorizer(self, event: dict[str, Any]) -> Answer:
        request = {
            "type": "REQUEST",
            "methodArn": f"{API}/{event['httpMethod']}{event['path']}",
            **{k: v for k, v in event.items() if k not in ("body", "isBase64Encoded")},
        }
        try:
            decision = entrypoints.authorize(request, None)
        except Exception as exc:  # the gateway's 401/503 for Unauthorized / a failure
            status = 401 if str(exc) == "Unauthorized" else 503
            return Answer(status, {}, b"")
        statement = decision["policyDocument"]["Statement"]
        if not any(s["Effect"] == "Allow" for s in statement):
            return Answer(403, {}, b"")
        event["requestContext"]["authorizer"] = {
            **{k: str(v) for k, v in decision["context"].items()},
            "principalId": decision["principalId"],
        }
        return _answer(entrypoints.proxy(event, None))


def _answer(response: dict[str, Any]) -> Answer:
    body = (
        base64.b64decode(response["body"])
        if response.get("isBase64Encoded")
        else (response.get("body") or "").encode()
    )
    headers = response.get("multiValueHeaders") or {
        k: [v] for k, v in (response.get("headers") or {}).items()
    }
    return Answer(response["statusCode"], headers, body)


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


def at_issuer(url: str, form: dict[str, str] | None = None) -> Answer:
    """A real HTTP request to the dev issuer (redirects not followed)."""
    data = urlencode(form).encode() if form is not None else None
    opener = urllib.request.build_opener(_NoRedirect)
    try:
        with opener.open(url, data=data, timeout=5) as response:
            return Answer(response.status, {"Location": [response.headers.get("Location", "")]},
                          response.read())  # fmt: skip
    except urllib.error.HTTPError as exc:
        return Answer(exc.code, {"Location": [exc.headers.get("Location", "")]}, exc.read())


def sign_in(browser: Browser, path: str = "/app/reports", *, pick: str = "alice") -> Answer:
    """Open ``path``, follow sign-in through the dev issuer, and come back."""
    first = browser.gateway("GET", f"{GATEWAY_ISSUER}{path}")
    assert first.status == 302, first
    login = browser.gateway("GET", first.location)
    assert login.status == 302
    assert LOGIN_COOKIE in browser.cookies
    page = at_issuer(login.location)
    assert page.status == 200
    request_id = re.search(rb'name="request_id" value="([^"]+)"', page.body)
    assert request_id is not None
    back = at_issuer(urlsplit(login.location)._replace(query="", path="/authorize").geturl(),
                     {"request_id": request_id.group(1).decode(), "pick": pick})  # fmt: skip
    assert back.status == 302, back
    assert back.location.startswith(GATEWAY_ISSUER), back
    return browser.gateway("GET", back.location)


def test_a_page_load_signs_in_and_comes_back_with_a_session(
    signing_in: Container, aws: Resources
) -> None:
    browser = Browser()
    first = browser.gateway("GET", f"{GATEWAY_ISSUER}/app/reports?month=11")
    assert first.status == 302
    assert first.location == f"{GATEWAY_ISSUER}/.gatehouse/login?rd=/app/reports%3Fmonth%3D11"

    login = browser.gateway("GET", first.location)
    authorize = urlsplit(login.location)
    parameters = parse_qs(authorize.query)
    assert parameters["code_challenge_method"] == ["S256"]
    assert parameters["client_id"] == [CLIENT_ID]
    assert parameters["redirect_uri"] == [f"{GATEWAY_ISSUER}/.gatehouse/callback"]
    assert {"state", "nonce", "code_challenge"} <= parameters.keys()
    set_cookie = login.headers["Set-Cookie"][0]
    for attribute in ("Secure", "HttpOnly", "SameSite=Lax", "Path=/"):
        assert attribute in set_cookie
    assert "Domain" not in set_cookie

    came_back = sign_in(Browser(), "/app/reports?month=11")
    assert came_back.status == 302
    assert came_back.location == f"{GATEWAY_ISSUER}/app/reports?month=11"
    cookie = came_back.cookies_set()
    assert cookie[SESSION_COOKIE]
    assert cookie[LOGIN_COOKIE] == ""
    assert len(f"{SESSION_COOKIE}={cookie[SESSION_COOKIE]}") < 4000

    events = queued_events(aws)
    [signed_in] = [e for e in events if e["event_type"] == "session"]
    assert signed_in["session"]["action"] == "signed_in"
    assert signed_in["principal"]["subject"] == "alice"
    session_id = signed_in["session"]["session_id"]
    assert signed_in["principal"]["browser_session_id"] == session_id
    # The cookie, the code and the tokens are nowhere in the trail.
    text = json.dumps(events)
    assert cookie[SESSION_COOKIE][:40] not in text
    assert "code=" not in text


def test_the_session_reaches_the_backend_as_an_identity_never_as_a_cookie(
    signing_in: Container, aws: Resources
) -> None:
    browser = Browser()
    came_back = sign_in(browser)
    page = browser.gateway("GET", came_back.location)
    assert page.status == 200, page
    echo = json.loads(page.body)
    assert echo["path"] == "/app/reports"
    headers = {name.lower(): value for name, value in echo["headers"].items()}
    assert "cookie" not in headers
    assert "authorization" not in headers
    decisions = [e for e in queued_events(aws) if e["event_type"] == "decision"]
    # The first page load had no credentials; the one after sign-in had the session.
    assert [d["decision"]["outcome"] for d in decisions] == ["deny", "allow"]
    assert decisions[0]["decision"]["reasons"] == ["missing_credentials"]
    decision = decisions[1]
    assert decision["principal"]["browser_session_id"]
    assert decision["principal"]["issuer"] == signing_in.settings.trusted_issuers[0].issuer


def test_an_api_client_without_credentials_gets_401_not_a_redirect(signing_in: Container) -> None:
    answer = Browser().gateway("GET", f"{GATEWAY_ISSUER}/app/reports", accept="application/json")
    assert answer.status == 401
    post = Browser().gateway("POST", f"{GATEWAY_ISSUER}/app/reports")
    assert post.status == 401


def test_a_tampered_or_truncated_cookie_is_refused_audited_and_cleared(
    signing_in: Container, aws: Resources
) -> None:
    browser = Browser()
    sign_in(browser)
    good = browser.cookies[SESSION_COOKIE]
    queued_events(aws)
    middle = len(good) // 2
    flipped = good[:middle] + ("A" if good[middle] != "A" else "B") + good[middle + 1 :]
    for bad in (flipped, good[:-10], good + "AA", "", "x" * 5000):
        browser.cookies[SESSION_COOKIE] = bad
        answer = browser.gateway("GET", f"{GATEWAY_ISSUER}/app/reports")
        assert answer.status == 302
        assert "/.gatehouse/login" in answer.location
        assert answer.cookies_set().get(SESSION_COOKIE) == ""  # cleared
    decisions = [e for e in queued_events(aws) if e["event_type"] == "decision"]
    assert len(decisions) == 5
    assert {d["decision"]["reasons"][0] for d in decisions} == {"session_invalid"}
    assert all(d["principal"] is None for d in decisions)


def test_state_mismatch_missing_attempt_and_idp_errors_fail_sign_in_with_their_reason(
    signing_in: Container, aws: Resources
) -> None:
    browser = Browser()
    login = browser.gateway("GET", f"{GATEWAY_ISSUER}/.gatehouse/login?rd=/app")
    state = parse_qs(urlsplit(login.location).query)["state"][0]
    cases = {
        "login_state_mismatch": "/.gatehouse/callback?code=abc&state={state}x",
        "login_idp_error": "/.gatehouse/callback?error=access_denied&state={state}",
        "login_code_rejected": "/.gatehouse/callback?code=made-up&state={state}",
    }
    for reason, path in cases.items():
        answer = browser.gateway("GET", GATEWAY_ISSUER + path.format(state=state))
        assert answer.status == 401
        assert b"Sign-in failed" in answer.body
        assert SESSION_COOKIE not in browser.cookies
        [failed] = [e for e in queued_events(aws) if e["event_type"] == "session"]
        assert (failed["session"]["action"], failed["session"]["reason"]) == (
            "sign_in_failed",
            reason,
        )
        # The attempt cookie was cleared: start again for the next case.
        login = browser.gateway("GET", f"{GATEWAY_ISSUER}/.gatehouse/login?rd=/app")
        state = parse_qs(urlsplit(login.location).query)["state"][0]
    stranger = Browser().gateway("GET", f"{GATEWAY_ISSUER}/.gatehouse/callback?code=a&state=b")
    assert stranger.status == 401
    [failed] = [e for e in queued_events(aws) if e["event_type"] == "session"]
    assert failed["session"]["reason"] == "login_expired"


def test_a_code_for_another_browser_is_refused(signing_in: Container, issuer: DevIssuer) -> None:
    victim, attacker = Browser(), Browser()
    # The attacker starts a sign-in and hands the victim the callback with the
    # attacker's code and state (login CSRF): the victim's browser has no
    # matching attempt, so nothing is signed in.
    attacker_login = attacker.gateway("GET", f"{GATEWAY_ISSUER}/.gatehouse/login?rd=/app")
    victim.gateway("GET", f"{GATEWAY_ISSUER}/.gatehouse/login?rd=/app")
    state = parse_qs(urlsplit(attacker_login.location).query)["state"][0]
    answer = victim.gateway(
        "GET", f"{GATEWAY_ISSUER}/.gatehouse/callback?code=stolen&state={state}"
    )
    assert answer.status == 401
    assert SESSION_COOKIE not in victim.cookies


def test_sign_out_revokes_the_session_and_a_replayed_cookie_stops_working(
    signing_in: Container, aws: Resources, issuer: DevIssuer
) -> None:
    browser = Browser()
    sign_in(browser)
    stolen = browser.cookies[SESSION_COOKIE]
    assert browser.gateway("GET", f"{GATEWAY_ISSUER}/app/reports").status == 200

    confirm = browser.gateway("GET", f"{GATEWAY_ISSUER}/.gatehouse/logout")
    assert confirm.status == 200
    assert b"id=sign-out" in confirm.body
    out = browser.gateway("POST", f"{GATEWAY_ISSUER}/.gatehouse/logout")
    assert out.status == 302
    # RP-initiated logout at the dev issuer, back to the signed-out page.
    assert out.location.startswith(f"{issuer.url}/logout?")
    logout = parse_qs(urlsplit(out.location).query)
    assert logout["post_logout_redirect_uri"] == [f"{GATEWAY_ISSUER}/.gatehouse/signed-out"]
    assert logout["client_id"] == [CLIENT_ID]
    # The hint the provider needs to end its own session: the ID token of this sign-in.
    hint = jwt.decode(logout["id_token_hint"][0], options={"verify_signature": False})
    assert (hint["sub"], hint["aud"]) == ("alice", CLIENT_ID)
    at_provider = at_issuer(out.location)
    assert at_provider.status == 302
    assert at_provider.location == f"{GATEWAY_ISSUER}/.gatehouse/signed-out"
    assert browser.gateway("GET", at_provider.location).status == 200
    assert SESSION_COOKIE not in browser.cookies

    replay = Browser(cookies={SESSION_COOKIE: stolen})
    answer = replay.gateway("GET", f"{GATEWAY_ISSUER}/app/reports")
    assert answer.status == 302
    assert "/.gatehouse/login" in answer.location
    events = queued_events(aws)
    [signed_out] = [e for e in events if e.get("session", {}) and
                    e["session"]["action"] == "signed_out"]  # fmt: skip
    assert signed_out["session"]["revoked_by"] == "user"
    refused = [e for e in events if e["event_type"] == "decision"][-1]
    assert refused["decision"]["reasons"] == ["session_revoked"]
    # The replay is part of the session's story: the decision names the session.
    assert refused["principal"]["browser_session_id"] == signed_out["session"]["session_id"]


def test_a_cross_site_sign_out_is_refused(signing_in: Container) -> None:
    browser = Browser()
    sign_in(browser)
    for origin in ("https://evil.example", "null", "https://gatehouse.test.example.evil.com"):
        answer = _post_with_origin(browser, origin)
        assert answer.status == 403, origin
    assert browser.gateway("GET", f"{GATEWAY_ISSUER}/app/reports").status == 200  # still in
    # The sign-out page makes browsers send the real Origin (no-referrer would send "null").
    confirm = browser.gateway("GET", f"{GATEWAY_ISSUER}/.gatehouse/logout")
    assert confirm.headers["Referrer-Policy"] == ["same-origin"]
    assert _post_with_origin(browser, GATEWAY_ISSUER).status == 302
    assert browser.gateway("GET", f"{GATEWAY_ISSUER}/app/reports").status == 302


def _post_with_origin(browser: Browser, origin: str) -> Answer:
    event = browser._event("POST", "/.gatehouse/logout", "", BROWSER_ACCEPT, b"")
    event["multiValueHeaders"]["Origin"] = [origin]
    event["headers"]["Origin"] = origin
    return _answer(entrypoints.sign_in(event, None))


def test_open_redirects_are_turned_home(signing_in: Container) -> None:
    for rd in ("https://evil.example", "//evil.example", "/\\evil.example", "/%2F%2Fevil"):
        browser = Browser()
        login = browser.gateway("GET", f"{GATEWAY_ISSUER}/.gatehouse/login?{urlencode({'rd': rd})}")
        assert login.status == 302
        page = at_issuer(login.location)
        request_id = re.search(rb'name="request_id" value="([^"]+)"', page.body)
        assert request_id is not None
        back = at_issuer(f"{urlsplit(login.location).scheme}://{urlsplit(login.location).netloc}"
                         "/authorize", {"request_id": request_id.group(1).decode(),
                                        "pick": "alice"})  # fmt: skip
        landed = browser.gateway("GET", back.location)
        assert landed.location == f"{GATEWAY_ISSUER}/"


def typed_sign_in(browser: Browser, sub: str, groups: str, path: str = "/app/reports") -> Answer:
    """Sign in as a typed user (unique subjects: the dev issuer remembers disabled ones)."""
    first = browser.gateway("GET", f"{GATEWAY_ISSUER}{path}")
    login = browser.gateway("GET", first.location)
    page = at_issuer(login.location)
    request_id = re.search(rb'name="request_id" value="([^"]+)"', page.body)
    assert request_id is not None
    form = {
        "request_id": request_id.group(1).decode(),
        "sub": sub,
        "email": f"{sub}@example.com",
        "groups": groups,
    }
    issuer = urlsplit(login.location)
    back = at_issuer(f"{issuer.scheme}://{issuer.netloc}/authorize", form)
    assert back.status == 302, back.body
    return browser.gateway("GET", back.location)


def reseal(container: Container, browser: Browser, **changes: Any) -> None:
    """Rewrite the browser's session cookie with the stage's own keys (time travel)."""
    keyring = container.session_keys.keyring()
    payload = keyring.open(browser.cookies[SESSION_COOKIE], purpose=SESSION_COOKIE)
    session = replace(BrowserSession.from_payload(payload), **changes)
    browser.cookies[SESSION_COOKIE] = keyring.seal(session.to_payload(), purpose=SESSION_COOKIE)


def test_a_session_due_for_refresh_is_refreshed_with_the_providers_current_groups(
    signing_in: Container, aws: Resources, issuer: DevIssuer
) -> None:
    browser = Browser()
    typed_sign_in(browser, "rita", "engineering")
    assert browser.gateway("GET", f"{GATEWAY_ISSUER}/api/projects").status == 200
    issuer.set_groups("rita", ["contractors"])
    reseal(signing_in, browser, refresh_at=int(time.time()) - 1)
    queued_events(aws)

    due = browser.gateway("GET", f"{GATEWAY_ISSUER}/api/billing/invoices")
    assert due.status == 302
    assert due.location == f"{GATEWAY_ISSUER}/.gatehouse/refresh?rd=/api/billing/invoices"
    # A script's request meanwhile is told to authenticate, not redirected.
    assert browser.gateway("GET", f"{GATEWAY_ISSUER}/api/projects", accept="*/*").status == 401
    refreshed = browser.gateway("GET", due.location)
    assert refreshed.status == 302
    assert refreshed.location.endswith("/api/billing/invoices")
    # Now a contractor, per the provider: billing is denied.
    assert browser.gateway("GET", refreshed.location).status == 403
    events = queued_events(aws)
    [refresh] = [e for e in events if e["event_type"] == "session"]
    assert refresh["session"]["action"] == "refreshed"
    assert refresh["principal"]["groups"] == ["contractors"]
    last = [e for e in events if e["event_type"] == "decision"][-1]
    assert last["principal"]["browser_session_id"] == refresh["session"]["session_id"]
    assert last["decision"]["reasons"] == ["deny_rule_matched"]


def test_a_refresh_the_provider_refuses_ends_the_session(
    signing_in: Container, aws: Resources, issuer: DevIssuer
) -> None:
    browser = Browser()
    typed_sign_in(browser, "ursula", "engineering")
    old_cookie = browser.cookies[SESSION_COOKIE]
    issuer.disable_user("ursula")
    reseal(signing_in, browser, refresh_at=int(time.time()) - 1)
    queued_events(aws)

    answer = browser.gateway("GET", f"{GATEWAY_ISSUER}/.gatehouse/refresh?rd=/app")
    assert answer.status == 302
    assert "/.gatehouse/login" in answer.location
    assert SESSION_COOKIE not in browser.cookies
    [failed] = [e for e in queued_events(aws) if e["event_type"] == "session"]
    assert failed["session"]["action"] == "refresh_failed"
    # The session is revoked: its old cookie (refresh not even due) is refused too.
    replay = Browser(cookies={SESSION_COOKIE: old_cookie})
    refused = replay.gateway("GET", f"{GATEWAY_ISSUER}/app/reports")
    assert refused.status == 302
    assert "/.gatehouse/login" in refused.location


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"expires_at": 1}, "session_expired"),
        ({"seen_at": 1}, "session_idle"),
    ],
)
def test_expired_and_idle_sessions_are_sent_to_sign_in(
    signing_in: Container, aws: Resources, changes: dict[str, int], reason: str
) -> None:
    browser = Browser()
    sign_in(browser)
    reseal(signing_in, browser, **changes)
    queued_events(aws)
    answer = browser.gateway("GET", f"{GATEWAY_ISSUER}/app/reports")
    assert answer.status == 302
    assert "/.gatehouse/login" in answer.location
    assert answer.cookies_set()[SESSION_COOKIE] == ""
    [decision] = [e for e in queued_events(aws) if e["event_type"] == "decision"]
    assert decision["decision"]["reasons"] == [reason]


def test_the_proxy_renews_last_use_once_it_is_old_enough(signing_in: Container) -> None:
    browser = Browser()
    sign_in(browser)
    fresh = browser.gateway("GET", f"{GATEWAY_ISSUER}/app/reports")
    assert "Set-Cookie" not in fresh.headers  # seen moments ago: nothing to renew
    reseal(signing_in, browser, seen_at=int(time.time()) - 600)
    renewed = browser.gateway("GET", f"{GATEWAY_ISSUER}/app/reports")
    assert renewed.status == 200
    keyring = signing_in.session_keys.keyring()
    payload = keyring.open(renewed.cookies_set()[SESSION_COOKIE], purpose=SESSION_COOKIE)
    assert BrowserSession.from_payload(payload).seen_at >= int(time.time()) - 5
    # The renewed cookie is this person's: no shared cache may keep the answer.
    assert renewed.headers["Cache-Control"] == ["private, no-store"]


def test_back_channel_logout_ends_the_persons_sessions(
    signing_in: Container, aws: Resources, issuer: DevIssuer
) -> None:
    browser, other_device, someone_else = Browser(), Browser(), Browser()
    typed_sign_in(browser, "victor", "engineering")
    typed_sign_in(other_device, "victor", "engineering")
    typed_sign_in(someone_else, "wanda", "engineering")
    queued_events(aws)
    now = int(time.time())
    claims = {
        "iss": issuer.url,
        "aud": CLIENT_ID,
        "iat": now,
        "exp": now + 120,
        "jti": "j-1",
        "sub": "victor",
        "events": {BACKCHANNEL_LOGOUT_EVENT: {}},
    }
    for bad in (
        {**claims, "nonce": "n"},
        {**claims, "aud": "someone-else"},
        {**claims, "events": {}},
    ):
        refused = post_logout_token(logout_token(issuer, bad))
        assert refused.status == 400
        assert json.loads(refused.body)["error"] == "invalid_request"
    token = logout_token(issuer, claims)
    answer = post_logout_token(token)
    assert answer.status == 200
    assert json.loads(answer.body) == {"sessions_ended": 2}
    # Good once: the same token again is refused, and spares a session begun since.
    later = Browser()
    typed_sign_in(later, "victor", "engineering")
    assert post_logout_token(token).status == 400
    assert later.gateway("GET", f"{GATEWAY_ISSUER}/app/reports").status == 200
    # Two logout_token fields, or a flood of fields, are refused, not guessed at.
    for body in (f"logout_token={token}&logout_token=x", "&".join(f"a{i}=1" for i in range(20))):
        flooded = Browser().gateway(
            "POST", f"{GATEWAY_ISSUER}/.gatehouse/backchannel-logout", body=body.encode()
        )
        assert flooded.status == 400
    for ended in (browser, other_device):
        assert ended.gateway("GET", f"{GATEWAY_ISSUER}/app/reports").status == 302
    assert someone_else.gateway("GET", f"{GATEWAY_ISSUER}/app/reports").status == 200
    events = [e for e in queued_events(aws) if e["event_type"] == "session"]
    actions = [e["session"]["action"] for e in events]
    # The three bad tokens, the two sessions ended, the sign-in since, the replay, the floods.
    assert (
        actions
        == ["idp_logout_refused"] * 3
        + ["idp_logged_out"] * 2
        + ["signed_in"]
        + ["idp_logout_refused"] * 3
    )
    ended = [e for e in events if e["session"]["action"] == "idp_logged_out"]
    assert {e["principal"]["subject"] for e in ended} == {"victor"}
    assert all(e["session"]["revoked_by"] == "idp" for e in ended)
    refused = [e["session"]["detail"] for e in events if e["session"]["action"] != "idp_logged_out"]
    assert "the logout token was used already" in refused


def logout_token(issuer: DevIssuer, claims: dict[str, Any]) -> str:
    """A logout token signed with the dev issuer's own key."""
    key = issuer.keys[0]
    return jwt.encode(
        claims, key.private_key, algorithm=key.alg, headers={"kid": key.kid, "typ": "logout+jwt"}
    )


def post_logout_token(token: str) -> Answer:
    browser = Browser()
    return browser.gateway(
        "POST",
        f"{GATEWAY_ISSUER}/.gatehouse/backchannel-logout",
        body=urlencode({"logout_token": token}).encode(),
    )


@pytest.fixture(scope="module")
def second_issuer(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DevIssuer]:
    yield from started_issuer(tmp_path_factory.mktemp("idp2"))


@pytest.fixture
def two_providers(
    signing_in: Container,
    issuer: DevIssuer,
    second_issuer: DevIssuer,
    aws: Resources,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[Container]:
    """The stage trusting the dev issuer (the default) and a second one, both for sign-in."""
    trusted = [
        {"issuer": issuer.url, "audiences": [AUDIENCE], "name": "dev", "client_id": CLIENT_ID},
        {
            "issuer": second_issuer.url,
            "audiences": [],
            "name": "partner",
            "display_name": "Partner <SSO>",
            "client_id": CLIENT_ID,
        },
    ]
    monkeypatch.setenv("GATEHOUSE_TRUSTED_ISSUERS", json.dumps(trusted))
    container = Container(Settings.from_environment())
    container.assertion_keys.current()
    queued_events(aws)
    entrypoints.use_container(container)
    yield container
    entrypoints.use_container(None)
    if "upstream" in vars(container):
        container.upstream.close()


def test_two_providers_one_chooser_and_their_alices_never_share_a_namespace(
    two_providers: Container, issuer: DevIssuer, second_issuer: DevIssuer, aws: Resources
) -> None:
    partner = Browser()
    first = partner.gateway("GET", f"{GATEWAY_ISSUER}/app/reports")
    chooser = partner.gateway("GET", first.location)
    assert chooser.status == 200
    links = dict(re.findall(rb"id='idp-([a-z]+)' href='([^']+)'", chooser.body))
    assert set(links) == {b"dev", b"partner"}
    assert b"Partner &lt;SSO&gt;" in chooser.body  # escaped
    login = partner.gateway("GET", links[b"partner"].decode().replace("&amp;", "&"))
    assert login.location.startswith(f"{second_issuer.url}/authorize?")
    page = at_issuer(login.location)
    request_id = re.search(rb'name="request_id" value="([^"]+)"', page.body)
    assert request_id is not None
    back = at_issuer(
        f"{second_issuer.url}/authorize",
        {"request_id": request_id.group(1).decode(), "pick": "alice"},
    )
    came_back = partner.gateway("GET", back.location)
    assert came_back.status == 302
    # The partner's alice@example.com is not the default issuer's: staff-app names example.com
    # without issuers:, so it is the default issuer's domain only.
    assert partner.gateway("GET", came_back.location).status == 403

    ours = Browser()
    first = ours.gateway("GET", f"{GATEWAY_ISSUER}/app/reports")
    chooser = ours.gateway("GET", first.location)
    links = dict(re.findall(rb"id='idp-([a-z]+)' href='([^']+)'", chooser.body))
    login = ours.gateway("GET", links[b"dev"].decode().replace("&amp;", "&"))
    page = at_issuer(login.location)
    request_id = re.search(rb'name="request_id" value="([^"]+)"', page.body)
    assert request_id is not None
    back = at_issuer(
        f"{issuer.url}/authorize", {"request_id": request_id.group(1).decode(), "pick": "alice"}
    )
    assert ours.gateway("GET", ours.gateway("GET", back.location).location).status == 200

    decisions = [e for e in queued_events(aws) if e["event_type"] == "decision"]
    signed = [d for d in decisions if d["principal"] is not None]
    assert [(d["principal"]["issuer"], d["decision"]["outcome"]) for d in signed] == [
        (second_issuer.url, "deny"),
        (issuer.url, "allow"),
    ]
    assert {d["principal"]["subject"] for d in signed} == {"alice"}


def test_a_person_with_many_long_groups_signs_in_and_one_with_too_many_is_told_so(
    signing_in: Container, aws: Resources
) -> None:
    # An ID token of ~2 KB of groups: the session cookie fits, the stored tokens need not.
    many = ",".join(f"team-{index:02d}-" + "x" * 180 for index in range(8))
    browser = Browser()
    came_back = typed_sign_in(browser, "carol", many)
    assert came_back.status == 302
    assert SESSION_COOKIE in browser.cookies
    assert queued_events(aws)[-1]["session"]["action"] == "signed_in"

    too_many = ",".join(f"team-{index:02d}-" + "x" * 180 for index in range(20))
    refused = typed_sign_in(Browser(), "dave", too_many)
    assert refused.status == 401
    [failed] = [e for e in queued_events(aws) if e["event_type"] == "session"]
    assert failed["session"]["reason"] == "login_session_too_large"
    assert failed["principal"]["subject"] == "dave"


def test_a_non_ascii_state_is_a_state_mismatch_not_a_crash(
    signing_in: Container, aws: Resources
) -> None:
    browser = Browser()
    browser.gateway("GET", f"{GATEWAY_ISSUER}/.gatehouse/login?rd=/app")
    answer = browser.gateway("GET", f"{GATEWAY_ISSUER}/.gatehouse/callback?state=%C3%A9&code=x")
    assert answer.status == 401
    [failed] = [e for e in queued_events(aws) if e["event_type"] == "session"]
    assert failed["session"]["reason"] == "login_state_mismatch"


def test_a_cached_answer_for_a_revoked_session_is_refused_by_the_proxy(
    signing_in: Container, aws: Resources
) -> None:
    # API Gateway's cache replays an authorizer answer for a later request (it
    # never calls the authorizer). The proxy decides such a request again, and a
    # session revoked meanwhile is refused there: no cached answer outlives a sign-out.
    browser = Browser()
    sign_in(browser)
    first = browser._event("GET", "/app/reports", "", BROWSER_ACCEPT, b"")
    request = {
        "type": "REQUEST",
        "methodArn": f"{API}/GET/app/reports",
        **{k: v for k, v in first.items() if k not in ("body", "isBase64Encoded")},
    }
    answer = entrypoints.authorize(request, None)
    cached = {**{k: str(v) for k, v in answer["context"].items()}, "principalId": "x"}
    session_id = json.loads(answer["context"]["principal"])["bsid"]

    replayed = browser._event("GET", "/app/reports", "", BROWSER_ACCEPT, b"")
    replayed["requestContext"]["requestId"] = "req-cached-1"
    replayed["requestContext"]["authorizer"] = cached
    assert _answer(entrypoints.proxy(replayed, None)).status == 200  # decided again: allowed

    # An operator revokes it (this stage reads revocations on every check).
    store = SessionStore(
        Table(signing_in.clients.dynamodb, aws.state_table), signing_in.session_keys
    )
    store.revoke(session_id, by="operator", reason=Reason.SESSION_REVOKED, mark_session=False)
    replayed["requestContext"]["requestId"] = "req-cached-2"
    refused = _answer(entrypoints.proxy(replayed, None))
    assert refused.status == 401
    redecided = [e for e in queued_events(aws) if e["event_type"] == "decision"][-1]
    assert redecided["decision"]["decided_by"] == "proxy"
    assert redecided["decision"]["reasons"] == ["session_revoked"]
    assert redecided["principal"]["browser_session_id"] == session_id
