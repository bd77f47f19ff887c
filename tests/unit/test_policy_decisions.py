"""Decisions through ``CompiledPolicy.evaluate``: every rule criterion, one table each.

Default deny; any applicable deny beats every allow, grant and break-glass;
an allow whose conditions fail denies with the conditions' reason codes; then
a grant in force, then break-glass. The memo of which rules match must never
carry an answer from one principal, time or source address to another.

The ``when`` conditions themselves, one file each, are in
``test_policy_condition_*.py``; here they are seen only through decisions.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Literal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chalicelib.identity import Identity
from chalicelib.policy import AccessRequest, CompiledPolicy, Decision, parse_policy
from chalicelib.policy.globs import compile_glob
from chalicelib.policy.grant import Grant
from chalicelib.reasons import Reason
from tests.helpers import AUDIENCE, ISSUER

if TYPE_CHECKING:
    from chalicelib.policy import Route

NOW = 1_800_000_000.0  # Friday 2027-01-15 08:00 UTC
SATURDAY = NOW + 86_400
PARTNER = "https://partner.example.net"
VERSION = 7

ROUTES = [
    {"id": "app", "path_prefix": "/", "upstream": "http://app:80", "audience": "app"},
    {
        "id": "admin",
        "path_prefix": "/admin",
        "upstream": "http://admin:80",
        "audience": "admin",
        "sensitive": True,
    },
    {"id": "ops", "host": "ops.example.com", "upstream": "http://ops:80", "audience": "ops"},
]
GRANTS = {"grants": {"approver_groups": ["security"], "max_duration": "4h"}}
GLASS = {"break_glass": {"groups": ["oncall"]}}


def document(*rules: dict[str, Any], **blocks: Any) -> dict[str, Any]:
    return {"version": 1, "routes": ROUTES, "rules": list(rules), **blocks}


def policy(*rules: dict[str, Any], **blocks: Any) -> CompiledPolicy:
    return CompiledPolicy(parse_policy(document(*rules, **blocks)), VERSION, default_issuer=ISSUER)


def rule(rule_id: str, effect: str = "allow", **fields: Any) -> dict[str, Any]:
    base: dict[str, Any] = {"id": rule_id, "effect": effect, "routes": ["app"], "actions": ["GET"]}
    return {**base, **fields}


def person(
    sub: str = "alice",
    *,
    email: str | None = "alice@example.com",
    groups: tuple[str, ...] = (),
    groups_claimed: bool = True,
    claims: dict[str, Any] | None = None,
    issuer: str = ISSUER,
    amr: tuple[str, ...] = ("pwd", "otp"),
    auth_time: int | None = int(NOW) - 60,
) -> Identity:
    return Identity(
        issuer=issuer,
        subject=sub,
        audience=AUDIENCE,
        expires_at=2_000_000_000,
        email=email,
        groups=frozenset(groups),
        groups_claimed=groups_claimed,
        amr=amr,
        auth_time=auth_time,
        claims=claims or {},
    )


def request(
    path: str = "/data",
    *,
    method: str = "GET",
    host: str = "app.example.com",
    at: float = NOW,
    ip: str = "10.0.0.1",
    why: str | None = None,
) -> AccessRequest:
    return AccessRequest(host, method, path, source_ip=ip, at=at, justification=why)


ALLOWED = (Reason.ALLOW_RULE_MATCHED,)
DENIED = (Reason.DENY_RULE_MATCHED,)
NO_RULE = (Reason.NO_MATCHING_RULE,)
EXPIRED = (Reason.GRANT_EXPIRED,)
REVOKED = (Reason.GRANT_REVOKED,)
DENIED_GRANT = (Reason.GRANT_DENIED,)


def assert_allowed_by(decision: Decision, *rule_ids: str) -> None:
    assert (decision.allowed, decision.reasons, decision.matched_rules) == (
        True,
        ALLOWED,
        rule_ids,
    )
    assert (decision.grant, decision.break_glass, decision.justification) == (None, False, None)


def assert_refused(decision: Decision, reasons: tuple[Reason, ...], *rule_ids: str) -> None:
    assert (decision.allowed, decision.reasons, decision.matched_rules) == (
        False,
        reasons,
        rule_ids,
    )
    assert (decision.grant, decision.break_glass, decision.justification) == (None, False, None)


def check(decision: Decision, allowed: bool, rule_id: str) -> None:
    """Allowed by ``rule_id``, or refused for want of any rule."""
    if allowed:
        assert_allowed_by(decision, rule_id)
    else:
        assert_refused(decision, NO_RULE)


# --- users -------------------------------------------------------------------------------

USER_CASES = [
    pytest.param(["alice"], person(), True, id="sub"),
    pytest.param(["Alice"], person(), False, id="sub is case-sensitive"),
    pytest.param(["alice@example.com"], person(), True, id="email"),
    pytest.param(["ALICE@Example.COM"], person(), True, id="email entry case-insensitive"),
    pytest.param(["alice@example.com"], person(email="Alice@EXAMPLE.com"), True, id="email case"),
    pytest.param(["alice@example.com"], person(email=None), False, id="no verified email"),
    pytest.param(
        ["alice@example.com"],
        person(sub="alice@example.com", email=None),
        False,
        id="a sub spelled like an email is not an email",
    ),
    pytest.param(
        ["alice@example.com"], person(sub="x", email="alice@example.com.evil"), False, id="suffix"
    ),
    pytest.param(["alice@example.com"], person(email="bob@example.com"), False, id="other email"),
    pytest.param(["example.com"], person(), False, id="a domain is not a user"),
    pytest.param(["bob", "alice"], person(), True, id="second entry"),
    pytest.param(["bob"], person(), False, id="other sub"),
]


@pytest.mark.parametrize(("users", "identity", "allowed"), USER_CASES)
def test_an_allow_on_users_matches_the_sub_or_the_verified_email(
    users: list[str], identity: Identity, allowed: bool
) -> None:
    compiled = policy(rule("users", subjects={"users": users}))
    check(compiled.evaluate(identity, request()), allowed, "users")


DENY_USER_CASES = [
    pytest.param(["mallory@example.com"], person(email="mallory@example.com"), True, id="email"),
    pytest.param(["mallory@example.com"], person(email=None), True, id="email unknown: applies"),
    pytest.param(["mallory@example.com"], person(), False, id="other email"),
    pytest.param(["mallory"], person(sub="mallory"), True, id="sub"),
    pytest.param(["mallory"], person(email=None), False, id="sub entry, email unknown"),
    pytest.param(["MALLORY@example.com"], person(email="mallory@example.com"), True, id="case"),
]


@pytest.mark.parametrize(("users", "identity", "denied"), DENY_USER_CASES)
def test_a_deny_on_users_also_applies_while_the_email_is_unknown(
    users: list[str], identity: Identity, denied: bool
) -> None:
    compiled = policy(rule("everyone"), rule("not-them", "deny", subjects={"users": users}))
    decision = compiled.evaluate(identity, request())
    if denied:
        assert_refused(decision, DENIED, "not-them")
    else:
        assert_allowed_by(decision, "everyone")


# --- groups ------------------------------------------------------------------------------

GROUP_CASES = [
    pytest.param(person(groups=("eng",)), True, id="member"),
    pytest.param(person(groups=("sales", "eng")), True, id="member among others"),
    pytest.param(person(groups=("Eng",)), False, id="case-sensitive"),
    pytest.param(person(groups=("eng-admins",)), False, id="prefix is not membership"),
    pytest.param(person(groups=()), False, id="claimed, none"),
    pytest.param(person(groups_claimed=False), False, id="not claimed"),
]


@pytest.mark.parametrize(("identity", "allowed"), GROUP_CASES)
def test_an_allow_on_groups_needs_exact_membership(identity: Identity, allowed: bool) -> None:
    compiled = policy(rule("eng", subjects={"groups": ["eng"]}))
    check(compiled.evaluate(identity, request()), allowed, "eng")


DENY_GROUP_CASES = [
    pytest.param(person(groups=("contractors",)), True, id="member"),
    pytest.param(person(groups=("staff",)), False, id="not a member"),
    pytest.param(person(groups=()), False, id="claimed, none: not a member"),
    pytest.param(person(groups_claimed=False), True, id="not claimed: applies"),
]


@pytest.mark.parametrize(("identity", "denied"), DENY_GROUP_CASES)
def test_a_deny_on_groups_also_applies_while_groups_are_not_claimed(
    identity: Identity, denied: bool
) -> None:
    compiled = policy(
        rule("everyone"), rule("no-contractors", "deny", subjects={"groups": ["contractors"]})
    )
    decision = compiled.evaluate(identity, request())
    if denied:
        assert_refused(decision, DENIED, "no-contractors")
    else:
        assert_allowed_by(decision, "everyone")


# --- domains -----------------------------------------------------------------------------

DOMAIN_CASES = [
    pytest.param(["example.com"], "bob@example.com", True, id="domain"),
    pytest.param(["EXAMPLE.com"], "bob@example.com", True, id="entry case"),
    pytest.param(["example.com"], "bob@EXAMPLE.COM", True, id="email case"),
    pytest.param(["@example.com"], "bob@example.com", True, id="leading at sign"),
    pytest.param(["example.com"], "bob@sub.example.com", False, id="subdomain"),
    pytest.param(["example.com"], "bob@badexample.com", False, id="suffix"),
    pytest.param(["example.com"], "bob@example.com.evil", False, id="anchored"),
    pytest.param(["example.com"], None, False, id="no email"),
]


@pytest.mark.parametrize(("domains", "email", "allowed"), DOMAIN_CASES)
def test_an_allow_on_domains_matches_the_verified_emails_domain_exactly(
    domains: list[str], email: str | None, allowed: bool
) -> None:
    compiled = policy(rule("domain", subjects={"domains": domains}))
    check(compiled.evaluate(person(sub="bob", email=email), request()), allowed, "domain")


@pytest.mark.parametrize(
    ("email", "denied"),
    [("x@partner.example", True), (None, True), ("x@example.com", False)],
    ids=["domain", "email unknown: applies", "other domain"],
)
def test_a_deny_on_domains_also_applies_while_the_email_is_unknown(
    email: str | None, denied: bool
) -> None:
    compiled = policy(
        rule("everyone"), rule("no-partner", "deny", subjects={"domains": ["partner.example"]})
    )
    decision = compiled.evaluate(person(email=email), request())
    assert decision.allowed is not denied
    assert decision.matched_rules == (("no-partner",) if denied else ("everyone",))


# --- claims ------------------------------------------------------------------------------

CLAIM_CASES = [
    # rule selector, token claims, allowed
    pytest.param({"dept": "security"}, {"dept": "security"}, True, id="equal"),
    pytest.param({"dept": "security"}, {"dept": "Security"}, False, id="case-sensitive"),
    pytest.param({"dept": "security"}, {"dept": "sec"}, False, id="other value"),
    pytest.param({"dept": ["it", "security"]}, {"dept": "security"}, True, id="one of the rule's"),
    pytest.param({"dept": ["it", "security"]}, {"dept": "sales"}, False, id="none of the rule's"),
    pytest.param({"dept": "security"}, {"dept": ["sales", "security"]}, True, id="in the token's"),
    pytest.param({"dept": "security"}, {"dept": ["sales"]}, False, id="not in the token's"),
    pytest.param({"dept": ["it", "hr"]}, {"dept": ["sales", "hr"]}, True, id="lists overlap"),
    pytest.param({"dept": ["it", "hr"]}, {"dept": ["sales", "ops"]}, False, id="lists disjoint"),
    pytest.param({"dept": "security"}, {"dept": []}, False, id="empty list"),
    pytest.param({"dept": "security"}, {}, False, id="missing"),
    pytest.param({"dept": "security"}, {"dept": None}, False, id="null"),
    pytest.param({"dept": "security"}, {"dept": {"name": "security"}}, False, id="object"),
    pytest.param({"dept": "security"}, {"other": "security"}, False, id="other claim"),
    pytest.param({"level": 1}, {"level": 1}, True, id="integer"),
    pytest.param({"level": 1}, {"level": "1"}, False, id="integer vs string"),
    pytest.param({"level": 1}, {"level": True}, False, id="integer vs true"),
    pytest.param({"level": 1}, {"level": 1.5}, False, id="integer vs float"),
    pytest.param({"level": "1"}, {"level": 1}, False, id="string vs integer"),
    pytest.param({"admin": True}, {"admin": True}, True, id="true"),
    pytest.param({"admin": True}, {"admin": 1}, False, id="true vs 1"),
    pytest.param({"admin": True}, {"admin": "true"}, False, id="true vs string"),
    pytest.param({"admin": False}, {"admin": False}, True, id="false"),
    pytest.param({"admin": False}, {"admin": 0}, False, id="false vs 0"),
    pytest.param({"admin": False}, {}, False, id="false vs missing"),
    pytest.param({"level": [1, "2"]}, {"level": 2}, False, id="mixed list, other type"),
    pytest.param({"level": [1, "2"]}, {"level": "2"}, True, id="mixed list, same type"),
    pytest.param({"tag": 'a"b\\c'}, {"tag": 'a"b\\c'}, True, id="quotes and backslash"),
    pytest.param({"tag": "café"}, {"tag": "café"}, True, id="unicode"),
    pytest.param({"tag": "café"}, {"tag": "cafe"}, False, id="unicode differs"),
    pytest.param(
        {"dept": "security", "level": 3}, {"dept": "security", "level": 3}, True, id="AND"
    ),
    pytest.param({"dept": "security", "level": 3}, {"dept": "security"}, False, id="AND, missing"),
    pytest.param(
        {"dept": "security", "level": 3}, {"dept": "security", "level": 2}, False, id="AND, other"
    ),
    pytest.param({"dept": "security", "level": 3}, {"level": 3}, False, id="AND, first missing"),
    pytest.param(
        {"dept": "security", "level": [3, 4]},
        {"dept": ["it", "security"], "level": 4},
        True,
        id="AND of memberships",
    ),
]


@pytest.mark.parametrize(("selector", "claims", "allowed"), CLAIM_CASES)
def test_an_allow_on_claims_needs_every_claim_to_match_in_value_and_type(
    selector: dict[str, Any], claims: dict[str, Any], allowed: bool
) -> None:
    compiled = policy(rule("claims", subjects={"claims": selector}))
    check(compiled.evaluate(person(claims=claims), request()), allowed, "claims")


DENY_CLAIM_CASES = [
    pytest.param({"dept": "contractors"}, {"dept": "contractors"}, True, id="equal"),
    pytest.param({"dept": "contractors"}, {"dept": "staff"}, False, id="other value"),
    pytest.param({"dept": "contractors"}, {}, True, id="missing: applies"),
    pytest.param({"dept": "contractors"}, {"dept": None}, True, id="null: applies"),
    pytest.param({"dept": "contractors"}, {"dept": ["staff", "contractors"]}, True, id="in list"),
    pytest.param({"dept": "contractors"}, {"dept": ["staff"]}, False, id="not in list"),
    pytest.param({"level": 0}, {"level": "0"}, False, id="other type"),
    pytest.param({"dept": "c", "tier": "low"}, {"dept": "c", "tier": "low"}, True, id="AND both"),
    pytest.param({"dept": "c", "tier": "low"}, {"dept": "c"}, True, id="AND, second missing"),
    pytest.param({"dept": "c", "tier": "low"}, {"tier": "low"}, True, id="AND, first missing"),
    pytest.param({"dept": "c", "tier": "low"}, {}, True, id="AND, both missing"),
    pytest.param(
        {"dept": "c", "tier": "low"}, {"dept": "c", "tier": "high"}, False, id="AND, second other"
    ),
    pytest.param({"dept": "c", "tier": "low"}, {"dept": "x"}, False, id="AND, first other"),
]


@pytest.mark.parametrize(("selector", "claims", "denied"), DENY_CLAIM_CASES)
def test_a_deny_on_claims_also_applies_while_a_claim_is_missing(
    selector: dict[str, Any], claims: dict[str, Any], denied: bool
) -> None:
    compiled = policy(rule("everyone"), rule("no-claim", "deny", subjects={"claims": selector}))
    decision = compiled.evaluate(person(claims=claims), request())
    if denied:
        assert_refused(decision, DENIED, "no-claim")
    else:
        assert_allowed_by(decision, "everyone")


@pytest.mark.parametrize(
    ("identity", "allowed"),
    [
        pytest.param(person(sub="bob", claims={"dept": "security"}), True, id="by claim"),
        pytest.param(person(sub="carol", claims={}), True, id="by user"),
        pytest.param(person(sub="dave", claims={"dept": "sales"}), False, id="by neither"),
    ],
)
def test_claims_are_one_subject_kind_among_others(identity: Identity, allowed: bool) -> None:
    compiled = policy(rule("mixed", subjects={"users": ["carol"], "claims": {"dept": "security"}}))
    check(compiled.evaluate(identity, request()), allowed, "mixed")


# --- issuers -----------------------------------------------------------------------------

ISSUER_CASES = [
    pytest.param([ISSUER], ISSUER, True, id="same"),
    pytest.param([ISSUER + "/"], ISSUER, True, id="entry with trailing slash"),
    pytest.param([ISSUER], ISSUER + "/", True, id="token with trailing slash"),
    pytest.param([ISSUER], PARTNER, False, id="other issuer"),
    pytest.param([ISSUER], ISSUER + ".evil", False, id="prefix"),
    pytest.param([ISSUER], ISSUER.replace("https", "http"), False, id="other scheme"),
    pytest.param([ISSUER], ISSUER + "/tenant", False, id="longer path"),
    pytest.param([PARTNER, ISSUER], ISSUER, True, id="second entry"),
]


@pytest.mark.parametrize(("issuers", "issuer", "allowed"), ISSUER_CASES)
def test_an_allow_on_issuers_matches_the_issuer_up_to_a_trailing_slash(
    issuers: list[str], issuer: str, allowed: bool
) -> None:
    compiled = policy(rule("ours", subjects={"issuers": issuers}))
    check(compiled.evaluate(person(issuer=issuer), request()), allowed, "ours")


def test_a_deny_on_an_issuer_beats_an_allow_on_a_user() -> None:
    compiled = policy(
        rule("alice", subjects={"users": ["alice"]}),
        rule("no-partner", "deny", subjects={"issuers": [PARTNER]}),
    )
    assert_allowed_by(compiled.evaluate(person(), request()), "alice")
    assert_refused(compiled.evaluate(person(issuer=PARTNER), request()), DENIED, "no-partner")


# --- actions -----------------------------------------------------------------------------

ACTION_CASES = [
    pytest.param("allow", ["GET"], "GET", True, id="allow listed"),
    pytest.param("allow", ["GET"], "HEAD", False, id="allow GET is not HEAD"),
    pytest.param("allow", ["GET"], "POST", False, id="allow unlisted"),
    pytest.param("allow", ["post", "put"], "PUT", True, id="allow lower-case entry"),
    pytest.param("allow", ["*"], "DELETE", True, id="allow star"),
    pytest.param("allow", ["*"], "OPTIONS", True, id="allow star options"),
    pytest.param("deny", ["GET"], "GET", True, id="deny listed"),
    pytest.param("deny", ["GET"], "HEAD", True, id="deny GET is also HEAD"),
    pytest.param("deny", ["HEAD"], "GET", False, id="deny HEAD is not GET"),
    pytest.param("deny", ["DELETE"], "POST", False, id="deny unlisted"),
    pytest.param("deny", ["*"], "PATCH", True, id="deny star"),
]


@pytest.mark.parametrize(("effect", "actions", "method", "applies"), ACTION_CASES)
def test_rules_apply_to_their_methods_and_a_deny_on_get_covers_head(
    effect: str, actions: list[str], method: str, applies: bool
) -> None:
    rules = [rule("r", effect, actions=actions)]
    if effect == "deny":
        rules.insert(0, rule("everyone", actions=["*"]))
    decision = policy(*rules).evaluate(person(), request(method=method))
    if effect == "allow":
        check(decision, applies, "r")
    elif applies:
        assert_refused(decision, DENIED, "r")
    else:
        assert_allowed_by(decision, "everyone")


# --- paths -------------------------------------------------------------------------------

PATH_CASES = [
    pytest.param("allow", ["/api/**"], "/api", True, id="allow parent of double star"),
    pytest.param("allow", ["/api/**"], "/api/a/b", True, id="allow below double star"),
    pytest.param("allow", ["/api/**"], "/apix", False, id="allow segment boundary"),
    pytest.param("allow", ["/api/**"], "/API/a", False, id="allow is case-sensitive"),
    pytest.param("allow", ["/api/*/x"], "/api/1/x", True, id="allow one-segment star"),
    pytest.param("allow", ["/api/*/x"], "/api/1/2/x", False, id="allow star within a segment"),
    pytest.param("allow", ["/a", "/b/**"], "/b/c", True, id="allow second glob"),
    pytest.param("allow", ["/a"], "/a/", True, id="allow trailing slash"),
    pytest.param("allow", ["/a"], "/a/b", False, id="allow literal is exact"),
    pytest.param("deny", ["/secret/**"], "/secret/x", True, id="deny below"),
    pytest.param("deny", ["/secret/**"], "/SECRET/x", True, id="deny ignores case"),
    pytest.param("deny", ["/secret/**"], "/Secret", True, id="deny ignores case, parent"),
    pytest.param("deny", ["/**/secret"], "/a/SeCrEt", True, id="deny segment-wise ignores case"),
    pytest.param("deny", ["/secret/**"], "/secrets", False, id="deny segment boundary"),
    pytest.param("deny", ["/secret"], "/secret/", True, id="deny trailing slash"),
]


@pytest.mark.parametrize(("effect", "paths", "path", "applies"), PATH_CASES)
def test_rules_apply_to_their_path_globs_and_a_deny_ignores_case(
    effect: str, paths: list[str], path: str, applies: bool
) -> None:
    rules = [rule("r", effect, paths=paths)]
    if effect == "deny":
        rules.insert(0, rule("everyone"))
    decision = policy(*rules).evaluate(person(), request(path))
    if effect == "allow":
        check(decision, applies, "r")
    elif applies:
        assert_refused(decision, DENIED, "r")
    else:
        assert_allowed_by(decision, "everyone")


# --- hosts and routes --------------------------------------------------------------------

ROUTE_CASES = [
    pytest.param("app.example.com", "/data", "app", True, id="star host, root prefix"),
    pytest.param("app.example.com", "/admin/x", "admin", False, id="longer prefix is admin"),
    pytest.param("app.example.com", "/administrator", "app", True, id="prefix on a boundary"),
    pytest.param("ops.example.com", "/data", "ops", False, id="exact host beats star"),
    pytest.param("OPS.example.com:443", "/data", "ops", False, id="host case and port"),
]


@pytest.mark.parametrize(("host", "path", "route_id", "allowed"), ROUTE_CASES)
def test_rules_apply_only_on_their_routes(
    host: str, path: str, route_id: str, allowed: bool
) -> None:
    compiled = policy(rule("app-only", paths=["/**"]))
    decision = compiled.evaluate(person(), request(path, host=host))
    assert decision.route is not None
    assert decision.route.id == route_id
    check(decision, allowed, "app-only")


def test_a_rule_naming_several_routes_applies_on_each() -> None:
    compiled = policy(rule("both", routes=["admin", "ops"]))
    on_admin = compiled.evaluate(person(), request("/admin"))
    on_ops = compiled.evaluate(person(), request(host="ops.example.com"))
    on_app = compiled.evaluate(person(), request())

    assert_allowed_by(on_admin, "both")
    assert_allowed_by(on_ops, "both")
    assert_refused(on_app, NO_RULE)
    assert on_admin.route is not None
    assert on_admin.route.sensitive is True


def test_no_route_is_refused_before_any_elevation() -> None:
    only_ops = CompiledPolicy(
        parse_policy({"version": 1, "routes": [ROUTES[2]], "rules": [], **GRANTS, **GLASS}),
        VERSION,
        default_issuer=ISSUER,
    )
    oncall = person(groups=("oncall",))

    decision = only_ops.evaluate(oncall, request(why="INC-1"), (grant(routes=("ops",)),))

    assert_refused(decision, (Reason.NO_ROUTE,))
    assert decision.route is None
    assert (decision.policy_version, decision.policy_checksum) == (VERSION, only_ops.checksum)


# --- conditions through the engine ------------------------------------------------------

OFFICE = {"source_cidrs": ["10.0.0.0/8", "2001:db8::/32"]}
WEEKDAYS = {"hours": {"tz": "UTC", "days": ["mon", "tue", "wed", "thu", "fri"]}}

ALLOW_CONDITION_CASES = [
    # when, identity, request, allowed, reasons when refused
    pytest.param({"mfa": True}, person(), request(), True, (), id="mfa holds"),
    pytest.param(
        {"mfa": True}, person(amr=("pwd",)), request(), False, (Reason.MFA_REQUIRED,), id="no mfa"
    ),
    pytest.param({"max_auth_age": "1h"}, person(), request(), True, (), id="recent login"),
    pytest.param(
        {"max_auth_age": "1h"},
        person(auth_time=int(NOW) - 3601),
        request(),
        False,
        (Reason.AUTH_TOO_OLD,),
        id="old login",
    ),
    pytest.param(
        {"max_auth_age": 60},
        person(auth_time=None),
        request(),
        False,
        (Reason.AUTH_TOO_OLD,),
        id="no auth_time",
    ),
    pytest.param(OFFICE, person(), request(ip="10.9.8.7"), True, (), id="office ipv4"),
    pytest.param(OFFICE, person(), request(ip="2001:db8::7"), True, (), id="office ipv6"),
    pytest.param(OFFICE, person(), request(ip="::ffff:10.9.8.7"), True, (), id="office mapped"),
    pytest.param(
        OFFICE,
        person(),
        request(ip="192.0.2.1"),
        False,
        (Reason.SOURCE_NOT_ALLOWED,),
        id="outside",
    ),
    pytest.param(
        OFFICE, person(), request(ip="bogus"), False, (Reason.SOURCE_NOT_ALLOWED,), id="unknown ip"
    ),
    pytest.param(WEEKDAYS, person(), request(), True, (), id="weekday"),
    pytest.param(
        WEEKDAYS, person(), request(at=SATURDAY), False, (Reason.OUTSIDE_HOURS,), id="saturday"
    ),
    pytest.param(
        {"mfa": True, **OFFICE, **WEEKDAYS},
        person(amr=()),
        request(ip="192.0.2.1", at=SATURDAY),
        False,
        (Reason.MFA_REQUIRED, Reason.SOURCE_NOT_ALLOWED, Reason.OUTSIDE_HOURS),
        id="three failures",
    ),
]


@pytest.mark.parametrize(
    ("when", "identity", "request_", "allowed", "reasons"), ALLOW_CONDITION_CASES
)
def test_conditions_on_an_allow_rule(
    when: dict[str, Any],
    identity: Identity,
    request_: AccessRequest,
    allowed: bool,
    reasons: tuple[Reason, ...],
) -> None:
    compiled = policy(rule("guarded", when=when))
    decision = compiled.evaluate(identity, request_)
    assert (decision.policy_version, decision.policy_checksum) == (VERSION, compiled.checksum)
    if allowed:
        assert_allowed_by(decision, "guarded")
    else:
        assert_refused(decision, reasons, "guarded")


DENY_CONDITION_CASES = [
    # when, identity, request, deny applies
    pytest.param(OFFICE, person(), request(ip="10.1.1.1"), True, id="source inside"),
    pytest.param(OFFICE, person(), request(ip="192.0.2.1"), False, id="source outside"),
    pytest.param(OFFICE, person(), request(ip=""), True, id="source unknown: applies"),
    pytest.param(WEEKDAYS, person(), request(), True, id="hours inside"),
    pytest.param(WEEKDAYS, person(), request(at=SATURDAY), False, id="hours outside"),
    pytest.param(
        {**OFFICE, **WEEKDAYS}, person(), request(ip="nope", at=SATURDAY), False, id="one fails"
    ),
    pytest.param({**OFFICE, **WEEKDAYS}, person(), request(ip="nope"), True, id="unknown + holds"),
]


@pytest.mark.parametrize(("when", "identity", "request_", "denied"), DENY_CONDITION_CASES)
def test_conditions_on_a_deny_rule(
    when: dict[str, Any], identity: Identity, request_: AccessRequest, denied: bool
) -> None:
    compiled = policy(rule("everyone"), rule("guard", "deny", when=when))
    decision = compiled.evaluate(identity, request_)
    if denied:
        assert_refused(decision, DENIED, "guard")
    else:
        assert_allowed_by(decision, "everyone")


def test_failed_conditions_of_several_allows_are_all_reported() -> None:
    compiled = policy(
        rule("from-office", when=OFFICE),
        rule("with-mfa", when={"mfa": True}),
        rule("other-group", subjects={"groups": ["nobody"]}),
    )
    decision = compiled.evaluate(person(amr=("pwd",)), request(ip="192.0.2.1"))

    assert_refused(
        decision, (Reason.MFA_REQUIRED, Reason.SOURCE_NOT_ALLOWED), "from-office", "with-mfa"
    )


@pytest.mark.parametrize(
    "winner",
    [
        pytest.param(rule("with-mfa", when={"mfa": True}), id="its conditions hold"),
        pytest.param(rule("open", subjects={"groups": ["eng"]}), id="it has no conditions"),
    ],
)
def test_an_allow_that_applies_wins_over_one_whose_conditions_fail(winner: dict[str, Any]) -> None:
    compiled = policy(rule("from-office", when=OFFICE), winner)
    decision = compiled.evaluate(person(groups=("eng",)), request(ip="192.0.2.1"))

    assert_allowed_by(decision, winner["id"])


# --- reasons and matched rules -------------------------------------------------------------


def test_every_applicable_deny_is_listed_in_document_order() -> None:
    compiled = policy(
        rule("everyone"),
        rule("late", "deny", subjects={"groups": ["g"]}),
        rule("not-me", "deny", subjects={"users": ["bob"]}),
        rule("early", "deny", paths=["/data"]),
    )
    assert_refused(compiled.evaluate(person(groups=("g",)), request()), DENIED, "late", "early")


@pytest.mark.parametrize(
    "unrelated",
    [
        pytest.param([], id="alone"),
        pytest.param(
            [rule("never-here", "deny", when={"source_cidrs": ["192.0.2.0/24"]})],
            id="beside a conditional deny that does not apply",
        ),
    ],
)
def test_every_applicable_allow_is_listed_whatever_else_the_policy_holds(
    unrelated: list[dict[str, Any]],
) -> None:
    compiled = policy(rule("open"), rule("office", when=OFFICE), *unrelated)

    assert_allowed_by(compiled.evaluate(person(), request(ip="10.0.0.1")), "open", "office")


@pytest.mark.parametrize(
    "unrelated",
    [
        pytest.param([], id="alone"),
        pytest.param(
            [rule("never-here", "deny", when={"source_cidrs": ["192.0.2.0/24"]})],
            id="beside a conditional deny that does not apply",
        ),
    ],
)
def test_a_conditional_deny_that_applies_is_listed_beside_an_unconditional_one(
    unrelated: list[dict[str, Any]],
) -> None:
    compiled = policy(rule("always", "deny"), rule("from-office", "deny", when=OFFICE), *unrelated)

    assert_refused(compiled.evaluate(person(), request()), DENIED, "always", "from-office")


def test_version_and_checksum_are_the_policys() -> None:
    doc = document(rule("everyone"))
    compiled = CompiledPolicy(parse_policy(doc), 42, default_issuer=ISSUER)
    other = CompiledPolicy(
        parse_policy(document(rule("everyone", actions=["POST"]))), 42, default_issuer=ISSUER
    )

    decisions = [
        compiled.evaluate(person(), request()),
        compiled.evaluate(person(), request(method="POST")),
        compiled.evaluate(person(), request(host="ops.example.com")),
    ]

    assert [d.allowed for d in decisions] == [True, False, False]
    assert {d.policy_version for d in decisions} == {42}
    assert {d.policy_checksum for d in decisions} == {parse_policy(doc).checksum}
    assert compiled.checksum.startswith("sha256:")
    assert other.checksum != compiled.checksum


def test_default_deny_names_no_rule() -> None:
    compiled = policy(rule("bob-only", subjects={"users": ["bob"]}))
    decision = compiled.evaluate(person(), request())

    assert_refused(decision, NO_RULE)
    assert decision.route is not None
    assert decision.route.id == "app"


# --- grants ------------------------------------------------------------------------------

APPROVED = NOW - 600
EXPIRES = APPROVED + 3600


def grant(**changes: Any) -> Grant:
    fields: dict[str, Any] = {
        "id": "0192f0c2-0000-7000-8000-000000000001",
        "issuer": ISSUER,
        "subject": "alice",
        "email": "alice@example.com",
        "routes": ("app",),
        "actions": frozenset({"GET"}),
        "paths": (compile_glob("/data/**"),),
        "duration_seconds": 3600,
        "justification": "INC-42 restore data",
        "status": "approved",
        "requested_at": APPROVED - 60,
        "approved_at": APPROVED,
        "expires_at": EXPIRES,
        "approver": f"{ISSUER}|sam (sam@example.com)",
    }
    fields.update(changes)
    return Grant(**fields)


GRANT_CASES = [
    # grant, request, allowed (True) or why not
    pytest.param(grant(), request("/data/x"), True, id="in force"),
    pytest.param(grant(), request("/data"), True, id="glob parent"),
    pytest.param(grant(), request("/data/x", at=APPROVED), True, id="the approval second"),
    pytest.param(grant(), request("/data/x", at=APPROVED - 1), NO_RULE, id="before approval"),
    pytest.param(grant(), request("/data/x", at=EXPIRES - 1), True, id="expires_at - 1"),
    pytest.param(grant(), request("/data/x", at=EXPIRES - 0.001), True, id="expires_at - 1ms"),
    pytest.param(grant(), request("/data/x", at=EXPIRES), EXPIRED, id="expires_at"),
    pytest.param(grant(), request("/data/x", at=EXPIRES + 1), EXPIRED, id="after expiry"),
    pytest.param(
        grant(status="pending", approved_at=None, expires_at=None),
        request("/data/x"),
        NO_RULE,
        id="pending",
    ),
    pytest.param(
        grant(status="denied", approved_at=None, expires_at=None, ended_at=NOW - 100),
        request("/data/x"),
        DENIED_GRANT,
        id="denied",
    ),
    pytest.param(
        grant(status="revoked", ended_at=NOW - 1), request("/data/x"), REVOKED, id="revoked"
    ),
    pytest.param(
        grant(status="revoked", ended_at=NOW), request("/data/x"), REVOKED, id="revoked this second"
    ),
    pytest.param(
        grant(status="revoked", ended_at=NOW + 1),
        request("/data/x"),
        True,
        id="revoked after the request",
    ),
    pytest.param(
        grant(status="revoked", ended_at=None),
        request("/data/x"),
        REVOKED,
        id="revoked, no end time recorded",
    ),
    pytest.param(
        grant(status="expired", ended_at=EXPIRES),
        request("/data/x", at=EXPIRES + 5),
        EXPIRED,
        id="swept as expired",
    ),
    pytest.param(grant(subject="bob"), request("/data/x"), NO_RULE, id="other subject"),
    pytest.param(grant(issuer=PARTNER), request("/data/x"), NO_RULE, id="same sub, other issuer"),
    pytest.param(grant(), request("/other"), NO_RULE, id="uncovered path"),
    pytest.param(grant(), request("/DATA/x"), NO_RULE, id="path case"),
    pytest.param(grant(), request("/data/x", method="POST"), NO_RULE, id="uncovered method"),
    pytest.param(grant(), request("/data/x", method="HEAD"), NO_RULE, id="GET grant is not HEAD"),
    pytest.param(grant(routes=("ops",)), request("/data/x"), NO_RULE, id="other route"),
    pytest.param(grant(paths=()), request("/anything"), True, id="no paths: the whole route"),
    pytest.param(
        grant(paths=()), request("/admin/x"), NO_RULE, id="no paths: not another route's prefix"
    ),
]


@pytest.mark.parametrize(("the_grant", "request_", "allowed"), GRANT_CASES)
def test_a_grant_allows_its_scope_from_its_approval_to_its_expiry(
    the_grant: Grant, request_: AccessRequest, allowed: Literal[True] | tuple[Reason, ...]
) -> None:
    # As a container holds them: the live copies, and the ones that ended (by status).
    ended = (the_grant,) if the_grant.status in ("denied", "revoked", "expired") else ()
    decision = policy(**GRANTS).evaluate(person(), request_, (the_grant,), ended)

    if allowed is True:
        assert (decision.allowed, decision.reasons, decision.matched_rules) == (
            True,
            (Reason.GRANT_MATCHED,),
            (),
        )
        assert decision.grant is the_grant
        assert (decision.break_glass, decision.justification) == (False, None)
    else:
        # A refusal names the grant only when it had ended (or was refused), never widening.
        assert_refused(decision, allowed)
        assert decision.ended_grant is (None if allowed == NO_RULE else the_grant)


def test_the_grant_in_force_is_picked_from_several() -> None:
    stale = grant(id="g-stale", expires_at=NOW - 1)
    elsewhere = grant(id="g-elsewhere", paths=(compile_glob("/other/**"),))
    current = grant(id="g-current")

    decision = policy(**GRANTS).evaluate(person(), request("/data/x"), (stale, elsewhere, current))

    assert decision.grant is current


def test_grants_are_ignored_by_a_policy_without_a_grants_block() -> None:
    decision = policy().evaluate(person(), request("/data/x"), (grant(),))
    revoked = policy().evaluate(person(), request("/data/x"), (), (grant(status="revoked"),))

    assert_refused(decision, NO_RULE)
    assert_refused(revoked, NO_RULE)
    assert revoked.ended_grant is None


def test_a_refusal_names_the_latest_ended_grant_covering_it() -> None:
    expired = grant(id="g-expired", expires_at=NOW - 300)
    revoked = grant(id="g-revoked", status="revoked", ended_at=NOW - 60)
    denied_elsewhere = grant(
        id="g-elsewhere", status="denied", ended_at=NOW - 1, paths=(compile_glob("/other/**"),)
    )

    decision = policy(**GRANTS).evaluate(
        person(), request("/data/x"), (expired,), (revoked, denied_elsewhere)
    )

    assert_refused(decision, REVOKED)
    assert decision.ended_grant is revoked


@pytest.mark.parametrize(
    "ended",
    [
        grant(status="revoked", ended_at=NOW + 60),  # its revoker's clock ahead of this one
        grant(),  # an approved grant among the ended ones: a store that went wrong
    ],
    ids=["revoked later than the request", "approved"],
)
def test_an_ended_grant_never_allows_whatever_its_times_say(ended: Grant) -> None:
    decision = policy(**GRANTS).evaluate(person(), request("/data/x"), (), (ended,))

    assert not decision.allowed
    assert decision.grant is None


def test_an_ended_grant_follows_the_conditions_an_allow_failed() -> None:
    compiled = policy(rule("mfa-only", when={"mfa": True}), **GRANTS)
    ended = grant(status="revoked", ended_at=NOW - 1)

    decision = compiled.evaluate(person(amr=("pwd",)), request("/data/x"), (), (ended,))

    assert_refused(decision, (Reason.MFA_REQUIRED, Reason.GRANT_REVOKED), "mfa-only")
    assert decision.ended_grant is ended


def test_a_deny_rule_is_named_before_any_ended_grant() -> None:
    compiled = policy(rule("no-data", "deny", paths=["/data/**"]), **GRANTS)
    ended = grant(status="revoked", ended_at=NOW - 1)

    decision = compiled.evaluate(person(), request("/data/x"), (), (ended,))

    assert_refused(decision, DENIED, "no-data")
    assert decision.ended_grant is None


@pytest.mark.parametrize(
    "deny",
    [
        rule("no-data", "deny", paths=["/data/**"]),
        rule("no-data-ci", "deny", paths=["/DATA/**"]),
        rule("from-office", "deny", when=OFFICE),
        rule("by-group", "deny", subjects={"groups": ["contractors"]}),
    ],
    ids=["deny path", "deny path in other case", "conditional deny", "deny group unclaimed"],
)
def test_a_deny_rule_beats_a_grant(deny: dict[str, Any]) -> None:
    compiled = policy(deny, **GRANTS)
    decision = compiled.evaluate(person(groups_claimed=False), request("/data/x"), (grant(),))

    assert_refused(decision, DENIED, deny["id"])


def test_a_grant_opens_what_an_allow_with_failing_conditions_did_not() -> None:
    compiled = policy(rule("mfa-only", when={"mfa": True}), **GRANTS)
    decision = compiled.evaluate(person(amr=("pwd",)), request("/data/x"), (grant(),))

    assert (decision.allowed, decision.reasons, decision.grant) == (
        True,
        (Reason.GRANT_MATCHED,),
        grant(),
    )


def test_a_standing_allow_needs_no_grant() -> None:
    compiled = policy(rule("everyone"), **GRANTS)

    assert_allowed_by(compiled.evaluate(person(), request("/data/x"), (grant(),)), "everyone")


# --- break-glass ---------------------------------------------------------------------------

NOT_REQUIRED = {"break_glass": {"groups": ["oncall"], "require_justification": False}}

BREAK_GLASS_CASES = [
    # groups, justification, policy blocks, allowed, recorded justification
    pytest.param(("oncall",), "INC-7 db down", GLASS, True, "INC-7 db down", id="member"),
    pytest.param(("oncall",), "  INC-7  ", GLASS, True, "INC-7", id="justification is trimmed"),
    pytest.param(("oncall",), None, GLASS, False, None, id="no justification"),
    pytest.param(("oncall",), "", GLASS, False, None, id="empty justification"),
    pytest.param(("oncall",), " \t\n", GLASS, False, None, id="blank justification"),
    pytest.param(("eng", "oncall"), "INC-7", GLASS, True, "INC-7", id="member among groups"),
    pytest.param(("eng",), "INC-7", GLASS, False, None, id="not a member"),
    pytest.param(("Oncall",), "INC-7", GLASS, False, None, id="group case"),
    pytest.param((), "INC-7", GLASS, False, None, id="no groups"),
    pytest.param(("oncall",), None, NOT_REQUIRED, True, None, id="not required, none given"),
    pytest.param(("oncall",), "  ", NOT_REQUIRED, True, None, id="not required, blank given"),
    pytest.param(("oncall",), "INC-8", NOT_REQUIRED, True, "INC-8", id="not required, given"),
    pytest.param(("eng",), None, NOT_REQUIRED, False, None, id="not required, not a member"),
    pytest.param(("oncall",), "INC-7", {}, False, None, id="no break_glass block"),
]


@pytest.mark.parametrize(("groups", "why", "blocks", "allowed", "recorded"), BREAK_GLASS_CASES)
def test_break_glass_lets_a_member_in_who_says_why(
    groups: tuple[str, ...],
    why: str | None,
    blocks: dict[str, Any],
    allowed: bool,
    recorded: str | None,
) -> None:
    decision = policy(**blocks).evaluate(person(groups=groups), request(why=why))

    if allowed:
        assert (decision.allowed, decision.reasons, decision.matched_rules) == (
            True,
            (Reason.BREAK_GLASS,),
            (),
        )
        assert (decision.break_glass, decision.justification, decision.grant) == (
            True,
            recorded,
            None,
        )
        assert decision.route is not None
    else:
        assert_refused(decision, NO_RULE)


@pytest.mark.parametrize(
    "deny",
    [
        rule("never", "deny"),
        rule("never-ci", "deny", paths=["/DATA"]),
        rule("unknown-source", "deny", when=OFFICE),
        rule("oncall-too", "deny", subjects={"groups": ["oncall"]}),
    ],
    ids=["deny rule", "deny path in other case", "conditional deny, unknown ip", "deny group"],
)
def test_a_deny_rule_beats_break_glass(deny: dict[str, Any]) -> None:
    compiled = policy(deny, **GLASS)
    decision = compiled.evaluate(person(groups=("oncall",)), request(ip="", why="INC-9"))

    assert_refused(decision, DENIED, deny["id"])


def test_break_glass_passes_failing_conditions_but_a_standing_allow_is_not_break_glass() -> None:
    compiled = policy(rule("mfa-only", when={"mfa": True}), **GLASS)
    oncall = person(groups=("oncall",))

    elevated = compiled.evaluate(person(groups=("oncall",), amr=()), request(why="INC-9"))
    standing = compiled.evaluate(oncall, request(why="INC-9"))

    assert (elevated.allowed, elevated.reasons, elevated.break_glass) == (
        True,
        (Reason.BREAK_GLASS,),
        True,
    )
    assert_allowed_by(standing, "mfa-only")


def test_a_grant_in_force_is_used_before_break_glass() -> None:
    compiled = policy(**GRANTS, **GLASS)
    decision = compiled.evaluate(
        person(groups=("oncall",)), request("/data/x", why="INC-9"), (grant(),)
    )

    assert (decision.reasons, decision.grant, decision.break_glass) == (
        (Reason.GRANT_MATCHED,),
        grant(),
        False,
    )


# --- the memo never leaks ----------------------------------------------------------------


def test_the_same_request_at_two_times_gets_two_answers() -> None:
    compiled = policy(rule("weekdays", when=WEEKDAYS))
    answers = [
        compiled.evaluate(person(), request(at=at)).allowed for at in (NOW, SATURDAY, NOW, SATURDAY)
    ]
    assert answers == [True, False, True, False]


def test_the_same_request_from_two_addresses_gets_two_answers() -> None:
    compiled = policy(rule("everyone"), rule("not-from-there", "deny", when=OFFICE))
    answers = [
        compiled.evaluate(person(), request(ip=ip)).allowed
        for ip in ("192.0.2.1", "10.0.0.1", "192.0.2.1", "garbage", "2001:db9::1")
    ]
    assert answers == [True, False, True, False, True]


def test_an_allow_and_a_deny_condition_are_read_afresh_for_each_request() -> None:
    compiled = policy(
        rule("office", when={"source_cidrs": ["10.0.0.0/8"]}),
        rule("weekdays-only", "deny", when={"hours": {"tz": "UTC", "days": ["sat", "sun"]}}),
    )
    saturday = datetime(2026, 12, 5, 12, tzinfo=UTC).timestamp()
    wednesday = datetime(2026, 12, 2, 12, tzinfo=UTC).timestamp()
    alice = person()
    answers = [
        compiled.evaluate(alice, request(at=wednesday, ip="10.1.1.1")).allowed,
        compiled.evaluate(alice, request(at=wednesday, ip="192.0.2.1")).allowed,
        compiled.evaluate(alice, request(at=saturday, ip="10.1.1.1")).allowed,
        compiled.evaluate(alice, request(at=wednesday, ip="10.1.1.1")).allowed,
    ]
    assert answers == [True, False, False, True]


def test_the_same_principal_with_a_fresh_login_or_mfa_gets_its_own_answer() -> None:
    compiled = policy(rule("strong", when={"mfa": True, "max_auth_age": 300}))
    weak = person(amr=("pwd",))
    stale = person(auth_time=int(NOW) - 301)
    strong = person()

    assert [compiled.evaluate(p, request()).allowed for p in (strong, weak, stale, strong)] == [
        True,
        False,
        False,
        True,
    ]


@pytest.mark.parametrize(
    ("first", "second"),
    [
        pytest.param({"dept": "security"}, {"dept": "sales"}, id="values"),
        pytest.param({"dept": "security"}, {}, id="present and missing"),
        pytest.param({"level": 3}, {"level": "3"}, id="types"),
        pytest.param({"level": 1}, {"level": True}, id="one and true"),
        pytest.param({"dept": ["security"]}, {"dept": ["sales"]}, id="lists"),
    ],
)
def test_principals_differing_only_in_a_claim_get_their_own_answers(
    first: dict[str, Any], second: dict[str, Any]
) -> None:
    compiled = policy(
        rule("by-claim", subjects={"claims": {"dept": "security", "level": [3, 1]}}),
        rule("by-dept", subjects={"claims": {"dept": "security"}}),
        rule("by-level", subjects={"claims": {"level": [3, 1]}}),
    )
    insider, outsider = person(claims=first), person(claims=second)

    answers = [
        compiled.evaluate(identity, request()).allowed
        for identity in (insider, outsider, insider, outsider)
    ]

    assert answers == [True, False, True, False]


def test_a_deny_on_a_claim_is_not_memoised_across_principals() -> None:
    compiled = policy(
        rule("everyone"), rule("no-contractors", "deny", subjects={"claims": {"dept": "c"}})
    )
    staff, contractor, anonymous = (
        person(claims={"dept": "staff"}),
        person(claims={"dept": "c"}),
        person(claims={}),
    )
    answers = [
        compiled.evaluate(identity, request()).allowed
        for identity in (staff, contractor, staff, anonymous, staff)
    ]
    assert answers == [True, False, True, False, True]


def test_groups_claimed_or_not_is_part_of_who_someone_is() -> None:
    compiled = policy(rule("everyone"), rule("no-g", "deny", subjects={"groups": ["g"]}))
    claimed, unclaimed = person(groups=()), person(groups_claimed=False)

    assert [compiled.evaluate(p, request()).allowed for p in (claimed, unclaimed, claimed)] == [
        True,
        False,
        True,
    ]


def test_grants_and_justifications_are_not_memoised() -> None:
    compiled = policy(**GRANTS, **GLASS)
    oncall = person(groups=("oncall",))
    answers = [
        compiled.evaluate(person(), request("/data/x"), (grant(),)).allowed,
        compiled.evaluate(person(), request("/data/x")).allowed,
        compiled.evaluate(person(), request("/data/x", at=EXPIRES), (grant(),)).allowed,
        compiled.evaluate(oncall, request("/data/x", why="INC")).allowed,
        compiled.evaluate(oncall, request("/data/x")).allowed,
    ]
    assert answers == [True, False, False, True, False]


MEMO_POLICY = parse_policy(
    document(
        rule("eng", subjects={"groups": ["eng"]}, when={"mfa": True}),
        rule("sec", subjects={"claims": {"dept": ["security", 1]}}),
        rule("office", paths=["/office/**"], when=OFFICE),
        rule(
            "no-weekend",
            "deny",
            paths=["/office/**"],
            when={"hours": {"tz": "UTC", "days": ["sat", "sun"]}},
        ),
        rule("no-c", "deny", subjects={"claims": {"tier": "c"}}, paths=["/secret/**"]),
        rule("no-x", "deny", subjects={"groups": ["x"]}, actions=["*"]),
        rule("ops", routes=["ops"], subjects={"domains": ["example.com"]}),
        # Rules naming one person: the memo keys on the person only where these apply.
        rule("bob-data", subjects={"users": ["bob"]}, paths=["/data/**"]),
        rule("carol-files", subjects={"users": ["Carol@Example.com"]}, paths=["/files/**"]),
        rule("no-dave", "deny", subjects={"users": ["dave@example.com"]}, routes=["ops"]),
        **GRANTS,
        **GLASS,
    )
)
# Who someone is beyond what the memo may key on: drawn per variant of one principal.
VARIANTS = st.fixed_dictionaries(
    {
        "groups_claimed": st.booleans(),
        "claims": st.fixed_dictionaries(
            {},
            optional={
                "dept": st.sampled_from(["security", "sales", 1, "1", True, ["x", "security"]]),
                "tier": st.sampled_from(["c", "a", None]),
            },
        ),
        "amr": st.sampled_from([(), ("pwd",), ("pwd", "otp")]),
        "auth_time": st.sampled_from([None, int(NOW) - 60]),
    }
)
PRINCIPALS = st.builds(
    lambda sub, email, groups, variants: [
        person(sub, email=email, groups=groups if v["groups_claimed"] else (), **v)
        for v in variants
    ],
    st.sampled_from(["alice", "bob", "carol"]),
    st.sampled_from(
        [
            None,
            "alice@example.com",
            "x@other.org",
            "carol@example.com",
            "CAROL@example.COM",
            "dave@example.com",
            "no-at-sign",
        ]
    ),
    st.sampled_from([(), ("eng",), ("oncall",)]),
    st.lists(VARIANTS, min_size=1, max_size=4),
)
# Where a request goes (what the memo keys on), then when, from where and why.
TARGETS = st.tuples(
    st.sampled_from(
        ["/office/a", "/secret/x", "/SECRET/x", "/data/x", "/data", "/admin/x", "/files/x"]
    ),
    st.sampled_from(["GET", "HEAD", "POST"]),
    st.sampled_from(["app.example.com", "ops.example.com"]),
)
CIRCUMSTANCES = st.tuples(
    st.sampled_from([NOW, SATURDAY, EXPIRES - 1, EXPIRES]),
    st.sampled_from(["10.0.0.1", "192.0.2.1", "", "::ffff:10.0.0.1"]),
    st.sampled_from([None, "", "INC-1"]),
)


@pytest.mark.parametrize(
    ("first", "second", "target"),
    [
        pytest.param(person("alice"), person("bob"), "/data/x", id="a rule naming a subject"),
        pytest.param(person("bob"), person("alice"), "/data/x", id="the named subject first"),
        pytest.param(
            person("alice"), person("carol", email="carol@example.com"), "/files/x",
            id="a rule naming an email",
        ),
        pytest.param(
            person("carol", email="carol@example.com"), person("x", email="CAROL@EXAMPLE.COM"),
            "/files/x", id="the email in other letter case",
        ),
        pytest.param(
            person("alice"), person("x", email="CAROL@EXAMPLE.COM"), "/files/x",
            id="the email in other letter case, after a profile sharer",
        ),
        pytest.param(
            person("alice", email="a@example.com"), person("alice", email="a@example.org"),
            "/ops/x", id="another email domain",
        ),
        pytest.param(
            person("alice", email=None), person("alice", email="dave@example.com"), "/ops/x",
            id="an email, against none",
        ),
        pytest.param(
            person("alice", email="no-at-sign"), person("alice", email=None), "/ops/x",
            id="an email without a domain, against none",
        ),
    ],
)  # fmt: skip
def test_people_who_share_a_profile_share_a_memo_entry_only_where_no_rule_names_them(
    first: Identity, second: Identity, target: str
) -> None:
    shared = CompiledPolicy(MEMO_POLICY, VERSION, default_issuer=ISSUER)
    host = "ops.example.com" if target.startswith("/ops") else "app.example.com"
    for identity in (first, second, first):
        asked = request(target, host=host)
        fresh = CompiledPolicy(MEMO_POLICY, VERSION, default_issuer=ISSUER).evaluate(
            identity, asked
        )
        assert shared.evaluate(identity, asked) == fresh


@settings(max_examples=400, deadline=None)
@given(
    st.lists(PRINCIPALS, min_size=1, max_size=3),
    st.lists(TARGETS, min_size=1, max_size=2),
    st.lists(
        st.tuples(st.integers(0, 7), st.integers(0, 1), CIRCUMSTANCES, st.booleans()),
        min_size=2,
        max_size=12,
    ),
)
def test_a_long_lived_policy_answers_like_a_fresh_one(
    principals: list[list[Identity]],
    targets: list[tuple[str, str, str]],
    calls: list[tuple[int, int, tuple[float, str, str | None], bool]],
) -> None:
    # One compiled policy serves many callers in a container; every answer must
    # equal that of a policy that has seen no earlier call. Principals come in
    # variants that differ only in what the memo must not confuse.
    identities = [identity for variants in principals for identity in variants]
    shared = CompiledPolicy(MEMO_POLICY, VERSION, default_issuer=ISSUER)
    for who, where, (at, ip, why), with_grant in calls:
        identity = identities[who % len(identities)]
        path, method, host = targets[where % len(targets)]
        request_ = request(path, method=method, host=host, at=at, ip=ip, why=why)
        grants = (grant(subject=identity.subject, paths=()),) if with_grant else ()
        fresh = CompiledPolicy(MEMO_POLICY, VERSION, default_issuer=ISSUER).evaluate(
            identity, request_, grants
        )
        assert shared.evaluate(identity, request_, grants) == fresh


@pytest.mark.parametrize(
    ("path", "routed"),
    [
        ("/.gatehouse", False),
        ("/.gatehouse/grants/", False),
        ("/.gatehouse/grants//approve", False),
        ("/.GateHouse/anything", False),
        ("/.gatehousex/y", True),
        ("/x/.gatehouse/y", True),
    ],
)
def test_gatehouses_own_paths_are_no_backends(path: str, routed: bool) -> None:
    # The gateway sends /.gatehouse paths it does not match exactly to the proxy.
    decision = policy(rule("everything", paths=["/**"])).evaluate(person(), request(path))

    assert decision.allowed is routed
    assert decision.reasons == ((Reason.ALLOW_RULE_MATCHED,) if routed else (Reason.NO_ROUTE,))


# --- route selection ---------------------------------------------------------------------

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
def test_a_request_goes_to_the_route_the_reference_picks(
    specs: list[tuple[str, str]], host: str, path: str
) -> None:
    routes = [
        {"id": f"r{n}", "host": h, "path_prefix": p, "upstream": "http://x:1", "audience": "x"}
        for n, (h, p) in enumerate(specs)
    ]
    compiled = CompiledPolicy(
        parse_policy({"version": 1, "routes": routes}), 1, default_issuer=ISSUER
    )
    expected = reference_route(list(compiled.document.routes), host, path)
    assert compiled.route_for(host, path) == expected
