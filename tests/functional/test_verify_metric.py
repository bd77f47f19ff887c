"""``gatehouse audit verify --publish-metric``: the figure the stage's LedgerVerifyAlarm watches."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import boto3
import pytest
from moto import mock_aws

from chalicelib.ledger.findings import Report
from gatehouse.audit_commands import (
    VERIFY_METRIC_NAME,
    VERIFY_METRIC_NAMESPACE,
    publish_verify_metric,
)
from gatehouse.deploy.templates import load_template
from gatehouse.target import Target
from tests.unit.test_infra import TEMPLATE


def _target(stage: str) -> Target:
    return Target(
        region="us-east-1",
        endpoint_url=None,
        audit_bucket="b",
        audit_queue_url="q",
        audit_dlq_url=None,
        state_table="t",
        local=False,
        stage=stage,
    )


def _published(stage: str) -> list[float]:
    now = datetime.now(UTC)
    stats = boto3.client("cloudwatch", region_name="us-east-1").get_metric_statistics(
        Namespace=VERIFY_METRIC_NAMESPACE,
        MetricName=VERIFY_METRIC_NAME,
        Dimensions=[{"Name": "Stage", "Value": stage}],
        StartTime=now - timedelta(minutes=5),
        EndTime=now + timedelta(minutes=5),
        Period=60,
        Statistics=["Maximum"],
    )["Datapoints"]
    return [point["Maximum"] for point in stats]


def test_findings_are_counted_per_stage_and_a_clean_ledger_is_zero() -> None:
    failed = Report(digests=3)
    failed.add("sequence_gap", "objects", "a gap")
    failed.add("bad_signature", "digest", "not signed by the key")
    with mock_aws():
        publish_verify_metric(_target("prod"), failed)
        publish_verify_metric(_target("dev"), Report(digests=3))

        assert _published("prod") == [2.0]
        assert _published("dev") == [0.0]


def test_the_alarm_watches_what_verify_publishes() -> None:
    alarm = load_template(TEMPLATE)["Resources"]["LedgerVerifyAlarm"]["Properties"]

    assert (alarm["Namespace"], alarm["MetricName"]) == (
        VERIFY_METRIC_NAMESPACE,
        VERIFY_METRIC_NAME,
    )
    assert alarm["Dimensions"] == [{"Name": "Stage", "Value": {"Ref": "Stage"}}]
    assert (alarm["ComparisonOperator"], alarm["Threshold"]) == ("GreaterThanThreshold", 0)
    # In prod a day without a verification alarms too.
    assert alarm["TreatMissingData"] == {"Fn::If": ["IsProd", "breaching", "notBreaching"]}


def _report(digests: int, findings: int) -> Report:
    report = Report(digests=digests)
    for _ in range(findings):
        report.add("bad_signature", "digest", "not signed by the key")
    return report


@pytest.mark.parametrize(
    ("report", "value"),
    [
        (_report(digests=3, findings=0), 0.0),
        (_report(digests=3, findings=2), 2.0),
        (_report(digests=0, findings=0), 1.0),
        (_report(digests=0, findings=2), 3.0),
    ],
    ids=["clean", "findings", "nothing-verified", "nothing-verified-and-findings"],
)
def test_a_verification_that_checked_nothing_never_publishes_zero(
    report: Report, value: float
) -> None:
    alarm = load_template(TEMPLATE)["Resources"]["LedgerVerifyAlarm"]["Properties"]
    with mock_aws():
        publish_verify_metric(_target("prod"), report)

        assert _published("prod") == [value]
    # The alarm fires above its threshold: for everything but a clean verification.
    assert (value > alarm["Threshold"]) is (value != 0.0)
