"""``gatehouse dev``'s console: one line per request, no moto access log, one stack per state dir.

The shared stack's console (stdout and stderr) is its log file
(``RunningStack.dev.log_path``); these tests read it and never start a stack
of their own: the second ``gatehouse dev`` they run is refused before it
starts anything.
"""

from __future__ import annotations

import re
import subprocess
import sys
import time
import uuid
from typing import TYPE_CHECKING

import boto3
import pytest

from gatehouse.dev.stack import LocalStack, StackOptions
from tests.e2e.support import (
    PROJECT_DIR,
    GatewayClient,
    RunningStack,
    alice,
    stack_environment,
)

if TYPE_CHECKING:
    from pathlib import Path

    from gatehouse.state import DevState

pytestmark = pytest.mark.e2e

CONSOLE_DEADLINE_SECONDS = 10.0
REFUSAL_TIMEOUT_SECONDS = 20.0


def _console_line(running_stack: RunningStack, pattern: str) -> str:
    """The first line of the stack's console that matches ``pattern`` (polled, bounded)."""
    deadline = time.monotonic() + CONSOLE_DEADLINE_SECONDS
    matcher = re.compile(pattern)
    while True:
        text = running_stack.dev.log_path.read_text(errors="replace")
        for line in text.splitlines():
            if matcher.fullmatch(line):
                return line
        if time.monotonic() > deadline:
            pytest.fail(f"no console line matches {pattern!r}:\n{running_stack.log_tail()}")
        time.sleep(0.1)


def test_each_request_is_one_console_line_with_its_decision_and_reason(
    running_stack: RunningStack, stack: DevState, gateway: GatewayClient
) -> None:
    probe = f"/api/console-{uuid.uuid4().hex[:12]}"
    allowed = gateway.send("GET", f"{probe}/hello", token=alice(stack))
    refused = gateway.send("GET", f"{probe}/no-token")
    assert refused.status == 401

    allowed_line = _console_line(
        running_stack, rf"gateway: GET {probe}/hello {allowed.status} (allow|deny) \S+ \d+ms"
    )
    refused_line = _console_line(
        running_stack, rf"gateway: GET {probe}/no-token 401 deny missing_credentials \d+ms"
    )
    log = running_stack.dev.log_path.read_text(errors="replace")
    assert log.count(f" {probe}/hello ") == 1, allowed_line  # one line, not one per stage
    assert log.count(f" {probe}/no-token ") == 1, refused_line


def test_moto_s_own_access_log_stays_off_the_console(
    running_stack: RunningStack, stack: DevState, gateway: GatewayClient
) -> None:
    # Every request makes AWS calls (the audit queue, the policy table).
    gateway.send("GET", "/api/console-quiet", token=alice(stack))
    _console_line(running_stack, r"gateway: GET /api/console-quiet \d+ \S+ \S+ \d+ms")

    log = running_stack.dev.log_path.read_text(errors="replace")
    werkzeug_lines = [line for line in log.splitlines() if re.search(r'" \d{3} ', line)]
    assert werkzeug_lines == []


def test_a_second_stack_over_a_live_one_is_refused_at_once(running_stack: RunningStack) -> None:
    started = time.monotonic()
    completed = subprocess.run(
        [sys.executable, "-m", "gatehouse.cli", "--state-dir", str(running_stack.state_dir),
         "dev", "--port", "0"],
        cwd=PROJECT_DIR,
        env=stack_environment(),
        capture_output=True,
        text=True,
        timeout=REFUSAL_TIMEOUT_SECONDS,
        check=False,
    )  # fmt: skip

    assert completed.returncode == 2, completed.stderr
    live = running_stack.state
    assert completed.stderr == (
        f"gatehouse: a local stack is already running from "
        f"{running_stack.state_dir / 'dev.json'} (pid {live.pid}, gateway {live.gateway_url}): "
        f"use it, stop it (Ctrl-C in its console, or kill {live.pid}), "
        "or start another with --state-dir DIR --port 0\n"
    )
    assert time.monotonic() - started < REFUSAL_TIMEOUT_SECONDS
    assert running_stack.process.poll() is None  # the live stack is untouched


def test_the_queued_count_at_stop_reads_the_audit_queue_and_its_dlq(
    stack: DevState, tmp_path: Path
) -> None:
    # Queues of the test's own, on the shared stack's moto: its writer drains its own.
    sqs = boto3.client(
        "sqs",
        endpoint_url=stack.aws_endpoint_url,
        region_name=stack.region,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    suffix = uuid.uuid4().hex[:8]
    queue = sqs.create_queue(QueueName=f"console-audit-{suffix}")["QueueUrl"]
    dlq = sqs.create_queue(QueueName=f"console-dlq-{suffix}")["QueueUrl"]
    for index in range(3):
        sqs.send_message(QueueUrl=queue, MessageBody=f"event {index}")
    sqs.send_message(QueueUrl=dlq, MessageBody="dead")
    probe = LocalStack(StackOptions(state_dir=tmp_path))
    probe.moto = _Endpoint(stack.aws_endpoint_url)
    probe.resources = _Queues(queue, dlq)  # type: ignore[assignment]

    assert probe.queued_audit_events() == (3, 1)


class _Endpoint:
    def __init__(self, url: str) -> None:
        self.url = url
        self.port = int(url.rsplit(":", 1)[1])


class _Queues:
    def __init__(self, audit_queue_url: str, audit_dlq_url: str) -> None:
        self.audit_queue_url = audit_queue_url
        self.audit_dlq_url = audit_dlq_url
