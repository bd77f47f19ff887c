"""Browser sessions' events as OCSF Authentication (class 3002).

A sign-in is a Logon, a sign-out, revocation or the identity provider's
logout a Logoff; a refresh (Gatehouse asking the provider again for the
session's claims) has no OCSF activity of its own and is Other ("Refresh").
Failed steps keep their activity with ``status_id`` Failure and the reason
code as ``status_code``.
"""

from __future__ import annotations

from typing import Any

from chalicelib.ocsf.common import (
    LedgerPosition,
    actor,
    base_record,
    compact,
    ledger_unmapped,
    section,
    source_endpoint,
    user,
)

CLASS_UID = 3002
CLASS_NAME = "Authentication"
CATEGORY = (3, "Identity & Access Management")
PROFILES = ["host"]

# session.action -> (activity_id, activity_name, succeeded)
ACTIVITIES: dict[str, tuple[int, str, bool]] = {
    "signed_in": (1, "Logon", True),
    "sign_in_failed": (1, "Logon", False),
    "refreshed": (99, "Refresh", True),
    "refresh_failed": (99, "Refresh", False),
    "signed_out": (2, "Logoff", True),
    "revoked": (2, "Logoff", True),
    "idp_logged_out": (2, "Logoff", True),
    "idp_logout_refused": (2, "Logoff", False),
}
_OPENID = (4, "OpenID")


def authentication(event: dict[str, Any], position: LedgerPosition) -> dict[str, Any]:
    """The Authentication record of a ``session`` event."""
    step = section(event, "session")
    activity_id, activity_name, succeeded = ACTIVITIES.get(
        str(step.get("action")), (99, "Other", True)
    )
    record = base_record(
        event,
        position,
        class_uid=CLASS_UID,
        class_name=CLASS_NAME,
        category=CATEGORY,
        activity=(activity_id, activity_name),
        severity_id=1 if succeeded else 2,
        profiles=list(PROFILES),
    )
    principal = section(event, "principal")
    expires = step.get("expires_at")
    record.update(
        {
            "status_id": 1 if succeeded else 2,
            "status": "Success" if succeeded else "Failure",
            "status_code": step.get("reason"),
            "status_detail": step.get("detail"),
            "message": f"session {step.get('action')}",
            "auth_protocol_id": _OPENID[0],
            "auth_protocol": _OPENID[1],
            # OCSF requires a user; a sign-in that failed before anyone was known has none.
            "user": compact(user(principal)) or {"name": "unknown"},
            "session": {
                "uid": step.get("session_id"),
                "issuer": step.get("idp") or principal.get("issuer"),
                "expiration_time": expires * 1000 if isinstance(expires, int) else None,
                "expiration_reason": step.get("revoked_by"),
            },
            "src_endpoint": source_endpoint(event),
            "http_request": {
                "uid": section(event, "request").get("id"),
                "user_agent": section(event, "source").get("user_agent"),
            },
            "actor": actor(event),
            "unmapped": _unmapped(event, position, step),
        }
    )
    return compact(record)


def _unmapped(
    event: dict[str, Any], position: LedgerPosition, step: dict[str, Any]
) -> dict[str, str]:
    unmapped = ledger_unmapped(event, position)
    unmapped["gatehouse.session.action"] = str(step.get("action"))
    if step.get("revoked_by"):
        unmapped["gatehouse.session.revoked_by"] = str(step["revoked_by"])
    return unmapped
