"""The ``when`` conditions as plug-ins: the registry, the contract every condition keeps, and
how several conditions on one rule combine.

Each condition is a module of ``chalicelib/policy/criteria/`` and has its own
table-driven test file, ``test_policy_condition_<name>.py``, which uses this
file's helpers. The contract: an allow rule applies only when every condition
holds (``allow_failures`` is empty); a deny rule applies unless a condition
positively fails (``deny_applies``): a fact the request does not carry (no
``auth_time``, a source address that cannot be placed) fails an allow and
keeps a deny. Registering a condition is all the parser, engine and schema
need. Conditions in whole decisions (through ``CompiledPolicy.evaluate``)
are in ``test_policy_decisions.py``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

import pytest

from chalicelib.identity import Identity
from chalicelib.policy import AccessRequest, CompiledPolicy, PolicyInvalid, parse_policy
from chalicelib.policy import criterion as registry
from chalicelib.policy.cidrs import CidrSet
from chalicelib.policy.conditions import UNKNOWN, Conditions, Facts
from chalicelib.policy.criterion import (
    FAILS,
    HOLDS,
    Criterion,
    CriterionConflict,
    Problems,
    Verdict,
    register,
    registered,
)
from chalicelib.policy.hours import Hours
from chalicelib.policy.reference import policy_schema
from chalicelib.reasons import Reason
from tests.helpers import AUDIENCE, ISSUER

if TYPE_CHECKING:
    from collections.abc import Iterator

    from chalicelib.policy.criterion import Check, RequestFacts

NOW = 1_800_000_000  # Fri 2027-01-15 08:00 UTC; the exact day matters only for hours
OFFICE_IP = "10.1.2.3"


def person(amr: tuple[str, ...] = (), auth_time: int | None = None) -> Identity:
    return Identity(
        issuer=ISSUER,
        subject="alice",
        audience=AUDIENCE,
        expires_at=2_000_000_000,
        amr=amr,
        auth_time=auth_time,
    )


def facts(at: float = NOW, ip: str = OFFICE_IP) -> Facts:
    return Facts(at=at, source_ip=ip)


def assert_both_ways(
    conditions: Conditions,
    identity: Identity,
    request: Facts,
    *,
    holds: bool,
    deny_applies: bool,
    reason: Reason,
) -> None:
    """The allow reading (failure codes) and the deny reading of one condition."""
    assert conditions.allow_failures(identity, request) == (() if holds else (reason,))
    assert conditions.deny_applies(identity, request) is deny_applies


# --- the registry --------------------------------------------------------------------------


def _parse_method(value: Any, where: str, problems: Problems) -> str | None:
    if value not in ("http", "https"):
        problems.problem(where, "must be http or https")
        return None
    return str(value)


def _compile_method(setting: str) -> Check:
    def check(identity: Identity, facts: RequestFacts) -> Verdict:
        # A stand-in fact: odd seconds are "https".
        return HOLDS if (int(facts.at) % 2 == 1) == (setting == "https") else FAILS

    return check


SCHEME = Criterion(
    name="scheme",
    reason=Reason.SOURCE_NOT_ALLOWED,
    parse=_parse_method,
    compile=_compile_method,
    summary="A test condition.",
    schema={"enum": ["http", "https"]},
    example="https",
    deny_refusal="it is only a test",
)


@pytest.fixture
def scheme_registered(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    registered()  # load the real ones first
    monkeypatch.setitem(registry._REGISTRY, "scheme", SCHEME)
    registry._ORDERED.clear()
    yield
    registry._ORDERED.clear()


def document(when: dict[str, Any], effect: str = "allow") -> dict[str, Any]:
    return {
        "version": 1,
        "routes": [{"id": "app", "upstream": "https://app.internal", "audience": "app"}],
        "rules": [
            {"id": "r", "effect": effect, "routes": ["app"], "actions": ["GET"], "when": when}
        ],
    }


def test_the_built_in_conditions_are_registered_in_reason_order() -> None:
    assert [criterion.name for criterion in registered()] == [
        "mfa",
        "max_auth_age",
        "source_cidrs",
        "hours",
    ]


def test_a_second_condition_of_the_same_name_is_refused() -> None:
    copy = Criterion(**{**vars(SCHEME), "name": "mfa"})

    with pytest.raises(CriterionConflict, match="mfa"):
        register(copy)


def test_unknown_condition_names_are_refused_by_conditions() -> None:
    with pytest.raises(TypeError, match="geo"):
        Conditions(geo="de")


@pytest.mark.usefixtures("scheme_registered")
def test_a_registered_condition_is_parsed_evaluated_and_published() -> None:
    policy = CompiledPolicy(parse_policy(document({"scheme": "https"})), 1, default_issuer=ISSUER)
    alice = Identity(issuer=ISSUER, subject="alice", audience=AUDIENCE, expires_at=2_000_000_000)

    assert policy.evaluate(alice, AccessRequest("h", "GET", "/", at=1_001)).allowed
    refused = policy.evaluate(alice, AccessRequest("h", "GET", "/", at=1_000))
    assert refused.reasons == (Reason.SOURCE_NOT_ALLOWED,)
    when = policy_schema()["$defs"]["rule"]["properties"]["when"]["properties"]
    assert when["scheme"]["enum"] == ["http", "https"]


@pytest.mark.usefixtures("scheme_registered")
def test_a_registered_condition_reports_its_problems_and_its_deny_refusal() -> None:
    with pytest.raises(PolicyInvalid) as bad:
        parse_policy(document({"scheme": "ftp"}))
    with pytest.raises(PolicyInvalid) as on_deny:
        parse_policy(document({"scheme": "https"}, effect="deny"))

    assert [str(p) for p in bad.value.problems] == ["rules[r].when.scheme: must be http or https"]
    assert [str(p) for p in on_deny.value.problems] == [
        "rules[r].when.scheme: cannot be on a deny rule: it is only a test"
    ]


# --- several conditions on one rule ----------------------------------------------------------

EVERYTHING = Conditions(
    mfa=True,
    max_auth_age=3600,
    source_cidrs=CidrSet.parse(["10.0.0.0/8"]),
    hours=Hours(ZoneInfo("UTC"), frozenset({4}), 8 * 60, 9 * 60),  # NOW is Friday 08:00 UTC
)
STRONG = ("pwd", "hwk")

COMBINED_CASES = [
    # amr, auth_time, source, at, allow failures, verdicts, deny applies
    pytest.param(
        STRONG, NOW, OFFICE_IP, NOW, (), (HOLDS, HOLDS, HOLDS, HOLDS), True, id="all hold"
    ),
    pytest.param(
        ("pwd",),
        NOW,
        OFFICE_IP,
        NOW,
        (Reason.MFA_REQUIRED,),
        (FAILS, HOLDS, HOLDS, HOLDS),
        False,
        id="only mfa fails",
    ),
    pytest.param(
        STRONG,
        None,
        OFFICE_IP,
        NOW,
        (Reason.AUTH_TOO_OLD,),
        (HOLDS, UNKNOWN, HOLDS, HOLDS),
        True,
        id="only auth_time unknown",
    ),
    pytest.param(
        STRONG,
        None,
        "garbage",
        NOW,
        (Reason.AUTH_TOO_OLD, Reason.SOURCE_NOT_ALLOWED),
        (HOLDS, UNKNOWN, UNKNOWN, HOLDS),
        True,
        id="two unknowns",
    ),
    pytest.param(
        STRONG,
        None,
        "garbage",
        NOW + 3600,
        (Reason.AUTH_TOO_OLD, Reason.SOURCE_NOT_ALLOWED, Reason.OUTSIDE_HOURS),
        (HOLDS, UNKNOWN, UNKNOWN, FAILS),
        False,
        id="unknowns and one failure",
    ),
    pytest.param(
        ("pwd",),
        NOW - 7200,
        "192.0.2.1",
        NOW + 3600,
        (
            Reason.MFA_REQUIRED,
            Reason.AUTH_TOO_OLD,
            Reason.SOURCE_NOT_ALLOWED,
            Reason.OUTSIDE_HOURS,
        ),
        (FAILS, FAILS, FAILS, FAILS),
        False,
        id="all fail, every reason in order",
    ),
]


@pytest.mark.parametrize(
    ("amr", "auth_time", "source_ip", "at", "failures", "verdicts", "deny_applies"),
    COMBINED_CASES,
)
def test_every_condition_must_hold_and_one_failure_lifts_a_deny(
    amr: tuple[str, ...],
    auth_time: int | None,
    source_ip: str,
    at: float,
    failures: tuple[Reason, ...],
    verdicts: tuple[Verdict, ...],
    deny_applies: bool,
) -> None:
    identity = person(amr=amr, auth_time=auth_time)
    request = facts(at=at, ip=source_ip)

    assert EVERYTHING.allow_failures(identity, request) == failures
    assert [verdict for _, verdict in EVERYTHING.check(identity, request)] == list(verdicts)
    assert [reason for reason, _ in EVERYTHING.check(identity, request)] == [
        Reason.MFA_REQUIRED,
        Reason.AUTH_TOO_OLD,
        Reason.SOURCE_NOT_ALLOWED,
        Reason.OUTSIDE_HOURS,
    ]
    assert EVERYTHING.deny_applies(identity, request) is deny_applies


def test_no_conditions_hold_for_everyone_both_ways() -> None:
    conditions = Conditions()
    nobody = person()

    assert conditions.empty
    assert conditions.check(nobody, facts(ip="garbage")) == []
    assert conditions.allow_failures(nobody, facts(ip="garbage")) == ()
    assert conditions.deny_applies(nobody, facts(ip="garbage")) is True
