"""``deny_burst_ip``: one source IP denied ``threshold`` times within a window.

Counts refusals with or without a principal (failed tokens included): the
shape of password spraying and token guessing.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from chalicelib.detect import events as ev
from chalicelib.detect.kinds.base import THRESHOLD, WINDOW, Match, RuleKind, denied_by


def match(params: Mapping[str, Any], event: ev.Event) -> Match | None:
    """A denied decision, counted by its source IP."""
    return denied_by(event, ev.source_ip)


KIND = RuleKind(
    name="deny_burst_ip",
    style="count",
    summary="One source IP is denied `threshold` times within `window_seconds`.",
    params=(THRESHOLD, WINDOW),
    example={"threshold": 50, "window_seconds": 60},
    match=match,
)
