"""The detector over in-memory state: when rules fire, with which events, and how often."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from chalicelib.audit.schema import utc_timestamp
from chalicelib.detect.alerts import Alert, alert_line
from chalicelib.detect.checks import run_checks
from chalicelib.detect.detector import Detector
from chalicelib.detect.errors import DetectionUnavailable
from chalicelib.detect.kinds import Finding
from chalicelib.detect.rules import RuleSet, parse_rules
from chalicelib.detect.state import MemoryState

ISSUER = "https://idp.example.com"
T0 = 1_796_724_000.0  # 2026-12-08T10:00:00Z, a window boundary for 60 s windows


def rules(*entries: dict[str, Any]) -> RuleSet:
    return parse_rules({"version": 1, "rules": list(entries)}, "test")


BURST = {
    "name": "burst",
    "enabled": True,
    "severity": "medium",
    "kind": "deny_burst_principal",
    "threshold": 5,
    "window_seconds": 60,
    "suppress_seconds": 300,
}


class Ids:
    """Event ids in order: e-000, e-001, ..."""

    def __init__(self) -> None:
        self.next = 0

    def __call__(self) -> str:
        self.next += 1
        return f"e-{self.next - 1:03d}"


def denial(
    event_id: str, at: float, subject: str = "mallory", ip: str = "198.51.100.9"
) -> dict[str, Any]:
    return {
        "schema_version": 1,
        "event_id": event_id,
        "event_type": "decision",
        "event_time": utc_timestamp(at),
        "principal": {"issuer": ISSUER, "subject": subject, "email": f"{subject}@example.com"},
        "source": {"ip": ip, "user_agent": "curl"},
        "decision": {"outcome": "deny", "reasons": ["no_matching_rule"]},
    }


def allowed(
    event_id: str, at: float, subject: str = "alice", ip: str = "203.0.113.7", **extra: Any
) -> dict[str, Any]:
    event = denial(event_id, at, subject, ip)
    event["decision"] = {"outcome": "allow", "reasons": ["allow_rule_matched"]}
    event.update(extra)
    return event


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock(T0 + 30)


def detector(ruleset: RuleSet, clock: Clock, state: MemoryState | None = None) -> Detector:
    counter: Iterator[int] = iter(range(1, 10_000))
    return Detector(
        ruleset,
        state or MemoryState(),
        None,
        stage="test",
        clock=clock,
        new_id=lambda: f"alert-{next(counter)}",
    )


def test_a_burst_fires_once_at_the_threshold_with_every_counted_event(clock: Clock) -> None:
    run = detector(rules(BURST), clock)
    first = [denial(f"e-{i}", T0 + i) for i in range(4)]
    assert run.run(first) == []  # 4 of 5: not yet
    second = [denial(f"e-{i}", T0 + i) for i in range(4, 7)]
    [alert] = run.run(second)
    assert alert.rule == "burst"
    assert alert.event_ids == tuple(f"e-{i}" for i in range(7))
    assert (alert.observed, alert.threshold) == (7, 5)
    assert (alert.window_from, alert.window_to) == (T0, T0 + 60)
    assert alert.principal == {
        "issuer": ISSUER,
        "subject": "mallory",
        "email": "mallory@example.com",
    }
    # The window has fired: more of the same burst raises nothing.
    assert run.run([denial(f"e-{i}", T0 + 10 + i) for i in range(7, 20)]) == []


def test_a_burst_split_by_a_window_boundary_counts_in_each_window(clock: Clock) -> None:
    run = detector(rules(BURST), clock)
    events = [denial(f"e-{i}", T0 - 2 + i) for i in range(8)]  # 2 before the boundary, 6 after
    [alert] = run.run(events)
    # A batch records at most ``threshold`` of its events per window; all are counted.
    assert alert.event_ids == tuple(f"e-{i}" for i in range(2, 7))
    assert alert.observed == 6


def test_other_principals_and_allowed_requests_do_not_count(clock: Clock) -> None:
    run = detector(rules(BURST), clock)
    events = [denial(f"d-{i}", T0 + i, subject=f"user{i}") for i in range(10)]
    events += [allowed(f"a-{i}", T0 + i, subject="mallory") for i in range(10)]
    assert run.run(events) == []


def test_a_repeat_is_suppressed_until_the_rules_suppression_ends(clock: Clock) -> None:
    state = MemoryState()
    run = detector(rules(BURST), clock, state)
    assert len(run.run([denial(f"a-{i}", T0 + i) for i in range(5)])) == 1
    clock.now = T0 + 90
    # The next window crosses too, within 300 s of the first alert: dropped.
    assert run.run([denial(f"b-{i}", T0 + 60 + i) for i in range(5)]) == []
    clock.now = T0 + 400
    [again] = run.run([denial(f"c-{i}", T0 + 360 + i) for i in range(5)])
    assert again.event_ids == tuple(f"c-{i}" for i in range(5))


def test_a_token_from_three_addresses_fires_once() -> None:
    clock = Clock(T0)
    spread = {
        "name": "spread",
        "enabled": True,
        "severity": "high",
        "kind": "token_many_ips",
        "threshold": 3,
        "window_seconds": 300,
    }
    run = detector(rules(spread), clock)

    def use(event_id: str, ip: str) -> dict[str, Any]:
        event = allowed(event_id, T0 + 1, ip=ip)
        event["principal"]["token_id"] = "jti-1"
        return event

    assert run.run([use("e-1", "10.0.0.1"), use("e-2", "10.0.0.1"), use("e-3", "10.0.0.2")]) == []
    [alert] = run.run([use("e-4", "10.0.0.2"), use("e-5", "10.0.0.3")])
    assert alert.subject == "jti-1"
    # Each address's first use in each batch that brought it.
    assert alert.event_ids == ("e-1", "e-3", "e-4", "e-5")
    assert "10.0.0.1, 10.0.0.2, 10.0.0.3" in alert.detail
    assert run.run([use("e-6", "10.0.0.4")]) == []


def test_a_first_seen_address_of_a_known_principal_fires_and_a_new_principal_does_not() -> None:
    clock = Clock(T0)
    seen = {"name": "seen", "enabled": True, "severity": "low", "kind": "first_seen_source"}
    run = detector(rules(seen), clock)
    assert run.run([allowed("e-1", T0)]) == []  # alice's history starts
    assert run.run([allowed("e-2", T0 + 1)]) == []  # the same address
    [alert] = run.run(
        [allowed("e-3", T0 + 2, ip="192.0.2.50"), allowed("e-4", T0 + 3, ip="192.0.2.50")]
    )
    assert alert.event_ids == ("e-3",)
    assert "192.0.2.50" in alert.detail


def test_each_break_glass_use_fires_when_the_rule_does_not_suppress() -> None:
    clock = Clock(T0)
    glass = {
        "name": "glass",
        "enabled": True,
        "severity": "high",
        "kind": "break_glass",
        "suppress_seconds": 0,
    }
    run = detector(rules(glass), clock)
    uses = [allowed(f"e-{i}", T0 + i, elevation={"break_glass": True}) for i in range(3)]
    assert [alert.event_ids for alert in run.run(uses)] == [("e-0",), ("e-1",), ("e-2",)]


def test_alert_events_never_feed_the_rules(clock: Clock) -> None:
    run = detector(rules(BURST), clock)
    alert_events = [{**denial(f"e-{i}", T0 + i), "event_type": "alert"} for i in range(10)]
    assert run.run(alert_events) == []


def test_disabled_rules_do_not_run(clock: Clock) -> None:
    run = detector(rules({**BURST, "enabled": False}), clock)
    assert run.run([denial(f"e-{i}", T0 + i) for i in range(10)]) == []


class _Metrics:
    def __init__(self) -> None:
        self.counted: list[tuple[str, float]] = []

    def add_metric(self, name: str, unit: str, value: float) -> None:
        self.counted.append((name, value))


class _BrokenState(MemoryState):
    def add_count(self, *args: Any, **kwargs: Any) -> Any:
        raise DetectionUnavailable("the state table cannot be used: throttled")


def test_a_failure_is_logged_and_counted_and_never_raised(
    clock: Clock, caplog: pytest.LogCaptureFixture
) -> None:
    metrics = _Metrics()
    run = Detector(rules(BURST), _BrokenState(), None, stage="t", clock=clock, metrics=metrics)
    lines = [json.dumps(denial(f"e-{i}", T0 + i)).encode() for i in range(6)]
    assert run.after_commit(lines, "audit/v1/events/x.ndjson.gz") == []
    assert metrics.counted == [("DetectionFailed", 1)]
    [record] = caplog.records
    assert "audit/v1/events/x.ndjson.gz (6 events)" in record.getMessage()
    assert "gatehouse alerts test" in record.getMessage()
    # Lines that are not JSON are a failure too, not an exception.
    assert run.after_commit([b"{not json"], "k") == []
    assert metrics.counted[-1] == ("DetectionFailed", 1)


def test_rules_that_cannot_be_used_fail_every_batch_loudly(
    clock: Clock, caplog: pytest.LogCaptureFixture
) -> None:
    metrics = _Metrics()
    run = Detector(
        RuleSet((), "r.json"),
        MemoryState(),
        None,
        stage="t",
        metrics=metrics,
        broken="r.json: version: must be 1",
    )
    assert run.after_commit([b"{}"], "k") == []
    assert "version: must be 1" in caplog.records[0].getMessage()
    assert metrics.counted == [("DetectionFailed", 1)]


def test_the_alert_json_shape(clock: Clock) -> None:
    [alert] = detector(rules(BURST), clock).run([denial(f"e-{i}", T0 + i) for i in range(5)])
    shown = alert.as_json()
    assert list(shown) == [
        "alert_id", "rule", "kind", "severity", "stage", "subject", "principal", "observed",
        "threshold", "window", "event_ids", "detail", "query", "raised_at",
    ]  # fmt: skip
    assert shown["window"] == {
        "from": "2026-12-08T10:00:00.000Z",
        "to": "2026-12-08T10:01:00.000Z",
        "seconds": 60.0,
    }
    assert shown["query"] == {
        "named": "events_by_ids",
        "parameters": {
            "ids": "e-0,e-1,e-2,e-3,e-4",
            "from": "2026-12-08 10:00:00",
            "to": "2026-12-08 10:01:01",
        },
        "command": "gatehouse audit query --named events_by_ids --param ids=e-0,e-1,e-2,e-3,e-4"
        " --param 'from=2026-12-08 10:00:00' --param 'to=2026-12-08 10:01:01'",
    }
    assert json.loads(json.dumps(shown)) == shown
    assert alert_line(shown) == (
        "ALERT MEDIUM burst: 5 denied decisions within 60 s (threshold 5) "
        "[mallory@example.com] (5 event(s); gatehouse alerts explain alert-1)"
    )


def test_an_alert_is_an_audit_event_with_its_section_last(clock: Clock) -> None:
    [alert] = detector(rules(BURST), clock).run([denial(f"e-{i}", T0 + i) for i in range(5)])
    event = alert.audit_event()
    assert (event["event_id"], event["event_type"], event["stage"]) == ("alert-1", "alert", "test")
    assert list(event)[-1] == "alert"
    assert event["alert"]["event_ids"] == [f"e-{i}" for i in range(5)]
    assert event["alert"]["query"] == alert.as_json()["query"]["command"]
    assert event["principal"]["subject"] == "mallory"
    assert event["decision"] is None
    assert event["resource"] is None


def test_an_alert_names_at_most_100_events() -> None:
    clock = Clock(T0)
    big = {**BURST, "threshold": 500}
    [alert] = detector(rules(big), clock).run(
        [denial(f"e-{i:04d}", T0 + i / 100) for i in range(600)]
    )
    assert len(alert.event_ids) == 100
    assert alert.observed == 600


class _Probes:
    def __init__(
        self, dead: int = 0, verify: float | None = None, refusals: tuple[str, ...] = ()
    ) -> None:
        self.dead, self.verify, self.refusals = dead, verify, list(refusals)

    def dead_letters(self) -> int:
        return self.dead

    def verify_findings(self, since: float) -> float | None:
        return self.verify

    def witness_refusals(self) -> list[str]:
        return self.refusals


SCHEDULED = rules(
    {"name": "dlq", "enabled": True, "severity": "high", "kind": "dead_letters"},
    {"name": "verify", "enabled": True, "severity": "critical", "kind": "verify_failed"},
    {"name": "witness", "enabled": True, "severity": "critical", "kind": "witness_refused"},
)


@pytest.mark.parametrize(
    ("probes", "expected"),
    [
        pytest.param(_Probes(), [], id="all quiet"),
        pytest.param(_Probes(verify=0.0), [], id="a clean verification"),
        pytest.param(_Probes(dead=3), [("dlq", "audit-dlq", 3)], id="dead letters"),
        pytest.param(_Probes(verify=2.0), [("verify", "ledger", 2.0)], id="verify findings"),
        pytest.param(
            _Probes(refusals=("audit/v1/witness/ab/refused/d1.json",)),
            [("witness", "audit/v1/witness/ab/refused/d1.json", 1)],
            id="a refusal",
        ),
    ],
)
def test_the_scheduled_rules(probes: _Probes, expected: list[tuple[str, str, float]]) -> None:
    fired, failed = run_checks(
        SCHEDULED, probes, MemoryState(), None, stage="t", new_id=lambda: "a", clock=lambda: T0
    )
    assert [(a.rule, a.subject, a.observed) for a in fired] == expected
    assert failed == []


def test_a_scheduled_alert_repeats_only_after_its_suppression() -> None:
    state = MemoryState()
    probes = _Probes(dead=1)
    first, _ = run_checks(
        SCHEDULED, probes, state, None, stage="t", new_id=lambda: "a", clock=lambda: T0
    )
    later, _ = run_checks(
        SCHEDULED, probes, state, None, stage="t", new_id=lambda: "b", clock=lambda: T0 + 600
    )
    much_later, _ = run_checks(
        SCHEDULED, probes, state, None, stage="t", new_id=lambda: "c", clock=lambda: T0 + 3601
    )
    assert [len(first), len(later), len(much_later)] == [1, 0, 1]


class _FailingProbes(_Probes):
    def dead_letters(self) -> int:
        raise RuntimeError("AccessDenied on GetQueueAttributes")


def test_a_failing_probe_is_named_and_the_other_checks_still_run() -> None:
    fired, failed = run_checks(
        SCHEDULED,
        _FailingProbes(verify=1.0),
        MemoryState(),
        None,
        stage="t",
        new_id=lambda: "a",
        clock=lambda: T0,
    )
    assert [a.rule for a in fired] == ["verify"]
    assert failed == ["dlq: AccessDenied on GetQueueAttributes"]


def test_a_finding_without_events_has_no_query() -> None:
    alert = Alert(
        "a",
        "dlq",
        "dead_letters",
        "high",
        "t",
        "audit-dlq",
        None,
        3,
        1,
        T0,
        T0,
        (),
        "3 waiting",
        T0,
    )
    assert alert.query() is None
    assert alert.audit_event()["alert"]["query"] is None
    assert Finding("x", 1, "d").evidence == ()
