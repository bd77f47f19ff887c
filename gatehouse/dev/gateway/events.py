"""The Lambda events API Gateway sends: proxy events (REST, payload v1) and authorizer events."""

from __future__ import annotations

import base64
import json
import time
import uuid
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl

if TYPE_CHECKING:
    from gatehouse.dev.gateway.api import ApiDefinition, Resource, Stage
    from gatehouse.dev.gateway.messages import Exchange, IncomingRequest

# What a REQUEST authorizer event copies from the proxy event (no body: API
# Gateway does not send it to authorizers).
_AUTHORIZER_EVENT_KEYS = (
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


class EventBuilder:
    """Builds the Lambda proxy event for a matched request.

    Parameters
    ----------
    definition:
        The API definition (its binary media types decide how bodies travel).
    stage:
        Where the API lives; it appears in the request context.
    """

    def __init__(self, definition: ApiDefinition, stage: Stage) -> None:
        self._definition = definition
        self._stage = stage

    def proxy_event(
        self,
        request: IncomingRequest,
        resource: Resource,
        path_parameters: dict[str, str],
        exchange: Exchange,
    ) -> dict[str, Any]:
        """The payload v1 event for ``request`` on ``resource``.

        Headers and query parameters come both single- and multi-valued, the
        body base64-encoded when its Content-Type is a binary media type, and
        the request context as API Gateway fills it (before any authorizer).
        """
        event = self._base_event(request, resource, path_parameters, exchange)
        if request.body:
            content_type = next((v for n, v in request.headers if n.lower() == "content-type"), "")
            if self._definition.is_binary(content_type):
                event["body"] = base64.b64encode(request.body).decode("ascii")
                event["isBase64Encoded"] = True
            else:
                event["body"] = request.body.decode("utf-8", errors="replace")
        return event

    def _base_event(
        self,
        request: IncomingRequest,
        resource: Resource,
        path_parameters: dict[str, str],
        exchange: Exchange,
    ) -> dict[str, Any]:
        headers = _event_headers(request, exchange.trace_id)
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
                "accountId": self._stage.account,
                "protocol": "HTTP/1.1",
                "stage": self._stage.name,
                "domainPrefix": host.split(".")[0],
                "requestTimeEpoch": int(now * 1000),
                "requestId": exchange.request_id,
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
                "apiId": self._stage.api_id,
            },
            "body": None,
            "isBase64Encoded": False,
        }


def _event_headers(request: IncomingRequest, trace_id: str) -> list[tuple[str, str]]:
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


def authorizer_event(proxy_event: dict[str, Any], method_arn: str) -> dict[str, Any]:
    """The REQUEST authorizer event for the request ``proxy_event`` describes.

    Parameters
    ----------
    proxy_event:
        The request's proxy event, as :meth:`EventBuilder.proxy_event` built it.
    method_arn:
        The ARN of the method being called.

    Returns
    -------
    dict
        A deep copy (the authorizer may change it freely) of the request part
        of the proxy event, with ``type`` and ``methodArn``.
    """
    event: dict[str, Any] = json.loads(
        json.dumps({key: proxy_event[key] for key in _AUTHORIZER_EVENT_KEYS})
    )
    event.update({"type": "REQUEST", "methodArn": method_arn})
    return event
