"""The scheduled check: rules that read AWS rather than events.

Run every five minutes by the ``detection_checks`` function, which first sends
again the alerts still pending delivery (:func:`resend_pending`). The rules watch
things no event shows when it happens: events the writer gave up on (the
dead-letter queue), a failed ledger verification (the metric
``gatehouse audit verify --publish-metric`` puts), and witnesses' refusals
(objects under ``audit/v1/witness/<key id>/refused/``). Their alerts go
through the same suppression and channels as event rules'.

Round trips per run: one ``Query`` of the pending alerts (and per alert due,
one ``UpdateItem``, the channels' calls, and once delivered one
``DeleteItem``); one ``GetQueueAttributes``, one ``GetMetricStatistics``, one
``ListObjectsV2`` per witness (plus one to list the witnesses), and per finding
one ``TransactWriteItems`` (suppression); per fired alert, the channels' calls.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from chalicelib.detect.alerts import (
    PENDING_GRACE_SECONDS,
    Alert,
    Delivery,
    record_events,
    send_claimed,
    settle,
)

if TYPE_CHECKING:
    from chalicelib.detect.alerts import AlertChannels
    from chalicelib.detect.kinds import Probes
    from chalicelib.detect.rules import RuleSet
    from chalicelib.detect.state import DetectState, Pending

WITNESS_PREFIX = "audit/v1/witness/"
VERIFY_NAMESPACE = "Gatehouse"
VERIFY_METRIC = "LedgerVerifyFindings"
# From this many attempts on, an undelivered alert counts ``AlertDeliveryFailed``
# on every run (about 45 minutes after it was raised); it is still sent again.
STUCK_AFTER_ATTEMPTS = 10
# Pending alerts one run sends again at most (least recently tried first); the rest wait.
RESEND_LIMIT = 100

logger = logging.getLogger(__name__)


class AwsProbes:
    """:class:`~chalicelib.detect.kinds.Probes` over AWS (each read one call or a few)."""

    def __init__(
        self,
        *,
        sqs: Callable[[], Any],
        dlq_url: str | None,
        cloudwatch: Callable[[], Any],
        s3: Callable[[], Any],
        bucket: str,
        stage: str,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._sqs = sqs
        self._dlq_url = dlq_url
        self._cloudwatch = cloudwatch
        self._s3 = s3
        self._bucket = bucket
        self._stage = stage
        self._clock = clock

    def dead_letters(self) -> int:
        if not self._dlq_url:
            return 0
        names = ["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]
        attributes = self._sqs().get_queue_attributes(QueueUrl=self._dlq_url, AttributeNames=names)
        return sum(int(attributes["Attributes"].get(name, 0)) for name in names)

    def verify_findings(self, since: float) -> float | None:
        from datetime import UTC, datetime

        answer = self._cloudwatch().get_metric_statistics(
            Namespace=VERIFY_NAMESPACE,
            MetricName=VERIFY_METRIC,
            Dimensions=[{"Name": "Stage", "Value": self._stage}],
            StartTime=datetime.fromtimestamp(since, UTC),
            EndTime=datetime.fromtimestamp(self._clock() + 60, UTC),
            Period=60,
            Statistics=["Maximum"],
        )
        points = [float(point["Maximum"]) for point in answer.get("Datapoints", [])]
        return max(points) if points else None

    def witness_refusals(self) -> list[str]:
        s3 = self._s3()
        keys: list[str] = []
        paginator = s3.get_paginator("list_objects_v2")
        witnesses = [
            prefix["Prefix"]
            for page in paginator.paginate(
                Bucket=self._bucket, Prefix=WITNESS_PREFIX, Delimiter="/"
            )
            for prefix in page.get("CommonPrefixes", [])
        ]
        for witness in witnesses:
            for page in paginator.paginate(Bucket=self._bucket, Prefix=f"{witness}refused/"):
                keys.extend(item["Key"] for item in page.get("Contents", []))
        return keys


def run_checks(
    rules: RuleSet,
    probes: Probes,
    state: DetectState,
    channels: AlertChannels | None,
    *,
    stage: str,
    new_id: Callable[[], str],
    clock: Callable[[], float] = time.time,
) -> tuple[list[Alert], list[str]]:
    """Run every enabled scheduled rule; return the alerts that fired and the rules that failed.

    A rule whose probe fails is named in the second list (the others still run).

    Raises
    ------
    DetectionUnavailable
        When the state or a channel fails.
    """
    now = clock()
    fired: list[Alert] = []
    failed: list[str] = []
    for rule in rules.scheduled_rules:
        assert rule.kind.check is not None  # scheduled rules have one
        try:
            findings = rule.kind.check(rule.params, probes, now)
        except Exception as exc:  # one probe's failure must not hide the other checks
            failed.append(f"{rule.name}: {exc}")
            continue
        for finding in findings:
            alert = Alert(
                alert_id=new_id(),
                rule=rule.name,
                kind=rule.kind.name,
                severity=rule.severity,
                stage=stage,
                subject=finding.subject,
                principal=None,
                observed=finding.observed,
                threshold=rule.threshold,
                window_from=now,
                window_to=now,
                event_ids=(),
                detail=finding.detail,
                raised_at=now,
            )
            if state.claim(
                rule.name, finding.subject, alert.as_json(), now + rule.suppress_seconds, now
            ):
                fired.append(alert)
    if fired and channels is not None:
        send_claimed(fired, channels, state)
    return fired, failed


@dataclass(frozen=True, slots=True)
class Resent:
    """What :func:`resend_pending` did."""

    delivered: tuple[str, ...] = ()
    # Alert ids still undelivered, each with its attempts so far and what failed.
    failed: tuple[tuple[str, int, str], ...] = ()
    # More alerts were due than one run sends (:data:`RESEND_LIMIT`).
    left_over: bool = False

    @property
    def stuck(self) -> tuple[str, ...]:
        """The failed alerts tried :data:`STUCK_AFTER_ATTEMPTS` times or more."""
        return tuple(alert_id for alert_id, n, _ in self.failed if n >= STUCK_AFTER_ATTEMPTS)


def resend_pending(
    state: DetectState,
    channels: AlertChannels,
    *,
    now: float,
    grace_seconds: float = PENDING_GRACE_SECONDS,
    limit: int = RESEND_LIMIT,
) -> Resent:
    """Finish each alert pending for ``grace_seconds`` or more: what is left of it.

    The same JSON, the same ``alert_id`` (consumers dedupe on it), to the
    channels that do not have it yet; its alert event enqueued again if the
    queue did not take it (the ledger keeps an event id once). Each attempt is
    counted on the pending record before it is made; a finished alert's
    record is deleted. The least recently tried go first, so alerts that keep
    failing take turns with the rest. One that fails again stays, however
    often: it is never given up (see :data:`STUCK_AFTER_ATTEMPTS`).

    Raises
    ------
    DetectionUnavailable
        When the state table cannot be read or written (nothing more is sent).
    """
    due = state.pending(now - grace_seconds, limit + 1)
    left_over = len(due) > limit
    attempts: dict[str, int] = {}
    chosen: list[Pending] = []
    for pending in due[:limit]:
        counted = state.attempt(pending.alert_id, now)
        if counted is None:
            continue  # finished since it was read
        attempts[pending.alert_id] = counted
        chosen.append(pending)
    if not chosen:
        return Resent(left_over=left_over)
    delivery = channels.deliver(
        [pending.alert for pending in chosen],
        taken={pending.alert_id: pending.took for pending in chosen},
    )
    unrecorded = [alert for alert in map(_alert, chosen) if alert is not None]
    recorded_now = record_events(channels, unrecorded)
    enqueued = {alert.alert_id for alert in unrecorded} if recorded_now else set()
    recorded = {p.alert_id: p.recorded or p.alert_id in enqueued for p in chosen}
    settle(delivery, recorded, state)
    failed = tuple(
        (alert_id, attempts[alert_id], _why(delivery, alert_id, recorded[alert_id]))
        for alert_id in attempts
        if alert_id not in delivery.delivered or not recorded[alert_id]
    )
    for alert_id, n, why in failed:
        stuck = n >= STUCK_AFTER_ATTEMPTS
        logger.log(
            logging.ERROR if stuck else logging.WARNING,
            "alert %s still not delivered after %d attempt(s) (%s); it stays pending and is "
            "sent again on the next run%s",
            alert_id,
            n,
            why,
            ": check the functions' right to PutEvents, the bus, the topic and the audit queue"
            if stuck
            else "",
        )
    done = tuple(a for a in delivery.delivered if recorded[a])
    return Resent(done, failed, left_over)


def _alert(pending: Pending) -> Alert | None:
    """The alert whose event is still to be enqueued (None: done, or unreadable, logged)."""
    if pending.recorded:
        return None
    try:
        return Alert.from_json(pending.alert)
    except (KeyError, TypeError, ValueError) as exc:
        logger.error("pending alert %s cannot be read back (%s)", pending.alert_id, exc)
        return None


def _why(delivery: Delivery, alert_id: str, recorded: bool) -> str:
    reasons = [delivery.failed[alert_id]] if alert_id in delivery.failed else []
    if not recorded:
        reasons.append("its alert event is not enqueued")
    return "; ".join(reasons)
