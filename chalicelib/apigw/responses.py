"""What a handler hands back to API Gateway: status, headers (several values each), body."""

from __future__ import annotations

import base64
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class ProxyResponse:
    """A response to hand back to API Gateway."""

    status: int
    headers: dict[str, list[str]]
    body: bytes

    def as_lambda_response(self, request_id: str | None) -> dict[str, Any]:
        """The Lambda proxy integration response (always base64: binary-safe)."""
        headers = dict(self.headers)
        if request_id:
            headers["X-Request-Id"] = [request_id]
        return {
            "statusCode": self.status,
            "multiValueHeaders": headers,
            "body": base64.b64encode(self.body).decode("ascii"),
            "isBase64Encoded": True,
        }
