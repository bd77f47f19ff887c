"""``max_auth_age``: the principal signed in at most this long ago (``auth_time``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from chalicelib.policy.criterion import (
    FAILS,
    HOLDS,
    UNKNOWN,
    Criterion,
    Problems,
    Verdict,
    register,
)
from chalicelib.policy.durations import parse_duration
from chalicelib.reasons import Reason

if TYPE_CHECKING:
    from chalicelib.identity import Identity
    from chalicelib.policy.criterion import Check, RequestFacts

# How far in the future an auth_time may lie before it is not credible.
_CLOCK_SKEW_SECONDS = 60


def parse(value: Any, where: str, problems: Problems) -> int | None:
    """The limit in seconds."""
    seconds = parse_duration(value)
    if seconds is None:
        problems.problem(where, 'must be seconds (a number) or a duration like "1h"')
    return seconds


@dataclass(frozen=True, slots=True)
class MaxAuthAge:
    """A limit on the age of the sign-in, in seconds."""

    limit: int

    def check(self, identity: Identity, facts: RequestFacts) -> Verdict:
        """HOLDS when recent enough; UNKNOWN without a credible ``auth_time``."""
        auth_time = identity.auth_time
        if not isinstance(auth_time, int) or isinstance(auth_time, bool):
            return UNKNOWN
        age = facts.at - auth_time
        if age < -_CLOCK_SKEW_SECONDS:
            # Beyond clock skew an auth_time in the future is not credible: it
            # shows nothing, so it opens no allow and lifts no deny.
            return UNKNOWN
        return HOLDS if age <= self.limit else FAILS


def compile_check(setting: int) -> Check:
    """The bound method: one call per request."""
    return MaxAuthAge(setting).check


MAX_AUTH_AGE = register(
    Criterion(
        name="max_auth_age",
        reason=Reason.AUTH_TOO_OLD,
        parse=parse,
        compile=compile_check,
        summary="The principal signed in at most this long ago.",
        schema={"$ref": "#/$defs/duration"},
        example="1h",
        deny_refusal="it would deny the stronger sessions; require it on the allow rules instead",
        notes=(
            "Read from the token's `auth_time` claim. A token without it, or with one more than "
            "a minute in the future, does not satisfy the condition. Not allowed on a deny rule.",
        ),
    )
)
