"""Decisions, responses and API Gateway's own answers as OCSF HTTP Activity (class 4002).

One request gives up to three records, as it gives up to three audit events:
the authorizer's ``decision``, the proxy's ``response`` and API Gateway's
``gateway`` line. The decision is in the security-control profile's terms
(``action_id``, ``disposition_id``, ``firewall_rule``) and in the actor's
``authorizations`` (the decision and the policy version it was made under).
"""

from __future__ import annotations

from typing import Any

from chalicelib.ocsf.common import (
    LedgerPosition,
    actor,
    base_record,
    compact,
    joined,
    ledger_unmapped,
    section,
    source_endpoint,
)
from chalicelib.reasons import Reason

CLASS_UID = 4002
CLASS_NAME = "HTTP Activity"
CATEGORY = (4, "Network Activity")
PROFILES = ["host", "security_control"]

# OCSF's HTTP Activity activities are the request methods.
ACTIVITIES = {
    "CONNECT": 1,
    "DELETE": 2,
    "GET": 3,
    "HEAD": 4,
    "OPTIONS": 5,
    "POST": 6,
    "PUT": 7,
    "TRACE": 8,
    "PATCH": 9,
}
OTHER = 99

# security_control: action_id (1 allowed, 2 denied) and disposition_id.
_DISPOSITIONS = {"allow": (1, "Allowed", 1, "Allowed"), "deny": (2, "Denied", 2, "Blocked")}
_ERROR = (2, "Denied", 27, "Error")
_UNAUTHORIZED = (2, "Denied", 26, "Unauthorized")


def http_activity(event: dict[str, Any], position: LedgerPosition) -> dict[str, Any]:
    """The HTTP Activity record of a ``decision``, ``response`` or ``gateway`` event."""
    resource = section(event, "resource")
    decision = section(event, "decision")
    outcome = section(event, "outcome")
    method = str(resource.get("method") or "").upper()
    activity_id = ACTIVITIES.get(method, OTHER)
    status = outcome.get("status")
    allowed = _allowed(decision, status)
    record = base_record(
        event,
        position,
        class_uid=CLASS_UID,
        class_name=CLASS_NAME,
        category=CATEGORY,
        activity=(activity_id, method.title() if activity_id != OTHER else "Other"),
        severity_id=_severity(event, allowed),
        profiles=list(PROFILES),
    )
    reasons = decision.get("reasons") or []
    action_id, action, disposition_id, disposition = _disposition(decision, reasons)
    record.update(
        {
            "status_id": 1 if allowed else 2,
            "status": "Success" if allowed else "Failure",
            "status_code": str(reasons[0]) if reasons else _status_code(status),
            "status_detail": _detail(decision, section(event, "gateway")),
            "message": _message(event, method, resource),
            "duration": _latency(outcome),
            "http_request": _request(event, method, resource),
            "http_response": _response(outcome),
            "src_endpoint": source_endpoint(event),
            "dst_endpoint": {
                "hostname": resource.get("host"),
                "svc_name": resource.get("route_id"),
            },
            "actor": _actor_with_authorization(event, decision),
            "action_id": action_id,
            "action": action,
            "disposition_id": disposition_id,
            "disposition": disposition,
            "firewall_rule": _rule(decision),
            "unmapped": _unmapped(event, position, decision),
        }
    )
    return compact(record)


def _allowed(decision: dict[str, Any], status: object) -> bool:
    if decision:
        return decision.get("outcome") == "allow" and not (
            isinstance(status, int) and status >= 400
        )
    return isinstance(status, int) and status < 400


def _severity(event: dict[str, Any], allowed: bool) -> int:
    if section(event, "elevation").get("break_glass"):
        return 4  # High: every break-glass use is looked at
    if allowed:
        return 1
    return 3 if section(event, "decision").get("outcome") == "error" else 2


def _disposition(decision: dict[str, Any], reasons: list[Any]) -> tuple[int, str, int, str]:
    outcome = decision.get("outcome")
    if outcome == "error":
        return _ERROR
    if outcome == "deny" and any(_credential_failure(reason) for reason in reasons):
        return _UNAUTHORIZED
    return _DISPOSITIONS.get(str(outcome), (0, "Unknown", 0, "Unknown"))


def _credential_failure(code: object) -> bool:
    try:
        return Reason(str(code)).is_credential_failure
    except ValueError:  # a code this version does not know
        return False


def _status_code(status: object) -> str | None:
    return str(status) if isinstance(status, int) else None


def _detail(decision: dict[str, Any], gateway: dict[str, Any]) -> str | None:
    parts = [joined(decision.get("reasons")), decision.get("detail"), gateway.get("error_message")]
    text = "; ".join(str(part) for part in parts if part)
    return text or None


def _message(event: dict[str, Any], method: str, resource: dict[str, Any]) -> str:
    what = section(event, "decision").get("outcome") or section(event, "outcome").get("status")
    where = f"{resource.get('host') or ''}{resource.get('path') or ''}"
    return f"{event.get('event_type')} {what}: {method} {where}".strip()


def _latency(outcome: dict[str, Any]) -> int | None:
    latency = outcome.get("latency_ms")
    return round(latency) if isinstance(latency, int | float) else None


def _request(event: dict[str, Any], method: str, resource: dict[str, Any]) -> dict[str, Any]:
    host, path, query = resource.get("host"), resource.get("path"), resource.get("query")
    url_string = None
    if host and path is not None:
        url_string = f"https://{host}{path}" + (f"?{query}" if query else "")
    return {
        "uid": section(event, "request").get("id"),
        "http_method": method or None,
        "user_agent": section(event, "source").get("user_agent"),
        "url": {
            "hostname": host,
            "path": path,
            "query_string": query,
            "scheme": "https",
            "url_string": url_string,
        },
    }


def _response(outcome: dict[str, Any]) -> dict[str, Any] | None:
    status = outcome.get("status")
    if not isinstance(status, int):
        return None  # a decision answers no status of its own; OCSF requires a code here
    upstream = outcome.get("upstream_latency_ms")
    return {
        "code": status,
        "length": outcome.get("bytes_out"),
        "latency": round(upstream) if isinstance(upstream, int | float) else None,
        "message": outcome.get("error"),
    }


def _actor_with_authorization(event: dict[str, Any], decision: dict[str, Any]) -> dict[str, Any]:
    who = actor(event)
    if decision:
        version = decision.get("policy_version")
        who["authorizations"] = [
            {
                "decision": decision.get("outcome"),
                "policy": {
                    "name": "gatehouse-policy",
                    "uid": decision.get("policy_checksum"),
                    "version": None if version is None else str(version),
                },
            }
        ]
    return who


def _rule(decision: dict[str, Any]) -> dict[str, Any] | None:
    rules = decision.get("matched_rules") or []
    if not rules:
        return None
    return {"uid": str(rules[0]), "name": str(rules[0])}


def _unmapped(
    event: dict[str, Any], position: LedgerPosition, decision: dict[str, Any]
) -> dict[str, str]:
    unmapped = ledger_unmapped(event, position)
    elevation = section(event, "elevation")
    extra = {
        "gatehouse.decision.reasons": joined(decision.get("reasons")),
        "gatehouse.decision.matched_rules": joined(decision.get("matched_rules")),
        "gatehouse.decision.decided_by": decision.get("decided_by"),
        "gatehouse.elevation.grant_id": elevation.get("grant_id"),
        "gatehouse.elevation.approver": elevation.get("approver"),
        "gatehouse.elevation.break_glass": "true" if elevation.get("break_glass") else None,
        "gatehouse.anomalies": joined(event.get("anomalies")),
        "gatehouse.aws.source_identity": section(event, "aws").get("source_identity"),
    }
    unmapped.update({name: str(value) for name, value in extra.items() if value is not None})
    return unmapped
