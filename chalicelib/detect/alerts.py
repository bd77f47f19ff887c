"""Alerts: their JSON, the evidence query, and where they go.

One alert, as SNS, EventBridge (``detail``) and ``gatehouse alerts explain``
see it::

    {"alert_id": "0193...",                 # UUIDv7; also the id of its alert event
     "rule": "deny-burst-principal", "kind": "deny_burst_principal",
     "severity": "medium", "stage": "dev",
     "subject": "https://idp.example.com alice",   # what was counted or remembered
     "principal": {"issuer": ..., "subject": ..., "email": ...} | null,
     "observed": 20, "threshold": 20,       # threshold null for rules firing on each event
     "window": {"from": "2026-...Z", "to": "2026-...Z", "seconds": 60},
     "event_ids": ["...", ...],             # the events that made it fire (at most 100)
     "detail": "20 denied decisions within 60 s",
     "query": {"named": "events_by_ids",
               "parameters": {"ids": "a,b", "from": "2026-12-08 10:00:00", "to": "..."},
               "command": "gatehouse audit query --named events_by_ids --param ..."} | null,
     "raised_at": "2026-...Z"}

An alert is also an audit event (``event_type`` ``alert``, its ``alert``
section), enqueued like every other: the ledger records what was raised.

Delivery is at least once (:func:`send_claimed`, then
:func:`chalicelib.detect.checks.resend_pending`): an alert a channel did not
take stays pending and is sent again, with the same ``alert_id``, which
consumers dedupe on. The alert event is enqueued once, by whoever claimed it.
"""

from __future__ import annotations

import json
import logging
import shlex
import time
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from chalicelib.detect.errors import DetectionUnavailable
from chalicelib.detect.events import parse_time

if TYPE_CHECKING:
    from chalicelib.audit import AuditEmitter
    from chalicelib.detect.state import DetectState

logger = logging.getLogger(__name__)

EVENT_SOURCE = "gatehouse"
DETAIL_TYPE = "Gatehouse Alert"
EVIDENCE_QUERY = "events_by_ids"
MAX_EVENT_IDS = 100
_PUT_EVENTS_BATCH = 10  # EventBridge takes at most 10 entries per PutEvents
# A pending alert younger than this may still be in its claimer's hands (the
# writer's timeout is 45 s): the scheduled check leaves it alone.
PENDING_GRACE_SECONDS = 60.0
# The channels an alert goes to (what a pending alert records as taken).
SNS = "sns"
EVENTBRIDGE = "eventbridge"


def _utc(epoch: float) -> str:
    from chalicelib.audit.schema import utc_timestamp

    return utc_timestamp(epoch)


def _query_time(epoch: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(epoch))


@dataclass(frozen=True, slots=True)
class Alert:
    """One fired rule, about one subject."""

    alert_id: str
    rule: str
    kind: str
    severity: str
    stage: str
    subject: str
    principal: dict[str, Any] | None
    observed: float
    threshold: int | None
    window_from: float
    window_to: float
    event_ids: tuple[str, ...]
    detail: str
    raised_at: float

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Alert:
        """The alert whose JSON (:meth:`as_json`) ``data`` is.

        Raises
        ------
        KeyError, TypeError, ValueError
            When ``data`` is not an alert's JSON.
        """
        window = data["window"]
        threshold = data["threshold"]
        return cls(
            alert_id=str(data["alert_id"]),
            rule=str(data["rule"]),
            kind=str(data["kind"]),
            severity=str(data["severity"]),
            stage=str(data["stage"]),
            subject=str(data["subject"]),
            principal=data["principal"],
            observed=float(data["observed"]),
            threshold=None if threshold is None else int(threshold),
            window_from=parse_time(window["from"]),
            window_to=parse_time(window["to"]),
            event_ids=tuple(str(event_id) for event_id in data["event_ids"]),
            detail=str(data["detail"]),
            raised_at=parse_time(data["raised_at"]),
        )

    def query(self) -> dict[str, Any] | None:
        """The named query showing the evidence, with its parameters and the command."""
        if not self.event_ids:
            return None
        # Whole seconds, widened to take the last millisecond in: ``to`` is exclusive.
        parameters = {
            "ids": ",".join(self.event_ids),
            "from": _query_time(int(self.window_from)),
            "to": _query_time(int(self.window_to) + 1),
        }
        command = (
            "gatehouse audit query --named "
            + EVIDENCE_QUERY
            + "".join(
                f" --param {shlex.quote(f'{name}={value}')}" for name, value in parameters.items()
            )
        )
        return {"named": EVIDENCE_QUERY, "parameters": parameters, "command": command}

    def as_json(self) -> dict[str, Any]:
        """The alert's JSON (see the module's docstring)."""
        return {
            "alert_id": self.alert_id,
            "rule": self.rule,
            "kind": self.kind,
            "severity": self.severity,
            "stage": self.stage,
            "subject": self.subject,
            "principal": self.principal,
            "observed": self.observed,
            "threshold": self.threshold,
            "window": {
                "from": _utc(self.window_from),
                "to": _utc(self.window_to),
                "seconds": round(self.window_to - self.window_from, 3),
            },
            "event_ids": list(self.event_ids),
            "detail": self.detail,
            "query": self.query(),
            "raised_at": _utc(self.raised_at),
        }

    def audit_event(self) -> dict[str, Any]:
        """The alert as an audit event (``event_type`` ``alert``)."""
        from chalicelib.audit.schema import build_alert_event
        from chalicelib.audit.sections import AlertSection, PrincipalSection

        query = self.query()
        section = AlertSection(
            self.alert_id,
            self.rule,
            self.kind,
            self.severity,
            self.subject[:256],
            float(self.observed),
            self.threshold,
            _utc(self.window_from),
            _utc(self.window_to),
            list(self.event_ids),
            None if query is None else query["command"],
            self.detail[:200],
        )
        principal = (
            None
            if self.principal is None
            else PrincipalSection(
                self.principal.get("issuer"),
                self.principal.get("subject"),
                self.principal.get("email"),
            )
        )
        return build_alert_event(
            section, stage=self.stage, event_time=_utc(self.raised_at), principal=principal
        )

    def line(self) -> str:
        """One line for a console (:func:`alert_line`)."""
        return alert_line(self.as_json())


def alert_line(alert: dict[str, Any]) -> str:
    """One line for a console from an alert's JSON: severity, rule, who, the evidence's size."""
    principal = alert.get("principal") or {}
    who = principal.get("email") or principal.get("subject") or alert.get("subject")
    return (
        f"ALERT {str(alert.get('severity')).upper()} {alert.get('rule')}: {alert.get('detail')}"
        f" [{who}] ({len(alert.get('event_ids') or [])} event(s);"
        f" gatehouse alerts explain {alert.get('alert_id')})"
    )


@dataclass(frozen=True, slots=True)
class Delivery:
    """One delivery attempt: the alerts every channel took, and why the others were not."""

    delivered: tuple[str, ...] = ()
    failed: Mapping[str, str] = field(default_factory=dict)  # alert id -> what failed
    # alert id -> the channels that have it (this attempt's and those taken before).
    took: Mapping[str, frozenset[str]] = field(default_factory=dict)


class AlertChannels:
    """Sends alerts to SNS and EventBridge, and their events to the audit trail.

    Round trips for ``n`` alerts: ``n`` SNS publishes, ``ceil(n / 10)``
    PutEvents, and the emitter's batches (``ceil(n / 10)`` SendMessageBatch).
    """

    def __init__(
        self,
        sns: Any,
        topic_arn: str | None,
        events: Any,
        bus: str,
        emitter: AuditEmitter | None,
    ) -> None:
        self._sns = sns
        self._topic_arn = topic_arn
        self._events = events
        self._bus = bus
        self._emitter = emitter

    def deliver(
        self,
        alerts: Sequence[Mapping[str, Any]],
        taken: Mapping[str, Collection[str]] | None = None,
    ) -> Delivery:
        """Offer every alert (its JSON) to every channel that does not have it yet.

        Never raises. ``taken``: alert id -> the channels that took it before
        (a re-send goes only to the others). An alert is delivered when SNS (if
        the stage has a topic) and EventBridge both have it. PutEvents answers
        per entry: an entry with an ``ErrorCode`` (throttled, an internal
        failure) is not delivered, the others of its call are.
        """
        taken = taken or {}
        failures: dict[str, list[str]] = {str(alert["alert_id"]): [] for alert in alerts}
        took: dict[str, set[str]] = {
            alert_id: set(taken.get(alert_id, ())) for alert_id in failures
        }
        if self._topic_arn:
            self._to_topic(
                self._topic_arn,
                [a for a in alerts if SNS not in took[str(a["alert_id"])]],
                took,
                failures,
            )
        self._to_bus(
            [a for a in alerts if EVENTBRIDGE not in took[str(a["alert_id"])]], took, failures
        )
        return Delivery(
            tuple(alert_id for alert_id, why in failures.items() if not why),
            {alert_id: "; ".join(why) for alert_id, why in failures.items() if why},
            {alert_id: frozenset(channels) for alert_id, channels in took.items()},
        )

    def _to_topic(
        self,
        topic_arn: str,
        alerts: Sequence[Mapping[str, Any]],
        took: dict[str, set[str]],
        failures: dict[str, list[str]],
    ) -> None:
        for alert in alerts:
            alert_id = str(alert["alert_id"])
            try:
                self._sns.publish(
                    TopicArn=topic_arn,
                    Subject=f"Gatehouse alert: {alert['rule']} ({alert['severity']})"[:100],
                    Message=json.dumps(alert, sort_keys=True),
                    MessageAttributes={"alert_id": {"DataType": "String", "StringValue": alert_id}},
                )
            except Exception as exc:  # any botocore failure: the alert is not on SNS
                failures[alert_id].append(f"SNS publish: {exc}")
            else:
                took[alert_id].add(SNS)

    def _to_bus(
        self,
        alerts: Sequence[Mapping[str, Any]],
        took: dict[str, set[str]],
        failures: dict[str, list[str]],
    ) -> None:
        for start in range(0, len(alerts), _PUT_EVENTS_BATCH):
            chunk = alerts[start : start + _PUT_EVENTS_BATCH]
            entries = [
                {
                    "Source": EVENT_SOURCE,
                    "DetailType": DETAIL_TYPE,
                    "Detail": json.dumps(alert, sort_keys=True),
                    "EventBusName": self._bus,
                }
                for alert in chunk
            ]
            try:
                answer = self._events.put_events(Entries=entries)
            except Exception as exc:
                for alert in chunk:
                    failures[str(alert["alert_id"])].append(f"EventBridge PutEvents: {exc}")
                continue
            results = answer.get("Entries") or []
            for index, alert in enumerate(chunk):
                result = results[index] if index < len(results) else {}
                alert_id = str(alert["alert_id"])
                if result.get("ErrorCode") or not result.get("EventId"):
                    code = result.get("ErrorCode") or "no entry in the answer"
                    message = result.get("ErrorMessage") or ""
                    failures[alert_id].append(f"EventBridge refused it: {code} {message}".rstrip())
                else:
                    took[alert_id].add(EVENTBRIDGE)

    def record(self, alerts: Sequence[Alert]) -> None:
        """Enqueue the alerts' audit events (the ledger's record of what was raised).

        Raises
        ------
        DetectionUnavailable
            When the queue did not take them.
        """
        if self._emitter is None:
            return
        from chalicelib.audit import AuditUnavailable

        try:
            self._emitter.emit_all([alert.audit_event() for alert in alerts])
        except AuditUnavailable as exc:
            raise DetectionUnavailable(f"alert events not enqueued: {exc}") from exc


def send_claimed(alerts: Sequence[Alert], channels: AlertChannels, state: DetectState) -> Delivery:
    """Deliver alerts just claimed and enqueue their events; forget each one fully done.

    An alert a channel did not take, or whose event the queue did not take, is
    logged and stays pending, noting what was done: the scheduled check finishes
    it once :data:`PENDING_GRACE_SECONDS` have passed (the same alert id; the
    ledger keeps an event id once, so an event enqueued twice is stored once).

    Round trips, beyond :class:`AlertChannels`': per alert, one ``DeleteItem``
    when done, else one ``UpdateItem`` (what was done).

    Raises
    ------
    DetectionUnavailable
        When a pending record could not be cleared or updated (it will be
        sent once more).
    """
    delivery = channels.deliver([alert.as_json() for alert in alerts])
    recorded = record_events(channels, alerts)
    return settle(delivery, {alert.alert_id: recorded for alert in alerts}, state)


def record_events(channels: AlertChannels, alerts: Sequence[Alert]) -> bool:
    """Enqueue the alerts' events; False (logged) when the queue did not take them."""
    if not alerts:
        return True
    try:
        channels.record(alerts)
    except DetectionUnavailable as exc:
        logger.warning("%s; they stay pending: detection_checks enqueues them again", exc)
        return False
    return True


def settle(delivery: Delivery, recorded: Mapping[str, bool], state: DetectState) -> Delivery:
    """Forget each alert delivered and recorded; note what was done for the others."""
    for alert_id, why in delivery.failed.items():
        logger.warning(
            "alert %s not delivered (%s); it stays pending: detection_checks sends it again "
            "after %d s",
            alert_id,
            why,
            PENDING_GRACE_SECONDS,
        )
    problems: list[str] = []
    for alert_id, was_recorded in recorded.items():
        done = alert_id in delivery.delivered and was_recorded
        try:
            if done:
                state.delivered(alert_id)
            else:
                state.progress(alert_id, delivery.took.get(alert_id, frozenset()), was_recorded)
        except DetectionUnavailable as exc:
            problems.append(f"{exc} (it will be sent again)")
    if problems:
        raise DetectionUnavailable("; ".join(problems))
    return delivery
