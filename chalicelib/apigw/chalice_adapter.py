"""Two small adapters over Chalice 1.34, pinned and tested.

Chalice gives us deployment (``chalice deploy`` / ``chalice package``), the
REST API definition and the authorizer wiring. It does not give us:

1. **REQUEST authorizers.** ``@app.authorizer()`` only makes TOKEN ones,
   whose handler sees a token and a method ARN and nothing else: no source
   IP, no request id, no headers. :meth:`GatewayApp.request_authorizer`
   registers a normal built-in authorizer (so Chalice deploys the function
   and its permissions) whose handler receives the whole REQUEST event, and
   rewrites its API definition to ``type: request`` while Chalice generates
   it. The rewrite hooks one private method of Chalice's swagger generator,
   hence the exact version pin and the tests in
   ``tests/functional/test_chalice_adapter.py`` that fail if a Chalice
   upgrade breaks either half.

2. **Raw proxy routes.** Chalice's request/response mapping drops
   ``multiValueHeaders`` on the way in, and with ``binary_types=['*/*']``
   answers 400 to any client that sends no ``Accept`` header. Routes
   registered with :meth:`GatewayApp.raw_route` are declared to API Gateway
   as usual, but their Lambda events are served by a handler that receives
   the event as API Gateway sent it and returns the proxy response itself.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import chalice
from chalice.app import Chalice, ChaliceAuthorizer

PINNED_CHALICE_VERSION = "1.34.0"
AUTHORIZER_IDENTITY_SOURCE = "method.request.header.Authorization"

LambdaHandler = Callable[[dict[str, Any], Any], dict[str, Any]]


class AdapterVersionError(RuntimeError):
    """Chalice is not the version the adapters were verified against."""


@dataclass(frozen=True, slots=True)
class RequestAuthorizerSpec:
    """How a REQUEST authorizer is declared to API Gateway."""

    ttl_seconds: Callable[[], int]

    def api_definition(self) -> dict[str, Any]:
        """The fields that differ from Chalice's TOKEN authorizer definition."""
        ttl = self.ttl_seconds()
        definition: dict[str, Any] = {"type": "request", "authorizerResultTtlInSeconds": ttl}
        if ttl > 0:
            # The cache key. With caching off API Gateway needs no identity
            # source, and must have none: a missing source makes it answer 401
            # without invoking (or auditing) the authorizer.
            definition["identitySource"] = AUTHORIZER_IDENTITY_SOURCE
        return definition


class RequestAuthorizer(ChaliceAuthorizer):
    """A built-in authorizer whose handler gets the REQUEST event and Lambda context."""

    gatehouse_spec: RequestAuthorizerSpec

    def __call__(self, event: dict[str, Any], context: Any) -> Any:
        handler: LambdaHandler = self.func  # type: ignore[assignment]  # registered as one
        return handler(event, context)


class GatewayApp(Chalice):
    """A Chalice app with REQUEST authorizers and raw proxy routes."""

    def __init__(self, app_name: str) -> None:
        super().__init__(app_name=app_name)
        self._raw_routes: dict[str, LambdaHandler] = {}

    def request_authorizer(
        self, *, name: str, ttl_seconds: Callable[[], int]
    ) -> Callable[[LambdaHandler], RequestAuthorizer]:
        """Register ``handler(event, context)`` as a REQUEST authorizer.

        ``ttl_seconds`` is called when the API definition is generated, so
        the stage's environment decides the cache TTL.
        """
        if "chalice.cli" in sys.modules:
            # Only the Chalice CLI generates API definitions; Lambda never gets here.
            install_swagger_hook()

        def register(handler: LambdaHandler) -> RequestAuthorizer:
            registered = self.authorizer(name=name)(handler)
            registered.__class__ = RequestAuthorizer
            registered.gatehouse_spec = RequestAuthorizerSpec(ttl_seconds)
            return registered  # type: ignore[no-any-return]

        return register

    def raw_route(
        self,
        paths: Sequence[str],
        *,
        methods: Sequence[str],
        authorizer: RequestAuthorizer | None = None,
    ) -> Callable[[LambdaHandler], LambdaHandler]:
        """Declare ``paths`` to API Gateway and serve them with ``handler(event, context)``."""

        def register(handler: LambdaHandler) -> LambdaHandler:
            for path in paths:
                self.route(
                    path,
                    methods=list(methods),
                    authorizer=authorizer,
                    content_types=["*/*"],
                    name=f"{handler.__name__}_{len(self._raw_routes)}",
                )(_served_raw)
                self._raw_routes[path] = handler
            return handler

        return register

    def __call__(self, event: Any, context: Any) -> Any:
        resource = (
            (event.get("requestContext") or {}).get("resourcePath")
            if isinstance(event, dict)
            else None
        )
        handler = self._raw_routes.get(resource) if isinstance(resource, str) else None
        if handler is not None:
            return handler(event, context)
        return super().__call__(event, context)


def _served_raw(**_: str) -> None:
    raise RuntimeError("raw routes are served by GatewayApp.__call__, never by Chalice's dispatch")


def install_swagger_hook() -> None:
    """Make Chalice's API definition say ``type: request`` for our authorizers.

    Called when the Chalice CLI loads ``app.py``, and by the local gateway
    emulator, which imports the API definition the same way.

    Raises
    ------
    AdapterVersionError
        When Chalice is not the pinned version.
    """
    if chalice.__version__ != PINNED_CHALICE_VERSION:
        raise AdapterVersionError(
            f"Gatehouse's REQUEST authorizer adapter is verified against chalice "
            f"{PINNED_CHALICE_VERSION}, not {chalice.__version__}; run "
            f"tests/functional/test_chalice_adapter.py against the new version, then update the pin"
        )
    from chalice.deploy import swagger

    original = swagger.SwaggerGenerator._generate_security_from_auth_obj
    if getattr(original, "gatehouse_hook", False):
        return

    def generate_security(generator: Any, api_config: dict[str, Any], authorizer: Any) -> None:
        original(generator, api_config, authorizer)
        spec = getattr(authorizer, "gatehouse_spec", None)
        if isinstance(spec, RequestAuthorizerSpec):
            definition = api_config["securityDefinitions"][authorizer.name]
            definition["x-amazon-apigateway-authorizer"].update(spec.api_definition())

    generate_security.gatehouse_hook = True  # type: ignore[attr-defined]
    setattr(swagger.SwaggerGenerator, "_generate_security_from_auth_obj", generate_security)  # noqa: B010
