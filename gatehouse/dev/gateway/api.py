"""The API as API Gateway would have imported it, and the matching of paths to its resources.

The definition is generated from the Chalice app the way ``chalice deploy``
generates it (paths, methods, the REQUEST authorizer with its TTL and identity
sources, binary media types), with the gateway responses the deployment
installs over API Gateway's defaults.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any
from urllib.parse import unquote

# API Gateway's own responses for the types the gateway raises, before any
# customisation (infra/gateway_responses.json overrides them).
DEFAULT_GATEWAY_RESPONSES: dict[str, dict[str, Any]] = {
    "UNAUTHORIZED": {
        "statusCode": 401,
        "responseTemplates": {"application/json": '{"message":"Unauthorized"}'},
    },
    "ACCESS_DENIED": {
        "statusCode": 403,
        "responseTemplates": {"application/json": '{"Message":"$context.error.messageString"}'},
    },
    "MISSING_AUTHENTICATION_TOKEN": {
        "statusCode": 403,
        "responseTemplates": {"application/json": '{"message":"Missing Authentication Token"}'},
    },
    "AUTHORIZER_FAILURE": {
        "statusCode": 500,
        "responseTemplates": {"application/json": '{"message":null}'},
    },
    "AUTHORIZER_CONFIGURATION_ERROR": {
        "statusCode": 500,
        "responseTemplates": {"application/json": '{"message":null}'},
    },
    "INTEGRATION_FAILURE": {
        "statusCode": 502,
        "responseTemplates": {"application/json": '{"message":"Internal server error"}'},
    },
    "THROTTLED": {
        "statusCode": 429,
        "responseTemplates": {"application/json": '{"message":"Too Many Requests"}'},
    },
    "REQUEST_TOO_LARGE": {
        "statusCode": 413,
        "responseTemplates": {"application/json": '{"message":"Request Too Long"}'},
    },
}


@dataclass(frozen=True, slots=True)
class Stage:
    """Where the API notionally lives; it appears in ARNs and events."""

    name: str = "dev"
    region: str = "us-east-1"
    account: str = "123456789012"
    api_id: str = "gatehouse"

    def method_arn(self, method: str, path: str) -> str:
        """The ``execute-api`` ARN an authorizer's policy is evaluated against."""
        return (
            f"arn:aws:execute-api:{self.region}:{self.account}:{self.api_id}/{self.name}/"
            f"{method}/{path.lstrip('/')}"
        )


@dataclass(frozen=True, slots=True)
class AuthorizerDefinition:
    """The authorizer as declared in the API definition."""

    name: str
    kind: str
    ttl_seconds: int
    identity_sources: tuple[str, ...]
    handler: Callable[[dict[str, Any], Any], Any]


@dataclass(frozen=True, slots=True)
class Resource:
    """One API resource with its methods and their authorizers."""

    path: str
    methods: dict[str, AuthorizerDefinition | None]

    def matches(self, request_path: str) -> dict[str, str] | None:
        """Path parameters when ``request_path`` matches, else None."""
        if self.path == request_path:
            return {}
        if self.path.endswith("/{proxy+}"):
            stem = self.path[: -len("{proxy+}")]
            if request_path.startswith(stem) and len(request_path) > len(stem):
                return {"proxy": unquote(request_path[len(stem) :])}
            return None
        if "{" not in self.path:
            return None
        # "{name}" matches one non-empty segment, as in API Gateway.
        declared, given = self.path.split("/"), request_path.split("/")
        if len(declared) != len(given):
            return None
        parameters = {}
        for part, value in zip(declared, given, strict=True):
            if part.startswith("{") and part.endswith("}"):
                if not value:
                    return None
                parameters[part[1:-1]] = unquote(value)
            elif part != value:
                return None
        return parameters

    @property
    def specificity(self) -> tuple[bool, int, int]:
        """Sort key: literal paths before parameters, parameters before greedy, longer first."""
        return ("{proxy+}" in self.path, self.path.count("{"), -len(self.path))


@dataclass
class ApiDefinition:
    """What API Gateway would have imported."""

    resources: list[Resource]
    binary_media_types: list[str]
    gateway_responses: dict[str, dict[str, Any]] = field(default_factory=dict)

    def resource_for(self, path: str) -> tuple[Resource, dict[str, str]] | None:
        """The most specific resource for ``path`` (literal before greedy)."""
        for resource in sorted(self.resources, key=lambda r: r.specificity):
            parameters = resource.matches(path)
            if parameters is not None:
                return resource, parameters
        return None

    def is_binary(self, media_type: str) -> bool:
        """Whether ``media_type`` (parameters allowed) is one of the binary media types."""
        types = self.binary_media_types
        if "*/*" in types:
            return True
        base = media_type.split(";")[0].strip().lower()
        return any(re.fullmatch(t.replace("*", ".*"), base) for t in types)


def load_api_definition(
    app_module: ModuleType, gateway_responses_path: Path | None
) -> ApiDefinition:
    """Generate the API definition from the Chalice app, as ``chalice deploy`` does.

    Parameters
    ----------
    app_module:
        The module holding the Chalice ``app`` and its authorizer handlers.
    gateway_responses_path:
        The deployment's gateway responses (``infra/gateway_responses.json``),
        laid over API Gateway's defaults; None for the defaults alone.

    Returns
    -------
    ApiDefinition
        Every resource with its methods, each method with its authorizer.
    """
    from chalice.deploy.swagger import TemplatedSwaggerGenerator

    from chalicelib.apigw import chalice_adapter

    chalice_adapter.install_swagger_hook()
    app = app_module.app
    swagger = TemplatedSwaggerGenerator().generate_swagger(app)
    handlers = {
        config.name: getattr(app_module, config.handler_string.split(".")[-1])
        for config in app.builtin_auth_handlers
    }
    authorizers: dict[str, AuthorizerDefinition] = {}
    for name, definition in swagger.get("securityDefinitions", {}).items():
        declared = definition.get("x-amazon-apigateway-authorizer", {})
        sources = [s.strip() for s in declared.get("identitySource", "").split(",") if s.strip()]
        authorizers[name] = AuthorizerDefinition(
            name=name,
            kind=declared.get("type", ""),
            ttl_seconds=int(declared.get("authorizerResultTtlInSeconds", 300)),
            identity_sources=tuple(sources),
            handler=handlers[name],
        )
    resources = []
    for path, operations in swagger["paths"].items():
        methods: dict[str, AuthorizerDefinition | None] = {}
        for method, operation in operations.items():
            security = operation.get("security") or []
            names = [next(iter(entry)) for entry in security]
            methods[method.upper()] = authorizers[names[0]] if names else None
        resources.append(Resource(path, methods))
    responses = dict(DEFAULT_GATEWAY_RESPONSES)
    if gateway_responses_path is not None:
        responses.update(json.loads(gateway_responses_path.read_text()))
    return ApiDefinition(
        resources, list(swagger.get("x-amazon-apigateway-binary-media-types", [])), responses
    )
