"""Requesting, approving, denying and revoking grants, and the audit event of each step.

The rules of who may do what live here (not in the CLI), so that any front
end (the CLI today) enforces the same ones:

- grants exist only while the active policy has a ``grants`` block;
- a grant is for its requester, on routes of the active policy, for at
  most ``grants.max_duration``, with a justification;
- every field of a request a person reads (route ids, methods, path globs,
  justification, reasons) is free of control, format (bidi,
  zero-width), separator and lone surrogate characters, and the identifiers
  and globs of whitespace too: an approver reads exactly what is granted;
- an approver (or denier) is in ``grants.approver_groups`` and is not the
  requester: neither the same subject nor the same mailbox (verified emails
  compared case-insensitively, ``+tag`` ignored). An approval also needs both
  verified emails: without one, one person one mailbox cannot be established;
- a revoker is the requester or an approver;
- every transition is stored together with its audit event (the outbox,
  one transaction), then the event is enqueued; what cannot be enqueued
  now is enqueued by the sweeper
  (:func:`~chalicelib.grants.sweeper.redeliver_outbox`), so no transition
  goes unrecorded. The expiry sweeper
  (:func:`~chalicelib.grants.sweeper.sweep_expired`) records each ending
  exactly once.

Who counts as the same person is :mod:`chalicelib.grants.mailboxes`; the
events' grant section and their delivery, :mod:`chalicelib.grants.events`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from chalicelib.audit.schema import build_admin_event, uuid7
from chalicelib.grants.errors import GrantForbidden, GrantInvalid
from chalicelib.grants.events import deliver, grant_details
from chalicelib.grants.mailboxes import check_mailboxes_known, same_person
from chalicelib.grants.store import state_conflict
from chalicelib.policy.globs import InvalidGlob, PathGlob, compile_glob
from chalicelib.policy.grant import Grant
from chalicelib.policy.model import HTTP_METHODS, parse_duration
from chalicelib.policy.subjects import normal_issuer
from chalicelib.readable import describe_character, unreadable_character

if TYPE_CHECKING:
    from chalicelib.apigw.events import GatewayRequest
    from chalicelib.audit import AuditEmitter
    from chalicelib.grants.store import GrantStore
    from chalicelib.identity import Identity
    from chalicelib.policy import PolicyDocument
    from chalicelib.policy.model import GrantSettings

MAX_JUSTIFICATION = 500
MAX_PENDING_PER_PRINCIPAL = 5
# Without --action a grant is read-only: the least an operator can ask for.
DEFAULT_ACTIONS = frozenset({"GET", "HEAD"})


def actor_name(identity: Identity) -> str:
    """How a person appears in grant records: ``issuer|subject (email)``."""
    name = f"{identity.issuer}|{identity.subject}"
    return f"{name} ({identity.email})" if identity.email else name


def format_duration(seconds: int) -> str:
    """``14400`` -> ``"4h"``, ``5400`` -> ``"1h30m"``: durations as the policy writes them."""
    parts = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        count, seconds = divmod(seconds, size)
        if count:
            parts.append(f"{count}{unit}")
    return "".join(parts) or "0s"


def is_approver(identity: Identity, settings: GrantSettings, default_issuer: str) -> bool:
    """Whether ``identity`` may approve grants: a member of an approver group of the default issuer.

    Approver groups name the default issuer's groups, as every group a
    policy names without ``issuers:`` does: another identity provider's
    ``security`` group is not ours.
    """
    if normal_issuer(identity.issuer) != normal_issuer(default_issuer):
        return False
    return bool(identity.groups & settings.approver_groups)


class GrantDesk:
    """Carries out grant actions for verified principals, and audits each one.

    Every action is one conditional transaction that stores the change and
    its audit event (in the outbox); the event is then enqueued. When it
    cannot be, the action raises :class:`GrantNotAudited`: the change stands
    and the sweeper enqueues the event later.

    Parameters
    ----------
    store:
        Where grants live.
    policy:
        The active policy document (its ``grants`` block and routes).
    emitter:
        Where lifecycle events go.
    stage:
        The stage name, for events.
    operator:
        The AWS caller identity acting (recorded under ``aws``), if any.
    clock:
        Epoch seconds now.
    request:
        The API request carrying the action (its id and source go into events).
    """

    def __init__(
        self,
        store: GrantStore,
        policy: PolicyDocument,
        emitter: AuditEmitter,
        *,
        stage: str,
        operator: str | None,
        default_issuer: str,
        clock: Callable[[], float] = time.time,
        request: GatewayRequest | None = None,
    ) -> None:
        self._default_issuer = default_issuer
        self._store = store
        self._request = request
        self._policy = policy
        self._emitter = emitter
        self._stage = stage
        self._operator = operator
        self._clock = clock

    def request(
        self,
        requester: Identity,
        *,
        routes: Sequence[str],
        actions: Sequence[str],
        paths: Sequence[str],
        duration: str,
        justification: str,
    ) -> Grant:
        """File a pending grant for ``requester`` (a grant is always for its requester).

        Parameters
        ----------
        routes:
            Route ids of the active policy (at least one).
        actions:
            HTTP methods, or ``*`` for all; none means ``GET`` and ``HEAD``.
        paths:
            Path globs (case-sensitive, like allow rules); none means the whole route.
        duration:
            Like ``"30m"`` or ``"2h"``, at most the policy's ``grants.max_duration``.
        justification:
            Why, 1 to 500 characters, none of them control, format or separator
            characters (it ends up in one-line audit views and before approvers).

        Raises
        ------
        GrantInvalid
            When grants are disabled, or naming every problem with the request.
        GrantNotAudited
            When the grant was stored but its ``requested`` event was not enqueued.
        GrantsUnavailable
            When DynamoDB cannot be written.
        """
        settings = self._settings()
        problems: list[str] = []
        waiting = [
            grant
            for grant in self._store.grants_for_principal(requester.issuer, requester.subject)
            if grant.status == "pending"
        ]
        if len(waiting) >= MAX_PENDING_PER_PRINCIPAL:
            # Each request costs approvers attention and the table storage: bounded.
            raise GrantInvalid(
                f"you have {len(waiting)} requests waiting; withdraw one (`gatehouse grant "
                "revoke ID`) or wait for a decision"
            )
        route_ids = self._routes(routes, problems)
        methods = _methods(actions, problems)
        globs = _globs(paths, problems)
        seconds = _duration(duration, settings, problems)
        text = _justification(justification, problems)
        if problems or seconds is None:
            raise GrantInvalid("; ".join(problems))
        grant = Grant(
            id=uuid7(),
            issuer=requester.issuer,
            subject=requester.subject,
            email=requester.email,
            routes=route_ids,
            actions=methods,
            paths=globs,
            duration_seconds=seconds,
            justification=text,
            status="pending",
            requested_at=self._clock(),
        )
        event = self._event("requested", grant, requester)
        self._store.create(grant, event=event)
        self._deliver(event, "requested", grant)
        return grant

    def approve(self, grant_id: str, approver: Identity) -> Grant:
        """Approve a pending grant; it is in force from now for its duration.

        A request may wait any time for approval: the clock starts now.

        Raises
        ------
        GrantInvalid
            When the grant is longer than the policy now allows, or names routes
            it no longer has.
        GrantForbidden
            When ``approver`` is not in ``grants.approver_groups``, is the
            requester (same subject or same mailbox), or either of them has no
            verified email.
        GrantConflict
            When the grant is not pending (approved, denied, revoked...).
        GrantNotFound, GrantNotAudited, GrantsUnavailable
            As their names say.
        """
        grant = self._store.get(grant_id)
        self._check_approver(grant, approver)
        check_mailboxes_known(grant, approver)
        now = self._clock()
        if grant.status != "pending":
            raise state_conflict(grant, "approve", now)
        gone = [route for route in grant.routes if route not in self._route_ids()]
        if gone:
            raise GrantInvalid(
                f"grant {grant.id} names routes the active policy no longer has "
                f"({', '.join(gone)}); deny it and ask for a new request"
            )
        limit = self._settings().max_duration_seconds
        if grant.duration_seconds > limit:
            # The policy may have been tightened since the request.
            raise GrantInvalid(
                f"grant {grant.id} asks for {format_duration(grant.duration_seconds)}, more "
                f"than the active policy's max_duration {format_duration(limit)}; "
                "deny it and ask for a new request"
            )
        name = actor_name(approver)
        event = self._event("approved", grant.approved_by(name, now), approver)
        approved = self._store.approve(grant, name, now, event=event)
        self._deliver(event, "approved", approved)
        return approved

    def deny(self, grant_id: str, approver: Identity, reason: str | None = None) -> Grant:
        """Deny a pending grant.

        Raises
        ------
        GrantInvalid
            When ``approver`` may not decide on this grant, or ``reason`` is unprintable.
        GrantConflict
            When the grant is not pending.
        GrantNotFound, GrantNotAudited, GrantsUnavailable
            As their names say.
        """
        reason = _reason(reason)
        grant = self._store.get(grant_id)
        self._check_approver(grant, approver)
        now = self._clock()
        if grant.status != "pending":
            raise state_conflict(grant, "deny", now)
        name = actor_name(approver)
        event = self._event("denied", grant.denied_by(name, now), approver, reason=reason)
        denied = self._store.deny(grant, name, now, event=event)
        self._deliver(event, "denied", denied)
        return denied

    def revoke(self, grant_id: str, actor: Identity, reason: str | None = None) -> Grant:
        """End a grant now: withdraw a pending one, or end an approved one still in force.

        Its requester or any member of ``grants.approver_groups`` may.

        Raises
        ------
        GrantInvalid
            When ``actor`` is neither, or ``reason`` is unprintable.
        GrantConflict
            When the grant has ended already (denied, revoked, expired).
        GrantNotFound, GrantNotAudited, GrantsUnavailable
            As their names say.
        """
        reason = _reason(reason)
        grant = self._store.get(grant_id)
        if (actor.issuer, actor.subject) != grant.principal and not self._is_approver(actor):
            raise GrantForbidden("only the requester or an approver may revoke a grant")
        now = self._clock()
        if grant.effective_status(now) not in ("pending", "approved"):
            raise state_conflict(grant, "revoke", now)
        name = actor_name(actor)
        event = self._event("revoked", grant.revoked_by(name, now), actor, reason=reason)
        revoked = self._store.revoke(grant, name, now, event=event)
        self._deliver(event, "revoked", revoked)
        return revoked

    def _settings(self) -> GrantSettings:
        settings = self._policy.grants
        if settings is None:
            raise GrantInvalid("grants are not enabled by the active policy (no grants block)")
        return settings

    def _route_ids(self) -> set[str]:
        return {route.id for route in self._policy.routes}

    def _routes(self, routes: Sequence[str], problems: list[str]) -> tuple[str, ...]:
        known = self._route_ids()
        readable = [
            route
            for number, route in enumerate(routes, 1)
            if not _unreadable(f"route {number}", route, problems)
        ]
        problems += [f"unknown route {route!r}" for route in readable if route not in known]
        if not routes:
            problems.append("name at least one route")
        return tuple(dict.fromkeys(routes))

    def _is_approver(self, identity: Identity) -> bool:
        return is_approver(identity, self._settings(), self._default_issuer)

    def _check_approver(self, grant: Grant, approver: Identity) -> None:
        if not self._is_approver(approver):
            groups = ", ".join(sorted(self._settings().approver_groups))
            raise GrantForbidden(f"only members of {groups} may approve or deny grants")
        if same_person(grant, approver):
            raise GrantForbidden("nobody approves or denies their own grant")

    def _event(self, action: str, grant: Grant, actor: Identity, **extra: Any) -> dict[str, Any]:
        return build_admin_event(
            "grant",
            stage=self._stage,
            details=grant_details(action, grant, **extra),
            operator=self._operator,
            identity=actor,
            request=self._request,
        )

    def _deliver(self, event: dict[str, Any], action: str, grant: Grant) -> None:
        deliver(self._store, self._emitter, event, action, grant.id)


def _unreadable(label: str, value: str, problems: list[str], *, allow_spaces: bool = False) -> bool:
    """Record a problem when ``value`` holds a character that could mislead its reader.

    The value itself is never echoed: the problem names the character.
    """
    char = unreadable_character(value, allow_spaces=allow_spaces)
    if char is None:
        return False
    kinds = "control, format (bidi, zero-width), separator" + (
        "" if allow_spaces else " or whitespace"
    )
    problems.append(
        f"{label} holds {describe_character(char)}; no {kinds} characters are allowed "
        "(they can hide from an approver what is being granted)"
    )
    return True


def _methods(actions: Sequence[str], problems: list[str]) -> frozenset[str]:
    actions = [
        action
        for number, action in enumerate(actions, 1)
        if not _unreadable(f"action {number}", action, problems)
    ]
    methods = {action.upper() for action in actions}
    if not methods:
        return DEFAULT_ACTIONS
    if "*" in methods:
        methods.discard("*")
        methods |= HTTP_METHODS
    problems += [f"{m!r} is not an HTTP method (or *)" for m in sorted(methods - HTTP_METHODS)]
    return frozenset(methods & HTTP_METHODS)


def _globs(paths: Sequence[str], problems: list[str]) -> tuple[PathGlob, ...]:
    globs = []
    for number, pattern in enumerate(dict.fromkeys(paths), 1):
        if _unreadable(f"path glob {number}", pattern, problems):
            continue
        try:
            globs.append(compile_glob(pattern))
        except InvalidGlob as exc:
            problems.append(str(exc))
    return tuple(globs)


def _duration(duration: str, settings: GrantSettings, problems: list[str]) -> int | None:
    seconds = parse_duration(duration)
    if seconds is None:
        problems.append(f'duration {duration!r} is not like "30m" or "2h"')
        return None
    limit = settings.max_duration_seconds
    if seconds > limit:
        asked = format_duration(seconds)
        spelled = duration if duration == asked else f"{duration} ({asked})"
        problems.append(
            f"duration {spelled} exceeds the policy's max_duration {format_duration(limit)}"
        )
    return seconds


def _justification(justification: str, problems: list[str]) -> str:
    text = justification.strip()
    if _unreadable("justification", text, problems, allow_spaces=True):
        return text
    if not text or len(text) > MAX_JUSTIFICATION:
        problems.append(f"justification must be 1 to {MAX_JUSTIFICATION} characters")
    return text


def _reason(reason: str | None) -> str | None:
    if reason is None or not reason.strip():
        return None
    text = reason.strip()
    problems: list[str] = []
    if _unreadable("the reason", text, problems, allow_spaces=True):
        raise GrantInvalid(problems[0])
    if len(text) > MAX_JUSTIFICATION:
        raise GrantInvalid(f"a reason must be at most {MAX_JUSTIFICATION} characters")
    return text
