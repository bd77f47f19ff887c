"""The grant API: the only way grants change, run inside the stage's own function.

Routes (under the reserved prefix ``/.gatehouse/``, which no backend path
can use)::

    GET  /.gatehouse/grants                    list (approvers: all; others: their own)
    GET  /.gatehouse/grants?id=ID              that grant, when the list would show it
    POST /.gatehouse/grants                    {routes, actions, paths, duration, justification}
    POST /.gatehouse/grants/{grant_id}/approve
    POST /.gatehouse/grants/{grant_id}/deny    {reason}
    POST /.gatehouse/grants/{grant_id}/revoke  {reason}

Why server-side: whoever approves must be proven by a token the *stage*
trusts, at a time the *stage's* clock says. Run on an operator's machine,
both would come from the operator's environment, and anyone able to file a
request could approve it. Here the caller's bearer token is verified against
the deployed trusted issuers, times come from this function's clock, and
the function's role is the only principal that writes grant items.

Every action is audited, refusals included (with the verified caller when
there is one). Tokens never reach the trail or the logs.
"""

from __future__ import annotations

import contextlib
import json
import re
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from chalicelib.apigw.events import MalformedEvent, parse_proxy_event
from chalicelib.audit.errors import AuditUnavailable
from chalicelib.audit.schema import build_admin_event
from chalicelib.audit.sections import GrantRefusalSection
from chalicelib.grants.errors import (
    GrantConflict,
    GrantError,
    GrantForbidden,
    GrantInvalid,
    GrantNotAudited,
    GrantNotFound,
    GrantsUnavailable,
)
from chalicelib.grants.lifecycle import GrantDesk, is_approver
from chalicelib.identity.errors import TokenRejected
from chalicelib.policy.errors import PolicyError

if TYPE_CHECKING:
    from chalicelib.apigw.events import GatewayRequest
    from chalicelib.audit import AuditEmitter
    from chalicelib.grants.store import GrantStore
    from chalicelib.identity import Identity, TokenVerifier
    from chalicelib.policy.grant import Grant
    from chalicelib.policy.store import ActivePolicy

PREFIX = "/.gatehouse/grants"
MAX_BODY_BYTES = 16 * 1024
MAX_LIST = 500
_ACTION_RESOURCE = re.compile(r"/\.gatehouse/grants/\{grant_id\}/(approve|deny|revoke)")
_STATUS_OF: tuple[tuple[type[GrantError], int], ...] = (
    (GrantForbidden, 403),
    (GrantNotFound, 404),
    (GrantConflict, 409),
    (GrantInvalid, 400),
    (GrantsUnavailable, 503),
)


class _Refusal(Exception):
    """An answer other than success, with what the trail should say about it."""

    def __init__(self, status: int, message: str, *, audited: bool = True) -> None:
        super().__init__(message)
        self.status = status
        self.audited = audited


def grant_json(grant: Grant, now: float) -> dict[str, Any]:
    """A grant as the API answers it (and ``grant list --json`` prints it)."""
    return {
        "id": grant.id,
        "status": grant.effective_status(now),
        "issuer": grant.issuer,
        "subject": grant.subject,
        "email": grant.email,
        "routes": list(grant.routes),
        "actions": sorted(grant.actions),
        "paths": [glob.pattern for glob in grant.paths],
        "duration_seconds": grant.duration_seconds,
        "justification": grant.justification,
        "requested_at": iso_time(grant.requested_at),
        "approver": grant.approver,
        "approved_at": iso_time(grant.approved_at),
        "expires_at": iso_time(grant.expires_at),
        "ended_at": iso_time(grant.ended_at),
        "ended_by": grant.ended_by,
        "first_used_at": iso_time(grant.first_used_at),
    }


def iso_time(moment: float | None) -> str | None:
    """Epoch seconds as ISO 8601 UTC to the second, or None."""
    if moment is None:
        return None
    return datetime.fromtimestamp(moment, UTC).isoformat(timespec="seconds")


class GrantApi:
    """Serves the grant routes: verifies the caller, acts through :class:`GrantDesk`.

    Parameters
    ----------
    verifier:
        Verifies bearer tokens against the stage's trusted issuers.
    store:
        Where grants live (this function's role is their only writer).
    policy:
        The active policy (its ``grants`` block, routes and approvers).
    emitter:
        Where lifecycle events and refusals go.
    stage:
        The stage name, for events.
    clock:
        Epoch seconds now: the only clock grant times come from.
    grant_refresh_seconds:
        How often the stage's deciding containers re-read live grants
        (``GATEHOUSE_POLICY_REFRESH_SECONDS``); when given, ``revoke`` answers
        when the revocation is in force everywhere (see
        :func:`~chalicelib.grants.cache.revocation_bound`).
    """

    def __init__(
        self,
        verifier: TokenVerifier,
        store: GrantStore,
        policy: ActivePolicy,
        emitter: AuditEmitter,
        *,
        stage: str,
        clock: Callable[[], float] = time.time,
        grant_refresh_seconds: float | None = None,
    ) -> None:
        self._grant_refresh_seconds = grant_refresh_seconds
        self._verifier = verifier
        self._store = store
        self._policy = policy
        self._emitter = emitter
        self._stage = stage
        self._clock = clock

    def handle(
        self, event: Mapping[str, Any], lambda_request_id: str | None = None
    ) -> dict[str, Any]:
        """Answer one API Gateway proxy event (REST, payload v1)."""
        try:
            request = parse_proxy_event(event)
        except MalformedEvent as exc:
            return _answer(400, {"message": f"malformed request: {exc}"}, None)
        attempted, grant_id = _operation(request, event)
        identity: Identity | None = None
        try:
            if attempted is None:
                raise _Refusal(405, f"{request.method} {request.path} is not a grant operation")
            identity = self._caller(request)
            status, body = self._perform(attempted, grant_id, identity, request)
        except _Refusal as refusal:
            if refusal.audited:
                self._audit_refusal(attempted, grant_id, identity, request, refusal)
            return _answer(refusal.status, {"message": str(refusal)}, request)
        except GrantNotAudited as exc:
            # Done, and its event is durable beside it (the outbox): 202, audit pending.
            body = {"message": str(exc), "grant_ids": list(exc.grant_ids), "audit": "pending"}
            return _answer(202, body, request)
        except AuditUnavailable as exc:
            _log_unavailable("audit", exc)
            return _answer(503, {"message": "the action could not be audited"}, request)
        return _answer(status, body, request)

    def _caller(self, request: GatewayRequest) -> Identity:
        from chalicelib.identity.bearer import bearer_token

        try:
            return self._verifier.verify(bearer_token(request.headers.get_all("authorization")))
        except TokenRejected as exc:
            raise _Refusal(401, f"the token was refused: {exc.reason.value}") from exc

    def _perform(
        self, attempted: str, grant_id: str | None, identity: Identity, request: GatewayRequest
    ) -> tuple[int, Any]:
        now = self._clock()
        try:
            if attempted == "list":
                return 200, self._list(identity, request, now)
            desk = self._desk(request)
            body = _body(request)
            if attempted == "request":
                grant = desk.request(
                    identity,
                    routes=_strings(body, "routes"),
                    actions=_strings(body, "actions"),
                    paths=_strings(body, "paths"),
                    duration=_string(body, "duration"),
                    justification=_string(body, "justification"),
                )
                return 201, grant_json(grant, now)
            assert grant_id is not None
            if attempted == "approve":
                grant = desk.approve(grant_id, identity)
            elif attempted == "deny":
                grant = desk.deny(grant_id, identity, _optional_string(body, "reason"))
            else:
                grant = desk.revoke(grant_id, identity, _optional_string(body, "reason"))
                return 200, self._with_revocation_bound(grant_json(grant, now))
            return 200, grant_json(grant, now)
        except GrantNotAudited:
            raise
        except GrantError as exc:
            status = next(code for kind, code in _STATUS_OF if isinstance(exc, kind))
            if status == 503:
                # Not the caller's doing (no audit event), and AWS's text names
                # accounts and resources: logged, not answered.
                _log_unavailable("grants", exc)
                raise _Refusal(503, "grants are unavailable; try again", audited=False) from exc
            raise _Refusal(status, str(exc)) from exc

    def _with_revocation_bound(self, answer: dict[str, Any]) -> dict[str, Any]:
        if self._grant_refresh_seconds is None:
            return answer
        from chalicelib.grants.cache import revocation_bound

        return {**answer, **revocation_bound(self._grant_refresh_seconds)}

    def _desk(self, request: GatewayRequest) -> GrantDesk:
        try:
            policy = self._policy.current()
        except PolicyError as exc:
            _log_unavailable("policy", exc)
            raise _Refusal(503, "no usable policy; try again", audited=False) from exc
        return GrantDesk(
            self._store,
            policy.document,
            self._emitter,
            default_issuer=policy.default_issuer,
            stage=self._stage,
            operator=None,
            clock=self._clock,
            request=request,
        )

    def _list(self, identity: Identity, request: GatewayRequest, now: float) -> list[Any]:
        query = dict(request.query)
        include_ended = query.get("all", "") in ("1", "true")
        try:
            limit = max(1, min(MAX_LIST, int(query.get("limit", "50"))))
        except ValueError as exc:
            raise _Refusal(400, "limit must be a number", audited=False) from exc
        try:
            policy = self._policy.current()
        except PolicyError as exc:
            _log_unavailable("policy", exc)
            raise _Refusal(503, "no usable policy; try again", audited=False) from exc
        settings = policy.document.grants
        approver = settings is not None and is_approver(identity, settings, policy.default_issuer)
        if "id" in query:
            # One grant, whatever its state (what `grant approve` shows before acting).
            grants = self._one(query["id"], identity, approver=approver)
        elif approver:
            grants = self._store.list_grants(limit, include_ended=include_ended, at=now)
        else:
            # Everyone else sees their own grants only.
            own = self._store.grants_for_principal(identity.issuer, identity.subject)
            grants = [g for g in own if include_ended or g.effective_status(now) in _OPEN][:limit]
        return [grant_json(grant, now) for grant in grants]

    def _one(self, grant_id: str, identity: Identity, *, approver: bool) -> list[Grant]:
        try:
            grant = self._store.get(grant_id)
        except GrantNotFound:
            return []
        # As in the list: approvers see every grant, everyone else their own.
        if approver or grant.principal == (identity.issuer, identity.subject):
            return [grant]
        return []

    def _audit_refusal(
        self,
        attempted: str | None,
        grant_id: str | None,
        identity: Identity | None,
        request: GatewayRequest,
        refusal: _Refusal,
    ) -> None:
        details = GrantRefusalSection(
            action="refused",
            attempted=attempted or f"{request.method} {request.path[:200]}",
            grant_id=grant_id,
            status=refusal.status,
            reason=str(refusal)[:500],
        )
        event = build_admin_event(
            "grant",
            stage=self._stage,
            details=details,
            operator=None,
            identity=identity,
            request=request,
        )
        # The refusal stands either way; the emitter has logged the event in full.
        with contextlib.suppress(AuditUnavailable):
            self._emitter.emit(event)


_OPEN = ("pending", "approved")


def _operation(request: GatewayRequest, event: Mapping[str, Any]) -> tuple[str | None, str | None]:
    """Which operation API Gateway matched (its resource and method), on which grant id.

    Dispatching on the matched resource, not the raw path, keeps working
    behind a custom domain whose base path API Gateway puts into ``path``.
    """
    if request.resource == PREFIX:
        return {"GET": "list", "POST": "request"}.get(request.method), None
    parameters = event.get("pathParameters") or {}
    match = _ACTION_RESOURCE.fullmatch(request.resource)
    grant_id = parameters.get("grant_id") if isinstance(parameters, dict) else None
    if match is None or request.method != "POST" or not isinstance(grant_id, str):
        return None, None
    return match.group(1), grant_id[:64]


def _log_unavailable(what: str, exc: Exception) -> None:
    from chalicelib.observability import powertools_logger

    powertools_logger().error(f"grant API: {what} unavailable", extra={"error": str(exc)})


def _body(request: GatewayRequest) -> dict[str, Any]:
    if not request.body:
        return {}
    if len(request.body) > MAX_BODY_BYTES:
        raise GrantInvalid(f"the body is larger than {MAX_BODY_BYTES} bytes")
    try:
        body = json.loads(request.body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise GrantInvalid(f"the body is not JSON: {exc}") from exc
    except RecursionError as exc:
        raise GrantInvalid("the body nests too deeply") from exc
    if not isinstance(body, dict):
        raise GrantInvalid("the body must be a JSON object")
    return body


def _strings(body: Mapping[str, Any], name: str) -> list[str]:
    value = body.get(name, [])
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise GrantInvalid(f"{name} must be a list of strings")
    return value


def _string(body: Mapping[str, Any], name: str) -> str:
    value = body.get(name)
    if not isinstance(value, str):
        raise GrantInvalid(f"{name} is required (a string)")
    return value


def _optional_string(body: Mapping[str, Any], name: str) -> str | None:
    value = body.get(name)
    if value is not None and not isinstance(value, str):
        raise GrantInvalid(f"{name} must be a string")
    return value


def _answer(status: int, body: Any, request: GatewayRequest | None) -> dict[str, Any]:
    headers = {"Content-Type": "application/json", "Cache-Control": "no-store"}
    if status == 401:
        headers["WWW-Authenticate"] = 'Bearer error="invalid_token"'
    if request is not None:
        headers["X-Request-Id"] = request.request_id
    return {
        "statusCode": status,
        "headers": headers,
        "body": json.dumps(body, separators=(",", ":")),
        "isBase64Encoded": False,
    }
