"""``break_glass``: every break-glass access (``elevation.break_glass`` in a decision)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from chalicelib.detect import events as ev
from chalicelib.detect.kinds.base import Match, RuleKind, require_id


def match(params: Mapping[str, Any], event: ev.Event) -> Match | None:
    """An allowed decision whose elevation is break-glass."""
    if not ev.is_decision(event) or ev.outcome(event) != "allow":
        return None
    if ev.section(event, "elevation").get("break_glass") is not True:
        return None
    event_id, at = require_id(event), ev.event_epoch(event)
    if event_id is None or at is None:
        return None
    subject = ev.principal_key(event) or ev.source_ip(event) or "unknown"
    return Match(subject, event_id, at, ev.principal_summary(event))


KIND = RuleKind(
    name="break_glass",
    style="each",
    summary="A principal used break-glass access.",
    params=(),
    example={},
    match=match,
)
