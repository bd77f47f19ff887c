"""Times given on the command line, read one way for every command, always as UTC.

Accepted (see :func:`accepted`):

- ISO 8601: ``2026-12-07T10:00:00Z``, ``2026-12-07T11:00+01:00``, or a date
  ``2026-12-07`` (its midnight); UTC when no offset is given.
- Relative, meaning that long before now: ``-30m``, ``-1h``, ``-2d`` (also
  ``s`` and ``w``, and without the minus: ``1h``). argparse takes a value
  starting with ``-`` for an option, so write ``--since=-1h`` or ``--since 1h``.
- ``now``; ``today`` and ``yesterday``: that day's midnight, UTC.

Anything else is an error that says what is accepted: a time argument that
cannot be read must never widen or empty what a command covers.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta


def accepted(option: str) -> str:
    """What a time given to ``option`` may be, for help texts and errors."""
    return (
        "ISO 8601 such as 2026-12-07T10:00:00Z or 2026-12-07 (UTC when no offset), "
        f"relative such as -30m, -1h or -2d (that long ago; write {option}=-1h or {option} 1h), "
        "now, today or yesterday (midnight UTC)"
    )


_RELATIVE = re.compile(r"-?(\d{1,9})([smhdw])")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


class TimeArgumentError(ValueError):
    """A time on the command line that cannot be read, or a window that is empty."""


def parse_time_argument(text: str, option: str, *, now: datetime | None = None) -> datetime:
    """The moment ``text`` names, as an aware UTC datetime.

    Parameters
    ----------
    text
        The value as typed.
    option
        The option it was given to, named in the error (``--since``).
    now
        What relative times and ``today`` count from (default: the clock).

    Raises
    ------
    TimeArgumentError
        When ``text`` is none of the :func:`accepted` forms.
    """
    now = (now or datetime.now(UTC)).astimezone(UTC)
    word = text.strip().lower()
    midnight = now.replace(hour=0, minute=0, second=0, microsecond=0)
    named = {"now": now, "today": midnight, "yesterday": midnight - timedelta(days=1)}
    if word in named:
        return named[word]
    relative = _RELATIVE.fullmatch(word)
    if relative:
        return _ago(now, int(relative.group(1)) * _UNIT_SECONDS[relative.group(2)], text, option)
    try:
        moment = datetime.fromisoformat(text.strip().replace("Z", "+00:00").replace("z", "+00:00"))
        return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).astimezone(UTC)
    except (ValueError, OverflowError):
        raise TimeArgumentError(
            f"{option} {text!r} is not a time: use {accepted(option)}"
        ) from None


def _ago(now: datetime, seconds: int, text: str, option: str) -> datetime:
    try:
        return now - timedelta(seconds=seconds)
    except OverflowError:
        raise TimeArgumentError(
            f"{option} {text!r} reaches before the year 1: use {accepted(option)}"
        ) from None


def parse_window(
    start: str | None,
    end: str | None,
    *,
    start_option: str,
    end_option: str,
    now: datetime | None = None,
) -> tuple[datetime | None, datetime | None]:
    """Both bounds of a window (either may be open), read against one ``now``.

    Raises
    ------
    TimeArgumentError
        When a bound cannot be read, or both are given and the end is not
        after the start (the window would hold nothing).
    """
    now = now or datetime.now(UTC)
    begin = parse_time_argument(start, start_option, now=now) if start is not None else None
    finish = parse_time_argument(end, end_option, now=now) if end is not None else None
    if begin is not None and finish is not None and finish <= begin:
        raise TimeArgumentError(
            f"{end_option} ({end}: {utc_text(finish)}) must be after {start_option} "
            f"({start}: {utc_text(begin)}): the window holds nothing"
        )
    return begin, finish


def utc_text(moment: datetime) -> str:
    """``moment`` as ``YYYY-MM-DDTHH:MM:SSZ``, the form ledger digests are stamped with."""
    # isoformat pads the year to four digits (strftime's %Y does not on every
    # platform), so these texts compare as the moments do.
    stamp = moment.astimezone(UTC).replace(microsecond=0, tzinfo=None).isoformat()
    return f"{stamp}Z"
