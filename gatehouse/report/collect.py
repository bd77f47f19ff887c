"""Run the report's queries through a query engine and build the typed :class:`Report`.

Where a named query (``infra/athena/queries``) answers a part of the report,
the report runs it (``run_named``), so the report and ``gatehouse audit
query --named`` give the same numbers: top denies (``denies_with_reasons``),
grants and break-glass (``elevated_access``), policy changes, new sources,
per-route usage. The rest is report-specific SQL in
``gatehouse/report/sql/*.sql``, Athena (Trino) SQL with ``:from``/``:to``
placeholders written like the named queries: requests are counted once per
request id, and every query prunes the ``dt``/``hour`` partitions to the
window (from a minute before to an hour after: the writer files events under
the hour it stores them).
"""

from __future__ import annotations

import json
import re
import time
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, date, datetime
from functools import cache
from importlib import resources
from typing import Any, Protocol

from gatehouse.report import findings
from gatehouse.report.errors import ReportError
from gatehouse.report.model import (
    ANONYMOUS,
    NO_ROUTE,
    UNVERIFIED,
    AnomalyEvent,
    BrowserSessions,
    DenyEvent,
    DenyGroup,
    ElevatedAccess,
    GrantEvent,
    LedgerCoverage,
    MatrixCell,
    NewSource,
    PolicyChange,
    PolicyVersionInForce,
    QueryCost,
    ReasonCount,
    Report,
    RouteUsage,
    SensitiveAccess,
    SessionCount,
    TimeBucket,
    Window,
    truncate,
)

# How far back grants' lifecycle events and "known" sources are looked for
# (a grant lasts at most 7 days after approval).
DEFAULT_LOOKBACK_DAYS = 7


class QueryResultLike(Protocol):
    """What the report reads of a query result (the query contract's ``QueryResult``)."""

    columns: list[str]
    rows: list[tuple[Any, ...]]
    engine: str
    bytes_scanned: int | None
    cost_usd: float | None
    elapsed_s: float


class QueryEngine(Protocol):
    """The query contract's engine: the local DuckDB engine or Athena."""

    def run(self, sql: str, params: Mapping[str, str] = ...) -> QueryResultLike:
        """Run Athena SQL with ``:name`` parameters given as strings."""
        ...

    def run_named(self, name: str, params: Mapping[str, str]) -> QueryResultLike:
        """Run one of the named queries in ``infra/athena/queries``."""
        ...


@cache
def report_sql(name: str) -> str:
    """The text of ``gatehouse/report/sql/<name>.sql``."""
    try:
        return resources.files("gatehouse.report").joinpath("sql", f"{name}.sql").read_text()
    except FileNotFoundError as exc:
        raise ReportError(f"no report query {name!r}") from exc


def query_names() -> list[str]:
    """Every report-specific query, by name."""
    folder = resources.files("gatehouse.report").joinpath("sql")
    return sorted(entry.name[:-4] for entry in folder.iterdir() if entry.name.endswith(".sql"))


def window_params(window: Window) -> dict[str, str]:
    """``from`` and ``to`` as the engines take timestamps: ``YYYY-MM-DD HH:MM:SS.mmm`` UTC."""
    return {"from": _timestamp(window.start), "to": _timestamp(window.end)}


def _timestamp(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]


class _Runner:
    """Runs the report's queries one by one, adding up what they cost."""

    def __init__(self, engine: QueryEngine) -> None:
        self._engine = engine
        self.queries = 0
        self.bytes_scanned: int | None = 0
        self.cost_usd: float | None = 0.0
        self.engine_name = "unknown"
        # What the engine could not read of the trail, once each, in order seen.
        self.warnings: dict[str, None] = {}

    def report(self, name: str, params: Mapping[str, str]) -> list[dict[str, Any]]:
        return self._rows(self._engine.run(report_sql(name), params))

    def named(self, name: str, params: Mapping[str, str]) -> list[dict[str, Any]]:
        return self._rows(self._engine.run_named(name, params))

    def _rows(self, result: QueryResultLike) -> list[dict[str, Any]]:
        self.queries += 1
        self.engine_name = result.engine
        self.bytes_scanned = _add(self.bytes_scanned, result.bytes_scanned)
        self.cost_usd = _add(self.cost_usd, result.cost_usd)
        self.warnings.update(dict.fromkeys(getattr(result, "warnings", None) or ()))
        columns = [column.lower() for column in result.columns]
        return [dict(zip(columns, row, strict=True)) for row in result.rows]


def _add(total: Any, value: Any) -> Any:
    return None if total is None or value is None else total + value


def _time(value: Any) -> datetime:
    """A result's timestamp as an aware UTC datetime (engines give naive UTC or text)."""
    if isinstance(value, datetime):
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    if isinstance(value, date):
        return datetime(value.year, value.month, value.day, tzinfo=UTC)
    if isinstance(value, str):
        try:
            moment = datetime.fromisoformat(value.replace("Z", "+00:00").replace(" UTC", ""))
        except ValueError as exc:
            raise ReportError(f"unreadable timestamp {value[:40]!r} in a query result") from exc
        return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
    raise ReportError(f"expected a timestamp in a query result, got {type(value).__name__}")


def _opt_time(value: Any) -> datetime | None:
    return None if value is None else _time(value)


def _int(value: Any) -> int:
    return 0 if value is None else int(value)


def _opt_int(value: Any) -> int | None:
    return None if value is None else int(value)


def _opt_float(value: Any) -> float | None:
    return None if value is None else round(float(value), 3)


def _text(value: Any, default: str = "") -> str:
    return default if value is None else str(value)


def _opt_text(value: Any) -> str | None:
    return None if value is None else str(value)


def _principal(row: Mapping[str, Any], reasons: str | None = None) -> str:
    """Email, else subject, else :data:`ANONYMOUS`; see :func:`person`.

    ``reasons`` (comma-separated codes) of a deny: when a credential was
    refused, the identity it named is claimed, not verified, and a deny
    without one still had a credential (:data:`UNVERIFIED`, not anonymous).
    """
    unverified = bool(reasons) and any(
        code.strip() in _CREDENTIAL_FAILURES for code in str(reasons).split(",")
    )
    for column in ("principal", "email", "subject"):
        if row.get(column) is not None:
            who = person(str(row[column]))
            return f"{who} (claimed, not verified)" if unverified else who
    return UNVERIFIED if unverified else ANONYMOUS


def _presented_and_refused() -> frozenset[str]:
    """Reason codes of a credential that was presented and refused (not merely missing)."""
    from chalicelib.reasons import Reason

    return frozenset(
        reason.value
        for reason in Reason
        if reason.is_credential_failure and reason is not Reason.MISSING_CREDENTIALS
    )


_CREDENTIAL_FAILURES = _presented_and_refused()
# How grant records name people: ``issuer|subject (email)`` or ``issuer|subject``.
_ACTOR = re.compile(r"(?P<issuer>[^|\s]*)\|(?P<subject>[^|]*?)(?: \((?P<email>[^()]*)\))?")


def person(text: str | None) -> str:
    """A person as a reader knows them: the email of ``issuer|subject (email)``, else the subject.

    Text in any other form (an email, a subject, an ARN) is returned as it is.
    """
    if text is None:
        return ""
    match = _ACTOR.fullmatch(text)
    if match is None:
        return text
    return match.group("email") or match.group("subject") or text


def _opt_person(value: Any) -> str | None:
    return None if value is None else person(str(value))


def _route(value: Any) -> str:
    return _text(value, NO_ROUTE)


_DECISIONS = {"allow": "allow", "deny": "deny", "error": "error", None: "gateway_only"}


def _buckets(rows: Sequence[Mapping[str, Any]], window: Window) -> list[TimeBucket]:
    counts: dict[datetime, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for row in rows:
        start = truncate(_time(row["bucket_start"]), window.bucket)
        counts[start][_DECISIONS.get(row["decision"], "error")] += _int(row["requests"])
    return [
        TimeBucket(
            start,
            counts[start]["allow"],
            counts[start]["deny"],
            counts[start]["error"],
            counts[start]["gateway_only"],
        )
        for start in window.bucket_starts()
    ]


def _ledger(rows: Sequence[Mapping[str, Any]]) -> LedgerCoverage:
    firsts = [int(row["first_sequence"]) for row in rows if row["first_sequence"] is not None]
    lasts = [int(row["last_sequence"]) for row in rows if row["last_sequence"] is not None]
    return LedgerCoverage(
        events=sum(_int(row["events"]) for row in rows),
        first_sequence=min(firsts, default=None),
        last_sequence=max(lasts, default=None),
        by_type=dict(sorted((_text(row["event_type"]), _int(row["events"])) for row in rows)),
    )


def _matrix_cell(r: Mapping[str, Any]) -> MatrixCell:
    return MatrixCell(
        _principal(r),
        _route(r["route"]),
        _int(r["allowed"]),
        _int(r["denied"]),
        _int(r["errors"]),
        _int(r["gateway_only"]),
    )


def _deny_group(r: Mapping[str, Any]) -> DenyGroup:
    return DenyGroup(
        _text(r["reason"]),
        _principal(r, _text(r["reason"])),
        _route(r["route_id"]),
        _int(r["requests"]),
        _time(r["first_seen"]),
        _time(r["last_seen"]),
    )


def _deny_event(r: Mapping[str, Any]) -> DenyEvent:
    return DenyEvent(
        _time(r["event_time"]),
        _principal(r, _text(r["reasons"])),
        _opt_text(r["source_ip"]),
        _opt_text(r["user_agent"]),
        _text(r["method"]),
        _text(r["path"]),
        _route(r["route"]),
        _text(r["reasons"]),
        _opt_text(r["detail"]),
        _opt_text(r["request_id"]),
    )


def _policy_version(r: Mapping[str, Any]) -> PolicyVersionInForce:
    return PolicyVersionInForce(
        _opt_int(r["policy_version"]),
        _opt_text(r["policy_checksum"]),
        _int(r["decisions"]),
        _time(r["first_seen"]),
        _time(r["last_seen"]),
    )


def _policy_change(r: Mapping[str, Any]) -> PolicyChange:
    return PolicyChange(
        _time(r["at"]),
        _opt_text(r["action"]),
        _opt_int(r["activation"]),
        _opt_int(r["from_version"]),
        _opt_int(r["to_version"]),
        _opt_text(r["from_checksum"]),
        _opt_text(r["to_checksum"]),
        _opt_summary(r["summary"]),
        _opt_person(r["operator"]),
    )


def _opt_summary(value: Any) -> str | None:
    """A policy change's stored diff summary as lines a person reads, not a JSON blob.

    ``routes: + billing; ~ docs (upstream, path_prefix)``, one line per
    section; text that is not a JSON summary is kept as it is.
    """
    if value is None:
        return None
    try:
        summary = json.loads(value) if isinstance(value, str) else value
    except ValueError:
        return str(value)
    if not isinstance(summary, dict):
        return str(value)
    lines = []
    for section in ("routes", "rules"):
        part = summary.get(section)
        if not isinstance(part, dict):
            continue
        items = [f"+ {name}" for name in part.get("added") or []]
        items += [f"- {name}" for name in part.get("removed") or []]
        changed = part.get("changed") or {}
        if isinstance(changed, dict):
            items += [
                f"~ {name} ({', '.join(map(str, fields))})" for name, fields in changed.items()
            ]
        if items:
            lines.append(f"{section}: {'; '.join(items)}")
    if summary.get("blocks_changed"):
        lines.append(f"blocks changed: {', '.join(map(str, summary['blocks_changed']))}")
    for ids in summary.get("route_order_changed") or []:
        lines.append(f"route order: {', '.join(map(str, ids))}")
    return "\n".join(lines) or "no decision changes (order or formatting only)"


def _grant_event(r: Mapping[str, Any]) -> GrantEvent:
    return GrantEvent(
        _time(r["event_time"]),
        _opt_text(r["action"]),
        _opt_text(r["grant_id"]),
        _opt_person(r["requester"]),
        _opt_person(r["actor"]),
        _opt_person(r["approver"]),
        _opt_text(r["justification"]),
        _opt_text(r["routes"]),
        _opt_text(r["expires_at"]),
    )


def _elevated(r: Mapping[str, Any]) -> ElevatedAccess:
    return ElevatedAccess(
        time=_time(r["at"]),
        request_id=_opt_text(r["request_id"]),
        principal=_principal(r),
        method=_text(r["method"]),
        path=_text(r["path"]),
        route=_route(r["route_id"]),
        decision=_opt_text(r["decision"]),
        status=_opt_int(r["status"]),
        break_glass=r["break_glass"] is True,
        grant_id=_opt_text(r["grant_id"]),
        justification=_opt_text(r["justification"]),
        requested_by=_opt_person(r["requested_by"]),
        requested_at=_opt_time(r["requested_at"]),
        approved_by=_opt_person(r["approved_by"]),
        approved_at=_opt_time(r["approved_at"]),
        expires_at=_opt_time(r["expires_at"]),
        first_used_at=_opt_time(r["first_used_at"]),
        ended_at=_opt_time(r["ended_at"]),
    )


def _sensitive(r: Mapping[str, Any]) -> SensitiveAccess:
    return SensitiveAccess(
        _principal(r),
        _route(r["route"]),
        _int(r["allowed"]),
        _time(r["first_seen"]),
        _time(r["last_seen"]),
    )


def _new_source(r: Mapping[str, Any]) -> NewSource:
    return NewSource(
        _principal(r),
        "source_ip" if r["kind"] == "source_ip" else "user_agent",
        _text(r["value"]),
        _time(r["first_seen"]),
        _time(r["last_seen"]),
        _int(r["requests"]),
        r["principal_is_new"] is True,
    )


def _anomaly(r: Mapping[str, Any]) -> AnomalyEvent:
    return AnomalyEvent(
        _time(r["event_time"]),
        _principal(r),
        _opt_text(r["source_ip"]),
        _opt_text(r["user_agent"]),
        _text(r["method"]),
        _text(r["path"]),
        _text(r["anomalies"]),
    )


def _route_usage(r: Mapping[str, Any]) -> RouteUsage:
    return RouteUsage(
        host=_opt_text(r["host"]),
        route=_route(r["route_id"]),
        requests=_int(r["requests"]),
        allowed=_int(r["allowed"]),
        denied=_int(r["denied"]),
        errors=_int(r["errors"]),
        gateway_only=_int(r["gateway_only"]),
        status_2xx=_int(r["status_2xx"]),
        status_3xx=_int(r["status_3xx"]),
        status_4xx=_int(r["status_4xx"]),
        status_5xx=_int(r["status_5xx"]),
        latency_p50_ms=_opt_float(r["latency_p50_ms"]),
        latency_p95_ms=_opt_float(r["latency_p95_ms"]),
        bytes_in=_int(r["bytes_in"]),
        bytes_out=_int(r["bytes_out"]),
    )


def _session_count(r: Mapping[str, Any]) -> SessionCount:
    return SessionCount(
        _text(r["action"]), _opt_text(r["reason"]), _opt_text(r["revoked_by"]), _int(r["events"])
    )


def collect_report(
    engine: QueryEngine,
    window: Window,
    *,
    stage: str,
    lookback_days: int = DEFAULT_LOOKBACK_DAYS,
    now: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> Report:
    """Run every report query over ``window`` and assemble the report.

    Parameters
    ----------
    engine:
        A query engine with the contract's ``run`` and ``run_named``.
    window:
        The half-open UTC interval to report on.
    stage:
        The stage the trail belongs to (shown in the report).
    lookback_days:
        How far before the window a source must not have been seen for it
        to count as new, and where grants' lifecycle events are looked for.

    Raises
    ------
    ReportError
        When a query's answer cannot be read (the engine's own errors propagate).
    """
    started = time.perf_counter()
    run = _Runner(engine)
    params = window_params(window)
    lookback = {**params, "lookback_days": str(lookback_days)}
    buckets = _buckets(run.report("requests_over_time", params), window)
    matrix = [_matrix_cell(r) for r in run.report("access_matrix", params)]
    reasons = [
        ReasonCount(_text(r["outcome"]), _text(r["reasons"]), _int(r["decisions"]))
        for r in run.report("decision_reasons", params)
    ]
    denies = [_deny_group(r) for r in run.named("denies_with_reasons", params)]
    recent = [_deny_event(r) for r in run.report("recent_denies", params)]
    versions = [_policy_version(r) for r in run.report("policy_versions", params)]
    changes = [_policy_change(r) for r in run.named("policy_changes", params)]
    grants = [_grant_event(r) for r in run.report("grant_events", params)]
    elevated = [_elevated(r) for r in run.named("elevated_access", lookback)]
    sensitive = [_sensitive(r) for r in run.report("sensitive_access", params)]
    new_sources = [_new_source(r) for r in run.named("new_sources", lookback)]
    anomalies = [_anomaly(r) for r in run.report("anomalies", params)]
    usage = [_route_usage(r) for r in run.named("route_usage", params)]
    ledger = _ledger(run.report("ledger_coverage", params))
    sessions = BrowserSessions.from_counts(
        [_session_count(r) for r in run.report("session_events", params)]
    )
    cost = QueryCost(
        run.engine_name,
        run.queries,
        run.bytes_scanned,
        run.cost_usd,
        round(time.perf_counter() - started, 3),
    )
    return Report(
        window=window,
        generated_at=now(),
        stage=stage,
        cost=cost,
        requests_over_time=buckets,
        access_matrix=matrix,
        reasons=reasons,
        top_denies=denies,
        recent_denies=recent,
        policy_versions=versions,
        policy_changes=changes,
        grant_events=grants,
        elevated_access=elevated,
        sensitive_access=sensitive,
        new_sources=new_sources,
        anomalies=anomalies,
        route_usage=usage,
        ledger=ledger,
        browser_sessions=sessions,
        controls=findings.controls(
            reasons=reasons,
            versions=versions,
            changes=changes,
            grant_events=grants,
            elevated=elevated,
            ledger=ledger,
        ),
        alerts=findings.alerts(
            buckets=buckets,
            reasons=reasons,
            elevated=elevated,
            sensitive=sensitive,
            anomalies=anomalies,
            new_sources=new_sources,
            unreadable=list(run.warnings),
        ),
    )
