"""Rule conditions (``when``): every listed condition must hold.

Each condition answers :data:`HOLDS`, :data:`FAILS` or :data:`UNKNOWN` (the
request does not carry what it needs, e.g. a token without ``auth_time``).
An allow rule applies only when every condition holds; a deny rule applies
unless a condition positively fails, so missing facts never open access.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from functools import lru_cache
from typing import TYPE_CHECKING

from chalicelib.policy.cidrs import CidrSet, parse_address
from chalicelib.reasons import Reason

if TYPE_CHECKING:
    from chalicelib.identity import Identity
    from chalicelib.policy.hours import Hours


class Verdict(Enum):
    """A condition's answer."""

    HOLDS = "holds"
    FAILS = "fails"
    UNKNOWN = "unknown"


HOLDS, FAILS, UNKNOWN = Verdict.HOLDS, Verdict.FAILS, Verdict.UNKNOWN

# RFC 8176 methods grouped by factor. A second factor is shown by "mfa" or
# "mca" (the IdP says so), or by methods from two different factors.
_KNOWLEDGE = frozenset({"pwd", "pin", "kba"})
_POSSESSION = frozenset({"otp", "hwk", "swk", "sms", "tel", "sc", "pop"})
_INHERENCE = frozenset({"fpt", "face", "iris", "retina", "vbm"})
_MULTI = frozenset({"mfa", "mca"})


@lru_cache(maxsize=256)
def shows_second_factor(amr: tuple[str, ...]) -> bool:
    """Whether the ``amr`` claim shows more than one authentication factor."""
    methods = set(amr)
    if methods & _MULTI:
        return True
    factors = sum(1 for factor in (_KNOWLEDGE, _POSSESSION, _INHERENCE) if methods & factor)
    return factors >= 2


@dataclass(frozen=True, slots=True)
class Facts:
    """What conditions read about one request, beyond the principal's identity."""

    at: float
    source_ip: str


@dataclass(frozen=True, slots=True)
class Conditions:
    """A rule's ``when`` block; None/False fields impose nothing.

    Attributes
    ----------
    mfa:
        Require a second factor in ``amr``.
    max_auth_age:
        Seconds since ``auth_time``, at most.
    source_cidrs:
        The source address must be in one of these networks.
    hours:
        The request must fall in this window.
    """

    mfa: bool = False
    max_auth_age: int | None = None
    source_cidrs: CidrSet | None = None
    hours: Hours | None = None

    @property
    def empty(self) -> bool:
        """True when the rule has no conditions."""
        return (
            not self.mfa
            and self.max_auth_age is None
            and self.source_cidrs is None
            and self.hours is None
        )

    def check(self, identity: Identity, facts: Facts) -> list[tuple[Reason, Verdict]]:
        """Each condition's verdict, with the reason code it reports when it does not hold."""
        results: list[tuple[Reason, Verdict]] = []
        if self.mfa:
            results.append((Reason.MFA_REQUIRED, _mfa(identity)))
        if self.max_auth_age is not None:
            results.append((Reason.AUTH_TOO_OLD, _auth_age(identity, facts, self.max_auth_age)))
        if self.source_cidrs is not None:
            results.append((Reason.SOURCE_NOT_ALLOWED, _source(facts, self.source_cidrs)))
        if self.hours is not None:
            inside = self.hours.contains(facts.at)
            results.append((Reason.OUTSIDE_HOURS, HOLDS if inside else FAILS))
        return results

    def allow_failures(self, identity: Identity, facts: Facts) -> tuple[Reason, ...]:
        """Why an allow rule with these conditions does not apply (empty: it applies)."""
        # Written out rather than via check(): this runs on every request.
        failures: list[Reason] = []
        if self.mfa and not shows_second_factor(identity.amr):
            failures.append(Reason.MFA_REQUIRED)
        if self.max_auth_age is not None and (
            _auth_age(identity, facts, self.max_auth_age) is not HOLDS
        ):
            failures.append(Reason.AUTH_TOO_OLD)
        if self.source_cidrs is not None and _source(facts, self.source_cidrs) is not HOLDS:
            failures.append(Reason.SOURCE_NOT_ALLOWED)
        if self.hours is not None and not self.hours.contains(facts.at):
            failures.append(Reason.OUTSIDE_HOURS)
        return tuple(failures)

    def deny_applies(self, identity: Identity, facts: Facts) -> bool:
        """Whether a deny rule with these conditions applies (unknown counts as holding)."""
        if self.empty:
            return True
        return all(verdict is not FAILS for _, verdict in self.check(identity, facts))


def _mfa(identity: Identity) -> Verdict:
    return HOLDS if shows_second_factor(identity.amr) else FAILS


def _auth_age(identity: Identity, facts: Facts, limit: int) -> Verdict:
    auth_time = identity.auth_time
    if not isinstance(auth_time, int) or isinstance(auth_time, bool):
        return UNKNOWN
    age = facts.at - auth_time
    if age < -60:
        # Beyond clock skew an auth_time in the future is not credible: it
        # shows nothing, so it opens no allow and lifts no deny.
        return UNKNOWN
    return HOLDS if age <= limit else FAILS


def _source(facts: Facts, networks: CidrSet) -> Verdict:
    address = parse_address(facts.source_ip)
    if address is None:
        return UNKNOWN
    return HOLDS if address in networks else FAILS
