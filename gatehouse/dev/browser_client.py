"""A scripted browser for the demo: keeps cookies and follows redirects over real HTTP.

It behaves as a browser does where the demo needs it: it sends page loads
with ``Accept: text/html``, keeps the cookies a response sets (by name; the
local stack serves everything from 127.0.0.1, and browsers share cookies
across ports) including ``Secure`` ones over plain-http loopback as Chromium
does, and follows ``Location`` until a page answers. Every hop is kept, so
the demo can show the way a sign-in went.
"""

from __future__ import annotations

import http.client
from dataclasses import dataclass, field
from urllib.parse import urljoin, urlsplit

PAGE_ACCEPT = "text/html,application/xhtml+xml;q=0.9,*/*;q=0.8"
MAX_REDIRECTS = 10


@dataclass(frozen=True, slots=True)
class Hop:
    """One request and its answer."""

    method: str
    url: str
    status: int
    location: str | None
    body: bytes


@dataclass
class ScriptedBrowser:
    """Cookies, and the hops of the last navigation."""

    cookies: dict[str, str] = field(default_factory=dict)
    hops: list[Hop] = field(default_factory=list)

    def open(self, url: str, *, method: str = "GET", form: str | None = None) -> Hop:
        """Load ``url`` (a form POST when ``form`` is given) and follow redirects.

        Returns
        -------
        Hop
            The last answer (not a redirect, or the tenth one).
        """
        self.hops = []
        body = form.encode() if form is not None else None
        for _ in range(MAX_REDIRECTS):
            hop = self._request(method, url, body)
            self.hops.append(hop)
            if hop.location is None or hop.status not in (301, 302, 303, 307, 308):
                return hop
            url = urljoin(url, hop.location)
            if hop.status != 307:
                method, body = "GET", None
        return self.hops[-1]

    def _request(self, method: str, url: str, body: bytes | None) -> Hop:
        parts = urlsplit(url)
        target = parts.path or "/"
        if parts.query:
            target += "?" + parts.query
        headers = {"Accept": PAGE_ACCEPT, "User-Agent": "gatehouse-demo-browser"}
        if self.cookies:
            headers["Cookie"] = "; ".join(f"{name}={value}" for name, value in self.cookies.items())
        if body is not None:
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        connection = http.client.HTTPConnection(
            parts.hostname or "127.0.0.1", parts.port, timeout=30
        )
        try:
            connection.request(method, target, body=body, headers=headers)
            response = connection.getresponse()
            payload = response.read()
            for value in response.headers.get_all("Set-Cookie") or []:
                self._keep(value)
            return Hop(method, url, response.status, response.getheader("Location"), payload)
        finally:
            connection.close()

    def _keep(self, set_cookie: str) -> None:
        pair, _, attributes = set_cookie.partition(";")
        name, _, value = pair.strip().partition("=")
        expired = "max-age=0" in attributes.lower().replace(" ", "")
        if expired or not value:
            self.cookies.pop(name, None)
        else:
            self.cookies[name] = value
