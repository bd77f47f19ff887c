"""``deny_burst_ip``: one source IP denied ``threshold`` times within a window.

Counts refusals with or without a principal (failed tokens included): the
shape of password spraying and token guessing.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from chalicelib.detect import events as ev
from chalicelib.detect.kinds.base import THRESHOLD, WINDOW, Match, RuleKind, require_id


def match(params: Mapping[str, Any], event: ev.Event) -> Match | None:
    """A denied decision, counted by its source IP."""
    if not ev.is_decision(event) or ev.outcome(event) != "deny":
        return None
    ip, event_id, at = ev.source_ip(event), require_id(event), ev.event_epoch(event)
    if ip is None or event_id is None or at is None:
        return None
    return Match(ip, event_id, at, ev.principal_summary(event))


KIND = RuleKind(
    name="deny_burst_ip",
    style="count",
    summary="One source IP is denied `threshold` times within `window_seconds`.",
    params=(THRESHOLD, WINDOW),
    example={"threshold": 50, "window_seconds": 60},
    match=match,
)
