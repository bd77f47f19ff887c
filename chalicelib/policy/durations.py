"""Durations as policies write them: seconds, or ``"90s"``, ``"30m"``, ``"4h"``, ``"1d"``."""

from __future__ import annotations

import re

_DURATION = re.compile(r"(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?")
# The same grammar for the JSON schema (which cannot say "not empty" otherwise).
DURATION_PATTERN = r"^(?=\d)(\d+d)?(\d+h)?(\d+m)?(\d+s)?$"


def parse_duration(value: object) -> int | None:
    """Seconds from ``3600``, ``"90s"``, ``"30m"``, ``"4h"``, ``"1d"``, ``"1h30m"``; else None."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value if value > 0 else None
    if not isinstance(value, str) or not value:
        return None
    match = _DURATION.fullmatch(value)
    if match is None or not any(match.groups()):
        return None
    days, hours, minutes, seconds = (int(part or 0) for part in match.groups())
    total = ((days * 24 + hours) * 60 + minutes) * 60 + seconds
    return total if total > 0 else None
