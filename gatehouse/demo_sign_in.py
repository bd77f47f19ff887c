"""The demo's browser session: sign in with the dev issuer, use the app, sign out, replay.

A scripted browser (:mod:`gatehouse.dev.browser_client`) does what a person
does in a real one: opens a protected page, is sent to the dev issuer's
login page, picks a user, comes back with a session cookie, uses the page,
signs out, and then the old cookie is tried again. The trail then tells the
session's whole story with the ``session_story`` named query.
"""

from __future__ import annotations

import re
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from gatehouse.dev.browser_client import ScriptedBrowser

if TYPE_CHECKING:
    from gatehouse.state import DevState
    from gatehouse.target import Target

SESSION_COOKIE = "__Host-gatehouse-session"
_REQUEST_ID = re.compile(rb'name="request_id" value="([^"]+)"')


def browser_session(state: DevState, state_dir: Path) -> bool:
    """Run the browser session and print what happened; False when a step went wrong."""
    gateway = state.gateway_url
    browser = ScriptedBrowser()
    print("\nBrowser session (a scripted browser; open the same address in a real one):")
    login = browser.open(f"{gateway}/api/hello")
    hops = " -> ".join(
        f"{hop.status} {_short(hop.url, gateway, state.issuer)}" for hop in browser.hops
    )
    print(f"  GET /api/hello as a page load: {hops}")
    request_id = _REQUEST_ID.search(login.body)
    if login.status != 200 or request_id is None:
        print("  FAILED: the page load did not reach the dev issuer's login page")
        return False
    authorize = urlsplit(login.url)
    picked = browser.open(
        f"{authorize.scheme}://{authorize.netloc}/authorize",
        method="POST",
        form=f"request_id={request_id.group(1).decode()}&pick=alice",
    )
    hops = " -> ".join(
        f"{hop.status} {_short(hop.url, gateway, state.issuer)}" for hop in browser.hops
    )
    print(f"  picked alice at the dev issuer: {hops}")
    cookie = browser.cookies.get(SESSION_COOKIE)
    if picked.status != 200 or cookie is None:
        print("  FAILED: no session after sign-in")
        return False
    print(f"  session cookie {SESSION_COOKIE}: {len(cookie)} characters, sealed (AES-256-GCM)")
    again = browser.open(f"{gateway}/api/hello")
    print(f"  reload: {again.status} straight from the backend (no sign-in)")
    browser.open(f"{gateway}/.gatehouse/logout", method="POST", form="")
    hops = " -> ".join(
        f"{hop.status} {_short(hop.url, gateway, state.issuer)}" for hop in browser.hops
    )
    print(f"  sign out: {hops}")
    replay = ScriptedBrowser(cookies={SESSION_COOKIE: cookie})
    replay.open(f"{gateway}/api/hello")
    first = replay.hops[0]
    print(
        f"  the old cookie replayed: {first.status} to "
        f"{_short(first.location or '', gateway, state.issuer)} (revoked at sign-out)"
    )
    ok = (
        again.status == 200
        and first.status == 302
        and "/.gatehouse/login" in (first.location or "")
    )
    return _print_story(state_dir) and ok


def _print_story(state_dir: Path) -> bool:
    """The session's story from the trail: the ``session_story`` named query."""
    from gatehouse.query.command import build_engine, format_table
    from gatehouse.query.errors import QueryError
    from gatehouse.target import resolve_target

    target = resolve_target(state_dir)
    session_id = _signed_in_session(target)
    if session_id is None:
        print("  FAILED: no signed_out event reached the trail")
        return False
    now = datetime.now(UTC)
    params = {
        "session_id": session_id,
        "from": (now - timedelta(hours=1)).strftime("%Y-%m-%d %H:%M:%S"),
        "to": (now + timedelta(minutes=1)).strftime("%Y-%m-%d %H:%M:%S"),
    }
    try:
        result = build_engine(target, "local", state_dir / "cache").run_named(
            "session_story", params
        )
    except QueryError as exc:
        print(f"  gatehouse audit query FAILED: {exc}")
        return False
    print(
        f"\n  gatehouse audit query --named session_story --engine local "
        f"--param session_id={session_id} ...:"
    )
    shown = ["event_type", "action", "reason", "method", "path", "status", "principal"]
    indexes = [result.columns.index(name) for name in shown if name in result.columns]
    rows = [tuple(row[index] for index in indexes) for row in result.rows]
    table = format_table([result.columns[index] for index in indexes], rows)
    print("  " + table.replace("\n", "\n  "))
    return len(result.rows) >= 4


def _signed_in_session(target: Target) -> str | None:
    """The newest signed-out session in the trail (the writer runs every second)."""
    from gatehouse.audit_commands import flush, tail
    from gatehouse.audit_commands.queue import stage_detector

    detector = stage_detector(target)  # the replayed cookie must meet its rule
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        flush(target, detector=detector)
        for event in reversed(tail(target, 1000)):
            session = event.get("session") or {}
            if session.get("action") == "signed_out":
                return str(session["session_id"])
        time.sleep(0.5)
    return None


def _short(url: str, gateway: str, issuer: str) -> str:
    """A URL with the gateway or issuer origin shown as a name."""
    if url.startswith(gateway):
        return "gateway" + url[len(gateway) :].split("?", 1)[0]
    if url.startswith(issuer):
        return "issuer" + url[len(issuer) :].split("?", 1)[0]
    return url.split("?", 1)[0]
