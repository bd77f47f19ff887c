"""The audit event (schema version 1): one JSON object per line.

Every field is always present (``null`` when unknown) so that the Athena table
and every reader see one stable shape. An event (:class:`AuditEvent`) holds
the typed sections of :mod:`chalicelib.audit.sections`; the builders here
make them from what a handler knows (:class:`RequestRecord`,
:class:`DecisionRecord`, :class:`ResourceRecord`, :class:`AwsRecord`).

Secrets never enter an event: tokens, cookies and ``Authorization`` values
are not fields at all, and query string values whose names match the
redaction rule, or that look like credentials themselves, are replaced
(:mod:`chalicelib.audit.redaction`).
"""

from __future__ import annotations

import math
import os
import re
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import TYPE_CHECKING, Any, Literal

from chalicelib.audit.redaction import QUERY_VALUE_REDACTION, redact_query
from chalicelib.audit.sections import (
    MAX_DETAIL,
    OMIT_NONE,
    AlertSection,
    AwsSection,
    DecisionSection,
    ElevationRecord,
    GatewaySection,
    GrantRefusalSection,
    OperatorSection,
    PolicyChangeSection,
    PrincipalSection,
    RequestSection,
    ResourceSection,
    ResponseRecord,
    SessionSection,
    SigningKeySection,
    SourceSection,
    WireRecord,
    as_wire,
    principal_section,
)
from chalicelib.readable import (
    MAX_HOST,
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
_MAX_DETAIL = MAX_DETAIL

EventType = Literal["decision", "response"]
AdminEventType = Literal["policy_change", "grant", "signing_key"]
# Every event type the trail holds: request events, admin events, API
# Gateway's access-log lines, and browser sessions' events.
EVENT_TYPES = (
    "decision",
    "response",
    "policy_change",
    "grant",
    "signing_key",
    "gateway",
    "session",
    "alert",
)
Outcome = Literal["allow", "deny", "error"]
# The ``policy_change`` or ``grant`` section of an admin event: typed, or a
# mapping already in wire form (a grant's lifecycle details).
AdminDetails = PolicyChangeSection | GrantRefusalSection | SigningKeySection | Mapping[str, Any]

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
    """The wire form of the ``principal`` section for ``identity``.

    See :func:`~chalicelib.audit.sections.principal_section` (the typed section).
    """
    section = principal_section(identity)
    return None if section is None else as_wire(section)


@dataclass(frozen=True, slots=True)
class DecisionRecord:
    """What was decided: becomes the ``decision`` section (and ``elevation``, when set)."""

    outcome: Outcome
    reasons: Sequence[Reason]
    matched_rules: Sequence[str] = ()
    policy_version: int | None = None
    policy_checksum: str | None = None
    decided_by: str = "authorizer"
    cached: bool = False
    detail: str | None = None
    elevation: ElevationRecord | None = None

    def section(self) -> DecisionSection:
        """The ``decision`` section: reasons as their codes, the detail capped."""
        return DecisionSection(
            self.outcome,
            [reason.value for reason in self.reasons],
            list(self.matched_rules),
            self.policy_version,
            self.policy_checksum,
            self.decided_by,
            self.cached,
            self.detail[:_MAX_DETAIL] if self.detail else None,
        )


@dataclass(frozen=True, slots=True)
class ResourceRecord:
    """Where the request was going: the route part of the ``resource`` section."""

    route_id: str | None = None
    upstream: str | None = None
    sensitive: bool = False


@dataclass(frozen=True, slots=True)
class AwsRecord:
    """The AWS upstream call of a request whose route has one: its ``aws`` section.

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

    def section(self) -> AwsSection:
        """The ``aws`` section (in its wire order)."""
        return AwsSection(
            None,
            self.role_arn,
            self.session_name,
            self.source_identity,
            self.access_key_id,
            self.region,
            self.service,
        )


_SET_FIELD = object.__setattr__


@dataclass(frozen=True, slots=True, init=False)
class AuditEvent(WireRecord):
    """One audit event. The fields, in order, are the wire form's members, in order.

    Every producer builds one (:func:`build_event`, :func:`build_admin_event`,
    :func:`build_session_event`,
    :func:`chalicelib.audit.gateway_events.gateway_event`) from the typed
    sections of :mod:`chalicelib.audit.sections`, and :meth:`as_dict`
    (:func:`~chalicelib.audit.sections.as_wire`) is the only place an event
    becomes the dict that is serialised. The order is the stored bytes'
    order: the ledger hashes those bytes, so never reorder, rename or insert
    a field; ``tests/unit/test_audit_wire.py`` holds the lines.
    """

    schema_version: int
    event_id: str
    event_type: str
    event_time: str
    stage: str
    request: RequestSection | None
    principal: PrincipalSection | None
    source: SourceSection | None
    resource: ResourceSection | None
    action: str | None
    decision: DecisionSection | None
    outcome: ResponseRecord | None
    elevation: ElevationRecord | None
    aws: AwsSection | OperatorSection | None
    anomalies: list[str]
    policy_change: AdminDetails | None
    grant: AdminDetails | None
    # Gateway events only: absent from the wire form of every other event.
    gateway: GatewaySection | None = field(default=None, metadata=OMIT_NONE)
    # Signing key events only (an assertion key's issuance, rotation or expiry).
    signing_key: SigningKeySection | None = field(default=None, metadata=OMIT_NONE)
    # Session events only (a browser session's sign-in, refresh, sign-out or revocation).
    session: SessionSection | None = field(default=None, metadata=OMIT_NONE)
    # Alert events only (a detection rule fired): appended last, like every member.
    alert: AlertSection | None = field(default=None, metadata=OMIT_NONE)

    def __init__(
        self,
        schema_version: int,
        event_id: str,
        event_type: str,
        event_time: str,
        stage: str,
        request: RequestSection | None,
        principal: PrincipalSection | None,
        source: SourceSection | None,
        resource: ResourceSection | None,
        action: str | None,
        decision: DecisionSection | None,
        outcome: ResponseRecord | None,
        elevation: ElevationRecord | None,
        aws: AwsSection | OperatorSection | None,
        anomalies: list[str],
        policy_change: AdminDetails | None,
        grant: AdminDetails | None,
        gateway: GatewaySection | None = None,
        signing_key: SigningKeySection | None = None,
        session: SessionSection | None = None,
        alert: AlertSection | None = None,
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
        init(self, "signing_key", signing_key)
        init(self, "session", session)
        init(self, "alert", alert)


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
    """Assemble one audit event, in its wire form.

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
        RequestSection(  # request
            request.request_id,
            request.extended_request_id,
            request.lambda_request_id,
            request.trace_id,
            decision_id or event_id,
        ),
        principal_section(identity),  # principal
        SourceSection(request.source_ip, request.user_agent),  # source
        ResourceSection(  # resource
            request.host,
            request.method,
            request.path,
            request.query,
            resource.route_id,
            resource.upstream,
            resource.sensitive,
        ),
        action_for_method(request.method),  # action
        decision.section(),  # decision
        response,  # outcome
        decision.elevation,  # elevation
        None if aws is None else aws.section(),  # aws
        list(anomalies),  # anomalies
        None,  # policy_change
        None,  # grant
    ).as_dict()


def build_admin_event(
    event_type: AdminEventType,
    *,
    stage: str,
    details: AdminDetails,
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
    details:
        The section: a :class:`~chalicelib.audit.sections.PolicyChangeSection`,
        a :class:`~chalicelib.audit.sections.GrantRefusalSection`, or a
        mapping already in wire form (a grant's lifecycle details).
    operator:
        The AWS caller identity (ARN) that made the change, recorded as
        ``aws.caller_arn`` (the other keys of :class:`AwsRecord` are request-only).
    identity:
        The verified OIDC principal acting (a grant's requester or approver), if any.
    event_id:
        The event's id (a fresh UUIDv7 when None).
    request:
        The API request that carried the action (grant API): its ids and source.

    Returns
    -------
    dict
        The event in its wire form.
    """
    event_id = event_id or uuid7()
    return AuditEvent(
        schema_version=SCHEMA_VERSION,
        event_id=event_id,
        event_type=event_type,
        event_time=utc_timestamp(),
        stage=stage,
        request=_carrier(request),
        principal=principal_section(identity),
        source=_source(request),
        resource=None,
        action="admin",
        decision=None,
        outcome=None,
        elevation=None,
        aws=OperatorSection(operator) if operator else None,
        anomalies=[],
        policy_change=details if event_type == "policy_change" else None,
        grant=details if event_type == "grant" else None,
        signing_key=details
        if event_type == "signing_key" and isinstance(details, SigningKeySection)
        else None,
    ).as_dict()


def _carrier(request: GatewayRequest | None) -> RequestSection | None:
    """The ``request`` section of an event an API request carried (no decision of its own)."""
    if request is None:
        return None
    return RequestSection(
        request.request_id, request.extended_request_id, None, request.trace_id, None
    )


def _source(request: GatewayRequest | None) -> SourceSection | None:
    return None if request is None else SourceSection(request.source_ip, request.user_agent)


def build_session_event(
    section: SessionSection,
    *,
    stage: str,
    identity: Identity | None = None,
    request: GatewayRequest | None = None,
    operator: str | None = None,
    event_id: str | None = None,
) -> dict[str, Any]:
    """A ``session`` event: one step in the life of a browser session.

    Parameters
    ----------
    section:
        What happened (:class:`~chalicelib.audit.sections.SessionSection`).
    stage:
        The stage the session belongs to.
    identity:
        The signed-in principal, when known (a failed sign-in may know none).
    request:
        The request that carried the step (the sign-in callback, a sign-out):
        its ids and source, as for :func:`build_admin_event`.
    operator:
        The AWS caller identity (ARN) of an operator who revoked the session,
        recorded as ``aws.caller_arn``.
    event_id:
        The event's id (a fresh UUIDv7 when None).

    Returns
    -------
    dict
        The event in its wire form: ``resource``, ``decision`` and the other
        request-only sections null, ``session`` last.
    """
    event_id = event_id or uuid7()
    return AuditEvent(
        schema_version=SCHEMA_VERSION,
        event_id=event_id,
        event_type="session",
        event_time=utc_timestamp(),
        stage=stage,
        request=_carrier(request),
        principal=principal_section(identity),
        source=_source(request),
        resource=None,
        action=None,
        decision=None,
        outcome=None,
        elevation=None,
        aws=OperatorSection(operator) if operator else None,
        anomalies=[],
        policy_change=None,
        grant=None,
        session=section,
    ).as_dict()


def build_alert_event(
    section: AlertSection,
    *,
    stage: str,
    event_time: str,
    principal: PrincipalSection | None = None,
) -> dict[str, Any]:
    """An ``alert`` event: a detection rule fired; its id is the alert's id.

    Parameters
    ----------
    section:
        What fired, about whom, and the evidence (:class:`AlertSection`).
    stage:
        The stage the alert is about.
    event_time:
        When the alert was raised (RFC 3339 UTC).
    principal:
        The principal the alert is about, when it is about one.

    Returns
    -------
    dict
        The event in its wire form: the request-only sections null, ``alert`` last.
    """
    return AuditEvent(
        schema_version=SCHEMA_VERSION,
        event_id=section.alert_id,
        event_type="alert",
        event_time=event_time,
        stage=stage,
        request=None,
        principal=principal,
        source=None,
        resource=None,
        action=None,
        decision=None,
        outcome=None,
        elevation=None,
        aws=None,
        anomalies=[],
        policy_change=None,
        grant=None,
        alert=section,
    ).as_dict()
