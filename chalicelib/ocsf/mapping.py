"""One stored audit event in, one OCSF record out: which class each event type becomes.

=================  ==============================================
``event_type``     OCSF class
=================  ==============================================
``decision``       HTTP Activity (4002)
``response``       HTTP Activity (4002)
``gateway``        HTTP Activity (4002)
``session``        Authentication (3002)
``policy_change``  Entity Management (3004)
``grant``          Entity Management (3004)
``signing_key``    Entity Management (3004)
``alert``          Detection Finding (2004)
=================  ==============================================

Every event type maps, so every ledger sequence has exactly one record and a
copy can be checked for gaps as the ledger is.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from chalicelib.ocsf.authentication import authentication
from chalicelib.ocsf.common import OCSF_VERSION, LedgerPosition
from chalicelib.ocsf.errors import NotMappable
from chalicelib.ocsf.findings import detection_finding
from chalicelib.ocsf.http import http_activity
from chalicelib.ocsf.management import entity_management

__all__ = ["CLASSES", "OCSF_VERSION", "LedgerPosition", "class_of", "to_ocsf", "to_ocsf_line"]

_Mapper = Callable[[dict[str, Any], LedgerPosition], dict[str, Any]]

_MAPPERS: dict[str, tuple[int, _Mapper]] = {
    "decision": (4002, http_activity),
    "response": (4002, http_activity),
    "gateway": (4002, http_activity),
    "session": (3002, authentication),
    "policy_change": (3004, entity_management),
    "grant": (3004, entity_management),
    "signing_key": (3004, entity_management),
    "alert": (2004, detection_finding),
}
# The classes emitted, by uid: what the export's sources and schemas are named by.
CLASSES = {
    4002: "http_activity",
    3002: "authentication",
    3004: "entity_management",
    2004: "detection_finding",
}


def class_of(event_type: str) -> int:
    """The OCSF class uid an event type becomes.

    Raises
    ------
    NotMappable
        For an event type the trail does not hold.
    """
    try:
        return _MAPPERS[event_type][0]
    except KeyError:
        raise NotMappable(f"no OCSF class for event type {event_type!r}") from None


def to_ocsf(event: dict[str, Any], position: LedgerPosition) -> dict[str, Any]:
    """The OCSF record of the stored ``event`` at ``position``.

    Raises
    ------
    NotMappable
        When ``event`` lacks what every stored event has (id, type, time) or
        its type is unknown.
    """
    event_type = event.get("event_type")
    if not isinstance(event.get("event_id"), str) or not isinstance(event.get("event_time"), str):
        raise NotMappable("not a stored audit event: no event_id or event_time")
    class_of(str(event_type))
    _, mapper = _MAPPERS[str(event_type)]
    try:
        return mapper(event, position)
    except (ValueError, TypeError) as exc:
        raise NotMappable(f"event {event.get('event_id')}: {exc}") from exc


def to_ocsf_line(line: bytes, position: LedgerPosition) -> dict[str, Any]:
    """:func:`to_ocsf` of a stored line (its own ``ledger.sequence`` must be the position's).

    Raises
    ------
    NotMappable
        When the line is not JSON, or its sequence is not ``position.sequence``.
    """
    try:
        event = json.loads(line)
    except ValueError as exc:
        raise NotMappable(f"not JSON: {exc}") from exc
    if not isinstance(event, dict):
        raise NotMappable("not a JSON object")
    ledger = event.get("ledger")
    if not isinstance(ledger, dict) or ledger.get("sequence") != position.sequence:
        raise NotMappable(f"the line does not carry ledger sequence {position.sequence}")
    return to_ocsf(event, position)
