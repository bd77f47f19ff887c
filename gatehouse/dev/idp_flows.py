"""The dev issuer's OpenID Provider logic: clients, sign-in, codes, tokens, sessions.

Authorization code flow with PKCE (RFC 6749, RFC 7636), the authorization
response's ``iss`` (RFC 9207), refresh-token rotation, RP-initiated logout and
the bookkeeping back-channel logout needs. No HTTP here: ``gatehouse.dev.idp``
parses requests and answers them, and ``gatehouse.dev.idp_logout`` delivers
logout tokens. Every method may be called from several server threads at
once; one lock guards all state.

Nothing here logs: codes, tokens and verifiers are secrets.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol
from urllib.parse import unquote_plus, urlencode, urlsplit

from gatehouse.dev.idp_logout import LogoutNotice

SCOPES = ("openid", "profile", "email", "groups", "offline_access")
CLAIMS = (
    "iss", "sub", "aud", "exp", "iat", "auth_time", "nonce", "sid",
    "email", "email_verified", "groups", "amr", "name",
)  # fmt: skip
# How long a rendered login page stays usable: long enough to type a user.
PENDING_TTL_SECONDS = 600
# Longest accepted parameter: keeps a hostile query from growing server state.
MAX_PARAMETER_LENGTH = 2048
_S256_CHALLENGE = re.compile(r"[A-Za-z0-9_-]{43}")
_VERIFIER = re.compile(r"[A-Za-z0-9._~-]{43,128}")
_EMAIL = re.compile(r"[^@\s]+@[^@\s]+")

Params = Mapping[str, list[str]]


class Signer(Protocol):
    """What the flows need from the issuer's keys."""

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
        """Sign an ID token."""
        ...

    def own_claims(self, token: str) -> dict[str, Any] | None:
        """The claims of a token this issuer signed (expired or not), else None."""
        ...


@dataclass(frozen=True, slots=True)
class Client:
    """A registered relying party."""

    client_id: str
    redirect_uris: tuple[str, ...]
    post_logout_redirect_uris: tuple[str, ...]
    backchannel_logout_uri: str | None
    client_secret: str | None

    @property
    def public(self) -> bool:
        """A client without a secret (it proves possession with PKCE only)."""
        return self.client_secret is None


@dataclass(frozen=True, slots=True)
class DemoUser:
    """A user the login page offers as one click."""

    key: str
    sub: str
    email: str
    name: str
    groups: tuple[str, ...]
    mfa: bool
    about: str


# Chosen against gatehouse/dev/demo-policy.yaml: each shows a different decision.
DEMO_USERS = (
    DemoUser(
        key="alice",
        sub="alice",
        email="alice@example.com",
        name="Alice",
        groups=("engineering",),
        mfa=False,
        about="engineer: reads and writes /api, no /admin without MFA",
    ),
    DemoUser(
        key="bob",
        sub="bob",
        email="bob@example.com",
        name="Bob",
        groups=("engineering", "contractors"),
        mfa=False,
        about="contractor in engineering: /api, but never /api/billing",
    ),
    DemoUser(
        key="dana",
        sub="dana",
        email="dana@example.com",
        name="Dana",
        groups=("engineering", "oncall"),
        mfa=True,
        about="on-call engineer with MFA: /admin, and break-glass",
    ),
    DemoUser(
        key="sam",
        sub="sam",
        email="sam@example.com",
        name="Sam",
        groups=("security",),
        mfa=True,
        about="security: approves just-in-time grants",
    ),
)


@dataclass(frozen=True, slots=True)
class SignInForm:
    """What the login page's form said, echoed back when it is refused."""

    sub: str = ""
    email: str = ""
    name: str = ""
    groups: str = ""
    mfa: bool = False


@dataclass(frozen=True, slots=True)
class LoginPrompt:
    """Show the login page for a pending authorization request."""

    request_id: str
    client_id: str
    error: str | None = None
    form: SignInForm = SignInForm()


@dataclass(frozen=True, slots=True)
class Redirect:
    """Send the browser to ``location`` (302)."""

    location: str


@dataclass(frozen=True, slots=True)
class Page:
    """Show a message instead of redirecting."""

    status: int
    title: str
    message: str


class TokenError(Exception):
    """A token endpoint error response (RFC 6749 5.2)."""

    def __init__(self, error: str, description: str) -> None:
        super().__init__(f"{error}: {description}")
        self.error = error
        self.description = description
        # 401 only for a failed client authentication; everything else is 400.
        self.status = 401 if error == "invalid_client" else 400


class _AuthorizeError(Exception):
    """An authorization error the client hears about at its redirect_uri."""

    def __init__(self, error: str, description: str) -> None:
        super().__init__(description)
        self.error = error
        self.description = description


class _PageError(Exception):
    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


@dataclass(frozen=True, slots=True)
class _AuthorizationRequest:
    client_id: str
    redirect_uri: str
    scope: tuple[str, ...]
    state: str
    nonce: str
    code_challenge: str
    expires_at: float


@dataclass(slots=True)
class _User:
    sub: str
    email: str | None
    name: str
    groups: list[str]
    disabled: bool = False


@dataclass(slots=True)
class _Session:
    sid: str
    sub: str
    auth_time: int
    amr: tuple[str, ...]
    clients: set[str] = field(default_factory=set)
    ended: bool = False


@dataclass(slots=True)
class _Code:
    request: _AuthorizationRequest
    sid: str
    sub: str
    expires_at: float
    used: bool = False
    grant_id: str | None = None


@dataclass(slots=True)
class _Grant:
    """What one code redemption issued; a refresh rotates its token, a revocation ends it."""

    grant_id: str
    client_id: str
    sid: str
    scope: tuple[str, ...]
    refresh_token: str | None
    revoked: bool = False


class Provider:
    """The OpenID Provider's state and rules.

    Parameters
    ----------
    issuer
        The issuer identifier (``iss``); endpoint paths hang off it.
    signer
        Signs ID tokens and recognises the issuer's own tokens.
    clock
        Epoch seconds.
    code_ttl_seconds
        How long an authorization code may be redeemed.
    id_token_ttl_seconds
        ID token (and access token) lifetime.
    """

    def __init__(
        self,
        issuer: str,
        signer: Signer,
        *,
        clock: Callable[[], float],
        code_ttl_seconds: float,
        id_token_ttl_seconds: int,
    ) -> None:
        self.issuer = issuer
        self._signer = signer
        self._clock = clock
        self._code_ttl = code_ttl_seconds
        self._id_token_ttl = id_token_ttl_seconds
        self._lock = threading.Lock()
        self._clients: dict[str, Client] = {}
        self._users: dict[str, _User] = {}
        self._sessions: dict[str, _Session] = {}
        self._pending: dict[str, _AuthorizationRequest] = {}
        self._codes: dict[str, _Code] = {}
        self._grants: dict[str, _Grant] = {}
        self._refresh_tokens: dict[str, str] = {}  # token -> grant id

    # -- clients and users -------------------------------------------------

    def register_client(self, client: Client) -> None:
        """Add ``client``, replacing one with the same id."""
        _check_client(client)
        with self._lock:
            self._clients[client.client_id] = client

    def client(self, client_id: str) -> Client | None:
        """The registered client ``client_id``."""
        with self._lock:
            return self._clients.get(client_id)

    def disable_user(self, sub: str) -> None:
        """Refuse ``sub``'s refreshes, code redemptions and sign-ins from now on."""
        with self._lock:
            self._user(sub).disabled = True

    def set_groups(self, sub: str, groups: list[str]) -> None:
        """Give ``sub`` these groups; the next refresh's ID token carries them."""
        with self._lock:
            self._user(sub).groups = list(groups)

    def _user(self, sub: str) -> _User:
        # A user not yet signed in gets a record, so a test may prepare one.
        return self._users.setdefault(sub, _User(sub, None, sub, []))

    # -- authorization endpoint --------------------------------------------

    def authorize(self, params: Params) -> LoginPrompt | Redirect | Page:
        """Answer ``GET /authorize``: the login page, an error redirect, or an error page."""
        try:
            client, redirect_uri = self._client_and_redirect(params)
        except _PageError as refused:
            return Page(400, "Sign-in request refused", refused.message)
        state = _single_or_none(params, "state")
        try:
            request = self._authorization_request(client, redirect_uri, params)
        except _AuthorizeError as error:
            return Redirect(self._error_location(redirect_uri, error, state))
        request_id = secrets.token_urlsafe(24)
        with self._lock:
            self._prune()
            self._pending[request_id] = request
        return LoginPrompt(request_id, client.client_id)

    def sign_in(self, form: Params) -> LoginPrompt | Redirect | Page:
        """Answer ``POST /authorize``: the user chose (or typed) who they are."""
        request_id = _single_or_none(form, "request_id") or ""
        with self._lock:
            request = self._pending.get(request_id)
        if request is None or request.expires_at < self._clock():
            return Page(400, "Sign-in expired", "This sign-in page has expired. Start again.")
        if _single_or_none(form, "cancel"):
            with self._lock:
                self._pending.pop(request_id, None)
            denied = _AuthorizeError("access_denied", "the user cancelled the sign-in")
            return Redirect(self._error_location(request.redirect_uri, denied, request.state))
        echoed, user, error = _signed_in_user(form)
        with self._lock:
            if error is None and self._users.get(user.sub, user).disabled:
                error = f"User {user.sub} is disabled."
            if error is not None:
                return LoginPrompt(request_id, request.client_id, error, echoed)
            if self._pending.pop(request_id, None) is None:
                return Page(400, "Sign-in expired", "This sign-in page was already used.")
            code = self._start_session(request, user, mfa=echoed.mfa)
        query = {"code": code, "state": request.state, "iss": self.issuer}
        return Redirect(_with_query(request.redirect_uri, query))

    def _client_and_redirect(self, params: Params) -> tuple[Client, str]:
        # Until the client and its redirect_uri are known, redirecting would
        # be an open redirector: these errors are shown, never sent.
        try:
            client_id = _single_or_none(params, "client_id", strict=True)
            redirect_uri = _single_or_none(params, "redirect_uri", strict=True)
        except _AuthorizeError as error:
            raise _PageError(error.description) from None
        client = self.client(client_id or "")
        if client is None:
            raise _PageError("Unknown client_id.")
        if redirect_uri is None:
            raise _PageError("redirect_uri is required.")
        if redirect_uri not in client.redirect_uris:
            raise _PageError("redirect_uri is not registered for this client.")
        return client, redirect_uri

    def _authorization_request(
        self, client: Client, redirect_uri: str, params: Params
    ) -> _AuthorizationRequest:
        values = _values(params)
        response_type = values.get("response_type")
        if response_type is None:
            raise _AuthorizeError("invalid_request", "response_type is required")
        if response_type != "code":
            raise _AuthorizeError("unsupported_response_type", "only response_type=code")
        scope = _scope(values.get("scope"))
        challenge = _code_challenge(values)
        for name in ("state", "nonce"):
            # Optional in the specs; required here so a relying party that
            # forgets either finds out on the local stack.
            if name not in values:
                raise _AuthorizeError("invalid_request", f"{name} is required")
        if "none" in values.get("prompt", "").split():
            # No browser session is kept here, so no sign-in can be silent.
            raise _AuthorizeError("login_required", "the user must sign in")
        expires_at = self._clock() + PENDING_TTL_SECONDS
        return _AuthorizationRequest(
            client_id=client.client_id,
            redirect_uri=redirect_uri,
            scope=scope,
            state=values["state"],
            nonce=values["nonce"],
            code_challenge=challenge,
            expires_at=expires_at,
        )

    def _error_location(self, redirect_uri: str, error: _AuthorizeError, state: str | None) -> str:
        query = {"error": error.error, "error_description": error.description}
        if state is not None:
            query["state"] = state
        query["iss"] = self.issuer
        return _with_query(redirect_uri, query)

    def _start_session(self, request: _AuthorizationRequest, user: _User, *, mfa: bool) -> str:
        # Caller holds the lock.
        existing = self._users.get(user.sub)
        if existing is not None:
            user.disabled = existing.disabled
        self._users[user.sub] = user
        now = self._clock()
        session = _Session(
            sid=secrets.token_urlsafe(16),
            sub=user.sub,
            auth_time=int(now),
            amr=("pwd", "mfa") if mfa else ("pwd",),
            clients={request.client_id},
        )
        self._sessions[session.sid] = session
        code = secrets.token_urlsafe(32)
        self._codes[code] = _Code(request, session.sid, user.sub, now + self._code_ttl)
        return code

    def _prune(self) -> None:
        # Caller holds the lock. Used codes are kept a while after expiry so a
        # late replay still revokes what they issued.
        now = self._clock()
        for key in [k for k, r in self._pending.items() if r.expires_at < now]:
            del self._pending[key]
        for key, code in list(self._codes.items()):
            if code.expires_at + (PENDING_TTL_SECONDS if code.used else 0) < now:
                del self._codes[key]

    # -- token endpoint ----------------------------------------------------

    def token(self, form: Params, authorization: str | None) -> dict[str, Any]:
        """Answer ``POST /token``; raise :class:`TokenError` for an error response."""
        values = _token_values(form)
        client = self._authenticate(values, authorization)
        grant_type = values.get("grant_type")
        if grant_type is None:
            raise TokenError("invalid_request", "grant_type is required")
        if grant_type == "authorization_code":
            return self._redeem_code(client, values)
        if grant_type == "refresh_token":
            return self._refresh(client, values)
        raise TokenError("unsupported_grant_type", "authorization_code or refresh_token")

    def _authenticate(self, values: dict[str, str], authorization: str | None) -> Client:
        client_id, secret = _client_credentials(values, authorization)
        client = self.client(client_id)
        if client is None:
            raise TokenError("invalid_client", "unknown client")
        if client.client_secret is None:
            if secret is not None:
                raise TokenError("invalid_client", "a public client has no secret")
            return client
        if secret is None or not hmac.compare_digest(
            secret.encode("utf-8"), client.client_secret.encode("utf-8")
        ):
            raise TokenError("invalid_client", "client authentication failed")
        return client

    def _redeem_code(self, client: Client, values: dict[str, str]) -> dict[str, Any]:
        code, redirect_uri, verifier = (
            _required(values, name) for name in ("code", "redirect_uri", "code_verifier")
        )
        with self._lock:
            record = self._codes.get(code)
            if record is None or record.request.client_id != client.client_id:
                raise TokenError("invalid_grant", "unknown or expired code")
            if record.used:
                # RFC 6749 10.5: a replayed code revokes what it issued.
                self._revoke(record.grant_id)
                raise TokenError("invalid_grant", "code already used")
            record.used = True
            self._check_code(record, redirect_uri, verifier)
            session, user = self._live_session(record.sid)
            grant = _Grant(
                grant_id=secrets.token_urlsafe(16),
                client_id=client.client_id,
                sid=session.sid,
                scope=record.request.scope,
                refresh_token=None,
            )
            self._grants[grant.grant_id] = grant
            record.grant_id = grant.grant_id
            return self._issue(grant, session, user, nonce=record.request.nonce)

    def _check_code(self, record: _Code, redirect_uri: str, verifier: str) -> None:
        if record.expires_at < self._clock():
            raise TokenError("invalid_grant", "code expired")
        if redirect_uri != record.request.redirect_uri:
            raise TokenError("invalid_grant", "redirect_uri differs from the authorization's")
        if not _VERIFIER.fullmatch(verifier) or not hmac.compare_digest(
            s256(verifier), record.request.code_challenge
        ):
            raise TokenError("invalid_grant", "code_verifier does not match the code_challenge")

    def _refresh(self, client: Client, values: dict[str, str]) -> dict[str, Any]:
        token = _required(values, "refresh_token")
        with self._lock:
            grant = self._grants.get(self._refresh_tokens.get(token, ""))
            if grant is None or grant.client_id != client.client_id:
                raise TokenError("invalid_grant", "unknown refresh token")
            if grant.revoked:
                raise TokenError("invalid_grant", "refresh token revoked")
            session, user = self._live_session(grant.sid)
            del self._refresh_tokens[token]
            return self._issue(grant, session, user, nonce=None)

    def _live_session(self, sid: str) -> tuple[_Session, _User]:
        # Caller holds the lock.
        session = self._sessions[sid]
        if session.ended:
            raise TokenError("invalid_grant", "the sign-in session has ended")
        user = self._users[session.sub]
        if user.disabled:
            raise TokenError("invalid_grant", "the user is disabled")
        return session, user

    def _issue(
        self, grant: _Grant, session: _Session, user: _User, *, nonce: str | None
    ) -> dict[str, Any]:
        # Caller holds the lock. The ID token says who the user is now
        # (groups, email), but how and when they authenticated then.
        now = self._clock()
        claims: dict[str, Any] = {
            "auth_time": session.auth_time,
            "sid": session.sid,
            "name": user.name,
            "groups": list(user.groups),
        }
        if nonce is not None:
            claims["nonce"] = nonce
        id_token = self._signer.id_token(
            audience=grant.client_id,
            subject=user.sub,
            email=user.email,
            amr=list(session.amr),
            now=now,
            ttl_seconds=self._id_token_ttl,
            claims=claims,
        )
        refresh_token = secrets.token_urlsafe(32)
        grant.refresh_token = refresh_token
        self._refresh_tokens[refresh_token] = grant.grant_id
        return {
            "access_token": secrets.token_urlsafe(32),
            "token_type": "Bearer",
            "expires_in": self._id_token_ttl,
            "id_token": id_token,
            "refresh_token": refresh_token,
            "scope": " ".join(grant.scope),
        }

    def _revoke(self, grant_id: str | None) -> None:
        # Caller holds the lock.
        grant = self._grants.get(grant_id or "")
        if grant is None:
            return
        grant.revoked = True
        if grant.refresh_token is not None:
            self._refresh_tokens.pop(grant.refresh_token, None)
            grant.refresh_token = None

    # -- sessions and logout -----------------------------------------------

    def end_sessions(self, sub: str) -> list[LogoutNotice]:
        """End every session of ``sub``; the back-channel notices to send."""
        with self._lock:
            live = [s for s in self._sessions.values() if s.sub == sub and not s.ended]
            return [notice for session in live for notice in self._end(session)]

    def logout(self, params: Params) -> tuple[Redirect | Page, list[LogoutNotice]]:
        """Answer RP-initiated logout: where the browser goes, and the notices to send."""
        try:
            client, sid, target = self._logout_request(params)
        except _PageError as refused:
            return Page(400, "Sign-out refused", refused.message), []
        with self._lock:
            session = self._sessions.get(sid or "")
            notices = self._end(session) if session and not session.ended else []
        if client is None or target is None:
            return Page(200, "Signed out", "You are signed out of the dev issuer."), notices
        state = _single_or_none(params, "state")
        return Redirect(_with_query(target, {} if state is None else {"state": state})), notices

    def _logout_request(self, params: Params) -> tuple[Client | None, str | None, str | None]:
        try:
            hint = _single_or_none(params, "id_token_hint", strict=True)
            client_id = _single_or_none(params, "client_id", strict=True)
            target = _single_or_none(params, "post_logout_redirect_uri", strict=True)
        except _AuthorizeError as error:
            raise _PageError(error.description) from None
        sid: str | None = None
        if hint is not None:
            claims = self._signer.own_claims(hint)
            if claims is None or claims.get("iss") != self.issuer:
                raise _PageError("id_token_hint is not an ID token from this issuer.")
            audience = claims.get("aud")
            if client_id is not None and client_id != audience:
                raise _PageError("client_id is not the id_token_hint's audience.")
            client_id, sid = str(audience), claims.get("sid")
        client = self.client(client_id) if client_id is not None else None
        if client_id is not None and client is None:
            raise _PageError("Unknown client_id.")
        if target is not None and (
            client is None or target not in client.post_logout_redirect_uris
        ):
            raise _PageError("post_logout_redirect_uri is not registered for this client.")
        return client, sid if isinstance(sid, str) else None, target

    def _end(self, session: _Session) -> list[LogoutNotice]:
        # Caller holds the lock. Ending the session stops its refresh tokens.
        session.ended = True
        for grant in self._grants.values():
            if grant.sid == session.sid:
                self._revoke(grant.grant_id)
        notices = []
        for client_id in sorted(session.clients):
            client = self._clients.get(client_id)
            if client is not None and client.backchannel_logout_uri is not None:
                notices.append(
                    LogoutNotice(client_id, client.backchannel_logout_uri, session.sub, session.sid)
                )
        return notices


def s256(verifier: str) -> str:
    """The PKCE S256 code challenge of ``verifier`` (RFC 7636 4.2)."""
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def _check_client(client: Client) -> None:
    if not client.client_id:
        raise ValueError("client_id is empty")
    if not client.redirect_uris:
        raise ValueError(f"{client.client_id}: at least one redirect_uri is required")
    for uri in (*client.redirect_uris, *client.post_logout_redirect_uris):
        parts = urlsplit(uri)
        if not parts.scheme or parts.fragment or "#" in uri:
            raise ValueError(f"{client.client_id}: {uri!r} must be absolute, with no fragment")
    if client.backchannel_logout_uri is not None:
        parts = urlsplit(client.backchannel_logout_uri)
        if parts.scheme not in ("http", "https") or not parts.hostname or parts.fragment:
            raise ValueError(f"{client.client_id}: backchannel_logout_uri must be http(s)")


def _single_or_none(params: Params, name: str, *, strict: bool = False) -> str | None:
    # RFC 6749 3.1: an empty parameter is an omitted one; a repeated one is an error.
    values = params.get(name, [])
    if len(values) > 1:
        if strict:
            raise _AuthorizeError("invalid_request", f"{name} is repeated")
        return None
    return values[0] if values and values[0] else None


def _values(params: Params) -> dict[str, str]:
    for name, values in params.items():
        if len(values) > 1:
            raise _AuthorizeError("invalid_request", f"{name} is repeated")
        if values and len(values[0]) > MAX_PARAMETER_LENGTH:
            raise _AuthorizeError("invalid_request", f"{name} is too long")
    return {name: values[0] for name, values in params.items() if values and values[0]}


def _token_values(form: Params) -> dict[str, str]:
    try:
        return _values(form)
    except _AuthorizeError as error:
        raise TokenError("invalid_request", error.description) from None


def _required(values: dict[str, str], name: str) -> str:
    if name not in values:
        raise TokenError("invalid_request", f"{name} is required")
    return values[name]


def _scope(requested: str | None) -> tuple[str, ...]:
    names = (requested or "").split()
    if "openid" not in names:
        raise _AuthorizeError("invalid_scope", "scope must include openid")
    # Unknown scopes are ignored, as RFC 6749 3.3 allows; the token response says which held.
    return tuple(dict.fromkeys(name for name in names if name in SCOPES))


def _code_challenge(values: dict[str, str]) -> str:
    challenge = values.get("code_challenge")
    if challenge is None:
        raise _AuthorizeError("invalid_request", "code_challenge is required (PKCE)")
    if values.get("code_challenge_method") != "S256":
        raise _AuthorizeError("invalid_request", "code_challenge_method must be S256")
    if not _S256_CHALLENGE.fullmatch(challenge):
        raise _AuthorizeError("invalid_request", "code_challenge is not an S256 challenge")
    return challenge


def _client_credentials(
    values: dict[str, str], authorization: str | None
) -> tuple[str, str | None]:
    """The client id and secret, from the Authorization header or the form (not both)."""
    basic = _basic_credentials(authorization)
    if basic is None:
        return values.get("client_id", ""), values.get("client_secret")
    if "client_secret" in values:
        raise TokenError("invalid_request", "more than one client authentication method")
    if values.get("client_id", basic[0]) != basic[0]:
        raise TokenError("invalid_request", "client_id differs from the credentials")
    return basic


def _basic_credentials(authorization: str | None) -> tuple[str, str] | None:
    if authorization is None:
        return None
    scheme, _, encoded = authorization.partition(" ")
    if scheme.lower() != "basic":
        raise TokenError("invalid_client", "only Basic client authentication")
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True).decode("utf-8")
    except ValueError:
        raise TokenError("invalid_client", "malformed Basic credentials") from None
    client_id, colon, secret = decoded.partition(":")
    if not colon:
        raise TokenError("invalid_client", "malformed Basic credentials")
    # RFC 6749 2.3.1: both parts are form-urlencoded before base64.
    return unquote_plus(client_id), unquote_plus(secret)


def _signed_in_user(form: Params) -> tuple[SignInForm, _User, str | None]:
    """Who the login form names, the form as typed, and why it is refused (or None)."""
    pick = _single_or_none(form, "pick")
    demo = next((user for user in DEMO_USERS if user.key == pick), None)
    if demo is not None:
        echoed = SignInForm(demo.sub, demo.email, demo.name, ",".join(demo.groups), demo.mfa)
        return echoed, _User(demo.sub, demo.email, demo.name, list(demo.groups)), None
    echoed = SignInForm(
        sub=(_single_or_none(form, "sub") or "").strip(),
        email=(_single_or_none(form, "email") or "").strip(),
        name=(_single_or_none(form, "name") or "").strip(),
        groups=_single_or_none(form, "groups") or "",
        mfa=_single_or_none(form, "mfa") is not None,
    )
    groups = list(dict.fromkeys(g.strip() for g in echoed.groups.split(",") if g.strip()))
    user = _User(echoed.sub, echoed.email or None, echoed.name or echoed.sub, groups)
    return echoed, user, _form_error(echoed, groups)


def _form_error(form: SignInForm, groups: list[str]) -> str | None:
    if not form.sub:
        return "Subject is required."
    texts = [form.sub, form.email, form.name, *groups]
    if any(len(text) > 255 or not text.isprintable() for text in texts):
        return "Fields must be printable and at most 255 characters."
    if form.email and not _EMAIL.fullmatch(form.email):
        return "Email is not an address."
    if len(groups) > 50:
        return "At most 50 groups."
    return None


def _with_query(uri: str, query: dict[str, str]) -> str:
    if not query:
        return uri
    return f"{uri}{'&' if urlsplit(uri).query else '?'}{urlencode(query)}"
