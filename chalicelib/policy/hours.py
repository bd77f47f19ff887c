"""Time-of-day windows in an IANA time zone, including windows that cross midnight.

``{tz: Europe/Berlin, days: [fri], from: "22:00", to: "06:00"}`` is Friday
22:00 until Saturday 06:00 Berlin time: a window belongs to the day it
starts on. ``from`` is inclusive, ``to`` exclusive; ``to: "24:00"`` is the
end of the day. Wall-clock time is used, so the window follows daylight
saving time.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from zoneinfo import ZoneInfo

from chalicelib.policy.criterion import FAILS, HOLDS, Facts, RequestFacts, Verdict

DAY_NAMES = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
MINUTES_PER_DAY = 24 * 60


class InvalidHours(ValueError):
    """An hours window that cannot be parsed."""


def parse_clock(text: str, *, allow_end_of_day: bool = False) -> int:
    """Minutes since midnight for ``HH:MM``.

    Raises
    ------
    InvalidHours
        When ``text`` is not a 24-hour ``HH:MM`` time.
    """
    hours, sep, minutes = text.partition(":")
    if (
        sep != ":"
        or len(hours) != 2
        or len(minutes) != 2
        or not (hours.isascii() and hours.isdigit() and minutes.isascii() and minutes.isdigit())
    ):
        raise InvalidHours(f"{text!r} is not a time like 08:30")
    value = int(hours) * 60 + int(minutes)
    limit = MINUTES_PER_DAY if allow_end_of_day else MINUTES_PER_DAY - 1
    if int(minutes) > 59 or value > limit:
        raise InvalidHours(f"{text!r} is not a time of day")
    return value


@dataclass(frozen=True, slots=True)
class Hours:
    """When access is possible.

    Attributes
    ----------
    zone:
        The IANA time zone the clock times are in.
    days:
        Weekday numbers (Monday is 0) on which a window starts.
    start, end:
        Minutes since midnight; ``end <= start`` means the window ends the next day.
    """

    zone: ZoneInfo
    days: frozenset[int]
    start: int = 0
    end: int = MINUTES_PER_DAY

    def contains(self, epoch_seconds: float) -> bool:
        """Whether the instant falls inside a window."""
        return self.check(None, Facts(epoch_seconds, "")) is HOLDS

    def check(self, identity: object, facts: RequestFacts) -> Verdict:
        """The ``hours`` condition's verdict for a request: HOLDS inside a window, else FAILS.

        The window arithmetic lives here, not in :meth:`contains`: this runs
        on every request a rule with ``hours`` matches, as one call.
        """
        weekday, minute = local_weekday_minute(self.zone, int(facts.at // 60))
        if self.start < self.end:
            inside = weekday in self.days and self.start <= minute < self.end
        elif minute >= self.start:
            # Crosses midnight: the late part belongs to today's window, the
            # early part to yesterday's.
            inside = weekday in self.days
        else:
            inside = minute < self.end and (weekday - 1) % 7 in self.days
        return HOLDS if inside else FAILS


@lru_cache(maxsize=1024)
def local_weekday_minute(zone: ZoneInfo, epoch_minute: int) -> tuple[int, int]:
    """Weekday (Monday 0) and minute of the day, in ``zone``, of a UTC minute.

    Cached per minute: every time zone in use today is offset from UTC by
    whole minutes, so all instants of one UTC minute share the answer.
    """
    local = datetime.fromtimestamp(epoch_minute * 60, zone)
    return local.weekday(), local.hour * 60 + local.minute
