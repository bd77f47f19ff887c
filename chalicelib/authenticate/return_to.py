"""Where a person goes back to after signing in: this gateway's own paths only.

The address a sign-in returns to travels through the identity provider and
back (inside the sealed sign-in cookie), and it first arrives as a query
parameter anyone can craft. Accepting it as given would make the gateway an
open redirect: ``/.gatehouse/login?rd=https://evil.example`` would send a
person who just signed in to a look-alike page. Browsers are lenient in ways
that turn harmless-looking values into other origins: ``//evil.example``
(scheme-relative), ``/\\evil.example`` (a backslash counts as a slash),
``/%2F%2Fevil.example`` once a backend decodes it, tabs and newlines that
browsers strip from URLs, ``https:evil.example``. :func:`safe_return_to`
therefore accepts only an origin-relative path made of plain URL characters,
whose every decoding is still such a path (and has no ``.`` or ``..``
segment a browser would resolve), and answers ``/`` otherwise.
"""

from __future__ import annotations

import re
from urllib.parse import unquote

DEFAULT_RETURN_TO = "/"
MAX_RETURN_TO_LENGTH = 2048

# RFC 3986 path, query and percent-escape characters: no space, no control
# character, no backslash, no fragment, nothing outside ASCII.
_URL_CHARACTERS = re.compile(r"/[A-Za-z0-9\-._~!$&'()*+,;=:@/?%]*")
# A second slash, or a backslash, right after the first reads as another host.
_ANOTHER_HOST = re.compile(r"^/[/\\]")
# A "." or ".." segment: a browser resolves "/.//host" to "//host" and
# "/x/../.gatehouse/logout" to a sign-in page.
_DOT_SEGMENT = re.compile(r"(^|/)\.{1,2}(/|$|\?)")
_STILL_ENCODED = re.compile(r"%[0-9A-Fa-f]{2}")
# How many rounds of percent-decoding are checked: each round a backend
# (or a redirect chain) might apply must still leave a path of this origin.
_DECODING_ROUNDS = 3


def safe_return_to(raw: str | None) -> str:
    """``raw`` when it is a path of this origin that stays one however decoded, else ``/``.

    Parameters
    ----------
    raw
        The requested return-to address (a ``rd`` query parameter), or None.

    Returns
    -------
    str
        A path starting with exactly one ``/``, safe to send as ``Location``.
    """
    if not raw or len(raw) > MAX_RETURN_TO_LENGTH:
        return DEFAULT_RETURN_TO
    if not _URL_CHARACTERS.fullmatch(raw) or _ANOTHER_HOST.match(raw):
        return DEFAULT_RETURN_TO
    decoded = raw
    # Round 0 checks the value as given; sign-in's own pages are refused in any
    # spelling (returning to one would loop, or sign the person out again).
    for _ in range(_DECODING_ROUNDS):
        decoded = unquote(decoded, errors="replace") if "%" in decoded else decoded
        if (
            not decoded.startswith("/")
            or decoded.startswith("/.gatehouse/")
            or _DOT_SEGMENT.search(decoded)
            or _ANOTHER_HOST.match(decoded)
            or any(char in decoded for char in "\\\t\r\n\x00")
            or not decoded.isprintable()
        ):
            return DEFAULT_RETURN_TO
    if _STILL_ENCODED.search(decoded):
        # Still encoded after every round checked: a fourth decoding could hide anything.
        return DEFAULT_RETURN_TO
    return raw
