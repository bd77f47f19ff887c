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

import codecs
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
    rb"|method|%6d%65%74%68%6f%64|x-http|x-method|\\u|=\?"
)
_PHP_UNDERSCORE = re.compile(r"[ .\[]")
_MAX_INFLATED = 8 << 20


def method_override(request: GatewayRequest) -> str | None:
    """Why ``request`` counts as naming another method than its own, or None.

    The query string is always checked; the body when there is one (the
    authorizer sees none, the proxy sees it whole).
    """
    if any(_is_override(name) for name, _ in request.query):
        return "method-override parameter in the query string"
    for header in ("content-type", "content-encoding"):
        if len(request.headers.get_all(header)) > 1:
            return f"more than one {header} header"
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
    content_type = (request.headers.get("content-type") or "").lower()
    readings = _texts(body, content_type)
    if readings is None:
        return "method-override check impossible: unknown charset"
    for text in readings:
        if _MENTION.search(text) is not None and _body_overrides(content_type, text):
            return "method-override field in the request body"
    return None


def _texts(body: bytes, content_type: str) -> list[bytes] | None:
    """The body as the bytes sent, plus as its declared or marked charset reads it (UTF-8).

    The bytes sent are always read as they are (Rack and PHP split a form on
    raw ``&``); a charset a JSON reader would honour (a BOM, ``charset=utf-16``,
    ``utf-7``) adds its decoding. None: a charset that cannot be read here.
    """
    texts = [body]
    charset = _CHARSET.search(content_type)
    name = charset.group(1) if charset else None
    if name is None and body.startswith((codecs.BOM_UTF32_LE, codecs.BOM_UTF32_BE)):
        name = "utf-32"
    elif name is None and body.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        name = "utf-16"
    elif name is None and b"\x00" in body[:4]:
        name = "utf-16"  # a JSON reader may detect UTF-16 without a BOM
    if name is None or name in _AS_SENT:
        return texts
    try:
        texts.append(body.decode(name, "replace").encode("utf-8"))
    except LookupError:
        return None
    return texts


_CHARSET = re.compile(r"charset\s*=\s*\"?([a-z0-9._:-]+)")
_AS_SENT = frozenset({"utf-8", "utf8", "us-ascii", "ascii", "iso-8859-1", "latin1", "latin-1"})


def _is_override(name: str) -> bool:
    return _php_name(name) in OVERRIDE_PARAMETERS


def _php_name(name: str) -> str:
    """``name`` as the most lenient reader sees it.

    PHP skips leading spaces, cuts at NUL and reads ``.``, space and ``[`` as
    ``_``; qs (Express) and PHP turn ``_method[]`` or ``_method[0]`` into a
    list whose first value a reader may take, so a bracketed suffix is dropped.
    """
    name = name.split("\x00", 1)[0].lstrip(" ")
    name = _BRACKETED.sub("", name)
    return _PHP_UNDERSCORE.sub("_", name).strip().casefold()


_BRACKETED = re.compile(r"\[.*\Z", re.DOTALL)


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
    for line in _HEADER_LINE.findall(body):
        if any(_is_override(name) for name in _part_names(line.decode("utf-8", "replace"))):
            return True
    return False


def _part_names(header: str) -> list[str]:
    """Every name a reader could take from one part header line.

    ``name="…"`` (either quote, or none), RFC 5987 ``name*=utf-8''…``, RFC 2231
    continuations ``name*0=…; name*1=…`` (joined) and RFC 2047 encoded words
    ``=?UTF-8?B?…?=`` (decoded): each spelling a multipart parser may honour.
    """
    names: list[str] = []
    pieces: dict[int, str] = {}
    for match in _NAME_PARAMETER.finditer(header):
        section, extended, *values = match.groups()
        value = next((v for v in values if v is not None), "")
        if extended:
            value = unquote(value.split("'", 2)[-1])
        if section is not None:
            pieces[int(section)] = value
        else:
            names.append(value)
    if pieces:
        names.append("".join(pieces[index] for index in sorted(pieces)))
    return [_decoded_words(name) for name in names] + names


def _decoded_words(name: str) -> str:
    if "=?" not in name:
        return name
    # Imported here: encoded words are rare, and the email package costs ~4 ms of cold start.
    from email.header import decode_header, make_header

    try:
        return str(make_header(decode_header(name)))
    except (ValueError, LookupError, UnicodeError):
        return name


_HEADER_LINE = re.compile(
    rb"(?im)^[ \t]*content-disposition[ \t]*:([^\r\n]*(?:\r?\n[ \t][^\r\n]*)*)"
)
_NAME_PARAMETER = re.compile(
    r"(?i)(?:^|[;\s])name(?:\*(\d+))?(\*?)\s*=\s*(?:\"([^\"]*)\"|'([^']*)'|([^;\s]*))"
)


def _json_overrides(body: bytes) -> bool:
    try:
        document = json.loads(body.decode("utf-8-sig", "replace"))
    except ValueError:
        # It spells an override (the caller's test) but cannot be read here:
        # a more lenient reader might; refuse rather than guess.
        return True
    return isinstance(document, dict) and any(_is_override(str(key)) for key in document)


def _inflate(body: bytes, encoding: str) -> bytes | None:
    """``body`` decompressed for gzip and deflate (bounded, every member), else None."""
    if encoding not in ("gzip", "x-gzip", "deflate"):
        return None
    # gzip (a reader inflates every member); deflate as zlib data, or raw as some send it.
    windows = (16 + zlib.MAX_WBITS,) if "gzip" in encoding else (zlib.MAX_WBITS, -zlib.MAX_WBITS)
    for window in windows:
        inflated = _inflate_members(body, window)
        if inflated is not None:
            return inflated
    return None


def _inflate_members(body: bytes, window: int) -> bytes | None:
    out: list[bytes] = []
    size = 0
    rest = body
    while rest:
        inflater = zlib.decompressobj(window)
        try:
            chunk = inflater.decompress(rest, _MAX_INFLATED - size)
        except zlib.error:
            return None
        if inflater.unconsumed_tail or not inflater.eof:
            return None  # over the cap, or cut short: what the upstream reads is unknown
        out.append(chunk)
        size += len(chunk)
        rest = inflater.unused_data
        if window < 0 or window == zlib.MAX_WBITS:
            # A deflate body is one stream; bytes after it are not deflate.
            return None if rest else b"".join(out)
    return b"".join(out)
