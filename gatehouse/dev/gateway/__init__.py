"""An API Gateway (REST API, regional) emulator in front of the Chalice app.

It reads the API definition Chalice generates for ``chalice deploy`` (paths,
methods, the REQUEST authorizer with its TTL and identity sources, binary
media types) and serves real HTTP on 127.0.0.1 the way API Gateway does:

1. match the request to a resource (``/{proxy+}`` spans any number of
   segments; an undefined resource or method is 403 "Missing Authentication
   Token");
2. build the Lambda proxy event (payload v1: ``multiValueHeaders``,
   ``multiValueQueryStringParameters``, ``isBase64Encoded``, request id,
   source IP);
3. build the REQUEST authorizer event from it, invoke the authorizer Lambda
   in process, honour its result cache (keyed by identity sources) when the
   TTL is above 0, and evaluate the returned IAM policy against the method
   ARN: explicit Deny -> 403, no Allow -> 403, "Unauthorized" -> 401, any
   other failure -> the AUTHORIZER_FAILURE response; the authorizer context
   reaches the proxy event as strings;
4. invoke the handler and map the proxy response back to HTTP, decoding
   base64 bodies;
5. write the access-log line.

Gateway responses (401/403/5xx bodies and headers) come from
``infra/gateway_responses.json``, the file the deployment installs; access-log
lines follow ``infra/access_log_format.json``, values put in unescaped.

Throttling is emulated as a limit on requests in flight (``max_in_flight``):
beyond it the THROTTLED gateway response (429) answers at once. What it does
not emulate: rate/burst token buckets, usage plans, the 29 s integration
timeout, custom domain base paths, WAF, TLS.

Modules, one job each: :mod:`.api` (the definition and the route matcher),
:mod:`.events` (proxy and authorizer events), :mod:`.authorizer` (invocation
and result cache), :mod:`.policy` (IAM policy evaluation), :mod:`.responses`
(integration and gateway responses), :mod:`.access_log`, :mod:`.emulator`
(the pipeline) and :mod:`.server` (HTTP).
"""

from gatehouse.dev.gateway.access_log import ACCESS_LOG_KEYS, AccessLogWriter, render_access_log
from gatehouse.dev.gateway.api import (
    DEFAULT_GATEWAY_RESPONSES,
    ApiDefinition,
    AuthorizerDefinition,
    Resource,
    Stage,
    load_api_definition,
)
from gatehouse.dev.gateway.authorizer import EXPLICIT_DENY, IMPLICIT_DENY, AuthorizerInvoker
from gatehouse.dev.gateway.emulator import (
    LAMBDA_EVENT_LIMIT_BYTES,
    MAX_PAYLOAD_BYTES,
    ApiGatewayEmulator,
)
from gatehouse.dev.gateway.events import EventBuilder, authorizer_event
from gatehouse.dev.gateway.messages import Exchange, GatewayAnswer, GatewayError, IncomingRequest
from gatehouse.dev.gateway.policy import evaluate_policy
from gatehouse.dev.gateway.responses import ResponseMapper
from gatehouse.dev.gateway.server import GatewayServer
from gatehouse.dev.lambda_context import LambdaContext

__all__ = [
    "ACCESS_LOG_KEYS",
    "DEFAULT_GATEWAY_RESPONSES",
    "EXPLICIT_DENY",
    "IMPLICIT_DENY",
    "LAMBDA_EVENT_LIMIT_BYTES",
    "MAX_PAYLOAD_BYTES",
    "AccessLogWriter",
    "ApiDefinition",
    "ApiGatewayEmulator",
    "AuthorizerDefinition",
    "AuthorizerInvoker",
    "EventBuilder",
    "Exchange",
    "GatewayAnswer",
    "GatewayError",
    "GatewayServer",
    "IncomingRequest",
    "LambdaContext",
    "Resource",
    "ResponseMapper",
    "Stage",
    "authorizer_event",
    "evaluate_policy",
    "load_api_definition",
    "render_access_log",
]
