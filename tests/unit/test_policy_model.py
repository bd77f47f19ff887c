"""parse_policy: every field validated, every problem reported with its location."""

from __future__ import annotations

import copy
import re
from typing import Any

import pytest
import yaml

from chalicelib.policy import PolicyInvalid, Route, parse_policy

_DELETE = object()


def valid_document() -> dict[str, Any]:
    """A policy using every supported field."""
    return {
        "version": 1,
        "routes": [
            {
                "id": "demo",
                "host": "*",
                "path_prefix": "/",
                "upstream": "http://127.0.0.1:9000/",
                "audience": "demo",
                "pass_authorization": False,
                "sensitive": False,
            },
            {
                "id": "admin",
                "host": "admin.example.com",
                "path_prefix": "/admin",
                "upstream": "https://admin.internal:8443/base",
                "audience": "admin-api",
                "pass_authorization": True,
                "sensitive": True,
            },
        ],
        "rules": [
            {
                "id": "eng-read",
                "effect": "allow",
                "routes": ["demo"],
                "subjects": {
                    "users": ["alice@example.com", "u-123"],
                    "groups": ["engineering"],
                    "domains": ["Example.COM", "@partner.example"],
                },
                "actions": ["GET", "head"],
                "paths": ["/api/**", "/files/*.pdf"],
            },
            {
                "id": "no-admin-delete",
                "effect": "deny",
                "routes": ["admin", "demo"],
                "actions": ["DELETE"],
            },
        ],
    }


def mutated(path: tuple[Any, ...], value: Any) -> dict[str, Any]:
    """``valid_document()`` with the member at ``path`` set to ``value`` (or deleted)."""
    document = valid_document()
    parent: Any = document
    for step in path[:-1]:
        parent = parent[step]
    if value is _DELETE:
        del parent[path[-1]]
    else:
        parent[path[-1]] = copy.deepcopy(value)
    return document


def problems_of(document: Any) -> list[tuple[str, str]]:
    with pytest.raises(PolicyInvalid) as caught:
        parse_policy(document)
    return [(problem.location, problem.message) for problem in caught.value.problems]


# --- the valid document ------------------------------------------------------------------


def test_valid_document_parses_into_routes_and_rules() -> None:
    policy = parse_policy(valid_document())

    assert policy.routes == (
        Route(
            id="demo",
            host="*",
            path_prefix="/",
            upstream="http://127.0.0.1:9000",
            audience="demo",
            pass_authorization=False,
            sensitive=False,
        ),
        Route(
            id="admin",
            host="admin.example.com",
            path_prefix="/admin",
            upstream="https://admin.internal:8443/base",
            audience="admin-api",
            pass_authorization=True,
            sensitive=True,
        ),
    )
    read, deny = policy.rules
    assert (read.id, read.effect, read.routes) == ("eng-read", "allow", ("demo",))
    assert read.subjects.users == frozenset({"alice@example.com", "u-123"})
    assert read.subjects.groups == frozenset({"engineering"})
    assert read.subjects.domains == frozenset({"example.com", "partner.example"})
    assert read.actions == frozenset({"GET", "HEAD"})
    assert [glob.pattern for glob in read.paths] == ["/api/**", "/files/*.pdf"]
    assert (deny.id, deny.effect, deny.routes) == ("no-admin-delete", "deny", ("admin", "demo"))
    assert deny.subjects.anyone
    assert deny.paths == ()
    assert policy.route("admin") is policy.routes[1]
    assert policy.route("missing") is None


def test_route_defaults_to_any_host_and_root_prefix() -> None:
    document = valid_document()
    del document["routes"][0]["host"]
    del document["routes"][0]["path_prefix"]
    del document["routes"][0]["pass_authorization"]
    del document["routes"][0]["sensitive"]

    route = parse_policy(document).routes[0]

    assert (route.host, route.path_prefix) == ("*", "/")
    assert (route.pass_authorization, route.sensitive) == (False, False)


def test_policy_without_rules_is_valid_and_has_none() -> None:
    document = valid_document()
    del document["rules"]

    assert parse_policy(document).rules == ()


@pytest.mark.parametrize(
    "actions",
    [["*"], ["GET", "*"]],
    ids=["star alone", "star among methods"],
)
def test_star_action_expands_to_all_seven_methods(actions: list[str]) -> None:
    policy = parse_policy(mutated(("rules", 0, "actions"), actions))

    assert policy.rules[0].actions == {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"}


def test_rule_path_globs_are_matched_as_any_of() -> None:
    rule = parse_policy(valid_document()).rules[0]

    assert rule.matches_path("/api/projects")
    assert rule.matches_path("/files/report.pdf")
    assert not rule.matches_path("/files/report.txt")
    assert not rule.matches_path("/apix")


# --- one invalid field at a time ---------------------------------------------------------

INVALID_FIELDS = [
    pytest.param(("colour",), "blue", "colour", "unknown field", id="unknown top-level field"),
    pytest.param(("version",), 2, "version", "must be 1", id="version 2"),
    pytest.param(("version",), "1", "version", "must be 1", id="version as string"),
    pytest.param(("version",), True, "version", "must be 1", id="version as boolean true"),
    pytest.param(("version",), _DELETE, "version", "must be 1", id="version missing"),
    pytest.param(("routes",), _DELETE, "routes", "must be a list", id="routes missing"),
    pytest.param(("routes",), [], "routes", "at least one route", id="routes empty"),
    pytest.param(("routes", 0), "demo", "routes[0]", "must be a mapping", id="route not mapping"),
    pytest.param(("routes", 1, "id"), "demo", "routes[demo]", "duplicate id", id="dup route id"),
    pytest.param(("routes", 0, "id"), "Demo", "routes[0].id", "must match", id="route id upper"),
    pytest.param(
        ("routes", 0, "path_prefix"),
        "/.Gatehouse/admin",
        "routes[demo].path_prefix",
        "Gatehouse's own",
        id="route under /.gatehouse",
    ),
    pytest.param(
        ("routes", 0, "id"), "my route", "routes[0].id", "must match", id="route id space"
    ),
    pytest.param(("routes", 0, "id"), _DELETE, "routes[0].id", "must match", id="route id missing"),
    pytest.param(("routes", 0, "id"), 7, "routes[0].id", "must match", id="route id not string"),
    pytest.param(
        ("rules", 1, "id"), "eng-read", "rules[eng-read]", "duplicate id", id="dup rule id"
    ),
    pytest.param(
        ("rules", 0, "id"), "-read", "rules[0].id", "must match", id="rule id leading dash"
    ),
    pytest.param(("rules", 0, "id"), "a" * 65, "rules[0].id", "must match", id="rule id too long"),
    pytest.param(("rules", 0, "id"), "eng/read", "rules[0].id", "must match", id="rule id slash"),
    pytest.param(
        ("routes", 1, "host"),
        "admin.example.com:8443",
        "routes[admin].host",
        "host name",
        id="route host with port",
    ),
    pytest.param(
        ("routes", 1, "host"),
        "Admin.Example.com",
        "routes[admin].host",
        "lower-case",
        id="route host uppercase",
    ),
    pytest.param(
        ("routes", 1, "host"),
        "*.example.com",
        "routes[admin].host",
        "host name",
        id="route host partial wildcard",
    ),
    pytest.param(
        ("routes", 1, "path_prefix"),
        "admin",
        "routes[admin].path_prefix",
        "must be a plain, normalised path starting with /",
        id="path_prefix without leading slash",
    ),
    pytest.param(
        ("routes", 0, "upstream"),
        "http://127.0.0.1:9000/?x=1",
        "routes[demo].upstream",
        "without query",
        id="upstream with query",
    ),
    pytest.param(
        ("routes", 0, "upstream"),
        "http://127.0.0.1:9000?",
        "routes[demo].upstream",
        "without query",
        id="upstream with empty query delimiter",
    ),
    pytest.param(
        ("routes", 0, "upstream"),
        "http://127.0.0.1:9000/#top",
        "routes[demo].upstream",
        "fragment",
        id="upstream with fragment",
    ),
    pytest.param(
        ("routes", 0, "upstream"),
        "http://user:pw@127.0.0.1:9000",
        "routes[demo].upstream",
        "http(s) URL",
        id="upstream with userinfo",
    ),
    pytest.param(
        ("routes", 0, "upstream"),
        "ftp://files.internal/",
        "routes[demo].upstream",
        "http(s) URL",
        id="upstream ftp scheme",
    ),
    pytest.param(
        ("routes", 0, "upstream"),
        "file:///etc/passwd",
        "routes[demo].upstream",
        "http(s) URL",
        id="upstream file scheme",
    ),
    pytest.param(
        ("routes", 0, "upstream"),
        "127.0.0.1:9000",
        "routes[demo].upstream",
        "http(s) URL",
        id="upstream without scheme",
    ),
    pytest.param(
        ("routes", 0, "upstream"),
        "http://",
        "routes[demo].upstream",
        "http(s) URL",
        id="upstream without host",
    ),
    pytest.param(
        ("routes", 0, "upstream"),
        _DELETE,
        "routes[demo].upstream",
        "http(s) URL",
        id="upstream missing",
    ),
    pytest.param(
        ("routes", 0, "audience"),
        _DELETE,
        "routes[demo].audience",
        "non-empty string",
        id="audience missing",
    ),
    pytest.param(
        ("routes", 0, "audience"),
        "",
        "routes[demo].audience",
        "non-empty string",
        id="audience empty",
    ),
    pytest.param(
        ("routes", 0, "pass_authorization"),
        "yes",
        "routes[demo].pass_authorization",
        "true or false",
        id="pass_authorization not bool",
    ),
    pytest.param(
        ("routes", 0, "pass_authorization"),
        1,
        "routes[demo].pass_authorization",
        "true or false",
        id="pass_authorization as 1",
    ),
    pytest.param(
        ("routes", 1, "sensitive"),
        "false",
        "routes[admin].sensitive",
        "true or false",
        id="sensitive as string",
    ),
    pytest.param(
        ("routes", 0, "timeout"),
        5,
        "routes[demo].timeout",
        "unknown field",
        id="unknown route field",
    ),
    pytest.param(("rules",), "eng-read", "rules", "must be a list", id="rules not a list"),
    pytest.param(
        ("rules", 0, "routes"),
        ["demo", "nope"],
        "rules[eng-read].routes",
        "unknown route 'nope'",
        id="rule names unknown route",
    ),
    pytest.param(
        ("rules", 0, "routes"),
        [],
        "rules[eng-read].routes",
        "non-empty list",
        id="rule routes empty",
    ),
    pytest.param(
        ("rules", 0, "routes"),
        _DELETE,
        "rules[eng-read].routes",
        "non-empty list",
        id="rule routes missing",
    ),
    pytest.param(
        ("rules", 0, "effect"),
        "permit",
        "rules[eng-read].effect",
        "allow or deny",
        id="bad effect",
    ),
    pytest.param(
        ("rules", 0, "effect"),
        "Allow",
        "rules[eng-read].effect",
        "allow or deny",
        id="effect capitalised",
    ),
    pytest.param(
        ("rules", 0, "effect"),
        _DELETE,
        "rules[eng-read].effect",
        "allow or deny",
        id="effect missing",
    ),
    pytest.param(
        ("rules", 0, "actions"),
        [],
        "rules[eng-read].actions",
        "non-empty list",
        id="empty actions",
    ),
    pytest.param(
        ("rules", 0, "actions"),
        _DELETE,
        "rules[eng-read].actions",
        "non-empty list",
        id="actions missing",
    ),
    pytest.param(
        ("rules", 0, "actions"),
        "GET",
        "rules[eng-read].actions",
        "non-empty list",
        id="actions as string",
    ),
    pytest.param(
        ("rules", 0, "actions"),
        ["GET", "FETCH"],
        "rules[eng-read].actions",
        "'FETCH'",
        id="unknown method",
    ),
    pytest.param(
        ("rules", 0, "actions"),
        ["GET", ""],
        "rules[eng-read].actions",
        "non-empty list",
        id="empty method name",
    ),
    pytest.param(
        ("rules", 0, "paths"),
        ["/api/**", "/a**b"],
        "rules[eng-read].paths",
        "whole segment",
        id="bad glob a**b",
    ),
    pytest.param(
        ("rules", 0, "paths"),
        ["api/**"],
        "rules[eng-read].paths",
        "does not start with /",
        id="glob without leading slash",
    ),
    pytest.param(
        ("rules", 0, "paths"), [], "rules[eng-read].paths", "non-empty list", id="paths empty"
    ),
    pytest.param(
        ("rules", 0, "when"),
        {"mfa": "yes"},
        "rules[eng-read].when.mfa",
        "true or false",
        id="when mfa not a boolean",
    ),
    pytest.param(
        ("rules", 0, "when"),
        {},
        "rules[eng-read].when",
        "at least one condition",
        id="when empty",
    ),
    pytest.param(
        ("rules", 0, "when"),
        {"geo": "de"},
        "rules[eng-read].when.geo",
        "unknown field",
        id="unknown condition",
    ),
    pytest.param(
        ("rules", 0, "when"),
        {"source_cidrs": ["10.0.0.1/8"]},
        "rules[eng-read].when.source_cidrs",
        "not a CIDR",
        id="cidr with host bits",
    ),
    pytest.param(
        ("rules", 0, "when"),
        {"source_cidrs": ["ten.0.0.0/8"]},
        "rules[eng-read].when.source_cidrs",
        "not a CIDR",
        id="cidr garbage",
    ),
    pytest.param(
        ("rules", 1, "when"),
        {"max_auth_age": 0},
        "rules[no-admin-delete].when.max_auth_age",
        "duration",
        id="max_auth_age zero",
    ),
    pytest.param(
        ("rules", 1, "when"),
        {"max_auth_age": "soon"},
        "rules[no-admin-delete].when.max_auth_age",
        "duration",
        id="max_auth_age words",
    ),
    pytest.param(
        ("rules", 0, "when"),
        {"hours": {"tz": "Mars/Olympus", "days": ["mon"]}},
        "rules[eng-read].when.hours.tz",
        "IANA time zone",
        id="unknown time zone",
    ),
    pytest.param(
        ("rules", 0, "when"),
        {"hours": {"tz": "../../etc/passwd"}},
        "rules[eng-read].when.hours.tz",
        "IANA time zone",
        id="time zone path traversal",
    ),
    pytest.param(
        ("rules", 0, "when"),
        {"hours": {"tz": "UTC", "days": ["someday"]}},
        "rules[eng-read].when.hours.days",
        "must name days",
        id="unknown day",
    ),
    pytest.param(
        ("rules", 0, "when"),
        {"hours": {"tz": "UTC", "days": ["Mon"]}},
        "rules[eng-read].when.hours.days",
        "must name days",
        id="day capitalised",
    ),
    pytest.param(
        ("rules", 0, "when"),
        {"hours": {"tz": "UTC", "from": "09:00", "to": "09:00"}},
        "rules[eng-read].when.hours",
        "equal",
        id="from equals to",
    ),
    pytest.param(
        ("rules", 0, "when"),
        {"hours": {"tz": "UTC", "from": 1080}},
        "rules[eng-read].when.hours.from",
        "quoted",
        id="unquoted YAML time read as a number",
    ),
    pytest.param(
        ("rules", 0, "when"),
        {"hours": {"tz": "UTC", "to": 1080}},
        "rules[eng-read].when.hours.to",
        "quoted",
        id="unquoted YAML end time read as a number",
    ),
    pytest.param(
        ("rules", 0, "when"),
        {"hours": {"tz": "UTC", "from": "25:00"}},
        "rules[eng-read].when.hours.from",
        "time of day",
        id="hour 25",
    ),
    pytest.param(
        ("rules", 0, "when"),
        {"hours": {"tz": "UTC", "from": "24:00"}},
        "rules[eng-read].when.hours.from",
        "time of day",
        id="24:00 is only an end",
    ),
    pytest.param(
        ("rules", 0, "when"),
        {"hours": {"tz": "UTC", "to": "24:01"}},
        "rules[eng-read].when.hours.to",
        "time of day",
        id="past the end of the day",
    ),
    pytest.param(
        ("rules", 0, "when"),
        {"hours": {"tz": "UTC", "from": "8:00"}},
        "rules[eng-read].when.hours.from",
        "08:30",
        id="one-digit hour",
    ),
    pytest.param(
        ("rules", 0, "when"),
        {"hours": {"tz": "UTC", "from": "22:00", "to": "22:00"}},
        "rules[eng-read].when.hours",
        "equal",
        id="from equals to across midnight",
    ),
    pytest.param(
        ("rules", 0, "when"),
        {"hours": {"days": ["mon"]}},
        "rules[eng-read].when.hours.tz",
        "IANA time zone",
        id="time zone missing",
    ),
    pytest.param(
        ("rules", 0, "when"),
        {"hours": {"tz": 1}},
        "rules[eng-read].when.hours.tz",
        "IANA time zone",
        id="time zone a number",
    ),
    pytest.param(
        ("rules", 0, "when"),
        {"hours": {"tz": "/etc/localtime"}},
        "rules[eng-read].when.hours.tz",
        "IANA time zone",
        id="time zone absolute path",
    ),
    pytest.param(
        ("rules", 0, "when"),
        {"hours": {"tz": "UTC", "days": []}},
        "rules[eng-read].when.hours.days",
        "non-empty list",
        id="no days",
    ),
    pytest.param(
        ("rules", 0, "when"),
        {"hours": {"tz": "UTC", "days": "mon"}},
        "rules[eng-read].when.hours.days",
        "non-empty list",
        id="days as a string",
    ),
    pytest.param(
        ("rules", 0, "when"),
        {"hours": {"tz": "UTC", "days": ["monday"]}},
        "rules[eng-read].when.hours.days",
        "must name days",
        id="day spelled out",
    ),
    pytest.param(
        ("rules", 0, "when"),
        {"hours": ["mon"]},
        "rules[eng-read].when.hours",
        "must be a mapping",
        id="hours not a mapping",
    ),
    pytest.param(
        ("rules", 0, "when"),
        {"hours": {"tz": "UTC", "week": 2}},
        "rules[eng-read].when.hours.week",
        "unknown field",
        id="unknown hours field",
    ),
    pytest.param(
        ("rules", 0, "when"),
        {"source_cidrs": ["2001:db8::1/32"]},
        "rules[eng-read].when.source_cidrs",
        "host bits",
        id="ipv6 cidr with host bits",
    ),
    pytest.param(
        ("rules", 0, "when"),
        {"source_cidrs": ["10.0.0.0/33"]},
        "rules[eng-read].when.source_cidrs",
        "not a CIDR",
        id="cidr prefix too long",
    ),
    pytest.param(
        ("rules", 0, "when"),
        {"source_cidrs": "10.0.0.0/8"},
        "rules[eng-read].when.source_cidrs",
        "non-empty list",
        id="cidrs as a string",
    ),
    pytest.param(
        ("rules", 0, "when"),
        {"source_cidrs": []},
        "rules[eng-read].when.source_cidrs",
        "non-empty list",
        id="no cidrs",
    ),
    pytest.param(
        ("rules", 0, "when"),
        {"max_auth_age": "abc"},
        "rules[eng-read].when.max_auth_age",
        "duration",
        id="max_auth_age abc",
    ),
    pytest.param(
        ("rules", 0, "when"),
        {"max_auth_age": -60},
        "rules[eng-read].when.max_auth_age",
        "duration",
        id="max_auth_age negative",
    ),
    pytest.param(
        ("rules", 0, "when"),
        {"max_auth_age": True},
        "rules[eng-read].when.max_auth_age",
        "duration",
        id="max_auth_age true",
    ),
    pytest.param(
        ("rules", 0, "when"),
        {"max_auth_age": 1.5},
        "rules[eng-read].when.max_auth_age",
        "duration",
        id="max_auth_age fractional",
    ),
    pytest.param(
        ("rules", 0, "when"),
        {"max_auth_age": "0s"},
        "rules[eng-read].when.max_auth_age",
        "duration",
        id="max_auth_age zero seconds",
    ),
    pytest.param(
        ("rules", 0, "when"),
        {"max_auth_age": "1h 30m"},
        "rules[eng-read].when.max_auth_age",
        "duration",
        id="max_auth_age with a space",
    ),
    pytest.param(
        ("rules", 0, "when"),
        {"max_auth_age": "30m1h"},
        "rules[eng-read].when.max_auth_age",
        "duration",
        id="max_auth_age units out of order",
    ),
    pytest.param(
        ("rules", 0, "when"),
        {"max_auth_age": "1H"},
        "rules[eng-read].when.max_auth_age",
        "duration",
        id="max_auth_age upper-case unit",
    ),
    pytest.param(
        ("rules", 0, "when"),
        {"mfa": 1},
        "rules[eng-read].when.mfa",
        "true or false",
        id="mfa as 1",
    ),
    pytest.param(
        ("rules", 0, "when"),
        {"mfa": None},
        "rules[eng-read].when.mfa",
        "true or false",
        id="mfa null",
    ),
    pytest.param(
        ("rules", 0, "when"),
        ["mfa"],
        "rules[eng-read].when",
        "at least one condition",
        id="when as a list",
    ),
    pytest.param(
        ("rules", 0, "when"),
        None,
        "rules[eng-read].when",
        "at least one condition",
        id="when null",
    ),
    pytest.param(
        ("rules", 0, "subjects", "claims"),
        {},
        "rules[eng-read].subjects.claims",
        "mapping of claim name",
        id="claims empty",
    ),
    pytest.param(
        ("rules", 0, "subjects", "claims"),
        {"exp": 1},
        "rules[eng-read].subjects.claims.exp",
        "registered claim",
        id="claims on a registered claim",
    ),
    pytest.param(
        ("rules", 0, "subjects", "claims"),
        {"email": "boss@example.com"},
        "rules[eng-read].subjects.claims.email",
        "subjects.users or domains",
        id="claims on the unverified email",
    ),
    pytest.param(
        ("rules", 0, "subjects", "claims"),
        {"email_verified": False},
        "rules[eng-read].subjects.claims.email_verified",
        "subjects.users or domains",
        id="claims on email_verified",
    ),
    pytest.param(
        ("rules", 0, "subjects", "claims"),
        {"groups": "security"},
        "rules[eng-read].subjects.claims.groups",
        "subjects.groups",
        id="claims on the groups claim",
    ),
    pytest.param(
        ("rules", 1, "when"),
        {"mfa": True},
        "rules[no-admin-delete].when.mfa",
        "cannot be on a deny rule",
        id="mfa on a deny rule",
    ),
    pytest.param(
        ("rules", 1, "when"),
        {"max_auth_age": "1h", "source_cidrs": ["10.0.0.0/8"]},
        "rules[no-admin-delete].when.max_auth_age",
        "cannot be on a deny rule",
        id="max_auth_age on a deny rule",
    ),
    pytest.param(
        ("rules", 0, "subjects", "claims"),
        {"department": {"name": "security"}},
        "rules[eng-read].subjects.claims.department",
        "string, number or boolean",
        id="claims nested object",
    ),
    pytest.param(
        ("rules", 0, "subjects", "claims"),
        {"department": []},
        "rules[eng-read].subjects.claims.department",
        "string, number or boolean",
        id="claims empty list",
    ),
    pytest.param(
        ("rules", 0, "subjects", "claims"),
        ["department"],
        "rules[eng-read].subjects.claims",
        "mapping of claim name",
        id="claims as a list",
    ),
    pytest.param(
        ("rules", 0, "subjects", "claims"),
        {"department": None},
        "rules[eng-read].subjects.claims.department",
        "string, number or boolean",
        id="claims null value",
    ),
    pytest.param(
        ("rules", 0, "subjects", "claims"),
        {"level": 1.5},
        "rules[eng-read].subjects.claims.level",
        "string, number or boolean",
        id="claims fractional number",
    ),
    pytest.param(
        ("rules", 0, "subjects", "claims"),
        {"level": 2**53},
        "rules[eng-read].subjects.claims.level",
        "string, number or boolean",
        id="claims integer beyond JSON precision",
    ),
    pytest.param(
        ("rules", 0, "subjects", "claims"),
        {"department": [["security"]]},
        "rules[eng-read].subjects.claims.department",
        "string, number or boolean",
        id="claims nested list",
    ),
    pytest.param(
        ("rules", 0, "subjects", "claims"),
        {"department": ["security", {"name": "it"}]},
        "rules[eng-read].subjects.claims.department",
        "string, number or boolean",
        id="claims list holding an object",
    ),
    pytest.param(
        ("rules", 0, "subjects", "claims"),
        {"dept name": "security"},
        "rules[eng-read].subjects.claims.dept name",
        "not a claim name",
        id="claims name with a space",
    ),
    pytest.param(
        ("rules", 0, "subjects", "claims"),
        {"d" * 129: "security"},
        f"rules[eng-read].subjects.claims.{'d' * 129}",
        "not a claim name",
        id="claims name too long",
    ),
    *(
        pytest.param(
            ("rules", 0, "subjects", "claims"),
            {name: "x"},
            f"rules[eng-read].subjects.claims.{name}",
            "registered claim",
            id=f"claims on registered claim {name}",
        )
        for name in ("iss", "sub", "aud", "exp", "nbf", "iat", "jti", "auth_time")
    ),
    pytest.param(
        ("rules", 0, "subjects", "issuers"),
        [],
        "rules[eng-read].subjects.issuers",
        "non-empty list",
        id="issuers empty",
    ),
    pytest.param(
        ("rules", 0, "subjects", "issuers"),
        ["https://idp.example.com", ""],
        "rules[eng-read].subjects.issuers",
        "non-empty list",
        id="issuers with an empty entry",
    ),
    pytest.param(
        ("rules", 0, "subjects", "issuers"),
        "https://idp.example.com",
        "rules[eng-read].subjects.issuers",
        "non-empty list",
        id="issuers as a string",
    ),
    pytest.param(
        ("rules", 0, "subjects"),
        {},
        "rules[eng-read].subjects",
        "lists no subject",
        id="empty subjects mapping",
    ),
    pytest.param(
        ("rules", 0, "subjects"),
        {"users": []},
        "rules[eng-read].subjects.users",
        "non-empty list",
        id="empty users list",
    ),
    pytest.param(
        ("rules", 0, "subjects"),
        ["alice"],
        "rules[eng-read].subjects",
        "must be a mapping",
        id="subjects as list",
    ),
    pytest.param(
        ("rules", 0, "subjects", "roles"),
        ["admin"],
        "rules[eng-read].subjects.roles",
        "unknown field",
        id="unknown subject kind",
    ),
    pytest.param(
        ("rules", 0, "priority"),
        1,
        "rules[eng-read].priority",
        "unknown field",
        id="unknown rule field",
    ),
    pytest.param(
        ("grants",),
        {"approver_groups": ["security"]},
        "grants.max_duration",
        "duration",
        id="grants without max_duration",
    ),
    pytest.param(
        ("grants",),
        {"approver_groups": ["security"], "max_duration": "forever"},
        "grants.max_duration",
        "duration",
        id="grants max_duration words",
    ),
    pytest.param(
        ("grants",),
        {"approver_groups": ["security"], "max_duration": "8d"},
        "grants.max_duration",
        "at most 7d",
        id="grants longer than a week",
    ),
    pytest.param(
        ("grants",),
        {"max_duration": "4h"},
        "grants.approver_groups",
        "non-empty list",
        id="grants without approvers",
    ),
    pytest.param(
        ("grants",),
        {"approver_groups": ["security"], "max_duration": 7 * 86400 + 1},
        "grants.max_duration",
        "at most 7d",
        id="grants a second longer than a week",
    ),
    pytest.param(
        ("grants",),
        {"approver_groups": ["security"], "max_duration": "7d1s"},
        "grants.max_duration",
        "at most 7d",
        id="grants 7d1s",
    ),
    pytest.param(
        ("grants",),
        {"approver_groups": ["security"], "max_duration": 0},
        "grants.max_duration",
        "duration",
        id="grants max_duration zero",
    ),
    pytest.param(
        ("grants",),
        {"approver_groups": ["security"], "max_duration": True},
        "grants.max_duration",
        "duration",
        id="grants max_duration true",
    ),
    pytest.param(
        ("grants",),
        {"approver_groups": [], "max_duration": "4h"},
        "grants.approver_groups",
        "non-empty list",
        id="grants with no approvers",
    ),
    pytest.param(
        ("grants",),
        {"approver_groups": "security", "max_duration": "4h"},
        "grants.approver_groups",
        "non-empty list",
        id="grants approvers as a string",
    ),
    pytest.param(
        ("grants",),
        {"approver_groups": ["security"], "max_duration": "4h", "auto_approve": True},
        "grants.auto_approve",
        "unknown field",
        id="unknown grants field",
    ),
    pytest.param(("grants",), ["security"], "grants", "must be a mapping", id="grants as a list"),
    pytest.param(("grants",), None, "grants", "must be a mapping", id="grants null"),
    pytest.param(
        ("break_glass",),
        {"groups": []},
        "break_glass.groups",
        "non-empty list",
        id="break_glass without groups",
    ),
    pytest.param(
        ("break_glass",),
        {},
        "break_glass.groups",
        "non-empty list",
        id="break_glass groups missing",
    ),
    pytest.param(
        ("break_glass",),
        {"groups": ["oncall"], "require_justification": 1},
        "break_glass.require_justification",
        "true or false",
        id="break_glass require_justification 1",
    ),
    pytest.param(
        ("break_glass",),
        {"groups": ["oncall"], "require_justification": None},
        "break_glass.require_justification",
        "true or false",
        id="break_glass require_justification null",
    ),
    pytest.param(
        ("break_glass",),
        {"groups": ["oncall"], "ttl": "1h"},
        "break_glass.ttl",
        "unknown field",
        id="unknown break_glass field",
    ),
    pytest.param(
        ("break_glass",), "oncall", "break_glass", "must be a mapping", id="break_glass a string"
    ),
    pytest.param(
        ("break_glass",),
        {"groups": ["oncall"], "require_justification": "no"},
        "break_glass.require_justification",
        "true or false",
        id="break_glass require_justification not a boolean",
    ),
]


@pytest.mark.parametrize(("path", "value", "location", "message"), INVALID_FIELDS)
def test_invalid_field_is_reported_at_its_location(
    path: tuple[Any, ...], value: Any, location: str, message: str
) -> None:
    problems = problems_of(mutated(path, value))

    assert any(where == location and message in text for where, text in problems), problems


@pytest.mark.parametrize(
    "document",
    [None, [], "version: 1", 1],
    ids=["null", "list", "string", "number"],
)
def test_a_document_that_is_not_a_mapping_is_refused(document: Any) -> None:
    assert problems_of(document) == [("", "a policy must be a mapping")]


def test_several_problems_are_all_reported_at_once() -> None:
    document = valid_document()
    document["version"] = 3
    document["routes"][0]["upstream"] = "ftp://x"
    document["routes"][1]["host"] = "Admin.example.com"
    document["rules"][0]["actions"] = ["FETCH"]
    document["rules"][0]["when"] = {"mfa": "yes"}
    document["rules"][1]["effect"] = "permit"

    locations = [where for where, _ in problems_of(document)]

    assert set(locations) >= {
        "version",
        "routes[demo].upstream",
        "routes[admin].host",
        "rules[eng-read].actions",
        "rules[eng-read].when.mfa",
        "rules[no-admin-delete].effect",
    }


def test_policy_invalid_names_the_source_and_each_problem() -> None:
    document = mutated(("rules", 0, "effect"), "permit")

    with pytest.raises(PolicyInvalid) as caught:
        parse_policy(document, source_name="prod.yaml")

    assert caught.value.source_name == "prod.yaml"
    assert "prod.yaml: rules[eng-read].effect: must be allow or deny" in str(caught.value)


# --- checksum ----------------------------------------------------------------------------


def reordered(value: Any) -> Any:
    """The same document with every mapping's keys in reverse order."""
    if isinstance(value, dict):
        return {key: reordered(value[key]) for key in reversed(list(value))}
    if isinstance(value, list):
        return [reordered(item) for item in value]
    return value


def test_checksum_is_sha256_hex() -> None:
    checksum = parse_policy(valid_document()).checksum

    assert re.fullmatch(r"sha256:[0-9a-f]{64}", checksum)


def test_checksum_is_stable_under_key_reordering() -> None:
    document = valid_document()
    shuffled = reordered(document)
    assert list(shuffled) != list(document)

    assert parse_policy(shuffled).checksum == parse_policy(document).checksum


@pytest.mark.parametrize(
    ("path", "value"),
    [
        (("rules", 0, "actions"), ["GET"]),
        (("routes", 0, "upstream"), "http://127.0.0.1:9001"),
        (("rules", 0, "subjects", "groups"), ["engineering", "ops"]),
        (("routes", 1, "sensitive"), False),
        (("rules", 0, "when"), {"mfa": True}),
        (("rules", 0, "subjects", "claims"), {"department": "security"}),
        (("grants",), {"approver_groups": ["security"], "max_duration": "4h"}),
        (("break_glass",), {"groups": ["oncall"]}),
    ],
    ids=["actions", "upstream", "groups", "sensitive flag", "when", "claims", "grants", "glass"],
)
def test_checksum_changes_when_content_changes(path: tuple[Any, ...], value: Any) -> None:
    original = parse_policy(valid_document()).checksum

    assert parse_policy(mutated(path, value)).checksum != original


# --- claims, issuers, conditions, grants, break-glass, accepted -----------------------------------


def test_conditions_claims_issuers_grants_and_break_glass_are_parsed() -> None:
    document = valid_document()
    document["rules"][0]["subjects"] = {
        "claims": {"department": ["security", "it"], "level": 3},
        "issuers": ["https://idp.example.com/"],
    }
    document["rules"][0]["when"] = {
        "mfa": True,
        "max_auth_age": "1h30m",
        "source_cidrs": ["10.0.0.0/8", "::ffff:192.0.2.0/120"],
        "hours": {"tz": "Europe/Berlin", "days": ["fri"], "from": "22:00", "to": "06:00"},
    }
    document["grants"] = {"approver_groups": ["security"], "max_duration": "4h"}
    document["break_glass"] = {"groups": ["oncall"]}

    policy = parse_policy(document)

    rule = policy.rules[0]
    assert rule.subjects.claims == (
        ("department", frozenset({'"security"', '"it"'})),
        ("level", frozenset({"3"})),
    )
    assert rule.subjects.issuers == frozenset({"https://idp.example.com"})
    conditions = rule.conditions
    assert conditions.mfa is True
    assert conditions.max_auth_age == 5400
    assert conditions.source_cidrs is not None
    assert [str(n) for n in conditions.source_cidrs.networks] == ["10.0.0.0/8", "192.0.2.0/24"]
    assert conditions.hours is not None
    assert (conditions.hours.days, conditions.hours.start, conditions.hours.end) == (
        frozenset({4}),
        22 * 60,
        6 * 60,
    )
    assert policy.grants is not None
    assert policy.grants.max_duration_seconds == 4 * 3600
    assert policy.break_glass is not None
    assert policy.break_glass.require_justification is True


def with_when(when: dict[str, Any], index: int = 0) -> dict[str, Any]:
    return mutated(("rules", index, "when"), when)


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        pytest.param(1, 1, id="one second as a number"),
        pytest.param(3600, 3600, id="seconds as a number"),
        pytest.param("90s", 90, id="seconds"),
        pytest.param("30m", 1800, id="minutes"),
        pytest.param("1h", 3600, id="hour"),
        pytest.param("1h30m", 5400, id="hours and minutes"),
        pytest.param("1d", 86400, id="day"),
        pytest.param("2d3h4m5s", 2 * 86400 + 3 * 3600 + 4 * 60 + 5, id="every unit"),
        pytest.param("0h15m", 900, id="a zero part"),
    ],
)
def test_max_auth_age_accepts_seconds_and_durations(value: Any, seconds: int) -> None:
    rule = parse_policy(with_when({"max_auth_age": value}, 0)).rules[0]
    assert rule.conditions.max_auth_age == seconds
    assert not rule.conditions.empty


@pytest.mark.parametrize(
    ("hours", "days", "start", "end"),
    [
        pytest.param({"tz": "UTC"}, set(range(7)), 0, 1440, id="defaults: every day, all day"),
        pytest.param(
            {"tz": "Europe/Berlin", "days": ["sat", "sun"]}, {5, 6}, 0, 1440, id="weekend"
        ),
        pytest.param({"tz": "UTC", "from": "22:00"}, set(range(7)), 1320, 1440, id="to midnight"),
        pytest.param({"tz": "UTC", "to": "06:30"}, set(range(7)), 0, 390, id="from midnight"),
        pytest.param(
            {"tz": "UTC", "days": ["fri"], "from": "22:00", "to": "06:00"},
            {4},
            1320,
            360,
            id="crossing midnight",
        ),
        pytest.param(
            {"tz": "UTC", "from": "18:00", "to": "24:00"}, set(range(7)), 1080, 1440, id="24:00"
        ),
        pytest.param(
            {"tz": "UTC", "from": "22:00", "to": "00:00"},
            set(range(7)),
            1320,
            0,
            id="ending at 00:00 crosses midnight",
        ),
        pytest.param(
            {"tz": "UTC", "days": ["mon", "mon", "tue"]}, {0, 1}, 0, 1440, id="repeated day"
        ),
        pytest.param(
            {"tz": "America/New_York", "from": "00:00", "to": "23:59"},
            set(range(7)),
            0,
            1439,
            id="last minute",
        ),
    ],
)
def test_hours_are_parsed_with_their_defaults(
    hours: dict[str, Any], days: set[int], start: int, end: int
) -> None:
    parsed = parse_policy(with_when({"hours": hours})).rules[0].conditions.hours

    assert parsed is not None
    assert str(parsed.zone) == hours["tz"]
    assert (parsed.days, parsed.start, parsed.end) == (frozenset(days), start, end)


@pytest.mark.parametrize(
    ("cidrs", "networks"),
    [
        pytest.param(["10.0.0.0/8"], ["10.0.0.0/8"], id="ipv4"),
        pytest.param([" 192.0.2.0/24 "], ["192.0.2.0/24"], id="whitespace"),
        pytest.param(["192.0.2.7"], ["192.0.2.7/32"], id="bare address"),
        pytest.param(["2001:db8::/32"], ["2001:db8::/32"], id="ipv6"),
        pytest.param(["::ffff:10.0.0.0/104"], ["10.0.0.0/8"], id="ipv4-mapped"),
        pytest.param(
            ["10.0.0.0/8", "10.0.0.0/8", "::/0"], ["10.0.0.0/8", "10.0.0.0/8", "::/0"], id="mixed"
        ),
    ],
)
def test_source_cidrs_are_parsed(cidrs: list[str], networks: list[str]) -> None:
    parsed = parse_policy(with_when({"source_cidrs": cidrs})).rules[0].conditions.source_cidrs

    assert parsed is not None
    assert [str(network) for network in parsed.networks] == networks


@pytest.mark.parametrize(
    ("mfa", "empty"), [(True, False), (False, True)], ids=["mfa true", "mfa false"]
)
def test_mfa_false_is_no_condition(mfa: bool, empty: bool) -> None:
    conditions = parse_policy(with_when({"mfa": mfa})).rules[0].conditions

    assert conditions.mfa is mfa
    assert conditions.empty is empty


@pytest.mark.parametrize(
    ("claims", "expected"),
    [
        pytest.param({"dept": "it"}, (("dept", {'"it"'}),), id="string"),
        pytest.param({"level": 3}, (("level", {"3"}),), id="integer"),
        pytest.param({"admin": True}, (("admin", {"true"}),), id="boolean"),
        pytest.param({"level": -(2**53) + 1}, (("level", {str(-(2**53) + 1)}),), id="least int"),
        pytest.param(
            {"tag": [1, "1", True]}, (("tag", {"1", '"1"', "true"}),), id="kinds kept apart"
        ),
        pytest.param({"tag": 'a"b'}, (("tag", {'"a\\"b"'}),), id="quote escaped"),
        pytest.param(
            {"z": "last", "a": "first"},
            (("a", {'"first"'}), ("z", {'"last"'})),
            id="sorted by name",
        ),
        pytest.param(
            {"https://example.com/roles": "admin"},
            (("https://example.com/roles", {'"admin"'}),),
            id="namespaced claim",
        ),
        pytest.param({"acr": "gold"}, (("acr", {'"gold"'}),), id="unregistered claim"),
    ],
)
def test_claims_are_parsed_into_canonical_values(
    claims: dict[str, Any], expected: tuple[tuple[str, set[str]], ...]
) -> None:
    subjects = parse_policy(mutated(("rules", 0, "subjects"), {"claims": claims})).rules[0].subjects

    assert subjects.claims == tuple((name, frozenset(values)) for name, values in expected)
    assert not subjects.anyone


@pytest.mark.parametrize(
    ("issuers", "expected"),
    [
        pytest.param(["https://idp.example.com"], {"https://idp.example.com"}, id="plain"),
        pytest.param(["https://idp.example.com/"], {"https://idp.example.com"}, id="slash"),
        pytest.param(
            ["https://a.example", "https://b.example/"],
            {"https://a.example", "https://b.example"},
            id="two",
        ),
    ],
)
def test_issuers_are_parsed(issuers: list[str], expected: set[str]) -> None:
    subjects = (
        parse_policy(mutated(("rules", 0, "subjects"), {"issuers": issuers})).rules[0].subjects
    )

    assert subjects.issuers == frozenset(expected)
    assert not subjects.anyone


@pytest.mark.parametrize(
    ("max_duration", "seconds"),
    [
        pytest.param("4h", 4 * 3600, id="hours"),
        pytest.param(60, 60, id="seconds as a number"),
        pytest.param("7d", 7 * 86400, id="a week exactly"),
        pytest.param(7 * 86400, 7 * 86400, id="a week in seconds"),
        pytest.param("168h", 7 * 86400, id="a week in hours"),
        pytest.param("6d23h59m59s", 7 * 86400 - 1, id="a second under a week"),
    ],
)
def test_grants_block_is_parsed(max_duration: Any, seconds: int) -> None:
    document = valid_document()
    document["grants"] = {"approver_groups": ["security", "sre"], "max_duration": max_duration}

    grants = parse_policy(document).grants

    assert grants is not None
    assert grants.approver_groups == frozenset({"security", "sre"})
    assert grants.max_duration_seconds == seconds


@pytest.mark.parametrize(
    ("block", "required"),
    [
        pytest.param({"groups": ["oncall"]}, True, id="justification required by default"),
        pytest.param({"groups": ["oncall"], "require_justification": True}, True, id="required"),
        pytest.param(
            {"groups": ["oncall"], "require_justification": False}, False, id="not required"
        ),
    ],
)
def test_break_glass_block_is_parsed(block: dict[str, Any], required: bool) -> None:
    document = valid_document()
    document["break_glass"] = block

    break_glass = parse_policy(document).break_glass

    assert break_glass is not None
    assert break_glass.groups == frozenset({"oncall"})
    assert break_glass.require_justification is required


def test_a_policy_without_grants_or_break_glass_has_neither() -> None:
    policy = parse_policy(valid_document())

    assert (policy.grants, policy.break_glass) == (None, None)
    assert all(rule.conditions.empty for rule in policy.rules)
    assert all(rule.subjects.claims == () for rule in policy.rules)


def test_problems_in_every_new_field_are_reported_at_once() -> None:
    document = valid_document()
    document["rules"][0]["subjects"]["claims"] = {"exp": 1}
    document["rules"][0]["subjects"]["issuers"] = []
    document["rules"][0]["when"] = {
        "mfa": "yes",
        "max_auth_age": 0,
        "source_cidrs": ["10.0.0.1/8"],
        "hours": {"tz": "Mars/Olympus", "days": ["someday"]},
    }
    document["grants"] = {"approver_groups": [], "max_duration": "forever"}
    document["break_glass"] = {"groups": ["oncall"], "require_justification": "no"}

    locations = {where for where, _ in problems_of(document)}

    assert locations >= {
        "rules[eng-read].subjects.claims.exp",
        "rules[eng-read].subjects.issuers",
        "rules[eng-read].when.mfa",
        "rules[eng-read].when.max_auth_age",
        "rules[eng-read].when.source_cidrs",
        "rules[eng-read].when.hours.tz",
        "rules[eng-read].when.hours.days",
        "grants.approver_groups",
        "grants.max_duration",
        "break_glass.require_justification",
    }


OFFICE_YAML = """
version: 1
routes:
  - {id: demo, upstream: "http://127.0.0.1:9000", audience: demo}
rules:
  - id: office
    effect: allow
    routes: [demo]
    actions: [GET]
    when:
      hours: {tz: Europe/Berlin, days: [mon], from: 08:00, to: TO}
"""


def test_an_unquoted_yaml_end_time_is_refused_not_misread() -> None:
    # YAML 1.1 reads 18:00 as the number 1080 (base 60); 08:00 stays a string.
    quoted = parse_policy(yaml.safe_load(OFFICE_YAML.replace("TO", '"18:00"')))
    hours = quoted.rules[0].conditions.hours
    assert hours is not None
    assert (hours.start, hours.end) == (480, 1080)

    problems = problems_of(yaml.safe_load(OFFICE_YAML.replace("TO", "18:00")))

    assert len(problems) == 1
    where, message = problems[0]
    assert where.startswith("rules[office].when.hours")
    assert "quoted" in message


def test_route_prefixes_differing_only_in_case_are_refused() -> None:
    document = valid_document()
    shadowing = dict(document["routes"][1], id="shouting", path_prefix="/ADMIN")
    document["routes"].append(shadowing)

    with pytest.raises(
        PolicyInvalid,
        match=r"routes\[shouting\]\.path_prefix: ./ADMIN. differs .* only in letter case",
    ):
        parse_policy(document)


def test_route_prefixes_equal_under_case_on_other_hosts_are_fine() -> None:
    document = valid_document()
    document["routes"].append(
        dict(document["routes"][1], id="other", host="*", path_prefix="/ADMIN")
    )

    assert [route.id for route in parse_policy(document).routes][-1] == "other"


DENY_FORMAT_SUFFIX = [
    pytest.param("/api/billing.json", True, id="format suffix"),
    pytest.param("/api/billing.csv/", True, id="format suffix and slash"),
    pytest.param("/api/BILLING.JSON", True, id="any case"),
    pytest.param("/api/billing/x.json", True, id="below, with a suffix"),
    pytest.param("/api/billingx.json", False, id="another name"),
    pytest.param("/api/billing.json.x/y", False, id="not the last segment"),
    pytest.param("/api/billing.a_b", True, id="any suffix characters"),
    pytest.param("/api/billing.abcdefghijkl", True, id="long suffix"),
    pytest.param("/api/billing.j\u00e9", True, id="non-ASCII suffix"),
    pytest.param("/api/billing.json.gz", True, id="two suffixes"),
]


@pytest.mark.parametrize(("path", "denied"), DENY_FORMAT_SUFFIX)
def test_a_deny_also_matches_its_paths_with_a_format_suffix(path: str, denied: bool) -> None:
    document = valid_document()
    document["rules"] = [
        {
            "id": "no-billing",
            "effect": "deny",
            "routes": ["demo"],
            "actions": ["GET"],
            "paths": ["/api/billing/**"],
        },
        {
            "id": "exact-allow",
            "effect": "allow",
            "routes": ["demo"],
            "actions": ["GET"],
            "paths": ["/api/billing"],
        },
    ]
    deny, allow = parse_policy(document).rules

    assert deny.matches_path(path) is denied
    assert not allow.matches_path("/api/billing.json")  # allows stay exact
