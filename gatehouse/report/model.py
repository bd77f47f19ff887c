"""The report's data: what one run over a window found, typed, before any rendering.

Every string here may come from an audit event and so from a client (paths,
user agents, emails, justifications, reasons): renderers must treat each one
as hostile. Times are timezone-aware UTC datetimes.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from gatehouse.report.errors import ReportError

Bucket = Literal["minute", "hour", "day"]
Severity = Literal["high", "medium", "low"]

# Windows up to this long are charted per minute, up to HOURLY_UP_TO per hour,
# longer ones per day (a month of hours would be 720 unreadable bars).
MINUTELY_UP_TO = timedelta(hours=2)
HOURLY_UP_TO = timedelta(hours=48)
_STEPS = {"minute": timedelta(minutes=1), "hour": timedelta(hours=1), "day": timedelta(days=1)}
# Labels for requests without an identity or outside every route.
ANONYMOUS = "(anonymous)"
# A denied credential (a token or session cookie that did not verify): someone
# presented one, so the request was not anonymous, but nobody is proven.
UNVERIFIED = "(unverified credential)"
NO_ROUTE = "(no route)"
VERIFY_COMMAND = "gatehouse audit verify"


@dataclass(frozen=True, slots=True)
class Window:
    """The half-open interval ``[start, end)`` the report covers."""

    start: datetime
    end: datetime

    def __post_init__(self) -> None:
        for moment in (self.start, self.end):
            if moment.tzinfo is None or moment.utcoffset() != timedelta(0):
                raise ValueError("report window bounds must be UTC datetimes")
        if self.end <= self.start:
            raise ValueError("the report window must end after it starts")

    @property
    def bucket(self) -> Bucket:
        """The chart resolution: per minute up to 2 hours, per hour up to 48, else per day."""
        length = self.end - self.start
        if length <= MINUTELY_UP_TO:
            return "minute"
        return "hour" if length <= HOURLY_UP_TO else "day"

    def bucket_starts(self) -> list[datetime]:
        """Every bucket start in the window, in order (empty buckets included)."""
        step = _STEPS[self.bucket]
        moment = truncate(self.start, self.bucket)
        starts = []
        while moment < self.end:
            starts.append(moment)
            moment += step
        return starts

    def days(self) -> list[str]:
        """The ``dt`` partitions (``YYYY-MM-DD``) the window touches."""
        day = self.start.date()
        last = (self.end - timedelta(microseconds=1)).date()
        days = []
        while day <= last:
            days.append(day.isoformat())
            day += timedelta(days=1)
        return days


def truncate(moment: datetime, bucket: Bucket) -> datetime:
    """The start of the minute, hour or day holding ``moment``."""
    moment = moment.replace(second=0, microsecond=0)
    if bucket == "minute":
        return moment
    moment = moment.replace(minute=0)
    return moment.replace(hour=0) if bucket == "day" else moment


@dataclass(frozen=True, slots=True)
class TimeBucket:
    """Requests in one hour or day, by decision (``gateway_only``: API Gateway answered alone)."""

    start: datetime
    allow: int = 0
    deny: int = 0
    error: int = 0
    gateway_only: int = 0

    @property
    def total(self) -> int:
        """All requests in the bucket."""
        return self.allow + self.deny + self.error + self.gateway_only


@dataclass(frozen=True, slots=True)
class MatrixCell:
    """Requests of one principal on one route, by decision."""

    principal: str
    route: str
    allow: int
    deny: int
    error: int
    gateway_only: int

    @property
    def total(self) -> int:
        """All requests of the pair."""
        return self.allow + self.deny + self.error + self.gateway_only


@dataclass(frozen=True, slots=True)
class ReasonCount:
    """How many decisions had this outcome and these reason codes."""

    outcome: str
    reasons: str
    count: int


@dataclass(frozen=True, slots=True)
class DenyGroup:
    """Denied requests per reason, principal and route (named query ``denies_with_reasons``)."""

    reason: str
    principal: str
    route: str
    requests: int
    first_seen: datetime
    last_seen: datetime


@dataclass(frozen=True, slots=True)
class DenyEvent:
    """One denied decision."""

    time: datetime
    principal: str
    source_ip: str | None
    user_agent: str | None
    method: str
    path: str
    route: str
    reasons: str
    detail: str | None
    request_id: str | None


@dataclass(frozen=True, slots=True)
class PolicyVersionInForce:
    """A policy version that decided requests in the window."""

    version: int | None
    checksum: str | None
    decisions: int
    first_seen: datetime
    last_seen: datetime


@dataclass(frozen=True, slots=True)
class PolicyChange:
    """One ``policy_change`` event (named query ``policy_changes``)."""

    time: datetime
    action: str | None
    activation: int | None
    from_version: int | None
    to_version: int | None
    from_checksum: str | None
    to_checksum: str | None
    summary: str | None
    operator: str | None


@dataclass(frozen=True, slots=True)
class GrantEvent:
    """One ``grant`` event: requested, approved, denied, revoked, used, expired, refused."""

    time: datetime
    action: str | None
    grant_id: str | None
    requester: str | None
    actor: str | None
    approver: str | None
    justification: str | None
    routes: str | None
    expires_at: str | None


@dataclass(frozen=True, slots=True)
class ElevatedAccess:
    """A request made under a JIT grant or break-glass, with the grant's lifecycle.

    From the named query ``elevated_access``; the lifecycle times are None
    where the grant's events are not in the trail it searched.
    """

    time: datetime
    request_id: str | None
    principal: str
    method: str
    path: str
    route: str
    decision: str | None
    status: int | None
    break_glass: bool
    grant_id: str | None
    justification: str | None
    requested_by: str | None
    requested_at: datetime | None
    approved_by: str | None
    approved_at: datetime | None
    expires_at: datetime | None
    first_used_at: datetime | None
    ended_at: datetime | None


@dataclass(frozen=True, slots=True)
class SensitiveAccess:
    """Allowed decisions on a route marked sensitive, per principal."""

    principal: str
    route: str
    count: int
    first_seen: datetime
    last_seen: datetime


@dataclass(frozen=True, slots=True)
class NewSource:
    """A source address or user agent a principal had not used before the window.

    From the named query ``new_sources``; ``principal_is_new``: the principal
    had no event at all in the lookback.
    """

    principal: str
    kind: Literal["source_ip", "user_agent"]
    value: str
    first_seen: datetime
    last_seen: datetime
    requests: int
    principal_is_new: bool


@dataclass(frozen=True, slots=True)
class AnomalyEvent:
    """An event that carried anomaly flags (e.g. a client spoofing gateway headers)."""

    time: datetime
    principal: str
    source_ip: str | None
    user_agent: str | None
    method: str
    path: str
    anomalies: str


@dataclass(frozen=True, slots=True)
class RouteUsage:
    """What one host and route served in the window (named query ``route_usage``).

    Status, latency and bytes out are what the client got (API Gateway's
    when its access-log line is there, else the proxy's); latency
    percentiles are Athena's ``approx_percentile``.
    """

    host: str | None
    route: str
    requests: int
    allowed: int
    denied: int
    errors: int
    gateway_only: int
    status_2xx: int
    status_3xx: int
    status_4xx: int
    status_5xx: int
    latency_p50_ms: float | None
    latency_p95_ms: float | None
    bytes_in: int
    bytes_out: int


@dataclass(frozen=True, slots=True)
class SessionCount:
    """Browser session events of one action, reason and revoker (``session`` events)."""

    action: str
    reason: str | None
    revoked_by: str | None
    count: int


# A failed step's reason or a revocation's revoker when its session event names none.
UNKNOWN = "(unknown)"


@dataclass(frozen=True, slots=True)
class BrowserSessions:
    """What browser sessions did in the window, from their ``session`` events.

    ``failed_sign_ins`` and ``failed_refreshes`` are by reason code;
    ``revocations`` by who revoked (``user``, ``operator``, ``idp``).
    ``idp_logouts`` counts the identity provider's logout notices. ``counts``
    holds every action, reason and revoker as counted.
    """

    sign_ins: int = 0
    failed_sign_ins: Mapping[str, int] = field(default_factory=dict)
    refreshes: int = 0
    failed_refreshes: Mapping[str, int] = field(default_factory=dict)
    sign_outs: int = 0
    revocations: Mapping[str, int] = field(default_factory=dict)
    idp_logouts: int = 0
    counts: list[SessionCount] = field(default_factory=list)

    @classmethod
    def from_counts(cls, counts: list[SessionCount]) -> BrowserSessions:
        """The summary of ``counts`` (rows of the report query ``session_events``)."""

        def total(action: str) -> int:
            return sum(c.count for c in counts if c.action == action)

        def by(action: str, key: str) -> dict[str, int]:
            grouped: dict[str, int] = {}
            for c in counts:
                if c.action == action:
                    name = getattr(c, key) or UNKNOWN
                    grouped[name] = grouped.get(name, 0) + c.count
            return dict(sorted(grouped.items(), key=lambda item: (-item[1], item[0])))

        return cls(
            sign_ins=total("signed_in"),
            failed_sign_ins=by("sign_in_failed", "reason"),
            refreshes=total("refreshed"),
            failed_refreshes=by("refresh_failed", "reason"),
            sign_outs=total("signed_out"),
            revocations=by("revoked", "revoked_by"),
            idp_logouts=total("idp_logged_out"),
            counts=list(counts),
        )

    @property
    def total(self) -> int:
        """Every session event in the window."""
        return sum(c.count for c in self.counts)


@dataclass(frozen=True, slots=True)
class LedgerCoverage:
    """Which stored events the window holds: counts and ledger sequence range."""

    events: int
    first_sequence: int | None
    last_sequence: int | None
    by_type: Mapping[str, int]


@dataclass(frozen=True, slots=True)
class Control:
    """A control in force and the evidence for it, for the compliance summary."""

    name: str
    status: str
    evidence: str


@dataclass(frozen=True, slots=True)
class Alert:
    """Something security should look at."""

    kind: str
    severity: Severity
    summary: str


@dataclass(frozen=True, slots=True)
class Integrity:
    """What ``gatehouse audit verify`` found for the window, run with the report.

    ``error`` says why verification could not run (then nothing else is
    known); ``verified_nothing``: no digest's period ends in the window.
    ``checkpoint_size``/``checkpoint_origin`` describe the ledger's newest
    signed checkpoint, ``cosigned_by`` the trusted witnesses that cosigned it.
    """

    ok: bool = False
    verified_nothing: bool = False
    digests: int = 0
    objects: int = 0
    events: int = 0
    tree_size: int = 0
    root: str = ""
    findings: list[str] = field(default_factory=list)
    checkpoint_size: int | None = None
    checkpoint_origin: str | None = None
    cosigned_by: list[str] = field(default_factory=list)
    error: str | None = None

    @property
    def result(self) -> str:
        """``ok``, ``FAILED: N findings``, ``nothing verified`` or ``not verified``.

        The verdicts ``gatehouse audit verify`` prints, so the report and the
        command read the same.
        """
        if self.error is not None:
            return "not verified"
        if not self.ok:
            return f"FAILED: {len(self.findings)} findings"
        return "nothing verified" if self.verified_nothing else "ok"


@dataclass(frozen=True, slots=True)
class QueryCost:
    """What running the report's queries cost (Athena) or took (local)."""

    engine: str
    queries: int
    bytes_scanned: int | None
    cost_usd: float | None
    elapsed_s: float


@dataclass(frozen=True, slots=True)
class Report:
    """Everything one report run found over its window."""

    window: Window
    generated_at: datetime
    stage: str
    cost: QueryCost
    requests_over_time: list[TimeBucket]
    access_matrix: list[MatrixCell]
    reasons: list[ReasonCount]
    top_denies: list[DenyGroup]
    recent_denies: list[DenyEvent]
    policy_versions: list[PolicyVersionInForce]
    policy_changes: list[PolicyChange]
    grant_events: list[GrantEvent]
    elevated_access: list[ElevatedAccess]
    sensitive_access: list[SensitiveAccess]
    new_sources: list[NewSource]
    anomalies: list[AnomalyEvent]
    route_usage: list[RouteUsage]
    ledger: LedgerCoverage
    controls: list[Control]
    alerts: list[Alert]
    browser_sessions: BrowserSessions = field(default_factory=BrowserSessions)
    # None: the report was built without running the ledger verification.
    integrity: Integrity | None = None

    @property
    def requests(self) -> dict[str, int]:
        """Requests in the window by decision (and ``total``)."""
        totals = {
            outcome: sum(getattr(bucket, outcome) for bucket in self.requests_over_time)
            for outcome in ("allow", "deny", "error", "gateway_only")
        }
        totals["total"] = sum(totals.values())
        return totals

    @property
    def empty(self) -> bool:
        """True when nothing at all was recorded in the window."""
        return self.ledger.events == 0

    @property
    def break_glass_uses(self) -> list[ElevatedAccess]:
        """The break-glass decisions (a subset of ``elevated_access``)."""
        return [access for access in self.elevated_access if access.break_glass]


def utc_text(moment: datetime) -> str:
    """``2026-11-28T15:50:37.123Z``: the audit trail's own timestamp format."""
    moment = moment.astimezone(UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def as_plain(value: Any) -> Any:
    """``value`` with datetimes as text and dataclasses as dicts: ready for JSON or CSV."""
    if isinstance(value, datetime):
        return utc_text(value)
    if hasattr(value, "__dataclass_fields__"):
        return {name: as_plain(getattr(value, name)) for name in value.__dataclass_fields__}
    if isinstance(value, Mapping):
        return {str(key): as_plain(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [as_plain(item) for item in value]
    return value


def parse_bound(text: str, option: str, *, now: datetime | None = None) -> datetime:
    """A window bound from the command line, read as every command reads times.

    ISO 8601 (UTC when no offset), a date, relative (``-1h``), ``now``,
    ``today``, ``yesterday``: :func:`gatehouse.times.parse_time_argument`.

    Raises
    ------
    ReportError
        When ``text`` is none of those.
    """
    from gatehouse.times import TimeArgumentError, parse_time_argument

    try:
        return parse_time_argument(text, option, now=now)
    except TimeArgumentError as exc:
        raise ReportError(str(exc)) from None


def parse_window(start: str, end: str, *, now: datetime | None = None) -> Window:
    """The window ``[start, end)`` from the command line's ``--from`` and ``--to``.

    Raises
    ------
    ReportError
        When either bound cannot be read, or the window is empty or reversed.
    """
    now = now or datetime.now(UTC)
    begin, finish = parse_bound(start, "--from", now=now), parse_bound(end, "--to", now=now)
    if finish <= begin:
        raise ReportError(f"--to ({end}) must be after --from ({start}): the window holds nothing")
    return Window(begin, finish)
