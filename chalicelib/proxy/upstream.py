"""The HTTP client towards upstreams: pooled keep-alive, no redirects, no retries.

Built on ``http.client`` directly: per request it costs a fraction of a
general-purpose client (the proxy's latency budget is 150 µs), it sends
headers and body in one write, and it does nothing behind our back: no
redirects, no retries, no decompression, no re-encoding. Bodies pass through
as bytes in both directions; chunked responses are de-chunked (API Gateway
frames the response again).

A pooled connection is reused only if the upstream has not closed it while
idle; a request is never retried, because it may have been processed.
"""

from __future__ import annotations

import http.client
import select
import socket
import ssl
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from chalicelib.proxy.errors import (
    UpstreamRequestInvalid,
    UpstreamResponseTooLarge,
    UpstreamTimeout,
    UpstreamUnavailable,
)
from chalicelib.proxy.origin import Origin

if TYPE_CHECKING:
    from chalicelib.proxy.origin import Origin

_BODYLESS = frozenset({"GET", "HEAD", "DELETE", "OPTIONS"})
_READ_CHUNK = 1 << 20


@dataclass(frozen=True, slots=True)
class UpstreamResponse:
    """What the upstream answered."""

    status: int
    headers: list[tuple[str, str]]
    body: bytes
    elapsed_ms: float


class _Pool:
    """Idle keep-alive connections to one origin."""

    def __init__(self, origin: Origin, maxsize: int) -> None:
        self.origin = origin
        self._idle: list[http.client.HTTPConnection] = []
        self._maxsize = maxsize
        self._lock = threading.Lock()

    def take(self) -> http.client.HTTPConnection | None:
        with self._lock:
            while self._idle:
                connection = self._idle.pop()
                if _still_open(connection):
                    return connection
                connection.close()
        return None

    def give_back(self, connection: http.client.HTTPConnection) -> None:
        with self._lock:
            if len(self._idle) < self._maxsize:
                self._idle.append(connection)
                return
        connection.close()

    def close(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, []
        for connection in idle:
            connection.close()


def _limit_wait(connection: http.client.HTTPConnection, deadline: float) -> None:
    """Make the next socket read give up at ``deadline``."""
    remaining = deadline - time.monotonic()
    if remaining <= 0:
        raise TimeoutError("upstream exchange exceeded its deadline")
    if connection.sock is not None:
        connection.sock.settimeout(remaining)


def _still_open(connection: http.client.HTTPConnection) -> bool:
    """An idle connection is usable only if nothing (EOF, stray bytes) is waiting on it."""
    sock = connection.sock
    if sock is None:
        return False
    try:
        readable, _, _ = select.select([sock], [], [], 0)
    except (OSError, ValueError):
        return False
    return not readable


class UpstreamClient:
    """Sends requests to upstreams over pooled keep-alive connections.

    Parameters
    ----------
    connect_timeout, read_timeout:
        Seconds; the read timeout bounds the whole exchange after connecting.
    max_response_bytes:
        Larger response bodies are refused (Lambda's 6 MB payload limit).
    pool_size:
        Idle connections kept per origin.
    """

    def __init__(
        self,
        *,
        connect_timeout: float,
        read_timeout: float,
        max_response_bytes: int,
        pool_size: int = 8,
    ) -> None:
        self._connect_timeout = connect_timeout
        self._read_timeout = read_timeout
        self._max_response_bytes = max_response_bytes
        self._pool_size = pool_size
        self._pools: dict[Origin, _Pool] = {}
        self._pools_lock = threading.Lock()
        self._tls: ssl.SSLContext | None = None

    def send(
        self,
        method: str,
        origin: Origin,
        target: str,
        headers: Sequence[tuple[str, str]],
        body: bytes,
    ) -> UpstreamResponse:
        """Send one request to ``origin`` and read the whole response.

        ``target`` is the request target (path and query) exactly as sent:
        nothing here parses or re-encodes it.

        Raises
        ------
        UpstreamTimeout
            Connecting or reading took too long.
        UpstreamUnavailable
            The connection was refused, reset or otherwise failed.
        UpstreamResponseTooLarge
            The body exceeds ``max_response_bytes``.
        """
        pool = self._pool_for(origin)
        started = time.perf_counter()
        # One deadline for the whole exchange: a read timeout alone would let an
        # upstream that drips a byte at a time hold the Lambda past its limit.
        deadline = time.monotonic() + self._read_timeout
        connection = pool.take() or self._connect(pool.origin)
        try:
            connection.putrequest(method, target, skip_accept_encoding=True)
            for name, value in headers:
                connection.putheader(name, value)
            if body or method not in _BODYLESS:
                connection.putheader("Content-Length", str(len(body)))
            connection.endheaders(body or None)  # one write for headers and body
            _limit_wait(connection, deadline)
            response = connection.getresponse()
            if response.status < 200:
                # http.client swallows 100 Continue but returns any other 1xx
                # (103 Early Hints) as if final; the real answer would then be
                # read by the next request on this connection. Never pool it.
                raise UpstreamUnavailable(f"upstream sent an interim {response.status} response")
            payload = self._read_body(response, connection, deadline)
        except UpstreamUnavailable:
            connection.close()
            raise
        except TimeoutError as exc:
            connection.close()
            raise UpstreamTimeout("upstream did not answer in time") from exc
        except UpstreamResponseTooLarge:
            connection.close()  # never pool a half-read connection
            raise
        except ValueError as exc:  # http.client refuses header names/values with CR, LF, NUL
            connection.close()
            raise UpstreamRequestInvalid(f"request cannot be sent upstream: {exc}") from exc
        except (OSError, http.client.HTTPException) as exc:
            connection.close()
            raise UpstreamUnavailable(f"upstream failed: {type(exc).__name__}") from exc
        elapsed_ms = (time.perf_counter() - started) * 1000
        if response.will_close:
            connection.close()
        else:
            pool.give_back(connection)
        return UpstreamResponse(response.status, response.getheaders(), payload, elapsed_ms)

    def close(self) -> None:
        """Close every idle connection."""
        with self._pools_lock:
            pools = list(self._pools.values())
        for pool in pools:
            pool.close()

    def _pool_for(self, origin: Origin) -> _Pool:
        if origin.scheme not in ("http", "https"):
            raise UpstreamUnavailable(f"unsupported upstream URL scheme {origin.scheme!r}")
        pool = self._pools.get(origin)
        if pool is None:
            with self._pools_lock:
                pool = self._pools.setdefault(origin, _Pool(origin, self._pool_size))
        return pool

    def _connect(self, origin: Origin) -> http.client.HTTPConnection:
        connection: http.client.HTTPConnection
        if origin.scheme == "https":
            if self._tls is None:
                self._tls = ssl.create_default_context()
            connection = http.client.HTTPSConnection(
                origin.host, origin.port, timeout=self._connect_timeout, context=self._tls
            )
        else:
            connection = http.client.HTTPConnection(
                origin.host, origin.port, timeout=self._connect_timeout
            )
        try:
            connection.connect()
        except TimeoutError as exc:
            connection.close()
            raise UpstreamTimeout("connecting to the upstream timed out") from exc
        except OSError as exc:  # refused, unreachable, DNS, TLS
            connection.close()
            raise UpstreamUnavailable(f"upstream unreachable: {type(exc).__name__}") from exc
        assert connection.sock is not None  # connected above
        connection.sock.settimeout(self._read_timeout)
        connection.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return connection

    def _read_body(
        self,
        response: http.client.HTTPResponse,
        connection: http.client.HTTPConnection,
        deadline: float,
    ) -> bytes:
        limit = self._max_response_bytes
        chunks: list[bytes] = []
        received = 0
        while True:
            _limit_wait(connection, deadline)
            # read1: at most one recv, so the deadline is checked between them
            chunk = response.read1(min(limit + 1 - received, _READ_CHUNK))
            if not chunk:
                # read1 stops at the end of the body without marking the
                # response finished; read() does, so the connection can be reused.
                response.read()
                return b"".join(chunks)
            chunks.append(chunk)
            received += len(chunk)
            if received > limit:
                raise UpstreamResponseTooLarge(f"upstream response exceeds {limit} bytes")
