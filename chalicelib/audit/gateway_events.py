"""API Gateway access logs as ``gateway`` audit events.

The authorizer and the proxy only see the requests that reach them. A request
that API Gateway answers by itself never does: a missing token (401), a
throttled caller (429), a WAF block, an answer served from the authorizer
cache, a 403 from a cached policy. The stage writes one access-log line per
request in the JSON format of ``infra/access_log_format.json``; a CloudWatch
Logs subscription hands batches of them to a Lambda, and this module turns
each line (read by :mod:`chalicelib.audit.access_logs`) into one audit event
of type ``gateway``.

Shape
-----
A gateway event has every top-level key that
:func:`chalicelib.audit.schema.build_event` and
:func:`~chalicelib.audit.schema.build_admin_event` produce, plus one more,
``gateway``, that those builders do not set: the set of top-level keys of a
gateway event is the builders' set plus ``"gateway"``. ``decision`` is null
(the gateway applies decisions, it does not make them); ``outcome`` uses the
keys of a response event's outcome.

See :mod:`chalicelib.audit.access_logs` for how a line is read, and how
client text in it is kept from changing what the trail trusts.
"""

from __future__ import annotations

import hashlib
import re
import uuid
from collections.abc import Mapping
from typing import Any

from chalicelib.audit.access_logs import (
    ABSENT,
    MAX_ID,
    MAX_TOKEN,
    AccessLogRecord,
    parse_subscription_payload,
)
from chalicelib.audit.schema import (
    SCHEMA_VERSION,
    AuditEvent,
    action_for_method,
    utc_timestamp,
    uuid7,
)
from chalicelib.audit.sections import (
    GatewaySection,
    PrincipalSection,
    RequestSection,
    ResourceSection,
    ResponseRecord,
    SourceSection,
)
from chalicelib.readable import MAX_HOST, MAX_PATH, MAX_USER_AGENT, capped

EVENT_TYPE = "gateway"
MAX_MESSAGE = 200
MAX_IP = 64
MAX_METHOD = 16
_MAX_INT = 2**63 - 1
_INTEGER = re.compile(r"-?[0-9]{1,18}")
# requestTimeEpoch values beyond year 9999 cannot be rendered as a timestamp.
_MAX_EPOCH_MS = 253_402_300_800_000


def gateway_event(record: Mapping[str, Any], *, stage: str) -> dict[str, Any]:
    """One ``gateway`` audit event from one access-log record.

    Parameters
    ----------
    record:
        One line of the access log, parsed (see
        :data:`~chalicelib.audit.access_logs.LOG_FIELDS`). Fields outside the
        allow-list are ignored; any value of any type is tolerated (a wrong
        type reads as absent). The anomalies of an
        :class:`~chalicelib.audit.access_logs.AccessLogRecord` become the event's.
    stage:
        The Gatehouse stage the log belongs to (the event's ``stage``).

    Returns
    -------
    dict
        The event; ``event_time`` is the request time, or the time of
        ingestion when the line has no usable ``requestTime``.
    """
    log = _Fields(record)
    method = log.text("httpMethod", MAX_METHOD)
    method = method.upper() if method else None
    principal_id = log.text("principalId", MAX_ID)
    authorizer_status = log.integer("authorizerStatus")
    authorizer_integration_status = log.integer("authorizerIntegrationStatus")
    integration_status = log.integer("integrationStatus")
    integration_latency = log.integer("integrationLatency")
    authorizer_invoked = authorizer_status is not None or authorizer_integration_status is not None
    return AuditEvent(
        schema_version=SCHEMA_VERSION,
        event_id=_stable_event_id(log.integer("requestTime"), log.text("requestId", MAX_ID)),
        event_type=EVENT_TYPE,
        event_time=_event_time(log.integer("requestTime")),
        stage=stage,
        request=RequestSection(
            id=log.text("requestId", MAX_ID),
            extended_id=log.text("extendedRequestId", MAX_ID),
            lambda_request_id=None,
            trace_id=log.text("xrayTraceId", MAX_ID * 2),
            decision_id=log.text("decisionId", MAX_ID),
        ),
        # The authorizer's principalId is all a log line knows of the principal.
        principal=None if principal_id is None else PrincipalSection(subject=principal_id),
        source=SourceSection(
            ip=log.text("sourceIp", MAX_IP),
            user_agent=log.text("userAgent", MAX_USER_AGENT),
        ),
        resource=ResourceSection(
            host=log.text("domainName", MAX_HOST),
            method=method,
            path=_request_path(log, stage),
            query=None,
        ),
        action=action_for_method(method) if method else None,
        decision=None,
        outcome=ResponseRecord(
            status=log.integer("status"),
            bytes_in=None,
            bytes_out=log.integer("responseLength"),
            latency_ms=log.integer("responseLatency"),
            upstream_latency_ms=integration_latency,
            error=log.text("errorResponseType", MAX_TOKEN),
        ),
        elevation=None,
        aws=None,
        anomalies=list(record.anomalies) if isinstance(record, AccessLogRecord) else [],
        policy_change=None,
        grant=None,
        gateway=GatewaySection(
            response_type=log.text("errorResponseType", MAX_TOKEN),
            error_message=log.text("errorMessage", MAX_MESSAGE),
            authorizer_status=authorizer_status,
            authorizer_error=log.text("authorizerError", MAX_MESSAGE),
            authorizer_latency_ms=log.integer("authorizerLatency"),
            authorizer_integration_status=authorizer_integration_status,
            integration_status=integration_status,
            integration_latency_ms=integration_latency,
            waf_response_code=log.text("wafResponseCode", MAX_TOKEN),
            resource_path=log.text("resourcePath", MAX_PATH),
            policy_version=log.integer("policyVersion"),
            served_by=(
                "gateway"
                if integration_status is None and integration_latency is None
                else "integration"
            ),
            cached_authorizer=principal_id is not None and not authorizer_invoked,
        ),
    ).as_dict()


def gateway_events(
    event: Mapping[str, Any], *, stage: str
) -> tuple[list[dict[str, Any]], list[tuple[str, str]]]:
    """The ``gateway`` events of one subscription event, and the lines rejected.

    Parameters
    ----------
    event:
        The CloudWatch Logs subscription event the Lambda received.
    stage:
        The Gatehouse stage the log group belongs to.

    Returns
    -------
    tuple
        ``(events, rejected)``: one event per accepted line, and
        ``(log event id, reason)`` for each line that could not be read.

    Raises
    ------
    AccessLogInvalid
        When the envelope is malformed (see
        :func:`~chalicelib.audit.access_logs.parse_subscription_payload`).
    """
    batch = parse_subscription_payload(event)
    return [gateway_event(record, stage=stage) for record in batch.records], batch.rejected


class _Fields:
    """Typed, allow-listed reads of one access-log record."""

    __slots__ = ("_record",)

    def __init__(self, record: Mapping[str, Any]) -> None:
        self._record = record

    def text(self, name: str, limit: int) -> str | None:
        """The field as text, capped; None when absent, ``-``, empty or not a scalar."""
        value = self._record.get(name)
        if isinstance(value, bool):
            return None
        if isinstance(value, int):
            value = str(value)
        if not isinstance(value, str) or value in ("", ABSENT):
            return None
        return capped(value, limit)

    def integer(self, name: str) -> int | None:
        """The field as an int; None when absent, ``-`` or not a whole number."""
        value = self._record.get(name)
        if isinstance(value, bool):
            return None
        if isinstance(value, str) and _INTEGER.fullmatch(value.strip()):
            value = int(value.strip())
        if isinstance(value, int) and -_MAX_INT <= value <= _MAX_INT:
            return value
        return None


def _stable_event_id(epoch_ms: int | None, request_id: str | None) -> str:
    """A UUIDv7 that is the same every time the same log line is ingested.

    CloudWatch Logs may deliver a subscription batch again; a fresh id each
    time would store the request twice. So the id is the request time (the
    v7 timestamp) and a hash of API Gateway's request id (the v7 random
    bits): the ledger's exactly-once then holds for gateway events too.
    """
    if request_id is None or epoch_ms is None or not 0 <= epoch_ms < _MAX_EPOCH_MS:
        return uuid7()
    # surrogatepass: a lone surrogate in a line must not fail the whole batch.
    digest = hashlib.sha256(b"gateway:" + request_id.encode("utf-8", "surrogatepass")).digest()
    bits = int.from_bytes(digest[:10], "big")
    value = (epoch_ms & 0xFFFF_FFFF_FFFF) << 80
    value |= 0x7 << 76  # version 7
    value |= ((bits >> 62) & 0xFFF) << 64  # 12 bits
    value |= 0b10 << 62  # the RFC 9562 variant
    value |= bits & 0x3FFF_FFFF_FFFF_FFFF  # 62 bits
    return str(uuid.UUID(int=value))


def _event_time(epoch_ms: int | None) -> str:
    if epoch_ms is None or not 0 <= epoch_ms < _MAX_EPOCH_MS:
        return utc_timestamp()
    whole, millis = divmod(epoch_ms, 1000)
    return utc_timestamp(whole + millis / 1000)


def _request_path(log: _Fields, stage: str) -> str | None:
    """The path as the proxy sees it: without the ``/{stage}`` prefix of execute-api URLs.

    ``$context.path`` includes the stage on the default execute-api domain
    (``/dev/api/x``) but the proxy event's ``path`` does not; on a custom
    domain the path is left as logged.
    """
    path = log.text("path", MAX_PATH)
    host = log.text("domainName", MAX_HOST) or ""
    prefix = "/" + (log.text("stage", MAX_TOKEN) or stage)
    if path is None or ".execute-api." not in host:
        return path
    if path == prefix:
        return "/"
    if path.startswith(prefix + "/"):
        return path[len(prefix) :]
    return path
