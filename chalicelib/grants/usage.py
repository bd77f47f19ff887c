"""The first use of a grant: marked once across containers, audited once."""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from chalicelib.audit.schema import build_admin_event
from chalicelib.grants.errors import GrantError, GrantNotAudited
from chalicelib.grants.events import deliver, grant_details

if TYPE_CHECKING:
    from chalicelib.audit import AuditEmitter
    from chalicelib.grants.store import GrantStore
    from chalicelib.identity import Identity
    from chalicelib.policy.grant import Grant


@dataclass(frozen=True, slots=True)
class GrantUse:
    """A decision that let a request through under a grant."""

    grant: Grant
    identity: Identity
    decision_id: str


class GrantUseRecorder:
    """Records the first use of each grant (its ``used`` event), once per grant.

    Parameters
    ----------
    store:
        Where the first use is marked (a conditional write: the first container wins).
    emitter:
        Enqueues the ``used`` event (kept in the grant's outbox while the queue is down).
    stage:
        The stage name, for the event.
    """

    def __init__(self, *, store: GrantStore, emitter: AuditEmitter, stage: str) -> None:
        self._store = store
        self._emitter = emitter
        self._stage = stage
        self._marked: set[str] = set()  # grants this container knows are marked

    def record(self, use: GrantUse) -> None:
        """Emit the grant's ``used`` event the first time any container uses it.

        Never raises for the store or the queue: the decision event already
        names the grant, and the marker can wait for the next use.
        """
        grant = use.grant
        if grant.id in self._marked:
            return
        details = grant_details("used", grant, decision_id=use.decision_id)
        event = build_admin_event(
            "grant", stage=self._stage, details=details, operator=None, identity=use.identity
        )
        try:
            first = self._store.mark_used(grant.id, time.time(), event=event)
        except GrantError:
            return
        self._marked.add(grant.id)
        if first:
            with contextlib.suppress(GrantNotAudited):
                deliver(self._store, self._emitter, event, "used", grant.id)
