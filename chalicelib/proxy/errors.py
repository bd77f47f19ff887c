"""Exceptions of the proxy package."""

from __future__ import annotations


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


class SigningError(ProxyError):
    """The identity assertion could not be signed."""
