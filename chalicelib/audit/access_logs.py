"""API Gateway access logs: reading the lines a CloudWatch Logs subscription delivers.

The stage writes one access-log line per request in the JSON format of
``infra/access_log_format.json``; a CloudWatch Logs subscription hands
batches of them to a Lambda. This module reads each line into an
:class:`AccessLogRecord`; :mod:`chalicelib.audit.gateway_events` turns each
record into one audit event of type ``gateway``.

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
import json
import re
import zlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

ABSENT = "-"

# A subscription batch is at most a few hundred kilobytes compressed; anything
# that inflates beyond this is not one of ours.
MAX_DECOMPRESSED = 32 * 1024 * 1024
MAX_ID = 128
MAX_TOKEN = 64

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


def _shown(value: object) -> str:
    return repr(value)[:MAX_TOKEN]
