"""`gatehouse audit tail --follow` over real HTTP: a request's events appear as they are stored."""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
import uuid
from typing import TYPE_CHECKING

from tests.e2e.support import PROJECT_DIR, stack_environment, token_for

if TYPE_CHECKING:
    from gatehouse.state import DevState
    from tests.e2e.support import GatewayClient

FOLLOW_SECONDS = 30


def test_follow_prints_a_filtered_principals_events_and_ends_on_interrupt(
    stack: DevState, gateway: GatewayClient, running_stack: object
) -> None:
    subject = f"follow-{uuid.uuid4().hex[:8]}"
    state_dir = running_stack.state_dir  # type: ignore[attr-defined]
    follower = subprocess.Popen(
        [
            sys.executable, "-m", "gatehouse.cli", "--state-dir", str(state_dir),
            "audit", "tail", "-n", "0", "--follow", "--principal", subject, "-o", "json",
        ],
        cwd=PROJECT_DIR,
        env={**os.environ, **stack_environment()},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    lines: queue.Queue[str] = queue.Queue()
    assert follower.stdout is not None
    threading.Thread(
        target=lambda: [lines.put(line) for line in follower.stdout], daemon=True
    ).start()
    try:
        time.sleep(2.0)  # it has listed what was there before
        token = token_for(stack, subject, email=f"{subject}@example.com", groups=["engineering"])
        other = token_for(stack, "someone-else", groups=["engineering"])
        answered = gateway.send("GET", "/api/hello", token=token)
        gateway.send("GET", "/api/hello", token=other)

        seen: list[dict[str, object]] = []
        deadline = time.monotonic() + FOLLOW_SECONDS
        while time.monotonic() < deadline and len(seen) < 2:
            try:
                seen.append(json.loads(lines.get(timeout=1.0)))
            except queue.Empty:
                continue
    finally:
        follower.send_signal(signal.SIGINT)
        status = follower.wait(timeout=15)
        errors = follower.stderr.read() if follower.stderr else ""
        for stream in (follower.stdout, follower.stderr):
            if stream is not None:
                stream.close()

    assert {event["event_type"] for event in seen} == {"decision", "response"}, seen
    assert all(event["principal"]["subject"] == subject for event in seen)  # type: ignore[index]
    assert {event["request"]["id"] for event in seen} == {answered.request_id}  # type: ignore[index]
    assert status == 130
    assert "Traceback" not in errors
