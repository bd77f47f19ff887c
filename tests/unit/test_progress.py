"""The progress line (terminal only), parse errors without ANSI, parameter defaults, windows."""

from __future__ import annotations

import io
from datetime import UTC, datetime, timedelta

import pytest

from gatehouse.progress import Progress, count
from gatehouse.query.command import named_values
from gatehouse.query.errors import QueryParamError, QuerySyntaxError
from gatehouse.query.params import QueryParam, load_named_query, parse_statement
from gatehouse.query.text import strip_ansi
from gatehouse.report import ReportError
from gatehouse.report.model import Window, parse_window


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_on_a_terminal_redraws_one_line_and_clears_it() -> None:
    stream = _Terminal()
    with Progress("verify", stream=stream, interval=0) as line:
        line.update("12/40 digests, 3,200 events")
        line.update("40/40 digests")
    text = stream.getvalue()
    assert "\rverify: 12/40 digests, 3,200 events" in text
    assert "\rverify: 40/40 digests" in text
    assert "\n" not in text  # updated in place
    assert text.endswith("\r")  # cleared: the result is what stays on screen


def test_progress_is_quiet_when_stderr_is_not_a_terminal() -> None:
    stream = io.StringIO()
    with Progress("flush", stream=stream) as line:
        line.update("3 events stored")
    assert stream.getvalue() == ""


def test_progress_redraws_at_most_every_interval() -> None:
    stream, now = _Terminal(), [0.0]
    line = Progress("sync", stream=stream, interval=1.0, clock=lambda: now[0])
    line.update("1")
    now[0] = 0.5
    line.update("2")
    now[0] = 1.6
    line.update("3")
    assert "sync: 1" in stream.getvalue()
    assert "sync: 2" not in stream.getvalue()
    assert "sync: 3" in stream.getvalue()


def test_count_groups_thousands() -> None:
    assert count(3200) == "3,200"


@pytest.mark.parametrize(
    ("text", "plain"),
    [
        pytest.param("a \x1b[4m1\x1b[0m b", "a 1 b", id="underline"),
        pytest.param("\x1b]8;;https://x\x1b\\link\x1b]8;;\x1b\\", "link", id="osc-8 link"),
        pytest.param("lone \x1b", "lone ", id="lone escape"),
        pytest.param("plain", "plain", id="nothing to strip"),
    ],
)
def test_strip_ansi(text: str, plain: str) -> None:
    assert strip_ansi(text) == plain


@pytest.mark.parametrize(
    ("sql", "expected"),
    [
        pytest.param("SELECT * FROM t WHERE (a = 1", "line 1, column 28 near '1'", id="paren"),
        pytest.param(
            "SELECT * FROM t WHERE x = :from AND (", "line 1, column 37 near '('", id="placeholder"
        ),
        pytest.param("SELECT 'abc", "not closed", id="unclosed string"),
    ],
)
def test_parse_errors_are_one_plain_line(sql: str, expected: str) -> None:
    with pytest.raises(QuerySyntaxError) as raised:
        parse_statement(sql)
    message = str(raised.value)
    assert expected in message
    assert "\x1b" not in message
    assert "\n" not in message
    assert "sqlglot" not in message
    assert "<class" not in message


@pytest.mark.parametrize(
    ("param", "default"),
    [
        pytest.param(QueryParam("from", "timestamp", "start"), "-24h", id="window start"),
        pytest.param(QueryParam("to", "timestamp", "end"), "now", id="window end"),
        pytest.param(QueryParam("lookback_days", "integer", "days"), "7", id="lookback"),
        pytest.param(
            QueryParam("route_id", "varchar", "Route; empty matches any route"), "", id="any"
        ),
        pytest.param(QueryParam("principal", "varchar", "who"), None, id="required"),
    ],
)
def test_param_defaults(param: QueryParam, default: str | None) -> None:
    assert param.default == default


def test_a_named_window_defaults_to_the_last_24_hours() -> None:
    values = named_values(load_named_query("denies_with_reasons"), {})
    start = datetime.fromisoformat(values["from"]).replace(tzinfo=UTC)
    end = datetime.fromisoformat(values["to"]).replace(tzinfo=UTC)
    assert end - start == timedelta(hours=24)
    assert abs(datetime.now(UTC) - end) < timedelta(minutes=1)


def test_named_times_are_read_as_every_command_reads_them() -> None:
    values = named_values(
        load_named_query("denies_with_reasons"),
        {"from": "2026-03-01T10:00:00+01:00", "to": "2026-03-02"},
    )
    assert values == {"from": "2026-03-01 09:00:00.000", "to": "2026-03-02 00:00:00.000"}


@pytest.mark.parametrize(
    "given",
    [
        pytest.param({"from": "2026-03-02", "to": "2026-03-01"}, id="reversed"),
        pytest.param({"from": "2026-03-02", "to": "2026-03-02"}, id="empty"),
        pytest.param({"from": "now"}, id="from now to the default now"),
        pytest.param({"from": "last week"}, id="unreadable"),
    ],
)
def test_named_windows_that_hold_nothing_are_refused(given: dict[str, str]) -> None:
    with pytest.raises(QueryParamError):
        named_values(load_named_query("denies_with_reasons"), given)


def test_report_windows_read_relative_times_and_refuse_reversed_ones() -> None:
    now = datetime(2026, 3, 2, 12, tzinfo=UTC)
    assert parse_window("-1h", "now", now=now) == Window(now - timedelta(hours=1), now)
    with pytest.raises(ReportError, match="holds nothing"):
        parse_window("now", "-1h", now=now)


@pytest.mark.parametrize(
    ("length", "bucket", "buckets"),
    [
        pytest.param(timedelta(minutes=30), "minute", 30, id="half an hour per minute"),
        pytest.param(timedelta(hours=2), "minute", 120, id="two hours per minute"),
        pytest.param(timedelta(hours=3), "hour", 3, id="longer per hour"),
    ],
)
def test_short_windows_are_charted_per_minute(length: timedelta, bucket: str, buckets: int) -> None:
    start = datetime(2026, 3, 2, 8, tzinfo=UTC)
    window = Window(start, start + length)
    assert window.bucket == bucket
    assert len(window.bucket_starts()) == buckets
