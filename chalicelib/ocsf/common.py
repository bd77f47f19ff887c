"""What every OCSF record of the trail shares: time, metadata, the ledger position, the actor.

Every record names the stored event (``metadata.uid`` = its ``event_id``),
its ledger sequence (``metadata.sequence``) and the tree head it is included
under: the Merkle tree right after the object that holds it, as the ledger
committed it and as a signed digest lists it. The head goes in ``unmapped``
(OCSF's place for a source's own attributes), as strings, so that a SIEM's
copy can be checked against the ledger (``docs/ocsf.md``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, overload

OCSF_VERSION = "1.7.0"
PRODUCT = {"name": "Gatehouse", "vendor_name": "Gatehouse", "uid": "gatehouse"}

# unmapped's keys: namespaced, so they never meet another source's.
LEDGER_ORIGIN = "gatehouse.ledger.origin"
LEDGER_TREE_SIZE = "gatehouse.ledger.tree_size"
LEDGER_ROOT = "gatehouse.ledger.root"
LEDGER_OBJECT = "gatehouse.ledger.object"

SEVERITY = {1: "Informational", 2: "Low", 3: "Medium", 4: "High", 5: "Critical"}


@dataclass(frozen=True, slots=True)
class LedgerPosition:
    """Where a stored event is in the ledger, and the tree head that includes it.

    ``tree_size`` and ``root`` (hex) are the tree right after the object
    ``object_key`` that holds the event: the head a signed digest lists for
    that object, under the checkpoint ``origin``.
    """

    sequence: int
    origin: str
    tree_size: int
    root: str
    object_key: str

    def unmapped(self) -> dict[str, str]:
        """The position as ``unmapped`` members (strings: Security Lake keeps a string map)."""
        return {
            LEDGER_ORIGIN: self.origin,
            LEDGER_TREE_SIZE: str(self.tree_size),
            LEDGER_ROOT: self.root,
            LEDGER_OBJECT: self.object_key,
        }


def epoch_millis(text: str) -> int:
    """Milliseconds since the epoch of an RFC 3339 time (``...Z`` or with an offset).

    Raises
    ------
    ValueError
        When ``text`` is not such a time.
    """
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp() * 1000)


def section(event: dict[str, Any], name: str) -> dict[str, Any]:
    """The event's section ``name`` ({} when null or absent)."""
    value = event.get(name)
    return value if isinstance(value, dict) else {}


def compact(value: dict[str, Any]) -> dict[str, Any]:
    """``value`` without its None members, nor the empty lists and dicts they leave.

    Text is made valid Unicode on the way (a lone surrogate, which JSON can
    carry, becomes U+FFFD): Parquet and OCSF consumers hold UTF-8.
    """
    kept: dict[str, Any] = {}
    for name, member in value.items():
        if isinstance(member, dict):
            member = compact(member)
        elif isinstance(member, list):
            member = [
                compact(item) if isinstance(item, dict) else valid_text(item) for item in member
            ]
        else:
            member = valid_text(member)
        if member is None or member == {} or member == []:
            continue
        kept[name] = member
    return kept


@overload
def valid_text(value: str) -> str: ...
@overload
def valid_text(value: Any) -> Any: ...
def valid_text(value: Any) -> Any:
    """``value``, a string made valid Unicode (a lone surrogate becomes U+FFFD); else as is."""
    if not isinstance(value, str):
        return value
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return value.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
    return value


def base_record(
    event: dict[str, Any],
    position: LedgerPosition,
    *,
    class_uid: int,
    class_name: str,
    category: tuple[int, str],
    activity: tuple[int, str],
    severity_id: int,
    profiles: list[str],
) -> dict[str, Any]:
    """The members every record has, in the OCSF base event's terms."""
    category_uid, category_name = category
    activity_id, activity_name = activity
    request = section(event, "request")
    return {
        "activity_id": activity_id,
        "activity_name": activity_name,
        "category_uid": category_uid,
        "category_name": category_name,
        "class_uid": class_uid,
        "class_name": class_name,
        "type_uid": class_uid * 100 + activity_id,
        "type_name": f"{class_name}: {activity_name}",
        "severity_id": severity_id,
        "severity": SEVERITY[severity_id],
        "time": epoch_millis(str(event["event_time"])),
        "metadata": {
            "version": OCSF_VERSION,
            "uid": event["event_id"],
            "product": dict(PRODUCT),
            "sequence": position.sequence,
            "log_name": event.get("stage"),
            "log_provider": position.origin,
            "original_time": event["event_time"],
            "correlation_uid": request.get("decision_id") or request.get("id"),
            "profiles": profiles,
        },
    }


def user(principal: dict[str, Any]) -> dict[str, Any]:
    """An OCSF ``user`` of the event's principal."""
    groups = principal.get("groups") or []
    return {
        "uid": principal.get("subject"),
        "name": principal.get("email") or principal.get("subject"),
        "email_addr": principal.get("email"),
        "groups": [{"name": str(name)} for name in groups],
    }


def session(principal: dict[str, Any]) -> dict[str, Any]:
    """An OCSF ``session``: Gatehouse's browser session, else the identity provider's."""
    return {
        "uid": principal.get("browser_session_id") or principal.get("session_id"),
        "issuer": principal.get("issuer"),
        "credential_uid": principal.get("token_id"),
        "is_mfa": _mfa(principal),
        "expiration_time": _millis(principal.get("token_expires_at")),
    }


def actor(event: dict[str, Any]) -> dict[str, Any]:
    """The OCSF ``actor`` (host profile): who acted, through which session and identity provider.

    An operator's AWS identity (``aws.caller_arn`` of an admin event) is the
    actor's user when no OIDC principal acted.
    """
    principal = section(event, "principal")
    caller = section(event, "aws").get("caller_arn")
    if not principal and caller:
        return {"user": {"uid": caller, "name": caller, "type_id": 99, "type": "AWS principal"}}
    return {
        "user": user(principal),
        "session": session(principal),
        "idp": {"name": principal.get("issuer")},
        "app_uid": principal.get("client_id"),
    }


def source_endpoint(event: dict[str, Any]) -> dict[str, Any]:
    """The OCSF ``src_endpoint``: the client's address."""
    return {"ip": section(event, "source").get("ip")}


def _mfa(principal: dict[str, Any]) -> bool | None:
    amr = principal.get("amr")
    if not isinstance(amr, list):
        return None
    return any(method in ("mfa", "otp", "hwk", "swk", "fpt", "face") for method in amr)


def _millis(seconds: object) -> int | None:
    return int(seconds) * 1000 if isinstance(seconds, int | float) else None


def ledger_unmapped(event: dict[str, Any], position: LedgerPosition) -> dict[str, str]:
    """``unmapped``: the ledger position, then the trail's own names for the event."""
    unmapped = position.unmapped()
    unmapped["gatehouse.event_type"] = str(event.get("event_type"))
    return unmapped


def joined(values: object) -> str | None:
    """A list as one comma-separated string (None: empty or not a list)."""
    if not isinstance(values, list) or not values:
        return None
    return ",".join(str(value) for value in values)
