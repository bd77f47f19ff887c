"""The scheduled check: rules that read AWS rather than events.

Run every five minutes by the ``detection_checks`` function. These rules watch
things no event shows when it happens: events the writer gave up on (the
dead-letter queue), a failed ledger verification (the metric
``gatehouse audit verify --publish-metric`` puts), and witnesses' refusals
(objects under ``audit/v1/witness/<key id>/refused/``). Their alerts go
through the same suppression and channels as event rules'.

Round trips per run: one ``GetQueueAttributes``, one ``GetMetricStatistics``,
one ``ListObjectsV2`` per witness (plus one to list the witnesses), and per
finding one ``TransactWriteItems`` (suppression); per fired alert, the
channels' calls.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from chalicelib.detect.alerts import Alert

if TYPE_CHECKING:
    from chalicelib.detect.alerts import AlertChannels
    from chalicelib.detect.kinds import Probes
    from chalicelib.detect.rules import RuleSet
    from chalicelib.detect.state import DetectState

WITNESS_PREFIX = "audit/v1/witness/"
VERIFY_NAMESPACE = "Gatehouse"
VERIFY_METRIC = "LedgerVerifyFindings"


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
        channels.send(fired)
    return fired, failed
