"""The sign-in routes under ``/.gatehouse/``: login, callback, refresh, logout, back-channel logout.

=====================================  =========================================================
``GET  /.gatehouse/login?rd=&idp=``    start a sign-in (or, with several providers, choose one)
``GET  /.gatehouse/callback``          the provider's answer: verify it, open a session
``GET  /.gatehouse/refresh?rd=``       ask the provider again (refresh token), then go back
``GET  /.gatehouse/logout``            a page that asks to sign out (sign-out is a POST)
``POST /.gatehouse/logout``            revoke the session, clear the cookie, sign out at the IdP
``POST /.gatehouse/backchannel-logout``  the provider says a person signed out there
``GET  /.gatehouse/signed-out``        where sign-out ends
=====================================  =========================================================

Every outcome that changes a session (signed in, sign-in failed, refreshed,
refresh failed, signed out, revoked by the provider) is a ``session`` audit
event, enqueued before the browser gets its answer: when the event cannot be
enqueued the browser gets 503 and no cookie.
"""

from __future__ import annotations

import hmac
import time
from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import TYPE_CHECKING
from urllib.parse import parse_qsl

from chalicelib.audit.schema import build_session_event
from chalicelib.audit.sections import SessionSection
from chalicelib.authenticate import pages
from chalicelib.authenticate.answers import (
    failure_message,
    json_answer,
    origin_of,
    query_parameters,
    redirect,
    short,
    with_cookies,
)
from chalicelib.authenticate.attempts import SignInAttempt
from chalicelib.authenticate.credentials import SessionEnded
from chalicelib.authenticate.errors import ProviderUnavailable, SignInFailed, TokenRequestRefused
from chalicelib.authenticate.id_tokens import verify_id_token
from chalicelib.authenticate.logout_tokens import (
    LogoutTokenRejected,
    SeenLogoutTokens,
    verify_logout_token,
)
from chalicelib.authenticate.return_to import safe_return_to
from chalicelib.identity import Identity
from chalicelib.reasons import Reason
from chalicelib.sessions import SessionError, SessionRejected, SessionsUnavailable
from chalicelib.sessions.cookies import (
    LOGIN_COOKIE,
    SESSION_COOKIE,
    CookieTooLarge,
    clear_cookie,
    cookie_values,
    set_cookie,
)
from chalicelib.sessions.model import BrowserSession, new_session_id

if TYPE_CHECKING:
    from chalicelib.apigw.events import GatewayRequest
    from chalicelib.apigw.responses import ProxyResponse
    from chalicelib.audit import AuditEmitter
    from chalicelib.authenticate.credentials import SessionCredentials
    from chalicelib.authenticate.provider import Provider, TokenResponse
    from chalicelib.config import SessionSettings
    from chalicelib.identity import TokenVerifier
    from chalicelib.sessions.keys import SessionKeySource
    from chalicelib.sessions.store import SessionStore

PREFIX = "/.gatehouse/"
CALLBACK_PATH = "/.gatehouse/callback"
SIGNED_OUT_PATH = "/.gatehouse/signed-out"
BACKCHANNEL_PATH = "/.gatehouse/backchannel-logout"
# The claims a session keeps apart from those it holds by name: protocol
# claims mean nothing after sign-in, and the rest is what policies match.
_PROTOCOL_CLAIMS = frozenset(
    {
        "iss", "sub", "aud", "exp", "iat", "nbf", "jti", "nonce", "at_hash", "c_hash",
        "s_hash", "azp", "sid", "auth_time", "amr", "acr", "email", "email_verified",
        "updated_at",
    }
)  # fmt: skip


class SignIn:
    """Serves the sign-in routes.

    Parameters
    ----------
    providers
        The identity providers people sign in through, by short name, in the
        stage's order.
    id_tokens
        Verifies ID tokens (and logout tokens): the bearer verifier's rules,
        with each provider's client id as the audience.
    keys, store, credentials
        Session keys, the session table, and the cookie reader.
    emitter
        Where session events go.
    settings
        Session lifetimes.
    base_url
        The gateway's public URL: every address sign-in sends a browser to
        starts with it, so no redirect can leave this gateway's origin.
    stage
        The stage's name, for audit events.
    """

    def __init__(
        self,
        *,
        providers: Mapping[str, Provider],
        id_tokens: TokenVerifier,
        keys: SessionKeySource,
        store: SessionStore,
        credentials: SessionCredentials,
        emitter: AuditEmitter,
        settings: SessionSettings,
        base_url: str,
        stage: str,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._providers = dict(providers)
        self._by_issuer = {p.issuer.issuer.rstrip("/"): p for p in self._providers.values()}
        self._id_tokens = id_tokens
        self._keys = keys
        self._store = store
        self._credentials = credentials
        self._emitter = emitter
        self._settings = settings
        self._base = base_url.rstrip("/")
        self._stage = stage
        self._clock = clock
        self._logout_tokens = SeenLogoutTokens()

    # ------------------------------------------------------------------ dispatch

    def handle(self, request: GatewayRequest) -> ProxyResponse:
        """Answer one request to a sign-in route."""
        route = (request.method, request.path)
        handlers: dict[tuple[str, str], Callable[[GatewayRequest], ProxyResponse]] = {
            ("GET", "/.gatehouse/login"): self.login,
            ("GET", CALLBACK_PATH): self.callback,
            ("GET", "/.gatehouse/refresh"): self.refresh,
            ("GET", "/.gatehouse/logout"): lambda _: pages.confirm_sign_out(self._base),
            ("POST", "/.gatehouse/logout"): self.logout,
            ("POST", BACKCHANNEL_PATH): self.backchannel_logout,
            ("GET", SIGNED_OUT_PATH): lambda _: pages.signed_out(self._base),
        }
        handler = handlers.get(route)
        if handler is None:
            return pages.page(404, "Not found", "<p>No such sign-in page.</p>")
        try:
            return handler(request)
        except SessionsUnavailable:
            return pages.page(503, "Sign-in unavailable", "<p>Please try again shortly.</p>")
        except SessionRejected:
            # The session ended under this step (revoked meanwhile, its stored
            # token unreadable): start again.
            return_to = safe_return_to(query_parameters(request).get("rd"))
            return redirect(pages.login_link(self._base, return_to), clear_cookie(SESSION_COOKIE))

    # ------------------------------------------------------------------ login

    def login(self, request: GatewayRequest) -> ProxyResponse:
        """Send the browser to its provider, with a sealed attempt in a cookie."""
        query = query_parameters(request)
        return_to = safe_return_to(query.get("rd"))
        idp = query.get("idp")
        if idp is None and len(self._providers) > 1:
            choices = [(name, p.issuer.display_name) for name, p in self._providers.items()]
            return pages.choose_provider(self._base, return_to, choices)
        provider = self._providers.get(idp) if idp else next(iter(self._providers.values()))
        if provider is None:
            return pages.failed(400, "Unknown identity provider.", self._base, return_to)
        attempt = SignInAttempt.start(provider.issuer.name, return_to, self._clock())
        try:
            location = provider.authorization_url(
                redirect_uri=self._base + CALLBACK_PATH,
                state=attempt.state,
                nonce=attempt.nonce,
                code_verifier=attempt.code_verifier,
            )
        except ProviderUnavailable:
            return pages.failed(
                503, "The identity provider cannot be reached.", self._base, return_to
            )
        value = attempt.seal(self._keys.keyring())
        return redirect(location, set_cookie(LOGIN_COOKIE, value, max_age=600))

    def callback(self, request: GatewayRequest) -> ProxyResponse:
        """Verify the provider's answer and open a session."""
        attempt: SignInAttempt | None = None
        try:
            attempt = SignInAttempt.open(
                cookie_values(request.headers.get_all("cookie"), LOGIN_COOKIE),
                self._keys,
                self._clock(),
            )
            session, value, tokens = self._complete(query_parameters(request), attempt)
        except SignInFailed as failure:
            return_to = attempt.return_to if attempt else "/"
            self._record(
                request,
                SessionSection("sign_in_failed", None, attempt.idp if attempt else None,
                               failure.reason.value, None, None, short(failure.detail)),
                failure.identity,
            )  # fmt: skip
            status = 503 if failure.reason is Reason.ISSUER_UNAVAILABLE else 401
            response = pages.failed(status, failure_message(failure.reason), self._base, return_to)
            return with_cookies(response, clear_cookie(LOGIN_COOKIE))
        try:
            self._store.create(
                session, refresh_token=tokens.refresh_token, id_token=tokens.id_token
            )
        except SessionError as exc:
            self._record(
                request,
                SessionSection("sign_in_failed", None, session.idp,
                               Reason.SESSIONS_UNAVAILABLE.value, None, None, short(str(exc))),
                session.identity(),
            )  # fmt: skip
            response = pages.failed(503, "Sign-in is unavailable; try again shortly.",
                                    self._base, attempt.return_to)  # fmt: skip
            return with_cookies(response, clear_cookie(LOGIN_COOKIE))
        self._record(
            request,
            SessionSection("signed_in", session.session_id, session.idp, None, None,
                           session.expires_at, None),
            session.identity(),
        )  # fmt: skip
        return redirect(
            self._base + attempt.return_to,
            set_cookie(SESSION_COOKIE, value, max_age=self._settings.max_seconds),
            clear_cookie(LOGIN_COOKIE),
        )

    def _complete(
        self, query: Mapping[str, str], attempt: SignInAttempt
    ) -> tuple[BrowserSession, str, TokenResponse]:
        """The provider's answer checked, the code exchanged, the ID token verified.

        Returns the new session, its sealed cookie value and the provider's tokens.

        Raises
        ------
        SignInFailed
            With the reason (and, once the ID token verified, its identity).
        """
        provider = self._providers.get(attempt.idp)
        if provider is None:
            raise SignInFailed(Reason.LOGIN_EXPIRED, f"provider {attempt.idp!r} is gone")
        if not _same(query.get("state", ""), attempt.state):
            raise SignInFailed(Reason.LOGIN_STATE_MISMATCH, "state does not match")
        if "error" in query:
            raise SignInFailed(Reason.LOGIN_IDP_ERROR, short(query["error"]))
        named = query.get("iss")
        if named is not None and named.rstrip("/") != provider.issuer.issuer.rstrip("/"):
            # RFC 9207: an answer from another provider (a mix-up attack).
            raise SignInFailed(Reason.LOGIN_IDP_ERROR, "the answer names another issuer")
        code = query.get("code")
        if not code:
            raise SignInFailed(Reason.LOGIN_IDP_ERROR, "no code")
        try:
            tokens = provider.exchange_code(
                code, redirect_uri=self._base + CALLBACK_PATH, code_verifier=attempt.code_verifier
            )
        except TokenRequestRefused as exc:
            raise SignInFailed(Reason.LOGIN_CODE_REJECTED, short(exc.error)) from exc
        except ProviderUnavailable as exc:
            raise SignInFailed(Reason.ISSUER_UNAVAILABLE, short(str(exc))) from exc
        assert tokens.id_token is not None  # exchange_code refuses an answer without one
        identity = self._verify_id_token(tokens.id_token, provider)
        nonce = identity.claims.get("nonce")
        if not isinstance(nonce, str) or not _same(nonce, attempt.nonce):
            raise SignInFailed(Reason.LOGIN_NONCE_MISMATCH, "nonce does not match", identity)
        session = self._new_session(identity, provider)
        try:
            value = self._keys.keyring().seal(session.to_payload(), purpose=SESSION_COOKIE)
        except CookieTooLarge as exc:
            raise SignInFailed(Reason.LOGIN_SESSION_TOO_LARGE, str(exc), identity) from exc
        return session, value, tokens

    # ------------------------------------------------------------------ refresh

    def refresh(self, request: GatewayRequest) -> ProxyResponse:
        """Ask the provider for the person's claims again, then go back where they were."""
        return_to = safe_return_to(query_parameters(request).get("rd"))
        try:
            session = self._credentials.session(
                request.headers.get_all("cookie"), refresh_due_ok=True
            )
        except SessionEnded as ended:
            # A genuine session that may not be refreshed (revoked, expired, idle).
            self._record(
                request,
                SessionSection("refresh_failed", ended.session.session_id, ended.session.idp,
                               ended.reason.value, None, ended.session.expires_at, None),
                ended.session.identity(),
            )  # fmt: skip
            return redirect(pages.login_link(self._base, return_to), clear_cookie(SESSION_COOKIE))
        except SessionRejected:
            return redirect(pages.login_link(self._base, return_to), clear_cookie(SESSION_COOKIE))
        provider = self._providers.get(session.idp)
        refresh_token = self._store.refresh_token(session.session_id) if provider else None
        if provider is None or refresh_token is None:
            # Nothing to refresh with: a new sign-in (usually instant: the
            # provider still has its own session).
            return redirect(pages.login_link(self._base, return_to, session.idp))
        try:
            tokens = provider.refresh(refresh_token)
            if tokens.id_token is None:
                # OIDC Core 12.2 lets a provider refresh without a new ID token:
                # nothing to decide on, so a new sign-in (this session ends).
                raise SignInFailed(Reason.MISSING_CLAIM, "the refresh returned no ID token")
            identity = self._verify_id_token(tokens.id_token, provider)
            if identity.subject != session.subject:
                raise SignInFailed(
                    Reason.INVALID_CLAIM, "the refreshed token names another subject"
                )
        except (TokenRequestRefused, SignInFailed, ProviderUnavailable) as exc:
            reason = (
                exc.reason
                if isinstance(exc, SignInFailed)
                else Reason.ISSUER_UNAVAILABLE
                if isinstance(exc, ProviderUnavailable)
                else Reason.LOGIN_CODE_REJECTED
            )
            self._record(
                request,
                SessionSection("refresh_failed", session.session_id, session.idp, reason.value,
                               None, session.expires_at, short(str(exc))),
                session.identity(),
            )  # fmt: skip
            if isinstance(exc, ProviderUnavailable):
                return pages.failed(
                    503, "The identity provider cannot be reached.", self._base, return_to
                )
            # The provider no longer vouches for this session: end it here too.
            self._revoke(session.session_id, by="idp", reason=Reason.SESSION_REVOKED,
                               expires_at=session.expires_at)  # fmt: skip
            return redirect(
                pages.login_link(self._base, return_to, session.idp), clear_cookie(SESSION_COOKIE)
            )
        now = self._clock()
        refreshed = replace(
            self._new_session(identity, provider, now=now),
            session_id=session.session_id,
            signed_in_at=session.signed_in_at,
            expires_at=session.expires_at,
        )
        try:
            value = self._keys.keyring().seal(refreshed.to_payload(), purpose=SESSION_COOKIE)
        except CookieTooLarge:
            return pages.failed(401, failure_message(Reason.LOGIN_SESSION_TOO_LARGE),
                                self._base, return_to)  # fmt: skip
        if tokens.refresh_token is not None and tokens.refresh_token != refresh_token:
            self._store.replace_refresh_token(session.session_id, tokens.refresh_token)
        self._record(
            request,
            SessionSection("refreshed", session.session_id, session.idp, None, None,
                           session.expires_at, None),
            refreshed.identity(),
        )  # fmt: skip
        max_age = max(0, int(refreshed.expires_at - now))
        return redirect(self._base + return_to, set_cookie(SESSION_COOKIE, value, max_age=max_age))

    # ------------------------------------------------------------------ logout

    def logout(self, request: GatewayRequest) -> ProxyResponse:
        """Revoke the session, clear its cookie, and sign out at the provider when it offers to."""
        origin = request.headers.get("origin")
        if origin is not None and origin.rstrip("/") != origin_of(self._base):
            # A cross-site form: SameSite=Lax keeps our cookie off it anyway,
            # but a sign-out is only ever asked for by our own page.
            return pages.page(403, "Forbidden", "<p>Sign-out must come from this site.</p>")
        signed_out = self._base + SIGNED_OUT_PATH
        cleared = clear_cookie(SESSION_COOKIE)
        try:
            session = self._credentials.session(
                request.headers.get_all("cookie"), refresh_due_ok=True
            )
        except SessionRejected:
            return redirect(signed_out, cleared)  # nothing live to end: just forget the cookie
        except SessionsUnavailable:
            return with_cookies(
                pages.page(503, "Sign-out unavailable", "<p>Please try again shortly.</p>"),
                cleared,
            )
        hint = self._store.id_token(session.session_id)
        self._revoke(session.session_id, by="user", reason=Reason.SESSION_REVOKED,
                           expires_at=session.expires_at)  # fmt: skip
        self._record(
            request,
            SessionSection("signed_out", session.session_id, session.idp, None, "user",
                           session.expires_at, None),
            session.identity(),
        )  # fmt: skip
        provider = self._providers.get(session.idp)
        at_provider = (
            provider.end_session_url(post_logout_redirect_uri=signed_out, id_token_hint=hint)
            if provider
            else None
        )
        return redirect(at_provider or signed_out, cleared)

    def backchannel_logout(self, request: GatewayRequest) -> ProxyResponse:
        """OIDC Back-Channel Logout 1.0: end the sessions a provider's logout token names."""
        try:
            form = parse_qsl(request.body.decode("utf-8", "replace"), max_num_fields=8)
        except ValueError:
            form = []
        tokens = [value for name, value in form if name == "logout_token"]
        try:
            if len(tokens) != 1:
                raise LogoutTokenRejected("exactly one logout_token is required")
            logout = verify_logout_token(
                tokens[0], self._id_tokens, self._by_issuer, self._logout_tokens, self._clock()
            )
        except LogoutTokenRejected as exc:
            self._record(
                request,
                SessionSection("idp_logout_refused", None, None, None, None, None,
                               short(exc.detail)),
                None,
            )  # fmt: skip
            return json_answer(400, {"error": "invalid_request", "error_description": exc.detail})
        provider = self._by_issuer[logout.issuer.rstrip("/")]
        ended = 0
        for stored in self._store.sessions_of(logout.issuer, logout.subject):
            if logout.idp_session_id is not None and stored.idp_session_id not in (
                None,
                logout.idp_session_id,
            ):
                continue  # another of the person's sessions at the provider
            if stored.signed_in_at > logout.issued_at:
                continue  # signed in after the provider's logout: not what it ended
            self._revoke(stored.session_id, by="idp", reason=Reason.SESSION_REVOKED,
                         expires_at=stored.expires_at)  # fmt: skip
            principal = Identity(
                issuer=logout.issuer,
                subject=logout.subject,
                audience=provider.client_id,
                expires_at=stored.expires_at,
                session_id=stored.idp_session_id,
                browser_session_id=stored.session_id,
            )
            self._record(
                request,
                SessionSection("idp_logged_out", stored.session_id, provider.issuer.name,
                               Reason.SESSION_REVOKED.value, "idp", stored.expires_at, None),
                principal,
            )  # fmt: skip
            ended += 1
        return json_answer(200, {"sessions_ended": ended})

    # ------------------------------------------------------------------ helpers

    def _revoke(self, session_id: str, *, by: str, reason: Reason, expires_at: int) -> None:
        """Revoke in the table (every container within its refresh) and here at once."""
        self._store.revoke(session_id, by=by, reason=reason, expires_at=expires_at)
        self._credentials.revoked_here(session_id)

    def _verify_id_token(self, token: str, provider: Provider) -> Identity:
        return verify_id_token(token, self._id_tokens, provider.issuer.issuer, provider.client_id)

    def _new_session(
        self, identity: Identity, provider: Provider, *, now: float | None = None
    ) -> BrowserSession:
        now = self._clock() if now is None else now
        claims = {
            name: value
            for name, value in identity.claims.items()
            if name not in _PROTOCOL_CLAIMS and name != provider.issuer.groups_claim
        }
        whole = int(now)
        return BrowserSession(
            session_id=new_session_id(),
            issuer=identity.issuer,
            idp=provider.issuer.name,
            client_id=provider.client_id,
            subject=identity.subject,
            email=identity.email,
            groups=tuple(sorted(identity.groups)),
            groups_claimed=identity.groups_claimed,
            amr=identity.amr,
            auth_time=identity.auth_time,
            idp_session_id=identity.session_id,
            claims=claims,
            signed_in_at=whole,
            seen_at=whole,
            refresh_at=whole + self._settings.refresh_seconds,
            expires_at=whole + self._settings.max_seconds,
        )

    def _record(
        self,
        request: GatewayRequest,
        section: SessionSection,
        identity: Identity | None,
    ) -> None:
        """Enqueue a session event (AuditUnavailable propagates: no audit, no answer)."""
        self._emitter.emit(
            build_session_event(section, stage=self._stage, identity=identity, request=request)
        )


def _same(given: str, expected: str) -> bool:
    """Constant-time equality of two texts, whatever characters ``given`` holds."""
    return hmac.compare_digest(given.encode("utf-8"), expected.encode("utf-8"))
