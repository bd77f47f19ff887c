"""The event source mapping's own SQS calls to the local moto, without botocore.

In AWS the SQS event source mapping polls the queue outside the function:
its ``ReceiveMessage`` and ``DeleteMessageBatch`` calls cost the function
nothing. In the local stack they ran through the app's boto3 client in the
stack's process, and botocore spends a few milliseconds of Python on each call
(validation, signing, hooks, parsing), under the same interpreter lock as
every request the gateway serves: ten receives and ten deletes per hundred
events. :class:`LoopbackSqs` makes the same two calls in SQS's JSON protocol
over one kept-alive loopback connection per thread, and answers what boto3
would (the same dictionaries).
"""

from __future__ import annotations

import http.client
import json
import threading
import time
from typing import Any
from urllib.parse import urlsplit


class SqsCallFailed(RuntimeError):
    """moto answered a call with an error."""


class LoopbackSqs:
    """``receive_message`` and ``delete_message_batch`` against the local moto.

    Parameters
    ----------
    endpoint_url:
        moto's URL (``http://127.0.0.1:<port>``).
    region:
        The stack's region (in the credential scope moto reads it from).
    timeout_seconds:
        Socket timeout beyond a long poll's own wait.
    """

    def __init__(self, endpoint_url: str, region: str, timeout_seconds: float = 10.0) -> None:
        parts = urlsplit(endpoint_url)
        self._host = parts.hostname or "127.0.0.1"
        self._port = parts.port or 80
        self._region = region
        self._timeout = timeout_seconds
        self._local = threading.local()
        self._opened: list[http.client.HTTPConnection] = []
        self._lock = threading.Lock()

    def receive_message(self, **request: Any) -> dict[str, Any]:
        """SQS ``ReceiveMessage``, as boto3's client answers it."""
        wait = float(request.get("WaitTimeSeconds") or 0)
        return self._call("ReceiveMessage", request, wait)

    def delete_message_batch(self, **request: Any) -> dict[str, Any]:
        """SQS ``DeleteMessageBatch``, as boto3's client answers it."""
        return self._call("DeleteMessageBatch", request, 0.0)

    def close(self) -> None:
        """Close every connection opened (call once the callers are done)."""
        with self._lock:
            opened, self._opened = self._opened, []
        for connection in opened:
            connection.close()

    def _call(self, action: str, request: dict[str, Any], wait: float) -> dict[str, Any]:
        body = json.dumps(request).encode("utf-8")
        day = time.strftime("%Y%m%d", time.gmtime())
        headers = {
            "Content-Type": "application/x-amz-json-1.0",
            "X-Amz-Target": f"AmazonSQS.{action}",
            # moto takes the region and account from the credential scope; it checks no signature.
            "Authorization": (
                f"AWS4-HMAC-SHA256 Credential=testing/{day}/{self._region}/sqs/aws4_request, "
                "SignedHeaders=host, Signature=0"
            ),
        }
        for attempt in (1, 2):
            connection = self._connection(wait)
            try:
                connection.request("POST", "/", body=body, headers=headers)
                response = connection.getresponse()
                payload = response.read()
                break
            except (http.client.HTTPException, ConnectionError):
                # A kept-alive connection moto closed: one fresh attempt.
                connection.close()
                self._local.connection = None
                if attempt == 2:
                    raise
        if response.status != 200:
            raise SqsCallFailed(f"SQS {action} answered {response.status}: {payload[:300]!r}")
        answer: dict[str, Any] = json.loads(payload) if payload else {}
        return answer

    def _connection(self, wait: float) -> http.client.HTTPConnection:
        connection: http.client.HTTPConnection | None = getattr(self._local, "connection", None)
        if connection is None:
            connection = http.client.HTTPConnection(self._host, self._port)
            self._local.connection = connection
            with self._lock:
                self._opened.append(connection)
        connection.timeout = wait + self._timeout
        if connection.sock is not None:
            connection.sock.settimeout(connection.timeout)
        return connection
