"""``sensitive_off_hours``: access to a sensitive route outside the declared hours.

A route is sensitive when the policy marks it (``sensitive: true``, recorded in
each decision as ``resource.sensitive``) or when the rule names its id in
``routes``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from chalicelib.detect import events as ev
from chalicelib.detect.kinds.base import Match, Param, RuleKind, require_id

HOURS = Param(
    "hours",
    "When access is expected: {tz, days, from, to}, as a policy rule's `when.hours`.",
    "hours",
)
ROUTES = Param(
    "routes", "Route ids treated as sensitive besides those the policy marks.", "strings", []
)


def match(params: Mapping[str, Any], event: ev.Event) -> Match | None:
    """An allowed decision on a sensitive route, outside ``hours``."""
    if not ev.is_decision(event) or ev.outcome(event) != "allow":
        return None
    resource = ev.section(event, "resource")
    sensitive = resource.get("sensitive") is True or resource.get("route_id") in params["routes"]
    event_id, at = require_id(event), ev.event_epoch(event)
    if not sensitive or event_id is None or at is None:
        return None
    if params["hours"].contains(at):
        return None
    subject = ev.principal_key(event) or ev.source_ip(event) or "unknown"
    return Match(subject, event_id, at, ev.principal_summary(event))


KIND = RuleKind(
    name="sensitive_off_hours",
    style="each",
    summary="A sensitive route is accessed outside the declared hours.",
    params=(HOURS, ROUTES),
    example={
        "hours": {
            "tz": "Europe/Berlin",
            "days": ["mon", "tue", "wed", "thu", "fri"],
            "from": "07:00",
            "to": "20:00",
        },
        "routes": ["payroll"],
    },
    match=match,
)
