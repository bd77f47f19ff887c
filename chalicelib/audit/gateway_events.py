"""API Gateway access logs as ``gateway`` audit events.

The authorizer and the proxy only see the requests that reach them. A request
that API Gateway answers by itself never does: a missing token (401), a
throttled caller (429), a WAF block, an answer served from the authorizer
cache, a 403 from a cached policy. The stage writes one access-log line per
request in the JSON format of ``infra/access_log_format.json``; a CloudWatch
Logs subscription hands batches of them to a Lambda, and this module turns
each line into one audit event of type ``gateway``.

Shape
-----
A gateway event has every top-level key that
:func:`chalicelib.audit.schema.build_event` and
:func:`~chalicelib.audit.schema.build_admin_event` produce, plus one more,
``gateway``, that those builders do not set: the set of top-level keys of a
gateway event is the builders' set plus ``"gateway"``. ``decision`` is null
(the gateway applies decisions, it does not make them); ``outcome`` uses the
keys of a response event's outcome.

Only allow-listed fields are read from a log line, so nothing else in it (a
header someone added to the format, a cookie) can reach the trail. API
Gateway writes ``-`` for a value it does not have: that, and an empty value,
become null. Numbers arrive as strings and become ints.

A cached authorizer answer replays the context of the decision that made it,
so ``request.decision_id`` of such an event names that earlier decision.

Client text in the line
-----------------------
API Gateway puts each ``$context`` value into the format as it is, so a
User-Agent, path or host with a ``"``, a backslash or a control character
makes the line invalid JSON, and a crafted one (``x","status":"200``) could
make it different JSON. The format is laid out so that no client can change
what the trail trusts, and every line still becomes an event:

- the fields API Gateway makes up itself (request id, time, status, latencies,
  the authorizer's answer, the source IP: :data:`GATEWAY_FIELDS`) come first,
  and are read from the start of the line, which no client text precedes;
- the fields that can carry client text (:data:`CLIENT_FIELDS`) come last, in
  a fixed order, each but the last followed by a ``<name>End`` field holding
  the request id. The client learns its request id only from the answer, so
  it cannot write ``","pathEnd":"<request id>",`` into a value: that text
  marks where a value ends, whatever the value holds.

A line that is JSON in exactly that shape is read as JSON (API Gateway may
escape some values). Otherwise its client fields are split on the end markers
and kept as written, and the event's ``anomalies`` say so:
``access_log_not_json``, and ``access_log_unrecovered:<field>`` for each field
that could not be read (only a line cut short loses any), which is then null.

A line in any other layout (as written before the format changed) is read as
a JSON object, refused when a key repeats (only a value that broke out of its
quotes can repeat one).

Exceptions::

    ValueError
     └── AccessLogInvalid    the subscription payload itself is malformed

A single log line that can be read neither way does not raise: it is returned
as rejected, with its log event id and the reason (the ingest counts those in
``AccessLogLinesRejected``, which alarms).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
import uuid
import zlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from chalicelib.audit.schema import (
    SCHEMA_VERSION,
    AuditEvent,
    action_for_method,
    utc_timestamp,
    uuid7,
)
from chalicelib.readable import MAX_HOST, MAX_PATH, MAX_USER_AGENT, capped

EVENT_TYPE = "gateway"
ABSENT = "-"

# A subscription batch is at most a few hundred kilobytes compressed; anything
# that inflates beyond this is not one of ours.
MAX_DECOMPRESSED = 32 * 1024 * 1024
MAX_MESSAGE = 200
MAX_ID = 128
MAX_IP = 64
MAX_METHOD = 16
MAX_TOKEN = 64
_MAX_INT = 2**63 - 1
_INTEGER = re.compile(r"-?[0-9]{1,18}")
# requestTimeEpoch values beyond year 9999 cannot be rendered as a timestamp.
_MAX_EPOCH_MS = 253_402_300_800_000

# The principal section has the keys principal_record produces; an access
# log line only knows the subject (the authorizer's principalId).
PRINCIPAL_FIELDS = (
    "issuer",
    "subject",
    "email",
    "groups",
    "amr",
    "auth_time",
    "client_id",
    "session_id",
    "token_id",
    "token_expires_at",
)

# The keys of infra/access_log_format.json that this module reads (the
# allow-list), in the format's order. First the values API Gateway makes up
# itself: none can hold a quote or a backslash.
GATEWAY_FIELDS = (
    "requestId",
    "extendedRequestId",
    "requestTime",
    "stage",
    "httpMethod",
    "resourcePath",
    "status",
    "responseLength",
    "responseLatency",
    "integrationStatus",
    "integrationLatency",
    "authorizerStatus",
    "authorizerLatency",
    "authorizerIntegrationStatus",
    "decisionId",
    "policyVersion",
    "errorResponseType",
    "wafResponseCode",
    "sourceIp",
)
# Then the values that can hold text a client (or an identity provider, or an
# error message quoting a request) chose.
CLIENT_FIELDS = (
    "xrayTraceId",
    "errorMessage",
    "authorizerError",
    "principalId",
    "domainName",
    "path",
    "userAgent",
)
LOG_FIELDS = GATEWAY_FIELDS + CLIENT_FIELDS
# Each client field but the last is followed by "<name>End": the request id.
END_MARKER = "End"
FORMAT_KEYS = (
    *GATEWAY_FIELDS,
    *(key for name in CLIENT_FIELDS[:-1] for key in (name, name + END_MARKER)),
    CLIENT_FIELDS[-1],
)
ANOMALY_NOT_JSON = "access_log_not_json"
ANOMALY_UNRECOVERED = "access_log_unrecovered:"
# A request id shorter than this could be guessed, and so its end markers forged.
_MIN_REQUEST_ID = 16
_GATEWAY_PREFIX = re.compile(
    r"\{" + ",".join(f'"{name}":"(?P<{name}>[^"\\\\]*)"' for name in GATEWAY_FIELDS) + ","
)


class AccessLogInvalid(ValueError):
    """A CloudWatch Logs subscription payload that cannot be read."""


class AccessLogRecord(dict[str, Any]):
    """One access-log line's fields, and what could not be read from it as written.

    Attributes
    ----------
    anomalies:
        For the event's ``anomalies``: ``access_log_not_json`` when the line
        was not JSON in the format's shape, ``access_log_unrecovered:<field>``
        for each client field that could not be read (absent from the record).
    """

    anomalies: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class AccessLogBatch:
    """The access-log records of one subscription payload.

    Attributes
    ----------
    records:
        One record per accepted log line, in delivery order.
    rejected:
        ``(log event id, reason)`` for each line that could not be read.
    """

    records: list[AccessLogRecord] = field(default_factory=list)
    rejected: list[tuple[str, str]] = field(default_factory=list)


def parse_subscription_payload(event: Mapping[str, Any]) -> AccessLogBatch:
    """Read the access-log records of a CloudWatch Logs subscription event.

    Parameters
    ----------
    event:
        The Lambda event: ``{"awslogs": {"data": base64(gzip(JSON))}}``.

    Returns
    -------
    AccessLogBatch
        The records of a ``DATA_MESSAGE`` and the lines rejected; a
        ``CONTROL_MESSAGE`` (CloudWatch checking the destination) has none.

    Raises
    ------
    AccessLogInvalid
        When the envelope is malformed: no ``awslogs.data`` string, not
        base64, not gzip, not a JSON object, an unknown ``messageType`` or no
        ``logEvents`` list.
    """
    payload = _decode_envelope(event)
    message_type = payload.get("messageType")
    if message_type == "CONTROL_MESSAGE":
        return AccessLogBatch()
    if message_type != "DATA_MESSAGE":
        raise AccessLogInvalid(f"unknown messageType {_shown(message_type)}")
    log_events = payload.get("logEvents")
    if not isinstance(log_events, list):
        raise AccessLogInvalid("DATA_MESSAGE has no logEvents list")
    batch = AccessLogBatch()
    for index, log_event in enumerate(log_events):
        event_id, record, reason = _parse_log_event(index, log_event)
        if record is None:
            batch.rejected.append((event_id, reason))
        else:
            batch.records.append(record)
    return batch


def gateway_event(record: Mapping[str, Any], *, stage: str) -> dict[str, Any]:
    """One ``gateway`` audit event from one access-log record.

    Parameters
    ----------
    record:
        One line of the access log, parsed (see :data:`LOG_FIELDS`). Fields
        outside the allow-list are ignored; any value of any type is
        tolerated (a wrong type reads as absent). The anomalies of an
        :class:`AccessLogRecord` become the event's.
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
        request={
            "id": log.text("requestId", MAX_ID),
            "extended_id": log.text("extendedRequestId", MAX_ID),
            "lambda_request_id": None,
            "trace_id": log.text("xrayTraceId", MAX_ID * 2),
            "decision_id": log.text("decisionId", MAX_ID),
        },
        principal=_principal(principal_id),
        source={
            "ip": log.text("sourceIp", MAX_IP),
            "user_agent": log.text("userAgent", MAX_USER_AGENT),
        },
        resource={
            "host": log.text("domainName", MAX_HOST),
            "method": method,
            "path": _request_path(log, stage),
            "query": None,
            "route_id": None,
            "upstream": None,
            "sensitive": None,
        },
        action=action_for_method(method) if method else None,
        decision=None,
        outcome={
            "status": log.integer("status"),
            "bytes_in": None,
            "bytes_out": log.integer("responseLength"),
            "latency_ms": log.integer("responseLatency"),
            "upstream_latency_ms": integration_latency,
            "error": log.text("errorResponseType", MAX_TOKEN),
        },
        elevation=None,
        aws=None,
        anomalies=list(record.anomalies) if isinstance(record, AccessLogRecord) else [],
        policy_change=None,
        grant=None,
        gateway={
            "response_type": log.text("errorResponseType", MAX_TOKEN),
            "error_message": log.text("errorMessage", MAX_MESSAGE),
            "authorizer_status": authorizer_status,
            "authorizer_error": log.text("authorizerError", MAX_MESSAGE),
            "authorizer_latency_ms": log.integer("authorizerLatency"),
            "authorizer_integration_status": authorizer_integration_status,
            "integration_status": integration_status,
            "integration_latency_ms": integration_latency,
            "waf_response_code": log.text("wafResponseCode", MAX_TOKEN),
            "resource_path": log.text("resourcePath", MAX_PATH),
            "policy_version": log.integer("policyVersion"),
            "served_by": (
                "gateway"
                if integration_status is None and integration_latency is None
                else "integration"
            ),
            "cached_authorizer": principal_id is not None and not authorizer_invoked,
        },
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
        When the envelope is malformed (see :func:`parse_subscription_payload`).
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


def _decode_envelope(event: Mapping[str, Any]) -> dict[str, Any]:
    awslogs = event.get("awslogs") if isinstance(event, Mapping) else None
    data = awslogs.get("data") if isinstance(awslogs, Mapping) else None
    if not isinstance(data, str):
        raise AccessLogInvalid("not a CloudWatch Logs subscription event: no awslogs.data string")
    try:
        compressed = base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise AccessLogInvalid("awslogs.data is not valid base64") from exc
    text = _gunzip(compressed)
    try:
        payload = json.loads(text)
    except ValueError as exc:
        raise AccessLogInvalid(f"awslogs.data does not hold JSON: {exc}") from exc
    if not isinstance(payload, dict):
        raise AccessLogInvalid("awslogs.data does not hold a JSON object")
    return payload


def _gunzip(compressed: bytes) -> bytes:
    inflater = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)  # gzip framing only
    try:
        text = inflater.decompress(compressed, MAX_DECOMPRESSED + 1)
    except zlib.error as exc:
        raise AccessLogInvalid(f"awslogs.data is not gzip-compressed: {exc}") from exc
    if len(text) > MAX_DECOMPRESSED:
        raise AccessLogInvalid(f"awslogs.data inflates beyond {MAX_DECOMPRESSED} bytes")
    if not inflater.eof:
        raise AccessLogInvalid("awslogs.data is a truncated gzip stream")
    return text


def _parse_log_event(index: int, log_event: object) -> tuple[str, AccessLogRecord | None, str]:
    """``(log event id, record or None, reason when None)`` for one ``logEvents`` entry."""
    if not isinstance(log_event, dict):
        return f"#{index}", None, "log event is not an object"
    raw_id = log_event.get("id")
    event_id = raw_id[:MAX_ID] if isinstance(raw_id, str) and raw_id else f"#{index}"
    message = log_event.get("message")
    if not isinstance(message, str):
        return event_id, None, "log event has no message string"
    # Nothing client-controlled follows the closing brace.
    line = message.rstrip()
    prefix = _GATEWAY_PREFIX.match(line)
    if prefix is None:
        record, reason = _json_record(line)
        return event_id, record, reason
    return event_id, _format_record(line, prefix), ""


def _format_record(line: str, prefix: re.Match[str]) -> AccessLogRecord:
    """A line in the format's layout: gateway fields from its start, then the client fields."""
    record = AccessLogRecord(prefix.groupdict())
    request_id = record["requestId"]
    client = _client_fields_as_json(line, request_id)
    if client is not None:
        record.update(client)
        return record
    client = _client_fields_as_written(line[prefix.end() :], request_id)
    record.update(client)
    record.anomalies = (
        ANOMALY_NOT_JSON,
        *(ANOMALY_UNRECOVERED + name for name in CLIENT_FIELDS if name not in client),
    )
    return record


def _client_fields_as_json(line: str, request_id: str) -> dict[str, str] | None:
    """The client fields of a line that is JSON in exactly the format's shape, else None.

    In such a line every ``","<key>":"`` of the format is where a value ends
    and the next begins: a value escaping its quotes leaves the next key bare
    (invalid) or repeats a key (refused); nesting gives a value that is not a
    string (refused).
    """
    try:
        pairs = json.loads(line, object_pairs_hook=list, strict=False)
    except ValueError:
        return None
    if not isinstance(pairs, list) or [pair[0] for pair in pairs] != list(FORMAT_KEYS):
        return None
    values = dict(pairs)
    if not all(isinstance(value, str) for value in values.values()):
        return None
    if any(values[name + END_MARKER] != request_id for name in CLIENT_FIELDS[:-1]):
        return None
    return {name: values[name] for name in CLIENT_FIELDS}


def _client_fields_as_written(tail: str, request_id: str) -> dict[str, str]:
    """The client fields of ``tail`` (the line after the gateway fields), as written.

    Each value ends at its ``","<name>End":"<request id>",``, which no client
    can write; the last ends at the line's closing ``"}``. A field that is
    not where the format puts it, and every field after it, is left out.
    """
    values: dict[str, str] = {}
    if len(request_id) < _MIN_REQUEST_ID or not tail.endswith('"}'):
        return values  # end markers that could be forged, or a line cut short
    position = 0
    last = len(CLIENT_FIELDS) - 1
    for index, name in enumerate(CLIENT_FIELDS):
        opener = f'"{name}":"'
        if not tail.startswith(opener, position):
            break
        start = position + len(opener)
        if index == last:
            if start <= len(tail) - 2:
                values[name] = tail[start:-2]
            break
        closer = f'","{name}{END_MARKER}":"{request_id}",'
        end = tail.find(closer, start)
        if end < 0:
            break
        values[name] = tail[start:end]
        position = end + len(closer)
    return values


def _json_record(line: str) -> tuple[AccessLogRecord | None, str]:
    """A line in another layout, read as a JSON object: ``(record or None, reason)``."""
    try:
        record = json.loads(line, object_pairs_hook=_unique_keys)
    except _DuplicateKey as exc:
        # Only a value that broke out of its quotes (a crafted User-Agent)
        # can repeat a key: the line cannot be trusted at all.
        return None, f"duplicate key {_shown(str(exc))}: a value escaped its quotes"
    except ValueError as exc:
        return None, f"message is not JSON: {exc}"
    if not isinstance(record, dict):
        return None, f"message is JSON {type(record).__name__}, not an object"
    return AccessLogRecord(record), ""


class _DuplicateKey(ValueError):
    pass


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    record: dict[str, Any] = {}
    for key, value in pairs:
        if key in record:
            raise _DuplicateKey(key)
        record[key] = value
    return record


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


def _principal(subject: str | None) -> dict[str, Any] | None:
    if subject is None:
        return None
    principal: dict[str, Any] = dict.fromkeys(PRINCIPAL_FIELDS)
    principal["subject"] = subject
    return principal


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


def _shown(value: object) -> str:
    return repr(value)[:MAX_TOKEN]
