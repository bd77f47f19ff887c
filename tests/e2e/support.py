"""Helpers for the end-to-end tier: start/stop ``gatehouse dev``, tokens, HTTP, audit reads."""

from __future__ import annotations

import http.client
import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from gatehouse.dev.idp import SigningKey, mint_token
from gatehouse.dev.process import DevProcess, StackStartFailed, start_dev_process
from gatehouse.state import STATE_FILE_NAME, DevState

PROJECT_DIR = Path(__file__).resolve().parents[2]
START_DEADLINE_SECONDS = 90.0
STOP_DEADLINE_SECONDS = 20.0
CLI_TIMEOUT_SECONDS = 60.0
AUDIT_DEADLINE_SECONDS = 30.0
HTTP_TIMEOUT_SECONDS = 30.0
_ISOLATED_PREFIXES = ("AWS_", "GATEHOUSE_", "POWERTOOLS_", "BOTO_")


# --------------------------------------------------------------------------- processes


def stack_environment() -> dict[str, str]:
    """The test process's environment, pointed at nothing real, plus what the stack needs."""
    environment = {
        name: value for name, value in os.environ.items() if not name.startswith(_ISOLATED_PREFIXES)
    }
    environment.update(
        {
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_SESSION_TOKEN": "testing",
            "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_CONFIG_FILE": os.devnull,
            "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
            "GATEHOUSE_UPSTREAM_READ_TIMEOUT_SECONDS": "2",
            "PYTHONUNBUFFERED": "1",
        }
    )
    return environment


def run_cli_status(
    state_dir: Path, *arguments: str, environment: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run ``gatehouse --state-dir DIR ARGS...``; return the completed process, any exit."""
    return subprocess.run(
        [sys.executable, "-m", "gatehouse.cli", "--state-dir", str(state_dir), *arguments],
        cwd=PROJECT_DIR,
        env={**stack_environment(), **(environment or {})},
        capture_output=True,
        text=True,
        timeout=CLI_TIMEOUT_SECONDS,
        check=False,
    )


def run_cli(state_dir: Path, *arguments: str) -> str:
    """Run ``gatehouse --state-dir DIR ARGS...``; return stdout (fails the test on error)."""
    completed = run_cli_status(state_dir, *arguments)
    if completed.returncode != 0:
        pytest.fail(
            f"`gatehouse {' '.join(arguments)}` exited {completed.returncode}\n"
            f"stdout:\n{completed.stdout}\nstderr:\n{completed.stderr}"
        )
    return completed.stdout


@dataclass
class RunningStack:
    """A ``gatehouse dev`` subprocess and what it published."""

    dev: DevProcess
    state: DevState

    @property
    def process(self) -> subprocess.Popen[bytes]:
        return self.dev.process

    @property
    def state_dir(self) -> Path:
        return self.dev.state_dir

    def log_tail(self, lines: int = 40) -> str:
        return self.dev.log_tail(lines)


def start_stack(
    state_dir: Path, *dev_arguments: str, settings: dict[str, str] | None = None
) -> RunningStack:
    """Start ``gatehouse dev --port 0`` and wait (bounded) for its ``dev.json``.

    ``settings``: ``GATEHOUSE_*`` variables for the stack's functions.
    """
    dev = start_dev_process(
        state_dir, *dev_arguments, environment=stack_environment() | (settings or {})
    )
    try:
        return RunningStack(dev, dev.wait_for_state(START_DEADLINE_SECONDS))
    except StackStartFailed as exc:
        dev.kill()
        pytest.fail(str(exc))
    except BaseException:
        dev.kill()
        raise


def _endpoints(state: DevState) -> dict[str, tuple[str, int]]:
    urls = {
        "gateway": state.gateway_url,
        "backend": state.backend_url,
        "idp": state.issuer,
        "aws": state.aws_endpoint_url,
    }
    endpoints = {}
    for name, url in urls.items():
        parts = urlsplit(url)
        assert parts.hostname is not None, (name, url)
        assert parts.port is not None, (name, url)
        endpoints[name] = (parts.hostname, parts.port)
    return endpoints


def _accepts_connections(address: tuple[str, int]) -> bool:
    try:
        with socket.create_connection(address, timeout=2):
            return True
    except OSError:
        return False


def stop_stack(stack: RunningStack) -> None:
    """Ctrl-C the stack; assert a clean exit, closed ports and a removed ``dev.json``."""
    endpoints = _endpoints(stack.state)
    assert stack.process.poll() is None, (
        f"`gatehouse dev` died during the tests (exit {stack.process.returncode}):\n"
        + stack.log_tail()
    )
    code = stack.dev.interrupt(STOP_DEADLINE_SECONDS)
    assert code is not None, (
        f"`gatehouse dev` did not exit within {STOP_DEADLINE_SECONDS:.0f} s of SIGINT:\n"
        + stack.log_tail()
    )
    assert code == 0, f"`gatehouse dev` exited {code} after SIGINT:\n{stack.log_tail()}"
    still_open = {
        name: address for name, address in endpoints.items() if _accepts_connections(address)
    }
    assert not still_open, f"still accepting connections after exit: {still_open}"
    assert not (stack.state_dir / STATE_FILE_NAME).exists(), "dev.json was left behind"


# --------------------------------------------------------------------------- tokens


def signing_key(state: DevState, alg: str = "RS256") -> SigningKey:
    """The dev issuer's key for ``alg``, read from the PEM the stack published."""
    info = state.idp_keys[alg]
    path = Path(info["path"])
    private_key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    assert isinstance(private_key, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey)
    return SigningKey(alg, info["kid"], private_key, path)


def token_for(
    state: DevState,
    subject: str,
    *,
    email: str | None = None,
    groups: Sequence[str] = (),
    alg: str = "RS256",
    ttl_seconds: int = 3600,
    audience: str | None = None,
) -> str:
    """A token signed by the running stack's dev issuer."""
    return mint_token(
        signing_key(state, alg),
        issuer=state.issuer,
        audience=audience or state.audience,
        subject=subject,
        email=email,
        groups=list(groups),
        ttl_seconds=ttl_seconds,
    )


def alice(state: DevState) -> str:
    """An engineer at example.com."""
    return token_for(state, "alice", email="alice@example.com", groups=["engineering"])


# --------------------------------------------------------------------------- HTTP


@dataclass(frozen=True)
class Exchange:
    """One request sent through the gateway and what came back."""

    method: str
    path: str
    token: str | None
    body_sent: bytes
    status: int
    headers: list[tuple[str, str]]
    body: bytes

    def header_values(self, name: str) -> list[str]:
        return [value for key, value in self.headers if key.lower() == name.lower()]

    def header(self, name: str) -> str | None:
        values = self.header_values(name)
        assert len(values) <= 1, f"{name} appears {len(values)} times: {values}"
        return values[0] if values else None

    @property
    def request_id(self) -> str:
        request_id = self.header("x-amzn-RequestId")
        assert request_id, f"no x-amzn-RequestId in {self.headers}"
        return request_id

    def json(self) -> Any:
        return json.loads(self.body)

    def __str__(self) -> str:
        return f"{self.method} {self.path} -> {self.status} {self.body[:300]!r}"


@dataclass
class GatewayClient:
    """Sends real HTTP to the gateway and remembers every exchange."""

    state: DevState
    exchanges: list[Exchange] = field(default_factory=list)
    # The address requests come from (any 127.0.0.0/8 address on Linux loopback): the
    # gateway emulator takes the TCP peer as the caller's source IP, as API Gateway does.
    source_ip: str | None = None

    def send(
        self,
        method: str,
        path: str,
        *,
        token: str | None = None,
        headers: Sequence[tuple[str, str]] = (),
        body: bytes | None = None,
    ) -> Exchange:
        parts = urlsplit(self.state.gateway_url)
        assert parts.hostname is not None
        connection = http.client.HTTPConnection(
            parts.hostname,
            parts.port,
            timeout=HTTP_TIMEOUT_SECONDS,
            source_address=(self.source_ip, 0) if self.source_ip else None,
        )
        try:
            # putrequest/putheader: no implicit Accept, repeated headers stay separate lines.
            connection.putrequest(method, path, skip_accept_encoding=True)
            if token is not None:
                connection.putheader("Authorization", f"Bearer {token}")
            for name, value in headers:
                connection.putheader(name, value)
            if body is not None:
                connection.putheader("Content-Length", str(len(body)))
            connection.endheaders(body)
            response = connection.getresponse()
            exchange = Exchange(
                method,
                path,
                token,
                body or b"",
                response.status,
                response.getheaders(),
                response.read(),
            )
        finally:
            connection.close()
        self.exchanges.append(exchange)
        return exchange


def backend_echo(exchange: Exchange) -> dict[str, Any]:
    """The demo backend's description of what it received (fails if it is not one)."""
    assert exchange.status == 200, str(exchange)
    echo = exchange.json()
    assert isinstance(echo, dict), str(exchange)
    assert {"method", "path", "assertion"} <= echo.keys(), str(exchange)
    return echo


def echoed_header(echo: dict[str, Any], name: str) -> list[str]:
    """Every value the backend received for ``name`` (case-insensitive)."""
    return [
        value
        for key, values in echo["headers"].items()
        if key.lower() == name.lower()
        for value in values
    ]


def assert_gateway_error(exchange: Exchange, status: int, message: str) -> None:
    """A gateway response from infra/gateway_responses.json carrying this request's id."""
    assert exchange.status == status, str(exchange)
    assert exchange.header("Content-Type") == "application/json", exchange.headers
    assert exchange.json() == {"message": message, "request_id": exchange.request_id}


# --------------------------------------------------------------------------- audit


AuditIndex = dict[str, list[dict[str, Any]]]


@dataclass(frozen=True)
class AuditSnapshot:
    """Stored events, raw (as printed by ``gatehouse audit tail --json``) and by request id."""

    raw: str
    by_request: AuditIndex
    # policy_change, grant and signing_key events
    admin: list[dict[str, Any]] = field(default_factory=list)


def read_audit(state_dir: Path) -> AuditSnapshot:
    """``gatehouse audit flush`` then ``gatehouse audit tail --json``."""
    run_cli(state_dir, "audit", "flush")
    return _snapshot(run_cli(state_dir, "audit", "tail", "--json", "-n", "100000"))


def _snapshot(raw: str) -> AuditSnapshot:
    """The events of ``audit tail --json``, by request id (and the ones tied to none)."""
    index: AuditIndex = {}
    admin = []
    for line in raw.splitlines():
        if line.strip():
            event = json.loads(line)
            if event["event_type"] in ("policy_change", "grant", "signing_key", "session", "alert"):
                # Not tied to a gateway request id (a session event may be, but is
                # read by its session id, not its request's; an alert names events).
                admin.append(event)
            else:
                index.setdefault(event["request"]["id"], []).append(event)
    return AuditSnapshot(raw, index, admin)


def wait_for_audit(state_dir: Path, complete: Callable[[AuditIndex], bool]) -> AuditSnapshot:
    """Read the audit trail until ``complete`` holds (the writer also runs every second)."""
    deadline = time.monotonic() + AUDIT_DEADLINE_SECONDS
    while True:
        snapshot = read_audit(state_dir)
        if complete(snapshot.by_request):
            return snapshot
        if time.monotonic() > deadline:
            return snapshot  # the caller's assertions say what is missing
        time.sleep(0.5)


def events_of(index: AuditIndex, request_id: str, event_type: str) -> list[dict[str, Any]]:
    return [event for event in index.get(request_id, []) if event["event_type"] == event_type]


def read_stored(state_dir: Path, last: int = 5000) -> AuditSnapshot:
    """``gatehouse audit tail --json`` only: what the stack's own writer stored.

    Unlike :func:`read_audit` this runs no ``audit flush``, so a test sees the
    stack's writer take every event, as it does in a deployed stage.
    ``last``: how many of the newest events are read.
    """
    return _snapshot(run_cli(state_dir, "audit", "tail", "--json", "-n", str(last)))


def wait_for_stored(
    state_dir: Path,
    complete: Callable[[AuditSnapshot], bool],
    seconds: float = AUDIT_DEADLINE_SECONDS,
) -> AuditSnapshot:
    """:func:`read_stored` until ``complete`` holds (or the deadline passes)."""
    deadline = time.monotonic() + seconds
    while True:
        snapshot = read_stored(state_dir)
        if complete(snapshot) or time.monotonic() > deadline:
            return snapshot  # the caller's assertions say what is missing
        time.sleep(0.3)


def aws_client(state: DevState, service: str) -> Any:
    """A boto3 client of the stack's emulated AWS (the fake credentials the stack takes)."""
    import boto3

    return boto3.client(
        service,
        endpoint_url=state.aws_endpoint_url,
        region_name=state.region,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        aws_session_token="testing",
    )


def fresh_window(seconds_needed: float, window: int = 60) -> None:
    """Wait for a window that has ``seconds_needed`` left (windows are aligned to the epoch)."""
    left = window - time.time() % window
    if left < seconds_needed:
        time.sleep(left + 0.05)


class AlertQueue:
    """The alerts EventBridge delivered to ``gatehouse-<stage>-alert-events``, as they arrive.

    Every alert read is kept in ``seen`` (messages are deleted once read), so
    tests filter what they want from one feed rather than racing for messages.
    Delivery is at least once: a copy of an alert already seen (the same
    ``alert_id``, sent again) is counted in ``resent``, not kept twice.
    """

    def __init__(self, state: DevState) -> None:
        self._sqs = aws_client(state, "sqs")
        self._url = self._sqs.get_queue_url(QueueName=f"gatehouse-{state.stage}-alert-events")[
            "QueueUrl"
        ]
        self.seen: list[dict[str, Any]] = []
        self.resent = 0

    def read(self) -> list[dict[str, Any]]:
        """Everything delivered so far (waits at most a second for the queue to be empty)."""
        while True:
            messages = self._sqs.receive_message(
                QueueUrl=self._url, MaxNumberOfMessages=10, WaitTimeSeconds=1
            ).get("Messages", [])
            if not messages:
                return self.seen
            for message in messages:
                put = json.loads(message["Body"])
                assert (put["source"], put["detail-type"]) == ("gatehouse", "Gatehouse Alert")
                if any(a["alert_id"] == put["detail"]["alert_id"] for a in self.seen):
                    self.resent += 1
                else:
                    self.seen.append(put["detail"])
                self._sqs.delete_message(QueueUrl=self._url, ReceiptHandle=message["ReceiptHandle"])

    def matching(self, wanted: Callable[[dict[str, Any]], bool]) -> list[dict[str, Any]]:
        return [alert for alert in self.read() if wanted(alert)]

    def wait_for(
        self, wanted: Callable[[dict[str, Any]], bool], count: int = 1, seconds: float = 30.0
    ) -> list[dict[str, Any]]:
        """The alerts ``wanted`` picks once there are ``count`` (or the deadline passed)."""
        deadline = time.monotonic() + seconds
        while True:
            found = self.matching(wanted)
            if len(found) >= count or time.monotonic() > deadline:
                return found
