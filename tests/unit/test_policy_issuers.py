"""Subjects are issuer-qualified: one identity provider's ``admins`` is never another's.

The stage's default issuer (its first trusted issuer) owns every user,
group, domain and claim a rule names without ``issuers``; ``issuers`` next
to them qualifies them; ``issuers`` alone is anyone that issuer signs in,
and a rule without subjects is anyone of any trusted issuer. Deny rules'
absent-claim protections hold per issuer. Trailing slashes never make a
second namespace.
"""

from __future__ import annotations

from typing import Any

import pytest

from chalicelib.identity import Identity
from chalicelib.policy import AccessRequest, CompiledPolicy, Decision, parse_policy
from chalicelib.policy.subjects import GROUP, SubjectKind, rule_subject_keys
from chalicelib.reasons import Reason
from tests.helpers import AUDIENCE
from tests.helpers import ISSUER as A

B = "https://partner.example.net"
C = "https://third.example.org"
ROUTES = [{"id": "app", "path_prefix": "/", "upstream": "http://app:80", "audience": "app"}]


def compiled(*rules: dict[str, Any], default: str = A, **blocks: Any) -> CompiledPolicy:
    document = {"version": 1, "routes": ROUTES, "rules": list(rules), **blocks}
    return CompiledPolicy(parse_policy(document), 1, default_issuer=default)


def rule(
    rule_id: str, effect: str = "allow", subjects: dict[str, Any] | None = None
) -> dict[str, Any]:
    entry: dict[str, Any] = {"id": rule_id, "effect": effect, "routes": ["app"], "actions": ["GET"]}
    if subjects is not None:
        entry["subjects"] = subjects
    return entry


def who(
    issuer: str = A,
    sub: str = "alice",
    *,
    email: str | None = None,
    groups: tuple[str, ...] = (),
    groups_claimed: bool = True,
    claims: dict[str, Any] | None = None,
) -> Identity:
    return Identity(
        issuer=issuer,
        subject=sub,
        audience=AUDIENCE,
        expires_at=2_000_000_000,
        email=email,
        groups=frozenset(groups),
        groups_claimed=groups_claimed,
        claims=claims or {},
    )


def get(**extra: Any) -> AccessRequest:
    return AccessRequest("app.example.com", "GET", "/x", at=1_800_000_000.0, **extra)


def verdict(decision: Decision) -> tuple[bool, tuple[str, ...]]:
    return decision.allowed, decision.matched_rules


# --- allow rules: who they name ----------------------------------------------------------

ADMINS = ("admins",)
ALLOW_CASES = [
    # Unqualified subjects are the default issuer's.
    pytest.param({"users": ["alice"]}, who(A), True, id="sub, default issuer"),
    pytest.param({"users": ["alice"]}, who(B), False, id="same sub, other issuer"),
    pytest.param(
        {"users": ["alice@example.com"]},
        who(B, "b-1", email="alice@example.com"),
        False,
        id="same verified email, other issuer",
    ),
    pytest.param({"groups": ["admins"]}, who(A, groups=ADMINS), True, id="group, default"),
    pytest.param({"groups": ["admins"]}, who(B, groups=ADMINS), False, id="group, other issuer"),
    pytest.param(
        {"domains": ["example.com"]},
        who(B, email="bob@example.com"),
        False,
        id="domain, other issuer",
    ),
    pytest.param({"claims": {"dept": "eng"}}, who(A, claims={"dept": "eng"}), True, id="claim"),
    pytest.param(
        {"claims": {"dept": "eng"}}, who(B, claims={"dept": "eng"}), False, id="claim, other"
    ),
    # issuers qualifies.
    pytest.param(
        {"issuers": [B], "groups": ["admins"]}, who(B, groups=ADMINS), True, id="B admins"
    ),
    pytest.param(
        {"issuers": [B], "groups": ["admins"]}, who(A, groups=ADMINS), False, id="A admins for B"
    ),
    pytest.param(
        {"issuers": [B], "groups": ["admins"]}, who(B, groups=("eng",)), False, id="B non-admin"
    ),
    pytest.param(
        {"issuers": [B], "groups": ["admins"]},
        who(B + ".evil", groups=ADMINS),
        False,
        id="issuer prefix",
    ),
    pytest.param({"issuers": [B], "users": ["alice"]}, who(B), True, id="B's alice"),
    pytest.param({"issuers": [B], "users": ["alice"]}, who(A), False, id="A's alice for B"),
    pytest.param(
        {"issuers": [B], "claims": {"dept": "eng"}},
        who(B, claims={"dept": "eng"}),
        True,
        id="B claim",
    ),
    pytest.param(
        {"issuers": [B], "domains": ["example.com"]},
        who(B, email="x@example.com"),
        True,
        id="B domain",
    ),
    # Naming the default issuer is the same as naming none.
    pytest.param({"issuers": [A], "groups": ["admins"]}, who(A, groups=ADMINS), True, id="A named"),
    pytest.param(
        {"issuers": [A], "groups": ["admins"]}, who(B, groups=ADMINS), False, id="A named, B"
    ),
    # Trailing slashes: one namespace.
    pytest.param(
        {"issuers": [B + "/"], "groups": ["admins"]}, who(B, groups=ADMINS), True, id="rule slash"
    ),
    pytest.param(
        {"issuers": [B], "groups": ["admins"]}, who(B + "/", groups=ADMINS), True, id="token slash"
    ),
    pytest.param({"groups": ["admins"]}, who(A + "/", groups=ADMINS), True, id="default, slash"),
    pytest.param({"issuers": [A + "//"], "users": ["alice"]}, who(A), True, id="default, slashes"),
    # Nor does the case of the scheme and host (the path's case counts).
    pytest.param(
        {"issuers": ["HTTPS://Partner.Example.NET"], "groups": ["admins"]},
        who(B, groups=ADMINS),
        True,
        id="host case",
    ),
    pytest.param(
        {"issuers": [A.upper()], "users": ["alice"]}, who(A), True, id="default, host case"
    ),
    pytest.param(
        {"issuers": [B + "/Tenant"], "users": ["alice"]},
        who(B + "/tenant"),
        False,
        id="path case",
    ),
    pytest.param({"issuers": [B.upper()]}, who(B), True, id="issuers alone, host case"),
    # Two issuers: each one's members.
    pytest.param(
        {"issuers": [A, B], "groups": ["admins"]}, who(A, groups=ADMINS), True, id="two, A"
    ),
    pytest.param(
        {"issuers": [A, B], "groups": ["admins"]}, who(B, groups=ADMINS), True, id="two, B"
    ),
    pytest.param(
        {"issuers": [A, B], "groups": ["admins"]}, who(C, groups=ADMINS), False, id="two, C"
    ),
    pytest.param(
        {"issuers": [A, B], "groups": ["admins"]}, who(B, groups=("eng",)), False, id="two, none"
    ),
    # Issuers alone: anyone that issuer signs in.
    pytest.param({"issuers": [B]}, who(B), True, id="issuers alone, B"),
    pytest.param({"issuers": [B]}, who(A), False, id="issuers alone, A"),
    pytest.param({"issuers": [B + "/"]}, who(B), True, id="issuers alone, slash"),
    # No subjects: anyone of any trusted issuer.
    pytest.param(None, who(A), True, id="anyone, A"),
    pytest.param(None, who(B), True, id="anyone, B"),
]


@pytest.mark.parametrize(("subjects", "identity", "allowed"), ALLOW_CASES)
def test_allow_rules_name_the_subjects_of_their_issuers(
    subjects: dict[str, Any] | None, identity: Identity, allowed: bool
) -> None:
    decision = compiled(rule("r", subjects=subjects)).evaluate(identity, get())

    assert verdict(decision) == ((True, ("r",)) if allowed else (False, ()))


# --- deny rules: absent claims, per issuer ---------------------------------------------------

NO_GROUPS = {"groups_claimed": False}
DENY_CASES = [
    pytest.param({"groups": ["contractors"]}, who(A, **NO_GROUPS), True, id="A, no groups claim"),
    pytest.param({"groups": ["contractors"]}, who(A + "/", **NO_GROUPS), True, id="A/, no claim"),
    pytest.param(
        {"groups": ["contractors"]}, who(A, groups=("contractors",)), True, id="A contractor"
    ),
    pytest.param(
        {"groups": ["contractors"]}, who(B, groups=("contractors",)), False, id="B contractor"
    ),
    pytest.param({"groups": ["contractors"]}, who(B, **NO_GROUPS), False, id="B, no groups claim"),
    pytest.param(
        {"issuers": [B], "groups": ["contractors"]}, who(B, **NO_GROUPS), True, id="B-only, B"
    ),
    pytest.param(
        {"issuers": [B + "/"], "groups": ["contractors"]},
        who(B, **NO_GROUPS),
        True,
        id="B-only with slash, B",
    ),
    pytest.param(
        {"issuers": [B], "groups": ["contractors"]}, who(A, **NO_GROUPS), False, id="B-only, A"
    ),
    pytest.param(
        {"issuers": [A.upper() + "/"], "groups": ["contractors"]},
        who(A, **NO_GROUPS),
        True,
        id="default spelled otherwise, A",
    ),
    pytest.param(
        {"issuers": [A, B], "groups": ["contractors"]}, who(A, **NO_GROUPS), True, id="both, A"
    ),
    pytest.param(
        {"issuers": [A, B], "groups": ["contractors"]}, who(B, **NO_GROUPS), True, id="both, B"
    ),
    pytest.param(
        {"issuers": [A, B], "groups": ["contractors"]},
        who(C, **NO_GROUPS),
        False,
        id="both, other",
    ),
    pytest.param({"users": ["mallory@corp.com"]}, who(A), True, id="email, A without email"),
    pytest.param({"users": ["mallory@corp.com"]}, who(B), False, id="email, B without email"),
    pytest.param(
        {"issuers": [B], "domains": ["corp.com"]}, who(B), True, id="B domain, B without email"
    ),
    pytest.param({"claims": {"tier": "low"}}, who(A), True, id="claim, A without it"),
    pytest.param({"claims": {"tier": "low"}}, who(B), False, id="claim, B without it"),
    pytest.param(
        {"issuers": [B], "claims": {"tier": "low"}}, who(B), True, id="B claim, B without it"
    ),
    pytest.param(
        {"issuers": [B], "claims": {"tier": "low"}},
        who(B, claims={"tier": "low"}),
        True,
        id="B claim, B with it",
    ),
    pytest.param({"issuers": [B]}, who(B), True, id="issuers alone, B"),
    pytest.param({"issuers": [B]}, who(A), False, id="issuers alone, A"),
    pytest.param({"users": ["alice"]}, who(B), False, id="A's alice, B's alice"),
    pytest.param(None, who(B), True, id="anyone, B"),
]


@pytest.mark.parametrize(("subjects", "identity", "denied"), DENY_CASES)
def test_deny_rules_apply_per_issuer_including_to_absent_claims(
    subjects: dict[str, Any] | None, identity: Identity, denied: bool
) -> None:
    policy = compiled(rule("everyone"), rule("no", "deny", subjects))

    decision = policy.evaluate(identity, get())

    expected = (False, ("no",)) if denied else (True, ("everyone",))
    assert verdict(decision) == expected
    if denied:
        assert decision.reasons == (Reason.DENY_RULE_MATCHED,)


# --- the keys ----------------------------------------------------------------------------------


def keys_of(subjects: dict[str, Any], effect: str = "allow") -> list[tuple[str, str]]:
    parsed = parse_policy({"version": 1, "routes": ROUTES, "rules": [rule("r", effect, subjects)]})
    return list(rule_subject_keys(parsed.rules[0], A))


KEY_CASES = [
    pytest.param({"groups": ["admins"]}, [(GROUP, "admins")], id="default: the plain kind"),
    pytest.param({"issuers": [A + "/"], "groups": ["admins"]}, [("g", "admins")], id="A named"),
    pytest.param({"issuers": [B], "groups": ["admins"]}, [(f"g|{B}", "admins")], id="B"),
    pytest.param(
        {"issuers": [B, A], "users": ["alice"]},
        [("u", "alice"), (f"u|{B}", "alice")],
        id="two issuers, sorted",
    ),
    pytest.param({"issuers": [B + "/"]}, [("i", B)], id="issuers alone"),
]


@pytest.mark.parametrize(("subjects", "expected"), KEY_CASES)
def test_keys_are_qualified_by_the_kind_and_the_default_issuer_keeps_the_plain_kind(
    subjects: dict[str, Any], expected: list[tuple[str, str]]
) -> None:
    assert keys_of(subjects) == expected


def test_a_deny_on_another_issuers_groups_is_filed_under_its_own_absent_claim_key() -> None:
    keys = keys_of({"issuers": [B], "groups": ["x"], "users": ["a@b.c"]}, "deny")

    assert set(keys) == {(f"g|{B}", "x"), (f"e|{B}", "a@b.c"), (f"?e|{B}", ""), (f"?g|{B}", "")}


def test_no_qualified_kind_can_be_read_as_another() -> None:
    # "<kind>|<issuer>": no kind holds "|", and the plain kinds end where they end.
    kinds = [kind.value for kind in SubjectKind]

    assert all("|" not in kind for kind in kinds)
    assert len({f"{kind}|{issuer}" for kind in kinds for issuer in (A, B, "")}) == 3 * len(kinds)


# --- the memo, break-glass, reach -------------------------------------------------------------


MEMO_RULES = [
    rule("a-alice", subjects={"users": ["alice"]}),
    rule("b-admins", subjects={"issuers": [B], "groups": ["admins"]}),
]


def test_the_memo_never_carries_a_decision_from_one_issuers_alice_to_anothers() -> None:
    shared = compiled(*MEMO_RULES)
    people = [who(A), who(B), who(B, groups=ADMINS), who(A, groups=ADMINS), who(B + "/")] * 2

    seen = [verdict(shared.evaluate(person, get())) for person in people]

    fresh = [verdict(compiled(*MEMO_RULES).evaluate(person, get())) for person in people]
    expected = [
        (True, ("a-alice",)),
        (False, ()),
        (True, ("b-admins",)),
        (True, ("a-alice",)),
        (False, ()),
    ]
    assert seen == fresh == expected * 2


@pytest.mark.parametrize(
    ("identity", "broken"),
    [
        pytest.param(who(A, groups=("oncall",)), True, id="default issuer's oncall"),
        pytest.param(who(A + "/", groups=("oncall",)), True, id="with a slash"),
        pytest.param(who(B, groups=("oncall",)), False, id="another issuer's oncall"),
    ],
)
def test_break_glass_groups_are_the_default_issuers(identity: Identity, broken: bool) -> None:
    policy = compiled(break_glass={"groups": ["oncall"]})

    decision = policy.evaluate(identity, get(justification="INC-1"))

    assert decision.break_glass is broken
    assert decision.allowed is broken
    assert policy.reach(identity).everything is broken


def test_reach_counts_only_rules_of_the_principals_issuer() -> None:
    policy = compiled(rule("a-admins", subjects={"groups": ["admins"]}))

    assert policy.reach(who(A, groups=ADMINS)).scopes
    assert not policy.reach(who(B, groups=ADMINS)).scopes


def test_the_default_issuer_is_a_compilation_parameter_not_a_guess() -> None:
    rules = [rule("admins", subjects={"groups": ["admins"]})]

    as_a = compiled(*rules)
    as_b = compiled(*rules, default=B + "/")

    assert as_a.evaluate(who(A, groups=ADMINS), get()).allowed
    assert not as_a.evaluate(who(B, groups=ADMINS), get()).allowed
    assert as_b.evaluate(who(B, groups=ADMINS), get()).allowed
    assert not as_b.evaluate(who(A, groups=ADMINS), get()).allowed
    assert as_b.default_issuer == B


# --- offline tools ---------------------------------------------------------------------------


def test_offline_tools_compile_with_the_stages_first_trusted_issuer(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from gatehouse.policy_explain import default_issuer
    from gatehouse.target import NoTarget, Target

    def target(**extra: Any) -> Target:
        return Target("us-east-1", None, "bucket", "queue", None, "table", local=False, **extra)

    assert default_issuer(target(issuer=A, audience="gatehouse")) == A
    trusted = f'[{{"issuer": "{B}", "audiences": ["x"]}}, {{"issuer": "{A}", "audiences": ["x"]}}]'
    monkeypatch.setenv("GATEHOUSE_TRUSTED_ISSUERS", trusted)
    assert default_issuer(target()) == B
    monkeypatch.delenv("GATEHOUSE_TRUSTED_ISSUERS")
    with pytest.raises(NoTarget, match="default issuer"):
        default_issuer(target())
    # explain's --issuer, when the stage's issuers are unknown: said, not silent.
    assert default_issuer(target(), fallback=C) == C
    assert f"taking {C} as its default issuer" in capsys.readouterr().err


# --- the documented two-issuer example ---------------------------------------------------------

LOGIN, PARTNER_IDP = "https://login.example.com", "https://partner-idp.example.net"


@pytest.mark.parametrize(
    ("identity", "method", "path", "allowed_by"),
    [
        pytest.param(who(LOGIN, groups=("staff",)), "GET", "/", ("staff-read",), id="staff"),
        pytest.param(who(PARTNER_IDP, groups=("staff",)), "GET", "/", (), id="partner 'staff'"),
        pytest.param(
            who(PARTNER_IDP, groups=("engineers",)),
            "GET",
            "/shared/a",
            ("partner-engineers-read",),
            id="partner engineers",
        ),
        pytest.param(
            who(LOGIN, groups=("engineers",)), "GET", "/shared/a", (), id="our 'engineers'"
        ),
        pytest.param(
            who(PARTNER_IDP, groups=("wiki-admins",)),
            "DELETE",
            "/p",
            ("admins-edit",),
            id="partner admins",
        ),
        pytest.param(
            who(LOGIN, groups=("wiki-admins",)), "DELETE", "/p", ("admins-edit",), id="our admins"
        ),
        pytest.param(
            who(LOGIN, groups_claimed=False),
            "GET",
            "/hr/x",
            None,
            id="ours without a groups claim, /hr",
        ),
        pytest.param(
            who(PARTNER_IDP, groups=("wiki-admins", "contractors")),
            "GET",
            "/hr/x",
            ("admins-edit",),
            id="partner 'contractors' are not ours",
        ),
    ],
)
def test_the_documented_two_issuer_example_means_what_the_reference_says(
    identity: Identity, method: str, path: str, allowed_by: tuple[str, ...] | None
) -> None:
    import jsonschema

    from chalicelib.policy.fields import ISSUERS_EXAMPLE
    from chalicelib.policy.reference import policy_schema

    assert list(jsonschema.Draft202012Validator(policy_schema()).iter_errors(ISSUERS_EXAMPLE)) == []
    policy = CompiledPolicy(parse_policy(ISSUERS_EXAMPLE), 1, default_issuer=LOGIN)

    decision = policy.evaluate(identity, AccessRequest("wiki.example.com", method, path))

    if allowed_by is None:
        assert verdict(decision) == (False, ("no-contractors",))
    else:
        assert verdict(decision) == (bool(allowed_by), allowed_by)
