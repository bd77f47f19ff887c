"""``gatehouse audit tail``: filters, ``-o json``, and ``--follow`` as the writer stores events.

Against moto's bucket, through the CLI's ``main``. Objects are stored in the
ledger's layout (gzip NDJSON, one ``ledger.sequence`` per line), as the writer
stores them; ``--follow`` is ended the way an operator ends it, by an
interrupt (``_thread.interrupt_main``, what Ctrl-C raises), once the lines
expected are printed.
"""

from __future__ import annotations

import _thread
import gzip
import io
import json
import sys
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import boto3
import pytest

from chalicelib.ledger.layout import EVENTS_PREFIX
from gatehouse.cli import main
from gatehouse.errors import INTERRUPTED

if TYPE_CHECKING:
    from gatehouse.dev.bootstrap import Resources


@pytest.fixture
def cli(aws: Resources, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> list[str]:
    monkeypatch.setenv("AWS_REGION", "us-east-1")
    monkeypatch.setenv("GATEHOUSE_AUDIT_BUCKET", aws.audit_bucket)
    monkeypatch.setenv("GATEHOUSE_AUDIT_QUEUE_URL", aws.audit_queue_url)
    monkeypatch.setenv("GATEHOUSE_STATE_TABLE", aws.state_table)
    return ["--state-dir", str(tmp_path / "no-local-stack")]


def event(
    sequence: int,
    *,
    who: str = "alice@example.com",
    outcome: str = "allow",
    route: str = "docs",
    at: datetime | None = None,
) -> dict[str, Any]:
    moment = at or datetime.now(UTC)
    return {
        "schema_version": 1,
        "event_id": f"e-{sequence}",
        "event_type": "decision",
        "event_time": moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z",
        "principal": {"subject": who.split("@")[0], "email": who},
        "resource": {"method": "GET", "path": f"/p/{sequence}", "route_id": route},
        "decision": {"outcome": outcome, "reasons": ["allow_rule_matched"]},
        "request": {"id": f"r-{sequence}"},
        "ledger": {"sequence": sequence},
    }


def store(bucket: str, events: list[dict[str, Any]]) -> None:
    """One object holding ``events``, under the hour it is stored, named by its first sequence."""
    now = datetime.now(UTC)
    first = events[0]["ledger"]["sequence"]
    key = f"{EVENTS_PREFIX}{now:dt=%Y-%m-%d/hour=%H}/{first:016d}-r1.ndjson.gz"
    body = gzip.compress(
        "".join(json.dumps(item, separators=(",", ":")) + "\n" for item in events).encode()
    )
    boto3.client("s3", region_name="us-east-1").put_object(Bucket=bucket, Key=key, Body=body)


def tail_json(cli: list[str], capsys: pytest.CaptureFixture[str], *args: str) -> list[Any]:
    assert main([*cli, "audit", "tail", "-o", "json", *args]) == 0
    return [json.loads(line) for line in capsys.readouterr().out.splitlines()]


@pytest.fixture
def stored(aws: Resources) -> None:
    old = datetime.now(UTC) - timedelta(hours=3)
    store(aws.audit_bucket, [event(0, at=old), event(1, who="bob@example.com", at=old)])
    store(
        aws.audit_bucket,
        [
            event(2, outcome="deny", route="admin"),
            event(3, who="Bob@Example.com", outcome="deny"),
            event(4, route="admin"),
        ],
    )


@pytest.mark.usefixtures("stored")
@pytest.mark.parametrize(
    ("args", "sequences"),
    [
        pytest.param([], [0, 1, 2, 3, 4], id="no filter"),
        pytest.param(["--principal", "bob@example.com"], [1, 3], id="principal by email any case"),
        pytest.param(["--principal", "alice"], [0, 2, 4], id="principal by subject"),
        pytest.param(["--decision", "deny"], [2, 3], id="decision"),
        pytest.param(["--route", "admin"], [2, 4], id="route id"),
        pytest.param(["--decision", "deny", "--route", "docs"], [3], id="all filters hold"),
        pytest.param(["--since", "-1h"], [2, 3, 4], id="since relative"),
        pytest.param(["--principal", "nobody"], [], id="nothing matches"),
        pytest.param(["-n", "2", "--decision", "allow"], [1, 4], id="newest n that match"),
    ],
)
def test_tail_filters(
    cli: list[str], capsys: pytest.CaptureFixture[str], args: list[str], sequences: list[int]
) -> None:
    printed = tail_json(cli, capsys, *args)
    assert [item["ledger"]["sequence"] for item in printed] == sequences


@pytest.mark.usefixtures("stored")
def test_tail_json_is_the_stored_event_and_the_alias_agrees(
    cli: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    printed = tail_json(cli, capsys, "-n", "1")
    expected = {**event(4, route="admin"), "event_time": printed[0]["event_time"]}
    assert printed == [expected]  # the stored line, member for member
    assert main([*cli, "audit", "tail", "--json", "-n", "1"]) == 0
    assert [json.loads(line) for line in capsys.readouterr().out.splitlines()] == printed


@pytest.mark.usefixtures("stored")
def test_tail_table_is_one_line_per_event(
    cli: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main([*cli, "audit", "tail", "--decision", "deny"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 2
    assert "request=r-2" in lines[0]
    assert "deny" in lines[0]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        pytest.param(["--since", "last tuesday"], "is not a time", id="unreadable since"),
        pytest.param(["--json", "-o", "table"], "contradict", id="json alias against -o"),
    ],
)
def test_tail_refuses_bad_arguments_in_one_line(
    cli: list[str], capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    assert main([*cli, "audit", "tail", *args]) == 2
    err = capsys.readouterr().err
    assert message in err
    assert "Traceback" not in err


def test_tail_decision_choices_are_closed(
    cli: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main([*cli, "audit", "tail", "--decision", "maybe"]) == 2
    assert "maybe" in capsys.readouterr().err


class _Lines(io.StringIO):
    """A stdout another thread can watch."""

    def count(self) -> int:
        return self.getvalue().count("\n")


def _interrupt_after(out: _Lines, lines: int, deadline: float) -> threading.Thread:
    def watch() -> None:
        while out.count() < lines and time.monotonic() < deadline:
            time.sleep(0.05)
        _thread.interrupt_main()

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    return watcher


def test_follow_prints_new_events_once_in_sequence_order_until_ctrl_c(
    aws: Resources, cli: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    store(aws.audit_bucket, [event(0), event(1)])
    out = _Lines()
    monkeypatch.setattr(sys, "stdout", out)

    def writer() -> None:
        time.sleep(1.2)  # after --follow printed the stored ones and started polling
        store(aws.audit_bucket, [event(2, outcome="deny"), event(3)])
        time.sleep(1.2)
        store(aws.audit_bucket, [event(4, outcome="deny"), event(5, outcome="deny")])

    threading.Thread(target=writer, daemon=True).start()
    # 1 stored deny is none; then 2, then 4 and 5: three lines in all.
    watcher = _interrupt_after(out, 3, time.monotonic() + 20)
    status = main(
        [*cli, "audit", "tail", "--follow", "-n", "5", "--decision", "deny", "-o", "json"]
    )
    watcher.join()

    assert status == INTERRUPTED  # Ctrl-C ends --follow as it ends every command: 130
    printed = [json.loads(line) for line in out.getvalue().splitlines()]
    assert [item["ledger"]["sequence"] for item in printed] == [2, 4, 5]


def test_follow_shows_the_newest_first_then_only_what_is_new(
    aws: Resources, cli: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    store(aws.audit_bucket, [event(0), event(1), event(2)])
    out = _Lines()
    monkeypatch.setattr(sys, "stdout", out)

    def writer() -> None:
        time.sleep(1.2)
        store(aws.audit_bucket, [event(3, route="admin")])

    threading.Thread(target=writer, daemon=True).start()
    watcher = _interrupt_after(out, 3, time.monotonic() + 20)
    status = main([*cli, "audit", "tail", "--follow", "-n", "2", "-o", "json"])
    watcher.join()

    assert status == INTERRUPTED
    printed = [json.loads(line)["ledger"]["sequence"] for line in out.getvalue().splitlines()]
    assert printed == [1, 2, 3]  # no duplicate, nothing older than -n asked for
