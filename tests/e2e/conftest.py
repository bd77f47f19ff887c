"""End-to-end tier: the real ``gatehouse dev`` process, real sockets, real tokens.

The stack runs as a subprocess exactly as an operator starts it. Tests talk
to it only through ``dev.json`` (docs/architecture.md), HTTP on the gateway
port, the ``gatehouse`` CLI, and the emulated AWS endpoint it publishes.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from tests.e2e.browser import Screenshots, fresh_page
from tests.e2e.support import GatewayClient, RunningStack, start_stack, stop_stack

if TYPE_CHECKING:
    from playwright.sync_api import Page

    from gatehouse.state import DevState


@pytest.fixture(scope="session")
def running_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningStack]:
    """The shared stack (authorizer cache off); stopped with Ctrl-C at the end."""
    stack = start_stack(tmp_path_factory.mktemp("gatehouse-e2e"))
    yield stack
    stop_stack(stack)


@pytest.fixture(scope="session")
def stack(running_stack: RunningStack) -> DevState:
    """The shared stack's ``dev.json``."""
    return running_stack.state


@pytest.fixture(scope="session")
def gateway(stack: DevState) -> GatewayClient:
    """HTTP to the shared stack; remembers every exchange for the audit checks."""
    return GatewayClient(stack)


@pytest.fixture
def own_stack(tmp_path: Path) -> Iterator[RunningStack]:
    """A stack of the test's own (for tests that break it); cache off."""
    stack = start_stack(tmp_path / "state")
    yield stack
    stop_stack(stack)


@pytest.fixture
def cached_stack(tmp_path: Path) -> Iterator[RunningStack]:
    """A stack whose gateway caches authorizer answers for 300 s (and prints EMF metrics)."""
    stack = start_stack(tmp_path / "state", "--authorizer-ttl", "300", "--metrics")
    yield stack
    stop_stack(stack)


@pytest.fixture
def browser_page() -> Iterator[Page]:
    """A page of a fresh headless Chromium (tests/e2e/browser.py); fails if it is not installed."""
    with fresh_page() as page:
        yield page


@pytest.fixture
def screenshots(tmp_path: Path) -> Screenshots:
    """Numbered PNGs under the test's ``tmp_path / "screenshots"``."""
    return Screenshots(tmp_path / "screenshots")
