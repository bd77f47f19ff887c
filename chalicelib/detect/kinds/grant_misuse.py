"""``grant_misuse``: an attempt to use or act on an expired, revoked or denied grant.

Two signals: a decision carrying one of ``reasons`` (reason codes of
:class:`chalicelib.reasons.Reason`; by default the three an ended grant gives a
refusal it would have covered), and a refused grant API call
(``grant.action`` = ``refused``) whose status is one of ``statuses`` (409: the
grant is no longer pending or live — expired, revoked or denied).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from chalicelib.detect import events as ev
from chalicelib.detect.kinds.base import Match, Param, RuleKind, require_id
from chalicelib.reasons import Reason

_ENDED = [Reason.GRANT_EXPIRED.value, Reason.GRANT_REVOKED.value, Reason.GRANT_DENIED.value]
REASONS = Param(
    "reasons",
    "Decision reason codes that count as grant misuse.",
    "strings",
    _ENDED,
    choices=tuple(Reason),
)
STATUSES = Param(
    "statuses", "Refused grant API statuses that count (HTTP codes).", "strings", ["409"]
)


def match(params: Mapping[str, Any], event: ev.Event) -> Match | None:
    """A decision with a listed reason, or a grant refusal with a listed status."""
    event_id, at = require_id(event), ev.event_epoch(event)
    if event_id is None or at is None:
        return None
    if ev.is_decision(event):
        hit = bool(set(ev.reasons(event)) & set(params["reasons"]))
    elif event.get("event_type") == "grant":
        grant = ev.section(event, "grant")
        hit = grant.get("action") == "refused" and str(grant.get("status")) in params["statuses"]
    else:
        hit = False
    if not hit:
        return None
    subject = ev.principal_key(event) or ev.source_ip(event) or "unknown"
    return Match(subject, event_id, at, ev.principal_summary(event))


KIND = RuleKind(
    name="grant_misuse",
    style="each",
    summary="Someone tries to use, approve or revoke a grant that expired, was revoked or denied.",
    params=(REASONS, STATUSES),
    example={"statuses": ["409"], "reasons": _ENDED},
    match=match,
)
