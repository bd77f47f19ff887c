"""The few HTML pages sign-in shows: choose a provider, confirm sign-out, signed out, failed.

Every value that reaches a page is HTML-escaped, and every page is sent with
a Content-Security-Policy that allows no script and no frame, so a page can
neither run code nor be framed.
"""

from __future__ import annotations

from html import escape
from urllib.parse import quote

from chalicelib.apigw.responses import ProxyResponse

PAGE_HEADERS = {
    "Content-Type": ["text/html; charset=utf-8"],
    "Cache-Control": ["no-store"],
    "Content-Security-Policy": [
        # No form-action: browsers apply it to the redirect after the sign-out
        # POST, which goes on to the identity provider's logout page.
        "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'; base-uri 'none'"
    ],
    "X-Frame-Options": ["DENY"],
    # Not no-referrer: with it a browser sends `Origin: null` on the sign-out form's POST,
    # which the origin check must refuse. same-origin tells other sites nothing.
    "Referrer-Policy": ["same-origin"],
}

_STYLE = (
    "body{font-family:system-ui,sans-serif;max-width:32rem;margin:4rem auto;padding:0 1rem}"
    "a.button,button{display:block;margin:.5rem 0;padding:.6rem 1rem;border:1px solid #888;"
    "border-radius:.3rem;background:#f4f4f4;color:#000;text-decoration:none;font-size:1rem}"
)


def page(
    status: int,
    title: str,
    body_html: str,
    *,
    headers: dict[str, list[str]] | None = None,
) -> ProxyResponse:
    """A small HTML page; ``body_html`` must already be escaped."""
    text = (
        "<!doctype html><html lang=en><head><meta charset=utf-8>"
        f"<meta name=viewport content='width=device-width'><title>{escape(title)}</title>"
        f"<style>{_STYLE}</style></head><body><h1>{escape(title)}</h1>{body_html}</body></html>"
    )
    merged = {**PAGE_HEADERS, **(headers or {})}
    return ProxyResponse(status, merged, text.encode("utf-8"))


def login_link(base_url: str, return_to: str, idp: str | None = None) -> str:
    """The sign-in address that comes back to ``return_to``."""
    query = "rd=" + quote(return_to, safe="/")
    if idp is not None:
        query += "&idp=" + quote(idp, safe="")
    return f"{base_url}/.gatehouse/login?{query}"


def choose_provider(
    base_url: str, return_to: str, providers: list[tuple[str, str]]
) -> ProxyResponse:
    """Let the person pick the identity provider to sign in with (name, display name)."""
    links = "".join(
        f"<a class=button id='idp-{escape(name)}' "
        f"href='{escape(login_link(base_url, return_to, name))}'>{escape(display)}</a>"
        for name, display in providers
    )
    return page(200, "Sign in", f"<p>Choose how to sign in:</p>{links}")


def confirm_sign_out(base_url: str) -> ProxyResponse:
    """Sign-out is a POST (no other site can make a browser sign out): this page asks for it."""
    form = (
        f"<form method=post action='{escape(base_url)}/.gatehouse/logout'>"
        "<button id=sign-out type=submit>Sign out</button></form>"
    )
    return page(200, "Sign out", f"<p>Sign out of this gateway?</p>{form}")


def signed_out(base_url: str) -> ProxyResponse:
    """Where sign-out ends."""
    link = (
        f"<a class=button id=sign-in href='{escape(login_link(base_url, '/'))}'>Sign in again</a>"
    )
    return page(200, "Signed out", f"<p>You are signed out.</p>{link}")


def failed(status: int, message: str, base_url: str, return_to: str) -> ProxyResponse:
    """A sign-in step failed: say so plainly, and offer to start again."""
    link = (
        f"<a class=button id=try-again href='{escape(login_link(base_url, return_to))}'>"
        "Try again</a>"
    )
    return page(status, "Sign-in failed", f"<p>{escape(message)}</p>{link}")
