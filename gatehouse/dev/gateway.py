"""An API Gateway (REST API, regional) emulator in front of the Chalice app.

It reads the API definition Chalice generates for ``chalice deploy`` (paths,
methods, the REQUEST authorizer with its TTL and identity sources, binary
media types) and serves real HTTP on 127.0.0.1 the way API Gateway does:

1. match the request to a resource (``/{proxy+}`` spans any number of
   segments; an undefined resource or method is 403 "Missing Authentication
   Token");
2. build the REQUEST authorizer event, invoke the authorizer Lambda in
   process, honour its result cache (keyed by identity sources) when the TTL
   is above 0, and evaluate the returned IAM policy against the method ARN:
   explicit Deny -> 403, no Allow -> 403, "Unauthorized" -> 401, any other
   failure -> the AUTHORIZER_FAILURE response;
3. build the Lambda proxy event (payload v1: ``multiValueHeaders``,
   ``multiValueQueryStringParameters``, ``isBase64Encoded``, request id,
   source IP, authorizer context as strings) and invoke the handler;
4. map the proxy response back to HTTP, decoding base64 bodies.

Gateway responses (401/403/5xx bodies and headers) come from
``infra/gateway_responses.json``, the file the deployment installs; access-log
lines follow ``infra/access_log_format.json``, values put in unescaped.

What it does not emulate: throttling, usage plans, the 29 s integration
timeout, custom domain base paths, WAF, TLS.
"""

from __future__ import annotations

import base64
import json
import re
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import ModuleType
from typing import Any
from urllib.parse import parse_qsl, unquote

MAX_PAYLOAD_BYTES = 10 * 1024 * 1024
LAMBDA_EVENT_LIMIT_BYTES = 6 * 1024 * 1024
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
    "REQUEST_TOO_LARGE": {
        "statusCode": 413,
        "responseTemplates": {"application/json": '{"message":"Request Too Long"}'},
    },
}
EXPLICIT_DENY = "User is not authorized to access this resource with an explicit deny"
IMPLICIT_DENY = "User is not authorized to access this resource"


class LambdaContext:
    """The context object the Lambda Python runtime passes to handlers."""

    def __init__(self, function_name: str, timeout_seconds: float = 29.0) -> None:
        self.function_name = function_name
        self.function_version = "$LATEST"
        self.invoked_function_arn = (
            f"arn:aws:lambda:us-east-1:123456789012:function:{function_name}"
        )
        self.memory_limit_in_mb = 1024
        self.aws_request_id = str(uuid.uuid4())
        self.log_group_name = f"/aws/lambda/{function_name}"
        self.log_stream_name = "local"
        self._deadline = time.monotonic() + timeout_seconds

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.monotonic()) * 1000))


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


def load_api_definition(
    app_module: ModuleType, gateway_responses_path: Path | None
) -> ApiDefinition:
    """Generate the API definition from the Chalice app, as ``chalice deploy`` does."""
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


# The keys of infra/access_log_format.json whose values the gateway knows (a
# test keeps them in step); the format's "<name>End" keys repeat the request id.
ACCESS_LOG_KEYS = (
    "requestId", "extendedRequestId", "requestTime", "stage", "httpMethod", "resourcePath",
    "status", "responseLength", "responseLatency", "integrationStatus", "integrationLatency",
    "authorizerStatus", "authorizerLatency", "authorizerIntegrationStatus", "decisionId",
    "policyVersion", "errorResponseType", "wafResponseCode", "sourceIp", "xrayTraceId",
    "errorMessage", "authorizerError", "principalId", "domainName", "path", "userAgent",
)  # fmt: skip
_CONTEXT_VARIABLE = re.compile(r"\$context\.[A-Za-z0-9_.]+")


def render_access_log(log_format: str, values: Mapping[str, str]) -> str:
    """One access-log line, written the way API Gateway writes it.

    Parameters
    ----------
    log_format:
        The stage's format (``infra/access_log_format.json`` on one line):
        JSON whose values are ``$context`` variables.
    values:
        By the format's keys: what each key's variable stands for.

    Returns
    -------
    str
        ``log_format`` with every variable replaced by its value as it is:
        API Gateway escapes nothing, so a quote in a User-Agent ends up raw
        in the line. A variable no key gives a value for is ``-``.
    """
    variables: dict[str, str] = {}
    for key, variable in json.loads(log_format).items():
        if key in values:
            variables.setdefault(variable, values[key] or "-")
    return _CONTEXT_VARIABLE.sub(lambda match: variables.get(match.group(), "-"), log_format)


@dataclass(frozen=True, slots=True)
class IncomingRequest:
    """An HTTP request as the gateway received it."""

    method: str
    raw_path: str
    raw_query: str
    headers: list[tuple[str, str]]
    body: bytes
    source_ip: str


@dataclass(frozen=True, slots=True)
class GatewayAnswer:
    """What the gateway sends back."""

    status: int
    headers: list[tuple[str, str]]
    body: bytes


class _GatewayError(Exception):
    def __init__(self, response_type: str, message: str = "") -> None:
        self.response_type = response_type
        self.message = message
        super().__init__(response_type)


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
    access_log, access_log_format:
        Where each request's access-log line goes, and the stage's format
        (see :func:`render_access_log`).

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
    ) -> None:
        if access_log is not None and not access_log_format:
            raise ValueError("an access log needs the stage's access_log_format")
        self.definition = definition
        self._access_log = access_log
        self._access_log_format = access_log_format
        self._api_handler = api_handler
        self.stage = stage
        self.region = region
        self.account = account
        self.api_id = api_id
        self._clock = clock
        self._cache: dict[tuple[str, tuple[str, ...]], tuple[float, dict[str, Any]]] = {}
        self._cache_lock = threading.Lock()
        # Lambda runs concurrent invocations in separate containers; here they
        # share one process (and one container's caches), bounded like a
        # function's reserved concurrency. Only raw routes are served, so no
        # per-request state lives on the Chalice app object.
        self._api_slots = threading.BoundedSemaphore(concurrency)
        self._authorizer_slots = threading.BoundedSemaphore(concurrency)
        self._counter_lock = threading.Lock()
        self.authorizer_invocations = 0

    def handle(self, request: IncomingRequest) -> GatewayAnswer:
        """Serve one request (and write its access-log line, as the stage's logging would)."""
        request_id = str(uuid.uuid4())
        trace_id = f"Root=1-{int(time.time()):08x}-{uuid.uuid4().hex[:24]}"
        facts: dict[str, str] = {"requestTime": str(int(time.time() * 1000))}
        started = time.monotonic()
        try:
            answer = self._route(request, request_id, trace_id, facts)
        except _GatewayError as error:
            answer = self._gateway_response(error.response_type, request_id, error.message)
            facts.update(errorResponseType=error.response_type, errorMessage=error.message)
        if self._access_log is not None:
            line = self._log_line(request, request_id, trace_id, answer, facts, started)
            self._access_log(render_access_log(self._access_log_format, line))
        headers = [
            h for h in answer.headers if h[0].lower() not in ("content-length", "connection")
        ]
        headers += [
            ("x-amzn-RequestId", request_id),
            ("x-amz-apigw-id", base64.b64encode(uuid.uuid4().bytes[:6]).decode("ascii")),
            ("X-Amzn-Trace-Id", trace_id),
        ]
        return GatewayAnswer(answer.status, headers, answer.body)

    def _log_line(
        self,
        request: IncomingRequest,
        request_id: str,
        trace_id: str,
        answer: GatewayAnswer,
        facts: dict[str, str],
        started: float,
    ) -> dict[str, str]:
        """The access-log values, by infra/access_log_format.json's keys ("-" when absent)."""
        headers = {name.lower(): value for name, value in request.headers}
        line = {
            "requestId": request_id,
            "extendedRequestId": "-",
            "httpMethod": request.method,
            "path": request.raw_path,
            "status": str(answer.status),
            "responseLength": str(len(answer.body)),
            "responseLatency": str(int((time.monotonic() - started) * 1000)),
            "sourceIp": request.source_ip,
            "userAgent": headers.get("user-agent", "-"),
            "domainName": headers.get("host", "-"),
            "stage": self.stage,
            "xrayTraceId": trace_id.removeprefix("Root="),
            "wafResponseCode": "-",
        }
        for name in ACCESS_LOG_KEYS:
            line.setdefault(name, facts.get(name, "-") or "-")
        return line

    def _route(
        self, request: IncomingRequest, request_id: str, trace_id: str, facts: dict[str, str]
    ) -> GatewayAnswer:
        if len(request.body) > MAX_PAYLOAD_BYTES:
            raise _GatewayError("REQUEST_TOO_LARGE")
        found = self.definition.resource_for(request.raw_path)
        if found is None or request.method not in found[0].methods:
            raise _GatewayError("MISSING_AUTHENTICATION_TOKEN")
        resource, path_parameters = found
        facts["resourcePath"] = resource.path
        event = self._base_event(request, resource, path_parameters, request_id, trace_id)
        authorizer = resource.methods[request.method]
        if authorizer is not None:
            context = self._authorize(authorizer, event, facts)
            event["requestContext"]["authorizer"] = context
            facts.update(
                principalId=context.get("principalId", "-"),
                decisionId=context.get("decision_id", "-"),
                policyVersion=context.get("policy_version", "-"),
            )
        self._encode_body(request, event)
        if len(json.dumps(event)) > LAMBDA_EVENT_LIMIT_BYTES:
            raise _GatewayError("REQUEST_TOO_LARGE")
        called = time.monotonic()
        with self._api_slots:
            try:
                response = self._api_handler(event, LambdaContext("gatehouse-dev"))
            except Exception as exc:  # a Lambda error is a 502 at the gateway
                raise _GatewayError("INTEGRATION_FAILURE") from exc
            finally:
                facts["integrationLatency"] = str(int((time.monotonic() - called) * 1000))
        facts["integrationStatus"] = "200"  # the Lambda service's status, as AWS logs it
        return self._map_response(response, request)

    def _base_event(
        self,
        request: IncomingRequest,
        resource: Resource,
        path_parameters: dict[str, str],
        request_id: str,
        trace_id: str,
    ) -> dict[str, Any]:
        headers = self._event_headers(request, trace_id)
        multi_headers: dict[str, list[str]] = {}
        for name, value in headers:
            multi_headers.setdefault(name, []).append(value)
        query = parse_qsl(request.raw_query, keep_blank_values=True)
        multi_query: dict[str, list[str]] = {}
        for name, value in query:
            multi_query.setdefault(name, []).append(value)
        host = next((v for n, v in headers if n.lower() == "host"), "localhost")
        user_agent = next((v for n, v in headers if n.lower() == "user-agent"), None)
        now = time.time()
        return {
            "resource": resource.path,
            "path": request.raw_path,
            "httpMethod": request.method,
            "headers": {name: values[-1] for name, values in multi_headers.items()},
            "multiValueHeaders": multi_headers,
            "queryStringParameters": {k: v[-1] for k, v in multi_query.items()} or None,
            "multiValueQueryStringParameters": multi_query or None,
            "pathParameters": path_parameters or None,
            "stageVariables": None,
            "requestContext": {
                "resourceId": "local1",
                "resourcePath": resource.path,
                "httpMethod": request.method,
                "extendedRequestId": base64.b64encode(uuid.uuid4().bytes[:6]).decode("ascii"),
                "requestTime": time.strftime("%d/%b/%Y:%H:%M:%S +0000", time.gmtime(now)),
                "path": request.raw_path,
                "accountId": self.account,
                "protocol": "HTTP/1.1",
                "stage": self.stage,
                "domainPrefix": host.split(".")[0],
                "requestTimeEpoch": int(now * 1000),
                "requestId": request_id,
                "identity": {
                    "cognitoIdentityPoolId": None,
                    "accountId": None,
                    "cognitoIdentityId": None,
                    "caller": None,
                    "sourceIp": request.source_ip,
                    "principalOrgId": None,
                    "accessKey": None,
                    "cognitoAuthenticationType": None,
                    "cognitoAuthenticationProvider": None,
                    "userArn": None,
                    "userAgent": user_agent,
                    "user": None,
                },
                "domainName": host,
                "apiId": self.api_id,
            },
            "body": None,
            "isBase64Encoded": False,
        }

    def _event_headers(self, request: IncomingRequest, trace_id: str) -> list[tuple[str, str]]:
        # API Gateway appends the caller to X-Forwarded-For and sets the
        # forwarding port, protocol and trace headers itself.
        replaced = {"x-forwarded-proto", "x-forwarded-port", "x-amzn-trace-id"}
        headers = [(n, v) for n, v in request.headers if n.lower() not in replaced]
        forwarded_for = [v for n, v in headers if n.lower() == "x-forwarded-for"]
        headers = [(n, v) for n, v in headers if n.lower() != "x-forwarded-for"]
        chain = ", ".join([*forwarded_for, request.source_ip])
        headers += [
            ("X-Forwarded-For", chain),
            ("X-Forwarded-Port", "443"),
            ("X-Forwarded-Proto", "https"),
            ("X-Amzn-Trace-Id", trace_id),
        ]
        return headers

    def _encode_body(self, request: IncomingRequest, event: dict[str, Any]) -> None:
        if request.body:
            content_type = next((v for n, v in request.headers if n.lower() == "content-type"), "")
            if self._is_binary(content_type):
                event["body"] = base64.b64encode(request.body).decode("ascii")
                event["isBase64Encoded"] = True
            else:
                event["body"] = request.body.decode("utf-8", errors="replace")

    def _is_binary(self, media_type: str) -> bool:
        types = self.definition.binary_media_types
        if "*/*" in types:
            return True
        base = media_type.split(";")[0].strip().lower()
        return any(re.fullmatch(t.replace("*", ".*"), base) for t in types)

    def _authorize(
        self, authorizer: AuthorizerDefinition, event: dict[str, Any], facts: dict[str, str]
    ) -> dict[str, Any]:
        if authorizer.kind != "request":
            raise _GatewayError(
                "AUTHORIZER_CONFIGURATION_ERROR", f"unsupported authorizer type {authorizer.kind!r}"
            )
        method_arn = (
            f"arn:aws:execute-api:{self.region}:{self.account}:{self.api_id}/{self.stage}/"
            f"{event['httpMethod']}/{event['path'].lstrip('/')}"
        )
        sources = self._identity_source_values(authorizer, event)
        started = time.monotonic()
        result = self._cached(authorizer, sources) if authorizer.ttl_seconds > 0 else None
        if result is None:
            try:
                result = self._invoke_authorizer(authorizer, event, method_arn)
            except _GatewayError as error:
                facts["authorizerStatus"] = (
                    "401" if error.response_type == "UNAUTHORIZED" else "500"
                )
                raise
            finally:
                facts["authorizerLatency"] = str(int((time.monotonic() - started) * 1000))
            facts["authorizerStatus"] = "200"
            if authorizer.ttl_seconds > 0:
                with self._cache_lock:
                    self._cache[(authorizer.name, sources)] = (
                        self._clock() + authorizer.ttl_seconds,
                        result,
                    )
        effect = evaluate_policy(result["policyDocument"], method_arn)
        if effect == "Deny":
            raise _GatewayError("ACCESS_DENIED", EXPLICIT_DENY)
        if effect != "Allow":
            raise _GatewayError("ACCESS_DENIED", IMPLICIT_DENY)
        context = {
            key: _context_string(value) for key, value in (result.get("context") or {}).items()
        }
        context["principalId"] = str(result["principalId"])
        context["integrationLatency"] = str(int((time.monotonic() - started) * 1000))
        return context

    def _identity_source_values(
        self, authorizer: AuthorizerDefinition, event: dict[str, Any]
    ) -> tuple[str, ...]:
        values = []
        headers = {name.lower(): value for name, value in event["headers"].items()}
        for source in authorizer.identity_sources:
            prefix = "method.request.header."
            value = (
                headers.get(source[len(prefix) :].lower()) if source.startswith(prefix) else None
            )
            if not value:
                # A missing identity source is a 401 before any Lambda runs.
                raise _GatewayError("UNAUTHORIZED")
            values.append(value)
        return tuple(values)

    def _cached(
        self, authorizer: AuthorizerDefinition, sources: tuple[str, ...]
    ) -> dict[str, Any] | None:
        with self._cache_lock:
            entry = self._cache.get((authorizer.name, sources))
        if entry is None or entry[0] <= self._clock():
            return None
        return entry[1]

    def _invoke_authorizer(
        self, authorizer: AuthorizerDefinition, event: dict[str, Any], method_arn: str
    ) -> dict[str, Any]:
        authorizer_event = {
            key: event[key]
            for key in (
                "resource",
                "path",
                "httpMethod",
                "headers",
                "multiValueHeaders",
                "queryStringParameters",
                "multiValueQueryStringParameters",
                "pathParameters",
                "stageVariables",
                "requestContext",
            )
        }
        authorizer_event = json.loads(json.dumps(authorizer_event))
        authorizer_event.update({"type": "REQUEST", "methodArn": method_arn})
        with self._counter_lock:
            self.authorizer_invocations += 1
        with self._authorizer_slots:
            try:
                result = authorizer.handler(
                    authorizer_event, LambdaContext(f"gatehouse-dev-{authorizer.name}")
                )
            except Exception as exc:
                if str(exc) == "Unauthorized":
                    raise _GatewayError("UNAUTHORIZED") from exc
                raise _GatewayError("AUTHORIZER_FAILURE") from exc
        if not _valid_authorizer_result(result):
            raise _GatewayError("AUTHORIZER_CONFIGURATION_ERROR")
        return dict(result)

    def _map_response(self, response: Any, request: IncomingRequest) -> GatewayAnswer:
        if not isinstance(response, dict) or not isinstance(response.get("statusCode"), int):
            raise _GatewayError("INTEGRATION_FAILURE")
        headers: list[tuple[str, str]] = []
        multi = response.get("multiValueHeaders") or {}
        for name, values in multi.items():
            headers.extend((_remapped(name), str(value)) for value in values)
        for name, value in (response.get("headers") or {}).items():
            if name not in multi:
                headers.append((_remapped(name), str(value)))
        body = response.get("body") or ""
        if not isinstance(body, str):
            raise _GatewayError("INTEGRATION_FAILURE")
        accept = next((v for n, v in request.headers if n.lower() == "accept"), "")
        if response.get("isBase64Encoded") and self._is_binary(accept.split(",")[0]):
            payload = base64.b64decode(body)
        else:
            payload = body.encode("utf-8")
        return GatewayAnswer(response["statusCode"], headers, payload)

    def _gateway_response(self, response_type: str, request_id: str, message: str) -> GatewayAnswer:
        definition = (
            self.definition.gateway_responses.get(response_type)
            or DEFAULT_GATEWAY_RESPONSES[response_type]
        )
        template = (definition.get("responseTemplates") or {}).get("application/json", "")
        body = template.replace("$context.requestId", request_id).replace(
            "$context.error.messageString", message.replace('"', '\\"')
        )
        headers = [("Content-Type", "application/json")]
        for parameter, value in (definition.get("responseParameters") or {}).items():
            name = parameter.removeprefix("gatewayresponse.header.")
            headers.append((name, value.strip("'")))
        return GatewayAnswer(int(definition["statusCode"]), headers, body.encode("utf-8"))


# Integration response headers API Gateway renames to x-amzn-Remapped-<name>
# because it sets (or refuses to pass) them itself.
_REMAPPED = frozenset({"authorization", "connection", "date", "server", "www-authenticate", "via"})


def _remapped(name: str) -> str:
    return f"x-amzn-Remapped-{name}" if name.lower() in _REMAPPED else name


def _context_string(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str | int | float):
        return str(value)
    raise _GatewayError("AUTHORIZER_CONFIGURATION_ERROR")


def _valid_authorizer_result(result: Any) -> bool:
    if not isinstance(result, dict) or not isinstance(result.get("principalId"), str):
        return False
    document = result.get("policyDocument")
    return isinstance(document, dict) and isinstance(document.get("Statement"), list)


def _arn_matches(pattern: str, arn: str) -> bool:
    regex = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    return re.fullmatch(regex, arn) is not None


def evaluate_policy(document: dict[str, Any], method_arn: str) -> str | None:
    """``Deny``, ``Allow`` or None (no statement applies) for ``method_arn``."""
    allowed = False
    for statement in document.get("Statement", []):
        actions = statement.get("Action", [])
        actions = [actions] if isinstance(actions, str) else actions
        if not any(_arn_matches(action, "execute-api:Invoke") for action in actions):
            continue
        resources = statement.get("Resource", [])
        resources = [resources] if isinstance(resources, str) else resources
        if not any(_arn_matches(resource, method_arn) for resource in resources):
            continue
        if statement.get("Effect") == "Deny":
            return "Deny"
        if statement.get("Effect") == "Allow":
            allowed = True
    return "Allow" if allowed else None


class GatewayServer:
    """Serves an :class:`ApiGatewayEmulator` over HTTP/1.1 on 127.0.0.1.

    The socket is bound at construction so the URL is known (the app's
    settings need it) before the emulator is attached.
    """

    def __init__(self, port: int = 0) -> None:
        self.emulator: ApiGatewayEmulator | None = None
        self._server = ThreadingHTTPServer(("127.0.0.1", port), _handler_for(self))
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="api-gateway", daemon=True
        )

    @property
    def url(self) -> str:
        """Base URL."""
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def attach(self, emulator: ApiGatewayEmulator) -> None:
        """Serve requests with ``emulator``."""
        self.emulator = emulator

    def start(self) -> None:
        """Serve in a background thread."""
        if self.emulator is None:
            raise RuntimeError("attach an emulator before starting the gateway")
        self._thread.start()

    def stop(self) -> None:
        """Stop serving."""
        if self._thread.is_alive():
            self._server.shutdown()
        self._server.server_close()


def _read_body(handler: BaseHTTPRequestHandler) -> bytes:
    if "chunked" in (handler.headers.get("Transfer-Encoding") or "").lower():
        chunks: list[bytes] = []
        while True:
            size = int(handler.rfile.readline().split(b";")[0].strip() or b"0", 16)
            if size == 0:
                while handler.rfile.readline() not in (b"\r\n", b"\n", b""):
                    pass
                return b"".join(chunks)
            chunks.append(handler.rfile.read(size))
            handler.rfile.readline()
    length = int(handler.headers.get("Content-Length") or 0)
    return handler.rfile.read(length) if length else b""


def _handler_for(server: GatewayServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True  # no 40 ms delayed-ACK stalls on keep-alive

        def _serve(self) -> None:
            emulator = server.emulator
            assert emulator is not None
            raw_path, _, raw_query = self.path.partition("?")
            request = IncomingRequest(
                method=self.command,
                raw_path=raw_path or "/",
                raw_query=raw_query,
                headers=list(self.headers.items()),
                body=_read_body(self),
                source_ip=self.client_address[0],
            )
            answer = emulator.handle(request)
            self.send_response_only(answer.status)
            self.send_header("Date", self.date_time_string())
            for name, value in answer.headers:
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(answer.body)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(answer.body)

        do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_OPTIONS = do_HEAD = _serve

        def log_message(self, format: str, *args: Any) -> None:
            return

    return Handler
