"""The IAM policy the authorizer returns: method ARNs, documents, whole-API resources."""

from __future__ import annotations

import pytest

from chalicelib.authorize.iam import (
    MAX_RESOURCES_PER_EFFECT,
    MethodArn,
    Permission,
    policy_document,
    whole_api_resources,
)
from chalicelib.policy.model import HTTP_METHODS

BASE = "arn:aws:execute-api:us-east-1:123456789012:a1b2c3d4e5/dev"

PARSE_CASES = [
    pytest.param(f"{BASE}/GET/", "GET", "", id="root path"),
    pytest.param(f"{BASE}/GET", "GET", "", id="no path at all"),
    pytest.param(f"{BASE}/POST/api/projects/42", "POST", "api/projects/42", id="nested path"),
    pytest.param(f"{BASE}/DELETE/api/", "DELETE", "api/", id="trailing slash kept"),
    pytest.param(f"{BASE}/GET/a/b//c", "GET", "a/b//c", id="path taken verbatim"),
]


@pytest.mark.parametrize(("arn", "method", "path"), PARSE_CASES)
def test_method_arn_parse(arn: str, method: str, path: str) -> None:
    parsed = MethodArn.parse(arn)

    assert (parsed.base, parsed.method, parsed.path) == (BASE, method, path)


def test_method_arn_round_trips() -> None:
    arn = f"{BASE}/GET/api/projects/42"

    assert str(MethodArn.parse(arn)) == arn
    assert str(MethodArn.parse(f"{BASE}/GET/")) == f"{BASE}/GET/"


def test_method_arn_resource_builds_siblings() -> None:
    parsed = MethodArn.parse(f"{BASE}/GET/api/x")

    assert parsed.resource("*", "api/*") == f"{BASE}/*/api/*"
    assert parsed.resource("PUT", "") == f"{BASE}/PUT/"


INVALID_ARNS = [
    pytest.param("", id="empty"),
    pytest.param("arn:aws:lambda:us-east-1:123456789012:function:f", id="lambda ARN"),
    pytest.param("arn:aws:execute-api:", id="nothing after service"),
    pytest.param("arn:aws:execute-api:us-east-1:123456789012:a1b2c3d4e5", id="api only"),
    pytest.param("arn:aws:execute-api:us-east-1:123456789012:a1b2c3d4e5/dev", id="no method"),
    pytest.param("a1b2c3d4e5/dev/GET/api", id="no prefix"),
]


@pytest.mark.parametrize("arn", INVALID_ARNS)
def test_invalid_method_arn_is_refused(arn: str) -> None:
    with pytest.raises(ValueError, match=r"execute-api|stage and method"):
        MethodArn.parse(arn)


# --- policy_document ---------------------------------------------------------------------


def test_policy_document_puts_deny_before_allow() -> None:
    document = policy_document(allow=[f"{BASE}/GET/b", f"{BASE}/GET/a"], deny=[f"{BASE}/*/x"])

    assert document == {
        "Version": "2012-10-17",
        "Statement": [
            {"Action": "execute-api:Invoke", "Effect": "Deny", "Resource": [f"{BASE}/*/x"]},
            {
                "Action": "execute-api:Invoke",
                "Effect": "Allow",
                "Resource": [f"{BASE}/GET/a", f"{BASE}/GET/b"],
            },
        ],
    }


@pytest.mark.parametrize(
    ("allow", "deny", "effects"),
    [
        ([f"{BASE}/GET/a"], [], ["Allow"]),
        ([], [f"{BASE}/GET/a"], ["Deny"]),
        ([], [], []),
    ],
    ids=["allow only", "deny only", "neither"],
)
def test_policy_document_omits_empty_effects(
    allow: list[str], deny: list[str], effects: list[str]
) -> None:
    statements = policy_document(allow, deny)["Statement"]

    assert [statement["Effect"] for statement in statements] == effects


def test_policy_document_removes_duplicate_resources() -> None:
    (statement,) = policy_document([f"{BASE}/GET/a", f"{BASE}/GET/a"], [])["Statement"]

    assert statement["Resource"] == [f"{BASE}/GET/a"]


# --- whole_api_resources -----------------------------------------------------------------

ARN = MethodArn.parse(f"{BASE}/GET/api/x")


def allow(methods: set[str], *paths: str) -> Permission:
    return Permission(frozenset(methods), paths)


def test_whole_api_resources_lists_each_method_and_path() -> None:
    permissions = [allow({"GET", "HEAD"}, "api", "api/*"), allow({"POST"}, "api/items")]

    assert whole_api_resources(ARN, permissions) == [
        f"{BASE}/GET/api",
        f"{BASE}/GET/api/*",
        f"{BASE}/HEAD/api",
        f"{BASE}/HEAD/api/*",
        f"{BASE}/POST/api/items",
    ]


def test_all_methods_become_one_star() -> None:
    assert whole_api_resources(ARN, [allow(set(HTTP_METHODS), "*")]) == [f"{BASE}/*/*"]


def test_no_permissions_no_resources() -> None:
    assert whole_api_resources(ARN, []) == []


def many(count: int) -> list[Permission]:
    return [Permission(frozenset({"GET"}), (f"p{i}",)) for i in range(count)]


def test_at_the_limit_allows_are_listed() -> None:
    allowed = whole_api_resources(ARN, many(MAX_RESOURCES_PER_EFFECT))

    assert len(allowed) == MAX_RESOURCES_PER_EFFECT == 64


def test_more_than_64_allows_collapse_to_the_whole_api() -> None:
    assert whole_api_resources(ARN, many(MAX_RESOURCES_PER_EFFECT + 1)) == [f"{BASE}/*/*"]
