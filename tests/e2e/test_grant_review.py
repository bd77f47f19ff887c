"""Grant review end to end: an approver reads exactly what is asked, from someone else.

Through the running ``gatehouse dev`` process: a request whose glob holds a
bidi override or a terminal escape is refused at the gateway, and a grant
requested with a token that has no email cannot be approved by anyone, since
nothing shows the approver is not the requester's second account.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import pytest

from tests.e2e.support import GatewayClient, RunningStack, run_cli, run_cli_status, token_for

if TYPE_CHECKING:
    from gatehouse.state import DevState

pytestmark = pytest.mark.e2e


def test_a_hidden_glob_is_refused_and_a_mailboxless_grant_is_never_approved(
    running_stack: RunningStack, stack: DevState
) -> None:
    # A client of its own: the grant API is no proxied request, so these exchanges have
    # no decision event and stay out of the shared client the trail test accounts for.
    gateway = GatewayClient(stack)
    requester = token_for(stack, "review-nomail", groups=["support"])  # no email claim
    approver = token_for(stack, "review-sam", email="review-sam@example.com", groups=["security"])
    body = {
        "routes": ["demo"],
        "actions": ["GET"],
        "duration": "30m",
        "justification": "TICKET-31 review",
    }

    for glob, named in (("/api/x\u202e**/", "U+202E"), ("/api/\x1b[2K/**", "U+001B")):
        refused = gateway.send(
            "POST",
            "/.gatehouse/grants",
            token=requester,
            headers=[("Content-Type", "application/json")],
            body=json.dumps({**body, "paths": [glob]}).encode(),
        )
        assert refused.status == 400, str(refused)
        assert f"path glob 1 holds {named}" in refused.json()["message"]

    requested = run_cli(
        running_stack.state_dir,
        "grant", "request", "--route", "demo", "--path", "/api/customers/**", "--action", "GET",
        "--duration", "30m", "--justification", "TICKET-31 review", "--token", requester,
    )  # fmt: skip
    grant_id = requested.split()[1]
    approval = run_cli_status(
        running_stack.state_dir, "grant", "approve", grant_id, "--yes", "--token", approver
    )

    assert approval.returncode == 2, approval.stdout + approval.stderr
    assert "    /api/customers/**" in approval.stdout.splitlines()
    assert "refused (403)" in approval.stderr
    assert "its requester has no verified email" in approval.stderr
    listed = json.loads(
        run_cli(running_stack.state_dir, "grant", "list", "--json", "--token", approver)
    )
    assert [g["status"] for g in listed if g["id"] == grant_id] == ["pending"]
