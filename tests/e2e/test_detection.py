"""Detection through the shared stack: a deny burst fires once; benign traffic fires nothing.

Alerts are read where the stage puts them: the EventBridge rule's target queue
(``gatehouse-<stage>-alert-events``, what ``PutEvents`` delivered), the
console's line per alert, and ``gatehouse alerts explain``.
"""

from __future__ import annotations

import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING

import pytest

from tests.e2e.support import (
    AlertQueue,
    AuditIndex,
    GatewayClient,
    RunningStack,
    alice,
    events_of,
    fresh_window,
    run_cli,
    token_for,
    wait_for_audit,
)

if TYPE_CHECKING:
    from gatehouse.state import DevState

pytestmark = pytest.mark.e2e

ALERT_DEADLINE_SECONDS = 30.0
BURST = 20  # the shipped deny-burst-principal rule: 20 within 60 s
WINDOW = 60
RUN = 3000  # the benign run: several thousand requests


def decision_ids(index: AuditIndex, request_ids: list[str]) -> list[str]:
    return [event["event_id"] for rid in request_ids for event in events_of(index, rid, "decision")]


def test_a_deny_burst_fires_once_with_its_event_ids(
    running_stack: RunningStack, stack: DevState
) -> None:
    feed = AlertQueue(stack)
    subject = f"prober-{uuid.uuid4().hex[:8]}"
    token = token_for(stack, subject, email=f"{subject}@example.com", groups=["visitors"])
    client = GatewayClient(stack)
    fresh_window(15)
    sent = [client.send("GET", f"/api/probe/{n}", token=token) for n in range(BURST + 3)]
    assert {exchange.status for exchange in sent} == {403}
    request_ids = [exchange.request_id for exchange in sent]

    [alert] = feed.wait_for(
        lambda a: (a.get("principal") or {}).get("subject") == subject,
        seconds=ALERT_DEADLINE_SECONDS,
    )

    snapshot = wait_for_audit(
        running_stack.state_dir,
        lambda index: all(events_of(index, rid, "decision") for rid in request_ids),
    )
    ids = decision_ids(snapshot.by_request, request_ids)
    assert len(ids) == BURST + 3
    assert alert["rule"] == "deny-burst-principal"
    assert alert["threshold"] == BURST
    assert alert["observed"] >= BURST
    # The events it names are this burst's, at least the threshold's worth.
    assert set(alert["event_ids"]) <= set(ids)
    assert len(alert["event_ids"]) >= BURST
    assert alert["query"]["named"] == "events_by_ids"
    # Once: more of the same raises nothing new.
    client.send("GET", "/api/probe/again", token=token)
    time.sleep(2)
    assert (
        len([a for a in feed.read() if (a.get("principal") or {}).get("subject") == subject]) == 1
    )
    # The console printed its line; explain finds the rule and the events in the ledger.
    deadline = time.monotonic() + 10
    while alert["alert_id"] not in running_stack.log_tail(400) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert f"gatehouse alerts explain {alert['alert_id']}" in running_stack.log_tail(400)
    explained = run_cli(running_stack.state_dir, "alerts", "explain", alert["alert_id"])
    assert "rule deny-burst-principal" in explained
    named = len(alert["event_ids"])
    assert f"{named} event(s) named, {named} found in the ledger" in explained


def test_a_benign_mixed_run_fires_nothing(running_stack: RunningStack, stack: DevState) -> None:
    feed = AlertQueue(stack)
    feed.read()  # what earlier tests raised is not this run's
    tag = uuid.uuid4().hex[:8]
    engineers = [
        token_for(stack, f"eng-{tag}-{n}", email=f"eng{n}@example.com", groups=["engineering"])
        for n in range(6)
    ]
    visitor = token_for(stack, f"visitor-{tag}", groups=["visitors"])
    everyone = [alice(stack), *engineers]
    plan: list[tuple[str, str | None]] = []
    for n in range(RUN):
        if n % 400 == 7:
            plan.append((f"/api/denied/{n}", visitor))  # a few refusals: 8 in all
        else:
            plan.append((f"/api/items/{n % 50}", everyone[n % len(everyone)]))
    client = GatewayClient(stack)
    started = time.monotonic()
    with ThreadPoolExecutor(max_workers=8) as pool:
        exchanges = list(pool.map(lambda item: client.send("GET", item[0], token=item[1]), plan))
    elapsed = time.monotonic() - started
    assert elapsed < 120, f"{len(plan)} requests took {elapsed:.1f} s"
    statuses = [exchange.status for exchange in exchanges]
    assert statuses.count(403) == 8
    assert statuses.count(200) == len(plan) - 8
    request_ids = {exchange.request_id for exchange in exchanges}
    snapshot = wait_for_audit(
        running_stack.state_dir,
        lambda index: all(events_of(index, rid, "decision") for rid in request_ids),
    )
    ours = set(decision_ids(snapshot.by_request, sorted(request_ids)))
    subjects = {f"eng-{tag}-{n}" for n in range(6)} | {f"visitor-{tag}", "alice"}
    time.sleep(3)  # the writer has stored every event: give detection's sends a moment
    fired = [
        alert
        for alert in feed.read()
        if set(alert.get("event_ids") or []) & ours
        or (alert.get("principal") or {}).get("subject") in subjects
    ]
    assert fired == []
