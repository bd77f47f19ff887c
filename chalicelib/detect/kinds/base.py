"""What a rule kind is made of: its parameters, its style, and its match or check."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from chalicelib.detect import events as ev
from chalicelib.detect.events import Event

Style = Literal["count", "distinct", "each", "first_seen", "scheduled"]
ParamType = Literal["int", "float", "strings", "hours", "bool", "choice"]
REQUIRED: Any = object()


@dataclass(frozen=True, slots=True)
class Param:
    """One parameter of a rule kind, as the rules file writes it."""

    name: str
    description: str
    type: ParamType
    default: Any = REQUIRED
    low: float | None = None
    high: float | None = None
    choices: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Match:
    """What one event contributes to a rule.

    ``subject`` is what the rule counts or remembers per (a principal, an IP,
    a token id); ``value`` is the distinct or first-seen value, if the style
    has one.
    """

    subject: str
    event_id: str
    at: float
    principal: dict[str, Any] | None = None
    value: str | None = None


@dataclass(frozen=True, slots=True)
class Finding:
    """What a scheduled check found."""

    subject: str
    observed: float
    detail: str
    evidence: tuple[str, ...] = ()


class Probes(Protocol):
    """The reads scheduled checks make (AWS in production, fakes in tests)."""

    def dead_letters(self) -> int:
        """Messages waiting on the audit dead-letter queue."""
        ...

    def verify_findings(self, since: float) -> float | None:
        """The largest verify metric published since ``since`` (None: none published)."""
        ...

    def witness_refusals(self) -> list[str]:
        """The keys of every refusal witnesses published."""
        ...


MatchFunction = Callable[[Mapping[str, Any], Event], Match | None]
CheckFunction = Callable[[Mapping[str, Any], Probes, float], list[Finding]]


@dataclass(frozen=True, slots=True)
class RuleKind:
    """One kind of rule (see :mod:`chalicelib.detect.kinds`)."""

    name: str
    style: Style
    summary: str
    params: tuple[Param, ...]
    example: Mapping[str, Any]
    match: MatchFunction | None = None
    check: CheckFunction | None = None
    # None: the document's ``suppress_seconds`` (else 900); a kind whose alerts
    # stand for a lasting condition (a refusal, a dead letter) suppresses longer.
    default_suppress_seconds: int | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)

    @property
    def scheduled(self) -> bool:
        """Whether the scheduled check evaluates it (else the audit writer does)."""
        return self.style == "scheduled"


THRESHOLD = Param("threshold", "How many (events, IPs) within the window fire.", "int", 10, 1, 1000)
WINDOW = Param(
    "window_seconds", "The window's length: fixed, aligned windows.", "int", 60, 10, 86400
)


def require_id(event: Event) -> str | None:
    """The event id of an event, if it is a string."""
    event_id = event.get("event_id")
    return event_id if isinstance(event_id, str) else None


def denied_by(event: Event, key: Callable[[Event], str | None]) -> Match | None:
    """A denied decision as a match counted under ``key(event)`` (None: not one, or no key)."""
    if not ev.is_decision(event) or ev.outcome(event) != "deny":
        return None
    subject, event_id, at = key(event), require_id(event), ev.event_epoch(event)
    if subject is None or event_id is None or at is None:
        return None
    return Match(subject, event_id, at, ev.principal_summary(event))
