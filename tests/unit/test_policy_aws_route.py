"""Routes with an AWS upstream: the ``aws`` block is validated strictly (parser and schema)."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from chalicelib.policy import AwsUpstream, PolicyInvalid, parse_policy

ROOT = Path(__file__).resolve().parents[2]
SCHEMA = jsonschema.Draft202012Validator(
    json.loads((ROOT / "docs" / "policy.schema.json").read_text())
)
ROLE = "arn:aws:iam::123456789012:role/gatehouse-upstream-orders"
PATHED_ROLE = "arn:aws:iam::123456789012:role/team/api/gatehouse-upstream-caller+x=y,z.q@w-v_1"


def document(route: dict[str, Any] | None = None, aws: Any = None) -> dict[str, Any]:
    base: dict[str, Any] = {
        "id": "orders",
        "path_prefix": "/orders",
        "upstream": "https://abc123.execute-api.us-east-1.amazonaws.com/prod",
        "audience": "orders",
        "aws": {"role_arn": ROLE, "service": "execute-api", "region": "us-east-1"},
    }
    base.update(route or {})
    if aws is not None:
        base["aws"] = copy.deepcopy(aws)
    return {"version": 1, "routes": [base]}


def problems(doc: dict[str, Any]) -> list[tuple[str, str]]:
    with pytest.raises(PolicyInvalid) as caught:
        parse_policy(doc)
    return [(p.location, p.message) for p in caught.value.problems]


@pytest.mark.parametrize(
    ("aws", "route", "expected"),
    [
        ({}, {}, AwsUpstream(ROLE, "execute-api", "us-east-1")),
        (
            {"role_arn": PATHED_ROLE},
            {},
            AwsUpstream(PATHED_ROLE, "execute-api", "us-east-1"),
        ),
        (
            {"service": "lambda", "region": "eu-central-1"},
            {"upstream": "https://xyz.lambda-url.eu-central-1.on.aws"},
            AwsUpstream(ROLE, "lambda", "eu-central-1"),
        ),
        (
            {
                "role_arn": "arn:aws-cn:iam::123456789012:role/gatehouse-upstream-r",
                "region": "cn-north-1",
            },
            {},
            AwsUpstream(
                "arn:aws-cn:iam::123456789012:role/gatehouse-upstream-r",
                "execute-api",
                "cn-north-1",
            ),
        ),
        (
            {
                "role_arn": "arn:aws-us-gov:iam::123456789012:role/gatehouse-upstream-r",
                "region": "us-gov-west-1",
            },
            {},
            AwsUpstream(
                "arn:aws-us-gov:iam::123456789012:role/gatehouse-upstream-r",
                "execute-api",
                "us-gov-west-1",
            ),
        ),
        ({}, {"upstream": "http://127.0.0.1:9000/aws-upstream"}, None),
        ({}, {"upstream": "http://localhost:9000"}, None),
        ({}, {"upstream": "http://[::1]:9000"}, None),
    ],
    ids=[
        "execute-api",
        "role-path",
        "lambda-url",
        "china",
        "govcloud",
        "loopback",
        "localhost",
        "ipv6-loopback",
    ],
)
def test_valid_aws_routes_parse_and_pass_the_schema(
    aws: dict[str, Any], route: dict[str, Any], expected: AwsUpstream | None
) -> None:
    block = {"role_arn": ROLE, "service": "execute-api", "region": "us-east-1", **aws}
    doc = document(route, block)

    parsed = parse_policy(doc).routes[0]

    assert parsed.aws == (expected or AwsUpstream(ROLE, "execute-api", "us-east-1"))
    assert list(SCHEMA.iter_errors(doc)) == []


def test_a_route_without_aws_has_none() -> None:
    doc = document()
    del doc["routes"][0]["aws"]

    assert parse_policy(doc).routes[0].aws is None


BAD = [
    # (name, route changes, aws block, location, message fragment, schema also refuses)
    ("not a mapping", {}, "arn", "aws", "must be a mapping", True),
    ("unknown field", {}, {"external_id": "x"}, "aws.external_id", "unknown field", True),
    ("role missing", {}, {"role_arn": None}, "aws.role_arn", "IAM role ARN", True),
    (
        "user not role",
        {},
        {"role_arn": "arn:aws:iam::123456789012:user/bob"},
        "aws.role_arn",
        "IAM role ARN",
        True,
    ),
    (
        "short account",
        {},
        {"role_arn": "arn:aws:iam::12345:role/gatehouse-upstream-r"},
        "aws.role_arn",
        "IAM role ARN",
        True,
    ),
    (
        "sts arn",
        {},
        {"role_arn": "arn:aws:sts::123456789012:assumed-role/r/s"},
        "aws.role_arn",
        "IAM role ARN",
        True,
    ),
    (
        "bad partition",
        {},
        {"role_arn": "arn:aws-xx:iam::123456789012:role/gatehouse-upstream-r"},
        "aws.role_arn",
        "IAM role ARN",
        True,
    ),
    (
        "name too long",
        {},
        {"role_arn": "arn:aws:iam::123456789012:role/gatehouse-upstream-" + "r" * 46},
        "aws.role_arn",
        "IAM role ARN",
        True,
    ),
    (
        "name bad char",
        {},
        {"role_arn": "arn:aws:iam::123456789012:role/gatehouse-upstream-a b"},
        "aws.role_arn",
        "IAM role ARN",
        True,
    ),
    ("trailing newline", {}, {"role_arn": ROLE + "\n"}, "aws.role_arn", "IAM role ARN", False),
    (
        "another role name",
        {},
        {"role_arn": "arn:aws:iam::123456789012:role/Admin"},
        "aws.role_arn",
        "starts with gatehouse-upstream-",
        True,
    ),
    (
        "a wildcard in the path",
        {},
        {"role_arn": "arn:aws:iam::123456789012:role/gatehouse-upstream-*/gatehouse-upstream-x"},
        "aws.role_arn",
        "without wildcards",
        True,
    ),
    (
        "a question mark in the path",
        {},
        {"role_arn": "arn:aws:iam::123456789012:role/a?/gatehouse-upstream-x"},
        "aws.role_arn",
        "without wildcards",
        True,
    ),
    ("sts", {}, {"service": "sts"}, "aws.service", "sts cannot be an upstream", True),
    ("s3", {}, {"service": "s3"}, "aws.service", "s3 cannot be an upstream", True),
    (
        "cognito identity",
        {},
        {"service": "cognito-identity"},
        "aws.service",
        "its answers are credentials",
        True,
    ),
    ("service upper", {}, {"service": "Execute-API"}, "aws.service", "signing name", True),
    (
        "service url",
        {},
        {"service": "execute-api.amazonaws.com"},
        "aws.service",
        "signing name",
        True,
    ),
    ("service empty", {}, {"service": ""}, "aws.service", "signing name", True),
    ("region nonsense", {}, {"region": "moon"}, "aws.region", "AWS region", True),
    ("region number", {}, {"region": 1}, "aws.region", "AWS region", True),
    (
        "region wrong partition",
        {},
        {"region": "cn-north-1"},
        "aws.region",
        "partition 'aws'",
        False,
    ),
    (
        "http off loopback",
        {"upstream": "http://orders.internal"},
        {},
        "upstream",
        "must be https",
        False,
    ),
    (
        "http private ip",
        {"upstream": "http://10.0.0.5:8080"},
        {},
        "upstream",
        "must be https",
        False,
    ),
    ("pass authorization", {"pass_authorization": True}, {}, "pass_authorization", "SigV4", True),
]


@pytest.mark.parametrize(
    ("route", "aws", "location", "fragment", "schema_refuses"),
    [case[1:] for case in BAD],
    ids=[case[0] for case in BAD],
)
def test_invalid_aws_routes_are_refused_with_their_location(
    route: dict[str, Any], aws: Any, location: str, fragment: str, schema_refuses: bool
) -> None:
    if isinstance(aws, dict):
        block: Any = {"role_arn": ROLE, "service": "execute-api", "region": "us-east-1"}
        for name, value in aws.items():
            if value is None:
                del block[name]
            else:
                block[name] = value
    else:
        block = aws
    doc = document(route, block)

    found = problems(doc)

    assert any(
        where == f"routes[orders].{location}" and fragment in message for where, message in found
    ), found
    if schema_refuses:
        assert list(SCHEMA.iter_errors(doc)) != []


def test_every_aws_problem_is_reported_at_once() -> None:
    doc = document(
        {"upstream": "http://orders.internal", "pass_authorization": True},
        {"role_arn": "x", "service": "X", "region": "y"},
    )

    locations = {where for where, _ in problems(doc)}

    assert {
        "routes[orders].upstream",
        "routes[orders].pass_authorization",
        "routes[orders].aws.role_arn",
        "routes[orders].aws.service",
        "routes[orders].aws.region",
    } <= locations
