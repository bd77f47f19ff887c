"""Times on the command line: every accepted form, and every other one refused with the forms."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from gatehouse.times import TimeArgumentError, parse_time_argument, parse_window, utc_text

NOW = datetime(2026, 12, 7, 10, 30, 15, 500_000, tzinfo=UTC)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-12-07T10:00:00Z", "2026-12-07T10:00:00Z"),
        ("2026-12-07T10:00:00z", "2026-12-07T10:00:00Z"),
        ("2026-12-07T11:00+01:00", "2026-12-07T10:00:00Z"),
        ("2026-12-07T10:00", "2026-12-07T10:00:00Z"),
        ("2026-12-07", "2026-12-07T00:00:00Z"),
        ("  2026-12-07  ", "2026-12-07T00:00:00Z"),
        ("-1h", "2026-12-07T09:30:15Z"),
        ("1h", "2026-12-07T09:30:15Z"),
        ("-30m", "2026-12-07T10:00:15Z"),
        ("-2d", "2026-12-05T10:30:15Z"),
        ("-1w", "2026-11-30T10:30:15Z"),
        ("-45s", "2026-12-07T10:29:30Z"),
        ("now", "2026-12-07T10:30:15Z"),
        ("today", "2026-12-07T00:00:00Z"),
        ("yesterday", "2026-12-06T00:00:00Z"),
        ("Yesterday", "2026-12-06T00:00:00Z"),
        ("0999-01-01", "0999-01-01T00:00:00Z"),
    ],
    ids=[
        "iso-z",
        "iso-lowercase-z",
        "iso-offset",
        "iso-naive-is-utc",
        "date-is-its-midnight",
        "blanks-around",
        "hours-ago",
        "hours-ago-without-minus",
        "minutes-ago",
        "days-ago",
        "weeks-ago",
        "seconds-ago",
        "now",
        "today-midnight-utc",
        "yesterday-midnight-utc",
        "words-ignore-case",
        "year-below-1000-stays-comparable",
    ],
)
def test_each_accepted_form_names_a_utc_moment(text: str, expected: str) -> None:
    assert utc_text(parse_time_argument(text, "--since", now=NOW)) == expected


@pytest.mark.parametrize(
    "text",
    [
        "not-a-date",
        "",
        "1",
        "-1",
        "-1y",
        "1 h",
        "2026-13-01",
        "tomorrow-ish",
        "0001-01-01T00:00+01:00",
    ],
    ids=[
        "words",
        "empty",
        "a-bare-number",
        "a-negative-number",
        "an-unknown-unit",
        "a-space-inside",
        "month-13",
        "an-unknown-word",
        "before-year-1-in-utc",
    ],
)
def test_anything_else_is_refused_with_the_accepted_forms(text: str) -> None:
    with pytest.raises(TimeArgumentError) as refused:
        parse_time_argument(text, "--until", now=NOW)

    message = str(refused.value)
    assert message.startswith(f"--until {text!r} is not a time: use ISO 8601 such as ")
    assert "2026-12-07T10:00:00Z" in message
    assert "write --until=-1h or --until 1h" in message
    assert "today or yesterday" in message
    assert "\n" not in message


def test_a_relative_time_before_the_year_1_is_refused() -> None:
    with pytest.raises(TimeArgumentError, match=r"--since '-99999999w' reaches before the year 1"):
        parse_time_argument("-99999999w", "--since", now=NOW)


@pytest.mark.parametrize(
    ("start", "end", "expected"),
    [
        (None, None, (None, None)),
        ("yesterday", None, ("2026-12-06T00:00:00Z", None)),
        (None, "-1h", (None, "2026-12-07T09:30:15Z")),
        ("-2h", "-1h", ("2026-12-07T08:30:15Z", "2026-12-07T09:30:15Z")),
        ("2026-12-07", "now", ("2026-12-07T00:00:00Z", "2026-12-07T10:30:15Z")),
    ],
    ids=["open", "only-start", "only-end", "both-relative", "date-to-now"],
)
def test_a_window_reads_both_bounds_against_one_now(
    start: str | None, end: str | None, expected: tuple[str | None, str | None]
) -> None:
    begin, finish = parse_window(start, end, start_option="--since", end_option="--until", now=NOW)

    assert (
        utc_text(begin) if begin else None,
        utc_text(finish) if finish else None,
    ) == expected


@pytest.mark.parametrize(
    ("start", "end"),
    [
        ("2026-12-07T10:00:00Z", "2026-12-07T09:00:00Z"),
        ("2026-12-07T10:00:00Z", "2026-12-07T10:00:00Z"),
        ("2026-12-07T11:00+01:00", "2026-12-07T10:00:00Z"),
        ("-1h", "-2h"),
        ("today", "yesterday"),
    ],
    ids=["end-before-start", "end-equals-start", "equal-across-offsets", "relative", "words"],
)
def test_an_empty_window_is_refused(start: str, end: str) -> None:
    with pytest.raises(TimeArgumentError) as refused:
        parse_window(start, end, start_option="--since", end_option="--until", now=NOW)

    begin = utc_text(parse_time_argument(start, "--since", now=NOW))
    assert str(refused.value).startswith(f"--until ({end}: ")
    assert str(refused.value).endswith(
        f"must be after --since ({start}: {begin}): the window holds nothing"
    )


def test_an_unreadable_bound_is_named_before_the_window_is_judged() -> None:
    with pytest.raises(TimeArgumentError, match=r"^--until 'soon' is not a time"):
        parse_window("-1h", "soon", start_option="--since", end_option="--until", now=NOW)
