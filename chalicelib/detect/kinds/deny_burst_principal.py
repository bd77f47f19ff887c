"""``deny_burst_principal``: one principal denied ``threshold`` times within a window."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from chalicelib.detect import events as ev
from chalicelib.detect.kinds.base import THRESHOLD, WINDOW, Match, RuleKind, denied_by


def match(params: Mapping[str, Any], event: ev.Event) -> Match | None:
    """A denied decision of an authenticated principal."""
    return denied_by(event, ev.principal_key)


KIND = RuleKind(
    name="deny_burst_principal",
    style="count",
    summary="One principal is denied `threshold` times within `window_seconds`.",
    params=(THRESHOLD, WINDOW),
    example={"threshold": 20, "window_seconds": 60},
    match=match,
)
