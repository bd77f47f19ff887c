"""The REQUEST authorizer: bearer token + policy -> IAM policy, audited.

Every invocation produces exactly one ``decision`` audit event, enqueued
before API Gateway gets an answer. The answer is:

- an explicit **Allow** (with the principal in the context) when the policy allows;
- an explicit **Deny** (403) when the policy denies;
- ``Unauthorized`` (401) when no valid credentials were presented;
- a failure (API Gateway's AUTHORIZER_FAILURE response, 503) when Gatehouse
  cannot decide: the policy or the issuer's keys are unavailable, or the
  audit event cannot be enqueued.
"""

from __future__ import annotations

import contextlib
import re
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from chalicelib.apigw.context import authorizer_context
from chalicelib.apigw.events import GatewayRequest, MalformedEvent, parse_authorizer_event
from chalicelib.apigw.overrides import method_override
from chalicelib.audit.schema import (
    QUERY_VALUE_REDACTION,
    DecisionRecord,
    Outcome,
    RequestRecord,
    ResourceRecord,
    build_admin_event,
    build_event,
    uuid7,
)
from chalicelib.authorize.iam import MethodArn, policy_document, whole_api_resources
from chalicelib.grants.errors import GrantError, GrantNotAudited
from chalicelib.grants.lifecycle import deliver, grant_details
from chalicelib.identity import Identity, TokenRejected
from chalicelib.observability import count_decision
from chalicelib.policy import (
    AccessRequest,
    AmbiguousPath,
    Decision,
    PolicyUnavailable,
    RequestTarget,
    parse_target,
)
from chalicelib.reasons import Reason

if TYPE_CHECKING:
    from chalicelib.audit import AuditEmitter
    from chalicelib.grants import ActiveGrants, GrantStore
    from chalicelib.grants.model import Grant
    from chalicelib.identity import TokenVerifier
    from chalicelib.observability import MetricsRecorder
    from chalicelib.policy import ActivePolicy

_BEARER = re.compile(r"[Bb][Ee][Aa][Rr][Ee][Rr] +([A-Za-z0-9_.~+/=-]+) *")


class Unauthorized(Exception):
    """Makes API Gateway answer 401; it matches the error message exactly."""

    def __init__(self) -> None:
        super().__init__("Unauthorized")


class AuthorizerFailure(Exception):
    """Gatehouse cannot decide; API Gateway answers with its AUTHORIZER_FAILURE response."""


@dataclass(frozen=True, slots=True)
class Verdict:
    """What the authorizer concluded, before it is turned into an answer."""

    reason: Reason
    identity: Identity | None = None
    decision: Decision | None = None
    detail: str | None = None
    claim_names: tuple[str, ...] = ()
    # The principal's grants as the decision saw them (a cached answer lists them too).
    grants: tuple[Grant, ...] = ()
    # The path decided on (None when it could not be parsed, or was not reached).
    target: RequestTarget | None = None

    @property
    def allowed(self) -> bool:
        return self.decision is not None and self.decision.allowed


def bearer_token(request: GatewayRequest) -> str:
    """The bearer token of the request.

    Raises
    ------
    TokenRejected
        ``missing_credentials`` without a Bearer Authorization header,
        ``malformed_token`` when there are several or it is not a token.
    """
    values = request.headers.get_all("authorization")
    if not values:
        raise TokenRejected(Reason.MISSING_CREDENTIALS, "no Authorization header")
    if len(values) > 1:
        raise TokenRejected(Reason.MALFORMED_TOKEN, "more than one Authorization header")
    if not values[0][:7].lower().startswith("bearer"):
        raise TokenRejected(Reason.MISSING_CREDENTIALS, "Authorization is not a Bearer token")
    match = _BEARER.fullmatch(values[0])
    if match is None:
        raise TokenRejected(
            Reason.MALFORMED_TOKEN, "Authorization is not a well-formed Bearer token"
        )
    return match.group(1)


class Authorizer:
    """Decides API Gateway REQUEST authorizer events.

    Parameters
    ----------
    verifier:
        Verifies bearer tokens.
    policy:
        The active policy of this container.
    emitter:
        Enqueues audit events.
    query_redaction:
        Names of query parameters whose values are redacted in events.
    query_value_redaction:
        Query values redacted in events whatever their names (credential-shaped ones).
    ttl_seconds:
        API Gateway's result-cache TTL; above 0 every answer covers the whole API.
    grants:
        The live just-in-time grants of this container (none: grants are not honoured).
    grant_store:
        Where the first use of a grant is recorded.
    stage:
        The stage name, for grant ``used`` events.
    metrics:
        Where decision counts go.
    """

    def __init__(
        self,
        *,
        verifier: TokenVerifier,
        policy: ActivePolicy,
        emitter: AuditEmitter,
        query_redaction: re.Pattern[str],
        query_value_redaction: re.Pattern[str] | None = QUERY_VALUE_REDACTION,
        ttl_seconds: int,
        grants: ActiveGrants | None = None,
        grant_store: GrantStore | None = None,
        stage: str = "",
        metrics: MetricsRecorder | None = None,
    ) -> None:
        self._verifier = verifier
        self._policy = policy
        self._emitter = emitter
        self._redaction = query_redaction
        self._value_redaction = query_value_redaction
        self._ttl_seconds = ttl_seconds
        self._grants = grants
        self._grant_store = grant_store
        self._stage = stage
        self._metrics = metrics
        self._grants_marked_used: set[str] = set()

    def handle(self, event: dict[str, Any], lambda_request_id: str | None) -> dict[str, Any]:
        """Answer one authorizer event.

        Raises
        ------
        Unauthorized
            No valid credentials (API Gateway answers 401).
        AuthorizerFailure
            Gatehouse cannot decide or cannot audit (API Gateway answers 503).
        """
        try:
            request = parse_authorizer_event(event)
            method_arn = MethodArn.parse(request.method_arn or "")
        except (MalformedEvent, ValueError) as exc:
            raise AuthorizerFailure(f"unusable authorizer event: {exc}") from exc
        verdict = self.decide(request)
        decision_id = uuid7()
        self._audit(request, verdict, decision_id, lambda_request_id)
        if self._metrics is not None:
            decision = verdict.decision
            count_decision(
                self._metrics,
                verdict.reason,
                allowed=verdict.allowed,
                break_glass=decision is not None and decision.break_glass,
            )
        if verdict.decision is not None and verdict.decision.grant is not None:
            self._record_first_use(verdict, decision_id)
        return self._answer(request, method_arn, verdict, decision_id)

    def decide(self, request: GatewayRequest) -> Verdict:
        """Establish identity and evaluate the policy (and grants) for ``request``."""
        try:
            identity = self._verifier.verify(bearer_token(request))
        except TokenRejected as exc:
            return Verdict(exc.reason, detail=exc.detail)
        try:
            target = parse_target(request.path)
        except AmbiguousPath as exc:
            return Verdict(Reason.AMBIGUOUS_PATH, identity, detail=str(exc))
        override = method_override(request)
        if override is not None:
            return Verdict(Reason.AMBIGUOUS_REQUEST, identity, detail=override, target=target)
        try:
            policy = self._policy.current()
        except PolicyUnavailable as exc:
            return Verdict(Reason.POLICY_UNAVAILABLE, identity, detail=str(exc), target=target)
        grants, detail = live_grants(self._grants, identity)
        decision = policy.evaluate(identity, access_request(request, target), grants)
        if decision.allowed:
            detail = None  # grants being unavailable changed nothing
        return Verdict(
            decision.reasons[0],
            identity,
            decision,
            detail,
            policy.claim_names,
            tuple(grants),
            target,
        )

    def _record_first_use(self, verdict: Verdict, decision_id: str) -> None:
        """Emit the grant's ``used`` event the first time any container uses it."""
        decision, identity = verdict.decision, verdict.identity
        assert decision is not None and decision.grant is not None and identity is not None
        grant = decision.grant
        if self._grant_store is None or grant.id in self._grants_marked_used:
            return
        now = time.time()
        details = grant_details("used", grant, decision_id=decision_id)
        event = build_admin_event(
            "grant", stage=self._stage, details=details, operator=None, identity=identity
        )
        try:
            first = self._grant_store.mark_used(grant.id, now, event=event)
        except GrantError:
            return  # the decision event already names the grant; the marker can wait
        self._grants_marked_used.add(grant.id)
        if first:
            # Kept in the outbox if the queue is down; the decision event's emit decides.
            with contextlib.suppress(GrantNotAudited):
                deliver(self._grant_store, self._emitter, event, "used", grant.id)

    def _audit(
        self,
        request: GatewayRequest,
        verdict: Verdict,
        decision_id: str,
        lambda_request_id: str | None,
    ) -> None:
        decision = verdict.decision
        if decision is not None:
            record = DecisionRecord.from_decision(decision, detail=verdict.detail)
            route = decision.route
            resource = (
                ResourceRecord(route.id, route.upstream, route.sensitive)
                if route
                else ResourceRecord()
            )
        else:
            outcome: Outcome = "error" if verdict.reason.is_decision_failure else "deny"
            record = DecisionRecord(
                outcome=outcome, reasons=(verdict.reason,), detail=verdict.detail
            )
            resource = ResourceRecord()
        event = build_event(
            "decision",
            RequestRecord.from_request(
                request,
                lambda_request_id,
                self._redaction,
                verdict.target,
                value_redaction=self._value_redaction,
            ),
            identity=verdict.identity,
            decision=record,
            resource=resource,
            event_id=decision_id,
        )
        self._emitter.emit(event)  # AuditUnavailable propagates: no audit, no access

    def _answer(
        self, request: GatewayRequest, method_arn: MethodArn, verdict: Verdict, decision_id: str
    ) -> dict[str, Any]:
        if verdict.reason.is_credential_failure:
            raise Unauthorized
        if verdict.reason.is_decision_failure:
            raise AuthorizerFailure(verdict.reason.value)
        identity = verdict.identity
        assert identity is not None  # every remaining verdict has one
        this_request = str(method_arn)
        # An ambiguous request is let through to the proxy, which refuses it
        # with 400 (API Gateway can only answer a Deny with 403).
        refusal = verdict.reason.value if verdict.reason.is_ambiguous else ""
        if not verdict.allowed and self._ttl_seconds > 0:
            # A cached Deny would refuse this method and path at the gateway for the
            # whole TTL, unseen: no decision, no audit, not even a break-glass retry
            # with its justification or a grant approved meanwhile. Let it through:
            # the proxy answers this request 403 and decides every later one again.
            refusal = refusal or verdict.reason.value
        passes = verdict.allowed or bool(refusal)
        allow, deny = ([this_request], []) if passes else ([], [this_request])
        if self._ttl_seconds > 0:
            # The answer is cached for the whole API: describe everything.
            try:
                policy = self._policy.current()
            except PolicyUnavailable as exc:
                raise AuthorizerFailure(Reason.POLICY_UNAVAILABLE.value) from exc
            # Allows only: a superset; the proxy re-decides cached answers.
            permissions = policy.permissions(identity, verdict.grants)
            allow = whole_api_resources(method_arn, permissions) + allow
        answer: dict[str, Any] = {
            "principalId": identity.subject,
            "policyDocument": policy_document(allow, deny),
        }
        answer["context"] = authorizer_context(
            identity,
            verdict.decision,
            decision_id=decision_id,
            request_id=request.request_id,
            claim_names=verdict.claim_names,
            refusal=refusal,
        )
        return answer


def live_grants(
    grants: ActiveGrants | None, identity: Identity
) -> tuple[tuple[Grant, ...], str | None]:
    """The principal's live grants, and why there are none when they cannot be read.

    Grants can only turn a deny into an allow, so when they are unavailable
    the decision goes on without them (fail closed) and says so.
    """
    if grants is None:
        return (), None
    try:
        return grants.for_principal(identity.issuer, identity.subject), None
    except GrantError as exc:
        return (), f"grants unavailable: {exc}"


def access_request(request: GatewayRequest, target: RequestTarget) -> AccessRequest:
    """What ``request`` asks for, now, at its parsed ``target``."""
    return AccessRequest(
        request.host,
        request.method,
        target.path,
        source_ip=request.source_ip,
        at=time.time(),
        justification=request.justification,
    )
