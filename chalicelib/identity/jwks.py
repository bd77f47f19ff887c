"""A cache of each trusted issuer's signing keys.

Off-the-shelf JWKS clients refetch on every unknown ``kid``, which lets anyone
with a forged token turn the authorizer into a hammer on the IdP. This cache:

- keeps keys per issuer and per ``kid``;
- fetches an issuer's key set at most once per ``cooldown_seconds``, whatever
  triggers it (unknown ``kid``, a stale set, or a failed previous attempt);
- keeps the last good set when the issuer is down or answers nonsense.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from chalicelib.identity.errors import TokenRejected
from chalicelib.identity.keys import InvalidKey, VerificationKey, parse_jwk
from chalicelib.observability import get_logger
from chalicelib.reasons import Reason

if TYPE_CHECKING:
    from chalicelib.config import TrustedIssuer

FetchJson = Callable[[str], Any]

logger = get_logger(__name__)


class FetchError(Exception):
    """A discovery document or key set could not be fetched or parsed."""


@dataclass(slots=True)
class _IssuerKeys:
    keys: dict[str, VerificationKey] = field(default_factory=dict)
    fetched_at: float | None = None
    attempted_at: float | None = None
    jwks_uri: str | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)


class JwksCache:
    """Signing keys of trusted issuers, fetched on demand within a cooldown.

    Parameters
    ----------
    fetch_json:
        GETs a URL and returns its parsed JSON, raising :class:`FetchError`.
    cooldown_seconds:
        Minimum time between two fetches of one issuer's keys.
    max_age_seconds:
        After this long a key set is refreshed (within the cooldown); until a
        refresh succeeds the old set keeps being used.
    clock:
        Monotonic clock, injectable for tests.
    """

    def __init__(
        self,
        fetch_json: FetchJson,
        *,
        cooldown_seconds: float,
        max_age_seconds: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._fetch_json = fetch_json
        self._cooldown = cooldown_seconds
        self._max_age = max_age_seconds
        self._clock = clock
        self._issuers: dict[str, _IssuerKeys] = {}
        self._issuers_lock = threading.Lock()
        self.fetch_count = 0

    def get_key(self, issuer: TrustedIssuer, kid: str) -> VerificationKey:
        """Return the issuer's key named ``kid``.

        Raises
        ------
        TokenRejected
            ``unknown_key`` when the issuer has no such key (after at most one
            refetch per cooldown), ``issuer_unavailable`` when no key set of
            that issuer has ever been fetched successfully.
        """
        state = self._state(issuer.issuer)
        key = state.keys.get(kid)
        now = self._clock()
        fresh = state.fetched_at is not None and now - state.fetched_at < self._max_age
        if key is not None and fresh:
            return key
        self._refresh_within_cooldown(issuer, state)
        key = state.keys.get(kid)
        if key is not None:
            return key
        if state.fetched_at is None:
            raise TokenRejected(
                Reason.ISSUER_UNAVAILABLE, f"no signing keys could be fetched from {issuer.issuer}"
            )
        raise TokenRejected(Reason.UNKNOWN_KEY, f"{issuer.issuer} has no key with kid {kid!r}")

    def _state(self, issuer: str) -> _IssuerKeys:
        state = self._issuers.get(issuer)
        if state is None:
            with self._issuers_lock:
                state = self._issuers.setdefault(issuer, _IssuerKeys())
        return state

    def _refresh_within_cooldown(self, issuer: TrustedIssuer, state: _IssuerKeys) -> None:
        with state.lock:
            now = self._clock()
            if state.attempted_at is not None and now - state.attempted_at < self._cooldown:
                return
            state.attempted_at = now
            self.fetch_count += 1
            try:
                keys = self._fetch_keys(issuer, state)
            except Exception as exc:  # whatever broke, the issuer is unavailable for now
                logger.warning("keeping the last good key set of %s: %s", issuer.issuer, exc)
                return
            state.keys = keys
            state.fetched_at = now

    def _fetch_keys(self, issuer: TrustedIssuer, state: _IssuerKeys) -> dict[str, VerificationKey]:
        if state.jwks_uri is None:
            state.jwks_uri = issuer.jwks_uri or self._discover_jwks_uri(issuer)
        document = self._fetch_json(state.jwks_uri)
        entries = document.get("keys") if isinstance(document, dict) else None
        if not isinstance(entries, list):
            raise FetchError(f"{state.jwks_uri} is not a JWK set")
        keys: dict[str, VerificationKey] = {}
        ambiguous: set[str] = set()
        for entry in entries:
            try:
                key = parse_jwk(entry)
            except InvalidKey as exc:
                logger.info("ignoring a key of %s: %s", issuer.issuer, exc)
                continue
            if key.kid in keys:
                ambiguous.add(key.kid)
            keys[key.kid] = key
        for kid in ambiguous:
            # Two keys under one kid: no way to know which one signed a token.
            logger.warning("ignoring kid %r of %s: it names more than one key", kid, issuer.issuer)
            del keys[kid]
        if not keys:
            raise FetchError(f"{state.jwks_uri} holds no usable signing key")
        return keys

    def _discover_jwks_uri(self, issuer: TrustedIssuer) -> str:
        url = issuer.issuer.rstrip("/") + "/.well-known/openid-configuration"
        document = self._fetch_json(url)
        if not isinstance(document, dict):
            raise FetchError(f"{url} is not a discovery document")
        if document.get("issuer") != issuer.issuer:
            # OIDC Discovery 4.3: the document must name the issuer it was fetched for.
            raise FetchError(f"{url} names issuer {document.get('issuer')!r}")
        jwks_uri = document.get("jwks_uri")
        # An https issuer must keep its keys behind https too; plain http is
        # only for issuers that are themselves plain http (local development).
        allowed = ("https://",) if issuer.issuer.startswith("https://") else ("https://", "http://")
        if not isinstance(jwks_uri, str) or not jwks_uri.startswith(allowed):
            raise FetchError(f"{url} has no usable jwks_uri")
        return jwks_uri
