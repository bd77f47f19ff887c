"""Proxy handler added latency (budget: <= 150 µs over the floor).

Floor: an ``http.client`` keep-alive request to the same backend, with the
same method, path, headers and body, measured in the same run. Measured: the
proxy Lambda handler for one API Gateway proxy event, end to end (event
parsing, authorizer context, header hygiene, the signed assertion, the pooled
upstream request, the response mapping and the response audit event).

The assertion is signed with an in-process P-256 key, as in AWS, where each
container's key is certified by KMS once (chalicelib/signing); the audit sink
is in memory. The SQS send is a network call in AWS; the production key source
(DelegatedKeys, certified by moto's KMS) is reported separately for reference.
"""

from __future__ import annotations

import base64
import http.client
import json
import multiprocessing
import re
import socket
import statistics
import sys
import time
import uuid
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import TYPE_CHECKING, Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import boto3
from cryptography.hazmat.primitives.asymmetric import ec
from moto import mock_aws

from bench.common import figure, gateway_event, measure, moto_policy_store
from chalicelib.audit import AuditEmitter
from chalicelib.authorize import Decider
from chalicelib.authorize.context import authorizer_context
from chalicelib.aws.signers import KmsSigner, LocalSigner
from chalicelib.aws.table import Table
from chalicelib.config import DEFAULT_QUERY_REDACTION
from chalicelib.identity import Identity
from chalicelib.policy import AccessRequest, ActivePolicy, PolicyVersions
from chalicelib.proxy import Proxy
from chalicelib.proxy.assertion import AssertionIssuer
from chalicelib.proxy.upstream import UpstreamClient, UpstreamResponse
from chalicelib.signing.delegated import DelegatedKeys
from chalicelib.signing.events import key_event_recorder
from chalicelib.signing.registry import KeyRegistry

if TYPE_CHECKING:
    from chalicelib.proxy.origin import Origin

BODY = b'{"name": "demo", "items": [1, 2, 3]}'


class MemorySink:
    """Keeps the last event (stands in for the SQS network call)."""

    def __init__(self) -> None:
        self.last = ""

    def send(self, line: str) -> None:
        self.last = line


class CannedUpstream:
    """Answers like the backend without a socket: isolates the handler's own work."""

    def send(
        self, method: str, origin: Origin, target: str, headers: Any, body: bytes
    ) -> UpstreamResponse:
        return UpstreamResponse(200, [("Content-Type", "application/json")], b'{"ok":true}', 0.0)


def own_work(proxy: Proxy, event: dict[str, Any], sink: MemorySink, count: int = 2000) -> float:
    """Median seconds per request the handler spends outside the upstream exchange.

    The upstream exchange is timed by the proxy itself (the audit event's
    ``upstream_latency_ms``), so this is the proxy's own work: parsing, header
    hygiene, the signed assertion, response mapping and the audit event.
    """
    samples = []
    for _ in range(count):
        started = time.perf_counter()
        proxy.handle(event, "bench")
        total = time.perf_counter() - started
        upstream_ms = json.loads(sink.last)["outcome"]["upstream_latency_ms"]
        samples.append(total - upstream_ms / 1000)
    return statistics.median(samples)


class FastBackend(BaseHTTPRequestHandler):
    """A minimal keep-alive backend: the same for the floor and the proxy."""

    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # no 40 ms delayed-ACK stalls on keep-alive

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        self.rfile.read(length)
        payload = b'{"ok":true}'
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, format: str, *args: Any) -> None:
        return


def serve_backend(ready: multiprocessing.Queue[int]) -> None:
    server = ThreadingHTTPServer(("127.0.0.1", 0), FastBackend)
    ready.put(int(server.server_address[1]))
    server.serve_forever()


@dataclass(frozen=True)
class SentRequest:
    method: str
    target: str
    headers: list[tuple[str, str]]
    body: bytes


def record_upstream_request(proxy: Proxy, event: dict[str, Any]) -> SentRequest:
    """Run one request through ``proxy`` and keep what it sent upstream."""
    client = proxy._upstream
    recorded: list[SentRequest] = []
    original = client.send

    def recording(method: str, origin: Origin, target: str, headers: Any, body: bytes) -> Any:
        recorded.append(SentRequest(method, target, list(headers), body))
        return original(method, origin, target, headers, body)

    client.send = recording  # type: ignore[method-assign]
    try:
        assert proxy.handle(event, "bench")["statusCode"] == 200
    finally:
        del client.send
    return recorded[0]


def proxy_event(request_id: str, context: dict[str, Any]) -> dict[str, Any]:
    """A proxy event for an authorized POST, as API Gateway sends it."""
    event = gateway_event("POST", "/api/items/42", request_id, authorization="Bearer abc.def.ghi")
    event["requestContext"]["authorizer"] = {key: str(value) for key, value in context.items()}
    event["body"] = base64.b64encode(BODY).decode()
    event["isBase64Encoded"] = True
    return event


def main() -> None:
    # The backend runs in its own process: sharing the GIL with the code under
    # measurement would charge the backend's work to whoever holds it.
    ready: multiprocessing.Queue[int] = multiprocessing.Queue()
    backend = multiprocessing.Process(target=serve_backend, args=(ready,), daemon=True)
    backend.start()
    host, port = "127.0.0.1", ready.get(timeout=30)
    upstream = f"http://{host!s}:{port}"
    policy_doc = {
        "version": 1,
        "routes": [
            {
                "id": "api",
                "host": "*",
                "path_prefix": "/api",
                "upstream": upstream,
                "audience": "api",
            }
        ],
        "rules": [
            {
                "id": "eng",
                "effect": "allow",
                "routes": ["api"],
                "subjects": {"groups": ["engineering"]},
                "actions": ["*"],
                "paths": ["/api/**"],
            }
        ],
    }
    identity = Identity(
        issuer="https://idp.example",
        subject="alice",
        audience="gatehouse",
        expires_at=4_000_000_000,
        email="alice@example.com",
        groups=frozenset({"engineering"}),
    )
    with mock_aws():
        resources, store = moto_policy_store(policy_doc)
        active = ActivePolicy(store, default_issuer=identity.issuer, refresh_seconds=3600)
        decision = active.current().evaluate(
            identity, AccessRequest("gatehouse.example.com", "POST", "/api/items/42")
        )
        request_id = str(uuid.uuid4())
        context = authorizer_context(
            identity, decision, decision_id=str(uuid.uuid4()), request_id=request_id
        )
        event = proxy_event(request_id, context)

        sink = MemorySink()

        def build(signer: Any, upstream: Any = None) -> Proxy:
            return Proxy(
                decider=Decider(verifier=None, policy=active),
                versions=PolicyVersions(store, default_issuer=identity.issuer),
                assertions=AssertionIssuer(
                    signer, issuer="https://gatehouse.example.com", ttl_seconds=60
                ),
                upstream=upstream
                or UpstreamClient(connect_timeout=2, read_timeout=5, max_response_bytes=4 << 20),
                emitter=AuditEmitter(sink),
                query_redaction=re.compile(DEFAULT_QUERY_REDACTION),
                max_request_body_bytes=4 << 20,
            )

        proxy = build(LocalSigner(ec.generate_private_key(ec.SECP256R1())))
        sent = record_upstream_request(proxy, event)

        # The floor sends exactly the bytes the proxy sends upstream (same
        # headers, assertion included), so the difference is the proxy's own work.
        connection = http.client.HTTPConnection(host, port)
        connection.connect()
        assert connection.sock is not None
        connection.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # as the proxy does
        floor_headers = sent.headers

        def direct() -> None:
            connection.putrequest(sent.method, sent.target, skip_accept_encoding=True)
            for name, value in floor_headers:
                connection.putheader(name, value)
            connection.putheader("Content-Length", str(len(sent.body)))
            connection.endheaders(sent.body)
            connection.getresponse().read()

        print(
            "Proxy handler (loopback keep-alive backend, local P-256 signer, in-memory audit sink)",
            flush=True,
        )
        canned = build(LocalSigner(ec.generate_private_key(ec.SECP256R1())), CannedUpstream())
        for _ in range(3):
            floor = measure(direct, number=1000)
            through_proxy = measure(lambda: proxy.handle(event, "bench"), number=1000)
            figure("floor: http.client keep-alive request (same bytes)", floor)
            figure("proxy handler end to end, same request", through_proxy, floor=floor)
            figure("  difference end to end (includes VM wake-up noise)", through_proxy - floor)
            figure("  handler time outside the upstream exchange", own_work(proxy, event, sink))
            figure(
                "added by the proxy: handler, upstream answered in memory",
                measure(lambda: canned.handle(event, "bench"), number=2000),
                budget="<= 150 µs",
            )
        figure("calibration: sum(range(1000)) on this machine", measure(lambda: sum(range(1000))))

        delegated = DelegatedKeys(
            KmsSigner(boto3.client("kms", region_name="us-east-1"), resources.assertion_key_alias),
            KeyRegistry(
                Table(boto3.client("dynamodb", region_name="us-east-1"), resources.state_table)
            ),
            key_event_recorder(AuditEmitter(MemorySink()), "bench"),
            issuer="https://gatehouse.example.com",
            stage="bench",
        )
        kms = build(delegated)
        kms.handle(event, "bench")  # the first request certifies the container's key
        figure(
            "for reference: delegated keys (KMS-certified once, moto), upstream over HTTP",
            measure(lambda: kms.handle(event, "bench"), number=1000),
            floor=floor,
        )
        local = LocalSigner(ec.generate_private_key(ec.SECP256R1()))
        figure(
            "for reference: one local ES256 signature",
            measure(lambda: local.sign(b"x" * 600), number=2000),
        )
    backend.terminate()
    backend.join()


if __name__ == "__main__":
    main()
