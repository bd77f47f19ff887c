"""A development OIDC issuer: discovery, a JWKS with an RS256 and an ES256 key, tokens.

Tokens are minted with PyJWT, an implementation independent of Gatehouse's
own verifier, so the local stack proves interoperability, not agreement with
itself. Keys persist in the state directory so ``gatehouse dev token`` can
sign for a running stack.

It is also a sign-in provider for browsers: authorization code with PKCE,
refresh-token rotation, RP-initiated and back-channel logout. The rules live in
:mod:`gatehouse.dev.idp_flows`, the HTML in :mod:`gatehouse.dev.idp_pages`, the
logout tokens in :mod:`gatehouse.dev.idp_logout`; this module serves them.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

from chalicelib.identity.keys import b64url_encode
from gatehouse.dev.idp_flows import (
    CLAIMS,
    DEMO_USERS,
    SCOPES,
    Client,
    LoginPrompt,
    Page,
    Provider,
    Redirect,
    TokenError,
)
from gatehouse.dev.idp_logout import LogoutNotice, deliver
from gatehouse.dev.idp_pages import CONTENT_SECURITY_POLICY, login_page, message_page

ALGORITHMS = ("RS256", "ES256")
PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey


@dataclass(frozen=True, slots=True)
class SigningKey:
    """One of the issuer's keys."""

    alg: str
    kid: str
    private_key: PrivateKey
    path: Path

    def public_jwk(self) -> dict[str, Any]:
        """The public key as a JWK."""
        public_key = self.private_key.public_key()
        if isinstance(public_key, rsa.RSAPublicKey):
            text = RSAAlgorithm.to_jwk(public_key)
        else:
            text = ECAlgorithm.to_jwk(public_key)
        jwk: dict[str, Any] = json.loads(text)
        jwk.update({"kid": self.kid, "alg": self.alg, "use": "sig"})
        return jwk


def generate_key(alg: str) -> PrivateKey:
    """A fresh private key for ``alg``."""
    if alg == "RS256":
        return rsa.generate_private_key(public_exponent=65537, key_size=2048)
    if alg == "ES256":
        return ec.generate_private_key(ec.SECP256R1())
    raise ValueError(f"unsupported algorithm {alg}")


def load_or_create_key(directory: Path, alg: str) -> SigningKey:
    """The issuer's key for ``alg``, created on first use and kept as PEM."""
    path = directory / f"idp-{alg.lower()}.pem"
    if path.exists():
        loaded = serialization.load_pem_private_key(path.read_bytes(), password=None)
        if not isinstance(loaded, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey):
            raise ValueError(f"{path} does not hold an RSA or EC key")
        private_key: PrivateKey = loaded
    else:
        directory.mkdir(parents=True, exist_ok=True)
        private_key = generate_key(alg)
        pem = private_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        path.touch(mode=0o600)
        path.write_bytes(pem)
    return SigningKey(alg, key_id(private_key, alg), private_key, path)


def key_id(private_key: PrivateKey, alg: str) -> str:
    """A stable kid derived from the public key."""
    der = private_key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    import hashlib

    return f"dev-{alg.lower()}-{b64url_encode(hashlib.sha256(der).digest())[:12]}"


def mint_token(
    key: SigningKey | tuple[str, str, PrivateKey],
    *,
    issuer: str,
    audience: str,
    subject: str,
    email: str | None = None,
    groups: list[str] | None = None,
    amr: list[str] | None = None,
    ttl_seconds: int = 3600,
    extra_claims: dict[str, Any] | None = None,
    now: float | None = None,
) -> str:
    """Sign an ID-token-like JWT.

    ``key`` is a :class:`SigningKey` or ``(alg, kid, private_key)``, the
    latter for tokens signed by keys the issuer does not publish.
    """
    alg, kid, private_key = (
        (key.alg, key.kid, key.private_key) if isinstance(key, SigningKey) else key
    )
    issued = int(time.time() if now is None else now)
    claims: dict[str, Any] = {
        "iss": issuer,
        "aud": audience,
        "sub": subject,
        "iat": issued,
        "nbf": issued,
        "exp": issued + ttl_seconds,
        "auth_time": issued,
        "jti": str(uuid.uuid4()),
    }
    if email is not None:
        claims["email"] = email
        claims["email_verified"] = True
    if groups:
        claims["groups"] = groups
    if amr:
        claims["amr"] = amr
    claims.update(extra_claims or {})
    return jwt.encode(claims, private_key, algorithm=alg, headers={"kid": kid})


class _KeySigner:
    """Signs with the issuer's RS256 key (its first key if it has none)."""

    def __init__(self, keys: list[SigningKey], issuer: str) -> None:
        self._keys = keys
        self._issuer = issuer

    def _key(self) -> SigningKey:
        if not self._keys:
            raise RuntimeError("the dev issuer has no signing key")
        return next((key for key in self._keys if key.alg == "RS256"), self._keys[0])

    def id_token(
        self,
        *,
        audience: str,
        subject: str,
        email: str | None,
        amr: list[str],
        now: float,
        ttl_seconds: int,
        claims: dict[str, Any],
    ) -> str:
        """An ID token, minted as every other dev token is."""
        return mint_token(
            self._key(),
            issuer=self._issuer,
            audience=audience,
            subject=subject,
            email=email,
            amr=amr,
            ttl_seconds=ttl_seconds,
            extra_claims=claims,
            now=now,
        )

    def logout_token(self, claims: dict[str, Any]) -> str:
        """A back-channel logout token: explicitly typed so it is never taken for an ID token."""
        key = self._key()
        headers = {"kid": key.kid, "typ": "logout+jwt"}
        return jwt.encode(claims, key.private_key, algorithm=key.alg, headers=headers)

    def own_claims(self, token: str) -> dict[str, Any] | None:
        """The claims of a token one of the issuer's keys signed; expiry is not checked."""
        try:
            kid = jwt.get_unverified_header(token).get("kid")
            key = next((key for key in self._keys if key.kid == kid), None)
            if key is None:
                return None
            claims: dict[str, Any] = jwt.decode(
                token,
                key.private_key.public_key(),
                algorithms=[key.alg],
                options={
                    # An id_token_hint may be long expired (RP-Initiated Logout 1.0, 2).
                    "verify_exp": False,
                    "verify_nbf": False,
                    "verify_iat": False,
                    "verify_aud": False,
                },
            )
        except jwt.PyJWTError:
            return None
        return claims


class DevIssuer:
    """The issuer's HTTP server on 127.0.0.1: discovery, JWKS, and browser sign-in.

    Endpoints: ``GET /.well-known/openid-configuration``, ``GET /jwks.json``,
    ``GET /authorize`` (the login page), ``POST /authorize`` (its form),
    ``POST /token``, ``GET|POST /logout`` (RP-initiated logout) and, for tests
    and demos, ``POST /dev/end-sessions`` (form field ``sub``). The login
    page's element ids are listed in :mod:`gatehouse.dev.idp_pages`.

    Parameters
    ----------
    keys
        The signing keys the JWKS publishes; ID and logout tokens are signed
        with the RS256 one.
    port
        0 for any free port.
    id_token_ttl_seconds
        Lifetime of the ID (and access) tokens the token endpoint issues.
    code_ttl_seconds
        How long an authorization code may be redeemed.
    clock
        Epoch seconds; tests move it to expire codes.
    backchannel_timeout_seconds
        How long each back-channel logout POST may take.
    """

    def __init__(
        self,
        keys: list[SigningKey],
        port: int = 0,
        *,
        id_token_ttl_seconds: int = 3600,
        code_ttl_seconds: float = 60.0,
        clock: Callable[[], float] = time.time,
        backchannel_timeout_seconds: float = 2.0,
    ) -> None:
        self.keys = keys
        self.jwks_requests = 0
        self._counter_lock = threading.Lock()
        self._clock = clock
        self._backchannel_timeout = backchannel_timeout_seconds
        issuer = self
        self._server = _Server(("127.0.0.1", port), _handler_for(issuer))
        # A short poll interval: stop() waits for it, and tests stop an issuer each.
        self._thread = threading.Thread(
            target=self._server.serve_forever, args=(0.05,), name="dev-idp", daemon=True
        )
        self._signer = _KeySigner(keys, self.url)
        self.provider = Provider(
            self.url,
            self._signer,
            clock=clock,
            code_ttl_seconds=code_ttl_seconds,
            id_token_ttl_seconds=id_token_ttl_seconds,
        )

    @property
    def url(self) -> str:
        """The issuer identifier (``iss``)."""
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> None:
        """Serve in a background thread."""
        self._thread.start()

    def stop(self) -> None:
        """Stop serving and close the socket."""
        self._server.shutdown()
        self._server.server_close()

    def discovery_document(self) -> dict[str, Any]:
        """The OpenID Provider configuration."""
        return {
            "issuer": self.url,
            "jwks_uri": f"{self.url}/jwks.json",
            "authorization_endpoint": f"{self.url}/authorize",
            "token_endpoint": f"{self.url}/token",
            "end_session_endpoint": f"{self.url}/logout",
            "backchannel_logout_supported": True,
            "backchannel_logout_session_supported": True,
            "authorization_response_iss_parameter_supported": True,
            "code_challenge_methods_supported": ["S256"],
            "grant_types_supported": ["authorization_code", "refresh_token"],
            "response_types_supported": ["code"],
            "response_modes_supported": ["query"],
            "scopes_supported": list(SCOPES),
            "claims_supported": list(CLAIMS),
            "token_endpoint_auth_methods_supported": [
                "client_secret_basic",
                "client_secret_post",
                "none",
            ],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": list(dict.fromkeys(k.alg for k in self.keys)),
        }

    def jwks(self) -> dict[str, Any]:
        """The public keys."""
        return {"keys": [key.public_jwk() for key in self.keys]}

    def register_client(
        self,
        client_id: str,
        *,
        redirect_uris: list[str],
        post_logout_redirect_uris: list[str],
        backchannel_logout_uri: str | None,
        client_secret: str | None = None,
    ) -> None:
        """Register (or replace) a relying party.

        Parameters
        ----------
        client_id
            The client's identifier, the ``aud`` of its ID and logout tokens.
        redirect_uris
            Where ``/authorize`` may send codes; a request must name one exactly.
        post_logout_redirect_uris
            Where ``/logout`` may send the browser afterwards.
        backchannel_logout_uri
            Where logout tokens are POSTed when a session the client took part in ends.
        client_secret
            None for a public client: it authenticates with ``client_id`` and
            PKCE alone (PKCE is required of every client).

        Raises
        ------
        ValueError
            A URI is relative or has a fragment, or no redirect URI is given.
        """
        self.provider.register_client(
            Client(
                client_id,
                tuple(redirect_uris),
                tuple(post_logout_redirect_uris),
                backchannel_logout_uri,
                client_secret,
            )
        )

    def end_sessions(self, sub: str) -> int:
        """End every sign-in session of ``sub`` and send back-channel logout.

        Returns
        -------
        int
            How many logout-token POSTs were answered 2xx.
        """
        return self._deliver(self.provider.end_sessions(sub))

    def disable_user(self, sub: str) -> None:
        """Refuse ``sub`` from now on: refreshes fail with ``invalid_grant``, sign-in is refused."""
        self.provider.disable_user(sub)

    def set_groups(self, sub: str, groups: list[str]) -> None:
        """Change ``sub``'s groups; the next refreshed ID token carries them."""
        self.provider.set_groups(sub, groups)

    def logout(self, params: Mapping[str, list[str]]) -> Redirect | Page:
        """RP-initiated logout: end the session, tell its clients, say where the browser goes."""
        outcome, notices = self.provider.logout(params)
        self._deliver(notices)
        return outcome

    def _deliver(self, notices: list[LogoutNotice]) -> int:
        # Called without the provider's lock held: a relying party answering
        # the POST may fetch this issuer's JWKS first.
        return deliver(
            notices,
            issuer=self.url,
            sign=self._signer.logout_token,
            now=self._clock(),
            timeout_seconds=self._backchannel_timeout,
        )

    def _count_jwks_request(self) -> None:
        with self._counter_lock:
            self.jwks_requests += 1


# Form bodies larger than this are refused: the largest legitimate one is a token request.
MAX_FORM_BYTES = 64 * 1024


class _Server(ThreadingHTTPServer):
    # A browser, a relying party and its tests may all connect at once; the
    # default backlog of 5 drops connections (a 1 s SYN retry) under that.
    request_queue_size = 64
    daemon_threads = True


def _handler_for(issuer: DevIssuer) -> type[BaseHTTPRequestHandler]:
    return type("DevIssuerHandler", (_Handler,), {"issuer": issuer})


class _Handler(BaseHTTPRequestHandler):
    """Routes the issuer's requests; ``issuer`` is set per server by :func:`_handler_for`."""

    issuer: DevIssuer

    def do_GET(self) -> None:
        url = urlsplit(self.path)
        params = parse_qs(url.query, keep_blank_values=True)
        if url.path == "/.well-known/openid-configuration":
            self._json(200, self.issuer.discovery_document())
        elif url.path == "/jwks.json":
            self.issuer._count_jwks_request()
            self._json(200, self.issuer.jwks())
        elif url.path == "/authorize":
            self._outcome(self.issuer.provider.authorize(params))
        elif url.path == "/logout":
            self._outcome(self.issuer.logout(params))
        else:
            self._json(404, {"error": "not found"})

    def do_POST(self) -> None:
        path = urlsplit(self.path).path
        form = self._form()
        if form is None:
            self._json(400, {"error": "invalid_request", "error_description": "bad form"})
        elif path == "/authorize":
            self._outcome(self.issuer.provider.sign_in(form))
        elif path == "/token":
            self._token(form)
        elif path == "/logout":
            self._outcome(self.issuer.logout(form))
        elif path == "/dev/end-sessions":
            self._end_sessions(form)
        else:
            self._json(404, {"error": "not found"})

    def _form(self) -> dict[str, list[str]] | None:
        content_type = self.headers.get("Content-Type", "").split(";")[0].strip().lower()
        length = _content_length(self.headers.get("Content-Length"))
        if content_type != "application/x-www-form-urlencoded" or length is None:
            self.close_connection = True  # the unread body must not become a request
            return None
        try:
            body = self.rfile.read(length).decode("utf-8")
            return parse_qs(body, keep_blank_values=True, max_num_fields=100)
        except ValueError:  # UnicodeDecodeError included
            return None

    def _token(self, form: dict[str, list[str]]) -> None:
        headers = {"Cache-Control": "no-store", "Pragma": "no-cache"}
        try:
            body = self.issuer.provider.token(form, self.headers.get("Authorization"))
        except TokenError as error:
            if error.status == 401:
                headers["WWW-Authenticate"] = 'Basic realm="gatehouse-dev-idp"'
            body = {"error": error.error, "error_description": error.description}
            self._json(error.status, body, headers)
            return
        self._json(200, body, headers)

    def _end_sessions(self, form: dict[str, list[str]]) -> None:
        subs = form.get("sub", [])
        if len(subs) != 1 or not subs[0]:
            self._json(400, {"error": "invalid_request", "error_description": "sub"})
            return
        self._json(200, {"delivered": self.issuer.end_sessions(subs[0])})

    def _outcome(self, outcome: LoginPrompt | Redirect | Page) -> None:
        if isinstance(outcome, Redirect):
            self.send_response(302)
            self.send_header("Location", outcome.location)
            self.send_header("Cache-Control", "no-store")
            self.send_header("Content-Length", "0")
            self.end_headers()
        elif isinstance(outcome, LoginPrompt):
            page = login_page(outcome, DEMO_USERS, self.issuer.url)
            self._html(400 if outcome.error else 200, page)
        else:
            self._html(outcome.status, message_page(outcome.title, outcome.message))

    def _html(self, status: int, page: str) -> None:
        payload = page.encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(payload)))
        self.send_header("Cache-Control", "no-store")
        self.send_header("Content-Security-Policy", CONTENT_SECURITY_POLICY)
        self.send_header("X-Frame-Options", "DENY")
        self.send_header("X-Content-Type-Options", "nosniff")
        self.send_header("Referrer-Policy", "no-referrer")
        self.end_headers()
        self.wfile.write(payload)

    def _json(
        self, status: int, body: dict[str, Any], headers: dict[str, str] | None = None
    ) -> None:
        payload = json.dumps(body).encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, format: str, *args: Any) -> None:
        # Silent: a logout request line carries an id_token_hint, a token.
        return


def _content_length(header: str | None) -> int | None:
    """The body's length if it is one a form may have, else None."""
    try:
        length = int(header or "0")
    except ValueError:
        return None
    return length if 0 <= length <= MAX_FORM_BYTES else None
