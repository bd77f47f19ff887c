"""A route's upstream URL, parsed once into where to connect and the base path.

The proxy builds each request target from these parts and the request's
canonical path (:class:`chalicelib.policy.RequestTarget`); it never joins a
URL and parses it again, so no character of the path can move into the
query, the fragment or the authority on the way.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from urllib.parse import urlsplit


class InvalidUpstream(ValueError):
    """An upstream URL that is not ``http(s)://host[:port][/base]``."""


@dataclass(frozen=True, slots=True)
class Origin:
    """Where to connect: scheme, host and port."""

    scheme: str
    host: str
    port: int

    @property
    def url(self) -> str:
        """``scheme://host:port``, for signers that want a URL."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.scheme}://{host}:{self.port}"


@dataclass(frozen=True, slots=True)
class Upstream:
    """A parsed upstream: its origin, and the path every request target starts with."""

    origin: Origin
    base_path: str


@lru_cache(maxsize=256)
def parse_upstream(url: str) -> Upstream:
    """Parse a route's ``upstream`` (validated with the policy; parsed once per URL).

    Raises
    ------
    InvalidUpstream
        When ``url`` is not an http(s) URL with a host, or has a query or fragment.
    """
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise InvalidUpstream(f"unusable upstream URL: {exc}") from exc
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise InvalidUpstream(f"unsupported upstream URL scheme {parts.scheme!r}")
    if parts.query or parts.fragment or "?" in url or "#" in url:
        raise InvalidUpstream("an upstream URL has no query or fragment")
    default_port = 443 if parts.scheme == "https" else 80
    origin = Origin(parts.scheme, parts.hostname, port or default_port)
    return Upstream(origin, parts.path.rstrip("/"))
