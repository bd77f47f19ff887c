"""The audit events of grant changes: their ``grant`` section, and their delivery.

Every change is stored with its event in the outbox (one transaction);
:func:`deliver` then enqueues the event and clears it from the outbox.
"""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING, Any

from chalicelib.audit.errors import AuditUnavailable
from chalicelib.audit.schema import utc_timestamp
from chalicelib.grants.errors import GrantNotAudited, GrantsUnavailable

if TYPE_CHECKING:
    from chalicelib.audit import AuditEmitter
    from chalicelib.grants.store import GrantStore
    from chalicelib.policy.grant import Grant


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


def deliver(
    store: GrantStore, emitter: AuditEmitter, event: dict[str, Any], action: str, grant_id: str
) -> None:
    """Enqueue a lifecycle event already in the outbox, then clear it from there.

    Raises
    ------
    GrantNotAudited
        When the event cannot be enqueued (it stays in the outbox for the sweeper).
    """
    try:
        emitter.emit(event)
    except AuditUnavailable as exc:
        raise not_audited(action, (grant_id,), exc) from exc
    # Should the clear fail, the sweeper enqueues the event again under the
    # same id: a duplicate the trail can tell apart, never a gap.
    with contextlib.suppress(GrantsUnavailable):
        store.clear_outbox(str(event["event_id"]))


def not_audited(action: str, grant_ids: tuple[str, ...], cause: Exception) -> GrantNotAudited:
    """The error for changes stored (with their events) whose events could not be enqueued."""
    ids = ", ".join(grant_ids)
    return GrantNotAudited(
        f"grant {ids} {action}, but the audit event could not be enqueued yet ({cause}); "
        "the change stands and its event is kept with it: the grant sweeper enqueues it",
        grant_ids=grant_ids,
        action=action,
    )
