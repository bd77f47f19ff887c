"""The proxy's part of browser sign-in: send a browser to sign in, renew a session's last use."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING
from urllib.parse import quote, urlencode

from chalicelib.apigw.responses import ProxyResponse
from chalicelib.authenticate.pages import login_link
from chalicelib.authenticate.return_to import safe_return_to
from chalicelib.reasons import Reason
from chalicelib.sessions.cookies import SESSION_COOKIE, clear_cookie

if TYPE_CHECKING:
    from chalicelib.apigw.events import GatewayRequest
    from chalicelib.authenticate.credentials import SessionCredentials

# A cookie that can never work again is cleared on the way to sign in.
_DEAD_COOKIE = frozenset(
    {
        Reason.SESSION_INVALID,
        Reason.SESSION_EXPIRED,
        Reason.SESSION_IDLE,
        Reason.SESSION_REVOKED,
    }
)
_PATH_CHARACTERS = "/:@!$&'()*+,;=-._~%"


class BrowserRedirects:
    """The proxy's part of browser sign-in.

    Parameters
    ----------
    credentials
        Reads and re-seals session cookies.
    base_url
        The gateway's public URL (every redirect starts with it).
    """

    def __init__(self, credentials: SessionCredentials, base_url: str) -> None:
        self._credentials = credentials
        self._base = base_url.rstrip("/")

    def redirect(self, request: GatewayRequest, reason: str) -> ProxyResponse:
        """Where a browser without usable credentials goes: sign in, or refresh its session."""
        here = quote(request.path, safe=_PATH_CHARACTERS)
        if request.query:
            here += "?" + urlencode(request.query, quote_via=quote)
        return_to = safe_return_to(here)
        try:
            known = Reason(reason)
        except ValueError:
            known = Reason.MISSING_CREDENTIALS
        if known is Reason.SESSION_REFRESH_REQUIRED:
            target = f"{self._base}/.gatehouse/refresh?rd={quote(return_to, safe='/')}"
        else:
            target = login_link(self._base, return_to)
        headers = {"Location": [target], "Cache-Control": ["no-store"]}
        if known in _DEAD_COOKIE:
            headers["Set-Cookie"] = [clear_cookie(SESSION_COOKIE)]
        return ProxyResponse(302, headers, b"")

    def renewed_cookie(self, cookie_headers: Sequence[str], session_id: str) -> str | None:
        """A Set-Cookie moving the session's last use to now, when one is due."""
        return self._credentials.renewed_cookie(cookie_headers, session_id)
