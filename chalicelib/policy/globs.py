"""Path globs: ``*`` matches within one segment, ``**`` any number of segments.

``/api/**`` matches ``/api``, ``/api/`` and everything below ``/api``;
``/api/*/items`` matches ``/api/x/items`` but not ``/api/x/y/items``;
``/files/*.pdf`` matches ``/files/a.pdf``. Every glob also matches its path
with a trailing slash (``/export`` matches ``/export/``), because common
frameworks route both to the same handler. Globs match normalised, decoded
paths (see :mod:`chalicelib.policy.paths`).

Matching time is linear in the path: a glob that a backtracking regex could
not match in linear time (``**`` before the last segment, or several ``*``
in one segment) is matched segment by segment instead.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cached_property

from chalicelib.policy.paths import fold_case


class InvalidGlob(ValueError):
    """A path glob that cannot be compiled."""


@dataclass(frozen=True)
class PathGlob:
    """A compiled path glob.

    Attributes
    ----------
    pattern:
        The glob as written.
    ignore_case:
        Match letters case-insensitively (deny rules do: many upstreams
        route ``/Admin`` and ``/admin`` to the same handler).
    """

    pattern: str
    ignore_case: bool = False

    def __post_init__(self) -> None:
        if not self.pattern.startswith("/"):
            raise InvalidGlob(f"{self.pattern!r} does not start with /")
        for segment in self.segments:
            if "**" in segment and segment != "**":
                raise InvalidGlob(f"{self.pattern!r}: ** must be a whole segment")

    @cached_property
    def segments(self) -> tuple[str, ...]:
        """The glob's segments (after the leading ``/``), case-folded when ignoring case."""
        pattern = fold_case(self.pattern) if self.ignore_case else self.pattern
        return tuple(pattern.split("/")[1:])

    @cached_property
    def regex(self) -> re.Pattern[str] | None:
        """An equivalent regex when one matches in linear time, else None."""
        segments = self.segments
        if "**" in segments[:-1] or any(
            segment.count("*") > 1 for segment in segments if segment != "**"
        ):
            return None
        parts: list[str] = []
        for index, segment in enumerate(segments):
            if segment == "**":
                parts.append("(?:/.*)?")  # the last segment: also matches the parent
            else:
                pieces = (re.escape(piece) for piece in segment.split("*"))
                parts.append("/" + "[^/]*".join(pieces))
                if index == len(segments) - 1 and segment:
                    parts.append("/?")
        # Ignoring case is done by case-folding glob and path (never re.IGNORECASE),
        # so that the regex and the segment matcher agree on every letter (long s,
        # Kelvin sign, dotted capital I, final sigma).
        return re.compile("".join(parts) or "/")

    def matches(self, path: str) -> bool:
        """Whether ``path`` (normalised) matches the glob."""
        if self.ignore_case:
            path = fold_case(path)
        regex = self.regex
        if regex is not None:
            return regex.fullmatch(path) is not None
        return _match_segments(self.segments, path.split("/")[1:])


def compile_glob(pattern: str, *, ignore_case: bool = False) -> PathGlob:
    """Compile ``pattern``.

    Raises
    ------
    InvalidGlob
        When it does not start with ``/`` or uses ``**`` inside a segment.
    """
    glob = PathGlob(pattern, ignore_case)
    _ = glob.regex  # compile now, not on the first request
    return glob


def combine_globs(globs: tuple[PathGlob, ...]) -> re.Pattern[str] | None:
    """One regex for the globs that have one; None when none has."""
    regexes = [glob.regex for glob in globs if glob.regex is not None]
    if not regexes:
        return None
    return re.compile("|".join(f"(?:{regex.pattern})" for regex in regexes))


def _match_segments(globs: tuple[str, ...], path: list[str]) -> bool:
    """Segment-wise matching in O(len(globs) * len(path)) segment comparisons."""
    if path and path[-1] == "" and (not globs or globs[-1] not in ("", "**")):
        # A trailing slash matches like no trailing slash, and (as in the
        # regex form) a last "*" may also match the empty last segment.
        return _match_path(globs, path) or _match_path(globs, path[:-1])
    return _match_path(globs, path)


def _match_path(globs: tuple[str, ...], path: list[str]) -> bool:
    # reachable[j]: the globs seen so far can consume exactly path[:j]
    reachable = [True] + [False] * len(path)
    for glob in globs:
        if glob == "**":
            for j in range(1, len(path) + 1):
                reachable[j] = reachable[j] or reachable[j - 1]
            continue
        following = [False] * (len(path) + 1)
        for j in range(len(path)):
            if reachable[j] and _match_segment(glob, path[j]):
                following[j + 1] = True
        reachable = following
    return reachable[len(path)]


def _match_segment(glob: str, text: str) -> bool:
    """Match one segment with ``*`` wildcards, greedily, in linear time."""
    g = t = 0
    star = -1
    resume = 0
    while t < len(text):
        if g < len(glob) and glob[g] == text[t]:
            g += 1
            t += 1
        elif g < len(glob) and glob[g] == "*":
            star, resume = g, t
            g += 1
        elif star != -1:
            g = star + 1
            resume += 1
            t = resume
        else:
            return False
    while g < len(glob) and glob[g] == "*":
        g += 1
    return g == len(glob)
