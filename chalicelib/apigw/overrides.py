"""Method-override parameters: a request that names another method than its own.

Rails, Laravel, Symfony, Spring and Express run the method named by a
``_method`` parameter (in the query string or a form body, Laravel also in a
JSON body) instead of the request's own, and ASP.NET MVC reads
``X-HTTP-Method-Override`` as a form field or query parameter too: a ``POST``
allowed by the policy would be served as the ``DELETE`` it denies. The header
forms are dropped on the way upstream (:mod:`chalicelib.proxy.headers`); a
parameter cannot be dropped without changing what the client sent, so a
request that carries one is refused as ambiguous, whichever method it names.
"""

from __future__ import annotations

import json
import re
from typing import TYPE_CHECKING
from urllib.parse import parse_qsl

if TYPE_CHECKING:
    from chalicelib.apigw.events import GatewayRequest

OVERRIDE_PARAMETERS = frozenset(
    {"_method", "x-http-method-override", "x-http-method", "x-method-override"}
)
_NAMES = rb"(?:_|\\u005f)method|x-http-method-override|x-http-method|x-method-override"
# A multipart part so named, however its name is quoted or encoded
# (name="_method", name=_method, name*=utf-8''_method).
_MULTIPART_NAME = re.compile(
    rb"(?i)\bname\*?\s*=\s*\"?(?:[a-z0-9-]*'[a-z-]*')?(?:" + _NAMES + rb")\b"
)
_JSON_KEY = re.compile(rb'(?i)"(?:' + _NAMES + rb')"')


def method_override(request: GatewayRequest) -> str | None:
    """Where ``request`` carries a method-override parameter, or None.

    The query string is always checked; the body when there is one (the
    authorizer sees none, the proxy sees it whole).
    """
    if any(_is_override(name) for name, _ in request.query):
        return "method-override parameter in the query string"
    if request.body and _body_overrides(request.headers.get("content-type") or "", request.body):
        return "method-override field in the request body"
    return None


def _is_override(name: str) -> bool:
    return name.strip().casefold() in OVERRIDE_PARAMETERS


def _body_overrides(content_type: str, body: bytes) -> bool:
    media_type = content_type.split(";", 1)[0].strip().lower()
    if media_type == "application/x-www-form-urlencoded":
        text = body.decode("utf-8", "replace")
        return any(_is_override(name) for name, _ in parse_qsl(text, keep_blank_values=True))
    if media_type.startswith("multipart/"):
        return _MULTIPART_NAME.search(body) is not None
    if media_type == "application/json" or media_type.endswith("+json"):
        if _JSON_KEY.search(body) is None and b"\\u" not in body:
            return False  # the cheap test first: most JSON bodies never name one
        return _json_names_override(body)
    return False


def _json_names_override(body: bytes) -> bool:
    try:
        document = json.loads(body)
    except ValueError:
        return True  # mentions the key but cannot be read: refuse rather than guess
    return isinstance(document, dict) and any(_is_override(str(key)) for key in document)
