"""Browser sign-in on the shared local stack, driven by a real headless Chromium.

A person opens the demo app (``/app/``: the demo backend's HTML page of who
the gateway says they are), signs in at the dev issuer, and the session cookie
carries them from then on; signing out, a tampered cookie, an operator's
revocation and the provider's back-channel logout each send the next page load
back to sign in, and each leaves its mark in the audit trail.

One Chromium for the module; every test has its own browser context (cookie
jar), its own screenshots (``<tmp_path>/screenshots/NN-step.png``) and, where it
signs in a typed user, a subject of its own, so tests sharing the stack cannot
end each other's sessions.
"""

from __future__ import annotations

import json
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import pytest

from tests.e2e.browser import fresh_context, launch_chromium
from tests.e2e.support import (
    AUDIT_DEADLINE_SECONDS,
    AuditSnapshot,
    events_of,
    read_audit,
    run_cli,
)

if TYPE_CHECKING:
    from playwright._impl._api_structures import SetCookieParam
    from playwright.sync_api import (
        Browser,
        BrowserContext,
        Cookie,
        Page,
        Request,
        Response,
    )

    from tests.e2e.browser import Screenshots
    from tests.e2e.support import RunningStack

pytestmark = pytest.mark.e2e

SESSION_COOKIE = "__Host-gatehouse-session"
APP = "/app/"
REVOCATION_REFRESH_SECONDS = 3.0  # GATEHOUSE_SESSION_REVOCATION_REFRESH_SECONDS's default
ENDED_DEADLINE_SECONDS = 15.0  # how long a test reloads waiting for an ended session to stop
RELOAD_INTERVAL_MS = 250


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def chromium() -> Iterator[Browser]:
    """One headless Chromium for the module (each test gets its own context)."""
    with launch_chromium() as browser:
        yield browser


@pytest.fixture
def context(chromium: Browser) -> Iterator[BrowserContext]:
    """A fresh, empty browser context: no cookie of another test."""
    with fresh_context(chromium) as fresh:
        yield fresh


@dataclass
class Site:
    """The shared stack as a browser sees it, and what the browser did there."""

    stack: RunningStack
    page: Page
    # Every navigation request's URL, redirects included, in order.
    navigations: list[str] = field(default_factory=list)
    # (method, URL, status, x-amzn-RequestId) of every gateway answer to a navigation.
    answers: list[tuple[str, str, int, str | None]] = field(default_factory=list)

    @property
    def gateway(self) -> str:
        return self.stack.state.gateway_url

    @property
    def issuer(self) -> str:
        return self.stack.state.issuer

    @property
    def app(self) -> str:
        return self.gateway + APP

    def on_login_page(self) -> bool:
        return self.page.url.startswith(self.issuer + "/authorize?")

    def request_ids(self, url: str, status: int) -> list[str]:
        """The gateway's request ids of the navigations to ``url`` answered ``status``."""
        return [
            request_id
            for _, answered, code, request_id in self.answers
            if answered == url and code == status and request_id
        ]

    def session_of_latest(self, snapshot: AuditSnapshot) -> str | None:
        """The browser session of the latest signed-in app load, per the trail (or None yet)."""
        [*_, load] = self.request_ids(self.app, 200)
        return session_of_load(snapshot, load)

    def session_cookies(self) -> list[Cookie]:
        return [c for c in self.page.context.cookies() if c["name"] == SESSION_COOKIE]


@pytest.fixture
def site(running_stack: RunningStack, context: BrowserContext) -> Site:
    """A page of a fresh context on the shared stack, recording its navigations."""
    page = context.new_page()
    recorded = Site(running_stack, page)

    def on_request(request: Request) -> None:
        if request.is_navigation_request():
            recorded.navigations.append(request.url)

    def on_response(response: Response) -> None:
        if response.request.is_navigation_request() and response.url.startswith(
            recorded.gateway + "/"
        ):
            recorded.answers.append(
                (
                    response.request.method,
                    response.url,
                    response.status,
                    response.headers.get("x-amzn-requestid"),
                )
            )

    page.on("request", on_request)
    page.on("response", on_response)
    return recorded


# --------------------------------------------------------------------------- steps


def open_app_to_login(site: Site) -> None:
    """Open the app without a session: the browser ends on the dev issuer's login page."""
    site.page.goto(site.app)
    site.page.wait_for_url(site.issuer + "/authorize?**")
    assert site.page.locator("#title").inner_text() == "Dev issuer sign-in"


def pick(site: Site, who: str) -> None:
    """On the login page, pick a demo user; wait to be back on the app as them."""
    site.page.click(f"#pick-{who}")
    site.page.wait_for_url(site.app)
    shows_subject(site.page, who)


def sign_in_typed(site: Site, subject: str, email: str, groups: str) -> None:
    """On the login page, type a user; wait to be back on the app as them."""
    site.page.fill("#sub", subject)
    site.page.fill("#email", email)
    site.page.fill("#groups", groups)
    site.page.click("#sign-in")
    site.page.wait_for_url(site.app)
    shows_subject(site.page, subject)


def shows_subject(page: Page, subject: str) -> None:
    from playwright.sync_api import expect

    expect(page.locator("#whoami")).to_have_text(subject)


def reload_until_sent_to_sign_in(site: Site) -> float:
    """Reload the app until the gateway sends the browser to sign in; seconds it took.

    Polls the server (an ended session stops working within the revocation
    refresh), not a fixed sleep: each reload is a real page load.
    """
    started = time.monotonic()
    deadline = started + ENDED_DEADLINE_SECONDS
    while True:
        site.page.goto(site.app)
        if site.on_login_page():
            return time.monotonic() - started
        assert time.monotonic() < deadline, (
            f"still signed in {ENDED_DEADLINE_SECONDS:.0f} s later: {site.page.url}"
        )
        site.page.wait_for_timeout(RELOAD_INTERVAL_MS)


def unique_subject(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


# --------------------------------------------------------------------------- the trail


def trail_until(site: Site, complete: Callable[[AuditSnapshot], bool]) -> AuditSnapshot:
    """Read the audit trail (flush, tail) until ``complete`` holds or the deadline passes."""
    deadline = time.monotonic() + AUDIT_DEADLINE_SECONDS
    while True:
        snapshot = read_audit(site.stack.state_dir)
        if complete(snapshot) or time.monotonic() > deadline:
            return snapshot  # the caller's assertions say what is missing
        time.sleep(0.5)


def session_events(
    snapshot: AuditSnapshot,
    action: str,
    *,
    subject: str | None = None,
    session_id: str | None = None,
) -> list[dict[str, Any]]:
    return [
        event
        for event in snapshot.admin
        if event["event_type"] == "session"
        and event["session"]["action"] == action
        and (subject is None or (event["principal"] or {}).get("subject") == subject)
        and (session_id is None or event["session"]["session_id"] == session_id)
    ]


def decisions(snapshot: AuditSnapshot, request_ids: list[str]) -> list[dict[str, Any]]:
    return [
        decision
        for request_id in request_ids
        for decision in events_of(snapshot.by_request, request_id, "decision")
    ]


def session_of_load(snapshot: AuditSnapshot, request_id: str) -> str | None:
    """The browser session the decision of ``request_id`` names (None until it is stored)."""
    found = decisions(snapshot, [request_id])
    return found[0]["principal"]["browser_session_id"] if found else None


def signed_in_session(
    site: Site, subject: str, also: Callable[[AuditSnapshot], bool] = lambda _: True
) -> tuple[str, AuditSnapshot]:
    """This browser's session id (from the latest app load's decision), and the trail.

    Waits until that session's ``signed_in`` event, for ``subject``, is in the
    trail too (other tests sign the same demo users in: the subject alone is
    ambiguous), and until ``also`` holds: one wait, as each read runs the CLI twice.
    """

    def complete(snapshot: AuditSnapshot) -> bool:
        session_id = site.session_of_latest(snapshot)
        return (
            session_id is not None
            and bool(session_events(snapshot, "signed_in", session_id=session_id))
            and also(snapshot)
        )

    snapshot = trail_until(site, complete)
    session_id = site.session_of_latest(snapshot)
    assert isinstance(session_id, str), site.answers
    assert session_id, site.answers
    [signed_in] = session_events(snapshot, "signed_in", session_id=session_id)
    assert signed_in["principal"]["subject"] == subject
    assert signed_in["principal"]["browser_session_id"] == session_id
    return session_id, snapshot


# --------------------------------------------------------------------------- tests


def test_a_page_load_signs_in_and_the_session_carries_the_next_loads(
    site: Site, screenshots: Screenshots
) -> None:
    page = site.page
    open_app_to_login(site)
    # The whole way: app -> gateway login -> the issuer's login page.
    assert site.navigations[:3] == [
        site.app,
        f"{site.gateway}/.gatehouse/login?rd={APP}",
        page.url,
    ]
    screenshots.take(page, "protected-page-redirects-to-login")

    pick(site, "alice")
    assert page.locator("#email").inner_text() == "alice@example.com"
    assert page.locator("#groups").inner_text() == "engineering"
    assert page.locator("#path").inner_text() == APP
    assert page.locator("#sign-out-link").get_attribute("href") == "/.gatehouse/logout"
    assert page.locator("#assertion-error").count() == 0  # the backend verified the assertion
    screenshots.take(page, "signed-in-as-alice")

    [cookie] = site.session_cookies()
    assert (cookie["domain"], cookie["path"]) == ("127.0.0.1", "/")
    assert (cookie["secure"], cookie["httpOnly"], cookie["sameSite"]) == (True, True, "Lax")
    assert page.evaluate("document.cookie") == ""  # HttpOnly: no script sees the session

    # Reload: still alice, and the browser never left the gateway to get there.
    before = len(site.navigations)
    page.reload()
    shows_subject(page, "alice")
    assert site.navigations[before:] == [site.app]
    screenshots.take(page, "reload-still-alice")

    signed_in_loads = site.request_ids(site.app, 200)
    assert len(signed_in_loads) == 2  # after the callback, and the reload
    [first] = site.request_ids(site.app, 302)  # before signing in
    session_id, snapshot = signed_in_session(
        site, "alice", also=lambda s: len(decisions(s, [*signed_in_loads, first])) == 3
    )
    loads = decisions(snapshot, signed_in_loads)
    assert [d["decision"]["outcome"] for d in loads] == ["allow", "allow"]
    assert {d["principal"]["browser_session_id"] for d in loads} == {session_id}
    assert {d["principal"]["subject"] for d in loads} == {"alice"}
    assert [d["decision"]["matched_rules"] for d in loads] == [["staff-app"]] * 2
    # The very first load, without a session, was decided too (and refused).
    [refused] = decisions(snapshot, [first])
    assert refused["decision"]["reasons"] == ["missing_credentials"]
    assert refused["principal"] is None


def test_sign_out_ends_the_session_and_the_next_load_signs_in_again(
    site: Site, screenshots: Screenshots
) -> None:
    page = site.page
    logout = site.gateway + "/.gatehouse/logout"
    open_app_to_login(site)
    pick(site, "alice")
    screenshots.take(page, "signed-in-as-alice")

    page.click("#sign-out-link")
    page.wait_for_url(logout)
    screenshots.take(page, "sign-out-page")
    before = len(site.navigations)
    # The page's own form, as served: its POST carries this site's Origin.
    with page.expect_response(lambda r: r.request.method == "POST" and r.url == logout) as posted:
        page.click("#sign-out")
    assert posted.value.status == 302, (
        f"POST {logout} answered {posted.value.status} "
        f"(Origin: {posted.value.request.header_value('origin')!r})"
    )
    page.wait_for_url(site.gateway + "/.gatehouse/signed-out")
    # Through the issuer's end-session endpoint (RP-initiated logout) and back.
    assert site.navigations[before] == logout
    assert any(url.startswith(site.issuer + "/logout") for url in site.navigations[before:])
    assert site.session_cookies() == []
    screenshots.take(page, "signed-out")

    open_app_to_login(site)
    screenshots.take(page, "app-again-asks-to-sign-in")

    session_id, snapshot = signed_in_session(
        site,
        "alice",
        also=lambda s: bool(session_events(s, "signed_out", session_id=site.session_of_latest(s))),
    )
    [signed_out] = session_events(snapshot, "signed_out", session_id=session_id)
    assert signed_out["session"]["revoked_by"] == "user"
    assert signed_out["principal"]["subject"] == "alice"


def test_a_tampered_cookie_is_refused_and_sent_to_sign_in(
    site: Site, screenshots: Screenshots
) -> None:
    page = site.page
    open_app_to_login(site)
    pick(site, "alice")
    screenshots.take(page, "signed-in-as-alice")

    [cookie] = site.session_cookies()
    value = cookie["value"]
    middle = len(value) // 2
    flipped = value[:middle] + ("A" if value[middle] != "A" else "B") + value[middle + 1 :]
    # The same cookie (name, host-only 127.0.0.1, path, attributes), one character changed.
    tampered: SetCookieParam = {
        "name": cookie["name"],
        "value": flipped,
        "domain": cookie["domain"],
        "path": cookie["path"],
        "expires": cookie["expires"],
        "httpOnly": cookie["httpOnly"],
        "secure": cookie["secure"],
        "sameSite": cookie["sameSite"],
    }
    page.context.add_cookies([tampered])
    assert [c["value"] for c in site.session_cookies()] == [flipped]  # replaced, not added

    page.goto(site.app)
    page.wait_for_url(site.issuer + "/authorize?**")
    screenshots.take(page, "tampered-cookie-sent-to-login")

    [signed_in_load] = site.request_ids(site.app, 200)
    [_before_sign_in, tampered_load] = site.request_ids(site.app, 302)
    snapshot = trail_until(site, lambda s: bool(decisions(s, [tampered_load])))
    [refused] = decisions(snapshot, [tampered_load])
    assert refused["decision"]["outcome"] == "deny"
    assert refused["decision"]["reasons"] == ["session_invalid"]
    assert refused["principal"] is None
    [allowed] = decisions(snapshot, [signed_in_load])
    assert allowed["decision"]["outcome"] == "allow"


def test_an_operator_revocation_ends_the_session_within_seconds(
    site: Site, screenshots: Screenshots
) -> None:
    page = site.page
    subject = unique_subject("rita")
    open_app_to_login(site)
    page.fill("#sub", subject)  # shown filled in on the screenshot
    screenshots.take(page, "typed-user-on-login-page")
    sign_in_typed(site, subject, "rita@example.com", "staff")
    assert page.locator("#groups").inner_text() == "staff"
    screenshots.take(page, "signed-in-as-typed-user")
    session_id, _ = signed_in_session(site, subject)

    said = run_cli(site.stack.state_dir, "session", "revoke", session_id)
    assert f"session {session_id} of {subject} (dev) revoked" in said

    took = reload_until_sent_to_sign_in(site)
    assert took <= REVOCATION_REFRESH_SECONDS + 3.0, f"revocation took {took:.1f} s"
    screenshots.take(page, "revoked-session-sent-to-login")

    [*_, refusal] = site.request_ids(site.app, 302)
    snapshot = trail_until(
        site,
        lambda s: bool(
            session_events(s, "revoked", session_id=session_id) and decisions(s, [refusal])
        ),
    )
    [revoked] = session_events(snapshot, "revoked", session_id=session_id)
    assert revoked["session"]["revoked_by"] == "operator"
    assert revoked["session"]["reason"] == "session_revoked"
    assert revoked["principal"]["subject"] == subject
    assert revoked["aws"]["caller_arn"]
    [refused] = decisions(snapshot, [refusal])
    assert refused["decision"]["reasons"] == ["session_revoked"]


def test_the_providers_back_channel_logout_ends_the_session(
    site: Site, screenshots: Screenshots
) -> None:
    page = site.page
    subject = unique_subject("bea")
    open_app_to_login(site)
    sign_in_typed(site, subject, "bea@example.com", "staff")
    screenshots.take(page, "signed-in-as-typed-user")

    request = urllib.request.Request(  # noqa: S310 (the dev issuer, on loopback)
        site.issuer + "/dev/end-sessions",
        data=f"sub={subject}".encode(),
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310 (loopback)
        delivered = json.load(response)["delivered"]
    assert delivered >= 1  # the issuer's logout token reached the gateway

    reload_until_sent_to_sign_in(site)
    screenshots.take(page, "provider-logout-sent-to-login")

    session_id, snapshot = signed_in_session(
        site,
        subject,
        also=lambda s: bool(
            session_events(s, "idp_logged_out", session_id=site.session_of_latest(s))
        ),
    )
    [logged_out] = session_events(snapshot, "idp_logged_out", session_id=session_id)
    assert logged_out["session"]["revoked_by"] == "idp"
    assert logged_out["principal"]["subject"] == subject
