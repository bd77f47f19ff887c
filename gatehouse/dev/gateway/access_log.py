"""The stage's access log: one line per request, in the format the deployment sets.

The format is ``infra/access_log_format.json`` (on one line): JSON whose
values are ``$context`` variables, which API Gateway replaces without escaping.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from gatehouse.dev.gateway.messages import Exchange, GatewayAnswer, IncomingRequest

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


class AccessLogWriter:
    """Writes each request's access-log line, as the stage's logging would.

    Parameters
    ----------
    sink:
        Where each line goes.
    log_format:
        The stage's format (see :func:`render_access_log`).
    stage:
        The stage name (``$context.stage``).

    Raises
    ------
    ValueError
        When ``log_format`` is empty.
    """

    def __init__(self, sink: Callable[[str], None], log_format: str, stage: str) -> None:
        if not log_format:
            raise ValueError("an access log needs the stage's access_log_format")
        self._sink = sink
        self._format = log_format
        self._stage = stage

    def write(self, request: IncomingRequest, exchange: Exchange, answer: GatewayAnswer) -> None:
        """Write the line for ``request``, answered with ``answer``."""
        self._sink(render_access_log(self._format, self.values(request, exchange, answer)))

    def values(
        self, request: IncomingRequest, exchange: Exchange, answer: GatewayAnswer
    ) -> dict[str, str]:
        """The access-log values by the format's keys (``-`` when absent)."""
        headers = {name.lower(): value for name, value in request.headers}
        line = {
            "requestId": exchange.request_id,
            "extendedRequestId": "-",
            "httpMethod": request.method,
            "path": request.raw_path,
            "status": str(answer.status),
            "responseLength": str(len(answer.body)),
            "responseLatency": str(int((time.monotonic() - exchange.started) * 1000)),
            "sourceIp": request.source_ip,
            "userAgent": headers.get("user-agent", "-"),
            "domainName": headers.get("host", "-"),
            "stage": self._stage,
            "xrayTraceId": exchange.trace_id.removeprefix("Root="),
            "wafResponseCode": "-",
        }
        for name in ACCESS_LOG_KEYS:
            line.setdefault(name, exchange.facts.get(name, "-") or "-")
        return line
