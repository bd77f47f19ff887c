"""``gatehouse audit verify`` never passes while checking nothing.

The scheduled verification feeds the tamper alarm: a ``--since`` it cannot
read, a window that ends before it starts, or a window no digest falls in
must not end as "ok" (exit 0, metric 0). The ledger is written and digested
by the real writers on moto, its digests stamped 2.5 h, 1.5 h and 0.5 h ago,
so relative windows have an hour of slack on either side.
"""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import boto3
import pytest

from gatehouse.audit_commands import VERIFY_METRIC_NAME, VERIFY_METRIC_NAMESPACE
from gatehouse.cli import main
from tests.functional.test_ledger_verify import ANCHOR_BUCKET, Ledger

if TYPE_CHECKING:
    from gatehouse.dev.bootstrap import Resources

EMPTY_ADVICE = "widen the window, or pass --allow-empty where an empty one is expected"


@pytest.fixture
def cli(aws: Resources, monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> list[str]:
    monkeypatch.setenv("AWS_REGION", "us-east-1")
    monkeypatch.setenv("GATEHOUSE_STAGE", "test")
    monkeypatch.setenv("GATEHOUSE_AUDIT_BUCKET", aws.audit_bucket)
    monkeypatch.setenv("GATEHOUSE_AUDIT_QUEUE_URL", aws.audit_queue_url)
    monkeypatch.setenv("GATEHOUSE_STATE_TABLE", aws.state_table)
    monkeypatch.setenv("GATEHOUSE_DIGEST_KEY_ID", aws.digest_key_alias)
    monkeypatch.setenv("GATEHOUSE_LEDGER_ANCHOR", f"s3://{ANCHOR_BUCKET}/ledger")
    return ["--state-dir", str(tmp_path / "no-local-stack"), "audit", "verify"]


@pytest.fixture
def fresh(aws: Resources) -> Ledger:
    """A stage whose ledger has events but no digest yet."""
    built = Ledger(aws)
    built.write(3)
    return built


@pytest.fixture
def recent(fresh: Ledger) -> Ledger:
    """Three digests, their periods ending 2.5 h, 1.5 h and 0.5 h ago."""
    fresh.clock = time.time() - 3.5 * 3600
    fresh.digest()
    fresh.write(2)
    fresh.digest()
    fresh.write(4)
    fresh.digest()
    return fresh


def published() -> list[float]:
    now = datetime.now(UTC)
    points = boto3.client("cloudwatch", region_name="us-east-1").get_metric_statistics(
        Namespace=VERIFY_METRIC_NAMESPACE,
        MetricName=VERIFY_METRIC_NAME,
        Dimensions=[{"Name": "Stage", "Value": "test"}],
        StartTime=now - timedelta(minutes=5),
        EndTime=now + timedelta(minutes=5),
        Period=60,
        Statistics=["Maximum"],
    )["Datapoints"]
    return [point["Maximum"] for point in points]


# --- usage errors: exit 2, one line, nothing checked or published ------------------------------


@pytest.mark.parametrize(
    ("window", "problem"),
    [
        (["--since", "not-a-date"], "--since 'not-a-date' is not a time: use ISO 8601 such as"),
        (["--until", "2026-13-01"], "--until '2026-13-01' is not a time: use ISO 8601 such as"),
        (["--since", "-1y"], "--since '-1y' is not a time: use ISO 8601 such as"),
        (["--since=-1y"], "--since '-1y' is not a time: use ISO 8601 such as"),
        (
            ["--since", "2026-12-07T10:00:00Z", "--until", "2026-12-07T09:00:00Z"],
            "--until (2026-12-07T09:00:00Z: 2026-12-07T09:00:00Z) must be after --since",
        ),
        (
            ["--since", "2026-12-07T10:00:00Z", "--until", "2026-12-07T11:00:00+01:00"],
            "the window holds nothing",
        ),
        (["--since=-1h", "--until=-2h"], "the window holds nothing"),
        (["--since", "today", "--until", "yesterday"], "the window holds nothing"),
    ],
    ids=[
        "since-not-a-date",
        "until-month-13",
        "negative-value-without-equals",
        "unknown-unit",
        "end-before-start",
        "end-equals-start-across-offsets",
        "relative-end-before-start",
        "today-until-yesterday",
    ],
)
def test_an_unreadable_time_or_an_empty_window_is_a_usage_error(
    recent: Ledger,
    cli: list[str],
    capsys: pytest.CaptureFixture[str],
    window: list[str],
    problem: str,
) -> None:
    status = main([*cli, *window, "--publish-metric"])

    assert status == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err.startswith("gatehouse: ")
    assert problem in err
    assert err.count("\n") == 1
    assert published() == []


def test_a_time_error_says_every_form_that_is_accepted(
    recent: Ledger, cli: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main([*cli, "--since", "last tuesday"]) == 2

    assert capsys.readouterr().err == (
        "gatehouse: --since 'last tuesday' is not a time: use ISO 8601 such as "
        "2026-12-07T10:00:00Z or 2026-12-07 (UTC when no offset), relative such as -30m, -1h "
        "or -2d (that long ago; write --since=-1h or --since 1h), now, today or yesterday "
        "(midnight UTC)\n"
    )


# --- windows that hold digests: exit 0 -------------------------------------------------------


@pytest.mark.parametrize(
    ("window", "digests"),
    [
        ([], 3),
        (["--since", "yesterday"], 3),
        (["--since=-2h"], 2),
        (["--since", "1h"], 1),
        (["--until=-1h"], 2),
        (["--since=-3h", "--until=-1h"], 2),
        (["--since", "2000-01-01", "--until", "now"], 3),
    ],
    ids=[
        "everything",
        "since-yesterday-midnight",
        "since-2h-ago",
        "since-1h-ago-without-minus",
        "until-1h-ago",
        "between-3h-and-1h-ago",
        "iso-date-until-now",
    ],
)
def test_a_window_with_digests_verifies_them(
    recent: Ledger,
    cli: list[str],
    capsys: pytest.CaptureFixture[str],
    window: list[str],
    digests: int,
) -> None:
    assert main([*cli, *window]) == 0

    out, err = capsys.readouterr()
    assert out.startswith(f"ok: {digests} digests, ")
    assert err == ""


# --- nothing verified: exit 1 unless --allow-empty, and never a clean metric ------------------


@pytest.mark.parametrize(
    "window",
    [
        ["--since", "2000-01-01", "--until", "2000-01-02"],
        ["--until=-3h"],
        ["--since", "now"],
        ["--since", "2100-01-01T00:00:00Z"],
    ],
    ids=["long-ago", "before-the-first-digest", "since-now", "in-the-future"],
)
def test_a_window_without_digests_verifies_nothing_and_says_so(
    recent: Ledger, cli: list[str], capsys: pytest.CaptureFixture[str], window: list[str]
) -> None:
    assert main([*cli, *window]) == 1

    out, err = capsys.readouterr()
    assert out.startswith("NOTHING VERIFIED: 0 digests, 0 objects, 0 events")
    assert err.startswith("gatehouse: nothing verified: no digest's period ends in the window ")
    assert err.endswith(f"; {EMPTY_ADVICE}\n")

    assert main([*cli, *window, "--allow-empty"]) == 0

    out, err = capsys.readouterr()
    assert out.startswith("NOTHING VERIFIED: 0 digests")
    assert err.endswith("(accepted: --allow-empty)\n")


def test_the_message_shows_the_window_as_it_was_read(
    recent: Ledger, cli: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main([*cli, "--since", "2000-01-01", "--until", "2000-01-02T01:00+01:00"]) == 1

    assert capsys.readouterr().err == (
        "gatehouse: nothing verified: no digest's period ends in the window "
        f"2000-01-01T00:00:00Z .. 2000-01-02T00:00:00Z; {EMPTY_ADVICE}\n"
    )


def test_a_stage_without_digests_verifies_nothing(
    fresh: Ledger, cli: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(cli) == 1

    out, err = capsys.readouterr()
    assert out.startswith("NOTHING VERIFIED: 0 digests")
    assert err == (
        "gatehouse: nothing verified: the bucket holds no digest that verifies (a new stage's "
        f"first is signed hourly); {EMPTY_ADVICE}\n"
    )
    assert main([*cli, "--allow-empty"]) == 0


def test_json_output_verifying_nothing_exits_1_with_the_report_on_stdout(
    recent: Ledger, cli: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main([*cli, "--until=-3h", "--json"]) == 1

    out, err = capsys.readouterr()
    report = json.loads(out)
    assert (report["ok"], report["digests"], report["findings"]) == (True, 0, [])
    assert report["verified_nothing"] is True
    assert err.startswith("gatehouse: nothing verified: ")

    assert main([*cli, "--since=-2h", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert (report["digests"], report["verified_nothing"]) == (2, False)


@pytest.mark.parametrize(
    ("window", "status", "metric"),
    [
        ([], 0, 0.0),
        (["--since=-2h"], 0, 0.0),
        (["--until=-3h"], 1, 1.0),
        (["--until=-3h", "--allow-empty"], 0, 1.0),
    ],
    ids=["clean", "clean-window", "nothing-verified", "nothing-verified-but-allowed"],
)
def test_the_published_metric_is_0_only_when_digests_verified_clean(
    recent: Ledger,
    cli: list[str],
    capsys: pytest.CaptureFixture[str],
    window: list[str],
    status: int,
    metric: float,
) -> None:
    assert main([*cli, *window, "--publish-metric"]) == status

    assert published() == [metric]
