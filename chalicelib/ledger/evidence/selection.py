"""The bundle format's constants, its errors, and the selection with its matcher."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

BUNDLE_FORMAT = 1
BUNDLE_KIND = "gatehouse-evidence"
# What selects events by their own fields (re-applied offline), and by a named query (not).
FIELD_SELECTORS = ("grant", "principal", "request")
QUERY_SELECTOR = "query"
# Objects are scanned from a little before the window (writers' clocks differ) to an
# hour after it (the writer stores events shortly after they happen; the named
# queries read the same hour past the window).
CLOCK_SLACK = timedelta(minutes=5)
LATE_WRITES = timedelta(hours=1)


class EvidenceError(ValueError):
    """No bundle can be built (the command says why and exits 1)."""


class NothingSelected(EvidenceError):
    """The selection matched no stored event."""


class NotYetDigested(EvidenceError):
    """A selected event is under no signed format-2 digest yet."""


class NotABundle(ValueError):
    """A document that is not an evidence bundle of a format this version knows."""


@dataclass(frozen=True, slots=True)
class Selection:
    """What selected the events: a field selector and its value, or a named query.

    ``start`` and ``end`` bound the window ``[start, end)`` on ``event_time``
    (ISO 8601 UTC text). A query's window is whatever its own parameters say.
    """

    kind: str
    value: str | None
    start: str
    end: str
    query: str | None = None
    params: Mapping[str, str] = field(default_factory=dict)
    sql: str | None = None

    @property
    def offline(self) -> bool:
        """Whether :func:`matches` can re-apply it (a named query is not re-run)."""
        return self.kind in FIELD_SELECTORS

    def to_json(self) -> dict[str, Any]:
        """The ``selection`` member of a bundle."""
        value: dict[str, Any] = {"kind": self.kind, "from": self.start, "to": self.end}
        if self.offline:
            value["value"] = self.value
        else:
            value.update({"query": self.query, "params": dict(self.params), "sql": self.sql})
        return value

    @classmethod
    def from_json(cls, value: object) -> Selection:
        """Parse :meth:`to_json`'s form.

        Raises
        ------
        ValueError
            When it is not a selection (the message names what is wrong).
        """
        if not isinstance(value, dict):
            raise ValueError("not an object")
        kind, start, end = value.get("kind"), value.get("from"), value.get("to")
        if kind not in (*FIELD_SELECTORS, QUERY_SELECTOR):
            raise ValueError(f"unknown kind {kind!r}")
        if not isinstance(start, str) or not isinstance(end, str):
            raise ValueError("from and to are times")
        # Unreadable times are refused here, not at each line.
        parse_moment(start)
        parse_moment(end)
        if kind == QUERY_SELECTOR:
            params = value.get("params") or {}
            if not isinstance(params, dict):
                raise ValueError("params is an object")
            return cls(kind, None, start, end, str(value.get("query")), params, value.get("sql"))
        chosen = value.get("value")
        if not isinstance(chosen, str) or not chosen:
            raise ValueError(f"a {kind} selection names its {kind}")
        return cls(kind, chosen, start, end)


def parse_moment(text: str) -> datetime:
    moment = datetime.fromisoformat(text)
    if moment.tzinfo is None:
        raise ValueError(f"{text!r} has no UTC offset")
    return moment


def _section(event: Mapping[str, Any], name: str) -> Mapping[str, Any]:
    section = event.get(name)
    return section if isinstance(section, Mapping) else {}


def _names_grant(event: Mapping[str, Any], grant_id: str) -> bool:
    # A request made under the grant names it in ``elevation``; the grant's own
    # lifecycle events (and refused grant API calls) in ``grant``.
    return grant_id in (
        _section(event, "elevation").get("grant_id"),
        _section(event, "grant").get("grant_id"),
    )


def _names_principal(event: Mapping[str, Any], who: str) -> bool:
    principal = _section(event, "principal")
    subject, issuer = principal.get("subject"), principal.get("issuer")
    if not isinstance(subject, str) or not subject:
        return False
    if who == subject:
        return True
    # Issuer-qualified: ``<issuer>|<subject>``, the issuer with or without its slash.
    return isinstance(issuer, str) and who in (
        f"{issuer}|{subject}",
        f"{issuer.rstrip('/')}|{subject}",
    )


def _names_request(event: Mapping[str, Any], request_id: str) -> bool:
    return _section(event, "request").get("id") == request_id


_MATCHERS = {"grant": _names_grant, "principal": _names_principal, "request": _names_request}


def matches(event: Mapping[str, Any], selection: Selection) -> bool:
    """Whether ``selection`` (a field selector) selects ``event``.

    The event's ``event_time`` must lie in ``[start, end)`` and it must name
    the grant (``elevation.grant_id`` or ``grant.grant_id``), the principal
    (``principal.subject``, or ``<issuer>|<subject>``) or the request
    (``request.id``).

    Raises
    ------
    ValueError
        For a query selection: it cannot be re-applied to one event.
    """
    if not selection.offline or selection.value is None:
        raise ValueError("a named query's selection is not re-applied offline")
    moment = event.get("event_time")
    try:
        when = parse_moment(moment) if isinstance(moment, str) else None
    except ValueError:
        when = None
    if when is None or not parse_moment(selection.start) <= when < parse_moment(selection.end):
        return False
    return _MATCHERS[selection.kind](event, selection.value)


def line_matches(line: bytes, selection: Selection) -> bool:
    """:func:`matches` for a stored line (a line that is not a JSON object matches nothing)."""
    try:
        event = json.loads(line)
    except ValueError:
        return False
    return isinstance(event, dict) and matches(event, selection)
