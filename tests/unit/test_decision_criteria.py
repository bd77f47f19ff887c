"""Access criteria through ``CompiledPolicy.evaluate``: claims, issuers, conditions,
grants, break-glass, the order they apply in, and the memo never leaking between
principals, times or source addresses.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chalicelib.identity import Identity
from chalicelib.policy import AccessRequest, CompiledPolicy, parse_policy
from chalicelib.policy.globs import compile_glob
from chalicelib.policy.grant import Grant
from chalicelib.reasons import Reason
from tests.helpers import AUDIENCE, ISSUER

if TYPE_CHECKING:
    from chalicelib.policy.model import Route

NOW = 1_800_000_000.0
OTHER_ISSUER = "https://partner.example.net"


def person(
    sub: str = "alice",
    *,
    groups: tuple[str, ...] = (),
    claims: dict[str, Any] | None = None,
    issuer: str = ISSUER,
    amr: tuple[str, ...] = (),
    email: str | None = None,
) -> Identity:
    return Identity(
        issuer=issuer,
        subject=sub,
        audience=AUDIENCE,
        expires_at=2_000_000_000,
        email=email,
        groups=frozenset(groups),
        amr=amr,
        claims=claims or {},
    )


def policy(*rules: dict[str, Any], **blocks: Any) -> CompiledPolicy:
    document = {
        "version": 1,
        "routes": [
            {"id": "app", "path_prefix": "/", "upstream": "http://app:80", "audience": "app"},
            {"id": "ops", "path_prefix": "/ops", "upstream": "http://ops:80", "audience": "ops"},
        ],
        "rules": list(rules),
        **blocks,
    }
    return CompiledPolicy(parse_policy(document), 3)


def rule(rule_id: str, effect: str = "allow", **fields: Any) -> dict[str, Any]:
    return {"id": rule_id, "effect": effect, "routes": ["app"], "actions": ["GET"], **fields}


def get(
    path: str = "/data", *, at: float = NOW, ip: str = "10.0.0.1", why: str | None = None
) -> AccessRequest:
    return AccessRequest("h", "GET", path, source_ip=ip, at=at, justification=why)


# --- claims ----------------------------------------------------------------------------------

SECURITY = rule("security", subjects={"claims": {"department": ["security", "it"]}})
SENIOR_SECURITY = rule("senior", subjects={"claims": {"department": "security", "level": 3}})


@pytest.mark.parametrize(
    ("claims", "allowed"),
    [
        ({"department": "security"}, True),
        ({"department": "it"}, True),
        ({"department": ["sales", "it"]}, True),  # list claim: membership
        ({"department": "Security"}, False),  # exact
        ({"department": "sales"}, False),
        ({"department": ["sales"]}, False),
        ({}, False),  # absent: an allow never matches
        ({"department": {"name": "security"}}, False),
    ],
    ids=["equal", "second value", "list member", "case", "other", "list other", "absent", "object"],
)
def test_claims_equality_and_membership(claims: dict[str, Any], allowed: bool) -> None:
    decision = policy(SECURITY).evaluate(person(claims=claims), get())
    assert decision.allowed is allowed
    assert decision.matched_rules == (("security",) if allowed else ())


@pytest.mark.parametrize(
    ("claims", "allowed"),
    [
        ({"department": "security", "level": 3}, True),
        ({"department": "security", "level": "3"}, False),  # types differ
        ({"department": "security", "level": 2}, False),
        ({"department": "security"}, False),  # every named claim must match
        ({"level": 3}, False),
        ({"department": "security", "level": True}, False),  # true is not 1 (nor 3)
    ],
    ids=["both", "string level", "other level", "level absent", "department absent", "bool"],
)
def test_a_claims_selector_needs_every_claim(claims: dict[str, Any], allowed: bool) -> None:
    assert policy(SENIOR_SECURITY).evaluate(person(claims=claims), get()).allowed is allowed


@pytest.mark.parametrize(
    ("claims", "denied_by_rule"),
    [
        ({"department": "contractors"}, True),
        ({}, True),  # no claim: the deny still applies
        ({"department": "staff"}, False),
        ({"department": ["staff", "contractors"]}, True),
    ],
    ids=["named", "absent", "other", "in list"],
)
def test_a_claims_deny_also_catches_tokens_without_the_claim(
    claims: dict[str, Any], denied_by_rule: bool
) -> None:
    compiled = policy(
        rule("all", subjects={"groups": ["staff"]}),
        rule("no-contractors", "deny", subjects={"claims": {"department": "contractors"}}),
    )
    decision = compiled.evaluate(person(groups=("staff",), claims=claims), get())
    assert decision.allowed is not denied_by_rule
    expected = (Reason.DENY_RULE_MATCHED,) if denied_by_rule else (Reason.ALLOW_RULE_MATCHED,)
    assert decision.reasons == expected


def test_principals_differing_only_in_a_claim_get_their_own_answers() -> None:
    compiled = policy(SECURITY)
    insider = person(claims={"department": "security"})
    outsider = person(claims={"department": "sales"})  # same sub, issuer, groups, email
    assert compiled.evaluate(insider, get()).allowed is True
    assert compiled.evaluate(outsider, get()).allowed is False
    assert compiled.evaluate(insider, get()).allowed is True


# --- issuers ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("issuer", "allowed"),
    [(ISSUER, True), (ISSUER + "/", True), (OTHER_ISSUER, False)],
    ids=["same", "trailing slash", "other"],
)
def test_issuers_subject(issuer: str, allowed: bool) -> None:
    compiled = policy(rule("ours", subjects={"issuers": [ISSUER]}))
    assert compiled.evaluate(person(issuer=issuer), get()).allowed is allowed


# --- conditions through the engine -----------------------------------------------------------


def test_an_allow_whose_condition_fails_reports_the_condition_and_the_rule() -> None:
    compiled = policy(rule("admin", subjects={"groups": ["eng"]}, when={"mfa": True}))

    without = compiled.evaluate(person(groups=("eng",), amr=("pwd",)), get())
    with_mfa = compiled.evaluate(person(groups=("eng",), amr=("pwd", "otp")), get())

    assert (without.allowed, without.reasons, without.matched_rules) == (
        False,
        (Reason.MFA_REQUIRED,),
        ("admin",),
    )
    assert (with_mfa.allowed, with_mfa.reasons) == (True, (Reason.ALLOW_RULE_MATCHED,))
    assert (without.policy_version, without.policy_checksum) == (3, compiled.checksum)


def test_another_allow_without_conditions_still_allows() -> None:
    compiled = policy(
        rule("strict", when={"source_cidrs": ["192.0.2.0/24"]}),
        rule("open", subjects={"groups": ["eng"]}),
    )
    decision = compiled.evaluate(person(groups=("eng",)), get(ip="203.0.113.1"))
    assert decision.allowed
    assert decision.matched_rules == ("open",)


def test_the_memo_does_not_cache_what_conditions_read() -> None:
    compiled = policy(
        rule("office", when={"source_cidrs": ["10.0.0.0/8"]}),
        rule("weekdays-only", "deny", when={"hours": {"tz": "UTC", "days": ["sat", "sun"]}}),
    )
    saturday = datetime(2026, 12, 5, 12, tzinfo=UTC).timestamp()
    wednesday = datetime(2026, 12, 2, 12, tzinfo=UTC).timestamp()
    alice = person()
    answers = [
        compiled.evaluate(alice, get(at=wednesday, ip="10.1.1.1")).allowed,
        compiled.evaluate(alice, get(at=wednesday, ip="192.0.2.1")).allowed,
        compiled.evaluate(alice, get(at=saturday, ip="10.1.1.1")).allowed,
        compiled.evaluate(alice, get(at=wednesday, ip="10.1.1.1")).allowed,
    ]
    assert answers == [True, False, False, True]


def test_a_deny_with_conditions_applies_only_while_they_hold() -> None:
    compiled = policy(
        rule("everyone"),
        rule("not-from-outside", "deny", when={"source_cidrs": ["0.0.0.0/0"]}),
    )
    assert compiled.evaluate(person(), get(ip="10.0.0.1")).allowed is False
    # A source that cannot be placed cannot lift the deny.
    assert compiled.evaluate(person(), get(ip="garbage")).allowed is False
    assert compiled.evaluate(person(), get(ip="2001:db8::1")).allowed is True


# --- grants ----------------------------------------------------------------------------------

GRANTS = {"grants": {"approver_groups": ["security"], "max_duration": "4h"}}


def grant(**changes: Any) -> Grant:
    fields: dict[str, Any] = {
        "id": "g-1",
        "issuer": ISSUER,
        "subject": "alice",
        "email": None,
        "routes": ("app",),
        "actions": frozenset({"GET"}),
        "paths": (compile_glob("/data/**"),),
        "duration_seconds": 3600,
        "justification": "TICKET-1",
        "status": "approved",
        "requested_at": NOW - 600,
        "approved_at": NOW - 60,
        "expires_at": NOW - 60 + 3600,
        "approver": "security person",
    }
    fields.update(changes)
    return Grant(**fields)


@pytest.mark.parametrize(
    ("the_grant", "request_", "allowed"),
    [
        (grant(), get("/data/x"), True),
        (grant(), get("/data/x", at=NOW - 60), True),  # from the second of approval
        (grant(), get("/data/x", at=NOW - 61), False),
        (grant(), get("/data/x", at=NOW - 60 + 3599), True),  # the last second
        (grant(), get("/data/x", at=NOW - 60 + 3600), False),  # expires_at itself: over
        (grant(status="pending", approved_at=None, expires_at=None), get("/data/x"), False),
        (grant(status="revoked", ended_at=NOW - 1), get("/data/x"), False),
        (grant(status="revoked", ended_at=NOW + 10), get("/data/x"), True),  # replay before
        (grant(subject="bob"), get("/data/x"), False),
        (grant(issuer=OTHER_ISSUER), get("/data/x"), False),
        (grant(), get("/other"), False),
        (grant(routes=("ops",)), get("/data/x"), False),
    ],
    ids=[
        "in force",
        "approval second",
        "before approval",
        "last second",
        "expiry second",
        "pending",
        "revoked",
        "revoked later",
        "other subject",
        "other issuer",
        "uncovered path",
        "other route",
    ],
)
def test_grants_to_the_second(the_grant: Grant, request_: AccessRequest, allowed: bool) -> None:
    decision = policy(**GRANTS).evaluate(person(), request_, (the_grant,))
    assert decision.allowed is allowed
    if allowed:
        assert decision.reasons == (Reason.GRANT_MATCHED,)
        assert decision.grant is the_grant
    else:
        assert decision.grant is None
        assert decision.reasons == (Reason.NO_MATCHING_RULE,)


def test_grants_count_only_while_the_policy_enables_them() -> None:
    assert policy().evaluate(person(), get("/data/x"), (grant(),)).allowed is False


def test_a_deny_rule_beats_a_grant_and_a_rule_allow_needs_no_grant() -> None:
    denied = policy(rule("no-data", "deny", paths=["/data/**"]), **GRANTS)
    decision = denied.evaluate(person(), get("/data/x"), (grant(),))
    assert (decision.allowed, decision.reasons) == (False, (Reason.DENY_RULE_MATCHED,))

    open_policy = policy(rule("everyone"), **GRANTS)
    decision = open_policy.evaluate(person(), get("/data/x"), (grant(),))
    assert (decision.allowed, decision.grant) == (True, None)


# --- break-glass -----------------------------------------------------------------------------

GLASS = {"break_glass": {"groups": ["oncall"]}}


@pytest.mark.parametrize(
    ("groups", "why", "blocks", "allowed"),
    [
        (("oncall",), "INC-1 outage", GLASS, True),
        (("oncall",), None, GLASS, False),
        (("oncall",), "   ", GLASS, False),
        (("eng",), "INC-1 outage", GLASS, False),
        (
            ("oncall",),
            None,
            {"break_glass": {"groups": ["oncall"], "require_justification": False}},
            True,
        ),
        (("oncall",), "INC-1 outage", {}, False),
    ],
    ids=["member", "no reason", "blank reason", "not a member", "not required", "no block"],
)
def test_break_glass(
    groups: tuple[str, ...], why: str | None, blocks: dict[str, Any], allowed: bool
) -> None:
    decision = policy(**blocks).evaluate(person(groups=groups), get(why=why))
    assert decision.allowed is allowed
    assert decision.break_glass is allowed
    if allowed:
        assert decision.reasons == (Reason.BREAK_GLASS,)
        assert decision.justification == (why.strip() if why else None)


def test_break_glass_passes_an_unmet_condition_but_never_a_deny_rule() -> None:
    conditional = policy(rule("admin", when={"mfa": True}), **GLASS)
    decision = conditional.evaluate(person(groups=("oncall",)), get(why="INC-2"))
    assert (decision.allowed, decision.break_glass) == (True, True)

    forbidden = policy(rule("never", "deny", paths=["/data/**"]), **GLASS)
    decision = forbidden.evaluate(person(groups=("oncall",)), get("/data/x", why="INC-2"))
    assert (decision.allowed, decision.break_glass, decision.reasons) == (
        False,
        False,
        (Reason.DENY_RULE_MATCHED,),
    )


def test_a_grant_is_preferred_to_break_glass() -> None:
    compiled = policy(**GRANTS, **GLASS)
    decision = compiled.evaluate(person(groups=("oncall",)), get("/data/x", why="x"), (grant(),))
    assert (decision.grant is not None, decision.break_glass) == (True, False)


# --- route selection ---------------------------------------------------------------------------

HOSTS = st.sampled_from(["*", "a.example.com", "b.example.com"])
SEGMENTS = st.sampled_from(["a", "b", "api", "v1"])
PREFIXES = (
    st.lists(SEGMENTS, max_size=3)
    .flatmap(lambda parts: st.sampled_from(["/" + "/".join(parts), "/" + "/".join(parts) + "/"]))
    .map(lambda prefix: prefix.replace("//", "/"))
)
PATHS = (
    st.lists(SEGMENTS, min_size=0, max_size=5)
    .flatmap(lambda parts: st.sampled_from(["/" + "/".join(parts), "/" + "/".join(parts) + "/"]))
    .map(lambda path: path.replace("//", "/"))
)


def reference_route(routes: list[Route], host: str, path: str) -> Route | None:
    """Exact host before "*", then the longest covering prefix, the first one on a tie."""
    for wanted in (host, "*"):
        candidates = [r for r in routes if r.host == wanted and r.covers_path(path)]
        if candidates:
            longest = max(len(r.path_prefix) for r in candidates)
            return next(r for r in candidates if len(r.path_prefix) == longest)
    return None


@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.tuples(HOSTS, PREFIXES), min_size=1, max_size=8),
    st.sampled_from(["a.example.com", "b.example.com", "c.example.com"]),
    PATHS,
)
def test_route_for_equals_the_reference(specs: list[tuple[str, str]], host: str, path: str) -> None:
    routes = [
        {"id": f"r{n}", "host": h, "path_prefix": p, "upstream": "http://x:1", "audience": "x"}
        for n, (h, p) in enumerate(specs)
    ]
    compiled = CompiledPolicy(parse_policy({"version": 1, "routes": routes}), 1)
    expected = reference_route(list(compiled.document.routes), host, path)
    assert compiled.route_for(host, path) == expected
