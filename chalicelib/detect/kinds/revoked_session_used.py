"""``revoked_session_used``: a browser session used after it was revoked (``session_revoked``)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from chalicelib.detect import events as ev
from chalicelib.detect.kinds.base import Match, RuleKind, require_id

REVOKED = "session_revoked"


def match(params: Mapping[str, Any], event: ev.Event) -> Match | None:
    """A decision refused with ``session_revoked``, by session (else principal, else IP)."""
    if not ev.is_decision(event) or REVOKED not in ev.reasons(event):
        return None
    event_id, at = require_id(event), ev.event_epoch(event)
    if event_id is None or at is None:
        return None
    session = ev.section(event, "principal").get("browser_session_id")
    subject = (
        session
        if isinstance(session, str) and session
        else ev.principal_key(event) or ev.source_ip(event) or "unknown"
    )
    return Match(subject, event_id, at, ev.principal_summary(event))


KIND = RuleKind(
    name="revoked_session_used",
    style="each",
    summary="A revoked browser session is presented again.",
    params=(),
    example={},
    match=match,
)
