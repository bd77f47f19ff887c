"""The HTTP client towards upstreams: pooled, keep-alive, no redirects, no retries.

urllib3 is imported when the first request is sent, so the authorizer (which
shares ``app.py`` with the proxy) never pays for it. Bodies pass through as
bytes in both directions: nothing is decoded, decompressed or re-encoded.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from chalicelib.proxy.errors import (
    UpstreamResponseTooLarge,
    UpstreamTimeout,
    UpstreamUnavailable,
)

_BODYLESS = frozenset({"GET", "HEAD", "DELETE", "OPTIONS"})


@dataclass(frozen=True, slots=True)
class UpstreamResponse:
    """What the upstream answered."""

    status: int
    headers: list[tuple[str, str]]
    body: bytes
    elapsed_ms: float


class UpstreamClient:
    """Sends requests to upstreams over pooled keep-alive connections.

    Parameters
    ----------
    connect_timeout, read_timeout:
        Seconds; the read timeout applies between bytes received.
    max_response_bytes:
        Larger response bodies are refused (Lambda's 6 MB payload limit).
    """

    def __init__(
        self, *, connect_timeout: float, read_timeout: float, max_response_bytes: int
    ) -> None:
        self._connect_timeout = connect_timeout
        self._read_timeout = read_timeout
        self._max_response_bytes = max_response_bytes
        self._pool: Any = None

    def _pool_manager(self) -> Any:
        if self._pool is None:
            import urllib3

            self._pool = urllib3.PoolManager(
                num_pools=32,
                maxsize=8,
                retries=False,
                timeout=urllib3.Timeout(connect=self._connect_timeout, read=self._read_timeout),
            )
        return self._pool

    def send(
        self, method: str, url: str, headers: Sequence[tuple[str, str]], body: bytes
    ) -> UpstreamResponse:
        """Send one request and read the whole response.

        Raises
        ------
        UpstreamTimeout
            Connecting or reading took too long.
        UpstreamUnavailable
            The connection failed or broke.
        UpstreamResponseTooLarge
            The body exceeds ``max_response_bytes``.
        """
        import urllib3
        from urllib3.exceptions import HTTPError, NewConnectionError
        from urllib3.exceptions import TimeoutError as Urllib3Timeout

        header_dict = urllib3.HTTPHeaderDict()
        for name, value in headers:
            header_dict.add(name, value)
        started = time.perf_counter()
        try:
            response = self._pool_manager().request(
                method,
                url,
                body=body if body or method not in _BODYLESS else None,
                headers=header_dict,
                redirect=False,
                retries=False,
                preload_content=False,
                decode_content=False,
            )
            payload = self._read_body(response)
        except (
            NewConnectionError
        ) as exc:  # refused or unresolvable: a subclass of timeout in urllib3
            raise UpstreamUnavailable(f"upstream unreachable: {type(exc).__name__}") from exc
        except Urllib3Timeout as exc:
            raise UpstreamTimeout(f"upstream timed out: {type(exc).__name__}") from exc
        except (HTTPError, OSError) as exc:
            raise UpstreamUnavailable(f"upstream failed: {type(exc).__name__}") from exc
        elapsed_ms = (time.perf_counter() - started) * 1000
        response_headers = [
            (name, value) for name in response.headers for value in response.headers.getlist(name)
        ]
        return UpstreamResponse(response.status, response_headers, payload, elapsed_ms)

    def _read_body(self, response: Any) -> bytes:
        limit = self._max_response_bytes
        chunks: list[bytes] = []
        received = 0
        while True:
            chunk = response.read(min(limit + 1 - received, 1 << 20), decode_content=False)
            if not chunk:
                break
            chunks.append(chunk)
            received += len(chunk)
            if received > limit:
                # Do not return a half-read connection to the pool.
                response.close()
                raise UpstreamResponseTooLarge(f"upstream response exceeds {limit} bytes")
        response.release_conn()
        return b"".join(chunks)
