"""What passes between the gateway's stages: the request, its bookkeeping, the answer."""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class IncomingRequest:
    """An HTTP request as the gateway received it."""

    method: str
    raw_path: str
    raw_query: str
    headers: list[tuple[str, str]]
    body: bytes
    source_ip: str


@dataclass(frozen=True, slots=True)
class GatewayAnswer:
    """What the gateway sends back."""

    status: int
    headers: list[tuple[str, str]]
    body: bytes


@dataclass(slots=True)
class Exchange:
    """One request's identity and what its access-log line will say.

    Attributes
    ----------
    request_id:
        ``$context.requestId``: in the response headers, the events, the log.
    trace_id:
        The X-Ray trace header value (``Root=...``) API Gateway starts.
    started:
        ``time.monotonic()`` on arrival, for the response latency.
    facts:
        Access-log values by the format's keys, filled in as the request
        goes through the stages (a stage it never reached leaves its keys
        out, and they log as ``-``).
    """

    request_id: str
    trace_id: str
    started: float
    facts: dict[str, str] = field(default_factory=dict)

    @classmethod
    def begin(cls) -> Exchange:
        """A new request's ids, arrival time and ``requestTime``."""
        request_id = str(uuid.uuid4())
        trace_id = f"Root=1-{int(time.time()):08x}-{uuid.uuid4().hex[:24]}"
        facts = {"requestTime": str(int(time.time() * 1000))}
        return cls(request_id, trace_id, time.monotonic(), facts)


class GatewayError(Exception):
    """API Gateway answers by itself, with the gateway response of ``response_type``.

    Parameters
    ----------
    response_type:
        The gateway response type (``UNAUTHORIZED``, ``ACCESS_DENIED``, ...).
    message:
        ``$context.error.messageString``, when the type's template uses it.
    """

    def __init__(self, response_type: str, message: str = "") -> None:
        self.response_type = response_type
        self.message = message
        super().__init__(response_type)
