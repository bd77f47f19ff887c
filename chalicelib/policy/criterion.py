"""What a ``when`` condition is, and the registry the parser and engine read them from.

A condition (a *criterion*) is a plug-in: one module under
:mod:`chalicelib.policy.criteria` declares its field name, how its value is
parsed and validated, how it is evaluated, the reason code a failure
reports, whether it may sit on a deny rule, and how it is documented; then
it calls :func:`register`. The parser, the engine, the JSON schema and the
reference in ``docs/`` all read the registry, so adding a condition touches
only its module, its test and the generated docs.

Each condition answers :data:`HOLDS`, :data:`FAILS` or :data:`UNKNOWN` (the
request does not carry what it needs, e.g. a token without ``auth_time``).
An allow rule applies only when every condition holds; a deny rule applies
unless a condition positively fails, so missing facts never open access.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import Enum
from typing import TYPE_CHECKING, Any, Generic, Protocol, TypeVar

from chalicelib.reasons import Reason

if TYPE_CHECKING:
    from chalicelib.identity import Identity


class Verdict(Enum):
    """A condition's answer."""

    HOLDS = "holds"
    FAILS = "fails"
    UNKNOWN = "unknown"


HOLDS, FAILS, UNKNOWN = Verdict.HOLDS, Verdict.FAILS, Verdict.UNKNOWN


class RequestFacts(Protocol):
    """What conditions read about one request, beyond the principal's identity.

    The engine passes its :class:`~chalicelib.policy.engine.AccessRequest`
    as it is: building a separate object per decision would cost more than
    the conditions themselves.
    """

    @property
    def at(self) -> float:
        """When, in epoch seconds."""

    @property
    def source_ip(self) -> str:
        """The client address API Gateway saw."""


@dataclass(frozen=True, slots=True)
class Facts:
    """Request facts on their own (for tools and tests): a :class:`RequestFacts`."""

    at: float
    source_ip: str


Check = Callable[["Identity", RequestFacts], Verdict]
"""A condition bound to its setting: called on every request the rule matches."""

Setting = TypeVar("Setting")


class Problems(Protocol):
    """Where a criterion's parser reports what is wrong (the policy parser)."""

    def problem(self, location: str, message: str) -> None:
        """Record one problem at ``location`` (``rules[x].when.hours.tz``)."""

    def unknown_fields(self, location: str, mapping: Mapping[str, Any], known: set[str]) -> None:
        """Record every key of ``mapping`` not in ``known``."""

    def string_list(self, value: Any, where: str, *, required: bool = True) -> list[str]:
        """``value`` as a non-empty list of non-empty strings, or [] and a problem."""


@dataclass(frozen=True)
class Criterion(Generic[Setting]):
    """One ``when`` condition: its declaration, parser and evaluation.

    Attributes
    ----------
    name:
        The field under ``when``.
    reason:
        The code an allow rule reports when this condition does not hold.
    parse:
        ``(value, location, problems) -> setting``: validates the document's
        value, reporting through ``problems``; None imposes nothing (the
        value was invalid, or says "no requirement", like ``mfa: false``).
    compile:
        Binds a setting to the check evaluated per request. Returning a
        plain function or a bound method (no extra wrapper) keeps the
        per-request cost to one call.
    summary:
        One line for the reference: what the condition requires.
    schema:
        The JSON schema of the value (may ``$ref`` the shared ``#/$defs``).
    example:
        A value as a policy would write it; documented, and checked to parse.
    unset:
        What a rule without this condition reads as its setting.
    deny_refusal:
        None when the condition may sit on a deny rule; otherwise why not
        (reported as ``cannot be on a deny rule: <why>``).
    notes:
        Further paragraphs for the reference (semantics, edge cases).
    """

    name: str
    reason: Reason
    parse: Callable[[Any, str, Problems], Setting | None]
    compile: Callable[[Setting], Check]
    summary: str
    schema: Mapping[str, Any]
    example: object
    unset: object = None
    deny_refusal: str | None = None
    notes: tuple[str, ...] = field(default=())

    def imposes(self, setting: object) -> bool:
        """Whether ``setting`` requires anything (False for None and for ``unset``)."""
        return setting is not None and setting is not self.unset


_REGISTRY: dict[str, Criterion[Any]] = {}
_ORDERED: list[tuple[Criterion[Any], ...]] = []
_REASON_POSITION = {reason: position for position, reason in enumerate(Reason)}


class CriterionConflict(ValueError):
    """Two criteria registered under one name."""


def register(criterion: Criterion[Setting]) -> Criterion[Setting]:
    """Add ``criterion`` to the registry and return it.

    Raises
    ------
    CriterionConflict
        When another criterion already has its name.
    """
    existing = _REGISTRY.get(criterion.name)
    if existing is not None and existing is not criterion:
        raise CriterionConflict(f"a condition named {criterion.name!r} is already registered")
    _REGISTRY[criterion.name] = criterion
    _ORDERED.clear()
    return criterion


def registered() -> tuple[Criterion[Any], ...]:
    """Every criterion, in evaluation order.

    The order is that of their reason codes in :class:`~chalicelib.reasons.Reason`
    (then name): conditions are parsed, checked and their failures listed in
    one stable order, whatever order their modules were found in.
    """
    if not _ORDERED:
        from chalicelib.policy import criteria

        criteria.load()
        ordered = sorted(
            _REGISTRY.values(),
            key=lambda criterion: (_REASON_POSITION[criterion.reason], criterion.name),
        )
        _ORDERED.append(tuple(ordered))
    return _ORDERED[0]


def criterion_named(name: str) -> Criterion[Any] | None:
    """The registered criterion called ``name``, if any."""
    registered()
    return _REGISTRY.get(name)
