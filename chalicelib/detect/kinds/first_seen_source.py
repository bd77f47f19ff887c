"""``first_seen_source``: a principal seen from a source IP (or user agent) never seen before.

A principal's first event ever only starts its history (no alert): otherwise
every new colleague would be an alert. What was seen is remembered for
``remember_days`` after it was last seen.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any

from chalicelib.detect import events as ev
from chalicelib.detect.kinds.base import Match, Param, RuleKind, require_id

FIELD = Param(
    "field",
    "What is remembered: source_ip or user_agent.",
    "choice",
    "source_ip",
    choices=("source_ip", "user_agent"),
)
REMEMBER = Param(
    "remember_days", "How long a value is remembered after it was last seen.", "int", 90, 1, 400
)


def match(params: Mapping[str, Any], event: ev.Event) -> Match | None:
    """An allowed decision of a principal, valued by its source IP or user agent."""
    if not ev.is_decision(event) or ev.outcome(event) != "allow":
        return None
    subject, event_id, at = ev.principal_key(event), require_id(event), ev.event_epoch(event)
    if subject is None or event_id is None or at is None:
        return None
    if params["field"] == "source_ip":
        value = ev.source_ip(event)
    else:
        agent = ev.user_agent(event)
        # A digest: user agents are long, and the set of them is stored per principal.
        value = None if agent is None else hashlib.sha256(agent.encode()).hexdigest()[:16]
    if value is None:
        return None
    return Match(subject, event_id, at, ev.principal_summary(event), value=value)


KIND = RuleKind(
    name="first_seen_source",
    style="first_seen",
    summary="A known principal appears from a source IP (or user agent) never seen for it.",
    params=(FIELD, REMEMBER),
    example={"field": "source_ip", "remember_days": 90},
    match=match,
    default_suppress_seconds=3600,
)
