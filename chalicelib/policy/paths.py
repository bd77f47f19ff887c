"""Request path normalisation, done once before any matching.

A path is matched only in one unambiguous form. Anything that different
components could read differently is refused rather than "fixed": encoded
slashes or backslashes, dot segments (plain or encoded), empty segments,
NUL and control characters, invalid percent-encoding, bytes that are not
UTF-8, double encoding (``%25``), ``;`` path parameters (which servlet
containers strip, so ``/admin;x/secret`` would reach ``/admin/secret``),
segments ending in a dot or a space (which IIS strips), and paths too long
to match in bounded time.
Refusing is what keeps ``/admin/../public`` or ``/admin%2Fx`` from matching
a rule one way and reaching the upstream another.
"""

from __future__ import annotations

import re
from urllib.parse import unquote_to_bytes

_PERCENT = re.compile(r"%(?![0-9A-Fa-f]{2})")
_FORBIDDEN_DECODED = re.compile(r"[\x00-\x1f\x7f\\;]")
# Encoded separators, and an encoded "%" (double encoding: decoded twice
# downstream, "%252F" becomes "/").
_ENCODED_SEPARATOR = re.compile(r"%(?:2[fF]|5[cC]|25)")


class AmbiguousPath(ValueError):
    """The path cannot be matched unambiguously."""


MAX_PATH_LENGTH = 4096
MAX_SEGMENTS = 128


def normalize_path(raw_path: str) -> str:
    """Return the percent-decoded form of ``raw_path`` used for matching.

    Raises
    ------
    AmbiguousPath
        Naming what made the path ambiguous.
    """
    if not raw_path.startswith("/"):
        raise AmbiguousPath("path does not start with /")
    if len(raw_path) > MAX_PATH_LENGTH:
        raise AmbiguousPath(f"path longer than {MAX_PATH_LENGTH} characters")
    path = _percent_decoded(raw_path) if "%" in raw_path else raw_path
    if _FORBIDDEN_DECODED.search(path):
        raise AmbiguousPath("control character, backslash or ; in path")
    _check_segments(path.split("/")[1:])
    return path


def _percent_decoded(raw_path: str) -> str:
    if _PERCENT.search(raw_path):
        raise AmbiguousPath("invalid percent-encoding")
    if _ENCODED_SEPARATOR.search(raw_path):
        raise AmbiguousPath("encoded path separator or double encoding")
    try:
        return unquote_to_bytes(raw_path).decode("utf-8")
    except UnicodeDecodeError as exc:
        raise AmbiguousPath("path is not UTF-8") from exc


def _check_segments(segments: list[str]) -> None:
    if len(segments) > MAX_SEGMENTS:
        raise AmbiguousPath(f"path has more than {MAX_SEGMENTS} segments")
    last = len(segments) - 1
    for position, segment in enumerate(segments):
        if segment in (".", ".."):
            raise AmbiguousPath("dot segment in path")
        if segment.endswith((".", " ")):
            # Windows servers (IIS) strip trailing dots and spaces: /export. is /export.
            raise AmbiguousPath("segment ends with a dot or a space")
        # A trailing slash is meaningful ("/dir/"); an empty segment elsewhere is not.
        if segment == "" and position != last:
            raise AmbiguousPath("empty path segment")
