"""The report's own SQL: a valid header, Athena SQL the engines parse, partitions pruned."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlglot import exp

from gatehouse.cli import main
from gatehouse.query.params import parse_header, parse_statement, placeholders
from gatehouse.report.collect import query_names, report_sql, window_params
from gatehouse.report.model import Window, parse_window

NAMES = query_names()


def test_every_report_query_is_there() -> None:
    assert NAMES == [
        "access_matrix",
        "anomalies",
        "decision_reasons",
        "grant_events",
        "ledger_coverage",
        "policy_versions",
        "recent_denies",
        "requests_over_time",
        "sensitive_access",
        "session_events",
    ]


@pytest.mark.parametrize("name", NAMES)
def test_header_declares_exactly_the_window(name: str) -> None:
    sql = report_sql(name)
    fields, params = parse_header(sql)
    assert fields["name"] == f"report_{name}"
    assert fields["description"]
    assert {(p.name, p.type) for p in params} == {("from", "timestamp"), ("to", "timestamp")}
    assert placeholders(parse_statement(sql)) == {"from", "to"}


@pytest.mark.parametrize("name", NAMES)
def test_every_scan_of_the_trail_prunes_day_and_hour_partitions(name: str) -> None:
    tree = parse_statement(report_sql(name))
    scans = [table for table in tree.find_all(exp.Table) if table.name == "audit_events"]
    assert scans
    for table in scans:
        select = table.find_ancestor(exp.Select)
        assert select is not None
        where = select.args.get("where")
        assert where is not None
        columns = {column.name for column in where.find_all(exp.Column)}
        assert {"dt", "hour", "event_time"} <= columns


def test_window_params_are_what_the_engines_take() -> None:
    window = parse_window("2026-03-01T08:00:00.250Z", "2026-03-02")
    assert window_params(window) == {
        "from": "2026-03-01 08:00:00.250",
        "to": "2026-03-02 00:00:00.000",
    }
    assert isinstance(window, Window)


@pytest.mark.parametrize(
    ("start", "end", "message"),
    [
        ("last week", "2026-03-02", "--from 'last week' is not a time"),
        ("2026-03-02", "2026-03-01", "--to (2026-03-01) must be after --from (2026-03-02)"),
    ],
)
def test_cli_refuses_a_bad_window_before_touching_a_stage(
    start: str, end: str, message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # No stage is configured here: the window is checked first.
    code = main(
        ["--state-dir", str(tmp_path), "audit", "report", "--from", start, "--to", end,
         "--out", str(tmp_path)]
    )  # fmt: skip
    assert code == 2
    assert message in capsys.readouterr().err
