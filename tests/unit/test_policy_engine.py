"""CompiledPolicy: one table per criterion, a reference model, and IAM permissions."""

from __future__ import annotations

import re
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chalicelib.authorize.iam import Permission
from chalicelib.authorize.iam import permissions as iam_permissions
from chalicelib.identity import Identity
from chalicelib.policy import AccessRequest, CompiledPolicy, Decision, PolicyDocument, parse_policy
from chalicelib.policy.model import HTTP_METHODS, Route, Rule
from chalicelib.reasons import Reason
from tests.helpers import AUDIENCE, ISSUER

METHODS = sorted(HTTP_METHODS)


def person(
    sub: str = "u-alice", email: str | None = "alice@example.com", groups: tuple[str, ...] = ()
) -> Identity:
    return Identity(
        issuer=ISSUER,
        subject=sub,
        audience=AUDIENCE,
        expires_at=2_000_000_000,
        email=email,
        groups=frozenset(groups),
    )


def route(route_id: str = "app", host: str = "*", prefix: str = "/") -> dict[str, Any]:
    return {
        "id": route_id,
        "host": host,
        "path_prefix": prefix,
        "upstream": f"http://{route_id}.internal:8080",
        "audience": route_id,
    }


def rule(rule_id: str, effect: str = "allow", **fields: Any) -> dict[str, Any]:
    return {"id": rule_id, "effect": effect, "routes": ["app"], "actions": ["*"], **fields}


def compiled(
    rules: list[dict[str, Any]], routes: list[dict[str, Any]] | None = None, version: int = 7
) -> CompiledPolicy:
    document = {"version": 1, "routes": routes or [route()], "rules": rules}
    return CompiledPolicy(parse_policy(document), version, default_issuer=ISSUER)


def get(path: str = "/", method: str = "GET", host: str = "app.example.com") -> AccessRequest:
    return AccessRequest(host=host, method=method, path=path)


def allowed(policy: CompiledPolicy, identity: Identity, request: AccessRequest) -> bool:
    return policy.evaluate(identity, request).allowed


def permissions_of(policy: CompiledPolicy, identity: Identity) -> list[Permission]:
    """What a cached answer allows ``identity``: the engine's reach in IAM terms."""
    return iam_permissions(policy.reach(identity))


# --- subjects: users ---------------------------------------------------------------------

USER_CASES = [
    pytest.param(["u-alice"], person(), True, id="sub match"),
    pytest.param(["alice@example.com"], person(), True, id="email match"),
    pytest.param(["Alice@Example.COM"], person(), True, id="email case-insensitive"),
    pytest.param(["bob@example.com"], person(), False, id="other user"),
    pytest.param(["U-ALICE"], person(), False, id="sub is case-sensitive"),
    pytest.param(["alice"], person(), False, id="local part is not the email"),
    pytest.param(["example.com"], person(), False, id="domain is not a user"),
    pytest.param(["alice@example.com"], person(email=None), False, id="no email no email match"),
    pytest.param(["u-alice"], person(email=None), True, id="sub match without email"),
    pytest.param(
        ["alice@example.com"],
        person(sub="alice@example.com", email=None),
        False,
        id="an email entry never matches a sub",
    ),
]


@pytest.mark.parametrize(("users", "identity", "expected"), USER_CASES)
def test_users_criterion(users: list[str], identity: Identity, expected: bool) -> None:
    policy = compiled([rule("r", subjects={"users": users})])

    assert allowed(policy, identity, get()) is expected


# --- subjects: groups --------------------------------------------------------------------

GROUP_CASES = [
    pytest.param(("engineering",), True, id="member"),
    pytest.param(("sales", "engineering"), True, id="member among others"),
    pytest.param((), False, id="no groups"),
    pytest.param(("sales",), False, id="other group"),
    pytest.param(("engineering-admins",), False, id="prefix is not membership"),
    pytest.param(("Engineering",), False, id="group names are case-sensitive"),
]


@pytest.mark.parametrize(("groups", "expected"), GROUP_CASES)
def test_groups_criterion(groups: tuple[str, ...], expected: bool) -> None:
    policy = compiled([rule("r", subjects={"groups": ["engineering"]})])

    assert allowed(policy, person(groups=groups), get()) is expected


# --- subjects: domains -------------------------------------------------------------------

DOMAIN_CASES = [
    pytest.param(["example.com"], "alice@example.com", True, id="email domain"),
    pytest.param(["EXAMPLE.com"], "alice@example.com", True, id="domain case-insensitive"),
    pytest.param(["@example.com"], "alice@example.com", True, id="leading at sign"),
    pytest.param(["example.com"], "alice@sub.example.com", False, id="subdomain is other domain"),
    pytest.param(["example.com"], "alice@notexample.com", False, id="suffix is not the domain"),
    pytest.param(["example.com"], "alice@example.com.evil", False, id="domain is anchored"),
    pytest.param(["example.com"], None, False, id="no email no domain"),
    pytest.param(["example.com"], "example.com", False, id="email without at sign"),
]


@pytest.mark.parametrize(("domains", "email", "expected"), DOMAIN_CASES)
def test_domains_criterion(domains: list[str], email: str | None, expected: bool) -> None:
    policy = compiled([rule("r", subjects={"domains": domains})])

    assert allowed(policy, person(sub="u-1", email=email), get()) is expected


# --- subjects: omitted, and several kinds ------------------------------------------------

ANYONE_CASES = [
    pytest.param(person(), id="full identity"),
    pytest.param(person(sub="svc", email=None), id="no email no groups"),
    pytest.param(person(sub="x", email="x@elsewhere.test", groups=("g",)), id="stranger"),
]


@pytest.mark.parametrize("identity", ANYONE_CASES)
def test_omitted_subjects_mean_any_authenticated_principal(identity: Identity) -> None:
    policy = compiled([rule("r")])

    assert allowed(policy, identity, get())


SEVERAL_KINDS_CASES = [
    pytest.param(person(sub="bob"), True, id="by user"),
    pytest.param(person(sub="u-9", email=None, groups=("ops",)), True, id="by group"),
    pytest.param(person(sub="u-9", email="x@ops.example"), True, id="by domain"),
    pytest.param(person(sub="u-9", email="x@example.org", groups=("dev",)), False, id="by none"),
]


@pytest.mark.parametrize(("identity", "expected"), SEVERAL_KINDS_CASES)
def test_any_listed_subject_kind_may_match(identity: Identity, expected: bool) -> None:
    subjects = {"users": ["bob"], "groups": ["ops"], "domains": ["ops.example"]}
    policy = compiled([rule("r", subjects=subjects)])

    assert allowed(policy, identity, get()) is expected


# --- methods -----------------------------------------------------------------------------

METHOD_CASES = [
    pytest.param(["GET", "HEAD"], "GET", True, id="listed GET"),
    pytest.param(["GET", "HEAD"], "HEAD", True, id="listed HEAD"),
    pytest.param(["GET", "HEAD"], "POST", False, id="unlisted POST"),
    pytest.param(["GET", "HEAD"], "DELETE", False, id="unlisted DELETE"),
    pytest.param(["GET", "HEAD"], "OPTIONS", False, id="unlisted OPTIONS"),
    pytest.param(["get"], "GET", True, id="lower-case action"),
    pytest.param(["DELETE"], "GET", False, id="only DELETE"),
    *(pytest.param(["*"], method, True, id=f"star allows {method}") for method in METHODS),
]


@pytest.mark.parametrize(("actions", "method", "expected"), METHOD_CASES)
def test_methods_criterion(actions: list[str], method: str, expected: bool) -> None:
    policy = compiled([rule("r", actions=actions)])

    assert allowed(policy, person(), get(method=method)) is expected


# --- paths -------------------------------------------------------------------------------

PATH_CASES = [
    pytest.param(["/api/**"], "/api", True, id="parent of double star"),
    pytest.param(["/api/**"], "/api/projects/42", True, id="below double star"),
    pytest.param(["/api/**"], "/apix", False, id="double star segment boundary"),
    pytest.param(["/api/**"], "/", False, id="root outside"),
    pytest.param(["/api/*/items"], "/api/7/items", True, id="one segment star"),
    pytest.param(["/api/*/items"], "/api/7/8/items", False, id="star does not cross"),
    pytest.param(["/files/*.pdf"], "/files/a.pdf", True, id="extension"),
    pytest.param(["/files/*.pdf"], "/files/a.png", False, id="other extension"),
    pytest.param(["/a", "/b/**"], "/b/c", True, id="second of two globs"),
    pytest.param(["/a", "/b/**"], "/c", False, id="neither of two globs"),
    pytest.param(["/a", "/b/**"], "/a/b", False, id="literal glob is exact"),
    pytest.param(None, "/anything/at/all", True, id="no paths means every path"),
]


@pytest.mark.parametrize(("paths", "path", "expected"), PATH_CASES)
def test_paths_criterion(paths: list[str] | None, path: str, expected: bool) -> None:
    fields = {} if paths is None else {"paths": paths}
    policy = compiled([rule("r", **fields)])

    assert allowed(policy, person(), get(path)) is expected


# --- route selection ---------------------------------------------------------------------

SELECTION_ROUTES = [
    route("fallback", "*", "/"),
    route("any-api", "*", "/api"),
    route("app-root", "app.example.com", "/"),
    route("app-api", "app.example.com", "/api"),
    route("app-api-v2", "app.example.com", "/api/v2"),
    route("docs", "docs.example.com", "/docs/"),
]

ROUTE_CASES = [
    pytest.param("app.example.com", "/api/v2/x", "app-api-v2", id="longest prefix wins"),
    pytest.param("app.example.com", "/api/v2", "app-api-v2", id="prefix itself"),
    pytest.param("app.example.com", "/api/v20", "app-api", id="prefix on segment boundary"),
    pytest.param("app.example.com", "/api/x", "app-api", id="middle prefix"),
    pytest.param("app.example.com", "/apix", "app-root", id="apix is not under api"),
    pytest.param("app.example.com", "/", "app-root", id="exact host root"),
    pytest.param("other.example.com", "/api/x", "any-api", id="star host prefix"),
    pytest.param("other.example.com", "/apix", "fallback", id="star host root"),
    pytest.param("APP.Example.com", "/api", "app-api", id="host is case-insensitive"),
    pytest.param("app.example.com:8443", "/api", "app-api", id="port in host ignored"),
    pytest.param("app.example.com.", "/api", "app-api", id="trailing dot ignored"),
    pytest.param("docs.example.com", "/docs/guide", "docs", id="slash-terminated prefix"),
    pytest.param("docs.example.com", "/docs/", "docs", id="slash-terminated prefix itself"),
    pytest.param("docs.example.com", "/docsx", "fallback", id="exact host falls back to star"),
]


@pytest.mark.parametrize(("host", "path", "route_id"), ROUTE_CASES)
def test_route_selection(host: str, path: str, route_id: str) -> None:
    policy = compiled([], routes=SELECTION_ROUTES)

    selected = policy.route_for(host, path)

    assert selected is not None
    assert selected.id == route_id


@pytest.mark.parametrize(
    ("host", "path"),
    [
        ("app.example.com", "/"),
        ("app.example.com", "/apix"),
        ("other.example.com", "/api"),
    ],
    ids=["root outside prefix", "sibling of prefix", "unknown host"],
)
def test_no_route(host: str, path: str) -> None:
    routes = [route("app", "app.example.com", "/api")]
    policy = compiled([rule("r")], routes=routes)

    decision = policy.evaluate(person(), get(path, host=host))

    assert policy.route_for(host, path) is None
    assert (decision.allowed, decision.reasons, decision.route) == (False, (Reason.NO_ROUTE,), None)
    assert decision.matched_rules == ()


def test_rule_applies_only_on_its_routes() -> None:
    routes = [route("app", "*", "/"), route("admin", "*", "/admin")]
    policy = compiled([rule("r")], routes=routes)

    assert allowed(policy, person(), get("/x"))
    decision = policy.evaluate(person(), get("/admin/x"))
    assert not decision.allowed
    assert decision.reasons == (Reason.NO_MATCHING_RULE,)
    assert decision.route is not None
    assert decision.route.id == "admin"


# --- combining rules ---------------------------------------------------------------------


def test_default_deny() -> None:
    policy = compiled([rule("ops-only", subjects={"groups": ["ops"]})])

    decision = policy.evaluate(person(), get("/x"))

    assert not decision.allowed
    assert decision.reasons == (Reason.NO_MATCHING_RULE,)
    assert decision.matched_rules == ()
    assert decision.route is not None
    assert decision.route.id == "app"


def test_policy_without_rules_denies() -> None:
    decision = compiled([]).evaluate(person(), get())

    assert (decision.allowed, decision.reasons) == (False, (Reason.NO_MATCHING_RULE,))


DENY_CASES = [
    pytest.param(
        [rule("everyone"), rule("no-x", "deny", paths=["/x/**"])],
        ("no-x",),
        id="deny after allow",
    ),
    pytest.param(
        [rule("no-x", "deny", paths=["/x/**"]), rule("everyone")],
        ("no-x",),
        id="deny before allow",
    ),
    pytest.param(
        [
            rule("z-deny", "deny", subjects={"users": ["u-alice"]}),
            rule("alice", subjects={"users": ["u-alice"]}),
            rule("a-deny", "deny", actions=["GET"]),
        ],
        ("z-deny", "a-deny"),
        id="all denies in document order",
    ),
]


@pytest.mark.parametrize(("rules", "matched"), DENY_CASES)
def test_deny_beats_allow(rules: list[dict[str, Any]], matched: tuple[str, ...]) -> None:
    decision = compiled(rules).evaluate(person(), get("/x/1"))

    assert not decision.allowed
    assert decision.reasons == (Reason.DENY_RULE_MATCHED,)
    assert decision.matched_rules == matched


DENY_MISS_CASES = [
    pytest.param(rule("d", "deny", paths=["/y/**"]), id="other path"),
    pytest.param(rule("d", "deny", actions=["POST"]), id="other method"),
    pytest.param(rule("d", "deny", subjects={"users": ["bob"]}), id="other subject"),
    pytest.param(rule("d", "deny", routes=["admin"]), id="other route"),
]


@pytest.mark.parametrize("deny", DENY_MISS_CASES)
def test_deny_that_does_not_match_leaves_allow(deny: dict[str, Any]) -> None:
    routes = [route("app", "*", "/"), route("admin", "admin.example.com", "/")]
    policy = compiled([rule("everyone"), deny], routes=routes)

    decision = policy.evaluate(person(), get("/x/1"))

    assert decision.allowed
    assert decision.matched_rules == ("everyone",)


def test_allow_reports_every_matching_allow_rule_in_document_order() -> None:
    rules = [
        rule("zeta", subjects={"groups": ["eng"]}),
        rule("not-mine", subjects={"groups": ["ops"]}),
        rule("alpha", subjects={"users": ["alice@example.com"]}),
        rule("mid", paths=["/x/**"]),
        rule("elsewhere", paths=["/y/**"]),
        rule("beta", subjects={"domains": ["example.com"]}),
    ]
    policy = compiled(rules)

    decision = policy.evaluate(person(groups=("eng",)), get("/x/1"))

    assert decision.allowed
    assert decision.reasons == (Reason.ALLOW_RULE_MATCHED,)
    assert decision.matched_rules == ("zeta", "alpha", "mid", "beta")


def test_rule_matching_one_principal_twice_is_reported_once() -> None:
    subjects = {"users": ["u-alice", "alice@example.com"], "groups": ["eng"]}
    policy = compiled([rule("r", subjects=subjects)])

    decision = policy.evaluate(person(groups=("eng",)), get())

    assert decision.matched_rules == ("r",)


def test_decision_carries_policy_version_and_checksum() -> None:
    document = parse_policy({"version": 1, "routes": [route()], "rules": [rule("r")]})
    policy = CompiledPolicy(document, 42, default_issuer=ISSUER)

    for identity in (person(), person(sub="other", email=None)):
        decision = policy.evaluate(identity, get())
        assert decision.policy_version == 42
        assert decision.policy_checksum == document.checksum
        assert decision.policy_checksum.startswith("sha256:")
    no_route = CompiledPolicy(document, 43, default_issuer=ISSUER).evaluate(person(), get())
    assert no_route.policy_version == 43


def test_repeated_decisions_do_not_leak_between_principals() -> None:
    policy = compiled([rule("eng", subjects={"groups": ["eng"]})])
    member, outsider = person(groups=("eng",)), person(groups=())

    for _ in range(3):
        assert allowed(policy, member, get("/a"))
        assert not allowed(policy, outsider, get("/a"))


# --- the index agrees with a naive reference evaluator -----------------------------------


def reference_route(routes: tuple[Route, ...], host: str, path: str) -> Route | None:
    """Exact host before "*", then the longest prefix covering the path (segment-wise)."""
    bare = host.split(":")[0].lower().rstrip(".")

    def covers(candidate: Route) -> bool:
        prefix = candidate.path_prefix
        if prefix == "/" or path == prefix:
            return True
        return path.startswith(prefix if prefix.endswith("/") else prefix + "/")

    for wanted in (bare, "*"):
        candidates = [r for r in routes if r.host == wanted and covers(r)]
        if candidates:
            return max(candidates, key=lambda r: len(r.path_prefix))
    return None


def reference_subject(candidate: Rule, identity: Identity) -> bool:
    subjects = candidate.subjects
    if not (subjects.users or subjects.groups or subjects.domains):
        return True
    email = identity.email.lower() if identity.email else None
    for user in subjects.users:
        matched = user.lower() == email if "@" in user else user == identity.subject
        if matched:
            return True
    if subjects.groups & identity.groups:
        return True
    domain = email.rsplit("@", 1)[1] if email and "@" in email else None
    if domain is not None and domain in {d.lower() for d in subjects.domains}:
        return True
    return candidate.effect == "deny" and reference_cannot_escape(candidate, identity)


def reference_cannot_escape(candidate: Rule, identity: Identity) -> bool:
    """A deny applies when the principal cannot show it falls outside it."""
    subjects = candidate.subjects
    names_email = bool(subjects.domains) or any("@" in user for user in subjects.users)
    if names_email and identity.email is None:
        return True
    return bool(subjects.groups) and not identity.groups_claimed and not identity.groups


def reference_evaluate(
    document: PolicyDocument, identity: Identity, request: AccessRequest
) -> tuple[bool, Reason, tuple[str, ...], str | None]:
    chosen = reference_route(document.routes, request.host, request.path)
    if chosen is None:
        return False, Reason.NO_ROUTE, (), None
    matching = [
        candidate
        for candidate in document.rules
        if chosen.id in candidate.routes
        and request.method in candidate.actions
        and reference_subject(candidate, identity)
        and (not candidate.paths or any(g.matches(request.path) for g in candidate.paths))
    ]
    denies = tuple(c.id for c in matching if c.effect == "deny")
    allows = tuple(c.id for c in matching if c.effect == "allow")
    if denies:
        return False, Reason.DENY_RULE_MATCHED, denies, chosen.id
    if allows:
        return True, Reason.ALLOW_RULE_MATCHED, allows, chosen.id
    return False, Reason.NO_MATCHING_RULE, (), chosen.id


HOSTS = ["*", "a.example", "b.example"]
PREFIXES = ["/", "/api", "/api/", "/api/v1", "/files"]
GLOBS = ["/**", "/", "/api/**", "/api/*", "/api/*/items", "/api/**/items", "/files/*.pdf", "/apix"]
USERS = ["alice", "Alice", "bob", "alice@example.com", "Alice@Example.COM", "carol@sub.example.com"]
GROUPS = ["eng", "ops", "sec"]
DOMAINS = ["example.com", "EXAMPLE.com", "@example.com", "sub.example.com", "other.example"]
REQUEST_HOSTS = ["a.example", "A.EXAMPLE:8443", "b.example", "c.example"]
REQUEST_PATHS = [
    "/",
    "/api",
    "/api/",
    "/api/x",
    "/api/x/items",
    "/api/v1",
    "/api/v1/x/items",
    "/apix",
    "/files/a.pdf",
    "/files/a/b.pdf",
    "/other",
]


@st.composite
def policies(draw: st.DrawFn) -> PolicyDocument:
    route_count = draw(st.integers(1, 3))
    routes = [
        route(f"r{index}", draw(st.sampled_from(HOSTS)), draw(st.sampled_from(PREFIXES)))
        for index in range(route_count)
    ]
    route_ids = [r["id"] for r in routes]
    rules = []
    for index in range(draw(st.integers(0, 6))):
        entry: dict[str, Any] = {
            "id": f"rule{index}",
            "effect": draw(st.sampled_from(["allow", "allow", "deny"])),
            "routes": draw(st.lists(st.sampled_from(route_ids), min_size=1, unique=True)),
            "actions": draw(
                st.one_of(
                    st.just(["*"]),
                    st.lists(st.sampled_from(METHODS), min_size=1, max_size=3, unique=True),
                )
            ),
        }
        kinds = {
            "users": draw(st.lists(st.sampled_from(USERS), max_size=2, unique=True)),
            "groups": draw(st.lists(st.sampled_from(GROUPS), max_size=2, unique=True)),
            "domains": draw(st.lists(st.sampled_from(DOMAINS), max_size=2, unique=True)),
        }
        subjects = {kind: values for kind, values in kinds.items() if values}
        if subjects:
            entry["subjects"] = subjects
        paths = draw(st.lists(st.sampled_from(GLOBS), max_size=2, unique=True))
        if paths:
            entry["paths"] = paths
        rules.append(entry)
    return parse_policy({"version": 1, "routes": routes, "rules": rules})


identities = st.builds(
    person,
    sub=st.sampled_from(["alice", "bob", "Alice", "u-1"]),
    email=st.sampled_from(
        [None, "alice@example.com", "bob@other.example", "carol@sub.example.com", "dan@example.com"]
    ),
    groups=st.lists(st.sampled_from(GROUPS), max_size=2, unique=True).map(tuple),
)
requests = st.builds(
    AccessRequest,
    host=st.sampled_from(REQUEST_HOSTS),
    method=st.sampled_from(METHODS),
    path=st.sampled_from(REQUEST_PATHS),
)


def summary(decision: Decision) -> tuple[bool, Reason, tuple[str, ...], str | None]:
    route_id = decision.route.id if decision.route else None
    return decision.allowed, decision.reasons[0], decision.matched_rules, route_id


@settings(max_examples=100, deadline=None)
@given(policies(), st.lists(st.tuples(identities, requests), min_size=1, max_size=6))
def test_indexed_evaluate_agrees_with_reference(
    document: PolicyDocument, asks: list[tuple[Identity, AccessRequest]]
) -> None:
    policy = CompiledPolicy(document, 1, default_issuer=ISSUER)

    for identity, request in asks:
        decision = policy.evaluate(identity, request)
        assert len(decision.reasons) == 1
        assert summary(decision) == reference_evaluate(document, identity, request)


# --- permissions -------------------------------------------------------------------------


def iam_matches(pattern: str, resource: str) -> bool:
    """IAM resource matching: ``*`` is any run of characters (``/`` too), ``?`` one."""
    regex = "".join(
        ".*" if char == "*" else "." if char == "?" else re.escape(char) for char in pattern
    )
    return re.fullmatch(regex, resource) is not None


def covering(permissions: list[Any], method: str, path: str) -> list[Any]:
    return [
        permission
        for permission in permissions
        if method in permission.methods
        and any(iam_matches(arn, path[1:]) for arn in permission.arn_paths)
    ]


PERMISSION_CASES = [
    pytest.param(
        rule("r", actions=["GET"], paths=["/api/**"]),
        (frozenset({"GET"}), ("api", "api/*")),
        id="literal stem and double star",
    ),
    pytest.param(
        rule("r", actions=["GET"], paths=["/files/*.pdf"]),
        (frozenset({"GET"}), ("files/*",)),
        id="over-approximated from the first wildcard",
    ),
    pytest.param(
        rule("r", actions=["*"]),
        (HTTP_METHODS, ("*",)),
        id="no paths on root route is everything",
    ),
]


@pytest.mark.parametrize(("entry", "expected"), PERMISSION_CASES)
def test_permission_of_one_allow_rule(entry: dict[str, Any], expected: tuple[Any, ...]) -> None:
    (permission,) = permissions_of(compiled([entry]), person())

    assert (permission.methods, permission.arn_paths) == expected


@pytest.mark.parametrize(
    "paths",
    [["/admin/**"], ["/admin"], ["/admin/*"], ["/files/*.pdf"], ["/admin/**/keys"]],
    ids=["double star", "literal", "single-segment star", "star extension", "double star middle"],
)
def test_denies_are_never_listed(paths: list[str]) -> None:
    # Method ARNs carry no host or route, so any translated deny could block
    # what another route allows; cached answers are re-decided by the proxy.
    policy = compiled([rule("allow-all"), rule("d", "deny", paths=paths)])

    (permission,) = permissions_of(policy, person())

    assert permission.arn_paths == ("*",)


def test_rule_without_paths_covers_its_route_prefix() -> None:
    policy = compiled([rule("r", actions=["GET"])], routes=[route("app", "*", "/api")])

    (permission,) = permissions_of(policy, person())

    assert permission.arn_paths == ("api", "api/*")


def test_permissions_only_include_the_principals_rules() -> None:
    rules = [
        rule("mine", actions=["GET"], paths=["/mine/**"], subjects={"groups": ["eng"]}),
        rule("theirs", actions=["GET"], paths=["/theirs/**"], subjects={"groups": ["ops"]}),
        rule("not-me", "deny", paths=["/mine/secret"], subjects={"groups": ["eng"]}),
    ]
    permissions = permissions_of(compiled(rules), person(groups=("eng",)))

    assert [p.arn_paths for p in permissions] == [("mine", "mine/*")]


def test_permission_for_a_principal_without_rules_is_empty() -> None:
    policy = compiled([rule("ops", subjects={"groups": ["ops"]})])

    assert permissions_of(policy, person()) == []


def test_rule_on_two_routes_yields_a_permission_per_route() -> None:
    routes = [route("app", "*", "/app"), route("api", "*", "/api")]
    entry = rule("r", actions=["GET"]) | {"routes": ["app", "api"]}

    permissions = permissions_of(compiled([entry], routes=routes), person())

    assert sorted(p.arn_paths for p in permissions) == [("api", "api/*"), ("app", "app/*")]


DENY_SCOPE_CASES = [
    pytest.param(
        [route("a", "a.example", "/"), route("b", "b.example", "/")],
        [
            rule("a-no-admin", "deny", paths=["/admin/**"]) | {"routes": ["a"]},
            rule("b-all") | {"routes": ["b"]},
        ],
        id="deny on another host's route",
    ),
    pytest.param(
        [route("main", "*", "/"), route("shadowed", "*", "/")],
        [
            rule("shadowed-deny", "deny") | {"routes": ["shadowed"]},
            rule("main-all") | {"routes": ["main"]},
        ],
        id="deny on a route no request reaches",
    ),
    pytest.param(
        [route("api", "*", "/api"), route("web", "*", "/")],
        [
            rule("api-no-admin", "deny", paths=["/admin/**"]) | {"routes": ["api"]},
            rule("web-all") | {"routes": ["web"]},
        ],
        id="deny glob outside its own route prefix",
    ),
]


@pytest.mark.parametrize(("routes", "rules"), DENY_SCOPE_CASES)
def test_listed_deny_never_blocks_what_the_policy_allows(
    routes: list[dict[str, Any]], rules: list[dict[str, Any]]
) -> None:
    # API Gateway's method ARN carries no host and no route: a deny listed for one
    # route applies to every request with that method and path.
    policy = compiled(rules, routes=routes)
    request = AccessRequest("b.example", "GET", "/admin/users")
    assert policy.evaluate(person(), request).allowed

    permissions = permissions_of(policy, person())

    assert covering(permissions, "GET", request.path), "the allowed request must stay reachable"


@settings(max_examples=60, deadline=None)
@given(policies(), identities)
def test_permissions_allow_every_request_the_policy_allows(
    document: PolicyDocument, identity: Identity
) -> None:
    policy = CompiledPolicy(document, 1, default_issuer=ISSUER)
    permissions = permissions_of(policy, identity)

    for host in ("a.example", "b.example", "c.example"):
        for path in REQUEST_PATHS:
            for method in ("GET", "DELETE"):
                request = AccessRequest(host, method, path)
                if policy.evaluate(identity, request).allowed:
                    assert covering(permissions, method, path), request


# --- denies a caller cannot talk their way out of --------------------------------------------

EVASION_CASES = [
    pytest.param(
        {"users": ["mallory@example.com"]},
        person(sub="u-mallory", email=None),
        id="deny by email, token without a verified email",
    ),
    pytest.param(
        {"domains": ["contractor.example"]},
        person(sub="u-carol", email=None),
        id="deny by domain, token without a verified email",
    ),
    pytest.param(
        {"groups": ["contractors"]},
        Identity(ISSUER, "u-carol", AUDIENCE, 2_000_000_000, groups_claimed=False),
        id="deny by group, token without a groups claim",
    ),
]


@pytest.mark.parametrize(("subjects", "identity"), EVASION_CASES)
def test_deny_applies_when_the_token_omits_the_claim_it_names(
    subjects: dict[str, list[str]], identity: Identity
) -> None:
    policy = compiled([rule("everyone"), rule("block", "deny", subjects=subjects)])

    decision = policy.evaluate(identity, get("/x"))

    assert (decision.allowed, decision.matched_rules) == (False, ("block",))


def test_an_allow_never_matches_on_a_missing_claim() -> None:
    policy = compiled([rule("eng", subjects={"groups": ["eng"], "domains": ["example.com"]})])
    nameless = Identity(ISSUER, "u-x", AUDIENCE, 2_000_000_000, groups_claimed=False)

    assert not allowed(policy, nameless, get("/x"))


def test_an_empty_groups_claim_is_a_statement_and_escapes_a_group_deny() -> None:
    policy = compiled(
        [rule("everyone"), rule("block", "deny", subjects={"groups": ["contractors"]})]
    )
    no_groups = Identity(
        ISSUER, "u-x", AUDIENCE, 2_000_000_000, groups=frozenset(), groups_claimed=True
    )

    assert allowed(policy, no_groups, get("/x"))


SPELLING_CASES = [
    pytest.param("GET", "/api/Admin/users", id="other letter case"),
    pytest.param("GET", "/API/ADMIN/users", id="upper case"),
    pytest.param("GET", "/api/admin/", id="trailing slash on the literal stem"),
    pytest.param("HEAD", "/api/admin/users", id="HEAD runs the GET handler"),
]


@pytest.mark.parametrize(("method", "path"), SPELLING_CASES)
def test_deny_catches_spellings_upstreams_route_alike(method: str, path: str) -> None:
    policy = compiled(
        [
            rule("read", actions=["GET", "HEAD"], paths=["/**"]),
            rule("no-admin", "deny", actions=["GET"], paths=["/api/admin", "/api/admin/*"]),
        ]
    )

    assert not allowed(policy, person(), get(path, method))


def test_allow_globs_stay_case_sensitive() -> None:
    policy = compiled([rule("api", actions=["GET"], paths=["/api/**"])])

    assert allowed(policy, person(), get("/api/x"))
    assert not allowed(policy, person(), get("/API/x"))


def test_many_double_stars_match_in_linear_time() -> None:
    policy = compiled([rule("dump", "deny", paths=["/**/internal/**/debug/**/dump"]), rule("all")])
    path = "/" + "/".join(["internal", "debug"] * 60)  # no "dump": the worst case for backtracking

    assert allowed(policy, person(), get(path))
