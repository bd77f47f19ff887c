"""The ``mfa`` condition (``chalicelib/policy/criteria/mfa.py``): a second factor, from ``amr``.

RFC 8176 methods are grouped into factor classes (knowledge, possession,
biometric); two methods of one class are one factor. Each case is read both
ways: the allow reading (failure codes) and the deny reading.
"""

from __future__ import annotations

import pytest

from chalicelib.policy.conditions import Conditions
from chalicelib.policy.criteria.mfa import shows_second_factor
from chalicelib.reasons import Reason
from tests.unit.test_policy_condition_registry import assert_both_ways, facts, person

MFA_CASES = [
    pytest.param((), False, id="no amr"),
    pytest.param(("pwd",), False, id="password only"),
    pytest.param(("otp",), False, id="otp only"),
    pytest.param(("pwd", "pin"), False, id="two knowledge methods are one factor"),
    pytest.param(("pin", "kba"), False, id="pin and questions are one factor"),
    pytest.param(("otp", "hwk"), False, id="two possession methods are one factor"),
    pytest.param(("sms", "tel"), False, id="sms and phone are one factor"),
    pytest.param(("fpt", "face"), False, id="two biometrics are one factor"),
    pytest.param(("mfa",), True, id="idp says mfa"),
    pytest.param(("mca",), True, id="idp says multiple channels"),
    pytest.param(("pwd", "otp"), True, id="password and otp"),
    pytest.param(("pwd", "hwk"), True, id="password and hardware key"),
    pytest.param(("pwd", "swk"), True, id="password and software key"),
    pytest.param(("pwd", "fpt"), True, id="password and fingerprint"),
    pytest.param(("pin", "sc"), True, id="pin and smart card"),
    pytest.param(("hwk", "fpt"), True, id="key and fingerprint"),
    pytest.param(("hwk", "face"), True, id="key and face"),
    pytest.param(("pop", "face"), True, id="proof of possession and face"),
    pytest.param(("kba", "iris"), True, id="questions and iris"),
    pytest.param(("MFA",), False, id="values are case-sensitive"),
    pytest.param(("Pwd", "OTP"), False, id="capitalised methods are unknown"),
    pytest.param(("geo", "wia"), False, id="methods without a factor class"),
    pytest.param(("user", "x-custom"), False, id="unknown methods"),
    pytest.param(("unknown", "pwd"), False, id="an unknown method beside a password"),
]


@pytest.mark.parametrize(("amr", "second_factor"), MFA_CASES)
def test_mfa_holds_only_with_a_second_factor(amr: tuple[str, ...], second_factor: bool) -> None:
    identity = person(amr=amr)

    assert shows_second_factor(amr) is second_factor
    assert_both_ways(
        Conditions(mfa=True),
        identity,
        facts(),
        holds=second_factor,
        deny_applies=second_factor,  # mfa is never unknown: no amr shows no second factor
        reason=Reason.MFA_REQUIRED,
    )


def test_mfa_false_imposes_nothing() -> None:
    conditions = Conditions(mfa=False)

    assert conditions.empty
    assert conditions.allow_failures(person(), facts()) == ()
    assert conditions.deny_applies(person(), facts()) is True
