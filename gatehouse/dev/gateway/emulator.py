"""API Gateway's request pipeline: route, build the event, authorize, call, map, log."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from typing import Any

from gatehouse.dev.gateway.access_log import AccessLogWriter
from gatehouse.dev.gateway.api import ApiDefinition, AuthorizerDefinition, Resource, Stage
from gatehouse.dev.gateway.authorizer import AuthorizerInvoker
from gatehouse.dev.gateway.events import EventBuilder
from gatehouse.dev.gateway.messages import Exchange, GatewayAnswer, GatewayError, IncomingRequest
from gatehouse.dev.gateway.responses import ResponseMapper
from gatehouse.dev.lambda_context import LambdaContext

MAX_PAYLOAD_BYTES = 10 * 1024 * 1024
LAMBDA_EVENT_LIMIT_BYTES = 6 * 1024 * 1024


class ApiGatewayEmulator:
    """Turns HTTP requests into Lambda invocations the way API Gateway does.

    Parameters
    ----------
    definition:
        The imported API definition.
    api_handler:
        The API Lambda (the Chalice app object).
    stage, region, account, api_id:
        Where the API notionally lives (they appear in ARNs and events).
    clock:
        Time for the authorizer result cache's TTL.
    concurrency:
        How many invocations of the API Lambda, and of the authorizer, run
        at once.
    max_in_flight:
        How many requests the stage serves at once; beyond it a request is
        refused at once with the THROTTLED gateway response (429), as API
        Gateway throttles. None: no limit.
    access_log, access_log_format:
        Where each request's access-log line goes, and the stage's format
        (see :func:`~gatehouse.dev.gateway.access_log.render_access_log`).
    on_complete:
        Called with each request, its exchange and its answer once the
        answer is known (the local stack's console line). It must not
        raise: the request is answered after it returns.

    Raises
    ------
    ValueError
        When ``access_log`` is given without ``access_log_format``.
    """

    def __init__(
        self,
        definition: ApiDefinition,
        api_handler: Callable[[dict[str, Any], Any], Any],
        *,
        stage: str = "dev",
        region: str = "us-east-1",
        account: str = "123456789012",
        api_id: str = "gatehouse",
        clock: Callable[[], float] = time.monotonic,
        concurrency: int = 10,
        access_log: Callable[[str], None] | None = None,
        access_log_format: str = "",
        max_in_flight: int | None = None,
        on_complete: Callable[[IncomingRequest, Exchange, GatewayAnswer], None] | None = None,
    ) -> None:
        self._on_complete = on_complete
        self._access_log = (
            AccessLogWriter(access_log, access_log_format, stage)
            if access_log is not None
            else None
        )
        self.definition = definition
        self.stage = stage
        self.region = region
        self.account = account
        self.api_id = api_id
        self._where = Stage(stage, region, account, api_id)
        self._events = EventBuilder(definition, self._where)
        self._authorizers = AuthorizerInvoker(clock=clock, concurrency=concurrency)
        self._responses = ResponseMapper(definition)
        self._api_handler = api_handler
        # Lambda runs concurrent invocations in separate containers; here they
        # share one process (and one container's caches), bounded like a
        # function's reserved concurrency. Only raw routes are served, so no
        # per-request state lives on the Chalice app object.
        self._api_slots = threading.BoundedSemaphore(concurrency)
        self._max_in_flight = max_in_flight
        self._in_flight = 0
        self._in_flight_lock = threading.Lock()
        self.throttled = 0

    @property
    def authorizer_invocations(self) -> int:
        """How many times an authorizer Lambda ran (cache hits do not count)."""
        return self._authorizers.invocations

    def handle(self, request: IncomingRequest) -> GatewayAnswer:
        """Serve one request (and write its access-log line, as the stage's logging would)."""
        exchange = Exchange.begin()
        if not self._admit():
            answer = self._responses.gateway_response(
                GatewayError("THROTTLED"), exchange.request_id
            )
            exchange.facts.update(errorResponseType="THROTTLED", errorMessage="Too Many Requests")
            return self._answered(request, exchange, answer)
        try:
            return self._answered(request, exchange, self._serve(request, exchange))
        finally:
            with self._in_flight_lock:
                self._in_flight -= 1

    def _admit(self) -> bool:
        # A saturated stage refuses at once (429 THROTTLED) rather than queueing.
        with self._in_flight_lock:
            if self._max_in_flight is not None and self._in_flight >= self._max_in_flight:
                self.throttled += 1
                return False
            self._in_flight += 1
            return True

    def _answered(
        self, request: IncomingRequest, exchange: Exchange, answer: GatewayAnswer
    ) -> GatewayAnswer:
        if self._access_log is not None:
            self._access_log.write(request, exchange, answer)
        if self._on_complete is not None:
            self._on_complete(request, exchange, answer)
        return self._responses.with_gateway_headers(answer, exchange)

    def _serve(self, request: IncomingRequest, exchange: Exchange) -> GatewayAnswer:
        try:
            resource, path_parameters = self._route(request, exchange)
            event = self._events.proxy_event(request, resource, path_parameters, exchange)
            self._authorize(resource.methods[request.method], event, exchange)
            response = self._call(event, exchange)
            answer = self._responses.integration_response(response, request)
        except GatewayError as error:
            answer = self._responses.gateway_response(error, exchange.request_id)
            exchange.facts.update(errorResponseType=error.response_type, errorMessage=error.message)
        return answer

    def _route(
        self, request: IncomingRequest, exchange: Exchange
    ) -> tuple[Resource, dict[str, str]]:
        if len(request.body) > MAX_PAYLOAD_BYTES:
            raise GatewayError("REQUEST_TOO_LARGE")
        found = self.definition.resource_for(request.raw_path)
        if found is None or request.method not in found[0].methods:
            raise GatewayError("MISSING_AUTHENTICATION_TOKEN")
        exchange.facts["resourcePath"] = found[0].path
        return found

    def _authorize(
        self, authorizer: AuthorizerDefinition | None, event: dict[str, Any], exchange: Exchange
    ) -> None:
        if authorizer is None:
            return  # an open method: its integration answers for itself
        method_arn = self._where.method_arn(event["httpMethod"], event["path"])
        context = self._authorizers.authorize(authorizer, event, method_arn, exchange.facts)
        event["requestContext"]["authorizer"] = context
        exchange.facts.update(
            principalId=context.get("principalId", "-"),
            decisionId=context.get("decision_id", "-"),
            policyVersion=context.get("policy_version", "-"),
        )

    def _call(self, event: dict[str, Any], exchange: Exchange) -> Any:
        if len(json.dumps(event)) > LAMBDA_EVENT_LIMIT_BYTES:
            raise GatewayError("REQUEST_TOO_LARGE")
        called = time.monotonic()
        with self._api_slots:
            try:
                response = self._api_handler(event, LambdaContext("gatehouse-dev"))
            except Exception as exc:  # a Lambda error is a 502 at the gateway
                raise GatewayError("INTEGRATION_FAILURE") from exc
            finally:
                exchange.facts["integrationLatency"] = str(int((time.monotonic() - called) * 1000))
        exchange.facts["integrationStatus"] = "200"  # the Lambda service's status, as AWS logs it
        return response
