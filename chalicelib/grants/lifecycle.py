"""Requesting, approving, denying and revoking grants, and the audit event of each step.

The rules of who may do what live here (not in the CLI), so that any front
end (the CLI today) enforces the same ones:

- grants exist only while the active policy has a ``grants`` block;
- a grant is for its requester, on routes of the active policy, for at
  most ``grants.max_duration``, with a justification;
- an approver (or denier) is in ``grants.approver_groups`` and is not the
  requester (neither the same subject nor the same verified email);
- a revoker is the requester or an approver.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from chalicelib.audit.schema import build_admin_event, utc_timestamp, uuid7
from chalicelib.grants.errors import GrantInvalid
from chalicelib.grants.model import Grant
from chalicelib.policy.globs import InvalidGlob, compile_glob
from chalicelib.policy.model import HTTP_METHODS, parse_duration

if TYPE_CHECKING:
    from chalicelib.audit import AuditEmitter
    from chalicelib.grants.store import GrantStore
    from chalicelib.identity import Identity
    from chalicelib.policy import PolicyDocument

MAX_JUSTIFICATION = 500


def actor_name(identity: Identity) -> str:
    """How a person appears in grant records: ``issuer|subject (email)``."""
    name = f"{identity.issuer}|{identity.subject}"
    return f"{name} ({identity.email})" if identity.email else name


class GrantDesk:
    """Carries out grant actions for verified principals, and audits each one.

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
        The AWS caller identity acting (recorded under ``aws``).
    clock:
        Epoch seconds now.
    """

    def __init__(
        self,
        store: GrantStore,
        policy: PolicyDocument,
        emitter: AuditEmitter,
        *,
        stage: str,
        operator: str | None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._store = store
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
        """File a pending grant for ``requester``.

        Raises
        ------
        GrantInvalid
            Naming every problem with the request.
        """
        settings = self._settings()
        problems: list[str] = []
        known = {route.id for route in self._policy.routes}
        problems += [f"unknown route {route!r}" for route in routes if route not in known]
        if not routes:
            problems.append("name at least one route")
        methods = {action.upper() for action in actions} or {"GET", "HEAD"}
        if "*" in methods:
            methods = set(HTTP_METHODS)
        problems += [f"{m!r} is not an HTTP method" for m in sorted(methods - HTTP_METHODS)]
        globs = []
        for pattern in paths:
            try:
                globs.append(compile_glob(pattern))
            except InvalidGlob as exc:
                problems.append(str(exc))
        seconds = parse_duration(duration)
        if seconds is None:
            problems.append(f'duration {duration!r} is not like "30m" or "2h"')
        elif seconds > settings.max_duration_seconds:
            problems.append(
                f"duration {duration} exceeds the policy's max_duration "
                f"({settings.max_duration_seconds} s)"
            )
        text = justification.strip()
        if not text or len(text) > MAX_JUSTIFICATION or not text.isprintable():
            problems.append(f"justification must be 1 to {MAX_JUSTIFICATION} printable characters")
        if problems:
            raise GrantInvalid("; ".join(problems))
        assert seconds is not None
        grant = Grant(
            id=uuid7(),
            issuer=requester.issuer,
            subject=requester.subject,
            email=requester.email,
            routes=tuple(dict.fromkeys(routes)),
            actions=frozenset(methods),
            paths=tuple(globs),
            duration_seconds=seconds,
            justification=text,
            status="pending",
            requested_at=self._clock(),
        )
        self._store.create(grant)
        self._audit("requested", grant, requester)
        return grant

    def approve(self, grant_id: str, approver: Identity) -> Grant:
        """Approve a pending grant; it is in force from now for its duration."""
        grant = self._store.get(grant_id)
        self._check_approver(grant, approver)
        approved = self._store.approve(grant, actor_name(approver), self._clock())
        self._audit("approved", approved, approver)
        return approved

    def deny(self, grant_id: str, approver: Identity, reason: str | None = None) -> Grant:
        """Deny a pending grant."""
        grant = self._store.get(grant_id)
        self._check_approver(grant, approver)
        denied = self._store.deny(grant, actor_name(approver), self._clock())
        self._audit("denied", denied, approver, reason=reason)
        return denied

    def revoke(self, grant_id: str, actor: Identity, reason: str | None = None) -> Grant:
        """End a pending or approved grant now (its requester or an approver may)."""
        grant = self._store.get(grant_id)
        if (actor.issuer, actor.subject) != grant.principal and not self._is_approver(actor):
            raise GrantInvalid("only the requester or an approver may revoke a grant")
        if grant.status not in ("pending", "approved"):
            raise GrantInvalid(f"grant {grant_id} is already {grant.status}")
        revoked = self._store.revoke(grant, actor_name(actor), self._clock())
        self._audit("revoked", revoked, actor, reason=reason)
        return revoked

    def _settings(self) -> Any:
        settings = self._policy.grants
        if settings is None:
            raise GrantInvalid("grants are not enabled by the active policy (no grants block)")
        return settings

    def _is_approver(self, identity: Identity) -> bool:
        return bool(identity.groups & self._settings().approver_groups)

    def _check_approver(self, grant: Grant, approver: Identity) -> None:
        if not self._is_approver(approver):
            groups = ", ".join(sorted(self._settings().approver_groups))
            raise GrantInvalid(f"only members of {groups} may approve or deny grants")
        same_email = approver.email is not None and approver.email == grant.email
        if (approver.issuer, approver.subject) == grant.principal or same_email:
            raise GrantInvalid("nobody approves or denies their own grant")

    def _audit(self, action: str, grant: Grant, actor: Identity, **extra: Any) -> None:
        event = build_admin_event(
            "grant",
            stage=self._stage,
            details=grant_details(action, grant, **extra),
            operator=self._operator,
            identity=actor,
        )
        self._emitter.emit(event)


def grant_details(action: str, grant: Grant, **extra: Any) -> dict[str, Any]:
    """The ``grant`` section of a lifecycle event."""
    details: dict[str, Any] = {
        "action": action,
        "grant_id": grant.id,
        "requester": {"issuer": grant.issuer, "subject": grant.subject, "email": grant.email},
        "routes": list(grant.routes),
        "actions": sorted(grant.actions),
        "paths": [glob.pattern for glob in grant.paths],
        "duration_seconds": grant.duration_seconds,
        "justification": grant.justification,
        "approver": grant.approver,
        "expires_at": utc_timestamp(grant.expires_at) if grant.expires_at else None,
    }
    details.update({name: value for name, value in extra.items() if value is not None})
    return details


def sweep_expired(store: GrantStore, emitter: AuditEmitter, stage: str, now: float) -> list[str]:
    """End every live grant past its expiry and audit each ``expired`` event exactly once.

    Returns the ids this call expired (a concurrent sweeper gets the others).
    """
    expired = []
    for grant in store.live_grants():
        if grant.expires_at is None or grant.expires_at > now:
            continue
        if store.expire(grant, now):
            event = build_admin_event(
                "grant",
                stage=stage,
                details=grant_details("expired", grant),
                operator=None,
            )
            emitter.emit(event)
            expired.append(grant.id)
    return expired
