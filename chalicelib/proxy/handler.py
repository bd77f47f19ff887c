"""The proxy: forwards an authorized request upstream and audits the response.

Each request yields one ``response`` audit event (linked to its decision),
enqueued before the response returns; when it cannot be enqueued the client
gets 503 instead of the upstream's answer. When API Gateway served the
authorizer's answer from its cache (the answer was made for another request
id) the proxy re-decides against the active policy and audits that decision,
so cached answers can neither outlive a policy change nor go unrecorded.

A CORS preflight the authorizer decided by its route's ``cors`` block (it
carries no principal) is answered here, 204 with the route's CORS headers,
and never forwarded; the authorizer's decision event is its record. On a
route with ``cors`` the answers to listed origins name them
(``Access-Control-Allow-Origin``) in place of anything the upstream said.

This module decides what to forward and forwards it; the answers live in
:mod:`chalicelib.proxy.answers` and the audit events in
:mod:`chalicelib.proxy.recording`.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlencode

from chalicelib.apigw.events import GatewayRequest, MalformedEvent, parse_proxy_event
from chalicelib.apigw.overrides import method_override
from chalicelib.audit import AuditUnavailable
from chalicelib.audit.redaction import QUERY_VALUE_REDACTION
from chalicelib.audit.schema import AwsRecord, DecisionRecord, RequestRecord, uuid7
from chalicelib.authorize.context import GrantedAccess, MissingContext, granted_access
from chalicelib.authorize.cors import (
    CORS_CONTEXT_KEY,
    decide_preflight,
    preflight_headers,
    request_preflight,
    with_response_cors,
)
from chalicelib.authorize.decider import decision_record, parse_request_target, resource_record
from chalicelib.authorize.navigation import SIGN_IN_CONTEXT_KEY
from chalicelib.aws.errors import AwsUpstreamError
from chalicelib.observability import count_decision, measure_upstream
from chalicelib.policy import AmbiguousPath, PolicyUnavailable, RequestTarget
from chalicelib.proxy.answers import (
    UPSTREAM_MESSAGES,
    ProxyResponse,
    error_response,
    refusal_answer,
)
from chalicelib.proxy.errors import Refusal, SigningError, UpstreamError
from chalicelib.proxy.headers import (
    ForwardedFor,
    client_response_headers,
    identity_headers,
    upstream_request_headers,
)
from chalicelib.proxy.origin import parse_upstream
from chalicelib.proxy.recording import (
    AwsCall,
    Destination,
    Recorder,
    Served,
    elevation_from_context,
)
from chalicelib.reasons import Reason

if TYPE_CHECKING:
    from chalicelib.audit import AuditEmitter
    from chalicelib.authenticate.browser import BrowserRedirects
    from chalicelib.authorize.decider import Decider
    from chalicelib.aws.sessions import RoleSessions
    from chalicelib.identity import Identity
    from chalicelib.observability import MetricsRecorder
    from chalicelib.policy import PolicyVersions, Route
    from chalicelib.proxy.assertion import AssertionIssuer
    from chalicelib.proxy.upstream import UpstreamClient, UpstreamResponse


@dataclass(frozen=True, slots=True)
class _Redecision:
    """The proxy's own decision on a request let through by a cached answer."""

    record: DecisionRecord
    route: Route | None = None
    status: int = 403
    message: str = "forbidden"
    default_issuer: str = ""
    preflight: ProxyResponse | None = None
    about: Route | None = None  # the route a refusal was about (a preflight's)


class _Answered(Exception):
    """The request is answered without the upstream (an allowed CORS preflight)."""

    def __init__(self, response: ProxyResponse) -> None:
        super().__init__("answered by the gateway")
        self.response = response


class Proxy:
    """Handles Lambda proxy integration events for authorized requests.

    Parameters
    ----------
    decider:
        Decides again what API Gateway let through on a cached answer.
    versions:
        The policy versions a decision may name (its route is looked up there).
    sign_in:
        Browser sign-in (none: the stage has none): where a browser without
        usable credentials is sent, and how a session's last use is renewed.
    """

    def __init__(
        self,
        *,
        decider: Decider,
        versions: PolicyVersions,
        assertions: AssertionIssuer,
        upstream: UpstreamClient,
        emitter: AuditEmitter,
        query_redaction: re.Pattern[str],
        query_value_redaction: re.Pattern[str] | None = QUERY_VALUE_REDACTION,
        max_request_body_bytes: int,
        metrics: MetricsRecorder | None = None,
        aws_sessions: RoleSessions | None = None,
        sign_in: BrowserRedirects | None = None,
    ) -> None:
        self._sign_in = sign_in
        self._decider = decider
        self._aws_sessions = aws_sessions
        self._versions = versions
        self._assertions = assertions
        self._upstream = upstream
        self._recorder = Recorder(emitter)
        self._redaction = query_redaction
        self._value_redaction = query_value_redaction
        self._max_request_body = max_request_body_bytes
        self._metrics = metrics

    def handle(self, event: dict[str, Any], lambda_request_id: str | None) -> dict[str, Any]:
        """Answer one proxy event."""
        started = time.perf_counter()
        try:
            request = parse_proxy_event(event)
        except MalformedEvent:
            context = event.get("requestContext") if isinstance(event, dict) else None
            request_id = context.get("requestId") if isinstance(context, dict) else None
            return error_response(400, "malformed request", request_id).as_lambda_response(
                request_id
            )
        sign_in_reason = request.authorizer.get(SIGN_IN_CONTEXT_KEY)
        if sign_in_reason is not None:
            # The authorizer found no usable credentials on a browser's page
            # load and audited that decision; the answer is a redirect, never
            # the upstream.
            return self._sign_in_redirect(request, str(sign_in_reason)).as_lambda_response(
                request.request_id
            )
        preflight_reason = request.authorizer.get(CORS_CONTEXT_KEY)
        if preflight_reason is not None:
            # A preflight decided (and audited) by the authorizer: answered here.
            return self._preflight(request, str(preflight_reason)).as_lambda_response(
                request.request_id
            )
        # Parsed once: the path decided here is the path recorded and forwarded.
        parsed = parse_request_target(request)
        target = parsed if isinstance(parsed, RequestTarget) else None
        record = RequestRecord.from_request(
            request,
            lambda_request_id,
            self._redaction,
            target.path if target else None,
            value_redaction=self._value_redaction,
        )
        try:
            response = self._serve(request, record, parsed, started)
        except AuditUnavailable:
            self._count("AuditUnavailable")
            response = error_response(503, "audit trail unavailable", request.request_id)
        return response.as_lambda_response(request.request_id)

    def _serve(
        self,
        request: GatewayRequest,
        record: RequestRecord,
        parsed: RequestTarget | AmbiguousPath,
        started: float,
    ) -> ProxyResponse:
        served = Served()
        try:
            served.access = self._granted_access(request)
            served.destination = self._destination(request, record, served.access, parsed)
            assert isinstance(parsed, RequestTarget)  # an ambiguous request was refused above
            aws = served.destination.route.aws
            if aws is not None:
                served.aws_call = AwsCall(AwsRecord(aws.role_arn, aws.region, aws.service))
            upstream = self._forward(
                request, parsed, served.access, served.destination, served.aws_call
            )
            served.upstream = upstream
            response_headers = with_response_cors(
                served.destination.route.cors,
                request.headers.get_all("origin"),
                client_response_headers(upstream.headers),
            )
            if served.access.identity.browser_session_id is not None and self._sign_in:
                renewal = self._sign_in.renewed_cookie(
                    request.headers.get_all("cookie"), served.access.identity.browser_session_id
                )
                if renewal is not None:
                    response_headers.setdefault("Set-Cookie", []).append(renewal)
                    # A shared cache must never hand this person's session to another.
                    for name in [n for n in response_headers if n.lower() == "cache-control"]:
                        del response_headers[name]
                    response_headers["Cache-Control"] = ["private, no-store"]
            response = ProxyResponse(upstream.status, response_headers, upstream.body)
        except Refusal as refusal:
            served.refusal = refusal
            response = error_response(refusal.status, refusal.message, request.request_id)
        except _Answered as answered:
            return answered.response  # its decision event is its record
        self._recorder.record(request, record, served, response, started)
        measure_upstream(self._metrics, served.upstream.elapsed_ms if served.upstream else None)
        return response

    def _preflight(self, request: GatewayRequest, reason: str) -> ProxyResponse:
        """The 204 of a preflight the authorizer allowed for this request, else 403.

        The answer is derived from the very route and policy version that
        decided, and must come to the same decision; anything else is refused.
        """
        context = request.authorizer
        preflight = request_preflight(request)
        try:
            version = int(context.get("policy_version") or 0)
            route = self._versions.get(version).document.route(str(context.get("route_id")))
        except (PolicyUnavailable, ValueError):
            route = None
        if (
            reason != Reason.CORS_PREFLIGHT_ALLOWED.value
            or context.get("decided_for") != request.request_id
            or preflight is None
            or route is None
            or route.cors is None
            or decide_preflight(route.cors, preflight) is not Reason.CORS_PREFLIGHT_ALLOWED
        ):
            return error_response(403, "forbidden", request.request_id)
        return ProxyResponse(204, preflight_headers(route.cors, preflight), b"")

    def _sign_in_redirect(self, request: GatewayRequest, reason: str) -> ProxyResponse:
        if self._sign_in is None:
            # An authorizer of another configuration: refuse rather than guess.
            return error_response(401, "unauthorized", request.request_id)
        return self._sign_in.redirect(request, reason)

    def _granted_access(self, request: GatewayRequest) -> GrantedAccess:
        try:
            return granted_access(request.authorizer)
        except MissingContext as exc:
            raise Refusal(
                500,
                "gateway misconfigured",
                reason=Reason.NO_IDENTITY_CONTEXT,
                recorded_as="decision",
            ) from exc

    def _refusal(self, refusal: str, detail: str | None = None) -> Refusal:
        """What the authorizer decided against but let through to the proxy.

        An ambiguous request gets 400 (API Gateway has only 403 for a Deny); a
        denial let through because the answer is cached gets 403 here.
        """
        try:
            reason = Reason(refusal)
        except ValueError:
            reason = Reason.NO_MATCHING_RULE
        status, message = refusal_answer(reason)
        return Refusal(status, message, reason=reason, error=reason.value, detail=detail or refusal)

    def _destination(
        self,
        request: GatewayRequest,
        record: RequestRecord,
        access: GrantedAccess,
        parsed: RequestTarget | AmbiguousPath,
    ) -> Destination:
        if access.decided_for != request.request_id:
            return self._redecide(request, record, access, parsed)
        # The authorizer's checks, repeated on what is about to be forwarded:
        # it never saw the body, and an ambiguous request is never forwarded.
        if isinstance(parsed, AmbiguousPath):
            raise self._refusal(Reason.AMBIGUOUS_PATH.value, str(parsed))
        override = method_override(request)
        if override is not None:
            raise self._refusal(Reason.AMBIGUOUS_REQUEST.value, override)
        if access.refusal:
            raise self._refusal(access.refusal)
        try:
            route = self._versions.get(access.policy_version).document.route(access.route_id)
        except PolicyUnavailable:
            route = None
        if route is None:
            raise Refusal(
                503,
                "policy unavailable",
                reason=Reason.POLICY_UNAVAILABLE,
                detail=f"route {access.route_id!r} of v{access.policy_version} is unavailable",
                recorded_as="decision",
            )
        elevation = elevation_from_context(access.elevation)
        return Destination(
            route,
            access.decision_id,
            access.policy_version,
            cached=False,
            elevation=elevation,
            default_issuer=self._versions.get(access.policy_version).default_issuer,
        )

    def _redecide(
        self,
        request: GatewayRequest,
        record: RequestRecord,
        access: GrantedAccess,
        parsed: RequestTarget | AmbiguousPath,
    ) -> Destination:
        decision_id = uuid7()
        redecision = self._decide_again(request, access.identity, parsed)
        if self._metrics is not None:
            decided = redecision.record
            count_decision(
                self._metrics,
                decided.reasons[0],
                allowed=redecision.route is not None,
                break_glass=decided.elevation is not None and decided.elevation.break_glass,
            )
        route = redecision.route
        resource = resource_record(route or redecision.about)
        self._recorder.decision(record, access.identity, redecision.record, resource, decision_id)
        if redecision.preflight is not None:
            raise _Answered(redecision.preflight)
        if route is None:
            raise Refusal(redecision.status, redecision.message, recorded_as="decided")
        return Destination(
            route,
            decision_id,
            redecision.record.policy_version,
            cached=True,
            elevation=redecision.record.elevation,
            default_issuer=redecision.default_issuer,
        )

    def _decide_again(
        self, request: GatewayRequest, identity: Identity, parsed: RequestTarget | AmbiguousPath
    ) -> _Redecision:
        outcome = self._decider.decide(request, identity=identity, parsed=parsed)
        record = decision_record(outcome, decided_by="proxy", cached=True)
        preflight = outcome.preflight
        if preflight is not None:
            about = preflight.route
            if outcome.allowed and about.cors is not None:
                headers = preflight_headers(about.cors, preflight.preflight)
                answer = ProxyResponse(204, headers, b"")
                return _Redecision(record, about=about, preflight=answer)
            return _Redecision(record, about=about)
        decision = outcome.decision
        if decision is not None and decision.allowed and decision.route is not None:
            return _Redecision(record, route=decision.route, default_issuer=outcome.default_issuer)
        status, message = refusal_answer(outcome.reason)
        return _Redecision(record, status=status, message=message)

    def _forward(
        self,
        request: GatewayRequest,
        target: RequestTarget,
        access: GrantedAccess,
        destination: Destination,
        aws_call: AwsCall | None = None,
    ) -> UpstreamResponse:
        if len(request.body) > self._max_request_body:
            raise Refusal(413, "request body too large", error="request_too_large")
        route = destination.route
        try:
            assertion = self._assertions.issue(
                access.identity,
                audience=route.audience,
                request_id=request.request_id,
                decision_id=destination.decision_id,
                method=request.method,
                url=f"https://{request.host}{target.wire_path}",
            )
        except SigningError as exc:
            raise Refusal(503, "cannot sign identity assertion", error=str(exc)) from exc
        forwarded = ForwardedFor(
            client_ip=request.source_ip,
            proto="https",  # API Gateway endpoints only speak HTTPS
            host=request.host,
            request_id=request.request_id,
        )
        headers = upstream_request_headers(
            request.headers,
            forwarded,
            pass_authorization=route.pass_authorization,
            assertion=assertion,
            # The principal the decision used: the one the assertion names.
            identity=(
                identity_headers(access.identity, destination.default_issuer)
                if route.identity_headers
                else ()
            ),
        )
        # Built from the parsed parts, never by parsing a joined URL: the
        # upstream is sent exactly the path that was decided.
        upstream = parse_upstream(route.upstream)
        request_target = upstream.base_path + target.wire_path
        if request.query:
            request_target += "?" + urlencode(request.query, quote_via=quote)
        upstream_headers = headers.headers
        if aws_call is not None:
            url = upstream.origin.url + request_target
            upstream_headers = self._sign_for_aws(request, access, aws_call, url, upstream_headers)
        try:
            return self._upstream.send(
                request.method, upstream.origin, request_target, upstream_headers, request.body
            )
        except UpstreamError as exc:
            self._count("UpstreamErrors")
            message = UPSTREAM_MESSAGES.get(exc.status, "upstream unavailable")
            raise Refusal(exc.status, message, error=str(exc)) from exc

    def _sign_for_aws(
        self,
        request: GatewayRequest,
        access: GrantedAccess,
        aws_call: AwsCall,
        url: str,
        headers: list[tuple[str, str]],
    ) -> list[tuple[str, str]]:
        """Headers signed with the principal's session of the route's role; fails closed."""
        from chalicelib.aws.signing import sign_upstream_request

        upstream = aws_call.record
        try:
            if self._aws_sessions is None:
                raise AwsUpstreamError("this proxy has no STS sessions for AWS upstreams")
            session = self._aws_sessions.session_for(
                upstream.role_arn, access.identity, request.request_id
            )
            aws_call.record = AwsRecord(
                upstream.role_arn,
                upstream.region,
                upstream.service,
                session_name=session.session_name,
                source_identity=session.source_identity,
                access_key_id=session.access_key_id,
            )
            return sign_upstream_request(
                session,
                service=upstream.service,
                region=upstream.region,
                method=request.method,
                url=url,
                headers=headers,
                body=request.body,
                request_id=request.request_id,
            )
        except AwsUpstreamError as exc:
            self._count("AwsUpstreamErrors")
            raise Refusal(exc.status, exc.client_message, error=str(exc)) from exc

    def _count(self, name: str) -> None:
        if self._metrics is not None:
            self._metrics.add_metric(name=name, unit="Count", value=1)
