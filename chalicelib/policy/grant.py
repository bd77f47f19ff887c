"""A just-in-time grant: temporary access for one principal, approved by another.

Time bounds are checked at every decision, to the second: a grant is in
force from its approval until ``expires_at`` (exclusive) unless revoked
before. Nothing relies on DynamoDB TTL for that.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from chalicelib.policy.globs import PathGlob

GrantStatus = Literal["pending", "approved", "denied", "revoked", "expired"]
GRANT_STATUSES: tuple[GrantStatus, ...] = ("pending", "approved", "denied", "revoked", "expired")
# expires_at - approved_at of a genuine grant can exceed its duration by float rounding.
_ROUNDING = 0.001


@dataclass(frozen=True)
class Grant:
    """One grant and where it is in its life.

    Attributes
    ----------
    id:
        A UUIDv7 (sorts by request time).
    issuer, subject:
        The principal the grant is for (always the requester).
    email:
        The requester's verified email at request time, for people reading lists
        and for the one person, one mailbox check at approval (None: no approval).
    routes, actions, paths:
        What the grant allows: route ids, HTTP methods, path globs (none: the whole route).
    duration_seconds:
        How long the grant lasts once approved.
    justification:
        Why the requester needs it.
    status:
        ``pending`` until approved or denied; ``revoked`` or ``expired`` at the end.
    requested_at, approved_at, expires_at, ended_at:
        Epoch seconds; ``ended_at`` is when it was denied, revoked or swept as expired.
    approver:
        Who approved (or denied) it, as ``issuer|subject (email)``.
    ended_by:
        Who denied or revoked it.
    """

    id: str
    issuer: str
    subject: str
    email: str | None
    routes: tuple[str, ...]
    actions: frozenset[str]
    paths: tuple[PathGlob, ...]
    duration_seconds: int
    justification: str
    status: GrantStatus
    requested_at: float
    approved_at: float | None = None
    expires_at: float | None = None
    ended_at: float | None = None
    approver: str | None = None
    ended_by: str | None = None
    first_used_at: float | None = None

    def in_force_at(self, at: float) -> bool:
        """Whether the grant allowed access at ``at`` (epoch seconds)."""
        if self.approved_at is None or self.expires_at is None:
            return False
        if not self.approved_at <= at < self.expires_at:
            return False
        if self.status == "revoked":
            # A revocation without its time is taken as revoked from the start.
            return self.ended_at is not None and at < self.ended_at
        return self.status in ("approved", "expired")

    def plausible_under(self, max_duration_seconds: int) -> bool:
        """Whether this record is one an approval under the policy could have written.

        Only the grant function writes grants, and it enforces all of this; a
        record that fails here was written some other way (by hand, by a tool
        with table access) and is not honoured: an approver is named, the
        approval follows the request, and the grant lasts no longer than it
        asked for nor than the policy allows.
        """
        if not self.approver or self.approved_at is None or self.expires_at is None:
            return False
        lasts = self.expires_at - self.approved_at
        limit = min(self.duration_seconds, max_duration_seconds) + _ROUNDING
        return self.requested_at <= self.approved_at and 0 < lasts <= limit

    def covers(self, route_id: str, method: str, path: str) -> bool:
        """Whether the grant's scope includes this request (``path`` normalised)."""
        if route_id not in self.routes or method not in self.actions:
            return False
        return not self.paths or any(glob.matches(path) for glob in self.paths)

    def stopped_at(self, at: float) -> float | None:
        """When the grant stopped giving access (or was refused), if it had by ``at``.

        None for a grant pending, in force, or withdrawn before any approval
        (it never gave access).
        """
        status = self.effective_status(at)
        if status == "expired":
            return self.expires_at
        if status == "revoked" and self.approved_at is not None:
            return self.ended_at if self.ended_at is not None else self.approved_at
        if status == "denied":
            return self.ended_at if self.ended_at is not None else self.requested_at
        return None

    def effective_status(self, at: float) -> GrantStatus:
        """The status at ``at``: an approved grant past its expiry is expired, swept or not."""
        if self.status == "approved" and self.expires_at is not None and at >= self.expires_at:
            return "expired"
        return self.status

    # --- transitions: the state each lifecycle step leaves (the store makes it durable) ---

    def approved_by(self, approver: str, now: float) -> Grant:
        """This grant approved at ``now``: in force for its duration from then."""
        return replace(
            self,
            status="approved",
            approver=approver,
            approved_at=now,
            expires_at=now + self.duration_seconds,
        )

    def denied_by(self, approver: str, now: float) -> Grant:
        """This grant denied at ``now``."""
        return replace(self, status="denied", approver=approver, ended_by=approver, ended_at=now)

    def revoked_by(self, actor: str, now: float) -> Grant:
        """This grant withdrawn (pending) or ended (approved) at ``now``."""
        return replace(self, status="revoked", ended_by=actor, ended_at=now)

    def expired_at(self, now: float) -> Grant:
        """This grant recorded as expired by a sweep at ``now``."""
        return replace(self, status="expired", ended_at=now)

    @property
    def principal(self) -> tuple[str, str]:
        """``(issuer, subject)``: the key grants are looked up by."""
        return (self.issuer, self.subject)
