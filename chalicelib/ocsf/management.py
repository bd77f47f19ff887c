"""Policy changes, grants and assertion keys as OCSF Entity Management (class 3004).

Why Entity Management and not Account Change (3001): Account Change
describes a change to a user account (its creation, password, MFA factors,
the policies attached to it) and requires the changed ``user``. A policy
activation changes no account at all, and a just-in-time grant is an object
with a lifecycle of its own (requested, approved, denied, revoked, expired,
first used) whose events name a requester and an approver; only two of its
steps would be Account Change's "Attach/Detach Policy". Entity Management
describes exactly that: an activity on a managed ``entity`` (here of type
Policy for a policy version or a grant, Other for an assertion key), with
the ``actor`` who did it.
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

CLASS_UID = 3004
CLASS_NAME = "Entity Management"
CATEGORY = (3, "Identity & Access Management")
PROFILES = ["host"]

_CREATE = (1, "Create")
_READ = (2, "Read")
_UPDATE = (3, "Update")
_ACTIVATE = (10, "Activate")
_DEACTIVATE = (11, "Deactivate")

GRANT_ACTIVITIES: dict[str, tuple[int, str]] = {
    "requested": _CREATE,
    "approved": _ACTIVATE,
    "denied": (99, "Deny"),
    "revoked": _DEACTIVATE,
    "expired": _DEACTIVATE,
    "used": _READ,
}
KEY_ACTIVITIES: dict[str, tuple[int, str]] = {
    "issued": _CREATE,
    "rotated": _CREATE,
    "expired": _DEACTIVATE,
}
_POLICY_TYPE = (5, "Policy")
_OTHER_TYPE = (99, "Assertion key")


def entity_management(event: dict[str, Any], position: LedgerPosition) -> dict[str, Any]:
    """The Entity Management record of a ``policy_change``, ``grant`` or ``signing_key`` event."""
    kind = event.get("event_type")
    if kind == "policy_change":
        activity, entity, refused = _policy_change(section(event, "policy_change"))
    elif kind == "grant":
        activity, entity, refused = _grant(section(event, "grant"))
    else:
        activity, entity, refused = _signing_key(section(event, "signing_key"))
    record = base_record(
        event,
        position,
        class_uid=CLASS_UID,
        class_name=CLASS_NAME,
        category=CATEGORY,
        activity=activity,
        severity_id=2 if refused else 1,
        profiles=list(PROFILES),
    )
    details = section(event, str(kind))
    record.update(
        {
            "status_id": 2 if refused else 1,
            "status": "Failure" if refused else "Success",
            "status_code": details.get("reason") if refused else None,
            "message": f"{kind} {details.get('action')}",
            "comment": details.get("justification") or details.get("reason"),
            "entity": entity,
            "actor": actor(event),
            "src_endpoint": source_endpoint(event),
            "unmapped": _unmapped(event, position, details),
        }
    )
    return compact(record)


def _policy_change(change: dict[str, Any]) -> tuple[tuple[int, str], dict[str, Any], bool]:
    # Both apply and rollback make a version the active one; anything else updates it.
    activity = _ACTIVATE if change.get("action") in ("apply", "rollback") else _UPDATE
    # The version made active (a section in wire form may name it plainly).
    version = change.get("to_version", change.get("version"))
    checksum = change.get("to_checksum", change.get("checksum"))
    entity = {
        "type_id": _POLICY_TYPE[0],
        "type": _POLICY_TYPE[1],
        "uid": checksum,
        "name": "gatehouse-policy",
        "version": None if version is None else str(version),
        "policy": {
            "name": "gatehouse-policy",
            "uid": checksum,
            "version": None if version is None else str(version),
            "is_applied": True,
        },
    }
    return activity, entity, False


def _grant(grant: dict[str, Any]) -> tuple[tuple[int, str], dict[str, Any], bool]:
    action = str(grant.get("action"))
    refused = "attempted" in grant  # a refused grant API call (GrantRefusalSection)
    activity = GRANT_ACTIVITIES.get(str(grant.get("attempted") or action), (99, "Other"))
    requester = section(grant, "requester")
    entity = {
        "type_id": _POLICY_TYPE[0],
        "type": _POLICY_TYPE[1],
        "uid": grant.get("grant_id"),
        "name": "grant",
        "user": {
            "uid": requester.get("subject"),
            "name": requester.get("email") or requester.get("subject"),
            "email_addr": requester.get("email"),
        },
        "policy": {
            "name": "grant",
            "uid": grant.get("grant_id"),
            "desc": joined(grant.get("paths")),
        },
    }
    return activity, entity, refused


def _signing_key(key: dict[str, Any]) -> tuple[tuple[int, str], dict[str, Any], bool]:
    activity = KEY_ACTIVITIES.get(str(key.get("action")), (99, "Other"))
    entity = {"type_id": _OTHER_TYPE[0], "type": _OTHER_TYPE[1], "uid": key.get("kid")}
    return activity, entity, False


def _unmapped(
    event: dict[str, Any], position: LedgerPosition, details: dict[str, Any]
) -> dict[str, str]:
    unmapped = ledger_unmapped(event, position)
    for name in ("action", "grant_id", "approver", "from_version", "to_version", "replaces"):
        value = details.get(name)
        if value is not None:
            unmapped[f"gatehouse.{event.get('event_type')}.{name}"] = str(value)
    for name in ("routes", "actions"):
        value = joined(details.get(name))
        if value is not None:
            unmapped[f"gatehouse.grant.{name}"] = value
    return unmapped
