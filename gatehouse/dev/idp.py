"""A development OIDC issuer: discovery, a JWKS with an RS256 and an ES256 key, tokens.

Tokens are minted with PyJWT, an implementation independent of Gatehouse's
own verifier, so the local stack proves interoperability, not agreement with
itself. Keys persist in the state directory so ``gatehouse dev token`` can
sign for a running stack.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

from chalicelib.identity.keys import b64url_encode

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


class DevIssuer:
    """The issuer's HTTP server on 127.0.0.1."""

    def __init__(self, keys: list[SigningKey], port: int = 0) -> None:
        self.keys = keys
        self.jwks_requests = 0
        issuer = self
        self._server = ThreadingHTTPServer(("127.0.0.1", port), _handler_for(issuer))
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="dev-idp", daemon=True
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
            "response_types_supported": ["id_token"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": list(ALGORITHMS),
        }

    def jwks(self) -> dict[str, Any]:
        """The public keys."""
        return {"keys": [key.public_jwk() for key in self.keys]}


def _handler_for(issuer: DevIssuer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path == "/.well-known/openid-configuration":
                self._json(200, issuer.discovery_document())
            elif self.path == "/jwks.json":
                issuer.jwks_requests += 1
                self._json(200, issuer.jwks())
            else:
                self._json(404, {"error": "not found"})

        def _json(self, status: int, body: dict[str, Any]) -> None:
            payload = json.dumps(body).encode("utf-8")
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, format: str, *args: Any) -> None:
            return

    return Handler
