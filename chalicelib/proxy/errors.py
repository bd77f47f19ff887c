"""Exceptions of the proxy package."""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from chalicelib.aws.errors import SigningError

if TYPE_CHECKING:
    from chalicelib.reasons import Reason


class ProxyError(Exception):
    """Base class for proxy failures."""


RecordedAs = Literal["response", "decision", "decided"]


class Refusal(ProxyError):
    """The proxy answers the request itself: no upstream answer reaches the client.

    One exception for every such answer, turned into a response and recorded
    in one place (the proxy's ``_record``).

    Parameters
    ----------
    status, message:
        The short JSON answer.
    reason:
        The reason code of the decision that refused it, if one did.
    error:
        What the response event's ``outcome.error`` says went wrong.
    detail:
        Free text for the decision section (never a secret).
    recorded_as:
        ``response``: a response event (the request reached the proxy and was
        answered here); ``decision``: a decision event (Gatehouse could not
        decide); ``decided``: the decision event that refused it is written already.
    """

    def __init__(
        self,
        status: int,
        message: str,
        *,
        reason: Reason | None = None,
        error: str | None = None,
        detail: str | None = None,
        recorded_as: RecordedAs = "response",
    ) -> None:
        super().__init__(f"{status} {message}")
        self.status = status
        self.message = message
        self.reason = reason
        self.error = error
        self.detail = detail
        self.recorded_as = recorded_as


class UpstreamError(ProxyError):
    """The upstream could not give a usable answer (the client gets 502 or 504)."""

    status = 502


class UpstreamTimeout(UpstreamError):
    """Connecting to or reading from the upstream timed out."""

    status = 504


class UpstreamUnavailable(UpstreamError):
    """The connection was refused, reset, or otherwise failed."""


class UpstreamRequestInvalid(UpstreamError):
    """The request cannot be expressed upstream (e.g. a header with a line break)."""

    status = 400


class UpstreamResponseTooLarge(UpstreamError):
    """The upstream's response does not fit in a Lambda response."""


# SigningError (the signing key's error) is chalicelib.aws's: the assertion is
# signed by a key of chalicelib.aws.signers, as the ledger's digests are.
__all__ = [
    "ProxyError",
    "Refusal",
    "SigningError",
    "UpstreamError",
    "UpstreamRequestInvalid",
    "UpstreamResponseTooLarge",
    "UpstreamTimeout",
    "UpstreamUnavailable",
]
