"""The sections of an audit event, as typed records, and the one serialiser.

Each section of the wire form (see :class:`chalicelib.audit.schema.AuditEvent`)
is a frozen, slotted dataclass whose fields, in order, are the section's
members, in order. Every field is written, ``null`` when None, unless it is
declared with :data:`OMIT_NONE` (then a None leaves the member out). Values
are already what the wire holds (capped, rounded, reasons as their codes):
:func:`as_wire` only walks the fields.

=================  =========================================================
wire section       record
=================  =========================================================
``request``        :class:`RequestSection`
``principal``      :class:`PrincipalSection` (:func:`principal_section`)
``source``         :class:`SourceSection`
``resource``       :class:`ResourceSection`
``decision``       :class:`DecisionSection`
``outcome``        :class:`ResponseRecord`
``elevation``      :class:`ElevationRecord`
``aws``            :class:`AwsSection` (request events),
                   :class:`OperatorSection` (admin events)
``policy_change``  :class:`PolicyChangeSection` (with :class:`ArchiveKeys`)
``grant``          :class:`GrantRefusalSection` (a refused grant API call)
``gateway``        :class:`GatewaySection`
``signing_key``    :class:`SigningKeySection`
``session``        :class:`SessionSection` (a browser session's sign-in, refresh,
                   sign-out or revocation)
``alert``          :class:`AlertSection` (a detection rule fired)
=================  =========================================================

A grant lifecycle event's ``grant`` section is still a mapping in wire form
(``grant_details`` in :mod:`chalicelib.grants`): :func:`as_wire` keeps any
value that is not a :class:`WireRecord` as it is.

The serialiser and the sections' ``__init__`` are written from each class's
fields once, as :mod:`dataclasses` writes its methods: events are built on
every request, and this keeps one as cheap as the hand-written dicts it
replaced.
"""

from __future__ import annotations

import dataclasses
import typing
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import lru_cache
from typing import TYPE_CHECKING, Any, TypeVar

from chalicelib.readable import MAX_JUSTIFICATION, capped
from chalicelib.reasons import Reason

if TYPE_CHECKING:
    from chalicelib.identity import Identity

_Record = TypeVar("_Record")

# Field metadata: a None value leaves the member out of the wire form.
OMIT_NONE: dict[str, bool] = {"omit_none": True}

# How long a free-text ``detail`` may be (a decision's, a session event's).
MAX_DETAIL = 200

# What a ``session`` event records (``session.action``): a closed set.
SESSION_ACTIONS = frozenset(
    {
        "signed_in",
        "sign_in_failed",
        "refreshed",
        "refresh_failed",
        "signed_out",
        "revoked",
        "idp_logged_out",
        # A back-channel logout token refused (forged, replayed, not a logout token).
        "idp_logout_refused",
    }
)
# Who ended a session (``session.revoked_by``).
SESSION_REVOKERS = frozenset({"user", "operator", "idp"})


class WireRecord:
    """Base of every section (and of the event): :meth:`as_dict` is :func:`as_wire`."""

    __slots__ = ()

    def as_dict(self) -> dict[str, Any]:
        """The wire form: one member per field, in field order (see :func:`as_wire`)."""
        return as_wire(self)


# Each class's serialiser (identity for the classes of values kept as they are).
_SERIALISERS: dict[type, Callable[[Any], Any]] = {}


def as_wire(record: WireRecord) -> dict[str, Any]:
    """The JSON-ready dict of ``record``: the one serialiser of every section and event.

    Parameters
    ----------
    record:
        A dataclass deriving from :class:`WireRecord`.

    Returns
    -------
    dict
        One member per field, named as the field, in field order; a field
        declared with :data:`OMIT_NONE` is left out when None. A field whose
        type names a :class:`WireRecord` and holds one becomes that record's
        wire dict; any other value (a mapping, a list, a scalar) is kept as it is.
    """
    serialise = _SERIALISERS.get(record.__class__) or _compile(record.__class__)
    wire: dict[str, Any] = serialise(record)
    return wire


def _first_seen(value: Any) -> Any:
    """A field value of a class without a serialiser yet: a record's is compiled, any
    other value (a mapping, a scalar) is kept as it is, from now on without asking."""
    kind = value.__class__
    serialise = _compile(kind) if issubclass(kind, WireRecord) else _as_is
    _SERIALISERS[kind] = serialise
    return serialise(value)


def _as_is(value: Any) -> Any:
    return value


def _compile(cls: type) -> Callable[[Any], dict[str, Any]]:
    """The serialiser of one record class, written from its fields once.

    Like the methods :mod:`dataclasses` generates, it is a function built
    from source: one dict display of the fields, in order, so an event costs
    what a hand-written dict would (this runs on every request). Field names
    are identifiers, so the source holds nothing but them.
    """
    members = []
    omitted = []
    for item in dataclasses.fields(cls):
        name = item.name
        value = f"o.{name}"
        if _may_hold_record(cls, name):
            value = f"(None if (v := o.{name}) is None else _get(v.__class__, _first_seen)(v))"
        members.append(f"{name!r}: {value}")
        if item.metadata.get("omit_none"):
            omitted.append(f"    if wire[{name!r}] is None:\n        del wire[{name!r}]\n")
    display = "{" + ", ".join(members) + "}"
    source = f"def wire(o):\n    wire = {display}\n{''.join(omitted)}    return wire\n"
    namespace: dict[str, Any] = {"_get": _SERIALISERS.get, "_first_seen": _first_seen}
    exec(source, namespace)  # noqa: S102 - source made of the class's field names only
    serialise: Callable[[Any], dict[str, Any]] = namespace["wire"]
    _SERIALISERS[cls] = serialise
    return serialise


def _may_hold_record(cls: type, name: str) -> bool:
    """True when the field's declared type names a :class:`WireRecord` (or is unknown)."""
    try:
        hint = typing.get_type_hints(cls)[name]
    except (NameError, TypeError):
        return True
    pending = [hint]
    while pending:
        kind = pending.pop()
        if isinstance(kind, type) and issubclass(kind, WireRecord):
            return True
        pending.extend(typing.get_args(kind))
    return False


def _quick_init(cls: type[_Record]) -> type[_Record]:
    """Give a frozen dataclass an ``__init__`` that looks ``object.__setattr__`` up once.

    The one :mod:`dataclasses` writes looks it up for every field; sections are
    built on every request, and this makes building one about a quarter
    cheaper. Same parameters, defaults and ``__post_init__`` call.
    """
    namespace: dict[str, Any] = {"_set": object.__setattr__}
    params = []
    body = []
    for item in dataclasses.fields(cls):  # type: ignore[arg-type]
        name = item.name
        if item.default is dataclasses.MISSING:
            params.append(name)
        else:
            namespace[f"_default_{name}"] = item.default
            params.append(f"{name}=_default_{name}")
        body.append(f"    _set(self, {name!r}, {name})\n")
    if hasattr(cls, "__post_init__"):
        body.append("    self.__post_init__()\n")
    source = f"def __init__(self, {', '.join(params)}):\n{''.join(body)}"
    exec(source, namespace)  # noqa: S102 - source made of the class's field names only
    init = namespace["__init__"]
    init.__qualname__ = f"{cls.__qualname__}.__init__"
    setattr(cls, "__init__", init)  # noqa: B010 - mypy would refuse assigning a method
    return cls


@_quick_init
@dataclass(frozen=True, slots=True)
class RequestSection(WireRecord):
    """The ``request`` section: the ids that tie the event to API Gateway, Lambda and X-Ray."""

    id: str | None
    extended_id: str | None
    lambda_request_id: str | None
    trace_id: str | None
    decision_id: str | None


@_quick_init
@dataclass(frozen=True, slots=True)
class PrincipalSection(WireRecord):
    """The ``principal`` section: who made the request (a gateway event knows the subject only)."""

    issuer: str | None = None
    subject: str | None = None
    email: str | None = None
    groups: list[str] | None = None
    amr: list[str] | None = None
    auth_time: int | None = None
    client_id: str | None = None
    session_id: str | None = None
    token_id: str | None = None
    token_expires_at: int | None = None
    # Gatehouse's own browser session the request came with (absent for a bearer
    # token, so those events keep their bytes).
    browser_session_id: str | None = field(default=None, metadata=OMIT_NONE)


def principal_section(identity: Identity | None) -> PrincipalSection | None:
    """The ``principal`` section for ``identity`` (shared: its lists must not be mutated)."""
    if identity is None:
        return None
    return _principal_section(identity)


@lru_cache(maxsize=4096)
def _principal_section(identity: Identity) -> PrincipalSection:
    return PrincipalSection(
        identity.issuer,
        identity.subject,
        identity.email,
        sorted(identity.groups),
        list(identity.amr),
        identity.auth_time,
        identity.client_id,
        identity.session_id,
        identity.token_id,
        identity.expires_at,
        identity.browser_session_id,
    )


@_quick_init
@dataclass(frozen=True, slots=True)
class SourceSection(WireRecord):
    """The ``source`` section: where the request came from."""

    ip: str | None
    user_agent: str | None


@_quick_init
@dataclass(frozen=True, slots=True)
class ResourceSection(WireRecord):
    """The ``resource`` section: what was asked for, and the route that serves it."""

    host: str | None
    method: str | None
    path: str | None
    query: str | None
    route_id: str | None = None
    upstream: str | None = None
    sensitive: bool | None = None


@_quick_init
@dataclass(frozen=True, slots=True)
class DecisionSection(WireRecord):
    """The ``decision`` section (``reasons`` are the reason codes, ``detail`` is capped)."""

    outcome: str
    reasons: list[str]
    matched_rules: list[str]
    policy_version: int | None
    policy_checksum: str | None
    decided_by: str
    cached: bool
    detail: str | None


@_quick_init
@dataclass(frozen=True, slots=True)
class ElevationRecord(WireRecord):
    """The ``elevation`` section: access beyond the standing rules.

    The justification is capped (:data:`~chalicelib.readable.MAX_JUSTIFICATION`).
    """

    grant_id: str | None = None
    approver: str | None = None
    justification: str | None = None
    break_glass: bool = False

    def __post_init__(self) -> None:
        if self.justification is not None and len(self.justification) > MAX_JUSTIFICATION:
            object.__setattr__(self, "justification", capped(self.justification, MAX_JUSTIFICATION))


@_quick_init
@dataclass(frozen=True, slots=True)
class ResponseRecord(WireRecord):
    """The ``outcome`` section of a response (or gateway) event.

    Latencies are rounded to the microsecond. A gateway event leaves
    ``bytes_in`` (and whatever its log line lacks) None.
    """

    status: int | None
    bytes_in: int | None
    bytes_out: int | None
    latency_ms: float | None
    upstream_latency_ms: float | None
    error: str | None = None

    def __post_init__(self) -> None:
        if self.latency_ms is not None:
            object.__setattr__(self, "latency_ms", round(self.latency_ms, 3))
        if self.upstream_latency_ms is not None:
            object.__setattr__(self, "upstream_latency_ms", round(self.upstream_latency_ms, 3))


@_quick_init
@dataclass(frozen=True, slots=True)
class AwsSection(WireRecord):
    """The ``aws`` section of a request event whose route has an AWS upstream.

    ``caller_arn`` is an admin event's (always None here); the session fields
    are None when the role could not be assumed.
    """

    caller_arn: str | None
    role_arn: str
    session_name: str | None
    source_identity: str | None
    access_key_id: str | None
    region: str
    service: str


@_quick_init
@dataclass(frozen=True, slots=True)
class OperatorSection(WireRecord):
    """The ``aws`` section of an admin event: the AWS caller that made the change."""

    caller_arn: str


@_quick_init
@dataclass(frozen=True, slots=True)
class ArchiveKeys(WireRecord):
    """Where a policy change's records are archived (``policy_change.archive``)."""

    version: str
    activation: str


@_quick_init
@dataclass(frozen=True, slots=True)
class PolicyChangeSection(WireRecord):
    """The ``policy_change`` section: an activation or a rollback, and its diff summary."""

    action: str
    activation: int
    from_version: int | None
    from_checksum: str | None
    to_version: int
    to_checksum: str
    summary: dict[str, Any]
    archive: ArchiveKeys
    # The operator's words for the change (``--reason``). Appended last and
    # left out when None: the ledger hashes stored bytes, so events written
    # before the member existed keep their exact form.
    reason: str | None = field(default=None, metadata=OMIT_NONE)


@_quick_init
@dataclass(frozen=True, slots=True)
class GrantRefusalSection(WireRecord):
    """The ``grant`` section of a refused grant API call."""

    action: str
    attempted: str
    grant_id: str | None
    status: int
    reason: str


@_quick_init
@dataclass(frozen=True, slots=True)
class GatewaySection(WireRecord):
    """The ``gateway`` section: what API Gateway's access log says it did."""

    response_type: str | None
    error_message: str | None
    authorizer_status: int | None
    authorizer_error: str | None
    authorizer_latency_ms: int | None
    authorizer_integration_status: int | None
    integration_status: int | None
    integration_latency_ms: int | None
    waf_response_code: str | None
    resource_path: str | None
    policy_version: int | None
    served_by: str
    cached_authorizer: bool


@_quick_init
@dataclass(frozen=True, slots=True)
class SigningKeySection(WireRecord):
    """The ``signing_key`` section: an assertion key issued, rotated or expired.

    ``certificate_sha256`` is the SHA-256 of the certificate as published in
    ``key-certificates.json``; ``replaces`` is the key a rotated one took over from.
    """

    action: str
    kid: str
    certified_by: str
    not_before: int
    not_after: int
    certificate_sha256: str
    replaces: str | None = None


@_quick_init
@dataclass(frozen=True, slots=True)
class SessionSection(WireRecord):
    """The ``session`` section: one step in the life of a browser session.

    ``action`` is one of :data:`SESSION_ACTIONS`. ``session_id`` is Gatehouse's
    own session id (None when a sign-in failed before there was one); every
    decision and response made under the session names it as
    ``principal.browser_session_id``. ``idp`` is the issuer's short name.
    ``reason`` is a :class:`~chalicelib.reasons.Reason` code: why a sign-in or
    refresh failed, or why the session was revoked. ``revoked_by`` is one of
    :data:`SESSION_REVOKERS`. ``expires_at`` is when the session ends at the
    latest (seconds since the epoch). ``detail`` is capped at
    :data:`MAX_DETAIL` characters, as a decision's.

    Raises
    ------
    ValueError
        For an action, reason or revoker outside its closed set.
    """

    action: str
    session_id: str | None = None
    idp: str | None = None
    reason: str | None = None
    revoked_by: str | None = None
    expires_at: int | None = None
    detail: str | None = None

    def __post_init__(self) -> None:
        if self.action not in SESSION_ACTIONS:
            raise ValueError(f"unknown session action {self.action!r}")
        if self.revoked_by is not None and self.revoked_by not in SESSION_REVOKERS:
            raise ValueError(f"unknown session revoker {self.revoked_by!r}")
        if self.reason is not None:
            # A plain str on the wire, and only a code of the closed set.
            object.__setattr__(self, "reason", Reason(self.reason).value)
        if self.detail is not None and len(self.detail) > MAX_DETAIL:
            object.__setattr__(self, "detail", self.detail[:MAX_DETAIL])


@_quick_init
@dataclass(frozen=True, slots=True)
class AlertSection(WireRecord):
    """The ``alert`` section: a detection rule fired (:mod:`chalicelib.detect`).

    ``event_ids`` are the events that made it fire (the first ones, at most
    100); ``window_from`` and ``window_to`` bound them (RFC 3339 UTC);
    ``threshold`` is None for rules that fire on each event; ``query`` is the
    ready-to-run command that shows the evidence (None when there is no
    event to show, as for a dead-letter queue).
    """

    alert_id: str
    rule: str
    kind: str
    severity: str
    subject: str
    observed: float
    threshold: int | None
    window_from: str
    window_to: str
    event_ids: list[str]
    query: str | None
    detail: str | None
