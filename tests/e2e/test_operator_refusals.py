"""Through the running local stack: the operator tools refuse what would mislead them."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from tests.e2e.support import (
    GatewayClient,
    RunningStack,
    backend_echo,
    events_of,
    run_cli,
    run_cli_status,
    token_for,
    wait_for_audit,
)

if TYPE_CHECKING:
    from pathlib import Path

    from gatehouse.state import DevState

pytestmark = pytest.mark.e2e

HOSTILE_SUBJECT = "mallory\x1b]8;;http://evil.example\x07\x1b[2K\rroot\u202e"


def test_audit_tail_shows_client_text_escaped(running_stack: RunningStack, stack: DevState) -> None:
    client = GatewayClient(stack)  # its own: the trail test accounts for the shared one
    token = token_for(stack, HOSTILE_SUBJECT, groups=["engineering"])
    exchange = client.send("GET", "/api/tail-escape", token=token)
    assert backend_echo(exchange)["assertion"]["claims"]["sub"] == HOSTILE_SUBJECT
    wait_for_audit(
        running_stack.state_dir,
        lambda index: bool(events_of(index, exchange.request_id, "response")),
    )

    shown = run_cli(running_stack.state_dir, "audit", "tail", "-n", "100000")

    [line] = [
        line for line in shown.splitlines() if exchange.request_id in line and "response" in line
    ]
    assert "\x1b" not in shown
    assert "\r" not in shown
    assert "\u202e" not in shown
    assert "mallory\\x1b]8;;http://evil.example\\x07\\x1b[2K\\x0droot\\u202e" in line


def test_a_policy_file_with_a_repeated_key_is_refused_with_its_line(
    running_stack: RunningStack, tmp_path: Path
) -> None:
    policy = tmp_path / "policy.yaml"
    policy.write_text(
        "version: 1\n"
        "routes:\n"
        "  - id: demo\n"
        "    upstream: http://127.0.0.1:9/\n"
        "    audience: demo\n"
        "rules:\n"
        "  - id: no-billing\n"
        "    effect: deny\n"
        "    routes: [demo]\n"
        "    actions: ['*']\n"
        "    effect: allow\n"
    )

    for command in ("validate", "diff", "apply"):
        completed = run_cli_status(running_stack.state_dir, "policy", command, str(policy))
        assert completed.returncode == 2, (command, completed.stderr)
        assert "Traceback" not in completed.stderr
        [message] = completed.stderr.strip().splitlines()
        assert ":11: duplicate key 'effect' (first on line 8)" in message


@pytest.mark.parametrize(
    ("window", "code", "said"),
    [
        pytest.param(("--since", "not-a-date"), 2, "not-a-date", id="unreadable time"),
        pytest.param(
            ("--since", "2026-01-02", "--until", "2026-01-01"), 2, "must be after", id="end first"
        ),
        pytest.param(
            ("--since", "2000-01-01", "--until", "2000-01-02"), 1, "nothing verified", id="empty"
        ),
    ],
)
def test_audit_verify_never_passes_having_checked_nothing(
    running_stack: RunningStack, window: tuple[str, ...], code: int, said: str
) -> None:
    completed = run_cli_status(running_stack.state_dir, "audit", "verify", *window)

    assert completed.returncode == code, completed.stdout + completed.stderr
    assert said in completed.stderr
    assert "Traceback" not in completed.stderr
