"""The local stack's issuer as a browser sign-in provider, over real HTTP on loopback.

Authorization code with PKCE, refresh rotation, RP-initiated and back-channel
logout. Tokens are checked with PyJWT against the issuer's published JWKS, as a
relying party would check them.
"""

from __future__ import annotations

import base64
import hashlib
import http.client
import json
import re
import secrets
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import jwt
import pytest

from gatehouse.dev.idp import DevIssuer, SigningKey, mint_token
from tests.helpers import Clock

PUBLIC = "spa"
CONFIDENTIAL = "gatehouse"
SECRET = "s3cret:with/odd+chars"
CALLBACK = "http://127.0.0.1:9/callback"
SIGNED_OUT = "http://127.0.0.1:9/signed-out"
BACKCHANNEL_EVENT = "http://schemas.openid.net/event/backchannel-logout"


@dataclass
class Response:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)

    @property
    def text(self) -> str:
        return self.body.decode("utf-8")

    @property
    def query(self) -> dict[str, str]:
        """The redirect's query, one value per name."""
        return {k: v[0] for k, v in parse_qs(urlsplit(self.headers["location"]).query).items()}


@dataclass
class Receiver:
    """A relying party's back-channel logout endpoint: records each POSTed form."""

    url: str
    forms: list[dict[str, list[str]]] = field(default_factory=list)
    status: int = 200


@dataclass
class Pkce:
    verifier: str
    challenge: str


def request(
    url: str, method: str = "GET", form: dict[str, str] | None = None, **headers: str
) -> Response:
    """One request, redirects not followed (http.client: no proxy from the environment)."""
    parts = urlsplit(url)
    connection = http.client.HTTPConnection(parts.netloc, timeout=10)
    body = None
    if form is not None:
        body = urlencode(form)
        headers.setdefault("Content-Type", "application/x-www-form-urlencoded")
    target = f"{parts.path}?{parts.query}" if parts.query else parts.path
    names = {name.replace("_", "-"): value for name, value in headers.items()}
    try:
        connection.request(method, target, body=body, headers=names)
        answer = connection.getresponse()
        return Response(
            answer.status, {k.lower(): v for k, v in answer.getheaders()}, answer.read()
        )
    finally:
        connection.close()


def pkce() -> Pkce:
    verifier = secrets.token_urlsafe(48)
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return Pkce(verifier, base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii"))


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    lock = threading.Lock()
    server: ThreadingHTTPServer

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            form = parse_qs(self.rfile.read(length).decode("utf-8"))
            with lock:
                received.forms.append(form)
            self.send_response(received.status)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    received = Receiver(f"http://127.0.0.1:{server.server_address[1]}/backchannel")
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield received
    server.shutdown()
    server.server_close()


@pytest.fixture
def clock() -> Clock:
    return Clock(time.time())


@pytest.fixture
def issuer(rsa_key: Any, clock: Clock, receiver: Receiver, tmp_path: Path) -> Iterator[DevIssuer]:
    """A started issuer with a public and a confidential client."""
    started = DevIssuer(
        [SigningKey("RS256", "dev-rsa", rsa_key, tmp_path / "idp-rs256.pem")],
        clock=clock,
        backchannel_timeout_seconds=2.0,
    )
    started.register_client(
        PUBLIC,
        redirect_uris=[CALLBACK],
        post_logout_redirect_uris=[SIGNED_OUT],
        backchannel_logout_uri=None,
    )
    started.register_client(
        CONFIDENTIAL,
        redirect_uris=[CALLBACK, "http://127.0.0.1:9/other?keep=1"],
        post_logout_redirect_uris=[SIGNED_OUT],
        backchannel_logout_uri=receiver.url,
        client_secret=SECRET,
    )
    started.start()
    yield started
    started.stop()


def authorize_params(client_id: str = PUBLIC, **overrides: str | None) -> dict[str, str]:
    params: dict[str, str | None] = {
        "client_id": client_id,
        "redirect_uri": CALLBACK,
        "response_type": "code",
        "scope": "openid email profile groups",
        "state": "state-1",
        "nonce": "nonce-1",
        "code_challenge": pkce().challenge,
        "code_challenge_method": "S256",
        **overrides,
    }
    return {name: value for name, value in params.items() if value is not None}


def login_page(issuer: DevIssuer, params: dict[str, str]) -> tuple[Response, str]:
    page = request(f"{issuer.url}/authorize?{urlencode(params)}")
    assert page.status == 200, page.text
    found = re.search(r'name="request_id" value="([^"]+)"', page.text)
    assert found is not None
    return page, found.group(1)


def sign_in(
    issuer: DevIssuer,
    *,
    client_id: str = PUBLIC,
    verifier: Pkce | None = None,
    redirect_uri: str = CALLBACK,
    **form: str,
) -> dict[str, str]:
    """Complete the login page; the query the browser is sent back with."""
    verifier = verifier or pkce()
    params = authorize_params(
        client_id, code_challenge=verifier.challenge, redirect_uri=redirect_uri
    )
    _, request_id = login_page(issuer, params)
    answer = request(
        f"{issuer.url}/authorize", "POST", {"request_id": request_id, **(form or {"pick": "alice"})}
    )
    assert answer.status == 302, answer.text
    assert answer.headers["location"].startswith(redirect_uri)
    return answer.query


def token(issuer: DevIssuer, form: dict[str, str], **headers: str) -> Response:
    return request(f"{issuer.url}/token", "POST", form, **headers)


def basic(client_id: str, secret: str) -> str:
    # RFC 6749 2.3.1: each part form-urlencoded, then base64.
    pair = f"{urlencode({'a': client_id})[2:]}:{urlencode({'a': secret})[2:]}"
    return "Basic " + base64.b64encode(pair.encode()).decode()


def code_grant(code: str, verifier: Pkce, client_id: str | None = PUBLIC) -> dict[str, str]:
    form = {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": CALLBACK,
        "code_verifier": verifier.verifier,
    }
    if client_id is not None:
        form["client_id"] = client_id
    return form


def signed_in(issuer: DevIssuer, client_id: str = PUBLIC, **form: str) -> dict[str, Any]:
    """Sign in and redeem the code: the token response."""
    verifier = pkce()
    query = sign_in(issuer, client_id=client_id, verifier=verifier, **form)
    if client_id == CONFIDENTIAL:
        answer = token(
            issuer,
            code_grant(query["code"], verifier, None),
            Authorization=basic(CONFIDENTIAL, SECRET),
        )
    else:
        answer = token(issuer, code_grant(query["code"], verifier, client_id))
    assert answer.status == 200, answer.text
    tokens: dict[str, Any] = answer.json()
    return tokens


def refresh(issuer: DevIssuer, refresh_token: str, client_id: str = PUBLIC) -> Response:
    form = {"grant_type": "refresh_token", "refresh_token": refresh_token}
    if client_id == CONFIDENTIAL:
        return token(issuer, form, Authorization=basic(CONFIDENTIAL, SECRET))
    return token(issuer, {**form, "client_id": client_id})


def verified(issuer: DevIssuer, token_text: str, audience: str, **options: Any) -> dict[str, Any]:
    """The token's claims, checked against the issuer's published JWKS."""
    keys = jwt.PyJWKSet.from_dict(request(f"{issuer.url}/jwks.json").json())
    kid = jwt.get_unverified_header(token_text)["kid"]
    key = next(key for key in keys.keys if key.key_id == kid)
    claims: dict[str, Any] = jwt.decode(
        token_text, key.key, algorithms=["RS256"], audience=audience, issuer=issuer.url, **options
    )
    return claims


def test_discovery_names_the_sign_in_endpoints(issuer: DevIssuer) -> None:
    document = request(f"{issuer.url}/.well-known/openid-configuration").json()

    assert document["issuer"] == issuer.url
    assert document["authorization_endpoint"] == f"{issuer.url}/authorize"
    assert document["token_endpoint"] == f"{issuer.url}/token"
    assert document["end_session_endpoint"] == f"{issuer.url}/logout"
    assert document["backchannel_logout_supported"] is True
    assert document["backchannel_logout_session_supported"] is True
    assert document["code_challenge_methods_supported"] == ["S256"]
    assert document["grant_types_supported"] == ["authorization_code", "refresh_token"]
    assert document["response_types_supported"] == ["code"]
    assert "openid" in document["scopes_supported"]
    assert set(document["token_endpoint_auth_methods_supported"]) == {
        "client_secret_basic",
        "client_secret_post",
        "none",
    }
    assert document["id_token_signing_alg_values_supported"] == ["RS256"]


def test_the_login_page_offers_demo_users_and_a_form_with_stable_ids(issuer: DevIssuer) -> None:
    page, _ = login_page(issuer, authorize_params())

    for element in ("pick-alice", "pick-bob", "pick-dana", "sub", "email", "groups", "mfa"):
        assert f'id="{element}"' in page.text
    assert 'id="sign-in"' in page.text
    assert "default-src 'none'" in page.headers["content-security-policy"]
    assert page.headers["cache-control"] == "no-store"


def test_a_public_client_signs_in_with_pkce_and_gets_a_verifiable_id_token(
    issuer: DevIssuer,
) -> None:
    verifier = pkce()
    query = sign_in(issuer, verifier=verifier, pick="alice")
    assert query["state"] == "state-1"
    assert query["iss"] == issuer.url  # RFC 9207

    answer = token(issuer, code_grant(query["code"], verifier))

    assert answer.status == 200, answer.text
    assert answer.headers["cache-control"] == "no-store"
    tokens = answer.json()
    assert tokens["token_type"] == "Bearer"
    assert tokens["expires_in"] == 3600
    assert tokens["access_token"]
    assert tokens["refresh_token"]
    assert tokens["scope"].split() == ["openid", "email", "profile", "groups"]
    claims = verified(issuer, tokens["id_token"], PUBLIC)
    assert claims["sub"] == "alice"
    assert claims["nonce"] == "nonce-1"
    assert claims["email"] == "alice@example.com"
    assert claims["email_verified"] is True
    assert claims["groups"] == ["engineering"]
    assert claims["amr"] == ["pwd"]
    assert claims["name"] == "Alice"
    assert claims["sid"]
    assert claims["exp"] - claims["iat"] == 3600
    assert abs(claims["auth_time"] - time.time()) < 60


def test_a_typed_user_with_mfa_signs_in_as_typed(issuer: DevIssuer) -> None:
    form = {"sub": "u-42", "email": "erin@example.com", "groups": " support , oncall,,"}
    tokens = signed_in(issuer, **form, mfa="on")

    claims = verified(issuer, tokens["id_token"], PUBLIC)
    assert (claims["sub"], claims["email"], claims["name"]) == ("u-42", "erin@example.com", "u-42")
    assert claims["groups"] == ["support", "oncall"]
    assert claims["amr"] == ["pwd", "mfa"]


def test_a_refused_typed_user_is_echoed_escaped(issuer: DevIssuer) -> None:
    _, request_id = login_page(issuer, authorize_params())
    hostile = '"><script>alert(1)</script>'

    page = request(
        f"{issuer.url}/authorize",
        "POST",
        {"request_id": request_id, "sub": hostile, "email": "not-an-address", "groups": hostile},
    )

    assert page.status == 400
    assert "<script>" not in page.text
    assert "&lt;script&gt;" in page.text
    assert 'id="error"' in page.text
    # The same page may be submitted again, corrected.
    again = request(f"{issuer.url}/authorize", "POST", {"request_id": request_id, "sub": "ok"})
    assert again.status == 302


def test_a_confidential_client_authenticates_by_basic_or_post(issuer: DevIssuer) -> None:
    basic_tokens = signed_in(issuer, CONFIDENTIAL)
    assert verified(issuer, basic_tokens["id_token"], CONFIDENTIAL)["sub"] == "alice"

    verifier = pkce()
    query = sign_in(issuer, client_id=CONFIDENTIAL, verifier=verifier)
    form = {**code_grant(query["code"], verifier, CONFIDENTIAL), "client_secret": SECRET}
    assert token(issuer, form).status == 200


@pytest.mark.parametrize(
    ("form", "headers"),
    [
        pytest.param({"client_secret": "wrong"}, {}, id="wrong secret by post"),
        pytest.param({}, {"Authorization": basic(CONFIDENTIAL, "wrong")}, id="wrong by basic"),
        pytest.param({}, {}, id="no secret"),
    ],
)
def test_a_confidential_client_without_its_secret_is_refused(
    issuer: DevIssuer, form: dict[str, str], headers: dict[str, str]
) -> None:
    verifier = pkce()
    query = sign_in(issuer, client_id=CONFIDENTIAL, verifier=verifier)

    answer = token(issuer, {**code_grant(query["code"], verifier, CONFIDENTIAL), **form}, **headers)

    assert answer.status == 401
    assert answer.json()["error"] == "invalid_client"
    assert answer.headers["www-authenticate"].startswith("Basic")


def test_an_unregistered_redirect_uri_is_shown_an_error_never_redirected(
    issuer: DevIssuer,
) -> None:
    for params in (
        authorize_params(redirect_uri="https://evil.example/callback"),
        authorize_params(redirect_uri=CALLBACK + "/x"),
        authorize_params(redirect_uri=None),
        authorize_params(client_id="nobody"),
    ):
        answer = request(f"{issuer.url}/authorize?{urlencode(params)}")

        assert answer.status == 400
        assert "location" not in answer.headers
        assert answer.headers["content-type"].startswith("text/html")


@pytest.mark.parametrize(
    ("overrides", "error"),
    [
        pytest.param({"code_challenge": None}, "invalid_request", id="no PKCE"),
        pytest.param({"code_challenge_method": "plain"}, "invalid_request", id="plain PKCE"),
        pytest.param({"code_challenge_method": None}, "invalid_request", id="no PKCE method"),
        pytest.param({"scope": "email"}, "invalid_scope", id="no openid"),
        pytest.param({"response_type": "token"}, "unsupported_response_type", id="implicit"),
        pytest.param({"nonce": None}, "invalid_request", id="no nonce"),
        pytest.param({"prompt": "none"}, "login_required", id="silent"),
    ],
)
def test_other_authorization_errors_are_sent_to_the_redirect_uri(
    issuer: DevIssuer, overrides: dict[str, str | None], error: str
) -> None:
    answer = request(f"{issuer.url}/authorize?{urlencode(authorize_params(PUBLIC, **overrides))}")

    assert answer.status == 302
    assert answer.headers["location"].startswith(CALLBACK + "?")
    assert answer.query["error"] == error
    assert answer.query["state"] == "state-1"
    assert answer.query["iss"] == issuer.url


def test_cancelling_the_sign_in_tells_the_client_access_was_denied(issuer: DevIssuer) -> None:
    _, request_id = login_page(issuer, authorize_params())

    answer = request(f"{issuer.url}/authorize", "POST", {"request_id": request_id, "cancel": "1"})

    assert answer.status == 302
    assert answer.query["error"] == "access_denied"
    assert answer.query["state"] == "state-1"


def test_a_login_page_signs_in_once(issuer: DevIssuer) -> None:
    _, request_id = login_page(issuer, authorize_params())
    first = request(f"{issuer.url}/authorize", "POST", {"request_id": request_id, "pick": "bob"})
    second = request(f"{issuer.url}/authorize", "POST", {"request_id": request_id, "pick": "bob"})

    assert first.status == 302
    assert second.status == 400
    assert "location" not in second.headers


def test_a_redirect_uri_with_a_query_keeps_it(issuer: DevIssuer) -> None:
    other = "http://127.0.0.1:9/other?keep=1"

    query = sign_in(issuer, client_id=CONFIDENTIAL, redirect_uri=other)

    assert query["keep"] == "1"
    assert query["code"]


def test_a_wrong_code_verifier_is_refused_and_spends_the_code(issuer: DevIssuer) -> None:
    verifier = pkce()
    query = sign_in(issuer, verifier=verifier)

    wrong = token(issuer, code_grant(query["code"], pkce()))
    right_too_late = token(issuer, code_grant(query["code"], verifier))

    assert (wrong.status, wrong.json()["error"]) == (400, "invalid_grant")
    assert (right_too_late.status, right_too_late.json()["error"]) == (400, "invalid_grant")


def test_a_missing_code_verifier_is_an_invalid_request(issuer: DevIssuer) -> None:
    verifier = pkce()
    query = sign_in(issuer, verifier=verifier)
    form = code_grant(query["code"], verifier)
    del form["code_verifier"]

    answer = token(issuer, form)

    assert (answer.status, answer.json()["error"]) == (400, "invalid_request")
    # The code was not spent on a malformed request.
    assert token(issuer, code_grant(query["code"], verifier)).status == 200


def test_a_reused_code_fails_and_revokes_what_it_issued(issuer: DevIssuer) -> None:
    verifier = pkce()
    query = sign_in(issuer, verifier=verifier)
    first = token(issuer, code_grant(query["code"], verifier))
    assert first.status == 200

    second = token(issuer, code_grant(query["code"], verifier))

    assert (second.status, second.json()["error"]) == (400, "invalid_grant")
    after = refresh(issuer, first.json()["refresh_token"])
    assert (after.status, after.json()["error"]) == (400, "invalid_grant")


def test_an_expired_code_is_refused(issuer: DevIssuer, clock: Clock) -> None:
    verifier = pkce()
    query = sign_in(issuer, verifier=verifier)

    clock.now += 61
    answer = token(issuer, code_grant(query["code"], verifier))

    assert (answer.status, answer.json()["error"]) == (400, "invalid_grant")


@pytest.mark.parametrize(
    ("change", "status", "error"),
    [
        pytest.param({"redirect_uri": "http://127.0.0.1:9/other"}, 400, "invalid_grant", id="uri"),
        pytest.param({"client_id": "nobody"}, 401, "invalid_client", id="unknown client"),
        pytest.param({"grant_type": "password"}, 400, "unsupported_grant_type", id="grant"),
        pytest.param({"code": "made-up"}, 400, "invalid_grant", id="made-up code"),
    ],
)
def test_a_code_redeemed_wrongly_is_refused(
    issuer: DevIssuer, change: dict[str, str], status: int, error: str
) -> None:
    verifier = pkce()
    query = sign_in(issuer, verifier=verifier)

    answer = token(issuer, {**code_grant(query["code"], verifier), **change})

    assert (answer.status, answer.json()["error"]) == (status, error)


def test_a_code_is_redeemed_only_by_its_client(issuer: DevIssuer) -> None:
    verifier = pkce()
    query = sign_in(issuer, verifier=verifier)
    form = {**code_grant(query["code"], verifier, None), "client_secret": SECRET}

    answer = token(issuer, {**form, "client_id": CONFIDENTIAL})

    assert (answer.status, answer.json()["error"]) == (400, "invalid_grant")


def test_the_token_endpoint_wants_a_form(issuer: DevIssuer) -> None:
    answer = request(
        f"{issuer.url}/token", "POST", None, Content_Type="application/json", Content_Length="2"
    )

    assert (answer.status, answer.json()["error"]) == (400, "invalid_request")


def test_a_refresh_rotates_the_token_and_carries_the_current_groups(issuer: DevIssuer) -> None:
    tokens = signed_in(issuer, pick="alice")
    first = verified(issuer, tokens["id_token"], PUBLIC)

    issuer.set_groups("alice", ["engineering", "security"])
    answer = refresh(issuer, tokens["refresh_token"])

    assert answer.status == 200, answer.text
    renewed = answer.json()
    claims = verified(issuer, renewed["id_token"], PUBLIC)
    assert claims["groups"] == ["engineering", "security"]
    assert claims["sid"] == first["sid"]
    assert claims["auth_time"] == first["auth_time"]
    assert "nonce" not in claims
    assert renewed["refresh_token"] != tokens["refresh_token"]
    old = refresh(issuer, tokens["refresh_token"])
    assert (old.status, old.json()["error"]) == (400, "invalid_grant")
    assert refresh(issuer, renewed["refresh_token"]).status == 200


def test_a_refresh_token_is_for_its_client_only(issuer: DevIssuer) -> None:
    tokens = signed_in(issuer, CONFIDENTIAL)

    answer = refresh(issuer, tokens["refresh_token"], PUBLIC)

    assert (answer.status, answer.json()["error"]) == (400, "invalid_grant")
    assert refresh(issuer, tokens["refresh_token"], CONFIDENTIAL).status == 200


def test_a_disabled_user_can_neither_refresh_nor_sign_in(issuer: DevIssuer) -> None:
    tokens = signed_in(issuer, pick="bob")

    issuer.disable_user("bob")

    answer = refresh(issuer, tokens["refresh_token"])
    assert (answer.status, answer.json()["error"]) == (400, "invalid_grant")
    _, request_id = login_page(issuer, authorize_params())
    page = request(f"{issuer.url}/authorize", "POST", {"request_id": request_id, "pick": "bob"})
    assert page.status == 400
    assert "disabled" in page.text


def test_rp_logout_ends_the_session_tells_its_clients_and_redirects(
    issuer: DevIssuer, receiver: Receiver
) -> None:
    tokens = signed_in(issuer, CONFIDENTIAL)
    sid = verified(issuer, tokens["id_token"], CONFIDENTIAL)["sid"]
    params = {
        "id_token_hint": tokens["id_token"],
        "post_logout_redirect_uri": SIGNED_OUT,
        "state": "bye",
    }

    answer = request(f"{issuer.url}/logout?{urlencode(params)}")

    assert answer.status == 302
    assert answer.headers["location"] == f"{SIGNED_OUT}?state=bye"
    after = refresh(issuer, tokens["refresh_token"], CONFIDENTIAL)
    assert (after.status, after.json()["error"]) == (400, "invalid_grant")
    [form] = receiver.forms
    logout = verified(issuer, form["logout_token"][0], CONFIDENTIAL)
    assert logout["sid"] == sid


def test_rp_logout_accepts_an_expired_id_token_hint(issuer: DevIssuer, clock: Clock) -> None:
    clock.now -= 2 * 3600  # everything below happened two hours ago
    tokens = signed_in(issuer)
    with pytest.raises(jwt.ExpiredSignatureError):
        verified(issuer, tokens["id_token"], PUBLIC)
    clock.now += 2 * 3600

    answer = request(f"{issuer.url}/logout?{urlencode({'id_token_hint': tokens['id_token']})}")

    assert answer.status == 200
    assert "Signed out" in answer.text
    assert refresh(issuer, tokens["refresh_token"]).status == 400


def test_rp_logout_refuses_an_unregistered_post_logout_redirect_uri(issuer: DevIssuer) -> None:
    tokens = signed_in(issuer)
    for params in (
        {"id_token_hint": tokens["id_token"], "post_logout_redirect_uri": "https://evil.example/"},
        {"client_id": PUBLIC, "post_logout_redirect_uri": CALLBACK},
        {"post_logout_redirect_uri": SIGNED_OUT},  # whose?
    ):
        answer = request(f"{issuer.url}/logout?{urlencode(params)}")

        assert answer.status == 400
        assert "location" not in answer.headers
    # The session was not ended by the refused requests.
    assert refresh(issuer, tokens["refresh_token"]).status == 200


def test_rp_logout_refuses_a_hint_the_issuer_did_not_sign(
    issuer: DevIssuer, other_rsa_key: Any
) -> None:
    forged = mint_token(
        ("RS256", "dev-rsa", other_rsa_key), issuer=issuer.url, audience=PUBLIC, subject="alice"
    )
    params = {"id_token_hint": forged, "post_logout_redirect_uri": SIGNED_OUT}

    answer = request(f"{issuer.url}/logout?{urlencode(params)}")

    assert answer.status == 400
    assert "location" not in answer.headers


def test_ending_a_users_sessions_sends_signed_logout_tokens(
    issuer: DevIssuer, receiver: Receiver
) -> None:
    first = signed_in(issuer, CONFIDENTIAL, pick="dana")
    second = signed_in(issuer, CONFIDENTIAL, pick="dana")
    signed_in(issuer, PUBLIC, pick="dana")  # a client without a back-channel URI
    signed_in(issuer, CONFIDENTIAL, pick="alice")  # someone else
    sids = {verified(issuer, t["id_token"], CONFIDENTIAL)["sid"] for t in (first, second)}

    assert issuer.end_sessions("dana") == 2

    assert len(receiver.forms) == 2
    seen = set()
    for form in receiver.forms:
        logout_token = form["logout_token"][0]
        assert jwt.get_unverified_header(logout_token)["typ"] == "logout+jwt"
        claims = verified(
            issuer,
            logout_token,
            CONFIDENTIAL,
            options={"require": ["iss", "aud", "iat", "exp", "jti", "sub", "sid", "events"]},
        )
        assert claims["sub"] == "dana"
        assert claims["events"] == {BACKCHANNEL_EVENT: {}}
        assert claims["exp"] - claims["iat"] == 120
        assert "nonce" not in claims
        seen.add(claims["sid"])
    assert seen == sids
    for tokens in (first, second):
        assert refresh(issuer, tokens["refresh_token"], CONFIDENTIAL).status == 400
    assert issuer.end_sessions("dana") == 0  # nothing left to end


def test_the_end_sessions_hook_answers_how_many_were_delivered(
    issuer: DevIssuer, receiver: Receiver
) -> None:
    signed_in(issuer, CONFIDENTIAL, pick="sam")

    answer = request(f"{issuer.url}/dev/end-sessions", "POST", {"sub": "sam"})

    assert answer.json() == {"delivered": 1}
    assert len(receiver.forms) == 1
    assert request(f"{issuer.url}/dev/end-sessions", "POST", {}).status == 400


def test_a_relying_party_that_refuses_or_is_gone_is_not_counted(
    issuer: DevIssuer, receiver: Receiver
) -> None:
    signed_in(issuer, CONFIDENTIAL, pick="alice")
    receiver.status = 500
    assert issuer.end_sessions("alice") == 0

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{probe.getsockname()[1]}/backchannel"
    issuer.register_client(
        "gone",
        redirect_uris=[CALLBACK],
        post_logout_redirect_uris=[],
        backchannel_logout_uri=closed,
    )
    signed_in(issuer, "gone", pick="alice")
    assert issuer.end_sessions("alice") == 0


def test_concurrent_sign_ins_each_get_their_own_session(issuer: DevIssuer) -> None:
    results: list[str] = []
    lock = threading.Lock()

    def one(number: int) -> None:
        tokens = signed_in(issuer, sub=f"user-{number}")
        claims = verified(issuer, tokens["id_token"], PUBLIC)
        with lock:
            results.append(claims["sid"])

    threads = [threading.Thread(target=one, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)

    assert len(set(results)) == 8
