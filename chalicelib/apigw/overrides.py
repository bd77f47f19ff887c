"""Method-override parameters: a request that names another method than its own.

Rails, Laravel, Symfony, Spring and Express run the method named by a
``_method`` parameter (in the query string or a form body, Laravel also in a
JSON body) instead of the request's own, and ASP.NET MVC reads
``X-HTTP-Method-Override`` as a form field or query parameter too: a ``POST``
allowed by the policy would be served as the ``DELETE`` it denies. The header
forms are dropped on the way upstream (:mod:`chalicelib.proxy.headers`); a
parameter cannot be dropped without changing what the client sent, so a
request that carries one is refused as ambiguous, whichever method it names.

Names are compared the way the most lenient framework reads them (PHP: leading
spaces skipped, ``.``, space and ``[`` read as ``_``, cut at NUL). A body is
read by what it could be taken for, not only by what its ``Content-Type``
says: frameworks disagree about media types (Rack takes a POST without one
as a form, Laravel takes anything containing ``json`` as JSON). Gzip and
deflate bodies are read decompressed (Express inflates them); a body the
gateway cannot read (another ``Content-Encoding``) is refused, and so is a
request with more than one ``Content-Type``.
"""

from __future__ import annotations

import json
import re
import zlib
from typing import TYPE_CHECKING
from urllib.parse import parse_qsl, unquote

if TYPE_CHECKING:
    from chalicelib.apigw.events import GatewayRequest

OVERRIDE_PARAMETERS = frozenset(
    {"_method", "x-http-method-override", "x-http-method", "x-method-override"}
)
# Anything that might spell one of the names, in any encoding a reader undoes:
# the cheap test that lets ordinary bodies through without parsing them.
_MENTION = re.compile(
    rb"(?i)(?:_|\.|%5f|%2e|\\u005f|\\u002e|\+|%20| |\[|%5b)(?:m|%6d|\\u006d)(?:e|%65|\\u0065)"
    rb"|method|%6d%65%74%68%6f%64|x-http|x-method|\\u"
)
_MULTIPART_NAME = re.compile(rb"(?i)\bname(\*?)\s*=\s*(?:\"([^\"]*)\"|'([^']*)'|([^;\s]*))")
_PHP_UNDERSCORE = re.compile(r"[ .\[]")
_MAX_INFLATED = 8 << 20


def method_override(request: GatewayRequest) -> str | None:
    """Why ``request`` counts as naming another method than its own, or None.

    The query string is always checked; the body when there is one (the
    authorizer sees none, the proxy sees it whole).
    """
    if any(_is_override(name) for name, _ in request.query):
        return "method-override parameter in the query string"
    if len(request.headers.get_all("content-type")) > 1:
        return "more than one Content-Type header"
    if not request.body:
        return None
    body = request.body
    encoding = (request.headers.get("content-encoding") or "identity").strip().lower()
    if encoding not in ("", "identity"):
        inflated = _inflate(body, encoding)
        if inflated is None:
            # What the upstream will read cannot be checked here.
            return "method-override check impossible: unreadable Content-Encoding"
        body = inflated
    body = _as_utf8(body)
    if _MENTION.search(body) is None:
        return None  # the cheap test first: most bodies never spell one
    content_type = (request.headers.get("content-type") or "").lower()
    if _body_overrides(content_type, body):
        return "method-override field in the request body"
    return None


def _is_override(name: str) -> bool:
    return _php_name(name) in OVERRIDE_PARAMETERS


def _php_name(name: str) -> str:
    """``name`` as the most lenient reader sees it (PHP's parameter-name rules)."""
    name = name.split("\x00", 1)[0].lstrip(" ")
    return _PHP_UNDERSCORE.sub("_", name).strip().casefold()


def _body_overrides(content_type: str, body: bytes) -> bool:
    """Whether any reading a framework could apply to ``body`` finds an override."""
    media_type = re.split(r"[;, ]", content_type.strip(), maxsplit=1)[0]
    readings = []
    if "multipart" in content_type:
        readings.append(_multipart_overrides)
    if "json" in content_type:
        readings.append(_json_overrides)
    if "form-urlencoded" in content_type:
        readings.append(_form_overrides)
    if not media_type:
        # No media type: Rack reads a form, others may sniff; whatever it might be taken for.
        readings = [_form_overrides, _multipart_overrides, _json_overrides]
    return any(reading(body) for reading in readings)


def _form_overrides(body: bytes) -> bool:
    text = body.decode("utf-8", "replace").lstrip("\ufeff")
    pairs = parse_qsl(text, keep_blank_values=True, separator="&")
    pairs += parse_qsl(text, keep_blank_values=True, separator=";")
    return any(_is_override(name) for name, _ in pairs)


def _multipart_overrides(body: bytes) -> bool:
    for match in _MULTIPART_NAME.finditer(body):
        extended, *values = match.groups()
        raw = next((value for value in values if value is not None), b"")
        name = raw.decode("utf-8", "replace")
        if extended:  # RFC 5987: charset'language'percent-encoded
            name = unquote(name.split("'", 2)[-1])
        if _is_override(name):
            return True
    return False


def _json_overrides(body: bytes) -> bool:
    try:
        document = json.loads(body.decode("utf-8-sig"))
    except (UnicodeDecodeError, ValueError):
        return False
    return isinstance(document, dict) and any(_is_override(str(key)) for key in document)


def _as_utf8(body: bytes) -> bytes:
    """A UTF-16 or UTF-32 body (a JSON reader detects them) as UTF-8, for the tests below."""
    if b"\x00" not in body[:4]:
        return body
    for encoding in ("utf-32", "utf-16", "utf-32-le", "utf-16-le", "utf-32-be", "utf-16-be"):
        try:
            return body.decode(encoding).encode("utf-8")
        except UnicodeDecodeError:
            continue
    return body


def _inflate(body: bytes, encoding: str) -> bytes | None:
    """``body`` decompressed for gzip and deflate (bounded), else None."""
    if encoding not in ("gzip", "x-gzip", "deflate"):
        return None
    # gzip; deflate as zlib data, or raw as some clients send it.
    windows = (16 + zlib.MAX_WBITS,) if "gzip" in encoding else (zlib.MAX_WBITS, -zlib.MAX_WBITS)
    for window in windows:
        try:
            inflater = zlib.decompressobj(window)
            inflated = inflater.decompress(body, _MAX_INFLATED)
        except zlib.error:
            continue
        return None if inflater.unconsumed_tail else inflated
    return None
