"""Every shipped detection rule kind, driven through the local stack and read where alerts land.

Each scenario sends real HTTP through the shared stack's gateway (the grant
API and the browser sign-in included) and asserts on what the stage
delivered: the alerts ``PutEvents`` put on the bus, which the stage's rule
sends to ``gatehouse-<stage>-alert-events``, each compared with the stored
events of the requests that caused it (their exact event ids), and the
absence of any alert before a threshold is crossed.

Source addresses: the gateway emulator takes the TCP peer as the caller's
source IP (API Gateway's ``requestContext.identity.sourceIp``), and on Linux
all of 127.0.0.0/8 is loopback, so a client bound to ``127.x.y.z`` *is* a
caller from that address. Every scenario uses addresses and subjects of its
own (random), so other tests' traffic never counts towards its rules and its
alerts are told apart from theirs.

Stored events are read with ``gatehouse audit tail`` only, never ``audit
flush``: a flush stores events with a writer of the CLI's own, which runs no
detection, so flushed events would never reach the rules.

The scheduled rules (verify failed, dead letters, witness refusals) run on a
private stack of their own (see :func:`test_the_scheduled_checks_fire_once_each`).
"""

from __future__ import annotations

import json
import random
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
import yaml

from chalicelib.ledger.layout import refusal_key
from gatehouse.dev.browser_client import ScriptedBrowser
from gatehouse.state import read_status
from tests.e2e.support import (
    AlertQueue,
    AuditSnapshot,
    Exchange,
    GatewayClient,
    RunningStack,
    aws_client,
    events_of,
    fresh_window,
    run_cli,
    run_cli_status,
    start_stack,
    stop_stack,
    token_for,
    wait_for_stored,
)
from tests.ocsf_validation import validate_record

if TYPE_CHECKING:
    from gatehouse.state import DevState

pytestmark = pytest.mark.e2e

# The shipped rules (chalicelib/detect/default_rules.yaml).
DENY_BURST_IP = 50
DENY_BURST_PRINCIPAL = 20
TOKEN_MANY_IPS = 3
# Long enough for a committed batch's detection to have sent what it raises.
SETTLE_SECONDS = 1.0
SESSION_COOKIE = "__Host-gatehouse-session"
# The private stack's scheduled check runs every 30 s, first 30 s after it started.
CHECKS_DEADLINE_SECONDS = 75.0


# --------------------------------------------------------------------------- helpers


def unique_ip() -> str:
    """A loopback address nobody else uses (never 127.0.0.1, the other tests' address)."""
    return f"127.{random.randint(1, 254)}.{random.randint(1, 254)}.{random.randint(2, 254)}"


def unique(name: str) -> str:
    return f"{name}-{uuid.uuid4().hex[:10]}"


def decision_of(snapshot: AuditSnapshot, exchange: Exchange) -> dict[str, Any]:
    [decision] = events_of(snapshot.by_request, exchange.request_id, "decision")
    return decision


def decision_id(snapshot: AuditSnapshot, exchange: Exchange) -> str:
    return str(decision_of(snapshot, exchange)["event_id"])


def stored(stack: RunningStack, exchanges: list[Exchange]) -> AuditSnapshot:
    """The trail once the stack's writer stored every exchange's decision, and detection ran."""
    wanted = {exchange.request_id for exchange in exchanges}
    snapshot = wait_for_stored(
        stack.state_dir,
        lambda s: all(events_of(s.by_request, rid, "decision") for rid in wanted),
    )
    missing = [rid for rid in wanted if not events_of(snapshot.by_request, rid, "decision")]
    assert not missing, f"decisions never stored: {missing}"
    time.sleep(SETTLE_SECONDS)  # detection runs right after the commit; let it send
    return snapshot


def principal_key(state: DevState, subject: str) -> str:
    return f"{state.issuer} {subject}"


def about(rule: str, subject: str) -> Callable[[dict[str, Any]], bool]:
    return lambda alert: alert["rule"] == rule and alert["subject"] == subject


def utc(moment: float) -> str:
    return datetime.fromtimestamp(moment, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class Feed:
    """The shared stack's alert feed, and every alert this module's scenarios asserted."""

    queue: AlertQueue
    started: float
    asserted: list[dict[str, Any]] = field(default_factory=list)

    def wait_for(
        self, wanted: Callable[[dict[str, Any]], bool], count: int = 1
    ) -> list[dict[str, Any]]:
        return self.queue.wait_for(wanted, count)

    def none(self, wanted: Callable[[dict[str, Any]], bool]) -> None:
        fired = self.queue.matching(wanted)
        assert fired == [], f"fired too early or again: {fired}"

    def one(self, wanted: Callable[[dict[str, Any]], bool]) -> dict[str, Any]:
        found = self.wait_for(wanted)
        assert len(found) == 1, f"expected one alert, got {found}"
        time.sleep(0.5)
        assert self.queue.matching(wanted) == found, "raised more than once"
        self.asserted.append(found[0])
        return found[0]


@pytest.fixture(scope="module")
def feed(running_stack: RunningStack, stack: DevState) -> Feed:
    queue = AlertQueue(stack)
    queue.read()  # earlier tests' alerts are not this module's
    return Feed(queue, time.time())


def client(stack: DevState, ip: str | None = None) -> GatewayClient:
    return GatewayClient(stack, source_ip=ip or unique_ip())


def assert_alert(
    alert: dict[str, Any],
    *,
    rule: str,
    kind: str,
    severity: str,
    subject: str,
    event_ids: list[str],
    threshold: int | None,
    observed: float | None = None,
    principal: str | None = None,
) -> None:
    assert alert["rule"] == rule
    assert alert["kind"] == kind
    assert alert["severity"] == severity
    assert alert["stage"] == "dev"
    assert alert["subject"] == subject
    assert alert["threshold"] == threshold
    if observed is not None:
        assert alert["observed"] == observed
    assert sorted(alert["event_ids"]) == sorted(event_ids), alert
    assert alert["query"]["named"] == "events_by_ids"
    assert set(alert["query"]["parameters"]["ids"].split(",")) == set(event_ids)
    if principal is not None:
        assert (alert["principal"] or {}).get("subject") == principal


# --------------------------------------------------------------------------- counted rules


@dataclass
class Bursts:
    """One window's traffic for both counted rules, before and after each threshold."""

    ip: str
    ip_before: list[Exchange]
    ip_crossing: Exchange
    ip_snapshot: AuditSnapshot
    subject: str
    principal_before: list[Exchange]
    principal_crossing: Exchange
    principal_snapshot: AuditSnapshot
    early: list[dict[str, Any]]


@pytest.fixture(scope="module")
def bursts(running_stack: RunningStack, stack: DevState, feed: Feed) -> Bursts:
    """threshold - 1 denials of an address and of a principal, a look, then one more each.

    The address's denials are of every kind the rule counts: no token (401), a
    token that is not one (401), a valid token refused by the policy (403).
    Both bursts fit one 60 s window (aligned to the epoch).
    """
    burst_ip = unique_ip()
    sprayer = client(stack, burst_ip)
    visitor = token_for(stack, unique("visitor"), groups=["visitors"])
    subject = unique("prober")
    prober = token_for(stack, subject, email=f"{subject}@example.com", groups=["visitors"])
    probing = client(stack)
    fresh_window(15)
    window = int(time.time() // 60)

    def spray(n: int) -> Exchange:
        if n % 3 == 0:
            return sprayer.send("GET", f"/api/spray/{n}")
        if n % 3 == 1:
            return sprayer.send("GET", f"/api/spray/{n}", token="not-a-token")
        return sprayer.send("GET", f"/api/spray/{n}", token=visitor)

    ip_before = [spray(n) for n in range(DENY_BURST_IP - 1)]
    principal_before = [
        probing.send("GET", f"/api/probe/{n}", token=prober)
        for n in range(DENY_BURST_PRINCIPAL - 1)
    ]
    assert {e.status for e in ip_before} == {401, 403}
    assert {e.status for e in principal_before} == {403}
    stored(running_stack, ip_before + principal_before)
    early = feed.queue.matching(lambda a: a["subject"] in (burst_ip, principal_key(stack, subject)))
    ip_crossing = spray(DENY_BURST_IP)
    principal_crossing = probing.send("GET", "/api/probe/last", token=prober)
    assert int(time.time() // 60) == window, "the window ended before the crossing denials"
    snapshot = stored(running_stack, [ip_crossing, principal_crossing])
    return Bursts(
        burst_ip,
        ip_before,
        ip_crossing,
        snapshot,
        subject,
        principal_before,
        principal_crossing,
        snapshot,
        early,
    )


def test_deny_burst_ip_fires_at_its_threshold_with_exactly_those_denials(
    stack: DevState, feed: Feed, bursts: Bursts
) -> None:
    assert [a for a in bursts.early if a["subject"] == bursts.ip] == []
    alert = feed.one(about("deny-burst-ip", bursts.ip))
    denials = [*bursts.ip_before, bursts.ip_crossing]
    ids = [decision_id(bursts.ip_snapshot, e) for e in denials]
    assert len(set(ids)) == DENY_BURST_IP
    assert_alert(
        alert,
        rule="deny-burst-ip",
        kind="deny_burst_ip",
        severity="high",
        subject=bursts.ip,
        event_ids=ids,
        threshold=DENY_BURST_IP,
        observed=DENY_BURST_IP,
    )
    assert alert["window"]["seconds"] == 60


def test_deny_burst_principal_fires_at_its_threshold_not_before(
    stack: DevState, feed: Feed, bursts: Bursts
) -> None:
    key = principal_key(stack, bursts.subject)
    assert [a for a in bursts.early if a["subject"] == key] == []
    alert = feed.one(about("deny-burst-principal", key))
    denials = [*bursts.principal_before, bursts.principal_crossing]
    ids = [decision_id(bursts.principal_snapshot, e) for e in denials]
    assert_alert(
        alert,
        rule="deny-burst-principal",
        kind="deny_burst_principal",
        severity="medium",
        subject=key,
        event_ids=ids,
        threshold=DENY_BURST_PRINCIPAL,
        observed=DENY_BURST_PRINCIPAL,
        principal=bursts.subject,
    )
    assert alert["principal"]["email"] == f"{bursts.subject}@example.com"


# --------------------------------------------------------------------------- distinct / first seen


def test_token_many_ips_fires_on_the_third_address(
    running_stack: RunningStack, stack: DevState, feed: Feed
) -> None:
    subject = unique("copied")
    token = token_for(stack, subject, email=f"{subject}@example.com", groups=["engineering"])
    addresses = [unique_ip() for _ in range(TOKEN_MANY_IPS)]
    fresh_window(20, window=300)
    first_two = [client(stack, ip).send("GET", "/api/items/1", token=token) for ip in addresses[:2]]
    assert [e.status for e in first_two] == [200, 200]
    snapshot = stored(running_stack, first_two)
    token_id = decision_of(snapshot, first_two[0])["principal"]["token_id"]
    assert token_id
    feed.none(about("token-many-ips", token_id))

    third = client(stack, addresses[2]).send("GET", "/api/items/1", token=token)
    assert third.status == 200
    snapshot = stored(running_stack, [third])
    alert = feed.one(about("token-many-ips", token_id))
    assert_alert(
        alert,
        rule="token-many-ips",
        kind="token_many_ips",
        severity="high",
        subject=token_id,
        event_ids=[decision_id(snapshot, e) for e in [*first_two, third]],
        threshold=TOKEN_MANY_IPS,
        observed=TOKEN_MANY_IPS,
        principal=subject,
    )
    assert alert["window"]["seconds"] == 300


def test_first_seen_source_fires_once_for_a_new_address(
    running_stack: RunningStack, stack: DevState, feed: Feed
) -> None:
    subject = unique("traveller")
    token = token_for(stack, subject, email=f"{subject}@example.com", groups=["engineering"])
    key = principal_key(stack, subject)
    home, away = unique_ip(), unique_ip()
    # The first events only start the principal's history.
    at_home = [client(stack, home).send("GET", f"/api/items/{n}", token=token) for n in range(2)]
    stored(running_stack, at_home)
    feed.none(about("first-seen-ip", key))

    from_away = client(stack, away).send("GET", "/api/items/3", token=token)
    snapshot = stored(running_stack, [from_away])
    alert = feed.one(about("first-seen-ip", key))
    assert_alert(
        alert,
        rule="first-seen-ip",
        kind="first_seen_source",
        severity="low",
        subject=key,
        event_ids=[decision_id(snapshot, from_away)],
        threshold=None,
        principal=subject,
    )
    assert away in alert["detail"]

    # The same new address again is known now: nothing; nor is home.
    again = [
        client(stack, away).send("GET", "/api/items/4", token=token),
        client(stack, home).send("GET", "/api/items/5", token=token),
    ]
    stored(running_stack, again)
    assert feed.queue.matching(about("first-seen-ip", key)) == [alert]


# --------------------------------------------------------------------------- each-event rules


def test_break_glass_fires_on_every_use(
    running_stack: RunningStack, stack: DevState, feed: Feed
) -> None:
    """The demo's break-glass: an on-call engineer, no rule allows, a justification given."""
    subject = unique("oncall")
    token = token_for(stack, subject, email=f"{subject}@example.com", groups=["oncall"])
    key = principal_key(stack, subject)
    caller = client(stack)
    justified = [("X-Gatehouse-Justification", "INC-4711 stale cache takes checkout down")]
    # Without a justification it is a plain refusal: nothing.
    refused = caller.send("DELETE", "/api/cache", token=token)
    assert refused.status == 403
    uses = [caller.send("DELETE", "/api/cache", token=token, headers=justified) for _ in range(2)]
    assert [e.status for e in uses] == [200, 200]
    snapshot = stored(running_stack, [refused, *uses])
    for use in uses:
        assert decision_of(snapshot, use)["elevation"]["break_glass"] is True
    alerts = feed.wait_for(about("break-glass-used", key), count=2)
    time.sleep(0.5)
    alerts = feed.queue.matching(about("break-glass-used", key))
    # suppress_seconds 0: one alert per use, each naming its own decision.
    assert sorted(a["event_ids"][0] for a in alerts) == sorted(
        decision_id(snapshot, use) for use in uses
    ), alerts
    for alert in alerts:
        assert_alert(
            alert,
            rule="break-glass-used",
            kind="break_glass",
            severity="high",
            subject=key,
            event_ids=alert["event_ids"],
            threshold=None,
            principal=subject,
        )
        assert len(alert["event_ids"]) == 1
    feed.asserted.extend(alerts)


def _rules_file(path: Path, hours: dict[str, Any]) -> Path:
    document = {
        "version": 1,
        "rules": [
            {
                "name": "sensitive-off-hours",
                "enabled": True,
                "severity": "medium",
                "kind": "sensitive_off_hours",
                "hours": hours,
                # The demo policy marks no route sensitive: the rule names one.
                "routes": ["demo"],
                "suppress_seconds": 0,
            }
        ],
    }
    path.write_text(yaml.safe_dump(document))
    return path


def _replay(stack: RunningStack, rules: Path, begin: float, end: float) -> tuple[int, list[Any]]:
    completed = run_cli_status(
        stack.state_dir,
        "alerts", "test", "--from", utc(begin), "--to", utc(end), "--rules", str(rules),
        "-o", "json",
    )  # fmt: skip
    assert completed.returncode in (0, 1), completed.stderr
    return completed.returncode, json.loads(completed.stdout)


def test_sensitive_off_hours_fires_by_replay_outside_the_hours_only(
    running_stack: RunningStack, stack: DevState, tmp_path: Path
) -> None:
    """Time-dependent with the shipped hours, so replayed with hours chosen around now.

    Real requests to the route are stored by the stack, then ``gatehouse
    alerts test`` replays their window through a rules file whose hours
    exclude now (fires, naming each request's decision) and one whose hours
    include the whole day (fires nothing at all).
    """
    subject = unique("nightowl")
    token = token_for(stack, subject, email=f"{subject}@example.com", groups=["engineering"])
    key = principal_key(stack, subject)
    begin = time.time() - 1
    caller = client(stack)
    uses = [caller.send("GET", f"/api/payroll/{n}", token=token) for n in range(2)]
    refused = caller.send("GET", "/docs/x", token=token_for(stack, unique("v"), groups=["v"]))
    assert [e.status for e in uses] == [200, 200]
    assert refused.status == 403
    snapshot = stored(running_stack, [*uses, refused])
    end = time.time() + 2
    now = datetime.now(UTC)
    start = 18 if now.hour < 12 else 2
    outside = {
        "tz": "UTC",
        "days": ["mon", "tue", "wed", "thu", "fri", "sat", "sun"],
        "from": f"{start:02d}:00",
        "to": f"{start + 2:02d}:00",
    }
    code, fired = _replay(
        running_stack, _rules_file(tmp_path / "outside.yaml", outside), begin, end
    )
    assert code == 1
    mine = [alert for alert in fired if alert["subject"] == key]
    assert sorted(a["event_ids"][0] for a in mine) == sorted(
        decision_id(snapshot, use) for use in uses
    )
    for alert in mine:
        assert (alert["rule"], alert["kind"], alert["severity"]) == (
            "sensitive-off-hours",
            "sensitive_off_hours",
            "medium",
        )
        assert alert["principal"]["subject"] == subject
        assert alert["threshold"] is None
        assert len(alert["event_ids"]) == 1

    whole_day = {**outside, "from": "00:00", "to": "24:00"}
    code, fired = _replay(
        running_stack, _rules_file(tmp_path / "inside.yaml", whole_day), begin, end
    )
    assert (code, fired) == (0, [])


# --------------------------------------------------------------------------- grants


@dataclass
class GrantApi:
    stack: DevState
    caller: GatewayClient

    def call(self, method: str, suffix: str, token: str, body: Any = None) -> Exchange:
        return self.caller.send(
            method,
            "/.gatehouse/grants" + suffix,
            token=token,
            headers=[("Content-Type", "application/json"), ("Accept", "application/json")],
            body=None if body is None else json.dumps(body).encode(),
        )

    def request(self, token: str, path_glob: str) -> str:
        asked = self.call(
            "POST",
            "",
            token,
            {
                "routes": ["demo"],
                "actions": ["GET"],
                "paths": [path_glob],
                "duration": "30m",
                "justification": "TICKET-77 detection scenario",
            },
        )
        assert asked.status in (200, 201), str(asked)
        return str(asked.json()["id"])


def grant_events(snapshot: AuditSnapshot, grant_id: str, action: str) -> list[dict[str, Any]]:
    return [
        event
        for event in snapshot.admin
        if event["event_type"] == "grant"
        and event["grant"]["grant_id"] == grant_id
        and event["grant"]["action"] == action
    ]


def refusals_stored(
    stack: RunningStack, grant_id: str, count: int
) -> tuple[AuditSnapshot, list[dict[str, Any]]]:
    snapshot = wait_for_stored(
        stack.state_dir, lambda s: len(grant_events(s, grant_id, "refused")) >= count
    )
    time.sleep(SETTLE_SECONDS)
    refused = grant_events(snapshot, grant_id, "refused")
    assert len(refused) == count, refused
    return snapshot, sorted(refused, key=lambda e: e["ledger"]["sequence"])


def test_grant_misuse_fires_on_acting_on_an_ended_grant_and_suppression_holds(
    running_stack: RunningStack, stack: DevState, feed: Feed
) -> None:
    """Revoking twice is a 409 refusal: an alert; the same person again within the
    suppression raises nothing new; an approver acting on it is another subject: an alert."""
    requester, approver = unique("erin"), unique("sam")
    erin = token_for(stack, requester, email=f"{requester}@example.com", groups=["support"])
    sam = token_for(stack, approver, email=f"{approver}@example.com", groups=["security"])
    api = GrantApi(stack, client(stack))
    grant_id = api.request(erin, "/api/customers/**")
    approved = api.call("POST", f"/{grant_id}/approve", sam)
    assert approved.status == 200, str(approved)
    revoked = api.call("POST", f"/{grant_id}/revoke", erin, {"reason": "done"})
    assert revoked.status == 200, str(revoked)
    wait_for_stored(running_stack.state_dir, lambda s: bool(grant_events(s, grant_id, "revoked")))
    time.sleep(SETTLE_SECONDS)
    erin_key, sam_key = principal_key(stack, requester), principal_key(stack, approver)
    feed.none(lambda a: a["rule"] == "grant-misuse" and a["subject"] in (erin_key, sam_key))

    again = api.call("POST", f"/{grant_id}/revoke", erin)
    assert again.status == 409, str(again)
    _, [first] = refusals_stored(running_stack, grant_id, 1)
    assert first["grant"]["attempted"] == "revoke"
    alert = feed.one(about("grant-misuse", erin_key))
    assert_alert(
        alert,
        rule="grant-misuse",
        kind="grant_misuse",
        severity="medium",
        subject=erin_key,
        event_ids=[first["event_id"]],
        threshold=None,
        principal=requester,
    )

    # Suppression: the same rule about the same subject within suppress_seconds: nothing new.
    third = api.call("POST", f"/{grant_id}/revoke", erin)
    assert third.status == 409
    refusals_stored(running_stack, grant_id, 2)
    assert feed.queue.matching(about("grant-misuse", erin_key)) == [alert]

    # Another subject is not suppressed: the approver approving the revoked grant.
    late = api.call("POST", f"/{grant_id}/approve", sam)
    assert late.status == 409, str(late)
    _, refused = refusals_stored(running_stack, grant_id, 3)
    by_sam = [e for e in refused if e["principal"]["subject"] == approver]
    assert [e["grant"]["attempted"] for e in by_sam] == ["approve"]
    other = feed.one(about("grant-misuse", sam_key))
    assert other["event_ids"] == [by_sam[0]["event_id"]]
    assert other["principal"]["subject"] == approver


def test_using_a_revoked_grant_is_refused_as_grant_revoked_and_fires(
    running_stack: RunningStack, stack: DevState, feed: Feed
) -> None:
    requester, approver = unique("uma"), unique("sec")
    uma = token_for(stack, requester, email=f"{requester}@example.com", groups=["support"])
    sec = token_for(stack, approver, email=f"{approver}@example.com", groups=["security"])
    caller = client(stack)
    api = GrantApi(stack, caller)
    path = f"/api/customers/{uuid.uuid4().hex[:6]}"
    grant_id = api.request(uma, "/api/customers/**")
    assert api.call("POST", f"/{grant_id}/approve", sec).status == 200
    deadline = time.monotonic() + 10
    while (used := caller.send("GET", path, token=uma)).status != 200:
        assert time.monotonic() < deadline, f"the approved grant was never honoured: {used}"
        time.sleep(0.2)
    revoked = api.call("POST", f"/{grant_id}/revoke", sec, {"reason": "no longer needed"})
    assert revoked.status == 200, str(revoked)
    bound = float(revoked.json()["in_effect_within_seconds"])
    time.sleep(bound + 0.5)
    refused = caller.send("GET", path, token=uma)
    assert refused.status == 403, str(refused)
    snapshot = stored(running_stack, [refused])
    decision = decision_of(snapshot, refused)
    assert decision["decision"]["reasons"] == ["grant_revoked"]
    assert grant_id in (decision["decision"]["detail"] or "")  # the refusal names the grant
    key = principal_key(stack, requester)
    alert = feed.one(about("grant-misuse", key))
    assert_alert(
        alert,
        rule="grant-misuse",
        kind="grant_misuse",
        severity="medium",
        subject=key,
        event_ids=[decision["event_id"]],
        threshold=None,
        principal=requester,
    )


# --------------------------------------------------------------------------- sessions


def test_a_session_cookie_used_after_sign_out_fires(
    running_stack: RunningStack, stack: DevState, feed: Feed
) -> None:
    """Sign in at the dev issuer as a new user (the demo's scripted browser), sign out,
    then present the old cookie again from another address."""
    subject = unique("rita")
    gateway = stack.gateway_url
    browser = ScriptedBrowser()
    login = browser.open(f"{gateway}/api/hello")
    assert login.status == 200
    request_id = login.body.split(b'name="request_id" value="', 1)[1].split(b'"', 1)[0]
    issuer = login.url.split("/authorize", 1)[0]
    signed_in = browser.open(
        f"{issuer}/authorize",
        method="POST",
        form=f"request_id={request_id.decode()}&sub={subject}&email={subject}%40example.com"
        "&groups=engineering",
    )
    assert signed_in.status == 200, signed_in.body[:300]
    cookie = browser.cookies[SESSION_COOKIE]
    page = [("Accept", "text/html"), ("Cookie", f"{SESSION_COOKIE}={cookie}")]
    replayer = client(stack)
    assert replayer.send("GET", "/api/hello", headers=page).status == 200
    browser.open(f"{gateway}/.gatehouse/logout", method="POST", form="")

    replayed = replayer.send("GET", "/api/hello", headers=page)
    assert replayed.status == 302, str(replayed)
    assert "/.gatehouse/login" in (replayed.header("Location") or "")
    snapshot = stored(running_stack, [replayed])
    decision = decision_of(snapshot, replayed)
    assert decision["decision"]["reasons"] == ["session_revoked"]
    session_id = decision["principal"]["browser_session_id"]
    assert session_id
    alert = feed.one(about("revoked-session-used", session_id))
    assert_alert(
        alert,
        rule="revoked-session-used",
        kind="revoked_session_used",
        severity="high",
        subject=session_id,
        event_ids=[decision["event_id"]],
        threshold=None,
        principal=subject,
    )


# --------------------------------------------------------------------------- OCSF


def test_the_ocsf_export_of_this_run_validates_and_a_record_checks_against_the_ledger(
    running_stack: RunningStack, stack: DevState, feed: Feed, tmp_path: Path
) -> None:
    """``gatehouse audit export --format ocsf`` over this module's window: every record
    valid OCSF 1.7.0; every alert asserted above is a stored ``alert`` event, exported as a
    Detection Finding; one of them, proven with ``gatehouse audit prove``, sits at its
    ``metadata.sequence`` under the tree head its ``unmapped`` names, signed."""
    assert feed.asserted, "no scenario asserted an alert"
    alert_ids = {alert["alert_id"] for alert in feed.asserted}
    wait_for_stored(
        running_stack.state_dir,
        lambda s: alert_ids <= {e["event_id"] for e in s.admin if e["event_type"] == "alert"},
    )
    out = tmp_path / "run.ocsf.ndjson"
    run_cli(
        running_stack.state_dir,
        "audit", "export", "--format", "ocsf",
        "--from", utc(feed.started - 1), "--to", utc(time.time() + 2), "--out", str(out),
    )  # fmt: skip
    records = [json.loads(line) for line in out.read_text().splitlines()]
    problems = {r["metadata"]["uid"]: validate_record(r) for r in records}
    assert {uid: p for uid, p in problems.items() if p} == {}
    findings = {r["metadata"]["uid"]: r for r in records if r["class_uid"] == 2004}
    assert alert_ids <= findings.keys()
    sequences = [r["metadata"]["sequence"] for r in records]
    assert sequences == sorted(sequences)
    assert len(set(sequences)) == len(sequences)

    # The oldest alert is the likeliest to be under a signed digest already (every 30 s).
    record = findings[feed.asserted[0]["alert_id"]]
    unmapped = record["unmapped"]
    proof_file = tmp_path / "proof.json"
    deadline = time.monotonic() + 40
    while True:
        proving = run_cli_status(
            running_stack.state_dir, "audit", "prove", record["metadata"]["uid"],
            "--out", str(proof_file),
        )  # fmt: skip
        if proving.returncode == 0 or time.monotonic() > deadline:
            break
        time.sleep(1)
    assert proving.returncode == 0, proving.stderr
    proof = json.loads(proof_file.read_text())
    assert proof["leaf_index"] == record["metadata"]["sequence"]
    assert proof["tree_size"] == int(unmapped["gatehouse.ledger.tree_size"])
    assert proof["root"] == unmapped["gatehouse.ledger.root"]
    assert unmapped["gatehouse.ledger.origin"] == record["metadata"]["log_provider"]
    keys = tmp_path / "stage.jwks.json"
    keys.write_text(run_cli(running_stack.state_dir, "audit", "keys", "-o", "jwks"))
    checked = run_cli_status(
        running_stack.state_dir, "audit", "check-proof", str(proof_file), "--public-key", str(keys)
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr


# --------------------------------------------------------------------------- scheduled rules


@dataclass
class Scheduled:
    stack: RunningStack
    refusal: str
    verify: Any


@pytest.fixture(scope="module", autouse=True)
def scheduled(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Scheduled]:
    """A private stack, started first, whose scheduled check (every 30 s, first at 30 s)
    finds all three conditions; the shared stack's ledger, queue and bucket stay untouched.

    Started before this module's other scenarios so its first check runs while they do.
    """
    private = start_stack(tmp_path_factory.mktemp("gatehouse-checks"))
    try:
        state = private.state
        # A verification that checked nothing (no digest is signed before 30 s): a
        # real `gatehouse audit verify --publish-metric` publishes 1.
        verify = run_cli_status(private.state_dir, "audit", "verify", "--publish-metric")
        # An audit event the writer gave up on: put where the queue's redrive puts it.
        sqs = aws_client(state, "sqs")
        sqs.send_message(QueueUrl=state.audit_dlq_url, MessageBody='{"not": "an audit event"}')
        # A witness's refusal, where a witness publishes it (layout.refusal_key).
        key_id = state.witness_keys[0].split("+")[1]
        refusal = refusal_key(key_id, "audit/v1/digests/2026/12/08/000000-scenario.json")
        s3 = aws_client(state, "s3")
        s3.put_object(
            Bucket=state.audit_bucket,
            Key=refusal,
            Body=json.dumps({"refusal": {"reason": "scenario: inconsistent checkpoint"}}).encode(),
            ChecksumAlgorithm="SHA256",
        )
        yield Scheduled(private, refusal, verify)
    finally:
        stop_stack(private)


def checks_runs(stack: RunningStack) -> int:
    """How often the stack's scheduled check has run (its status file, written every second)."""
    pollers = read_status(stack.state_dir).get("pollers", {})
    return int(pollers.get("detection-checks", {}).get("runs", 0))


def test_the_scheduled_checks_fire_once_each(scheduled: Scheduled) -> None:
    """verify_failed, dead_letters, witness_refused, through the stack's own timer.

    The shared stack runs ``detection_checks`` every 30 s too, but causing these
    conditions there would fail its ledger checks for every other test (a verify
    metric, a dead letter and a refusal all stay). A private stack costs about
    2 s to start; the conditions are caused right after it started, by the
    route an operator's stage would take where that is cheap (a real ``audit
    verify --publish-metric`` that verified nothing), else by putting what the
    producer puts where it puts it (a message on the audit DLQ, a refusal
    object under the witness's prefix: making the writer give up takes
    maxReceiveCount visibility timeouts, and making the witness refuse takes a
    rewritten ledger). Its first scheduled run, 30 s after start, finds all three.
    """
    private = scheduled.stack
    assert scheduled.verify.returncode == 1, scheduled.verify.stdout + scheduled.verify.stderr
    queue = AlertQueue(private.state)
    # Two runs (30 s and 60 s after start; free when the module's other scenarios ran
    # meanwhile): the first fires each, the second finds every condition still there
    # and raises nothing (the scheduled kinds' suppression).
    deadline = time.monotonic() + CHECKS_DEADLINE_SECONDS
    while checks_runs(private) < 2 and time.monotonic() < deadline:
        time.sleep(0.5)
    assert checks_runs(private) >= 2, read_status(private.state_dir)
    time.sleep(1)
    alerts = {alert["rule"]: alert for alert in queue.read()}
    assert len(queue.seen) == 3, queue.seen
    assert sorted(alerts) == ["audit-dead-letters", "ledger-verify-failed", "witness-refused"]
    expected = {
        "ledger-verify-failed": ("verify_failed", "critical", "ledger"),
        "audit-dead-letters": ("dead_letters", "high", "audit-dlq"),
        "witness-refused": ("witness_refused", "critical", scheduled.refusal),
    }
    for rule, (kind, severity, subject) in expected.items():
        alert = alerts[rule]
        assert (alert["kind"], alert["severity"], alert["subject"]) == (kind, severity, subject)
        assert alert["event_ids"] == []
        assert alert["query"] is None
        assert alert["principal"] is None
    assert alerts["audit-dead-letters"]["observed"] == 1
    assert alerts["audit-dead-letters"]["threshold"] == 1
    assert "gatehouse audit dlq" in alerts["audit-dead-letters"]["detail"]
    assert alerts["ledger-verify-failed"]["observed"] >= 1
    assert scheduled.refusal in alerts["witness-refused"]["detail"]
    # Each is an alert event in the private stack's ledger.
    snapshot = wait_for_stored(
        private.state_dir,
        lambda s: (
            {a["alert_id"] for a in alerts.values()}
            <= {e["event_id"] for e in s.admin if e["event_type"] == "alert"}
        ),
    )
    recorded = {e["event_id"]: e for e in snapshot.admin if e["event_type"] == "alert"}
    for alert in alerts.values():
        assert recorded[alert["alert_id"]]["alert"]["rule"] == alert["rule"]
