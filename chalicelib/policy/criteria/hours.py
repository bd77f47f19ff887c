"""``hours``: the request falls in a weekly time window, in an IANA time zone."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from chalicelib.policy.criterion import Criterion, Problems, register
from chalicelib.policy.hours import DAY_NAMES, Hours, InvalidHours, parse_clock
from chalicelib.reasons import Reason

if TYPE_CHECKING:
    from chalicelib.policy.criterion import Check

_CLOCK = {"type": "string", "pattern": "^[0-2][0-9]:[0-5][0-9]$"}


def parse(value: Any, where: str, problems: Problems) -> Hours | None:
    """The window; every field is checked before giving up, so all problems are reported."""
    if not isinstance(value, dict):
        problems.problem(where, "must be a mapping with tz, days, from, to")
        return None
    problems.unknown_fields(where, value, {"tz", "days", "from", "to"})
    zone = _zone(value.get("tz"))
    if zone is None:
        problems.problem(f"{where}.tz", "must be an IANA time zone such as Europe/Berlin")
    days = problems.string_list(value.get("days", list(DAY_NAMES)), f"{where}.days")
    day_numbers = {DAY_NAMES.index(day) for day in days if day in DAY_NAMES}
    if len(day_numbers) != len(set(days)):
        problems.problem(f"{where}.days", f"must name days among {', '.join(DAY_NAMES)}")
    start = _clock(value.get("from", "00:00"), f"{where}.from", problems, end_of_day=False)
    end = _clock(value.get("to", "24:00"), f"{where}.to", problems, end_of_day=True)
    if start is None or end is None:
        return None
    if start == end:
        problems.problem(where, "from and to are equal; omit both to mean the whole day")
        return None
    if zone is None or not day_numbers:
        return None
    return Hours(zone, frozenset(day_numbers), start, end)


def _clock(value: Any, where: str, problems: Problems, *, end_of_day: bool) -> int | None:
    if not isinstance(value, str):
        # YAML 1.1 reads an unquoted 18:00 as the number 1080.
        problems.problem(where, 'must be a quoted time, e.g. "18:00"')
        return None
    try:
        return parse_clock(value, allow_end_of_day=end_of_day)
    except InvalidHours as exc:
        problems.problem(where, str(exc))
        return None


def _zone(name: object) -> ZoneInfo | None:
    # No paths: ZoneInfo would read a file named by the policy.
    if not isinstance(name, str) or not name or name.startswith(("/", ".")) or ".." in name:
        return None
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return None


def compile_check(setting: Hours) -> Check:
    """The window's own bound method: one call per request."""
    return setting.check


HOURS = register(
    Criterion(
        name="hours",
        reason=Reason.OUTSIDE_HOURS,
        parse=parse,
        compile=compile_check,
        summary="The request falls inside a weekly time window.",
        schema={
            "type": "object",
            "additionalProperties": False,
            "required": ["tz"],
            "properties": {
                "tz": {"type": "string", "minLength": 1},
                "days": {
                    "type": "array",
                    "minItems": 1,
                    "items": {"enum": list(DAY_NAMES)},
                },
                "from": _CLOCK,
                "to": _CLOCK,
            },
        },
        example={
            "tz": "Europe/Berlin",
            "days": ["mon", "tue", "wed", "thu", "fri"],
            "from": "08:00",
            "to": "18:00",
        },
        notes=(
            "`tz` is an IANA time zone (wall-clock time, so the window follows daylight saving "
            'time); `days` defaults to every day, `from` to `"00:00"` (inclusive) and `to` to '
            '`"24:00"` (exclusive). Quote the times: YAML reads an unquoted 18:00 as a number. '
            "A window whose `to` is not after `from` crosses midnight and belongs to the day it "
            'starts on: `days: [fri]`, `from: "22:00"`, `to: "06:00"` is Friday 22:00 until '
            "Saturday 06:00.",
        ),
    )
)
