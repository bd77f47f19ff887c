"""The audit event (schema version 1): one JSON object per line.

Every field is always present (``null`` when unknown) so that the Athena table
and every reader see one stable shape. Secrets never enter an event: tokens,
cookies and ``Authorization`` values are not fields at all, and query string
values whose names match the redaction rule, or that look like credentials
themselves, are replaced.
"""

from __future__ import annotations

import math
import os
import re
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import parse_qsl, quote

from chalicelib.config import DEFAULT_QUERY_VALUE_REDACTION
from chalicelib.readable import (
    MAX_HOST,
    MAX_JUSTIFICATION,
    MAX_PATH,
    MAX_QUERY,
    MAX_USER_AGENT,
    capped,
)

if TYPE_CHECKING:
    from chalicelib.apigw.events import GatewayRequest
    from chalicelib.identity import Identity
    from chalicelib.reasons import Reason

SCHEMA_VERSION = 1
REDACTED = "REDACTED"
_MAX_DETAIL = 200

EventType = Literal["decision", "response"]
AdminEventType = Literal["policy_change", "grant"]
Outcome = Literal["allow", "deny", "error"]

_ACTIONS = {"GET": "read", "HEAD": "read", "OPTIONS": "read", "DELETE": "delete"}


def action_for_method(method: str) -> str:
    """``read``, ``write`` or ``delete``, from the HTTP method."""
    return _ACTIONS.get(method.upper(), "write")


def uuid7() -> str:
    """A UUIDv7 (RFC 9562): 48-bit Unix milliseconds, then random bits; sorts by time."""
    millis = time.time_ns() // 1_000_000
    rand = int.from_bytes(os.urandom(10), "big")
    value = (
        (millis & 0xFFFF_FFFF_FFFF) << 80
        | 0x7 << 76
        | (rand >> 62 & 0xFFF) << 64
        | 0b10 << 62
        | rand & 0x3FFF_FFFF_FFFF_FFFF
    )
    text = f"{value:032x}"
    return f"{text[:8]}-{text[8:12]}-{text[12:16]}-{text[16:20]}-{text[20:]}"


def epoch_millis(epoch_seconds: float) -> int:
    """Whole milliseconds, truncated, tolerating float error (``.123`` is ``122.9998``)."""
    return math.floor(epoch_seconds * 1000 + 1e-3)


def utc_timestamp(epoch_seconds: float | None = None) -> str:
    """RFC 3339 UTC timestamp with milliseconds, e.g. ``2026-11-28T15:50:37.123Z``."""
    total_ms = time.time_ns() // 1_000_000 if epoch_seconds is None else epoch_millis(epoch_seconds)
    whole, millis = divmod(total_ms, 1000)
    return f"{_utc_second(whole)}.{millis:03d}Z"


@lru_cache(maxsize=64)
def _utc_second(whole: int) -> str:
    """``2026-11-28T15:50:37`` for whole seconds since the epoch (events share seconds)."""
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(whole))


# The default of ``Settings.audit_query_value_redaction`` (re.compile caches: one object).
QUERY_VALUE_REDACTION = re.compile(DEFAULT_QUERY_VALUE_REDACTION)


def redact_query(
    pairs: Iterable[tuple[str, str]],
    secret_names: re.Pattern[str],
    secret_values: re.Pattern[str] | None = QUERY_VALUE_REDACTION,
) -> str | None:
    """The query string for the record, with secret-looking values replaced.

    Parameters
    ----------
    pairs:
        The query's ``(name, value)`` pairs, decoded, in order.
    secret_names:
        Parameter names whose values are replaced, whatever they look like.
    secret_values:
        Text that looks like a credential, searched for in each decoded value
        and name: found in a value, the value is replaced; found in a name,
        both are (``?<token>`` arrives as a name with an empty value). None:
        names decide alone.

    Returns
    -------
    str or None
        ``name=value`` pairs joined with ``&``, each percent-encoded, a
        replaced one as ``REDACTED``; None for no pairs.
    """
    looks_secret = secret_values.search if secret_values is not None else _never
    parts = []
    for name, value in pairs:
        if looks_secret(name):
            parts.append(f"{REDACTED}={REDACTED}")
        elif (
            secret_names.search(name) or looks_secret(value) or _carries_secret(value, secret_names)
        ):
            parts.append(f"{quote(name, safe='')}={REDACTED}")
        else:
            parts.append(f"{quote(name, safe='')}={quote(value, safe='')}")
    return "&".join(parts) if parts else None


_USERINFO_PASSWORD = re.compile(r"://[^/@\s:]*:[^/@\s]*@")


def _carries_secret(value: str, secret_names: re.Pattern[str]) -> bool:
    """A URL with a password (``https://bob:pw@host``), or a query nested in the value
    (``next=/cb?password=...``) with a parameter the name rule redacts.

    Both tests start with a substring check, so an ordinary value costs nothing.
    """
    if "@" in value and "://" in value and _USERINFO_PASSWORD.search(value):
        return True
    if "=" not in value:
        return False
    # The query and the fragment (where OAuth's implicit flow puts tokens) both count.
    nested = re.split(r"[?#]", value)
    return any(
        secret_names.search(name)
        for part in nested
        for name, _ in parse_qsl(part, keep_blank_values=True, max_num_fields=100)
    )


def _never(text: str) -> None:
    return None


@dataclass(frozen=True, slots=True)
class RequestRecord:
    """The request facts every event repeats (see :mod:`chalicelib.apigw.events`)."""

    request_id: str
    extended_request_id: str | None
    trace_id: str | None
    lambda_request_id: str | None
    stage: str
    source_ip: str
    user_agent: str | None
    host: str
    method: str
    path: str
    query: str | None

    @classmethod
    def from_request(
        cls,
        request: GatewayRequest,
        lambda_request_id: str | None,
        redaction: re.Pattern[str],
        path: str | None = None,
        *,
        value_redaction: re.Pattern[str] | None = QUERY_VALUE_REDACTION,
    ) -> RequestRecord:
        """The facts of ``request`` for its events: capped, query secrets redacted.

        ``path`` is the decided path when the request's path could be parsed
        (so the record names what was decided and forwarded); without it the
        raw path as API Gateway reported it is recorded. Query values are redacted by
        their names (``redaction``) and by what they look like
        (``value_redaction``, see :func:`redact_query`).
        """
        return cls(
            request_id=request.request_id,
            extended_request_id=request.extended_request_id,
            trace_id=request.trace_id,
            lambda_request_id=lambda_request_id,
            stage=request.stage,
            source_ip=request.source_ip,
            user_agent=capped(request.user_agent, MAX_USER_AGENT),
            host=capped(request.host, MAX_HOST) or "",
            method=request.method,
            path=capped(path if path is not None else request.path, MAX_PATH) or "",
            query=capped(redact_query(request.query, redaction, value_redaction), MAX_QUERY),
        )


def principal_record(identity: Identity | None) -> dict[str, Any] | None:
    """The ``principal`` section for ``identity`` (shared: callers must not mutate it)."""
    if identity is None:
        return None
    return _principal_record(identity)


@lru_cache(maxsize=4096)
def _principal_record(identity: Identity) -> dict[str, Any]:
    return {
        "issuer": identity.issuer,
        "subject": identity.subject,
        "email": identity.email,
        "groups": sorted(identity.groups),
        "amr": list(identity.amr),
        "auth_time": identity.auth_time,
        "client_id": identity.client_id,
        "session_id": identity.session_id,
        "token_id": identity.token_id,
        "token_expires_at": identity.expires_at,
    }


@dataclass(frozen=True, slots=True)
class ElevationRecord:
    """The ``elevation`` section: access beyond the standing rules."""

    grant_id: str | None = None
    approver: str | None = None
    justification: str | None = None
    break_glass: bool = False

    def as_dict(self) -> dict[str, Any]:
        """The JSON-ready section."""
        return {
            "grant_id": self.grant_id,
            "approver": self.approver,
            "justification": capped(self.justification, MAX_JUSTIFICATION),
            "break_glass": self.break_glass,
        }


@dataclass(frozen=True, slots=True)
class DecisionRecord:
    """The ``decision`` section."""

    outcome: Outcome
    reasons: Sequence[Reason]
    matched_rules: Sequence[str] = ()
    policy_version: int | None = None
    policy_checksum: str | None = None
    decided_by: str = "authorizer"
    cached: bool = False
    detail: str | None = None
    elevation: ElevationRecord | None = None

    def as_dict(self) -> dict[str, Any]:
        """The JSON-ready section."""
        return {
            "outcome": self.outcome,
            "reasons": [reason.value for reason in self.reasons],
            "matched_rules": list(self.matched_rules),
            "policy_version": self.policy_version,
            "policy_checksum": self.policy_checksum,
            "decided_by": self.decided_by,
            "cached": self.cached,
            "detail": self.detail[:_MAX_DETAIL] if self.detail else None,
        }


@dataclass(frozen=True, slots=True)
class ResponseRecord:
    """The ``outcome`` section of a response event."""

    status: int
    bytes_in: int
    bytes_out: int
    latency_ms: float
    upstream_latency_ms: float | None
    error: str | None = None

    def as_dict(self) -> dict[str, Any]:
        """The JSON-ready section."""
        return {
            "status": self.status,
            "bytes_in": self.bytes_in,
            "bytes_out": self.bytes_out,
            "latency_ms": round(self.latency_ms, 3),
            "upstream_latency_ms": (
                None if self.upstream_latency_ms is None else round(self.upstream_latency_ms, 3)
            ),
            "error": self.error,
        }


@dataclass(frozen=True, slots=True)
class ResourceRecord:
    """The ``resource`` section: where the request was going."""

    route_id: str | None = None
    upstream: str | None = None
    sensitive: bool = False


@dataclass(frozen=True, slots=True)
class AwsRecord:
    """The ``aws`` section of a request event whose route has an AWS upstream.

    Shape (every key always present, ``null`` when unknown)::

        {"caller_arn": null,                      # admin events only (the operator's ARN)
         "role_arn": "arn:aws:iam::<acct>:role/<name>",
         "session_name": "gh-<request id that opened the session>",
         "source_identity": "<sanitised principal>",
         "access_key_id": "ASIA...",              # the session's; never its secret or token
         "region": "<signing region>",
         "service": "<signing service>"}

    CloudTrail correlation joins ``access_key_id`` (and ``source_identity``)
    with ``userIdentity``, refined per request by ``gatehouse/<request id>``
    in the record's ``userAgent``. The session fields are ``null`` when the
    role could not be assumed (the request failed closed).
    """

    role_arn: str
    region: str
    service: str
    session_name: str | None = None
    source_identity: str | None = None
    access_key_id: str | None = None

    def as_dict(self) -> dict[str, Any]:
        """The JSON-ready section."""
        return {
            "caller_arn": None,
            "role_arn": self.role_arn,
            "session_name": self.session_name,
            "source_identity": self.source_identity,
            "access_key_id": self.access_key_id,
            "region": self.region,
            "service": self.service,
        }


_SET_FIELD = object.__setattr__


@dataclass(frozen=True, slots=True, init=False)
class AuditEvent:
    """One audit event. The fields, in order, are the wire form's members, in order.

    Every producer builds one (:func:`build_event`, :func:`build_admin_event`,
    :func:`chalicelib.audit.gateway_events.gateway_event`) and :meth:`as_dict`
    is the only place an event becomes the dict that is serialised. The
    sections are already JSON-ready (each record's ``as_dict``). The order is
    the stored bytes' order: the ledger hashes those bytes, so never reorder,
    rename or insert a field; ``tests/unit/test_audit_wire.py`` holds the lines.
    """

    schema_version: int
    event_id: str
    event_type: str
    event_time: str
    stage: str
    request: dict[str, Any] | None
    principal: dict[str, Any] | None
    source: dict[str, Any] | None
    resource: dict[str, Any] | None
    action: str | None
    decision: dict[str, Any] | None
    outcome: dict[str, Any] | None
    elevation: dict[str, Any] | None
    aws: dict[str, Any] | None
    anomalies: list[str]
    policy_change: dict[str, Any] | None
    grant: dict[str, Any] | None
    # Gateway events only: absent from the wire form of every other event.
    gateway: dict[str, Any] | None = None

    def __init__(
        self,
        schema_version: int,
        event_id: str,
        event_type: str,
        event_time: str,
        stage: str,
        request: dict[str, Any] | None,
        principal: dict[str, Any] | None,
        source: dict[str, Any] | None,
        resource: dict[str, Any] | None,
        action: str | None,
        decision: dict[str, Any] | None,
        outcome: dict[str, Any] | None,
        elevation: dict[str, Any] | None,
        aws: dict[str, Any] | None,
        anomalies: list[str],
        policy_change: dict[str, Any] | None,
        grant: dict[str, Any] | None,
        gateway: dict[str, Any] | None = None,
    ) -> None:
        # The generated __init__ looks ``object.__setattr__`` up once per field; one
        # local lookup instead saves ~0.4 µs on every request.
        init = _SET_FIELD
        init(self, "schema_version", schema_version)
        init(self, "event_id", event_id)
        init(self, "event_type", event_type)
        init(self, "event_time", event_time)
        init(self, "stage", stage)
        init(self, "request", request)
        init(self, "principal", principal)
        init(self, "source", source)
        init(self, "resource", resource)
        init(self, "action", action)
        init(self, "decision", decision)
        init(self, "outcome", outcome)
        init(self, "elevation", elevation)
        init(self, "aws", aws)
        init(self, "anomalies", anomalies)
        init(self, "policy_change", policy_change)
        init(self, "grant", grant)
        init(self, "gateway", gateway)

    def as_dict(self) -> dict[str, Any]:
        """The wire form: one member per field, in field order (``gateway`` only when set)."""
        wire: dict[str, Any] = {
            "schema_version": self.schema_version,
            "event_id": self.event_id,
            "event_type": self.event_type,
            "event_time": self.event_time,
            "stage": self.stage,
            "request": self.request,
            "principal": self.principal,
            "source": self.source,
            "resource": self.resource,
            "action": self.action,
            "decision": self.decision,
            "outcome": self.outcome,
            "elevation": self.elevation,
            "aws": self.aws,
            "anomalies": self.anomalies,
            "policy_change": self.policy_change,
            "grant": self.grant,
        }
        if self.gateway is not None:
            wire["gateway"] = self.gateway
        return wire


def build_event(
    event_type: EventType,
    request: RequestRecord,
    *,
    identity: Identity | None,
    decision: DecisionRecord,
    resource: ResourceRecord,
    decision_id: str | None = None,
    response: ResponseRecord | None = None,
    anomalies: Sequence[str] = (),
    event_id: str | None = None,
    aws: AwsRecord | None = None,
) -> dict[str, Any]:
    """Assemble one audit event.

    ``decision_id`` links a response event to the decision that let it
    through; a decision event is its own decision (``decision_id`` = its id).
    ``aws`` is the AWS upstream call the request made, if its route has one.
    """
    event_id = event_id or uuid7()
    return AuditEvent(
        # Positional, in field order: keywords would cost ~0.5 µs on every request.
        SCHEMA_VERSION,  # schema_version
        event_id,  # event_id
        event_type,  # event_type
        utc_timestamp(),  # event_time
        request.stage,  # stage
        {  # request
            "id": request.request_id,
            "extended_id": request.extended_request_id,
            "lambda_request_id": request.lambda_request_id,
            "trace_id": request.trace_id,
            "decision_id": decision_id or event_id,
        },
        principal_record(identity),  # principal
        {"ip": request.source_ip, "user_agent": request.user_agent},  # source
        {  # resource
            "host": request.host,
            "method": request.method,
            "path": request.path,
            "query": request.query,
            "route_id": resource.route_id,
            "upstream": resource.upstream,
            "sensitive": resource.sensitive,
        },
        action_for_method(request.method),  # action
        decision.as_dict(),  # decision
        None if response is None else response.as_dict(),  # outcome
        decision.elevation.as_dict() if decision.elevation else None,  # elevation
        None if aws is None else aws.as_dict(),  # aws
        list(anomalies),  # anomalies
        None,  # policy_change
        None,  # grant
    ).as_dict()


def build_admin_event(
    event_type: AdminEventType,
    *,
    stage: str,
    details: dict[str, Any],
    operator: str | None,
    identity: Identity | None = None,
    event_id: str | None = None,
    request: GatewayRequest | None = None,
) -> dict[str, Any]:
    """An event about administration rather than a request: a policy change or a grant.

    Parameters
    ----------
    event_type:
        ``policy_change`` or ``grant``; ``details`` becomes the section of that name.
    operator:
        The AWS caller identity (ARN) that made the change, recorded as
        ``aws.caller_arn`` (the other keys of :class:`AwsRecord` are request-only).
    identity:
        The verified OIDC principal acting (a grant's requester or approver), if any.
    request:
        The API request that carried the action (grant API): its ids and source.
    """
    event_id = event_id or uuid7()
    return AuditEvent(
        schema_version=SCHEMA_VERSION,
        event_id=event_id,
        event_type=event_type,
        event_time=utc_timestamp(),
        stage=stage,
        request=None
        if request is None
        else {
            "id": request.request_id,
            "extended_id": request.extended_request_id,
            "lambda_request_id": None,
            "trace_id": request.trace_id,
            "decision_id": None,
        },
        principal=principal_record(identity),
        source=None
        if request is None
        else {"ip": request.source_ip, "user_agent": request.user_agent},
        resource=None,
        action="admin",
        decision=None,
        outcome=None,
        elevation=None,
        aws={"caller_arn": operator} if operator else None,
        anomalies=[],
        policy_change=details if event_type == "policy_change" else None,
        grant=details if event_type == "grant" else None,
    ).as_dict()
