"""The demo backend: answers every request with what crossed the proxy.

The JSON answer shows the method, path, query, headers, body hash and the
verified identity assertion (or why it failed to verify). Verification uses
PyJWT against the gateway's published JWKS, as any upstream would.

A few behaviours help tests exercise the proxy, chosen with ``?behave=``:

- ``binary``   echo the request body back with the request's Content-Type;
- ``gzip``     a gzip-encoded JSON answer (``Content-Encoding: gzip``);
- ``redirect`` a 302 to ``/elsewhere`` (the proxy must not follow it);
- ``cookies``  two ``Set-Cookie`` headers;
- ``slow``     sleep ``seconds`` before answering;
- ``large``    a body of ``bytes`` bytes;
- ``status``   answer with status ``code``.

Paths under ``/aws-upstream`` go to the local AWS upstream when one is
mounted (:mod:`gatehouse.dev.aws_upstream`): it requires a valid SigV4
signature instead of an identity assertion.

A browser's page load (``Sec-Fetch-Mode: navigate``, a ``GET`` or ``HEAD``)
of ``/app`` or a path under ``/app/`` gets an HTML page instead: who the
gateway says the user is, from the verified assertion. Its element ids are
stable for browser tests: ``whoami`` (the subject), ``email``, ``groups``
(comma separated), ``idp`` (the issuer), ``path``, ``assertion-error`` (only
when the assertion did not verify) and the link ``sign-out-link`` to
``/.gatehouse/logout``. Every value on it is HTML-escaped. Any other request
of those paths (a script's ``fetch``, an API client, a test without
``Sec-Fetch-*`` headers) still gets the JSON answer.
"""

from __future__ import annotations

import gzip
import hashlib
import html
import json
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, urlsplit

import jwt

if TYPE_CHECKING:
    from gatehouse.dev.aws_upstream import AwsUpstream

ASSERTION_HEADER = "X-Gatehouse-Assertion"


class AssertionVerifier:
    """Verifies ``X-Gatehouse-Assertion`` with the gateway's JWKS (fetched lazily)."""

    def __init__(self, gateway_url: str, issuer: str) -> None:
        self.gateway_url = gateway_url.rstrip("/")
        self.issuer = issuer
        self._keys: dict[str, Any] = {}
        self._lock = threading.Lock()

    def _key(self, kid: str) -> Any:
        with self._lock:
            if kid not in self._keys:
                url = f"{self.gateway_url}/.well-known/gatehouse/jwks.json"
                with urllib.request.urlopen(url, timeout=5) as response:  # noqa: S310 (loopback)
                    document = json.load(response)
                self._keys = {
                    jwk["kid"]: jwt.PyJWK.from_dict(jwk).key for jwk in document.get("keys", [])
                }
            return self._keys.get(kid)

    def verify(self, token: str, audience: str) -> dict[str, Any]:
        """The assertion's claims, or the reason it is not valid."""
        try:
            kid = jwt.get_unverified_header(token).get("kid", "")
            key = self._key(kid)
            if key is None:
                return {"valid": False, "error": f"unknown signing key {kid!r}"}
            claims = jwt.decode(
                token,
                key,
                algorithms=["ES256"],
                audience=audience,
                issuer=self.issuer,
                options={"require": ["iss", "aud", "exp", "iat", "sub"]},
            )
        except (jwt.PyJWTError, OSError, ValueError) as exc:
            return {"valid": False, "error": f"{type(exc).__name__}: {exc}"}
        return {"valid": True, "claims": claims}


class DemoBackend:
    """The backend's HTTP server on 127.0.0.1."""

    def __init__(self, port: int = 0, audience: str = "demo") -> None:
        self.audience = audience
        self.verifier: AssertionVerifier | None = None
        self.aws_upstream: AwsUpstream | None = None
        self.requests_seen = 0
        self._server = ThreadingHTTPServer(("127.0.0.1", port), _handler_for(self))
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="demo-backend", daemon=True
        )

    @property
    def url(self) -> str:
        """Base URL."""
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def trust_gateway(self, gateway_url: str, issuer: str) -> None:
        """Verify assertions against this gateway's keys and issuer name."""
        self.verifier = AssertionVerifier(gateway_url, issuer)

    def start(self) -> None:
        """Serve in a background thread."""
        self._thread.start()

    def stop(self) -> None:
        """Stop serving."""
        self._server.shutdown()
        self._server.server_close()

    def describe(
        self, method: str, target: str, headers: list[tuple[str, str]], body: bytes
    ) -> dict[str, Any]:
        """What the backend saw, as JSON-ready data."""
        parts = urlsplit(target)
        grouped: dict[str, list[str]] = {}
        for name, value in headers:
            grouped.setdefault(name, []).append(value)
        assertion_values = grouped.get(ASSERTION_HEADER) or [
            value for name, value in headers if name.lower() == ASSERTION_HEADER.lower()
        ]
        if not assertion_values:
            assertion: dict[str, Any] = {"valid": False, "error": "no assertion header"}
        elif len(assertion_values) > 1:
            assertion = {"valid": False, "error": "more than one assertion header"}
        elif self.verifier is None:
            assertion = {"valid": False, "error": "backend does not know the gateway"}
        else:
            assertion = self.verifier.verify(assertion_values[0], self.audience)
        return {
            "method": method,
            # The request target exactly as it arrived, and its path as this server reads it.
            "target": target,
            "path": parts.path,
            "query": parse_qsl(parts.query, keep_blank_values=True),
            "headers": grouped,
            "body_bytes": len(body),
            "body_sha256": hashlib.sha256(body).hexdigest(),
            "assertion": assertion,
        }


Reply = tuple[int, bytes, list[tuple[str, str]]]
_JSON = [("Content-Type", "application/json")]


def _behaviours(
    request_headers: Any, body: bytes, query: dict[str, str], seen: dict[str, Any]
) -> dict[str, Any]:
    """Each ``?behave=`` value and the reply it makes."""
    as_json = json.dumps(seen).encode("utf-8")
    content_type = request_headers.get("Content-Type", "application/octet-stream")
    return {
        "binary": lambda: (200, body, [("Content-Type", content_type)]),
        "gzip": lambda: (200, gzip.compress(as_json), [*_JSON, ("Content-Encoding", "gzip")]),
        "redirect": lambda: (302, b"", [("Location", "/elsewhere")]),
        "cookies": lambda: (
            200,
            b"{}",
            [*_JSON, ("Set-Cookie", "a=1; Path=/"), ("Set-Cookie", "b=2; Path=/")],
        ),
        "large": lambda: (
            200,
            b"x" * int(query.get("bytes", "0")),
            [("Content-Type", "application/octet-stream")],
        ),
        "status": lambda: (int(query.get("code", "200")), as_json, _JSON),
    }


APP_PREFIX = "/app"
_PAGE_HEADERS = [
    ("Content-Type", "text/html; charset=utf-8"),
    ("Cache-Control", "no-store"),
    ("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'"),
    ("X-Content-Type-Options", "nosniff"),
]
_PAGE_STYLE = (
    "body { font-family: system-ui, sans-serif; max-width: 40rem; margin: 2rem auto; "
    "padding: 0 1rem; } dt { font-weight: bold; margin-top: .6rem; } "
    "#assertion-error { color: #a00; }"
)


def wants_app_page(method: str, target: str, request_headers: Any) -> bool:
    """Whether this is a browser's page load of ``/app`` or a path under it."""
    path = urlsplit(target).path
    under_app = path == APP_PREFIX or path.startswith(APP_PREFIX + "/")
    navigating = (request_headers.get("Sec-Fetch-Mode") or "").strip().lower() == "navigate"
    return method in ("GET", "HEAD") and under_app and navigating


def app_page(seen: dict[str, Any]) -> bytes:
    """The ``/app`` page: who the verified assertion says the user is (every value escaped)."""
    assertion = seen["assertion"]
    claims: dict[str, Any] = assertion.get("claims", {}) if assertion.get("valid") else {}
    groups = claims.get("groups") or []
    fields = {
        "whoami": claims.get("sub", ""),
        "email": claims.get("email") or "",
        "groups": ", ".join(str(group) for group in groups) if isinstance(groups, list) else "",
        "idp": claims.get("idp", ""),
        "path": seen["path"],
    }
    rows = "\n".join(
        f'<dt>{label}</dt><dd id="{key}">{html.escape(str(fields[key]))}</dd>'
        for key, label in (
            ("whoami", "Signed in as"),
            ("email", "Email"),
            ("groups", "Groups"),
            ("idp", "Issuer"),
            ("path", "Page"),
        )
    )
    error = (
        ""
        if assertion.get("valid")
        else f'<p id="assertion-error" role="alert">{html.escape(str(assertion.get("error")))}</p>'
    )
    document = (
        '<!doctype html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        "<title>Demo app - Gatehouse</title>\n"
        f"<style>{_PAGE_STYLE}</style>\n</head>\n<body>\n"
        '<h1 id="title">Demo app</h1>\n'
        "<p>What the gateway's identity assertion says about you:</p>\n"
        f"{error}<dl>\n{rows}\n</dl>\n"
        '<p><a id="sign-out-link" href="/.gatehouse/logout">Sign out</a></p>\n'
        "</body>\n</html>\n"
    )
    return document.encode("utf-8")


def _mounted(target: str) -> bool:
    from gatehouse.dev.aws_upstream import MOUNT

    path = urlsplit(target).path
    return path == MOUNT or path.startswith(MOUNT + "/")


def _handler_for(backend: DemoBackend) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True  # no 40 ms delayed-ACK stalls on keep-alive

        def _serve(self) -> None:
            backend.requests_seen += 1
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            if backend.aws_upstream is not None and _mounted(self.path):
                status, answer = backend.aws_upstream.answer(
                    self.command,
                    self.path,
                    list(self.headers.items()),
                    body,
                    self.client_address[0],
                )
                self._reply(status, json.dumps(answer).encode("utf-8"), _JSON)
                return
            query = dict(parse_qsl(urlsplit(self.path).query))
            seen = backend.describe(self.command, self.path, list(self.headers.items()), body)
            behaviour = query.get("behave", "")
            if behaviour == "slow":
                time.sleep(float(query.get("seconds", "1")))
            reply = _behaviours(self.headers, body, query, seen).get(behaviour)
            if reply is None and wants_app_page(self.command, self.path, self.headers):
                self._reply(200, app_page(seen), _PAGE_HEADERS)
                return
            status, payload, headers = (
                reply() if reply else (200, json.dumps(seen).encode("utf-8"), _JSON)
            )
            self._reply(status, payload, headers)

        def _reply(self, status: int, payload: bytes, headers: list[tuple[str, str]]) -> None:
            self.send_response(status)
            for name, value in headers:
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(payload)

        do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_OPTIONS = do_HEAD = _serve

        def log_message(self, format: str, *args: Any) -> None:
            return

    return Handler
