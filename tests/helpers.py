"""Test helpers: event fixtures, hand-built JWTs, JWKs.

Tokens are built by hand (not by the code under test) so that tests can make
exactly the malformed, mis-signed or mis-labelled tokens an attacker would.
"""

from __future__ import annotations

import base64
import copy
import json
import time
from functools import cache
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import hashes, hmac, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

EVENTS = Path(__file__).parent / "events"
ISSUER = "https://idp.test.example"
AUDIENCE = "gatehouse"


@cache
def _event_text(name: str) -> str:
    return (EVENTS / f"{name}.json").read_text()


def load_event(name: str) -> dict[str, Any]:
    """A fresh copy of ``tests/events/<name>.json``."""
    return copy.deepcopy(json.loads(_event_text(name)))


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def segment(value: Any) -> str:
    return b64url(json.dumps(value, separators=(",", ":")).encode())


def sign(key: Any, alg: str, message: bytes) -> bytes:
    """Sign like a JWS implementation would, for any alg/key pairing (even wrong ones)."""
    if alg == "RS256":
        return key.sign(message, padding.PKCS1v15(), hashes.SHA256())
    if alg == "ES256":
        r, s = decode_dss_signature(key.sign(message, ec.ECDSA(hashes.SHA256())))
        return r.to_bytes(32, "big") + s.to_bytes(32, "big")
    if alg == "EdDSA":
        return key.sign(message)
    if alg == "HS256":
        mac = hmac.HMAC(key, hashes.SHA256())
        mac.update(message)
        return mac.finalize()
    raise ValueError(alg)


def claims(**overrides: Any) -> dict[str, Any]:
    """Valid claims for ISSUER/AUDIENCE, with overrides (None deletes a claim)."""
    now = int(time.time())
    base: dict[str, Any] = {
        "iss": ISSUER,
        "aud": AUDIENCE,
        "sub": "alice",
        "email": "alice@example.com",
        "email_verified": True,
        "groups": ["engineering"],
        "iat": now,
        "nbf": now,
        "exp": now + 600,
    }
    for name, value in overrides.items():
        if value is None:
            base.pop(name, None)
        else:
            base[name] = value
    return base


def make_token(
    key: Any,
    alg: str = "RS256",
    kid: str = "k1",
    payload: dict[str, Any] | None = None,
    header: dict[str, Any] | None = None,
) -> str:
    """A compact JWS over ``payload`` (default: valid claims) signed with ``key`` as ``alg``."""
    head = {"alg": alg, "typ": "JWT", "kid": kid, **(header or {})}
    signing_input = f"{segment(head)}.{segment(payload if payload is not None else claims())}"
    signature = b"" if alg == "none" else sign(key, alg, signing_input.encode())
    return f"{signing_input}.{b64url(signature)}"


def jwk(public_key: Any, kid: str, alg: str | None = None) -> dict[str, Any]:
    """The public JWK of a key."""
    if isinstance(public_key, rsa.RSAPublicKey):
        numbers = public_key.public_numbers()
        data: dict[str, Any] = {
            "kty": "RSA",
            "n": b64url(numbers.n.to_bytes((numbers.n.bit_length() + 7) // 8, "big")),
            "e": b64url(numbers.e.to_bytes((numbers.e.bit_length() + 7) // 8, "big")),
        }
    elif isinstance(public_key, ec.EllipticCurvePublicKey):
        numbers = public_key.public_numbers()
        data = {
            "kty": "EC",
            "crv": "P-256",
            "x": b64url(numbers.x.to_bytes(32, "big")),
            "y": b64url(numbers.y.to_bytes(32, "big")),
        }
    elif isinstance(public_key, ed25519.Ed25519PublicKey):
        raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        data = {"kty": "OKP", "crv": "Ed25519", "x": b64url(raw)}
    else:
        raise TypeError(type(public_key))
    data["kid"] = kid
    if alg is not None:
        data["alg"] = alg
    return data


class FakeIdp:
    """An in-memory issuer for unit tests: serves discovery and a JWKS, counts fetches.

    It stands in for the network (the HTTP fetch function), not for any of
    Gatehouse's own code.
    """

    def __init__(self, keys: list[dict[str, Any]], issuer: str = ISSUER) -> None:
        self.issuer = issuer
        self.keys = keys
        self.up = True
        self.fetches: list[str] = []

    def __call__(self, url: str) -> Any:
        from chalicelib.identity.jwks import FetchError

        self.fetches.append(url)
        if not self.up:
            raise FetchError(f"{url}: connection refused")
        if url == f"{self.issuer}/.well-known/openid-configuration":
            return {"issuer": self.issuer, "jwks_uri": f"{self.issuer}/jwks"}
        if url == f"{self.issuer}/jwks":
            return {"keys": self.keys}
        raise FetchError(f"{url}: 404")

    @property
    def jwks_fetches(self) -> int:
        return sum(1 for url in self.fetches if url.endswith("/jwks"))


class Clock:
    """Epoch (or monotonic) seconds that tests move by hand."""

    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now
