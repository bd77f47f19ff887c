"""Alert delivery: what each channel's answer means, what stays pending, what is sent again.

The channels' clients here answer as SNS and EventBridge do (including
PutEvents' per-entry failures, which moto never produces); the state is
:class:`MemoryState`. ``tests/functional/test_detection_delivery.py`` runs the
same paths against moto.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from chalicelib.audit import AuditUnavailable
from chalicelib.detect.alerts import (
    EVENTBRIDGE,
    PENDING_GRACE_SECONDS,
    SNS,
    Alert,
    AlertChannels,
    Delivery,
    send_claimed,
)
from chalicelib.detect.checks import STUCK_AFTER_ATTEMPTS, Resent, resend_pending
from chalicelib.detect.detector import Detector
from chalicelib.detect.errors import DetectionUnavailable
from chalicelib.detect.state import MemoryState, Pending
from tests.unit.test_detect_detector import BURST, T0, denial, rules

TOPIC = "arn:aws:sns:us-east-1:123456789012:alerts"


def alert(number: int, raised_at: float = T0) -> Alert:
    return Alert(
        alert_id=f"alert-{number:03d}",
        rule="burst",
        kind="deny_burst_principal",
        severity="medium",
        stage="test",
        subject=f"https://idp.example.com user{number}",
        principal=None,
        observed=5,
        threshold=5,
        window_from=T0,
        window_to=T0 + 60,
        event_ids=(f"e-{number}",),
        detail="5 denied decisions within 60 s (threshold 5)",
        raised_at=raised_at,
    )


class Sns:
    """SNS: takes every publish but those about ``refused`` alert ids."""

    def __init__(self, refused: set[str] | None = None) -> None:
        self.refused = refused or set()
        self.published: list[dict[str, Any]] = []

    def publish(self, **request: Any) -> dict[str, Any]:
        alert_id = request["MessageAttributes"]["alert_id"]["StringValue"]
        if alert_id in self.refused:
            raise RuntimeError("An error occurred (Throttling) when calling the Publish operation")
        self.published.append(request)
        return {"MessageId": f"m-{len(self.published)}"}


class Events:
    """EventBridge: per-entry ``ErrorCode`` for ``refused`` alert ids; whole calls may fail."""

    def __init__(
        self, refused: set[str] | None = None, failing_calls: set[int] | None = None
    ) -> None:
        self.refused = refused or set()
        self.failing_calls = failing_calls or set()
        self.calls: list[list[dict[str, Any]]] = []
        self.taken: list[dict[str, Any]] = []

    def put_events(self, Entries: list[dict[str, Any]]) -> dict[str, Any]:
        assert len(Entries) <= 10
        self.calls.append(Entries)
        if len(self.calls) in self.failing_calls:
            raise RuntimeError("An error occurred (InternalException) when calling PutEvents")
        answers = []
        for entry in Entries:
            if json.loads(entry["Detail"])["alert_id"] in self.refused:
                answers.append({"ErrorCode": "InternalFailure", "ErrorMessage": "try again"})
            else:
                self.taken.append(json.loads(entry["Detail"]))
                answers.append({"EventId": f"ev-{len(self.taken)}"})
        failed = sum("ErrorCode" in answer for answer in answers)
        return {"FailedEntryCount": failed, "Entries": answers}


class Emitter:
    def __init__(self, fails: bool = False) -> None:
        self.fails = fails
        self.emitted: list[dict[str, Any]] = []

    def emit_all(self, events: list[dict[str, Any]]) -> None:
        if self.fails:
            raise AuditUnavailable("the audit queue cannot be used")
        self.emitted.extend(events)


def channels(
    sns: Sns | None = None, events: Events | None = None, emitter: Emitter | None = None
) -> AlertChannels:
    return AlertChannels(
        sns or Sns(),
        TOPIC,
        events or Events(),
        "default",
        emitter,  # type: ignore[arg-type]
    )


# --- deliver: one attempt, every channel ------------------------------------------------------


def test_an_alert_is_delivered_when_every_channel_took_it_and_carries_its_id() -> None:
    sns, events = Sns(), Events()
    shown = alert(1).as_json()
    delivery = channels(sns, events).deliver([shown])
    assert delivery == Delivery(("alert-001",), {}, {"alert-001": frozenset({SNS, EVENTBRIDGE})})
    [published] = sns.published
    assert json.loads(published["Message"]) == shown
    assert published["MessageAttributes"]["alert_id"]["StringValue"] == "alert-001"
    assert events.taken == [shown]


def test_put_events_failures_count_per_entry() -> None:
    events = Events(refused={"alert-002", "alert-011"}, failing_calls={3})
    many = [alert(n).as_json() for n in range(1, 26)]
    delivery = channels(events=events).deliver(many)
    assert [len(call) for call in events.calls] == [10, 10, 5]
    # The refused entries, and every alert of the call that failed whole; the rest are done.
    assert set(delivery.failed) == {"alert-002", "alert-011"} | {
        f"alert-{n:03d}" for n in range(21, 26)
    }
    assert "InternalFailure try again" in delivery.failed["alert-002"]
    assert "InternalException" in delivery.failed["alert-021"]
    assert set(delivery.delivered) == {a["alert_id"] for a in many} - set(delivery.failed)


def test_an_answer_without_entries_delivers_nothing() -> None:
    class Terse(Events):
        def put_events(self, Entries: list[dict[str, Any]]) -> dict[str, Any]:
            return {"FailedEntryCount": 0}

    delivery = channels(events=Terse()).deliver([alert(1).as_json()])
    assert delivery.delivered == ()
    assert "no entry in the answer" in delivery.failed["alert-001"]


def test_an_sns_failure_fails_only_its_alert_and_every_channel_is_still_tried() -> None:
    events = Events()
    delivery = channels(Sns(refused={"alert-001"}), events).deliver(
        [alert(1).as_json(), alert(2).as_json()]
    )
    assert delivery.delivered == ("alert-002",)
    assert list(delivery.failed) == ["alert-001"]
    assert "SNS publish" in delivery.failed["alert-001"]
    assert [a["alert_id"] for a in events.taken] == ["alert-001", "alert-002"]


def test_without_a_topic_eventbridge_alone_delivers() -> None:
    sns = Sns(refused={"alert-001"})
    delivery = AlertChannels(sns, None, Events(), "default", None).deliver([alert(1).as_json()])
    assert (delivery.delivered, sns.published) == (("alert-001",), [])


# --- send_claimed: the claimer's attempt ------------------------------------------------------


def claimed(state: MemoryState, *alerts: Alert, now: float = T0) -> list[Alert]:
    for one in alerts:
        assert state.claim(one.rule, one.subject, one.as_json(), now + 300, now)
    return list(alerts)


def test_a_claim_records_the_alert_pending_delivery_and_a_suppressed_one_nothing() -> None:
    state = MemoryState()
    [first] = claimed(state, alert(1))
    assert state.pending_alerts == {"alert-001": Pending(first.as_json(), T0, 1)}
    repeat = alert(2)
    assert not state.claim(first.rule, first.subject, repeat.as_json(), T0 + 400, T0 + 10)
    assert list(state.pending_alerts) == ["alert-001"]


def test_send_claimed_clears_the_delivered_keeps_the_rest_and_records_each_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    state, emitter = MemoryState(), Emitter()
    alerts = claimed(state, alert(1), alert(2), alert(3))
    delivery = send_claimed(alerts, channels(events=Events({"alert-002"}), emitter=emitter), state)
    assert delivery.delivered == ("alert-001", "alert-003")
    assert list(state.pending_alerts) == ["alert-002"]
    assert [e["event_id"] for e in emitter.emitted] == ["alert-001", "alert-002", "alert-003"]
    [warning] = caplog.records
    assert "alert-002" in warning.getMessage()
    assert "stays pending" in warning.getMessage()


def test_an_alert_whose_event_the_queue_refused_stays_pending_until_it_is_enqueued() -> None:
    state, sns, events = MemoryState(), Sns(), Events()
    alerts = claimed(state, alert(1), now=T0)
    send_claimed(alerts, channels(sns, events, emitter=Emitter(fails=True)), state)
    assert [a["alert_id"] for a in events.taken] == ["alert-001"]
    pending = state.pending_alerts["alert-001"]
    assert (pending.took, pending.recorded) == (frozenset({SNS, EVENTBRIDGE}), False)

    emitter = Emitter()
    resent = resend_pending(
        state, channels(sns, events, emitter), now=T0 + PENDING_GRACE_SECONDS + 1
    )

    # Its event is enqueued now, the same as the claimer's would have been; no channel
    # that had the alert gets it twice.
    [event] = emitter.emitted
    assert (event["event_id"], event["alert"]) == ("alert-001", alerts[0].audit_event()["alert"])
    assert (len(sns.published), len(events.taken)) == (1, 1)
    assert resent == Resent(("alert-001",), (), False)
    assert state.pending_alerts == {}


def test_a_re_send_goes_only_to_the_channel_that_did_not_take_the_alert() -> None:
    state, sns, emitter = MemoryState(), Sns(), Emitter()
    alerts = claimed(state, alert(1), now=T0)
    send_claimed(alerts, channels(sns, Events({"alert-001"}), emitter), state)
    assert state.pending_alerts["alert-001"].took == frozenset({SNS})

    events = Events()
    for run in (1, 2):  # the first run finishes it; the second finds nothing to do
        resend_pending(state, channels(sns, events, emitter), now=T0 + 300 * run)

    assert len(sns.published) == 1
    assert [a["alert_id"] for a in events.taken] == ["alert-001"]
    assert [e["event_id"] for e in emitter.emitted] == ["alert-001"]
    assert state.pending_alerts == {}


def test_alerts_that_keep_failing_take_turns_with_the_others() -> None:
    state = MemoryState()
    for n in range(1, 4):
        claimed(state, alert(n), now=T0)
    refusing = channels(events=Events({"alert-001", "alert-002", "alert-003"}), emitter=Emitter())
    tried = [
        resend_pending(state, refusing, now=T0 + 300 * run, limit=1).failed[0][0]
        for run in range(1, 7)
    ]
    assert tried == ["alert-001", "alert-002", "alert-003"] * 2


def test_a_delivered_alert_whose_record_stays_is_said() -> None:
    class Stuck(MemoryState):
        def delivered(self, alert_id: str) -> None:
            raise DetectionUnavailable(f"cannot clear pending alert {alert_id}: throttled")

    state, emitter = Stuck(), Emitter()
    alerts = claimed(state, alert(1))
    with pytest.raises(DetectionUnavailable, match="it will be sent again"):
        send_claimed(alerts, channels(emitter=emitter), state)
    assert len(emitter.emitted) == 1  # recorded all the same


class _Metrics:
    def __init__(self) -> None:
        self.counted: list[tuple[str, float]] = []

    def add_metric(self, name: str, unit: str, value: float) -> None:
        self.counted.append((name, value))


def test_the_writer_raises_an_undelivered_alert_without_a_detection_failure() -> None:
    state, metrics, events = MemoryState(), _Metrics(), Events(failing_calls={1})
    run = Detector(
        rules(BURST),
        state,
        channels(events=events, emitter=Emitter()),
        stage="test",
        clock=lambda: T0 + 30,
        metrics=metrics,
        new_id=lambda: "alert-001",
    )
    lines = [json.dumps(denial(f"e-{i}", T0 + i)).encode() for i in range(5)]
    [fired] = run.after_commit(lines, "k")
    assert metrics.counted == [("AlertsFired", 1)]
    assert state.pending_alerts["alert-001"] == Pending(
        fired.as_json(), T0 + 30, 1, took=frozenset({SNS}), recorded=True
    )


# --- resend_pending: the scheduled run's attempts ---------------------------------------------


def test_only_alerts_pending_past_the_grace_period_are_sent_again() -> None:
    state = MemoryState()
    claimed(state, alert(1), now=T0)
    claimed(state, alert(2), now=T0 + 30)
    sns, events, emitter = Sns(), Events(), Emitter()
    resent = resend_pending(
        state, channels(sns, events, emitter), now=T0 + PENDING_GRACE_SECONDS + 1
    )
    assert resent == Resent(("alert-001",), (), False)
    assert [a["alert_id"] for a in events.taken] == ["alert-001"]
    assert list(state.pending_alerts) == ["alert-002"]
    # Claimed but never finished (its claimer died): its event is enqueued now.
    assert [e["event_id"] for e in emitter.emitted] == ["alert-001"]
    # Nothing due: no channel called.
    events.calls.clear()
    assert resend_pending(state, channels(sns, events), now=T0 + 60) == Resent()
    assert events.calls == []


def test_every_attempt_is_counted_and_a_stuck_alert_is_kept_and_named() -> None:
    state = MemoryState()
    claimed(state, alert(1))
    refusing = channels(events=Events({"alert-001"}))
    results = [
        resend_pending(state, refusing, now=T0 + 300 * run)
        for run in range(1, STUCK_AFTER_ATTEMPTS)
    ]
    assert [r.failed[0][1] for r in results] == list(range(2, STUCK_AFTER_ATTEMPTS + 1))
    assert [bool(r.stuck) for r in results] == [False] * (STUCK_AFTER_ATTEMPTS - 2) + [True]
    assert results[-1].stuck == ("alert-001",)
    assert state.pending_alerts["alert-001"].attempts == STUCK_AFTER_ATTEMPTS
    # Never given up: the next run tries again, and delivers.
    assert resend_pending(state, channels(), now=T0 + 86400).delivered == ("alert-001",)
    assert state.pending_alerts == {}


def test_a_run_sends_at_most_its_limit_oldest_first_and_says_more_wait() -> None:
    state = MemoryState()
    claimed(state, *(alert(n) for n in range(1, 6)))
    resent = resend_pending(state, channels(), now=T0 + 3600, limit=3)
    assert resent.delivered == ("alert-001", "alert-002", "alert-003")
    assert resent.left_over
    assert not resend_pending(state, channels(), now=T0 + 3600, limit=3).left_over
    assert state.pending_alerts == {}


def test_an_alert_delivered_since_it_was_read_is_not_sent_again() -> None:
    class Racing(MemoryState):
        def attempt(self, alert_id: str, now: float) -> int | None:
            self.delivered(alert_id)  # its writer cleared it meanwhile
            return super().attempt(alert_id, now)

    state, events = Racing(), Events()
    claimed(state, alert(1))
    assert resend_pending(state, channels(events=events), now=T0 + 3600) == Resent()
    assert events.calls == []


def test_the_grace_period_outlasts_the_writer() -> None:
    # A pending alert older than the grace period is no longer in a writer's hands.
    config = json.loads((Path(__file__).parents[2] / ".chalice" / "config.json").read_text())
    for settings in config["stages"].values():
        writer = settings["lambda_functions"]["audit_writer"]
        assert writer["lambda_timeout"] < PENDING_GRACE_SECONDS


def test_an_alert_reads_back_from_its_json_as_the_same_alert() -> None:
    original = alert(1)
    read = Alert.from_json(json.loads(json.dumps(original.as_json())))

    assert read.as_json() == original.as_json()
    assert read.audit_event()["alert"] == original.audit_event()["alert"]
    with pytest.raises(KeyError):
        Alert.from_json({"alert_id": "x"})
