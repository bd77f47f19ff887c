"""Policy decision cost with 1,000 rules (budget: <= 15 µs, indexed).

The policy is shaped like a large organisation's: 50 routes, 1,000 rules
over users, groups, domains, claims and issuers, a tenth of them denies and
a tenth with conditions (mfa, source CIDRs, office hours). Figures:

- repeated: the same principal and path again (the memoised match; the
  conditions are still evaluated on every call, they read time and source);
- unseen principal of a known profile: people the engine has never seen,
  whose groups, email domain and claims it has (the memo is keyed by that
  profile unless a rule names the person): the common case in an org;
- unseen profile: a combination of groups, domain and claims never seen,
  on a path seen before (what a path selects is memoised apart from who
  asks): every call looks the principal's keys up in the index; and on a
  fresh path too, which adds the route lookup and the glob matching;
- with a grant and break-glass: the elevation paths;
- a linear scan over all 1,000 rules for the same request, to show what
  the index saves.

The floor is one dict lookup plus building the request object, measured
in the same run: the least any decision could cost in Python.
"""

from __future__ import annotations

import sys
import time
from dataclasses import replace
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import figure, measure, measure_each
from chalicelib.identity import Identity
from chalicelib.policy import AccessRequest, CompiledPolicy, parse_policy
from chalicelib.policy.conditions import Facts
from chalicelib.policy.grant import Grant

ISSUER = "https://idp.bench.example"
ROUTES = 50
RULES = 1000


def thousand_rule_policy() -> dict[str, Any]:
    """50 routes and 1,000 rules of every subject kind, some denies, some conditional."""
    routes = [
        {
            "id": f"app{n}",
            "host": "*" if n % 5 else f"app{n}.example.com",
            "path_prefix": f"/app{n}",
            "upstream": "http://127.0.0.1:9",
            "audience": f"app{n}",
        }
        for n in range(ROUTES)
    ]
    rules = []
    for n in range(RULES):
        route = f"app{n % ROUTES}"
        kind = n % 6
        subjects: dict[str, Any] = [
            {"groups": [f"team-{n % 97}"]},
            {"users": [f"user{n}@example.com", f"sub-{n}"]},
            {"domains": [f"dept{n % 13}.example.com"]},
            {"claims": {"department": f"dept-{n % 29}"}},
            {"groups": ["engineering", f"team-{n % 31}"]},
            {"issuers": [ISSUER], "groups": [f"ops-{n % 7}"]},
        ][kind]
        rule: dict[str, Any] = {
            "id": f"rule-{n}",
            "effect": "deny" if n % 10 == 9 else "allow",
            "routes": [route],
            "subjects": subjects,
            "actions": ["GET", "HEAD"] if n % 3 else ["*"],
            "paths": [f"/{route}/api/v{n % 3}/**", f"/{route}/items/*/detail"],
        }
        if n % 10 == 4:
            rule["when"] = {
                "mfa": True,
                "source_cidrs": ["10.0.0.0/8", "2001:db8::/32"],
                "hours": {"tz": "Europe/Berlin", "days": ["mon", "tue", "wed", "thu", "fri"]},
            }
        rules.append(rule)
    return {
        "version": 1,
        "routes": routes,
        "rules": rules,
        "grants": {"approver_groups": ["security"], "max_duration": "4h"},
        "break_glass": {"groups": ["oncall"]},
    }


def principal(number: int, **extra: Any) -> Identity:
    claims = {"department": f"dept-{number % 29}"}
    return Identity(
        issuer=ISSUER,
        subject=f"sub-{number}",
        audience="gatehouse",
        expires_at=2_000_000_000,
        email=f"user{number}@dept{number % 13}.example.com",
        groups=frozenset({"engineering", f"team-{number % 97}", f"team-{number % 31}"}),
        amr=("mfa", "pwd"),
        auth_time=int(time.time()) - 60,
        claims=claims,
        **extra,
    )


def linear_scan(policy: CompiledPolicy, identity: Identity, request: AccessRequest) -> bool:
    """Every rule, in order, with the same criteria: what the index avoids."""
    facts = Facts(request.at, request.source_ip)
    allowed = False
    for rule in policy.document.rules:
        subjects = rule.subjects
        if request.method not in rule.actions or not rule.matches_path(request.path):
            continue
        if not (
            subjects.anyone
            or identity.subject in subjects.users
            or (identity.email or "") in subjects.users
            or identity.groups & subjects.groups
            or identity.email_domain in subjects.domains
            or identity.issuer in subjects.issuers
        ):
            continue
        if rule.effect == "deny" and rule.conditions.deny_applies(identity, facts):
            return False
        allowed = allowed or not rule.conditions.allow_failures(identity, facts)
    return allowed


def main() -> None:
    document = parse_policy(thousand_rule_policy())
    policy = CompiledPolicy(document, 1, default_issuer=ISSUER)
    now = time.time()
    alice = principal(7)
    path = "/app7/api/v1/items"
    request = AccessRequest("gatehouse.example.com", "GET", path, source_ip="10.1.2.3", at=now)
    decision = policy.evaluate(alice, request)
    print(f"policy: {len(document.routes)} routes, {len(document.rules)} rules")
    print(f"sample decision: allowed={decision.allowed} reasons={list(decision.reasons)}")

    lookup = {("alice", path): 1}
    floor = measure(
        lambda: (
            lookup.get(("alice", path)),
            AccessRequest("gatehouse.example.com", "GET", path, source_ip="10.1.2.3", at=now),
        ),
        number=20_000,
    )
    figure("floor: dict lookup + AccessRequest", floor)
    figure("calibration: sum(range(1000)) on this machine", measure(lambda: sum(range(1000))))

    def repeated() -> None:
        policy.evaluate(
            alice,
            AccessRequest("gatehouse.example.com", "GET", path, source_ip="10.1.2.3", at=now),
        )

    figure(
        "decision, repeated principal+path",
        measure(repeated, number=20_000),
        floor=floor,
        budget="<= 15 µs",
    )
    # rule-14 (team-14): mfa + source CIDR + office hours. A Wednesday, 10:00 in Berlin,
    # and a Saturday, when the hours condition fails.
    wednesday = datetime(2026, 12, 2, 10, 0, tzinfo=ZoneInfo("Europe/Berlin")).timestamp()
    saturday = wednesday + 3 * 86400
    conditional = principal(14)
    for label, at in (("holds", wednesday), ("fails", saturday)):
        conditional_request = AccessRequest("h", "GET", "/app14/api/v2/x", "10.9.9.9", at)
        outcome = policy.evaluate(conditional, conditional_request)
        assert outcome.allowed is (label == "holds"), outcome
        figure(
            f"decision, repeated, rule with 3 conditions ({label})",
            measure(
                lambda r=conditional_request: policy.evaluate(
                    conditional, AccessRequest(r.host, r.method, r.path, r.source_ip, r.at)
                ),
                number=20_000,
            ),
            floor=floor,
            budget="<= 15 µs",
        )

    count = 14_000
    fresh_principals = [principal(n) for n in range(1_000, 1_000 + count)]
    fresh_calls = [
        (lambda identity=identity: policy.evaluate(identity, request))
        for identity in fresh_principals
    ]

    # An organisation's people share a few hundred profiles (groups, email domain, the
    # claims rules name): 14,000 people never seen before, in 500 profiles seen before.
    def member(n: int) -> Identity:
        profile = principal(n % 500)
        domain = (profile.email or "@").rsplit("@", 1)[1]
        return replace(profile, subject=f"person-{n}", email=f"p{n}@{domain}")

    members = [member(n) for n in range(100_000, 100_000 + count)]
    for identity in members[:500]:
        policy.evaluate(identity, request)
    figure(
        "decision, unseen principal of a known profile (memo by profile)",
        measure_each([(lambda i=identity: policy.evaluate(i, request)) for identity in members]),
        floor=floor,
        budget="<= 15 µs",
    )  # fmt: skip
    # A new compiled policy per run would measure compilation; clear the memo instead.
    policy._memo.clear()
    figure(
        "decision, unseen profile, path seen before (index lookups)",
        measure_each(fresh_calls),
        floor=floor,
        budget="<= 15 µs",
    )
    # Both unseen: a new principal on a new path (route lookup + glob match as well).
    fresh_pairs = [
        (
            lambda identity=identity, n=n: policy.evaluate(
                identity, AccessRequest("h", "GET", f"/app7/api/v1/items/{n}", "10.1.2.3", now)
            )
        )
        for n, identity in enumerate(principal(n) for n in range(20_000, 20_000 + count))
    ]
    figure(
        "decision, fresh principal on a fresh path (+ route lookup, glob match)",
        measure_each(fresh_pairs),
        floor=floor,
    )

    grant = Grant(
        id="g-1",
        issuer=ISSUER,
        subject="sub-5000",
        email=None,
        routes=("app3",),
        actions=frozenset({"GET"}),
        paths=(),
        duration_seconds=3600,
        justification="incident 42",
        status="approved",
        requested_at=now - 100,
        approved_at=now - 50,
        expires_at=now - 50 + 3600,
        approver=f"{ISSUER}|sam",
    )
    stranger = Identity(
        issuer=ISSUER, subject="sub-5000", audience="gatehouse", expires_at=2_000_000_000
    )
    grant_request = AccessRequest("h", "GET", "/app3/anything", at=now)
    assert policy.evaluate(stranger, grant_request, (grant,)).grant is grant
    figure(
        "decision under a JIT grant",
        measure(lambda: policy.evaluate(stranger, grant_request, (grant,)), number=20_000),
        floor=floor,
        budget="<= 15 µs",
    )
    oncall = Identity(
        issuer=ISSUER,
        subject="sub-oncall",
        audience="gatehouse",
        expires_at=2_000_000_000,
        groups=frozenset({"oncall"}),
    )
    glass = AccessRequest("h", "DELETE", "/app9/x", at=now, justification="INC-7 db down")
    assert policy.evaluate(oncall, glass).break_glass
    figure(
        "decision by break-glass",
        measure(lambda: policy.evaluate(oncall, glass), number=20_000),
        floor=floor,
        budget="<= 15 µs",
    )
    figure(
        "reference: linear scan of all 1,000 rules (no index)",
        measure(lambda: linear_scan(policy, alice, request), number=200),
        floor=floor,
    )
    started = time.perf_counter()
    CompiledPolicy(parse_policy(thousand_rule_policy()), 2, default_issuer=ISSUER)
    print(
        f"  parse + compile the 1,000-rule policy: {(time.perf_counter() - started) * 1e3:.1f} ms"
    )


if __name__ == "__main__":
    main()
