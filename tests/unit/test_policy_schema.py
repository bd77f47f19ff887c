"""The published JSON schema (docs/policy.schema.json) and the validator agree.

Operators lint policies with the schema in their own CI; ``gatehouse policy
validate`` is the authority. A field the parser knows but the schema
forbids (or the other way round) would fail one of them on a good file.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from chalicelib.policy import PolicyInvalid, parse_policy

ROOT = Path(__file__).resolve().parents[2]
SCHEMA = json.loads((ROOT / "docs" / "policy.schema.json").read_text())
VALIDATOR = jsonschema.Draft202012Validator(SCHEMA)


def demo_policy() -> dict[str, Any]:
    text = (ROOT / "gatehouse" / "dev" / "demo-policy.yaml").read_text()
    document: dict[str, Any] = yaml.safe_load(text.replace("${BACKEND_URL}", "http://127.0.0.1:9"))
    return document


def every_field() -> dict[str, Any]:
    """A document that uses every field the format has."""
    return {
        "version": 1,
        "routes": [
            {
                "id": "app",
                "host": "app.example.com",
                "path_prefix": "/app",
                "upstream": "https://10.0.0.5:8443",
                "audience": "app",
                "pass_authorization": False,
                "sensitive": True,
                "aws": {
                    "role_arn": "arn:aws:iam::123456789012:role/gatehouse-upstream-app",
                    "service": "execute-api",
                    "region": "eu-central-1",
                },
            }
        ],
        "rules": [
            {
                "id": "everything",
                "effect": "allow",
                "routes": ["app"],
                "subjects": {
                    "users": ["alice@example.com", "00u1abc"],
                    "groups": ["engineering"],
                    "domains": ["example.com"],
                    "issuers": ["https://idp.example.com"],
                    "claims": {"department": ["security", "it"], "level": 3, "staff": True},
                },
                "actions": ["GET", "*"],
                "paths": ["/app/**", "/app/*/items"],
                "when": {
                    "mfa": True,
                    "max_auth_age": "1h",
                    "source_cidrs": ["10.0.0.0/8", "2001:db8::/32"],
                    "hours": {
                        "tz": "Europe/Berlin",
                        "days": ["mon", "fri"],
                        "from": "22:00",
                        "to": "06:00",
                    },
                },
            }
        ],
        "grants": {"approver_groups": ["security"], "max_duration": "4h"},
        "break_glass": {"groups": ["oncall"], "require_justification": False},
    }


def test_the_schema_is_a_valid_draft_2020_12_schema() -> None:
    jsonschema.Draft202012Validator.check_schema(SCHEMA)


@pytest.mark.parametrize("document", [every_field(), demo_policy()], ids=["every field", "demo"])
def test_good_documents_pass_both(document: dict[str, Any]) -> None:
    assert list(VALIDATOR.iter_errors(document)) == []
    parse_policy(document)


def _break(path: tuple[Any, ...], value: Any) -> dict[str, Any]:
    document = every_field()
    target: Any = document
    for step in path[:-1]:
        target = target[step]
    if value is _DELETE:
        del target[path[-1]]
    else:
        target[path[-1]] = value
    return document


_DELETE = object()


@pytest.mark.parametrize(
    ("path", "value"),
    [
        (("version",), 2),
        (("surprise",), True),
        (("routes", 0, "upstream"), _DELETE),
        (("routes", 0, "aws", "region"), _DELETE),
        (("routes", 0, "aws", "role_arn"), "arn:aws:iam::123456789012:user/app"),
        (("routes", 0, "pass_authorization"), True),
        (("rules", 0, "effect"), "permit"),
        (("rules", 0, "subjects", "team"), ["x"]),
        (("rules", 0, "subjects"), {}),
        (("rules", 0, "actions"), ["FETCH"]),
        (("rules", 0, "when", "mfa"), "yes"),
        (("rules", 0, "when", "geo"), "de"),
        (("rules", 0, "when", "hours", "days"), ["someday"]),
        (("rules", 0, "when", "max_auth_age"), "soon"),
        (("rules", 0, "subjects", "claims", "level"), {"nested": 1}),
        (("grants", "max_duration"), "forever"),
        (("grants", "approver_groups"), []),
        (("break_glass", "require_justification"), "no"),
    ],
    ids=lambda value: str(value) if not isinstance(value, tuple) else ".".join(map(str, value)),
)
def test_bad_documents_fail_both(path: tuple[Any, ...], value: Any) -> None:
    document = _break(path, value)

    assert list(VALIDATOR.iter_errors(document)) != []
    with pytest.raises(PolicyInvalid):
        parse_policy(document)
