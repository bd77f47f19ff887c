"""Runs the enabled event rules over a committed batch, and raises what fires.

The audit writer calls :meth:`Detector.after_commit` once a batch is in the
ledger. Detection never touches the trail: the batch is already committed,
and a failure here is logged (with the batch's object and sequences, for a
replay with ``gatehouse alerts test``) and counted (``DetectionFailed``), not
retried: the writer answers SQS either way. An alert claimed but not delivered
is no such failure: it stays pending (logged) and the scheduled check sends it
again (:func:`chalicelib.detect.alerts.send_claimed`).

Round trips per batch (the only AWS calls; nothing when no rule matches):

* one ``UpdateItem`` per (count or distinct rule, subject, window) the batch
  touches: matches are grouped first, so a burst of 1,000 denies by one
  principal is one update;
* one ``UpdateItem`` per (first-seen rule, principal) whose values this
  container has not recorded yet (a warm container sends none for known ones);
* per candidate alert, one ``TransactWriteItems`` (suppression, record and
  pending delivery);
* per fired alert, one SNS publish and, once delivered, one ``DeleteItem`` (its
  pending record); per 10, one ``PutEvents`` and one ``SendMessageBatch`` (the
  alert events).
"""

from __future__ import annotations

import json
import logging
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING

from chalicelib.detect.alerts import MAX_EVENT_IDS, Alert, send_claimed
from chalicelib.detect.errors import DetectionUnavailable

if TYPE_CHECKING:
    from chalicelib.detect.alerts import AlertChannels
    from chalicelib.detect.events import Event
    from chalicelib.detect.kinds import Match
    from chalicelib.detect.rules import Rule, RuleSet
    from chalicelib.detect.state import DetectState
    from chalicelib.observability import MetricsRecorder

logger = logging.getLogger(__name__)
NewId = Callable[[], str]


def _uuid7() -> str:
    from chalicelib.audit.schema import uuid7

    return uuid7()


class Detector:
    """Evaluates event rules with shared window state, and sends what fires.

    Parameters
    ----------
    rules:
        The stage's rules (only enabled event rules run here).
    state:
        Window state (:class:`~chalicelib.detect.state.DynamoState` deployed,
        :class:`~chalicelib.detect.state.MemoryState` for replays).
    channels:
        Where fired alerts go; None keeps them (a replay: no AWS writes).
    stage:
        The stage alerts name.
    clock:
        Epoch seconds now (suppression and ``raised_at``).
    metrics:
        Where ``AlertsFired`` and ``DetectionFailed`` are counted.
    broken:
        Why the stage's rules cannot be used: every batch then fails detection
        with this message (logged and counted) rather than the writer failing.
    """

    def __init__(
        self,
        rules: RuleSet,
        state: DetectState,
        channels: AlertChannels | None,
        *,
        stage: str,
        clock: Callable[[], float] = time.time,
        metrics: MetricsRecorder | None = None,
        new_id: NewId = _uuid7,
        broken: str | None = None,
    ) -> None:
        self._broken = broken
        self._rules = rules
        self._state = state
        self._channels = channels
        self._stage = stage
        self._clock = clock
        self._metrics = metrics
        self._new_id = new_id

    def after_commit(self, lines: Sequence[bytes], where: str = "") -> list[Alert]:
        """The writer's hook: detect on the stored ``lines``; never raises.

        ``where`` names the batch (its object key) in the log of a failure.
        """
        try:
            if self._broken is not None:
                raise DetectionUnavailable(f"the stage's rules cannot be used: {self._broken}")
            events = [json.loads(line) for line in lines]
            return self.run(events)
        except Exception as exc:  # detection must never fail the writer: log, count, go on
            logger.error(
                "detection failed for %s (%d events): %s; the batch is stored; replay its "
                "window with `gatehouse alerts test --from T --to T` to see what it missed",
                where or "a batch",
                len(lines),
                exc,
            )
            if self._metrics is not None:
                self._metrics.add_metric(name="DetectionFailed", unit="Count", value=1)
            return []

    def run(self, events: Iterable[Event]) -> list[Alert]:
        """Evaluate, claim (suppression) and send; return the alerts that fired.

        An alert a channel did not take is not a failure: it stays pending, and
        the scheduled check sends it again.

        Raises
        ------
        DetectionUnavailable
            When the state fails, or the alert events cannot be enqueued
            (alerts claimed before it are recorded, and pending until delivered).
        """
        alerts = self.fired(self.candidates(events))
        if alerts and self._channels is not None:
            send_claimed(alerts, self._channels, self._state)
        if alerts and self._metrics is not None:
            self._metrics.add_metric(name="AlertsFired", unit="Count", value=len(alerts))
        return alerts

    def candidates(self, events: Iterable[Event]) -> list[Alert]:
        """The alerts the events call for, before suppression."""
        rules = self._rules.event_rules
        matches: dict[str, list[Match]] = {rule.name: [] for rule in rules}
        for event in events:
            if event.get("event_type") == "alert":
                continue  # alerts never feed rules: no alert about alerts
            for rule in rules:
                assert rule.kind.match is not None  # event rules have one
                found = rule.kind.match(rule.params, event)
                if found is not None:
                    matches[rule.name].append(found)
        alerts: list[Alert] = []
        for rule in rules:
            if matches[rule.name]:
                alerts.extend(self._evaluate(rule, matches[rule.name]))
        return alerts

    def fired(self, candidates: Sequence[Alert]) -> list[Alert]:
        """The candidates not suppressed, each recorded in the state."""
        now = self._clock()
        fired = []
        for alert in candidates:
            rule = self._rules.get(alert.rule)
            suppress = rule.suppress_seconds if rule is not None else 0
            if self._state.claim(alert.rule, alert.subject, alert.as_json(), now + suppress, now):
                fired.append(alert)
        return fired

    def _evaluate(self, rule: Rule, matches: list[Match]) -> list[Alert]:
        style = rule.kind.style
        if style == "each":
            return [self._alert(rule, [match], 1, f"{rule.kind.summary}") for match in matches]
        if style == "first_seen":
            return self._first_seen(rule, matches)
        return self._windowed(rule, matches)

    def _windowed(self, rule: Rule, matches: list[Match]) -> list[Alert]:
        threshold, window = rule.params["threshold"], rule.params["window_seconds"]
        groups: dict[tuple[str, int], list[Match]] = defaultdict(list)
        for match in matches:
            groups[(match.subject, int(match.at // window) * window)].append(match)
        alerts = []
        for (subject, start), group in groups.items():
            expires = start + window + 3600
            ids = [match.event_id for match in group][:threshold]
            if rule.kind.style == "count":
                tally = self._state.add_count(
                    rule.name, subject, start, len(group), ids, threshold, expires
                )
                if (
                    tally is None
                    or tally.total < threshold
                    or tally.total - len(group) >= threshold
                ):
                    continue
                detail = f"{tally.total} denied decisions within {window} s (threshold {threshold})"
            else:
                values = {match.value for match in group if match.value is not None}
                firsts = list({match.value: match.event_id for match in reversed(group)}.values())
                tally = self._state.add_distinct(
                    rule.name, subject, start, values, firsts, threshold, expires
                )
                if tally is None or tally.total < threshold:
                    continue
                detail = (
                    f"{tally.total} different values within {window} s "
                    f"(threshold {threshold}): {', '.join(tally.values[:10])}"
                )
            alerts.append(
                self._alert(
                    rule, group, tally.total, detail, ids=tally.ids, window=(start, start + window)
                )
            )
        return alerts

    def _first_seen(self, rule: Rule, matches: list[Match]) -> list[Alert]:
        by_subject: dict[str, dict[str, Match]] = defaultdict(dict)
        for match in matches:
            if match.value is not None:
                by_subject[match.subject].setdefault(match.value, match)
        expires = int(self._clock()) + rule.params["remember_days"] * 86400
        alerts = []
        for subject, firsts in by_subject.items():
            new = self._state.remember(rule.name, subject, set(firsts), expires)
            for value in sorted(new or ()):
                first = firsts[value]
                shown = value if rule.params["field"] == "source_ip" else f"user agent {value}"
                alerts.append(self._alert(rule, [first], 1, f"first seen from {shown}"))
        return alerts

    def _alert(
        self,
        rule: Rule,
        matches: Sequence[Match],
        observed: float,
        detail: str,
        *,
        ids: Sequence[str] | None = None,
        window: tuple[float, float] | None = None,
    ) -> Alert:
        times = [match.at for match in matches]
        start, end = window if window is not None else (min(times), max(times))
        return Alert(
            alert_id=self._new_id(),
            rule=rule.name,
            kind=rule.kind.name,
            severity=rule.severity,
            stage=self._stage,
            subject=matches[0].subject,
            principal=next((m.principal for m in matches if m.principal is not None), None),
            observed=observed,
            threshold=rule.threshold,
            window_from=start,
            window_to=end,
            event_ids=tuple(ids if ids is not None else [m.event_id for m in matches])[
                :MAX_EVENT_IDS
            ],
            detail=detail,
            raised_at=self._clock(),
        )
