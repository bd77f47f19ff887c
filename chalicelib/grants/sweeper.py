"""The grant sweeper's jobs: end grants past their expiry, enqueue what the outbox kept.

Both run on a schedule (:func:`chalicelib.entrypoints.sweep_grants`); both
are safe to run concurrently, each ending and each event counted once.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from chalicelib.audit.schema import build_admin_event, utc_timestamp
from chalicelib.grants.events import deliver, grant_details

if TYPE_CHECKING:
    from chalicelib.audit import AuditEmitter
    from chalicelib.grants.store import GrantStore


def sweep_expired(store: GrantStore, emitter: AuditEmitter, stage: str, now: float) -> list[str]:
    """End every live grant past its expiry and audit each ``expired`` event exactly once.

    Each grant is ended by one conditional transaction; of concurrent
    sweepers only the one whose transaction wins emits the event. Expiry is
    enforced at every decision regardless: sweeping only records it.

    Returns
    -------
    list[str]
        The ids this call expired (a concurrent sweeper gets the others).

    Raises
    ------
    GrantNotAudited
        When an ``expired`` event could not be enqueued. The sweep stops
        there (no more unrecorded endings); the next run picks up the rest.
    GrantsUnavailable
        When DynamoDB cannot be read or written.
    """
    expired: list[str] = []
    for grant in store.live_grants():
        if grant.expires_at is None or grant.expires_at > now:
            continue
        event = build_admin_event(
            "grant",
            stage=stage,
            details=grant_details("expired", grant, ended_at=utc_timestamp(now)),
            operator=None,
        )
        if not store.expire(grant, now, event=event):
            continue
        deliver(store, emitter, event, "expired", grant.id)
        expired.append(grant.id)
    return expired


# Younger outbox entries are probably being enqueued by the request that wrote them.
OUTBOX_GRACE_SECONDS = 60.0


def redeliver_outbox(
    store: GrantStore,
    emitter: AuditEmitter,
    now: float,
    grace_seconds: float = OUTBOX_GRACE_SECONDS,
) -> list[str]:
    """Enqueue every lifecycle event left in the outbox for ``grace_seconds`` or more.

    Returns
    -------
    list[str]
        The event ids enqueued.

    Raises
    ------
    GrantNotAudited
        When the queue is still unavailable (the rest waits for the next run).
    GrantsUnavailable
        When DynamoDB cannot be read.
    """
    enqueued = []
    for event in store.outbox(written_before=now - grace_seconds):
        details = event.get("grant") or {}
        deliver(store, emitter, event, str(details.get("action")), str(details.get("grant_id")))
        enqueued.append(str(event["event_id"]))
    return enqueued
