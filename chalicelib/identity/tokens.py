"""Bearer JWT verification (RFC 7519 / RFC 7515 compact serialisation).

Order of checks, each failure with its own reason code:

1. size (before any parsing), structure, canonical base64url, JSON objects
   without duplicate members;
2. ``alg`` in {RS256, ES256, EdDSA} (``none`` and every HMAC are refused
   before a key is even looked up), ``kid`` present, no ``crit``;
3. ``iss`` names a trusted issuer; the issuer's key ``kid`` exists;
4. the key's algorithm equals the token's ``alg``; the signature verifies;
5. ``exp`` (required, strict), ``nbf``/``iat`` (with clock skew), ``aud``
   (required, must name a configured audience), ``sub`` (required).

Header parameters that point at keys (``jku``, ``x5u``, ``jwk``, ``x5c``) are
ignored: keys come only from the issuer's configured key set.

Steps 1 to 3 and the type of every claim are Gatehouse's own checks; the
signature (step 4) and the registered-claim checks of step 5 are joserfc's
(the JWS algorithm of the key, ``JWTClaimsRegistry``). joserfc's
``jws.deserialize_compact`` is not used: it would parse every token a second
time and refuse header members (``x5c``, ``jku``, unknown names) that
Gatehouse ignores.
"""

from __future__ import annotations

import json
import math
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any, cast

from joserfc.errors import ClaimError
from joserfc.jwt import ClaimsOption, JWTClaimsRegistry

from chalicelib.identity.errors import TokenRejected
from chalicelib.identity.keys import SUPPORTED_ALGORITHMS, b64url_decode, canonical_algorithm
from chalicelib.identity.model import Identity
from chalicelib.reasons import Reason

if TYPE_CHECKING:
    from chalicelib.config import TrustedIssuer
    from chalicelib.identity.jwks import JwksCache

_MAX_GROUPS = 256
_HEADER_CACHE_SIZE = 64
_MAX_AMR = 16


class TokenVerifier:
    """Verifies bearer tokens from a fixed set of trusted issuers.

    Successful verifications are cached by token until the token expires, so
    a repeated token costs a dictionary lookup instead of a signature check.

    Parameters
    ----------
    issuers:
        The trusted issuers.
    keys:
        Where signing keys come from.
    clock_skew_seconds:
        Tolerance for ``nbf`` and ``iat`` in the future.
    max_token_bytes:
        Longer tokens are refused before parsing.
    cache_size:
        How many verified tokens to remember.
    clock:
        Wall clock in seconds since the epoch, injectable for tests.
    """

    def __init__(
        self,
        issuers: Iterable[TrustedIssuer],
        keys: JwksCache,
        *,
        clock_skew_seconds: int = 60,
        max_token_bytes: int = 8192,
        cache_size: int = 4096,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._issuers = {issuer.issuer: issuer for issuer in issuers}
        self._keys = keys
        self._skew = clock_skew_seconds
        self._max_token_bytes = max_token_bytes
        self._clock = clock
        # token -> (identity, exact exp): a cached answer must equal a fresh one.
        self._cache: OrderedDict[str, tuple[Identity, float]] = OrderedDict()
        self._cache_size = cache_size
        self._cache_lock = threading.Lock()
        self._headers: dict[str, dict[str, Any]] = {}
        # An empty audience is an ordinary mismatch here (wrong_audience), not
        # joserfc's "blank claim" error.
        audience_options: dict[str, ClaimsOption] = {
            issuer.issuer: {"values": list(issuer.audiences), "allow_blank": True}
            for issuer in self._issuers.values()
        }
        # joserfc's registries read "now" through a callable: built once, they
        # see each verification's own moment (per thread: the local stack
        # verifies on several at once). exp is strict; nbf and iat get the skew.
        self._moment = threading.local()
        now = cast("Callable[[], int]", self._now_of_this_verification)
        self._strict = JWTClaimsRegistry(now=now, leeway=0)
        self._skewed = {
            name: JWTClaimsRegistry(now=now, leeway=self._skew, aud=options)
            for name, options in audience_options.items()
        }

    def _now_of_this_verification(self) -> float:
        now: float = self._moment.now
        return now

    def verify(self, token: str) -> Identity:
        """Return the identity a valid token proves.

        Raises
        ------
        TokenRejected
            With the reason the token is not acceptable.
        """
        if len(token) > self._max_token_bytes or (
            not token.isascii() and len(token.encode("utf-8")) > self._max_token_bytes
        ):
            raise TokenRejected(
                Reason.TOKEN_TOO_LARGE, f"token exceeds {self._max_token_bytes} bytes"
            )
        now = self._clock()
        cached = self._cached(token)
        if cached is not None:
            identity, exp = cached
            if exp <= now:
                raise TokenRejected(Reason.TOKEN_EXPIRED, "token has expired")
            return identity
        identity, exp = self._verify_uncached(token, now)
        self._remember(token, identity, exp)
        return identity

    def _cached(self, token: str) -> tuple[Identity, float] | None:
        with self._cache_lock:
            entry = self._cache.get(token)
            if entry is not None:
                self._cache.move_to_end(token)
            return entry

    def _remember(self, token: str, identity: Identity, exp: float) -> None:
        with self._cache_lock:
            self._cache[token] = (identity, exp)
            if len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)

    def _header(self, segment: str) -> dict[str, Any]:
        # An issuer signs with few keys, so headers repeat: parse each once.
        header = self._headers.get(segment)
        if header is None:
            header = _decode_object(segment, "header")
            if len(self._headers) >= _HEADER_CACHE_SIZE:
                self._headers.clear()
            self._headers[segment] = header
        return header

    def _verify_uncached(self, token: str, now: float) -> tuple[Identity, float]:
        header_segment, payload_segment, signature_segment = _split(token)
        header = self._header(header_segment)
        declared_alg = header.get("alg")
        alg = canonical_algorithm(declared_alg)
        if alg is None or alg not in SUPPORTED_ALGORITHMS:
            shown = str(declared_alg)[:16] if isinstance(declared_alg, str) else "non-string"
            raise TokenRejected(Reason.UNSUPPORTED_ALGORITHM, f"alg {shown!r} is not accepted")
        if "crit" in header:
            raise TokenRejected(
                Reason.MALFORMED_TOKEN, "critical header extensions are not supported"
            )
        kid = header.get("kid")
        if not isinstance(kid, str) or not kid:
            raise TokenRejected(Reason.MALFORMED_TOKEN, "token header has no kid")
        if not signature_segment:
            raise TokenRejected(Reason.BAD_SIGNATURE, "token is not signed")
        signature = _decode(signature_segment, "signature")
        claims = _decode_object(payload_segment, "payload")
        issuer = self._trusted_issuer(claims)
        key = self._keys.get_key(issuer, kid)
        if key.alg != alg:
            raise TokenRejected(
                Reason.ALGORITHM_MISMATCH, f"token alg {alg} does not match key {kid} ({key.alg})"
            )
        signing_input = f"{header_segment}.{payload_segment}".encode("ascii")
        if not key.verify(signing_input, signature):
            raise TokenRejected(Reason.BAD_SIGNATURE, "signature does not verify")
        return self._identity(claims, issuer, now)

    def _trusted_issuer(self, claims: Mapping[str, Any]) -> TrustedIssuer:
        iss = claims.get("iss")
        if iss is None or iss == "":
            raise TokenRejected(Reason.MISSING_CLAIM, "token has no iss")
        if not isinstance(iss, str):
            raise TokenRejected(Reason.INVALID_CLAIM, "iss is not a string")
        issuer = self._issuers.get(iss)
        if issuer is None:
            raise TokenRejected(Reason.UNKNOWN_ISSUER, "token issuer is not trusted")
        return issuer

    def _identity(
        self, claims: Mapping[str, Any], issuer: TrustedIssuer, now: float
    ) -> tuple[Identity, float]:
        # joserfc only compares ``now``, so a float keeps sub-second
        # precision (an exp of 1000.3 expires before 1001).
        self._moment.now = now
        strict, skewed = self._strict, self._skewed[issuer.issuer]
        exp = _numeric_date(claims, "exp", required=True)
        assert exp is not None  # required=True
        _registered(strict.validate_exp, exp, Reason.TOKEN_EXPIRED, "token has expired")
        for name, validate in (("nbf", skewed.validate_nbf), ("iat", skewed.validate_iat)):
            moment = _numeric_date(claims, name, required=False)
            if moment is not None:
                _registered(
                    validate, moment, Reason.TOKEN_NOT_YET_VALID, f"{name} is in the future"
                )
        aud = claims.get("aud")
        if aud is None:
            raise TokenRejected(Reason.MISSING_CLAIM, "token has no aud")
        if not isinstance(aud, str | list) or not all(isinstance(a, str) for a in aud):
            raise TokenRejected(Reason.INVALID_CLAIM, "aud is not a string or a list of strings")
        _registered(
            skewed.validate_aud, aud, Reason.WRONG_AUDIENCE, "token is not for this audience"
        )
        audience = _matching_audience(aud, issuer.audiences)
        subject = claims.get("sub")
        if subject is None or subject == "":
            raise TokenRejected(Reason.MISSING_CLAIM, "token has no sub")
        _registered(skewed.validate_sub, subject, Reason.INVALID_CLAIM, "sub is not a string")
        identity = Identity(
            issuer=issuer.issuer,
            subject=subject,
            audience=audience,
            expires_at=math.floor(exp),
            email=_verified_email(claims, issuer.email_verified_required),
            groups=_string_set(claims.get(issuer.groups_claim), "groups", _MAX_GROUPS),
            groups_claimed=claims.get(issuer.groups_claim) is not None,
            amr=tuple(sorted(_string_set(claims.get("amr"), "amr", _MAX_AMR))),
            auth_time=_optional_int(claims, "auth_time"),
            issued_at=_optional_int(claims, "iat"),
            client_id=_optional_str(claims, "azp") or _optional_str(claims, "client_id"),
            session_id=_optional_str(claims, "sid"),
            token_id=_optional_str(claims, "jti"),
            claims=claims,
        )
        return identity, exp


def _split(token: str) -> tuple[str, str, str]:
    parts = token.split(".")
    if len(parts) != 3 or not parts[0] or not parts[1]:
        raise TokenRejected(Reason.MALFORMED_TOKEN, "token is not three dot-separated segments")
    return parts[0], parts[1], parts[2]


def _decode(segment: str, what: str) -> bytes:
    try:
        return b64url_decode(segment)
    except ValueError as exc:
        raise TokenRejected(Reason.MALFORMED_TOKEN, f"token {what} is not base64url") from exc


def _reject_duplicate_members(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj = dict(pairs)
    if len(obj) != len(pairs):
        raise ValueError("duplicate member")
    return obj


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


# Built once: json.loads(..., object_pairs_hook=...) builds a decoder per call.
_JSON = json.JSONDecoder(
    object_pairs_hook=_reject_duplicate_members, parse_constant=_reject_constant
)


def _decode_object(segment: str, what: str) -> dict[str, Any]:
    raw = _decode(segment, what)
    try:
        # RFC 7515 says UTF-8; json.loads(bytes) would also guess UTF-16/32.
        value = _JSON.decode(raw.decode("utf-8"))
    except (ValueError, RecursionError) as exc:
        raise TokenRejected(Reason.MALFORMED_TOKEN, f"token {what} is not a JSON object") from exc
    if not isinstance(value, dict):
        raise TokenRejected(Reason.MALFORMED_TOKEN, f"token {what} is not a JSON object")
    return value


def _numeric_date(claims: Mapping[str, Any], name: str, *, required: bool) -> float | None:
    value = claims.get(name)
    if value is None:
        if required:
            raise TokenRejected(Reason.MISSING_CLAIM, f"token has no {name}")
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TokenRejected(Reason.INVALID_CLAIM, f"{name} is not a NumericDate")
    try:
        moment = float(value)
    except OverflowError as exc:
        raise TokenRejected(Reason.INVALID_CLAIM, f"{name} is out of range") from exc
    if not math.isfinite(moment):
        raise TokenRejected(Reason.INVALID_CLAIM, f"{name} is not a NumericDate")
    return moment


def _registered(validate: Callable[[Any], None], value: Any, reason: Reason, detail: str) -> None:
    """Run one of joserfc's registered-claim checks, its failure as ``reason``.

    The claim's type was checked before, so joserfc can fail for one reason
    only: expired, in the future, not this audience, or (sub) not a string.

    Raises
    ------
    TokenRejected
        With ``reason`` when joserfc refuses the claim.
    """
    try:
        validate(value)
    except ClaimError as exc:  # ExpiredTokenError, InvalidClaimError
        raise TokenRejected(reason, detail) from exc


def _matching_audience(aud: str | list[str], accepted: tuple[str, ...]) -> str:
    # joserfc said some configured audience is in the token; name the first one.
    audiences = [aud] if isinstance(aud, str) else aud
    for candidate in accepted:
        if candidate in audiences:
            return candidate
    raise TokenRejected(Reason.WRONG_AUDIENCE, "token is not for this audience")


def _verified_email(claims: Mapping[str, Any], verification_required: bool) -> str | None:
    email = claims.get("email")
    if email is None:
        return None
    if not isinstance(email, str):
        raise TokenRejected(Reason.INVALID_CLAIM, "email is not a string")
    # Only an explicit true (some IdPs send the string "true") makes the
    # address count; issuers that never send email_verified must be marked
    # as verifying every address (email_verified_required: false).
    verified = claims.get("email_verified", not verification_required)
    if verified is not True and verified != "true":
        return None
    return email.strip().lower() or None


def _string_set(value: Any, name: str, limit: int) -> frozenset[str]:
    if value is None:
        return frozenset()
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list) or not all(isinstance(item, str) for item in items):
        raise TokenRejected(Reason.INVALID_CLAIM, f"{name} is not a list of strings")
    if len(items) > limit:
        raise TokenRejected(Reason.INVALID_CLAIM, f"{name} has more than {limit} entries")
    return frozenset(items)


def _optional_int(claims: Mapping[str, Any], name: str) -> int | None:
    value = claims.get(name)
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    try:
        return math.floor(value) if math.isfinite(float(value)) else None
    except OverflowError:
        return None


def _optional_str(claims: Mapping[str, Any], name: str) -> str | None:
    value = claims.get(name)
    return value if isinstance(value, str) and value else None
