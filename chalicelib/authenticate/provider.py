"""One identity provider people sign in through: discovery, the code exchange, refresh, logout.

Authlib prepares the OAuth 2.0 messages (the authorization request with its
PKCE challenge, the token requests); the HTTP calls are Gatehouse's own,
with timeouts, size limits and no redirects followed, like every other call
to an issuer. ID tokens are not checked here: the sign-in handler verifies
them with the same :class:`~chalicelib.identity.TokenVerifier` (and reason
codes) as bearer tokens.
"""

from __future__ import annotations

import base64
import http.client
import json
import threading
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlencode

from authlib.oauth2.rfc6749.parameters import prepare_grant_uri, prepare_token_request
from authlib.oauth2.rfc7636 import create_s256_code_challenge

from chalicelib.authenticate.errors import ProviderUnavailable, TokenRequestRefused
from chalicelib.identity.jwks import FetchError

if TYPE_CHECKING:
    from chalicelib.config import TrustedIssuer
    from chalicelib.identity.jwks import FetchJson

_MAX_TOKEN_RESPONSE_BYTES = 256 * 1024


@dataclass(frozen=True, slots=True)
class Endpoints:
    """What the provider's discovery document says (OIDC Discovery 1.0)."""

    authorization: str
    token: str
    end_session: str | None


@dataclass(frozen=True, slots=True)
class TokenResponse:
    """A token endpoint's successful answer: the parts Gatehouse uses.

    ``id_token`` is None only for a refresh (OIDC Core 12.2 lets a provider
    leave it out there); a code exchange without one is refused.
    """

    id_token: str | None
    refresh_token: str | None


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    # A token endpoint that redirects is misconfigured or compromised: the
    # code and the client's secret must not follow it anywhere.
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


class Provider:
    """An OIDC provider of the stage, as a relying party sees it.

    Parameters
    ----------
    issuer
        The trusted issuer (with a ``client_id``).
    fetch_json
        GETs a discovery document (the JWKS cache's fetcher).
    client_secret
        Returns the client's secret (read from Secrets Manager on first use),
        or None for a public client.
    timeout_seconds
        Timeout of each call to the provider.
    """

    def __init__(
        self,
        issuer: TrustedIssuer,
        fetch_json: FetchJson,
        *,
        client_secret: Callable[[], str | None],
        timeout_seconds: float,
    ) -> None:
        assert issuer.client_id is not None  # only issuers that offer sign-in become providers
        self.issuer = issuer
        self.client_id: str = issuer.client_id
        self._fetch_json = fetch_json
        self._client_secret = client_secret
        self._timeout = timeout_seconds
        self._endpoints: Endpoints | None = None
        self._lock = threading.Lock()
        self._opener = urllib.request.build_opener(_NoRedirects)

    def endpoints(self) -> Endpoints:
        """The provider's endpoints, discovered once per container.

        Raises
        ------
        ProviderUnavailable
            When discovery fails or names another issuer or insecure endpoints.
        """
        if self._endpoints is None:
            with self._lock:
                if self._endpoints is None:
                    self._endpoints = self._discover()
        return self._endpoints

    def _discover(self) -> Endpoints:
        url = self.issuer.issuer.rstrip("/") + "/.well-known/openid-configuration"
        try:
            document = self._fetch_json(url)
        except FetchError as exc:
            raise ProviderUnavailable(str(exc)) from exc
        if not isinstance(document, dict) or document.get("issuer") != self.issuer.issuer:
            raise ProviderUnavailable(f"{url} does not describe issuer {self.issuer.issuer}")
        # An https issuer keeps every endpoint behind https; plain http only
        # for an issuer that is itself plain http (the local stack).
        secure = (
            ("https://",) if self.issuer.issuer.startswith("https://") else ("https://", "http://")
        )
        authorization = document.get("authorization_endpoint")
        token = document.get("token_endpoint")
        end_session = document.get("end_session_endpoint")
        for name, value in (("authorization_endpoint", authorization), ("token_endpoint", token)):
            if not isinstance(value, str) or not value.startswith(secure):
                raise ProviderUnavailable(f"{url} has no usable {name}")
        if not (isinstance(end_session, str) and end_session.startswith(secure)):
            end_session = None
        methods = document.get("code_challenge_methods_supported")
        if isinstance(methods, list) and "S256" not in methods:
            raise ProviderUnavailable(f"{url}: the provider does not support PKCE with S256")
        assert isinstance(authorization, str) and isinstance(token, str)  # checked above
        return Endpoints(authorization, token, end_session)

    def authorization_url(
        self, *, redirect_uri: str, state: str, nonce: str, code_verifier: str
    ) -> str:
        """Where to send the browser: an authorization code request with PKCE (S256)."""
        return str(
            prepare_grant_uri(
                self.endpoints().authorization,
                client_id=self.client_id,
                response_type="code",
                redirect_uri=redirect_uri,
                scope=" ".join(self.issuer.scopes),
                state=state,
                nonce=nonce,
                code_challenge=create_s256_code_challenge(code_verifier),
                code_challenge_method="S256",
            )
        )

    def exchange_code(self, code: str, *, redirect_uri: str, code_verifier: str) -> TokenResponse:
        """Trade an authorization code for tokens.

        Raises
        ------
        TokenRequestRefused
            The provider refused the code (``.error`` is its OAuth error code).
        ProviderUnavailable
            The provider could not be reached or answered nonsense.
        """
        body = prepare_token_request(
            "authorization_code",
            code=code,
            redirect_uri=redirect_uri,
            code_verifier=code_verifier,
            **self._public_client_id(),
        )
        tokens = self._token_request(body)
        if tokens.id_token is None:
            raise ProviderUnavailable(
                f"token endpoint {self.endpoints().token} returned no id_token"
            )
        return tokens

    def refresh(self, refresh_token: str) -> TokenResponse:
        """New tokens for a refresh token (the ID token's claims as the provider sees them now).

        Raises
        ------
        TokenRequestRefused
            The provider refused (the person signed out there, was disabled...).
        ProviderUnavailable
            The provider could not be reached or answered nonsense.
        """
        body = prepare_token_request(
            "refresh_token", refresh_token=refresh_token, **self._public_client_id()
        )
        return self._token_request(body)

    def end_session_url(
        self, *, post_logout_redirect_uri: str, id_token_hint: str | None = None
    ) -> str | None:
        """The provider's RP-initiated logout address, when its discovery offers one."""
        try:
            end_session = self.endpoints().end_session
        except ProviderUnavailable:
            return None
        if end_session is None:
            return None
        parameters = {
            "client_id": self.client_id,
            "post_logout_redirect_uri": post_logout_redirect_uri,
        }
        if id_token_hint:
            parameters["id_token_hint"] = id_token_hint
        separator = "&" if "?" in end_session else "?"
        return end_session + separator + urlencode(parameters, quote_via=quote)

    def _public_client_id(self) -> dict[str, str]:
        # A confidential client authenticates with HTTP Basic (below); a
        # public one names itself in the body (RFC 6749 3.2.1).
        return {} if self._client_secret() else {"client_id": self.client_id}

    def _token_request(self, body: str) -> TokenResponse:
        headers = {
            "Content-Type": "application/x-www-form-urlencoded",
            "Accept": "application/json",
        }
        secret = self._client_secret()
        if secret:
            # RFC 6749 2.3.1: both parts form-encoded before they are joined.
            pair = f"{quote(self.client_id, safe='')}:{quote(secret, safe='')}"
            headers["Authorization"] = "Basic " + base64.b64encode(pair.encode()).decode("ascii")
        url = self.endpoints().token
        request = urllib.request.Request(  # noqa: S310 (the scheme was checked at discovery)
            url, data=body.encode("ascii"), headers=headers, method="POST"
        )
        try:
            with self._opener.open(request, timeout=self._timeout) as response:
                status, payload = response.status, response.read(_MAX_TOKEN_RESPONSE_BYTES + 1)
        except urllib.error.HTTPError as exc:
            status, payload = exc.code, exc.read(_MAX_TOKEN_RESPONSE_BYTES + 1)
        except (urllib.error.URLError, OSError, ValueError, http.client.HTTPException) as exc:
            raise ProviderUnavailable(f"token endpoint {url}: {exc}") from exc
        document = _json_object(payload)
        if status != 200:
            error = document.get("error") if document else None
            if 400 <= status < 500 and isinstance(error, str):
                raise TokenRequestRefused(error[:64])
            raise ProviderUnavailable(f"token endpoint {url} answered HTTP {status}")
        id_token = document.get("id_token") if document else None
        refresh_token = document.get("refresh_token") if document else None
        return TokenResponse(
            id_token if isinstance(id_token, str) and id_token else None,
            refresh_token if isinstance(refresh_token, str) and refresh_token else None,
        )


def _json_object(payload: bytes) -> Mapping[str, Any] | None:
    if len(payload) > _MAX_TOKEN_RESPONSE_BYTES:
        return None
    try:
        document = json.loads(payload)
    except ValueError:
        return None
    return document if isinstance(document, dict) else None
