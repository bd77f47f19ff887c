"""``token_many_ips``: one token (``principal.token_id``) used from ``threshold`` source IPs.

A bearer token is one client's: seen from several addresses within a short
window, it has probably been copied.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from chalicelib.detect import events as ev
from chalicelib.detect.kinds.base import WINDOW, Match, Param, RuleKind, require_id

THRESHOLD = Param("threshold", "How many different source IPs fire.", "int", 3, 2, 100)


def match(params: Mapping[str, Any], event: ev.Event) -> Match | None:
    """A decision on a request that carried a token id, by token id, valued by source IP."""
    if not ev.is_decision(event):
        return None
    token_id = ev.section(event, "principal").get("token_id")
    ip, event_id, at = ev.source_ip(event), require_id(event), ev.event_epoch(event)
    if not isinstance(token_id, str) or not token_id or ip is None:
        return None
    if event_id is None or at is None:
        return None
    return Match(token_id, event_id, at, ev.principal_summary(event), value=ip)


KIND = RuleKind(
    name="token_many_ips",
    style="distinct",
    summary="The same token id is used from `threshold` source IPs within `window_seconds`.",
    params=(THRESHOLD, WINDOW),
    example={"threshold": 3, "window_seconds": 300},
    match=match,
)
