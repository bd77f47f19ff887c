"""The decision core: one parsed request in, one :class:`Outcome` out.

Both handlers decide through :class:`Decider`: the authorizer on the bearer
token it verifies, the proxy (on a request API Gateway let through on a
cached answer) on the identity the cached answer carries. Each only
translates the outcome: the authorizer into an IAM answer, ``Unauthorized``
or a failure; the proxy into a response. Deciding is kept apart from
answering, so both answer one question the same way.

The order of a decision: a CORS preflight to a route with ``cors`` is
decided by that block alone (it carries no credentials, see
:mod:`chalicelib.authorize.cors`); otherwise credentials, then the request's
target (an ambiguous path or a method-override parameter is refused before
any rule is read), then the active policy with the principal's live grants.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from chalicelib.apigw.overrides import method_override
from chalicelib.audit.schema import DecisionRecord, ResourceRecord, utc_timestamp
from chalicelib.audit.sections import ElevationRecord
from chalicelib.authenticate.credentials import SessionEnded
from chalicelib.authorize.cors import Preflight, decide_preflight, request_preflight
from chalicelib.grants.cache import PrincipalGrants
from chalicelib.grants.errors import GrantError
from chalicelib.identity import TokenRejected
from chalicelib.identity.bearer import bearer_token
from chalicelib.policy import (
    AccessRequest,
    AmbiguousPath,
    PolicyUnavailable,
    RequestTarget,
    parse_target,
)
from chalicelib.reasons import Reason
from chalicelib.sessions import SessionRejected, SessionsUnavailable

if TYPE_CHECKING:
    from chalicelib.apigw.events import GatewayRequest
    from chalicelib.audit.schema import Outcome as AuditOutcome
    from chalicelib.authenticate.credentials import SessionCredentials
    from chalicelib.grants import ActiveGrants
    from chalicelib.identity import Identity, TokenVerifier
    from chalicelib.policy import ActivePolicy, Decision, Route
    from chalicelib.policy.grant import Grant


@dataclass(frozen=True, slots=True)
class PreflightDecision:
    """A CORS preflight decided by a route's ``cors`` block (see :mod:`.cors`).

    Attributes
    ----------
    route:
        The route asked about (it has a ``cors`` block).
    preflight:
        What the preflight asked.
    policy_version, policy_checksum:
        The policy that decided.
    """

    route: Route
    preflight: Preflight
    policy_version: int
    policy_checksum: str


@dataclass(frozen=True, slots=True)
class Outcome:
    """What was decided about one request, before it is turned into an answer.

    Attributes
    ----------
    reason:
        The first reason code (the decision's, or why there is no decision).
    identity:
        The principal, once established.
    decision:
        The policy's decision, when the policy was evaluated.
    target:
        The parsed path, when it could be parsed.
    detail:
        Free text for humans (never a secret).
    claim_names:
        The claims the policy's rules name (they travel with a cached answer).
    grants:
        The principal's grants as the decision saw them.
    preflight:
        Set when the request was a CORS preflight decided by its route's
        ``cors`` block (``reason`` is then one of the ``cors_*`` codes).
    default_issuer:
        The stage's default issuer, as the deciding policy knows it.
    """

    reason: Reason
    identity: Identity | None = None
    decision: Decision | None = None
    target: RequestTarget | None = None
    detail: str | None = None
    claim_names: tuple[str, ...] = ()
    grants: tuple[Grant, ...] = ()
    preflight: PreflightDecision | None = None
    default_issuer: str = ""

    @property
    def allowed(self) -> bool:
        """True when the policy allowed the request (or its route's ``cors``, a preflight)."""
        if self.preflight is not None:
            return self.reason is Reason.CORS_PREFLIGHT_ALLOWED
        return self.decision is not None and self.decision.allowed

    @property
    def route(self) -> Route | None:
        """The route the decision is about, when one was chosen."""
        if self.preflight is not None:
            return self.preflight.route
        return self.decision.route if self.decision is not None else None

    @property
    def break_glass(self) -> bool:
        """True when the request was allowed by break-glass."""
        return self.decision is not None and self.decision.break_glass


def decision_record(outcome: Outcome, **extra: Any) -> DecisionRecord:
    """The ``decision`` section of the audit event for ``outcome``.

    Without a policy decision the outcome is an ``error`` when Gatehouse could
    not decide, else a ``deny``; ``extra`` sets who decided and whether on a
    cached answer.
    """
    preflight = outcome.preflight
    if preflight is not None:
        return DecisionRecord(
            outcome="allow" if outcome.allowed else "deny",
            reasons=(outcome.reason,),
            policy_version=preflight.policy_version,
            policy_checksum=preflight.policy_checksum,
            detail=outcome.detail,
            **extra,
        )
    decision = outcome.decision
    if decision is not None:
        return DecisionRecord(
            outcome="allow" if decision.allowed else "deny",
            reasons=decision.reasons,
            matched_rules=decision.matched_rules,
            policy_version=decision.policy_version,
            policy_checksum=decision.policy_checksum,
            elevation=elevation_record(decision),
            detail=outcome.detail,
            **extra,
        )
    kind: AuditOutcome = "error" if outcome.reason.is_decision_failure else "deny"
    return DecisionRecord(kind, (outcome.reason,), detail=outcome.detail, **extra)


def resource_record(route: Route | None) -> ResourceRecord:
    """The ``resource`` section for the route a decision chose (empty without one)."""
    if route is None:
        return ResourceRecord()
    return ResourceRecord(route.id, route.upstream, route.sensitive)


def elevation_record(decision: Decision) -> ElevationRecord | None:
    """The elevation a decision used, or None when the standing rules decided."""
    grant = decision.grant
    if grant is None and not decision.break_glass:
        return None
    return ElevationRecord(
        grant_id=grant.id if grant else None,
        approver=grant.approver if grant else None,
        justification=grant.justification if grant else decision.justification,
        break_glass=decision.break_glass,
    )


def ended_grant_detail(grant: Grant, at: float) -> str:
    """Which ended grant a refusal names, and since when, for people reading the trail."""
    since = grant.stopped_at(at)
    when = f" at {utc_timestamp(since)}" if since is not None else ""
    return f"grant {grant.id} {grant.effective_status(at)}{when}"


def parse_request_target(request: GatewayRequest) -> RequestTarget | AmbiguousPath:
    """The request's target, or why it has none (parsed once per invocation)."""
    try:
        return parse_target(request.path)
    except AmbiguousPath as exc:
        return exc


class Decider:
    """Decides requests against the active policy and the principal's live grants.

    Parameters
    ----------
    verifier:
        Verifies bearer tokens (for requests that present one).
    policy:
        The active policy of this container.
    grants:
        The live just-in-time grants of this container (none: grants are not honoured).
    sessions:
        Reads browser session cookies (none: the stage has no browser sign-in).
        A request with a bearer token is decided on the token alone.
    """

    def __init__(
        self,
        *,
        verifier: TokenVerifier | None,
        policy: ActivePolicy,
        grants: ActiveGrants | None = None,
        sessions: SessionCredentials | None = None,
    ) -> None:
        self._verifier = verifier
        self._policy = policy
        self._grants = grants
        self._sessions = sessions

    def decide(
        self,
        request: GatewayRequest,
        *,
        identity: Identity | None = None,
        parsed: RequestTarget | AmbiguousPath | None = None,
    ) -> Outcome:
        """Decide ``request``.

        Parameters
        ----------
        request:
            The request as API Gateway reported it.
        identity:
            The principal, already verified (a cached answer's); None to verify
            the request's bearer token.
        parsed:
            The request's target when the caller parsed it already.
        """
        if parsed is None:
            parsed = parse_request_target(request)
        # Before credentials: browsers never send any with a preflight.
        preflight = self._decide_preflight(request, parsed, identity)
        if preflight is not None:
            return preflight
        established = self._principal(request, identity)
        if isinstance(established, Outcome):
            return established
        identity = established
        if isinstance(parsed, AmbiguousPath):
            return Outcome(Reason.AMBIGUOUS_PATH, identity, detail=str(parsed))
        override = method_override(request)
        if override is not None:
            return Outcome(Reason.AMBIGUOUS_REQUEST, identity, detail=override, target=parsed)
        try:
            policy = self._policy.current()
        except PolicyUnavailable as exc:
            return Outcome(Reason.POLICY_UNAVAILABLE, identity, detail=str(exc), target=parsed)
        grants, detail = self._live_grants(identity)
        asked = _access_request(request, parsed)
        decision = policy.evaluate(identity, asked, grants.live, grants.ended)
        if decision.allowed:
            detail = None  # grants being unavailable changed nothing
        elif decision.ended_grant is not None:
            detail = ended_grant_detail(decision.ended_grant, asked.at)
        return Outcome(
            decision.reasons[0],
            identity,
            decision,
            parsed,
            detail,
            policy.claim_names,
            grants.live,
            default_issuer=policy.default_issuer,
        )

    def _principal(self, request: GatewayRequest, identity: Identity | None) -> Identity | Outcome:
        """The verified principal, or the outcome that says why there is none."""
        if identity is not None:
            ended = self._still_valid(identity)
            return ended if ended is not None else identity
        try:
            return self._verify(request)
        except _SessionEnded as exc:
            return Outcome(exc.reason, exc.identity, detail=exc.detail)
        except TokenRejected as exc:
            return Outcome(exc.reason, detail=exc.detail)

    def _decide_preflight(
        self,
        request: GatewayRequest,
        parsed: RequestTarget | AmbiguousPath,
        identity: Identity | None,
    ) -> Outcome | None:
        """A preflight to a route with ``cors``, decided; None: decide it like any request."""
        preflight = request_preflight(request)
        if preflight is None or isinstance(parsed, AmbiguousPath):
            return None  # refused as ambiguous by the ordinary decision
        try:
            policy = self._policy.current()
        except PolicyUnavailable as exc:
            return Outcome(Reason.POLICY_UNAVAILABLE, identity, detail=str(exc), target=parsed)
        route = policy.route_for(request.host, parsed.path)
        if route is None or route.cors is None:
            return None
        reason = decide_preflight(route.cors, preflight)
        detail = None
        if reason is not Reason.CORS_PREFLIGHT_ALLOWED:
            # What was asked, for people reading the trail (an origin is no secret).
            asked = ", ".join(preflight.headers)
            detail = f"origin {preflight.origin!r}, method {preflight.method!r}, headers [{asked}]"
        decided = PreflightDecision(route, preflight, policy.version, policy.checksum)
        return Outcome(reason, identity, target=parsed, detail=detail, preflight=decided)

    def _still_valid(self, identity: Identity) -> Outcome | None:
        """Why a cached answer's identity no longer stands (None: it does)."""
        if identity.expires_at <= time.time():
            return Outcome(Reason.TOKEN_EXPIRED, identity)
        if identity.browser_session_id is not None and self._sessions is not None:
            # A cached answer would outlive a sign-out unless it is checked again here.
            try:
                if self._sessions.is_revoked(identity.browser_session_id):
                    return Outcome(Reason.SESSION_REVOKED, identity)
            except SessionsUnavailable as exc:
                return Outcome(Reason.SESSIONS_UNAVAILABLE, identity, detail=str(exc))
        return None

    def _verify(self, request: GatewayRequest) -> Identity:
        authorization = request.headers.get_all("authorization")
        if not authorization and self._sessions is not None:
            cookies = request.headers.get_all("cookie")
            if self._sessions.presented(cookies):
                return self._session_identity(cookies)
        if self._verifier is None:
            raise TokenRejected(Reason.MISSING_CREDENTIALS, "this handler verifies no tokens")
        return self._verifier.verify(bearer_token(authorization))

    def _session_identity(self, cookies: list[str]) -> Identity:
        assert self._sessions is not None  # checked by the caller
        try:
            return self._sessions.session(cookies).identity()
        except SessionEnded as exc:
            raise _SessionEnded(exc.reason, exc.detail, exc.session.identity()) from exc
        except SessionRejected as exc:
            raise TokenRejected(exc.reason, exc.detail) from exc
        except SessionsUnavailable as exc:
            # Not the caller's fault: Gatehouse cannot decide (503), fail closed.
            raise TokenRejected(Reason.SESSIONS_UNAVAILABLE, str(exc)) from exc

    def _live_grants(self, identity: Identity) -> tuple[PrincipalGrants, str | None]:
        """The principal's grants, and why there are none when they cannot be read.

        Grants can only turn a deny into an allow, so when they are unavailable
        the decision goes on without them (fail closed) and says so.
        """
        if self._grants is None:
            return PrincipalGrants(), None
        try:
            return self._grants.of_principal(identity.issuer, identity.subject), None
        except GrantError as exc:
            return PrincipalGrants(), f"grants unavailable: {exc}"


class _SessionEnded(TokenRejected):
    """A session that opened but ended: the outcome names whose it was."""

    def __init__(self, reason: Reason, detail: str, identity: Identity) -> None:
        super().__init__(reason, detail)
        self.identity = identity


def _access_request(request: GatewayRequest, target: RequestTarget) -> AccessRequest:
    """What ``request`` asks for, now, at its parsed ``target``."""
    return AccessRequest(
        request.host,
        request.method,
        target.path,
        source_ip=request.source_ip,
        at=time.time(),
        justification=request.justification,
    )
