"""Reading the facts rules need from audit events in their wire form (plain dicts).

Every accessor tolerates a missing or ``null`` section: an event of another
type simply does not match.
"""

from __future__ import annotations

from datetime import datetime
from functools import lru_cache
from typing import Any

Event = dict[str, Any]


@lru_cache(maxsize=4096)
def parse_time(text: str) -> float:
    """Epoch seconds of an RFC 3339 UTC time (``2026-11-28T15:50:37.123Z``).

    Raises
    ------
    ValueError
        When ``text`` is not such a time.
    """
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def event_epoch(event: Event) -> float | None:
    """When the event happened (None when its time cannot be read)."""
    text = event.get("event_time")
    if not isinstance(text, str):
        return None
    try:
        return parse_time(text)
    except ValueError:
        return None


def section(event: Event, name: str) -> dict[str, Any]:
    """A section of the event, ``{}`` when absent or null."""
    value = event.get(name)
    return value if isinstance(value, dict) else {}


def is_decision(event: Event) -> bool:
    """Whether the event is a ``decision`` event."""
    return event.get("event_type") == "decision"


def outcome(event: Event) -> str | None:
    """A decision event's outcome (allow, deny, error)."""
    value = section(event, "decision").get("outcome")
    return value if isinstance(value, str) else None


def reasons(event: Event) -> list[str]:
    """A decision event's reason codes."""
    value = section(event, "decision").get("reasons")
    return [code for code in value if isinstance(code, str)] if isinstance(value, list) else []


def principal_key(event: Event) -> str | None:
    """``<issuer> <subject>`` of the event's principal (None when anonymous)."""
    principal = section(event, "principal")
    subject = principal.get("subject")
    if not isinstance(subject, str) or not subject:
        return None
    return f"{principal.get('issuer') or ''} {subject}"


def principal_summary(event: Event) -> dict[str, Any] | None:
    """The principal an alert names: issuer, subject, email (None when anonymous)."""
    principal = section(event, "principal")
    if not principal.get("subject"):
        return None
    return {name: principal.get(name) for name in ("issuer", "subject", "email")}


def source_ip(event: Event) -> str | None:
    """The request's source IP."""
    value = section(event, "source").get("ip")
    return value if isinstance(value, str) and value else None


def user_agent(event: Event) -> str | None:
    """The request's user agent."""
    value = section(event, "source").get("user_agent")
    return value if isinstance(value, str) and value else None
