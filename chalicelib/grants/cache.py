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
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from chalicelib.grants.errors import GrantsUnavailable
from chalicelib.grants.store import ENDED_GRANTS_KEPT_SECONDS
from chalicelib.observability import get_logger
from chalicelib.refresh import Refreshing

if TYPE_CHECKING:
    from chalicelib.grants.store import GrantStore
    from chalicelib.policy.grant import Grant

_log = get_logger("grants")
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
    after that :meth:`of_principal` raises :class:`GrantsUnavailable` and
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
        self._value: Refreshing[_Loaded] = Refreshing(
            self._load,
            unavailable=GrantsUnavailable,
            refresh_seconds=refresh_seconds,
            max_stale_seconds=max_stale_seconds,
            clock=clock,
        )

    def of_principal(self, issuer: str, subject: str) -> PrincipalGrants:
        """The live grants of ``(issuer, subject)``, and those that ended within a day.

        Raises
        ------
        GrantsUnavailable
            When grants could not be loaded recently enough.
        """
        loaded = self._value.get()
        principal = (issuer, subject)
        return PrincipalGrants(loaded.live.get(principal, ()), loaded.ended.get(principal, ()))

    def _load(self, current: _Loaded | None) -> _Loaded:
        live = self._store.live_grants()
        try:
            ended = self._store.recently_ended(time.time() - ENDED_GRANTS_KEPT_SECONDS)
        except GrantsUnavailable as exc:
            # Ended grants only name why a request is refused; never lose the live ones.
            _log.warning("ended grants unavailable, refusals will not name them: %s", exc)
            ended = []
        # A grant ended between the two reads is ended: its live copy is stale.
        ended_ids = {grant.id for grant in ended}
        return _Loaded(
            _by_principal(grant for grant in live if grant.id not in ended_ids),
            _by_principal(ended),
        )


@dataclass(frozen=True, slots=True)
class PrincipalGrants:
    """One principal's grants as a container sees them.

    ``live`` may allow (the engine checks each against the request's time);
    ``ended`` never does: it only names why a request it covered is refused.
    """

    live: tuple[Grant, ...] = ()
    ended: tuple[Grant, ...] = ()


@dataclass(frozen=True, slots=True)
class _Loaded:
    live: dict[Principal, tuple[Grant, ...]]
    ended: dict[Principal, tuple[Grant, ...]]


def _by_principal(grants: Iterable[Grant]) -> dict[Principal, tuple[Grant, ...]]:
    by_principal: dict[Principal, list[Grant]] = {}
    for grant in grants:
        by_principal.setdefault(grant.principal, []).append(grant)
    return {principal: tuple(found) for principal, found in by_principal.items()}
