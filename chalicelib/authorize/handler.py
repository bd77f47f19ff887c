"""The REQUEST authorizer: an :class:`~chalicelib.authorize.decider.Outcome` -> an IAM answer.

Every invocation produces exactly one ``decision`` audit event, enqueued
before API Gateway gets an answer. The decision is made by the
:class:`~chalicelib.authorize.decider.Decider`; this module only answers:

- an explicit **Allow** (with the principal in the context) when the policy allows;
- an explicit **Deny** (403) when the policy denies;
- for a CORS preflight decided by its route's ``cors`` block: Allow of this
  method and path alone, with a context naming no principal (the proxy
  answers it 204 itself), or Deny (403) when refused;
- ``Unauthorized`` (401) when no valid credentials were presented;
- a failure (API Gateway's AUTHORIZER_FAILURE response, 503) when Gatehouse
  cannot decide: the policy or the issuer's keys are unavailable, or the
  audit event cannot be enqueued.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from chalicelib.apigw.events import GatewayRequest, MalformedEvent, parse_authorizer_event
from chalicelib.audit.redaction import QUERY_VALUE_REDACTION
from chalicelib.audit.schema import RequestRecord, build_event, uuid7
from chalicelib.authorize.context import authorizer_context
from chalicelib.authorize.cors import CORS_CONTEXT_KEY
from chalicelib.authorize.decider import Decider, Outcome, decision_record, resource_record
from chalicelib.authorize.iam import MethodArn, policy_document, whole_api_resources
from chalicelib.authorize.iam import permissions as iam_permissions
from chalicelib.authorize.navigation import ANONYMOUS_PRINCIPAL, is_navigation, sign_in_answer
from chalicelib.grants.usage import GrantUse
from chalicelib.observability import count_decision
from chalicelib.policy import PolicyUnavailable
from chalicelib.reasons import Reason

if TYPE_CHECKING:
    from chalicelib.audit import AuditEmitter
    from chalicelib.observability import MetricsRecorder
    from chalicelib.policy import ActivePolicy


class Unauthorized(Exception):
    """Makes API Gateway answer 401; it matches the error message exactly."""

    def __init__(self) -> None:
        super().__init__("Unauthorized")


class AuthorizerFailure(Exception):
    """Gatehouse cannot decide; API Gateway answers with its AUTHORIZER_FAILURE response."""


@dataclass(frozen=True, slots=True)
class AuthorizerAnswer:
    """The answer for API Gateway, and the grant use (if any) the entry point records."""

    response: dict[str, Any]
    grant_use: GrantUse | None = None


class Authorizer:
    """Answers API Gateway REQUEST authorizer events.

    Parameters
    ----------
    decider:
        Makes the decision.
    policy:
        The active policy of this container (for a cached answer's permissions).
    emitter:
        Enqueues audit events.
    query_redaction:
        Names of query parameters whose values are redacted in events.
    query_value_redaction:
        Query values redacted in events whatever their names (credential-shaped ones).
    ttl_seconds:
        API Gateway's result-cache TTL; above 0 every answer covers the whole API.
    metrics:
        Where decision counts go.
    sign_in:
        Whether the stage signs people in with a browser: then a browser
        navigating without usable credentials is let through to the proxy,
        which sends it to sign in (API Gateway can only answer 401 itself).
    """

    def __init__(
        self,
        *,
        decider: Decider,
        policy: ActivePolicy,
        emitter: AuditEmitter,
        query_redaction: re.Pattern[str],
        query_value_redaction: re.Pattern[str] | None = QUERY_VALUE_REDACTION,
        ttl_seconds: int,
        metrics: MetricsRecorder | None = None,
        sign_in: bool = False,
    ) -> None:
        self._sign_in = sign_in
        self._decider = decider
        self._policy = policy
        self._emitter = emitter
        self._redaction = query_redaction
        self._value_redaction = query_value_redaction
        self._ttl_seconds = ttl_seconds
        self._metrics = metrics

    def handle(self, event: dict[str, Any], lambda_request_id: str | None) -> AuthorizerAnswer:
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
        outcome = self.decide(request)
        decision_id = uuid7()
        self._audit(request, outcome, decision_id, lambda_request_id)
        if self._metrics is not None:
            count_decision(
                self._metrics,
                outcome.reason,
                allowed=outcome.allowed,
                break_glass=outcome.break_glass,
            )
        response = self._answer(request, method_arn, outcome, decision_id)
        decision = outcome.decision
        if decision is None or decision.grant is None or outcome.identity is None:
            return AuthorizerAnswer(response)
        return AuthorizerAnswer(response, GrantUse(decision.grant, outcome.identity, decision_id))

    def decide(self, request: GatewayRequest) -> Outcome:
        """Establish identity and evaluate the policy (and grants) for ``request``."""
        return self._decider.decide(request)

    def _audit(
        self,
        request: GatewayRequest,
        outcome: Outcome,
        decision_id: str,
        lambda_request_id: str | None,
    ) -> None:
        record = decision_record(outcome)
        route = outcome.route
        event = build_event(
            "decision",
            RequestRecord.from_request(
                request,
                lambda_request_id,
                self._redaction,
                outcome.target.path if outcome.target else None,
                value_redaction=self._value_redaction,
            ),
            identity=outcome.identity,
            decision=record,
            resource=resource_record(route),
            event_id=decision_id,
        )
        self._emitter.emit(event)  # AuditUnavailable propagates: no audit, no access

    def _answer(
        self, request: GatewayRequest, method_arn: MethodArn, outcome: Outcome, decision_id: str
    ) -> dict[str, Any]:
        if outcome.preflight is not None:
            return _preflight_answer(request, method_arn, outcome, decision_id)
        if outcome.reason.is_credential_failure:
            if self._sign_in and is_navigation(request):
                return sign_in_answer(method_arn, outcome.reason, decision_id, request.request_id)
            raise Unauthorized
        if outcome.reason.is_decision_failure:
            raise AuthorizerFailure(outcome.reason.value)
        identity = outcome.identity
        assert identity is not None  # every remaining outcome has one
        this_request = str(method_arn)
        # An ambiguous request is let through to the proxy, which refuses it
        # with 400 (API Gateway can only answer a Deny with 403).
        refusal = outcome.reason.value if outcome.reason.is_ambiguous else ""
        if not outcome.allowed and self._ttl_seconds > 0:
            # A cached Deny would refuse this method and path at the gateway for the
            # whole TTL, unseen: no decision, no audit, not even a break-glass retry
            # with its justification or a grant approved meanwhile. Let it through:
            # the proxy answers this request 403 and decides every later one again.
            refusal = refusal or outcome.reason.value
        passes = outcome.allowed or bool(refusal)
        allow, deny = ([this_request], []) if passes else ([], [this_request])
        if self._ttl_seconds > 0:
            # The answer is cached for the whole API: describe everything.
            try:
                policy = self._policy.current()
            except PolicyUnavailable as exc:
                raise AuthorizerFailure(Reason.POLICY_UNAVAILABLE.value) from exc
            # Allows only: a superset; the proxy re-decides cached answers.
            permissions = iam_permissions(policy.reach(identity, outcome.grants))
            allow = whole_api_resources(method_arn, permissions) + allow
        answer: dict[str, Any] = {
            "principalId": identity.subject,
            "policyDocument": policy_document(allow, deny),
        }
        answer["context"] = authorizer_context(
            identity,
            outcome.decision,
            decision_id=decision_id,
            request_id=request.request_id,
            claim_names=outcome.claim_names,
            refusal=refusal,
        )
        return answer


def _preflight_answer(
    request: GatewayRequest, method_arn: MethodArn, outcome: Outcome, decision_id: str
) -> dict[str, Any]:
    """Allow (the proxy answers 204) or Deny (403) this one preflight; no principal.

    Never cached beyond this method and path: a preflight carries no
    credentials, so the answer names nobody and allows nothing else.
    """
    assert outcome.preflight is not None  # the caller checked
    this_request = [str(method_arn)]
    allow, deny = (this_request, []) if outcome.allowed else ([], this_request)
    return {
        "principalId": ANONYMOUS_PRINCIPAL,
        "policyDocument": policy_document(allow, deny),
        "context": {
            CORS_CONTEXT_KEY: outcome.reason.value,
            "decision_id": decision_id,
            "decided_for": request.request_id,
            "policy_version": outcome.preflight.policy_version,
            "route_id": outcome.preflight.route.id,
        },
    }
