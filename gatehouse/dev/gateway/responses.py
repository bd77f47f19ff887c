"""The HTTP response API Gateway sends, from the integration's answer or its own."""

from __future__ import annotations

import base64
import uuid
from typing import Any

from gatehouse.dev.gateway.api import DEFAULT_GATEWAY_RESPONSES, ApiDefinition
from gatehouse.dev.gateway.messages import Exchange, GatewayAnswer, GatewayError, IncomingRequest

# Integration response headers API Gateway renames to x-amzn-Remapped-<name>
# because it sets (or refuses to pass) them itself.
_REMAPPED = frozenset({"authorization", "connection", "date", "server", "www-authenticate", "via"})
# Framing headers the HTTP server writes for the body it actually sends.
_FRAMING = ("content-length", "connection")


class ResponseMapper:
    """Maps proxy responses and gateway responses to HTTP answers.

    Parameters
    ----------
    definition:
        The API definition: its gateway responses and binary media types.
    """

    def __init__(self, definition: ApiDefinition) -> None:
        self._definition = definition

    def integration_response(self, response: Any, request: IncomingRequest) -> GatewayAnswer:
        """The answer for a Lambda proxy integration's ``response``.

        Multi-value headers win over single-value ones of the same name;
        headers API Gateway owns are remapped; a base64 body is decoded when
        the request's first Accept type is a binary media type, as API Gateway
        does, and passed on as text otherwise.

        Raises
        ------
        GatewayError
            ``INTEGRATION_FAILURE`` for a response that is not a proxy
            response (no integer ``statusCode``, a body that is not a string).
        """
        if not isinstance(response, dict) or not isinstance(response.get("statusCode"), int):
            raise GatewayError("INTEGRATION_FAILURE")
        headers: list[tuple[str, str]] = []
        multi = response.get("multiValueHeaders") or {}
        for name, values in multi.items():
            headers.extend((_remapped(name), str(value)) for value in values)
        for name, value in (response.get("headers") or {}).items():
            if name not in multi:
                headers.append((_remapped(name), str(value)))
        body = response.get("body") or ""
        if not isinstance(body, str):
            raise GatewayError("INTEGRATION_FAILURE")
        accept = next((v for n, v in request.headers if n.lower() == "accept"), "")
        if response.get("isBase64Encoded") and self._definition.is_binary(accept.split(",")[0]):
            payload = base64.b64decode(body)
        else:
            payload = body.encode("utf-8")
        return GatewayAnswer(response["statusCode"], headers, payload)

    def gateway_response(self, error: GatewayError, request_id: str) -> GatewayAnswer:
        """The gateway response for ``error``: its status, headers and JSON template."""
        definition = (
            self._definition.gateway_responses.get(error.response_type)
            or DEFAULT_GATEWAY_RESPONSES[error.response_type]
        )
        template = (definition.get("responseTemplates") or {}).get("application/json", "")
        body = template.replace("$context.requestId", request_id).replace(
            "$context.error.messageString", error.message.replace('"', '\\"')
        )
        headers = [("Content-Type", "application/json")]
        for parameter, value in (definition.get("responseParameters") or {}).items():
            name = parameter.removeprefix("gatewayresponse.header.")
            headers.append((name, value.strip("'")))
        return GatewayAnswer(int(definition["statusCode"]), headers, body.encode("utf-8"))

    @staticmethod
    def with_gateway_headers(answer: GatewayAnswer, exchange: Exchange) -> GatewayAnswer:
        """``answer`` with the headers API Gateway adds to every response."""
        headers = [h for h in answer.headers if h[0].lower() not in _FRAMING]
        headers += [
            ("x-amzn-RequestId", exchange.request_id),
            ("x-amz-apigw-id", base64.b64encode(uuid.uuid4().bytes[:6]).decode("ascii")),
            ("X-Amzn-Trace-Id", exchange.trace_id),
        ]
        return GatewayAnswer(answer.status, headers, answer.body)


def _remapped(name: str) -> str:
    return f"x-amzn-Remapped-{name}" if name.lower() in _REMAPPED else name
