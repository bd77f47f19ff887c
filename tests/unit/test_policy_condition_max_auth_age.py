"""The ``max_auth_age`` condition (``chalicelib/policy/criteria/max_auth_age.py``): a recent login.

Measured from the token's ``auth_time`` to the request's time, with a minute
of clock skew allowed. A missing or implausible ``auth_time`` is unknown: it
fails an allow and keeps a deny.
"""

from __future__ import annotations

import pytest

from chalicelib.policy.conditions import UNKNOWN, Conditions
from chalicelib.reasons import Reason
from tests.unit.test_policy_condition_registry import NOW, assert_both_ways, facts, person

AUTH_AGE_CASES = [
    # (seconds since auth_time, or None for no auth_time), allow holds, deny applies
    pytest.param(0, True, True, id="logged in now"),
    pytest.param(1, True, True, id="one second ago"),
    pytest.param(3599, True, True, id="one second inside"),
    pytest.param(3600, True, True, id="exactly the limit"),
    pytest.param(3601, False, False, id="one second over"),
    pytest.param(86_400, False, False, id="a day ago"),
    pytest.param(NOW, False, False, id="auth_time zero"),
    pytest.param(-1, True, True, id="a second in the future is clock skew"),
    pytest.param(-30, True, True, id="half a minute in the future is clock skew"),
    pytest.param(-60, True, True, id="a minute in the future is still skew"),
    pytest.param(-61, False, True, id="beyond the skew allowance"),
    pytest.param(-3600, False, True, id="an hour in the future"),
    pytest.param(None, False, True, id="no auth_time"),
]


@pytest.mark.parametrize(("age", "holds", "deny_applies"), AUTH_AGE_CASES)
def test_max_auth_age_holds_for_a_login_no_older_than_the_limit(
    age: int | None, holds: bool, deny_applies: bool
) -> None:
    identity = person(auth_time=None if age is None else NOW - age)

    assert_both_ways(
        Conditions(max_auth_age=3600),
        identity,
        facts(),
        holds=holds,
        deny_applies=deny_applies,
        reason=Reason.AUTH_TOO_OLD,
    )


@pytest.mark.parametrize(
    "auth_time",
    [True, float(NOW), str(NOW)],
    ids=["boolean", "float", "string"],
)
def test_an_auth_time_that_is_not_an_integer_is_unknown(auth_time: object) -> None:
    identity = person(auth_time=auth_time)  # type: ignore[arg-type]
    conditions = Conditions(max_auth_age=3600)

    assert conditions.check(identity, facts()) == [(Reason.AUTH_TOO_OLD, UNKNOWN)]
    assert conditions.allow_failures(identity, facts()) == (Reason.AUTH_TOO_OLD,)
    assert conditions.deny_applies(identity, facts()) is True


def test_auth_age_is_measured_at_the_request_time_not_the_wall_clock() -> None:
    identity = person(auth_time=NOW)
    conditions = Conditions(max_auth_age=60)

    assert conditions.allow_failures(identity, facts(at=NOW + 60)) == ()
    assert conditions.allow_failures(identity, facts(at=NOW + 61)) == (Reason.AUTH_TOO_OLD,)
