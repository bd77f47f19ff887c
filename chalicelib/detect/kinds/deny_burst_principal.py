"""``deny_burst_principal``: one principal denied ``threshold`` times within a window."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from chalicelib.detect import events as ev
from chalicelib.detect.kinds.base import THRESHOLD, WINDOW, Match, RuleKind, require_id


def match(params: Mapping[str, Any], event: ev.Event) -> Match | None:
    """A denied decision of an authenticated principal."""
    if not ev.is_decision(event) or ev.outcome(event) != "deny":
        return None
    subject, event_id, at = ev.principal_key(event), require_id(event), ev.event_epoch(event)
    if subject is None or event_id is None or at is None:
        return None
    return Match(subject, event_id, at, ev.principal_summary(event))


KIND = RuleKind(
    name="deny_burst_principal",
    style="count",
    summary="One principal is denied `threshold` times within `window_seconds`.",
    params=(THRESHOLD, WINDOW),
    example={"threshold": 20, "window_seconds": 60},
    match=match,
)
