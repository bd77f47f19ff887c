"""Path globs: ``*`` matches within one segment, ``**`` any number of segments.

``/api/**`` matches ``/api``, ``/api/`` and everything below ``/api``;
``/api/*/items`` matches ``/api/x/items`` but not ``/api/x/y/items``;
``/files/*.pdf`` matches ``/files/a.pdf``. Globs match normalised, decoded
paths (see :mod:`chalicelib.policy.paths`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass


class InvalidGlob(ValueError):
    """A path glob that cannot be compiled."""


@dataclass(frozen=True, slots=True)
class PathGlob:
    """A compiled path glob."""

    pattern: str
    regex: re.Pattern[str]

    def matches(self, path: str) -> bool:
        """Whether ``path`` (normalised) matches the glob."""
        return self.regex.fullmatch(path) is not None


def compile_glob(pattern: str) -> PathGlob:
    """Compile ``pattern``.

    Raises
    ------
    InvalidGlob
        When it does not start with ``/`` or uses ``**`` inside a segment.
    """
    if not pattern.startswith("/"):
        raise InvalidGlob(f"{pattern!r} does not start with /")
    segments = pattern.split("/")[1:]
    parts: list[str] = []
    for index, segment in enumerate(segments):
        if segment == "**":
            # "/**" as the last segment also matches the parent itself.
            parts.append("(?:/.*)?" if index == len(segments) - 1 else "(?:/[^/]*)*")
            continue
        if "**" in segment:
            raise InvalidGlob(f"{pattern!r}: ** must be a whole segment")
        literal_pieces = (re.escape(piece) for piece in segment.split("*"))
        parts.append("/" + "[^/]*".join(literal_pieces))
    return PathGlob(pattern=pattern, regex=re.compile("".join(parts) or "/"))


def combine_globs(globs: tuple[PathGlob, ...]) -> re.Pattern[str] | None:
    """One regex matching what any of ``globs`` matches; None for no globs."""
    if not globs:
        return None
    return re.compile("|".join(f"(?:{glob.regex.pattern})" for glob in globs))


def glob_to_arn_paths(pattern: str) -> tuple[tuple[str, ...], bool]:
    """Translate a glob into ``execute-api`` ARN resource paths.

    IAM's ``*`` also crosses ``/``, so a translation may match more than the
    glob. Returns ``(arn_paths, exact)``: the paths (without the leading
    ``/``, as in method ARNs) match a superset of the glob, and ``exact`` says
    whether they match precisely the glob. Only literal paths and a literal
    stem followed by ``/**`` translate exactly.
    """
    body = pattern[1:]
    if body == "**":
        return ("*",), True
    if body.endswith("/**"):
        stem = body[: -len("/**")]
        if not _has_wildcard(stem):
            return (stem, stem + "/*"), True
    elif not _has_wildcard(body):
        return (body,), True
    # Anything else: everything from the first wildcard on becomes one IAM "*".
    first = min(index for index in (body.find("*"), body.find("?")) if index >= 0)
    return (body[:first] + "*",), False


def _has_wildcard(text: str) -> bool:
    return "*" in text or "?" in text
