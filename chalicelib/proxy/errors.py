"""Exceptions of the proxy package."""

from __future__ import annotations

from chalicelib.aws.errors import SigningError


class ProxyError(Exception):
    """Base class for proxy failures."""


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
    "SigningError",
    "UpstreamError",
    "UpstreamRequestInvalid",
    "UpstreamResponseTooLarge",
    "UpstreamTimeout",
    "UpstreamUnavailable",
]
