"""A real browser for the end-to-end tier: headless Debian Chromium driven by Playwright.

Playwright's own browsers are never downloaded: the Python wheel ships only its
driver, and it launches ``/usr/bin/chromium`` (Debian's package, which ``.ci/run``
installs). Every page lives in a fresh browser context, so no cookie, cache or
storage leaks between tests.

Cookies on loopback (measured with Chromium 156): a ``__Host-`` cookie with
``Secure`` set by plain HTTP is kept and sent back on ``http://127.0.0.1:<port>``
and on ``http://localhost:<port>`` (both count as secure origins), including
after a top-level redirect from another loopback port. Cookies ignore ports: a
gateway cookie on 127.0.0.1 is also sent to every other server on 127.0.0.1, and
``127.0.0.1`` and ``localhost`` are two different cookie hosts.

Usage (fixtures in tests/e2e/conftest.py)::

    def test_login(browser_page: Page, screenshots: Screenshots) -> None:
        browser_page.goto(url)
        screenshots.take(browser_page, "login-page")  # .../01-login-page.png
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from playwright.sync_api import Browser, BrowserContext, Page, ViewportSize

CHROMIUM_PATH = Path("/usr/bin/chromium")
CHROMIUM_FLAGS = (
    "--no-sandbox",  # CI runs as root, where Chromium's sandbox refuses to start
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)
LAUNCH_TIMEOUT_MS = 30_000
ACTION_TIMEOUT_MS = 30_000  # navigations, clicks, waits; the local stack answers well within it
VIEWPORT: ViewportSize = {"width": 1280, "height": 800}  # screenshots of a fixed size
_SCREENSHOT_NAME = re.compile(r"[a-z0-9]+(?:-[a-z0-9]+)*")


def require_chromium(executable: Path = CHROMIUM_PATH) -> None:
    """Fail the test (never skip: CI installs Chromium) when ``executable`` cannot run."""
    if not (executable.is_file() and os.access(executable, os.X_OK)):
        pytest.fail(
            f"{executable} is missing: the e2e browser tests need Debian's Chromium. "
            "Run .ci/run (it installs it), or `apt-get install -y chromium` "
            "(`sudo apt-get install -y chromium` when not root).",
            pytrace=False,
        )


@contextmanager
def launch_chromium(executable: Path = CHROMIUM_PATH) -> Iterator[Browser]:
    """Launch headless Chromium from ``executable`` with ``CHROMIUM_FLAGS``; close it after.

    Playwright gives each launch its own temporary user-data directory and removes it.
    """
    require_chromium(executable)
    from playwright.sync_api import sync_playwright  # only browser tests pay for the import

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=executable,
            headless=True,
            args=list(CHROMIUM_FLAGS),
            timeout=LAUNCH_TIMEOUT_MS,
        )
        try:
            yield browser
        finally:
            browser.close()


@contextmanager
def fresh_context(browser: Browser) -> Iterator[BrowserContext]:
    """A new, empty browser context (cookie jar, cache, storage); closed after."""
    context = browser.new_context(viewport=VIEWPORT, locale="en-US")
    context.set_default_timeout(ACTION_TIMEOUT_MS)
    context.set_default_navigation_timeout(ACTION_TIMEOUT_MS)
    try:
        yield context
    finally:
        context.close()


@contextmanager
def fresh_page(executable: Path = CHROMIUM_PATH) -> Iterator[Page]:
    """One page in a fresh context of a freshly launched Chromium: what ``browser_page`` yields.

    ``page.context`` is its context (``.cookies()``, ``.clear_cookies()``, a second page).
    """
    with launch_chromium(executable) as browser, fresh_context(browser) as context:
        yield context.new_page()


@dataclass
class Screenshots:
    """Numbered PNGs of the steps of one test: ``01-login-page.png``, ``02-...``."""

    directory: Path
    taken: list[Path] = field(default_factory=list)

    def take(self, page: Page, name: str, *, full_page: bool = True) -> Path:
        """Save ``page`` as ``NN-name.png`` under ``directory``; return the file's path.

        ``name`` is lower-case words joined by hyphens, e.g. ``"login-page"``.
        """
        if not _SCREENSHOT_NAME.fullmatch(name):
            raise ValueError(f"screenshot name {name!r} is not lower-case-words-with-hyphens")
        self.directory.mkdir(parents=True, exist_ok=True)
        path = self.directory / f"{len(self.taken) + 1:02d}-{name}.png"
        page.screenshot(path=path, full_page=full_page)
        self.taken.append(path)
        return path
