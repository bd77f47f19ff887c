"""The live grants as one container sees them, refreshed on a bound.

Approvals and revocations are noticed within ``refresh_seconds`` (the same
bound as policy changes). Expiry is not this cache's business: the engine
checks every grant against the request time, to the second.

Revocation bound. A revoked grant stops working at the first decision after
the deciding container's next refresh: within ``refresh_seconds``
(``GATEHOUSE_POLICY_REFRESH_SECONDS``), or, while the table cannot be read,
within ``max_stale_seconds`` of the last good read (after that decisions go
on without grants). The authorizer's result cache adds nothing: the proxy
decides again, with this cache, every request let through on a cached
answer. Reading the grant on every request would make revocation immediate
at the price of one DynamoDB round trip per decision (two per request on a
cached answer); Gatehouse keeps zero and states the bound instead
(:func:`revocation_bound`, answered by the grant API on ``revoke``).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from chalicelib.grants.errors import GrantsUnavailable
from chalicelib.refresh import Refreshing

if TYPE_CHECKING:
    from chalicelib.grants.store import GrantStore
    from chalicelib.policy.grant import Grant

Principal = tuple[str, str]
# How long the last good set of grants outlives failing refreshes.
MAX_STALE_SECONDS = 60.0


def revocation_bound(
    refresh_seconds: float, max_stale_seconds: float = MAX_STALE_SECONDS
) -> dict[str, float]:
    """When a revocation is in force everywhere: normally, and at most (table unreadable).

    The values are seconds after the revocation was written; see the module's docstring.
    """
    return {
        "in_effect_within_seconds": refresh_seconds,
        "in_effect_within_seconds_at_most": max(refresh_seconds, max_stale_seconds),
    }


class ActiveGrants:
    """Live grants by principal, shared by a container's threads.

    Every live grant is loaded with one strongly consistent ``Query`` at most
    once per ``refresh_seconds``. When a refresh fails, the last good set
    serves for at most ``max_stale_seconds`` after its last successful load;
    after that :meth:`for_principal` raises :class:`GrantsUnavailable` and
    decisions go on without grants.

    Parameters
    ----------
    store:
        Where the live copies are.
    refresh_seconds:
        How stale an approval or a revocation may be seen (the policy's bound).
    max_stale_seconds:
        How long the last good set outlives failing refreshes.
    clock:
        Monotonic seconds (injected by tests).
    """

    def __init__(
        self,
        store: GrantStore,
        *,
        refresh_seconds: float,
        max_stale_seconds: float = MAX_STALE_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._store = store
        self._value: Refreshing[dict[Principal, tuple[Grant, ...]]] = Refreshing(
            self._load,
            unavailable=GrantsUnavailable,
            refresh_seconds=refresh_seconds,
            max_stale_seconds=max_stale_seconds,
            clock=clock,
        )

    def for_principal(self, issuer: str, subject: str) -> tuple[Grant, ...]:
        """The live grants of ``(issuer, subject)`` (possibly past expiry: check the time).

        Raises
        ------
        GrantsUnavailable
            When grants could not be loaded recently enough.
        """
        return self._value.get().get((issuer, subject), ())

    def _load(
        self, current: dict[Principal, tuple[Grant, ...]] | None
    ) -> dict[Principal, tuple[Grant, ...]]:
        by_principal: dict[Principal, list[Grant]] = {}
        for grant in self._store.live_grants():
            by_principal.setdefault(grant.principal, []).append(grant)
        return {principal: tuple(grants) for principal, grants in by_principal.items()}
