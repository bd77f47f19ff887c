"""The proxy's audit events: what each request got, recorded before it is answered.

A request the proxy answers yields one ``response`` event, linked to the
decision that let it through; a request refused before it could be decided
on (no identity context, no route) yields a ``decision`` event instead.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from chalicelib.apigw.events import JUSTIFICATION_HEADER
from chalicelib.audit.schema import (
    AwsRecord,
    DecisionRecord,
    RequestRecord,
    ResourceRecord,
    build_event,
)
from chalicelib.audit.sections import ElevationRecord, ResponseRecord
from chalicelib.authorize.decider import resource_record
from chalicelib.proxy.headers import is_gatehouse_header
from chalicelib.reasons import Reason

if TYPE_CHECKING:
    from collections.abc import Mapping

    from chalicelib.apigw.events import GatewayRequest
    from chalicelib.audit import AuditEmitter
    from chalicelib.authorize.context import GrantedAccess
    from chalicelib.identity import Identity
    from chalicelib.policy import Route
    from chalicelib.proxy.answers import ProxyResponse
    from chalicelib.proxy.errors import Refusal
    from chalicelib.proxy.upstream import UpstreamResponse


@dataclass(frozen=True, slots=True)
class Destination:
    """An authorized request's route, and the decision that allowed it."""

    route: Route
    decision_id: str
    policy_version: int | None
    cached: bool
    elevation: ElevationRecord | None = None
    default_issuer: str = ""  # the deciding policy's (for the identity headers)


@dataclass(slots=True)
class AwsCall:
    """What is known of a request's AWS upstream call, for its response event."""

    record: AwsRecord


@dataclass(slots=True)
class Served:
    """How far one request got, for its record: access, route, AWS call, answer or refusal."""

    access: GrantedAccess | None = None
    destination: Destination | None = None
    aws_call: AwsCall | None = None
    upstream: UpstreamResponse | None = None
    refusal: Refusal | None = None


class Recorder:
    """Emits the proxy's audit events.

    Parameters
    ----------
    emitter:
        Where events go; :class:`~chalicelib.audit.AuditUnavailable` from it
        propagates (the request then fails closed).
    """

    def __init__(self, emitter: AuditEmitter) -> None:
        self._emitter = emitter

    def record(
        self,
        request: GatewayRequest,
        record: RequestRecord,
        served: Served,
        response: ProxyResponse,
        started: float,
    ) -> None:
        """Record what was answered: the one place a refusal reaches the trail."""
        refusal, access, destination = served.refusal, served.access, served.destination
        if refusal is not None and refusal.recorded_as == "decided":
            return  # the decision event that refused it says everything
        if refusal is not None and refusal.recorded_as == "decision":
            failure = DecisionRecord(
                "error",
                (refusal.reason or Reason.POLICY_UNAVAILABLE,),
                policy_version=access.policy_version if access else None,
                decided_by="proxy",
                detail=refusal.detail,
            )
            identity = access.identity if access else None
            self.decision(record, identity, failure, ResourceRecord())
            return
        assert access is not None  # a response is recorded only once access was granted
        outcome = ResponseRecord(
            status=response.status,
            bytes_in=len(request.body),
            bytes_out=len(response.body),
            latency_ms=(time.perf_counter() - started) * 1000,
            upstream_latency_ms=served.upstream.elapsed_ms if served.upstream else None,
            error=refusal.error if refusal else None,
        )
        if destination is not None:
            decision = DecisionRecord(
                "allow",
                (),
                policy_version=destination.policy_version,
                decided_by="proxy",
                cached=destination.cached,
                elevation=destination.elevation,
            )
            resource = resource_record(destination.route)
        else:
            # Refused before any route was chosen: the refusal is the proxy's decision.
            assert refusal is not None and refusal.reason is not None
            decision = DecisionRecord(
                "deny", (refusal.reason,), decided_by="proxy", detail=refusal.detail
            )
            resource = ResourceRecord()
        event = build_event(
            "response",
            record,
            identity=access.identity,
            decision=decision,
            resource=resource,
            decision_id=destination.decision_id if destination else access.decision_id,
            response=outcome,
            anomalies=anomalies(request),
            aws=served.aws_call.record if served.aws_call else None,
        )
        self._emitter.emit(event)

    def decision(
        self,
        record: RequestRecord,
        identity: Identity | None,
        decision: DecisionRecord,
        resource: ResourceRecord,
        decision_id: str | None = None,
    ) -> None:
        """Record a decision the proxy made (``decision_id``: its id, when already known)."""
        event = build_event(
            "decision",
            record,
            identity=identity,
            decision=decision,
            resource=resource,
            event_id=decision_id,
        )
        self._emitter.emit(event)


def elevation_from_context(context: Mapping[str, Any] | None) -> ElevationRecord | None:
    """The elevation an authorizer context carries, or None."""
    if not context:
        return None
    return ElevationRecord(
        grant_id=context.get("grant_id"),
        approver=context.get("approver"),
        justification=context.get("justification"),
        break_glass=context.get("break_glass") is True,
    )


def anomalies(request: GatewayRequest) -> list[str]:
    """Signs of tampering worth an alert: a client speaking in the gateway's header namespace.

    The break-glass justification is the one header clients are meant to send there.
    """
    spoofed = any(
        is_gatehouse_header(name) and name.lower() != JUSTIFICATION_HEADER
        for name, _ in request.headers
    )
    return ["client_sent_gatehouse_header"] if spoofed else []
