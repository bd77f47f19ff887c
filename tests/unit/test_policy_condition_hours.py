"""The ``hours`` condition (``chalicelib/policy/criteria/hours.py``): a weekly wall-clock window.

Days and times are read on the policy's time zone's wall clock, across
midnight (a window belongs to the day it opens on) and daylight saving
changes; the end is exclusive and ``24:00`` may only end a window. The clock
is always known, so a deny applies exactly when an allow would hold.
"""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from chalicelib.policy.conditions import Conditions
from chalicelib.policy.hours import DAY_NAMES, Hours, InvalidHours, parse_clock
from chalicelib.reasons import Reason
from tests.unit.test_policy_condition_registry import assert_both_ways, facts, person

BERLIN = "Europe/Berlin"
NEW_YORK = "America/New_York"
WORKDAYS = ("mon", "tue", "wed", "thu", "fri")


def window(tz: str, days: tuple[str, ...], start: str, end: str) -> Hours:
    """An hours window written the way a policy writes it."""
    return Hours(
        ZoneInfo(tz),
        frozenset(DAY_NAMES.index(day) for day in days),
        parse_clock(start),
        parse_clock(end, allow_end_of_day=True),
    )


def local(tz: str, text: str) -> float:
    """Epoch seconds of a local wall-clock time (unambiguous ones only)."""
    return datetime.fromisoformat(text).replace(tzinfo=ZoneInfo(tz)).timestamp()


def utc(text: str) -> float:
    return datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp()


OFFICE_HOURS = window(BERLIN, WORKDAYS, "08:00", "18:00")
FRIDAY_NIGHT = window(BERLIN, ("fri",), "22:00", "06:00")
SUNDAY_NIGHT = window(BERLIN, ("sun",), "22:00", "02:00")
WEDNESDAY = window(BERLIN, ("wed",), "00:00", "24:00")
EVENINGS = window(BERLIN, WORKDAYS, "18:00", "24:00")

# 2026-11-30 is a Monday; 2026-12-02 a Wednesday; 2026-12-04 a Friday.
DAY_CASES = [
    pytest.param(OFFICE_HOURS, local(BERLIN, "2026-12-02 08:00"), True, id="opening minute"),
    pytest.param(OFFICE_HOURS, local(BERLIN, "2026-12-02 07:59"), False, id="minute before"),
    pytest.param(OFFICE_HOURS, local(BERLIN, "2026-12-02 07:59:59"), False, id="second before"),
    pytest.param(OFFICE_HOURS, local(BERLIN, "2026-12-02 07:59:59.999"), False, id="ms before"),
    pytest.param(OFFICE_HOURS, local(BERLIN, "2026-12-02 17:59"), True, id="last minute"),
    pytest.param(OFFICE_HOURS, local(BERLIN, "2026-12-02 17:59:59"), True, id="last second"),
    pytest.param(OFFICE_HOURS, local(BERLIN, "2026-12-02 18:00"), False, id="closing is exclusive"),
    pytest.param(OFFICE_HOURS, local(BERLIN, "2026-11-30 08:00"), True, id="monday opening"),
    pytest.param(OFFICE_HOURS, local(BERLIN, "2026-11-30 00:00"), False, id="monday midnight"),
    pytest.param(OFFICE_HOURS, local(BERLIN, "2026-12-04 17:59"), True, id="friday last minute"),
    pytest.param(OFFICE_HOURS, local(BERLIN, "2026-12-05 10:00"), False, id="saturday"),
    pytest.param(OFFICE_HOURS, local(BERLIN, "2026-12-06 23:59"), False, id="sunday night"),
    pytest.param(OFFICE_HOURS, utc("2026-12-02 07:30"), True, id="utc 07:30 is 08:30 in berlin"),
    pytest.param(OFFICE_HOURS, utc("2026-12-02 17:30"), False, id="utc 17:30 is 18:30 in berlin"),
    pytest.param(WEDNESDAY, local(BERLIN, "2026-12-02 00:00"), True, id="24:00 window start"),
    pytest.param(WEDNESDAY, local(BERLIN, "2026-12-02 23:59"), True, id="24:00 last minute"),
    pytest.param(WEDNESDAY, local(BERLIN, "2026-12-02 23:59:59"), True, id="24:00 last second"),
    pytest.param(WEDNESDAY, local(BERLIN, "2026-12-03 00:00"), False, id="24:00 is exclusive"),
    pytest.param(WEDNESDAY, local(BERLIN, "2026-12-01 23:59:59"), False, id="day before"),
    pytest.param(EVENINGS, local(BERLIN, "2026-12-02 23:59"), True, id="evening to 24:00"),
    pytest.param(EVENINGS, local(BERLIN, "2026-12-03 00:00"), False, id="evening ends at midnight"),
    pytest.param(EVENINGS, local(BERLIN, "2026-12-05 00:30"), False, id="evening is not crossing"),
]

MIDNIGHT_CASES = [
    pytest.param(FRIDAY_NIGHT, local(BERLIN, "2026-12-04 21:59"), False, id="friday before"),
    pytest.param(FRIDAY_NIGHT, local(BERLIN, "2026-12-04 22:00"), True, id="friday 22:00"),
    pytest.param(FRIDAY_NIGHT, local(BERLIN, "2026-12-04 23:00"), True, id="friday 23:00"),
    pytest.param(FRIDAY_NIGHT, local(BERLIN, "2026-12-04 23:59:59"), True, id="friday 23:59:59"),
    pytest.param(FRIDAY_NIGHT, local(BERLIN, "2026-12-05 00:00"), True, id="saturday midnight"),
    pytest.param(FRIDAY_NIGHT, local(BERLIN, "2026-12-05 05:59"), True, id="saturday 05:59:00"),
    pytest.param(FRIDAY_NIGHT, local(BERLIN, "2026-12-05 05:59:59"), True, id="saturday 05:59"),
    pytest.param(FRIDAY_NIGHT, local(BERLIN, "2026-12-05 06:00"), False, id="saturday 06:00"),
    pytest.param(FRIDAY_NIGHT, local(BERLIN, "2026-12-04 05:00"), False, id="friday early"),
    pytest.param(FRIDAY_NIGHT, local(BERLIN, "2026-12-05 22:00"), False, id="saturday night"),
    pytest.param(FRIDAY_NIGHT, local(BERLIN, "2026-12-05 23:00"), False, id="saturday 23:00"),
    pytest.param(FRIDAY_NIGHT, local(BERLIN, "2026-12-06 01:00"), False, id="sunday early"),
    pytest.param(SUNDAY_NIGHT, local(BERLIN, "2026-12-07 01:59"), True, id="wraps into monday"),
    pytest.param(SUNDAY_NIGHT, local(BERLIN, "2026-12-07 02:00"), False, id="monday 02:00"),
    pytest.param(SUNDAY_NIGHT, local(BERLIN, "2026-12-06 01:00"), False, id="sunday early is sat"),
    pytest.param(SUNDAY_NIGHT, local(BERLIN, "2026-12-06 22:30"), True, id="sunday late"),
]

# Berlin: 2026-03-29 02:00 CET -> 03:00 CEST; 2026-10-25 03:00 CEST -> 02:00 CET.
# New York: 2026-03-08 02:00 EST -> 03:00 EDT; 2026-11-01 02:00 EDT -> 01:00 EST.
DST_CASES = [
    pytest.param(
        window(BERLIN, ("sun",), "09:00", "10:00"),
        utc("2026-03-29 07:30"),
        True,
        id="berlin spring: 09:30 CEST is inside",
    ),
    pytest.param(
        window(BERLIN, ("sun",), "09:00", "10:00"),
        utc("2026-03-29 08:30"),
        False,
        id="berlin spring: the winter offset would be inside",
    ),
    pytest.param(
        window(BERLIN, ("sun",), "02:00", "03:00"),
        utc("2026-03-29 00:59"),
        False,
        id="berlin spring: 01:59 CET is before the skipped hour",
    ),
    pytest.param(
        window(BERLIN, ("sun",), "02:00", "03:00"),
        utc("2026-03-29 01:00"),
        False,
        id="berlin spring: the skipped hour never happens",
    ),
    pytest.param(
        window(BERLIN, ("sun",), "02:30", "04:00"),
        utc("2026-03-29 01:00"),
        True,
        id="berlin spring: 03:00 CEST is inside a window over the gap",
    ),
    pytest.param(
        window(BERLIN, ("sat",), "22:00", "06:00"),
        utc("2026-03-29 03:59"),
        True,
        id="berlin spring: a night window keeps its wall-clock end",
    ),
    pytest.param(
        window(BERLIN, ("sat",), "22:00", "06:00"),
        utc("2026-03-29 04:00"),
        False,
        id="berlin spring: 06:00 CEST ends the night window",
    ),
    pytest.param(
        window(BERLIN, ("sun",), "02:00", "03:00"),
        utc("2026-10-25 00:30"),
        True,
        id="berlin autumn: first 02:30 (CEST)",
    ),
    pytest.param(
        window(BERLIN, ("sun",), "02:00", "03:00"),
        utc("2026-10-25 01:30"),
        True,
        id="berlin autumn: second 02:30 (CET)",
    ),
    pytest.param(
        window(BERLIN, ("sun",), "02:00", "03:00"),
        utc("2026-10-25 02:00"),
        False,
        id="berlin autumn: 03:00 CET ends it",
    ),
    pytest.param(
        window(BERLIN, ("sun",), "09:00", "10:00"),
        utc("2026-10-25 08:30"),
        True,
        id="berlin autumn: 09:30 CET is inside",
    ),
    pytest.param(
        window(NEW_YORK, ("sun",), "09:00", "17:00"),
        utc("2026-03-08 13:00"),
        True,
        id="new york spring: 09:00 EDT opens",
    ),
    pytest.param(
        window(NEW_YORK, ("sun",), "09:00", "17:00"),
        utc("2026-03-08 12:59"),
        False,
        id="new york spring: 08:59 EDT is before",
    ),
    pytest.param(
        window(NEW_YORK, ("sun",), "09:00", "10:00"),
        local(NEW_YORK, "2026-03-08 09:30"),
        True,
        id="new york spring: 09:30 EDT is inside",
    ),
    pytest.param(
        window(NEW_YORK, ("sun",), "02:00", "03:00"),
        utc("2026-03-08 07:00"),
        False,
        id="new york spring: the skipped hour never happens",
    ),
    pytest.param(
        window(NEW_YORK, ("sun",), "01:00", "02:00"),
        utc("2026-11-01 05:30"),
        True,
        id="new york autumn: first 01:30 (EDT)",
    ),
    pytest.param(
        window(NEW_YORK, ("sun",), "01:00", "02:00"),
        utc("2026-11-01 06:30"),
        True,
        id="new york autumn: second 01:30 (EST)",
    ),
    pytest.param(
        window(NEW_YORK, ("sun",), "01:00", "02:00"),
        utc("2026-11-01 07:00"),
        False,
        id="new york autumn: 02:00 EST ends it",
    ),
    pytest.param(
        window(NEW_YORK, ("sun",), "01:00", "02:00"),
        utc("2026-11-01 04:59"),
        False,
        id="new york autumn: 00:59 EDT is before",
    ),
    pytest.param(
        window(NEW_YORK, ("sun",), "09:00", "10:00"),
        local(NEW_YORK, "2026-11-01 09:30"),
        True,
        id="new york autumn: 09:30 EST is inside",
    ),
    pytest.param(
        window(NEW_YORK, ("sat",), "20:00", "22:00"),
        utc("2026-03-29 01:00"),
        True,
        id="the same instant on the other zone's clock",
    ),
    pytest.param(
        window(NEW_YORK, ("sun",), "09:00", "10:00"),
        local(BERLIN, "2026-03-29 09:30"),
        False,
        id="berlin's sunday 09:30 is outside new york's",
    ),
]

ODD_OFFSET_CASES = [
    pytest.param(
        window("Asia/Kolkata", WORKDAYS, "09:00", "10:00"),
        utc("2026-12-02 03:30"),
        True,
        id="kolkata +05:30 opening",
    ),
    pytest.param(
        window("Asia/Kolkata", WORKDAYS, "09:00", "10:00"),
        utc("2026-12-02 03:29:59"),
        False,
        id="kolkata a second before",
    ),
    pytest.param(
        window("Asia/Kathmandu", WORKDAYS, "09:00", "10:00"),
        utc("2026-12-02 03:15"),
        True,
        id="kathmandu +05:45 opening",
    ),
    pytest.param(
        window("Asia/Kathmandu", WORKDAYS, "09:00", "10:00"),
        utc("2026-12-02 04:15"),
        False,
        id="kathmandu closing",
    ),
    pytest.param(
        window("Pacific/Kiritimati", ("thu",), "00:00", "01:00"),
        utc("2026-12-02 10:30"),
        True,
        id="utc+14 is already thursday",
    ),
]


@pytest.mark.parametrize(
    ("hours", "at", "inside"), DAY_CASES + MIDNIGHT_CASES + DST_CASES + ODD_OFFSET_CASES
)
def test_hours_hold_inside_the_local_wall_clock_window(
    hours: Hours, at: float, inside: bool
) -> None:
    assert hours.contains(at) is inside
    assert_both_ways(
        Conditions(hours=hours),
        person(),
        facts(at=at),
        holds=inside,
        deny_applies=inside,  # the clock is always known
        reason=Reason.OUTSIDE_HOURS,
    )


# --- the times a policy names ------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "minutes"),
    [("00:00", 0), ("08:30", 510), ("23:59", 1439)],
    ids=["midnight", "half past eight", "last minute"],
)
def test_a_clock_time_is_read_as_minutes_after_midnight(text: str, minutes: int) -> None:
    assert parse_clock(text) == minutes


@pytest.mark.parametrize(
    "text",
    ["8:30", "24:00", "12:60", "ab:cd", "12-30", "", "\uff11\uff12:00"],
    ids=["one digit", "24:00 start", "minute 60", "letters", "dash", "empty", "fullwidth"],
)
def test_a_malformed_clock_time_is_refused(text: str) -> None:
    with pytest.raises(InvalidHours):
        parse_clock(text)


def test_24_00_is_only_an_end() -> None:
    assert parse_clock("24:00", allow_end_of_day=True) == 1440
    with pytest.raises(InvalidHours):
        parse_clock("24:01", allow_end_of_day=True)
