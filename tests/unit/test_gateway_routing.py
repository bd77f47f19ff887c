"""The local gateway picks the resource API Gateway would: literal, then parameter, then greedy.

The definition is generated from the real Chalice app, as ``chalice deploy``
would import it, so these cases also pin which routes sit behind the
authorizer: the grant API and the JWKS do not (they answer for themselves).
"""

from __future__ import annotations

import pytest

import app
from gatehouse.dev.gateway import ApiDefinition, load_api_definition

GRANT_ID = "01a223c4-9e94-74b6-80d1-3a77d8d34270"


@pytest.fixture(scope="module")
def definition() -> ApiDefinition:
    return load_api_definition(app, None)


@pytest.mark.parametrize(
    ("path", "resource", "parameters"),
    [
        ("/", "/", {}),
        ("/api/x", "/{proxy+}", {"proxy": "api/x"}),
        ("/.well-known/gatehouse/jwks.json", "/.well-known/gatehouse/jwks.json", {}),
        ("/.gatehouse/grants", "/.gatehouse/grants", {}),
        (
            f"/.gatehouse/grants/{GRANT_ID}/approve",
            "/.gatehouse/grants/{grant_id}/approve",
            {"grant_id": GRANT_ID},
        ),
        ("/.gatehouse/grants/a%2Fb/revoke", "/.gatehouse/grants/{grant_id}/revoke",
         {"grant_id": "a/b"}),
        # Anything else under the prefix is not a grant route: the proxy (and the policy) decide.
        ("/.gatehouse/grants//approve", "/{proxy+}", {"proxy": ".gatehouse/grants//approve"}),
        ("/.gatehouse/grants/x/escalate", "/{proxy+}", {"proxy": ".gatehouse/grants/x/escalate"}),
        ("/.gatehouse/grants/x/y/approve", "/{proxy+}", {"proxy": ".gatehouse/grants/x/y/approve"}),
        ("/.gatehouse/grants/", "/{proxy+}", {"proxy": ".gatehouse/grants/"}),
    ],
)  # fmt: skip
def test_the_most_specific_resource_serves_the_path(
    definition: ApiDefinition, path: str, resource: str, parameters: dict[str, str]
) -> None:
    found = definition.resource_for(path)

    assert found is not None
    assert (found[0].path, found[1]) == (resource, parameters)


@pytest.mark.parametrize(
    ("resource", "methods", "authorized"),
    [
        ("/{proxy+}", {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"}, True),
        ("/.gatehouse/grants", {"GET", "POST"}, False),
        ("/.gatehouse/grants/{grant_id}/approve", {"POST"}, False),
        ("/.well-known/gatehouse/jwks.json", {"GET"}, False),
    ],
)
def test_which_methods_are_behind_the_authorizer(
    definition: ApiDefinition, resource: str, methods: set[str], authorized: bool
) -> None:
    [declared] = [r for r in definition.resources if r.path == resource]

    assert set(declared.methods) == methods
    assert {m: a is not None for m, a in declared.methods.items()} == dict.fromkeys(
        methods, authorized
    )
