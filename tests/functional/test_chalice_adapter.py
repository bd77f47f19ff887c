"""The Chalice 1.34 adapters: REQUEST authorizer and raw proxy routes, as deployed.

``chalice package`` runs as a subprocess on a copy of the app (with an empty
requirements.txt, so nothing is downloaded) and the generated API definition
is checked. Should a Chalice upgrade break the swagger hook, these fail.

That the REQUEST handler receives the whole event (headers, source IP,
request id, Lambda context) is shown in
``test_authorizer.py::test_handler_sees_headers_source_ip_and_request_id_of_the_event``.
"""

from __future__ import annotations

import copy
import json
import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import TYPE_CHECKING, Any

import chalice
import pytest

import app
from chalicelib.apigw import chalice_adapter
from chalicelib.apigw.chalice_adapter import (
    PINNED_CHALICE_VERSION,
    AdapterVersionError,
    install_swagger_hook,
)
from tests.functional.conftest import SIGN_IN_ROUTES, queued_events
from tests.helpers import make_token

if TYPE_CHECKING:
    from chalicelib.container import Container
    from gatehouse.dev.bootstrap import Resources

ROOT = Path(__file__).resolve().parents[2]
CHALICE = Path(sys.executable).with_name("chalice")
PROXY_METHODS = {"get", "head", "post", "put", "patch", "delete", "options"}
AUTHORIZER = "gatehouse_authorizer"


def _package(tmp: Path, stage: str) -> subprocess.Popen[bytes]:
    project = tmp / stage
    project.mkdir()
    skip = shutil.ignore_patterns("__pycache__", "deployments")
    shutil.copy(ROOT / "app.py", project / "app.py")
    shutil.copytree(ROOT / "chalicelib", project / "chalicelib", ignore=skip)
    shutil.copytree(ROOT / ".chalice", project / ".chalice", ignore=skip)
    (project / "requirements.txt").write_text("")
    config_path = project / ".chalice" / "config.json"
    config = json.loads(config_path.read_text())
    if stage == "cached":
        # A stage that turns API Gateway's authorizer cache on.
        cached = copy.deepcopy(config["stages"]["dev"])
        cached["environment_variables"]["GATEHOUSE_AUTHORIZER_TTL_SECONDS"] = "300"
        config["stages"]["cached"] = cached
    config_path.write_text(json.dumps(config))
    env = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("AWS_", "GATEHOUSE_"))
    }
    env.update(
        AWS_DEFAULT_REGION="us-east-1",
        AWS_CONFIG_FILE=os.devnull,
        AWS_SHARED_CREDENTIALS_FILE=os.devnull,
    )
    return subprocess.Popen(
        [str(CHALICE), "package", "--stage", stage, "out"],
        cwd=project,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )


@pytest.fixture(scope="module")
def packaged(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, Any]]:
    """The generated API definition of the ``dev`` stage (TTL 0) and a ``cached`` stage (TTL 300).

    Both ``chalice package`` runs go in parallel.
    """
    tmp = tmp_path_factory.mktemp("package")
    runs = {stage: _package(tmp, stage) for stage in ("dev", "cached")}
    definitions = {}
    for stage, run in runs.items():
        output, _ = run.communicate(timeout=120)
        assert run.returncode == 0, output.decode()
        template = json.loads((tmp / stage / "out" / "sam.json").read_text())
        definitions[stage] = template
    return definitions


def api_definition(template: dict[str, Any]) -> dict[str, Any]:
    definition: dict[str, Any] = template["Resources"]["RestAPI"]["Properties"]["DefinitionBody"]
    return definition


@pytest.mark.parametrize(
    ("stage", "ttl", "identity_source"),
    [("dev", 0, None), ("cached", 300, "method.request.header.Authorization")],
)
def test_authorizer_is_declared_as_a_request_authorizer(
    packaged: dict[str, dict[str, Any]], stage: str, ttl: int, identity_source: str | None
) -> None:
    template = packaged[stage]
    declared = api_definition(template)["securityDefinitions"][AUTHORIZER]
    authorizer = declared["x-amazon-apigateway-authorizer"]
    assert authorizer["type"] == "request"
    assert authorizer["authorizerResultTtlInSeconds"] == ttl
    # With caching off there must be no identity source: API Gateway would answer a request
    # without the header with 401 itself, unaudited.
    assert authorizer.get("identitySource") == identity_source
    assert "GatehouseAuthorizer.Arn" in authorizer["authorizerUri"]["Fn::Sub"]
    function = template["Resources"]["GatehouseAuthorizer"]["Properties"]
    assert function["Handler"] == "app.gatehouse_authorizer"


def test_proxy_routes_take_every_method_behind_the_authorizer(
    packaged: dict[str, dict[str, Any]],
) -> None:
    template = packaged["dev"]
    definition = api_definition(template)
    grant_routes = {
        "/.gatehouse/grants",
        "/.gatehouse/grants/{grant_id}/approve",
        "/.gatehouse/grants/{grant_id}/deny",
        "/.gatehouse/grants/{grant_id}/revoke",
    }
    assert set(definition["paths"]) == {
        "/",
        "/{proxy+}",
        "/.well-known/gatehouse/jwks.json",
        "/.well-known/gatehouse/key-certificates.json",
        *grant_routes,
        *SIGN_IN_ROUTES,
        "/.gatehouse/health",
    }
    # Health says nothing about anyone: open, GET and HEAD only.
    health = definition["paths"]["/.gatehouse/health"]
    assert set(health) == {"get", "head"}
    assert all("security" not in operation for operation in health.values())
    # Sign-in is how a person gets credentials: never behind the authorizer.
    for path, methods in SIGN_IN_ROUTES.items():
        operations = definition["paths"][path]
        assert set(operations) == methods, path
        assert all("security" not in operation for operation in operations.values()), path
    # The grant API verifies tokens itself: a grant action is not access to a route.
    for path in grant_routes:
        operations = definition["paths"][path]
        assert set(operations) == ({"get", "post"} if path == "/.gatehouse/grants" else {"post"})
        assert all("security" not in operation for operation in operations.values()), path
    for path in ("/", "/{proxy+}"):
        operations = definition["paths"][path]
        assert set(operations) == PROXY_METHODS, path
        for method, operation in operations.items():
            assert operation["security"] == [{AUTHORIZER: []}], (path, method)
            assert operation["consumes"] == ["*/*"], (path, method)
            integration = operation["x-amazon-apigateway-integration"]
            assert integration["type"] == "aws_proxy"
            assert "APIHandler.Arn" in integration["uri"]["Fn::Sub"]
    for published in ("jwks.json", "key-certificates.json"):
        keys = definition["paths"][f"/.well-known/gatehouse/{published}"]
        assert set(keys) == {"get"}
        assert "security" not in keys["get"]
    assert definition["x-amazon-apigateway-binary-media-types"] == ["*/*"]
    assert template["Resources"]["APIHandler"]["Properties"]["Handler"] == "app.app"


def test_chalice_is_the_version_the_adapter_is_pinned_to() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    pins = [
        requirement.split("==", 1)[1]
        for requirement in project["project"]["optional-dependencies"]["cli"]
        if requirement.split("==", 1)[0].strip().lower() == "chalice"
    ]
    assert pins == [PINNED_CHALICE_VERSION]
    assert chalice.__version__ == PINNED_CHALICE_VERSION


def test_swagger_hook_refuses_another_chalice_version(monkeypatch: pytest.MonkeyPatch) -> None:
    """An upgraded Chalice must fail loudly at ``chalice package`` time, not deploy silently."""
    monkeypatch.setattr(chalice_adapter.chalice, "__version__", "1.35.0")

    with pytest.raises(AdapterVersionError, match=r"1\.34\.0"):
        install_swagger_hook()


def test_token_shaped_event_is_refused_never_allowed(
    stage: Container, aws: Resources, rsa_key: Any
) -> None:
    token = make_token(rsa_key, "RS256", "rsa-1")
    method_arn = "arn:aws:execute-api:us-east-1:123456789012:a1b2c3d4e5/dev/GET/api/projects/42"
    event = {"type": "TOKEN", "authorizationToken": f"Bearer {token}", "methodArn": method_arn}

    with pytest.raises(Exception) as refused:  # noqa: PT011 (any failure; checked below)
        app.gatehouse_authorizer(event, None)

    # A failure (503 at API Gateway), not a 401 and certainly not an Allow.
    assert str(refused.value) != "Unauthorized"
    assert token not in str(refused.value)
    assert all(e["decision"]["outcome"] != "allow" for e in queued_events(aws))
