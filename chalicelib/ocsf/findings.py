"""Detection's alerts as OCSF Detection Finding (class 2004).

An ``alert`` event (written by ``chalicelib.detect``) is a finding of one of
detection's rules over the trail: the rule is the finding's analytic, the
events that tripped it are its related events, and its severity is the
alert's.
"""

from __future__ import annotations

from typing import Any

from chalicelib.ocsf.common import (
    LedgerPosition,
    base_record,
    compact,
    epoch_millis,
    ledger_unmapped,
    section,
)

CLASS_UID = 2004
CLASS_NAME = "Detection Finding"
CATEGORY = (2, "Findings")
_CREATE = (1, "Create")
SEVERITIES = {"low": 2, "medium": 3, "high": 4, "critical": 5}
_RULE = 1  # analytic type_id: Rule


def detection_finding(event: dict[str, Any], position: LedgerPosition) -> dict[str, Any]:
    """The Detection Finding record of an ``alert`` event."""
    alert = section(event, "alert")
    record = base_record(
        event,
        position,
        class_uid=CLASS_UID,
        class_name=CLASS_NAME,
        category=CATEGORY,
        activity=_CREATE,
        severity_id=SEVERITIES.get(str(alert.get("severity")), 1),
        profiles=[],
    )
    listed = alert.get("event_ids")
    ids: list[Any] = listed if isinstance(listed, list) else []
    record.update(
        {
            "message": alert.get("detail"),
            "finding_info": {
                "uid": alert.get("alert_id") or event["event_id"],
                "title": alert.get("kind"),
                "desc": alert.get("detail"),
                "analytic": {"uid": alert.get("rule"), "name": alert.get("kind"), "type_id": _RULE},
                "first_seen_time": _millis(alert.get("window_from")),
                "last_seen_time": _millis(alert.get("window_to")),
                "related_events": [{"uid": str(uid)} for uid in ids],
                "related_events_count": len(ids),
            },
            "unmapped": _unmapped(event, position, alert),
        }
    )
    return compact(record)


def _millis(text: object) -> int | None:
    try:
        return epoch_millis(str(text)) if text else None
    except ValueError:
        return None


def _unmapped(
    event: dict[str, Any], position: LedgerPosition, alert: dict[str, Any]
) -> dict[str, str]:
    unmapped = ledger_unmapped(event, position)
    for name in ("subject", "observed", "threshold", "query"):
        if alert.get(name) is not None:
            unmapped[f"gatehouse.alert.{name}"] = str(alert[name])
    return unmapped
