"""The request target, parsed once: the path that is decided, recorded and forwarded.

A path is matched only in one unambiguous form. Anything that different
components could read differently is refused rather than "fixed": encoded
slashes or backslashes, dot segments (plain or encoded), empty segments,
NUL and control characters, invalid percent-encoding, bytes that are not
UTF-8, double encoding (``%25``), ``;`` path parameters (which servlet
containers strip, so ``/admin;x/secret`` would reach ``/admin/secret``),
segments ending in a dot or a space (which IIS strips), ``?`` and ``#``
raw or decoded (a URL parser downstream would cut the path there, so
``/api/billing#x`` would be decided as one path and served as
``/api/billing``), invisible characters (format, separator and private-use
code points), non-ASCII characters that some stack turns into ASCII ones
(dotless i, U+0131, upper-cases to ``I``; the Kelvin sign lower-cases to
``k``), paths that Unicode normalisation would change (fullwidth solidus,
U+FF0F, is ``/`` after NFKC; a decomposed accent is joined by NFC), and
paths too long to match in bounded time. Refusing is what keeps
``/admin/../public`` or ``/admin%2Fx`` from matching a rule one way and
reaching the upstream another.

What is accepted becomes a :class:`RequestTarget`: the decoded ``path`` the
policy decides on and the trail records, and its one canonical encoding,
``wire_path``, which is what the upstream is sent. Decoding ``wire_path``
gives ``path`` back exactly, so the upstream serves the path that was decided.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from functools import lru_cache
from urllib.parse import quote, unquote_to_bytes

_PERCENT = re.compile(r"%(?![0-9A-Fa-f]{2})")
_FORBIDDEN_DECODED = re.compile(r"[\x00-\x1f\x7f\\;?#]")
# Encoded separators, and an encoded "%" (double encoding: decoded twice
# downstream, "%252F" becomes "/").
_ENCODED_SEPARATOR = re.compile(r"%(?:2[fF]|5[cC]|25)")
# RFC 3986 pchar without pct-encoded, without ";" (refused above) and without
# "+" (S3 and form-decoding servers read a literal "+" in a path as a space; "%2B"
# is read as "+" by all), plus "/": a path made only of these is already its own
# canonical encoding.
_PCHAR_SAFE = "!$&'()*,=:@-._~"
_CANONICAL_ASCII = re.compile(r"[A-Za-z0-9!$&'()*,=:@\-._~/]*")
# Code point categories nobody types into a URL: controls, format characters
# (bidi overrides, zero-width joiners), surrogates, private use, unassigned,
# and line, paragraph and non-ASCII space separators (which ``strip()`` eats).
_INVISIBLE_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp", "Zs"})

MAX_PATH_LENGTH = 4096
MAX_SEGMENTS = 128


class AmbiguousPath(ValueError):
    """The path cannot be matched unambiguously."""


@dataclass(frozen=True, slots=True)
class RequestTarget:
    """One request's path, parsed once.

    Attributes
    ----------
    path:
        The decoded path: what the policy matches and the audit event records.
    wire_path:
        Its canonical percent-encoding: what is sent upstream. Every byte is
        an RFC 3986 ``pchar`` or ``/``; percent-decoding it gives ``path``.
    """

    path: str
    wire_path: str


def parse_target(raw_path: str) -> RequestTarget:
    """Parse the path API Gateway reports into the one target that is decided and forwarded.

    Raises
    ------
    AmbiguousPath
        Naming what made the path ambiguous.
    """
    path = normalize_path(raw_path)
    if _CANONICAL_ASCII.fullmatch(path):
        return RequestTarget(path, path)
    wire = "/".join(quote(segment, safe=_PCHAR_SAFE) for segment in path.split("/"))
    return RequestTarget(path, wire)


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
        raise AmbiguousPath("control character, backslash, ;, ? or # in path")
    if not path.isascii():
        _check_non_ascii(path)
    _check_segments(path.split("/")[1:])
    return path


def fold_case(text: str) -> str:
    """``text`` with letter case removed, for matching that ignores case.

    Full Unicode case folding (``ß`` is ``ss``, final sigma is sigma). The
    characters whose case mappings disagree between stacks in a way that
    reaches ASCII (dotless i, long s, the Kelvin sign, dotted capital I) never get here:
    :func:`normalize_path` refuses them.
    """
    return text.casefold()


def _percent_decoded(raw_path: str) -> str:
    if _PERCENT.search(raw_path):
        raise AmbiguousPath("invalid percent-encoding")
    if _ENCODED_SEPARATOR.search(raw_path):
        raise AmbiguousPath("encoded path separator or double encoding")
    try:
        return unquote_to_bytes(raw_path).decode("utf-8")
    except UnicodeDecodeError as exc:
        raise AmbiguousPath("path is not UTF-8") from exc


def _check_non_ascii(path: str) -> None:
    for char in path:
        if char.isascii():
            continue
        if unicodedata.category(char) in _INVISIBLE_CATEGORIES:
            raise AmbiguousPath(f"invisible character U+{ord(char):04X} in path")
        if _case_maps_to_ascii(char):
            raise AmbiguousPath(f"U+{ord(char):04X} becomes ASCII under some case mapping")
    if unicodedata.normalize("NFKC", path) != path:
        # Decomposed accents (NFC joins them), fullwidth and compatibility forms
        # (NFKC turns "\uff0f" into "/", "\uff14\uff12" into "42"): a backend that
        # normalises would serve another path than the one decided.
        raise AmbiguousPath("path is not in Unicode normal form NFKC")


@lru_cache(maxsize=4096)
def _case_maps_to_ascii(char: str) -> bool:
    """Whether upper-casing, lower-casing or case folding turns the non-ASCII ``char`` ASCII.

    Backends (Java, .NET, Go, Python, ICU; Turkish locales) apply these before
    routing: ``/adm\u0131n`` upper-cases to ``/ADMIN`` and would escape a deny on
    ``/admin`` yet reach it.
    """
    return any(c.isascii() for form in (char.upper(), char.lower(), char.casefold()) for c in form)


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
