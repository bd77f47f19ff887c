"""Back-channel logout from the dev issuer (OpenID Connect Back-Channel Logout 1.0).

When a sign-in session ends, each relying party that took part in it and
registered a ``backchannel_logout_uri`` is sent a logout token: a JWT typed
``logout+jwt`` that names the session (``sid``) and the user (``sub``). The
issuer POSTs it, form-encoded, and waits briefly for the answer.
"""

from __future__ import annotations

import http.client
import logging
import secrets
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode, urlsplit

BACKCHANNEL_LOGOUT_EVENT = "http://schemas.openid.net/event/backchannel-logout"
LOGOUT_TOKEN_TTL_SECONDS = 120

_log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class LogoutNotice:
    """One logout token to send: session ``sid`` of ``sub`` ended, tell ``client_id``."""

    client_id: str
    uri: str
    sub: str
    sid: str


def logout_token_claims(notice: LogoutNotice, *, issuer: str, now: float) -> dict[str, Any]:
    """The claims of the logout token for ``notice`` (never a ``nonce``: spec 2.4)."""
    issued = int(now)
    return {
        "iss": issuer,
        "aud": notice.client_id,
        "iat": issued,
        "exp": issued + LOGOUT_TOKEN_TTL_SECONDS,
        "jti": secrets.token_urlsafe(16),
        "sub": notice.sub,
        "sid": notice.sid,
        "events": {BACKCHANNEL_LOGOUT_EVENT: {}},
    }


def deliver(
    notices: Iterable[LogoutNotice],
    *,
    issuer: str,
    sign: Callable[[dict[str, Any]], str],
    now: float,
    timeout_seconds: float,
) -> int:
    """Send each notice's logout token; return how many were answered 2xx.

    Parameters
    ----------
    notices
        What to send, one POST each, in order.
    issuer
        The ``iss`` claim.
    sign
        Signs a logout token's claims (the header's ``typ`` is the signer's job).
    now
        Epoch seconds, for ``iat`` and ``exp``.
    timeout_seconds
        Per POST; a relying party that does not answer in time counts as failed.
    """
    delivered = 0
    for notice in notices:
        token = sign(logout_token_claims(notice, issuer=issuer, now=now))
        if _post(notice.uri, {"logout_token": token}, timeout_seconds):
            delivered += 1
    return delivered


def _post(uri: str, form: dict[str, str], timeout_seconds: float) -> bool:
    # http.client rather than urllib: no proxy from the environment may see a
    # loopback relying party's traffic, and redirects must not be followed.
    parts = urlsplit(uri)
    connection_type = (
        http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
    )
    connection = connection_type(parts.netloc, timeout=timeout_seconds)
    target = parts.path or "/"
    if parts.query:
        target = f"{target}?{parts.query}"
    body = urlencode(form).encode("ascii")
    headers = {"Content-Type": "application/x-www-form-urlencoded"}
    try:
        connection.request("POST", target, body=body, headers=headers)
        status = connection.getresponse().status
    except (OSError, http.client.HTTPException) as error:
        # The URI is the relying party's and safe to log; the token is not.
        _log.warning("back-channel logout to %s failed: %s", uri, type(error).__name__)
        return False
    finally:
        connection.close()
    if not 200 <= status < 300:
        _log.warning("back-channel logout to %s answered %d", uri, status)
    return 200 <= status < 300
