"""Fetching discovery documents and key sets over HTTP.

Kept apart from :mod:`chalicelib.identity.jwks` so that ``urllib.request`` (and
the ``http.client``/``email`` machinery it pulls in) is imported only when a
key set is first needed, not on every cold start.
"""

from __future__ import annotations

import http.client
import json
import urllib.error
import urllib.request
from typing import Any

from chalicelib.identity.jwks import FetchError, FetchJson

_MAX_DOCUMENT_BYTES = 512 * 1024


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    # A key set is configuration: an issuer that redirects it elsewhere is
    # misconfigured or compromised, and either way we should not follow.
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


def http_fetch_json(timeout_seconds: float) -> FetchJson:
    """Return a function that GETs a URL and parses its JSON body.

    The function raises :class:`FetchError` on any network, HTTP status,
    size or JSON problem.
    """
    opener = urllib.request.build_opener(_NoRedirects)

    def fetch(url: str) -> Any:
        request = urllib.request.Request(url, headers={"Accept": "application/json"})  # noqa: S310
        try:
            with opener.open(request, timeout=timeout_seconds) as response:
                if response.status != 200:
                    raise FetchError(f"{url} answered HTTP {response.status}")
                body = response.read(_MAX_DOCUMENT_BYTES + 1)
        except (urllib.error.URLError, OSError, ValueError, http.client.HTTPException) as exc:
            raise FetchError(f"{url}: {exc}") from exc
        if len(body) > _MAX_DOCUMENT_BYTES:
            raise FetchError(f"{url} returned more than {_MAX_DOCUMENT_BYTES} bytes")
        try:
            return json.loads(body)
        except ValueError as exc:
            raise FetchError(f"{url} did not return JSON") from exc

    return fetch
