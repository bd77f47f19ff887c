"""A ``when`` condition is a plug-in: registering one is all the parser, engine and schema need.

Also the registry's own rules: one order (the reason codes'), one name each,
and a deny rule refusing exactly the conditions that say so.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest

from chalicelib.identity import Identity
from chalicelib.policy import AccessRequest, CompiledPolicy, PolicyInvalid, parse_policy
from chalicelib.policy import criterion as registry
from chalicelib.policy.conditions import Conditions
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
from chalicelib.policy.reference import policy_schema
from chalicelib.reasons import Reason
from tests.helpers import AUDIENCE, ISSUER

if TYPE_CHECKING:
    from collections.abc import Iterator

    from chalicelib.policy.criterion import Check, RequestFacts


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
    policy = CompiledPolicy(parse_policy(document({"scheme": "https"})), 1)
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
