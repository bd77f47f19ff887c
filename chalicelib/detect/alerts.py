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
"""

from __future__ import annotations

import json
import shlex
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from chalicelib.detect.errors import DetectionUnavailable

if TYPE_CHECKING:
    from chalicelib.audit import AuditEmitter

EVENT_SOURCE = "gatehouse"
DETAIL_TYPE = "Gatehouse Alert"
EVIDENCE_QUERY = "events_by_ids"
MAX_EVENT_IDS = 100
_PUT_EVENTS_BATCH = 10  # EventBridge takes at most 10 entries per PutEvents


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


class AlertChannels:
    """Sends alerts to SNS, EventBridge and the audit trail.

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

    def send(self, alerts: Sequence[Alert]) -> None:
        """Send every alert on every channel, trying them all before raising.

        Raises
        ------
        DetectionUnavailable
            Naming the channels that failed (and the alerts they failed for).
        """
        failures: list[str] = []
        if self._topic_arn:
            for alert in alerts:
                try:
                    self._sns.publish(
                        TopicArn=self._topic_arn,
                        Subject=f"Gatehouse alert: {alert.rule} ({alert.severity})"[:100],
                        Message=json.dumps(alert.as_json(), sort_keys=True),
                    )
                except Exception as exc:  # any botocore failure: the alert is not on SNS
                    failures.append(f"SNS publish of {alert.alert_id}: {exc}")
        for start in range(0, len(alerts), _PUT_EVENTS_BATCH):
            chunk = alerts[start : start + _PUT_EVENTS_BATCH]
            entries = [
                {
                    "Source": EVENT_SOURCE,
                    "DetailType": DETAIL_TYPE,
                    "Detail": json.dumps(alert.as_json(), sort_keys=True),
                    "EventBusName": self._bus,
                }
                for alert in chunk
            ]
            try:
                answer = self._events.put_events(Entries=entries)
                if answer.get("FailedEntryCount"):
                    failures.append(f"EventBridge refused {answer['FailedEntryCount']} alert(s)")
            except Exception as exc:
                failures.append(f"EventBridge PutEvents: {exc}")
        if self._emitter is not None:
            from chalicelib.audit import AuditUnavailable

            try:
                self._emitter.emit_all([alert.audit_event() for alert in alerts])
            except AuditUnavailable as exc:
                failures.append(f"alert events not enqueued: {exc}")
        if failures:
            raise DetectionUnavailable("; ".join(failures))
