"""``mfa: true``: the session shows a second authentication factor (``amr``)."""

from __future__ import annotations

from functools import lru_cache
from typing import TYPE_CHECKING, Any

from chalicelib.policy.criterion import FAILS, HOLDS, Criterion, Problems, Verdict, register
from chalicelib.reasons import Reason

if TYPE_CHECKING:
    from chalicelib.identity import Identity
    from chalicelib.policy.criterion import Check, RequestFacts

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


def parse(value: Any, where: str, problems: Problems) -> bool | None:
    """True when a second factor is required; None for ``false`` or an invalid value."""
    if not isinstance(value, bool):
        problems.problem(where, "must be true or false")
        return None
    return True if value else None


def check(identity: Identity, facts: RequestFacts) -> Verdict:
    """Whether the principal's session shows a second factor."""
    return HOLDS if shows_second_factor(identity.amr) else FAILS


def compile_check(setting: bool) -> Check:
    """The check is the same for every rule: there is nothing to bind."""
    return check


MFA = register(
    Criterion(
        name="mfa",
        reason=Reason.MFA_REQUIRED,
        parse=parse,
        compile=compile_check,
        summary="The session shows a second authentication factor.",
        schema={"type": "boolean"},
        example=True,
        unset=False,
        # "Deny when the session has MFA" would shut out the strongest
        # sessions and let weaker ones through: the opposite of what anyone
        # writing it means. It describes what an allow requires.
        deny_refusal="it would deny the stronger sessions; require it on the allow rules instead",
        notes=(
            "Read from the token's `amr` claim (RFC 8176): `mfa` or `mca`, or methods of two "
            "different factors (knowledge such as `pwd`, possession such as `otp` or `hwk`, "
            "inherence such as `fpt`). `false` imposes nothing. Not allowed on a deny rule.",
        ),
    )
)
