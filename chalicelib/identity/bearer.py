"""The bearer token of a request: exactly one well-formed ``Authorization: Bearer`` value."""

from __future__ import annotations

import re
from collections.abc import Sequence

from chalicelib.identity.errors import TokenRejected
from chalicelib.reasons import Reason

_BEARER = re.compile(r"[Bb][Ee][Aa][Rr][Ee][Rr] +([A-Za-z0-9_.~+/=-]+) *")


def bearer_token(authorization: Sequence[str]) -> str:
    """The token of the request's ``Authorization`` header values.

    Raises
    ------
    TokenRejected
        ``missing_credentials`` without a Bearer Authorization header,
        ``malformed_token`` when there are several or it is not a token.
    """
    if not authorization:
        raise TokenRejected(Reason.MISSING_CREDENTIALS, "no Authorization header")
    if len(authorization) > 1:
        raise TokenRejected(Reason.MALFORMED_TOKEN, "more than one Authorization header")
    value = authorization[0]
    if not value[:7].lower().startswith("bearer"):
        raise TokenRejected(Reason.MISSING_CREDENTIALS, "Authorization is not a Bearer token")
    match = _BEARER.fullmatch(value)
    if match is None:
        raise TokenRejected(
            Reason.MALFORMED_TOKEN, "Authorization is not a well-formed Bearer token"
        )
    return match.group(1)
