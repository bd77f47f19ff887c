"""API Gateway REST (v1) events, parsed once into typed views.

Both the REQUEST authorizer event and the Lambda proxy event carry the same
request facts (request id, source IP, headers, query); :class:`GatewayRequest`
is that common view. Headers keep every value (``multiValueHeaders``) and
their original spelling; lookups ignore case.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from chalicelib.readable import unreadable_character


class MalformedEvent(ValueError):
    """The Lambda event is not an API Gateway REST event we understand."""


class Headers:
    """An ordered, case-insensitive multi-map of HTTP headers."""

    __slots__ = ("_index", "_multi")

    def __init__(self, multi: dict[str, list[str]]) -> None:
        self._multi = multi
        self._index: dict[str, list[str]] = {}
        for name, values in multi.items():
            lowered = name.lower()
            if lowered in self._index:
                self._index[lowered] = self._index[lowered] + values
            else:
                self._index[lowered] = values

    @classmethod
    def from_pairs(cls, pairs: list[tuple[str, str]]) -> Headers:
        """Build from (name, value) pairs."""
        multi: dict[str, list[str]] = {}
        for name, value in pairs:
            multi.setdefault(name, []).append(value)
        return cls(multi)

    @classmethod
    def from_event(cls, event: Mapping[str, Any]) -> Headers:
        """Build from ``multiValueHeaders`` (falling back to ``headers``)."""
        multi = event.get("multiValueHeaders")
        if isinstance(multi, dict) and multi:
            return cls({str(name): [str(v) for v in vs or ()] for name, vs in multi.items()})
        single = event.get("headers") or {}
        return cls({str(name): [str(value)] for name, value in single.items()})

    def get(self, name: str) -> str | None:
        """The first value of ``name``, or None."""
        values = self._index.get(name.lower())
        return values[0] if values else None

    def get_all(self, name: str) -> list[str]:
        """Every value of ``name``, in order."""
        return list(self._index.get(name.lower(), ()))

    def __iter__(self) -> Iterator[tuple[str, str]]:
        for name, values in self._multi.items():
            for value in values:
                yield name, value


JUSTIFICATION_HEADER = "x-gatehouse-justification"


@dataclass(frozen=True, slots=True)
class GatewayRequest:
    """The facts of one request as API Gateway reports them."""

    request_id: str
    extended_request_id: str | None
    stage: str
    method: str
    path: str
    resource: str
    source_ip: str
    host: str
    headers: Headers
    query: tuple[tuple[str, str], ...]
    method_arn: str | None = None
    body: bytes = b""
    authorizer: Mapping[str, Any] = field(default_factory=dict)

    @property
    def user_agent(self) -> str | None:
        """The caller's User-Agent header."""
        return self.headers.get("user-agent")

    @property
    def justification(self) -> str | None:
        """The break-glass justification the caller sent: exactly one non-blank header.

        A value with control, format (bidi) or separator characters counts as
        none (:mod:`chalicelib.readable`): it would be one line in every view
        of the trail, and no honest client sends one.
        """
        values = self.headers.get_all(JUSTIFICATION_HEADER)
        if len(values) != 1 or not values[0].strip() or unreadable_character(values[0]) is not None:
            return None
        return values[0].strip()

    @property
    def trace_id(self) -> str | None:
        """The X-Ray trace header API Gateway adds."""
        return self.headers.get("x-amzn-trace-id")


def parse_authorizer_event(event: Mapping[str, Any]) -> GatewayRequest:
    """Parse a REQUEST authorizer event.

    Raises
    ------
    MalformedEvent
        When required members are missing (the event is not a REQUEST one).
    """
    if event.get("type") != "REQUEST":
        raise MalformedEvent(f"not a REQUEST authorizer event (type={event.get('type')!r})")
    method_arn = event.get("methodArn")
    if not isinstance(method_arn, str):
        raise MalformedEvent("authorizer event has no methodArn")
    return _parse_common(event, method_arn=method_arn)


def parse_proxy_event(event: Mapping[str, Any]) -> GatewayRequest:
    """Parse a Lambda proxy integration event (REST API, payload v1).

    Raises
    ------
    MalformedEvent
        When required members are missing or the body is not valid base64.
    """
    body = event.get("body")
    raw = b""
    if body is not None:
        if not isinstance(body, str):
            raise MalformedEvent("body is not a string")
        if event.get("isBase64Encoded"):
            try:
                raw = base64.b64decode(body, validate=True)
            except binascii.Error as exc:
                raise MalformedEvent("body is not valid base64") from exc
        else:
            raw = body.encode("utf-8")
    context = event.get("requestContext") or {}
    authorizer = context.get("authorizer") if isinstance(context, dict) else None
    return _parse_common(
        event, body=raw, authorizer=authorizer if isinstance(authorizer, dict) else {}
    )


def _parse_common(event: Mapping[str, Any], **extra: Any) -> GatewayRequest:
    context = event.get("requestContext")
    if not isinstance(context, dict):
        raise MalformedEvent("event has no requestContext")
    request_id = context.get("requestId")
    method = event.get("httpMethod") or context.get("httpMethod")
    path = event.get("path")
    if not isinstance(request_id, str) or not isinstance(method, str) or not isinstance(path, str):
        raise MalformedEvent("event lacks requestId, httpMethod or path")
    identity = context.get("identity") or {}
    headers = Headers.from_event(event)
    return GatewayRequest(
        request_id=request_id,
        extended_request_id=context.get("extendedRequestId"),
        stage=str(context.get("stage", "")),
        method=method.upper(),
        path=path,
        resource=str(event.get("resource") or context.get("resourcePath") or ""),
        source_ip=str(identity.get("sourceIp") or ""),
        host=headers.get("host") or str(context.get("domainName") or ""),
        headers=headers,
        query=_query_pairs(event),
        **extra,
    )


def _query_pairs(event: Mapping[str, Any]) -> tuple[tuple[str, str], ...]:
    multi = event.get("multiValueQueryStringParameters")
    if isinstance(multi, dict):
        return tuple((str(k), str(v)) for k, values in multi.items() for v in values or ())
    single = event.get("queryStringParameters")
    if isinstance(single, dict):
        return tuple((str(k), str(v)) for k, v in single.items())
    return ()
