"""The audit report's integrity section, as a reader sees it in a real browser.

On the shared local stack: a few requests go through the gateway, a digest is
signed (away from the stack's own schedule), and ``audit report`` is written
for the last hour. Headless Chromium opens ``report.html`` from disk; the
integrity section's visible text must give verify's result, the tree size and
the root of a digest signed for the window.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from gatehouse.audit_commands import report
from gatehouse.audit_commands.stage import ledger_state
from gatehouse.report import Window
from gatehouse.target import resolve_target
from tests.e2e.support import GatewayClient, alice, token_for
from tests.e2e.test_ledger_witnesses import digest_keys, settle, sign_now, stored_document

if TYPE_CHECKING:
    from playwright.sync_api import Page

    from tests.e2e.browser import Screenshots
    from tests.e2e.support import RunningStack

pytestmark = pytest.mark.e2e

# The section's visible text: the heading and everything up to the next heading.
SECTION_TEXT = """(heading) => {
    const parts = [heading.innerText];
    for (let node = heading.nextElementSibling; node && !/^H[1-3]$/.test(node.tagName);
         node = node.nextElementSibling) {
        parts.push(node.innerText);
    }
    return parts.join("\\n");
}"""


def send_requests(running_stack: RunningStack) -> int:
    """An allowed, an unauthenticated and a denied request; how many requests were sent."""
    stack = running_stack.state
    client = GatewayClient(stack)  # its own: the trail test accounts for the shared one
    assert client.send("GET", "/api/report-browser", token=alice(stack)).status == 200
    assert client.send("GET", "/api/report-browser").status == 401
    contractor = token_for(stack, "dave", groups=["contractors"])
    assert client.send("DELETE", "/api/billing/report-browser", token=contractor).status == 403
    return 3


def test_the_report_page_shows_the_ledger_verified_for_the_last_hour(
    running_stack: RunningStack, browser_page: Page, screenshots: Screenshots, tmp_path: Path
) -> None:
    target = resolve_target(running_stack.state_dir)
    before = ledger_state(target).head().next_sequence
    settle(target, before + send_requests(running_stack))  # one decision event each, at least
    checkpoint = sign_now(target, running_stack.state_dir)
    now = datetime.now(UTC)

    written = report(
        target, Window(now - timedelta(hours=1), now), tmp_path / "report", cache_dir=tmp_path
    )

    integrity = json.loads(written.json.read_text())["compliance"]["integrity"]
    assert (integrity["result"], integrity["findings"]) == ("ok", []), integrity
    # The stack's own schedule may sign again before the report verifies: the tree shown
    # is that of this digest or of one signed after it.
    signed = digest_keys(target.client("s3"), target.audit_bucket)
    trees = [
        stored_document(target, key)["digest"]["tree"] for key in signed if key >= checkpoint.key
    ]
    assert {"size": integrity["tree_size"], "root": integrity["root"]} in [
        {"size": tree["size"], "root": tree["root"]} for tree in trees
    ]
    assert integrity["tree_size"] >= checkpoint.tree_size > before

    browser_page.goto(written.html.as_uri())
    heading = browser_page.locator("#integrity")
    heading.scroll_into_view_if_needed()
    assert heading.is_visible()
    text = heading.evaluate(SECTION_TEXT)
    shot = screenshots.take(browser_page, "report-integrity")

    assert shot.is_file()
    assert shot.stat().st_size > 0
    assert re.search(r"^result\s+ok$", text, re.MULTILINE), text
    assert re.search(rf"^tree size\s+{integrity['tree_size']:,}$", text, re.MULTILINE), text
    assert integrity["root"][:16] in text
