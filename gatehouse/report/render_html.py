"""The report as one self-contained HTML page (``report.html``).

Inline CSS and inline SVG charts drawn here: no script, no external URL, no
web font, so the page works offline and opened from a file. A restrictive
Content-Security-Policy in the page itself blocks scripts and remote loads
should anything ever slip through.

Every value from the trail is attacker-controlled (paths, user agents, emails,
justifications, reasons). All of it goes through :func:`esc`
(``html.escape(quote=True)``) whether it lands in text or in an attribute, and
no tag or attribute name is ever built from data: markup comes only from this
module's constants. Inline styles are built from numbers only.
"""

from __future__ import annotations

import hashlib
import html
import re
import shlex
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

from gatehouse.query.text import replace_surrogates
from gatehouse.report.model import (
    VERIFY_COMMAND,
    Bucket,
    MatrixCell,
    Report,
    TimeBucket,
    utc_text,
)

# Rows shown per table in the page; the CSV and JSON files hold all of them.
MAX_ROWS = 200
MAX_MATRIX_PRINCIPALS = 30
MAX_MATRIX_ROUTES = 20
MAX_LABEL = 70

COLOURS = {"allow": "#2e7d32", "deny": "#c62828", "error": "#f9a825", "gateway_only": "#78909c"}
LEGEND = {
    "allow": "allowed",
    "deny": "denied",
    "error": "error (fail closed)",
    "gateway_only": "answered by API Gateway alone",
}

CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:; base-uri 'none'"

STYLE = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:#1b1b1b;
margin:0;background:#f6f7f9}
header,main{max-width:1180px;margin:0 auto;padding:0 20px}
header{padding-top:18px}
h1{font-size:22px;margin:0 0 4px}h2{font-size:19px;border-bottom:2px solid #d0d4da;
padding-bottom:4px;margin-top:34px}h3{font-size:15px;margin:22px 0 6px}
nav a{margin-right:14px;color:#0b57d0}
.meta{color:#555}.muted{color:#666}.notice{background:#fff3cd;border:1px solid #e0c36a;
padding:10px 14px;border-radius:6px;margin:14px 0}
.cards{display:flex;flex-wrap:wrap;gap:10px;margin:14px 0}
.card{background:#fff;border:1px solid #d0d4da;border-radius:6px;padding:8px 14px;min-width:110px}
.card b{display:block;font-size:20px}
table{border-collapse:collapse;background:#fff;margin:6px 0 10px;font-size:13px}
th,td{border:1px solid #d0d4da;padding:4px 7px;text-align:left;vertical-align:top}
th{background:#eef0f3}td.num{text-align:right;font-variant-numeric:tabular-nums}
td.wrap{max-width:360px;overflow-wrap:anywhere}
.heat td{text-align:center;white-space:nowrap}
.sev-high{color:#b71c1c;font-weight:600}.sev-medium{color:#a15c00;font-weight:600}
.legend span{display:inline-block;margin-right:14px}
.legend i{display:inline-block;width:11px;height:11px;margin-right:4px;vertical-align:-1px}
svg{background:#fff;border:1px solid #d0d4da;border-radius:4px;max-width:100%;height:auto}
svg text{font:11px system-ui,sans-serif;fill:#333}
code{background:#eef0f3;padding:1px 5px;border-radius:3px}
"""


class Markup(str):
    """Markup this module built from escaped parts: :func:`esc` passes it as it is."""

    __slots__ = ()


def esc(value: Any) -> str:
    """``value`` as HTML text, safe in element content and in quoted attribute values."""
    if value is None:
        return ""
    if isinstance(value, Markup):
        return str(value)
    if isinstance(value, datetime):
        value = utc_text(value)
    elif isinstance(value, bool):
        value = "yes" if value else "no"
    elif isinstance(value, float):
        value = f"{value:,.1f}"
    elif isinstance(value, int):
        value = f"{value:,}"
    return html.escape(str(value), quote=True)


def shorten(text: str | None, limit: int = MAX_LABEL) -> str:
    """``text`` cut to ``limit`` characters for a label (the tables hold it whole)."""
    text = text or ""
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _table(
    headers: Sequence[str],
    rows: Sequence[Sequence[Any]],
    *,
    empty: str,
    numeric: Iterable[int] = (),
    css_class: str = "",
) -> str:
    if not rows:
        return f'<p class="muted">{esc(empty)}</p>'
    numeric_columns = set(numeric)
    head = "".join(f"<th>{esc(name)}</th>" for name in headers)
    body = []
    for row in rows[:MAX_ROWS]:
        cells = "".join(
            f'<td class="{"num" if index in numeric_columns else "wrap"}">{esc(cell)}</td>'
            for index, cell in enumerate(row)
        )
        body.append(f"<tr>{cells}</tr>")
    more = ""
    if len(rows) > MAX_ROWS:
        more = (
            f'<p class="muted">Showing {MAX_ROWS:,} of {len(rows):,} rows; '
            "the CSV and JSON files hold all of them.</p>"
        )
    table_class = f' class="{css_class}"' if css_class else ""
    rows_html = "".join(body)
    return (
        f"<table{table_class}><thead><tr>{head}</tr></thead>"
        f"<tbody>{rows_html}</tbody></table>{more}"
    )


def _legend() -> str:
    items = "".join(
        f'<span><i style="background:{colour}"></i>{esc(LEGEND[name])}</span>'
        for name, colour in COLOURS.items()
    )
    return f'<p class="legend">{items}</p>'


def _bucket_label(start: datetime, bucket: Bucket) -> str:
    if bucket == "minute":
        return start.strftime("%H:%M")
    return start.strftime("%H:00") if bucket == "hour" else start.strftime("%m-%d")


def _nice_ceiling(value: int) -> int:
    """A round axis maximum at or above ``value`` with four whole, round ticks."""
    magnitude = 1
    while True:
        for step in (10, 12, 15, 20, 25, 30, 40, 50, 60, 80):
            tick, remainder = divmod(step * magnitude, 10)
            if not remainder and 4 * tick >= value:
                return 4 * tick
        magnitude *= 10


def _svg_open(label: str, width: int, height: int) -> str:
    return (
        f'<svg role="img" aria-label="{esc(label)}" viewBox="0 0 {width} {height}" '
        f'width="{width}" height="{height}">'
    )


def requests_chart(buckets: Sequence[TimeBucket], bucket: Bucket) -> str:
    """Stacked bars of requests per hour or day, by decision (inline SVG)."""
    width, height, left, bottom, top = 960, 260, 48, 34, 12
    plot_width, plot_height = width - left - 10, height - bottom - top
    parts = [_svg_open("Requests over time by decision", width, height)]
    peak = max((b.total for b in buckets), default=0)
    if peak == 0:
        parts.append(
            f'<text x="{width // 2}" y="{height // 2}" text-anchor="middle">'
            "No requests in this window</text></svg>"
        )
        return "".join(parts)
    ceiling = _nice_ceiling(peak)
    for tick in range(5):
        value = ceiling * tick / 4
        y = top + plot_height - plot_height * tick / 4
        parts.append(
            f'<line x1="{left}" x2="{width - 10}" y1="{y:.1f}" y2="{y:.1f}" stroke="#e3e6ea"/>'
            f'<text x="{left - 6}" y="{y + 4:.1f}" text-anchor="end">{esc(int(value))}</text>'
        )
    slot = plot_width / len(buckets)
    label_every = max(1, round(len(buckets) / 16))
    for index, item in enumerate(buckets):
        x = left + index * slot
        base = top + plot_height
        tip = esc(
            f"{_bucket_label(item.start, bucket)} {item.start:%Y-%m-%d}: "
            f"{item.allow} allowed, {item.deny} denied, {item.error} error, "
            f"{item.gateway_only} gateway only"
        )
        parts.append(f"<g><title>{tip}</title>")
        for outcome in COLOURS:
            count = getattr(item, outcome)
            if not count:
                continue
            bar = plot_height * count / ceiling
            base -= bar
            parts.append(
                f'<rect x="{x + slot * 0.1:.1f}" y="{base:.1f}" width="{slot * 0.8:.1f}" '
                f'height="{bar:.1f}" fill="{COLOURS[outcome]}"/>'
            )
        parts.append("</g>")
        if index % label_every == 0:
            parts.append(
                f'<text x="{x + slot / 2:.1f}" y="{height - bottom + 16}" text-anchor="middle">'
                f"{esc(_bucket_label(item.start, bucket))}</text>"
            )
    parts.append("</svg>")
    return "".join(parts)


def bar_chart(label: str, items: Sequence[tuple[str, int]], colour: str) -> str:
    """Horizontal bars, one per ``(label, count)`` (inline SVG)."""
    if not items:
        return ""
    row, label_width, width = 22, 430, 960
    height = row * len(items) + 10
    peak = max(count for _, count in items) or 1
    parts = [_svg_open(label, width, height)]
    for index, (text, count) in enumerate(items):
        y = 5 + index * row
        bar = (width - label_width - 70) * count / peak
        parts.append(
            f"<g><title>{esc(text)}: {esc(count)}</title>"
            f'<text x="{label_width - 8}" y="{y + 15}" text-anchor="end">'
            f"{esc(shorten(text))}</text>"
            f'<rect x="{label_width}" y="{y + 3}" width="{bar:.1f}" height="{row - 7}" '
            f'fill="{colour}"/>'
            f'<text x="{label_width + bar + 6:.1f}" y="{y + 15}">{esc(count)}</text></g>'
        )
    parts.append("</svg>")
    return "".join(parts)


def access_matrix(cells: Sequence[MatrixCell]) -> str:
    """Principal x route heatmap table: allowed / denied requests, shaded by volume."""
    if not cells:
        return '<p class="muted">No requests in this window.</p>'
    principal_totals: dict[str, int] = {}
    route_totals: dict[str, int] = {}
    by_pair: dict[tuple[str, str], MatrixCell] = {}
    for cell in cells:
        total = cell.total
        principal_totals[cell.principal] = principal_totals.get(cell.principal, 0) + total
        route_totals[cell.route] = route_totals.get(cell.route, 0) + total
        by_pair[(cell.principal, cell.route)] = cell
    principals = sorted(principal_totals, key=lambda p: (-principal_totals[p], p))
    routes = sorted(route_totals, key=lambda r: (-route_totals[r], r))
    shown_principals = principals[:MAX_MATRIX_PRINCIPALS]
    shown_routes = routes[:MAX_MATRIX_ROUTES]
    peak = max((c.total for c in cells), default=1) or 1
    head = "".join(f"<th>{esc(route)}</th>" for route in shown_routes)
    rows = []
    for principal in shown_principals:
        tds = [f"<th>{esc(principal)}</th>"]
        for route in shown_routes:
            matrix_cell = by_pair.get((principal, route))
            if matrix_cell is None:
                tds.append('<td class="muted">·</td>')
                continue
            total = matrix_cell.total
            alpha = 0.12 + 0.6 * total / peak
            rgb = "198,40,40" if matrix_cell.deny > matrix_cell.allow else "46,125,50"
            tds.append(
                f'<td style="background:rgba({rgb},{alpha:.2f})" '
                f'title="{esc(principal)} on {esc(route)}">'
                f"{esc(matrix_cell.allow)} / {esc(matrix_cell.deny)}</td>"
            )
        rows.append(f"<tr>{''.join(tds)}</tr>")
    note = ""
    if len(principals) > len(shown_principals) or len(routes) > len(shown_routes):
        note = (
            f'<p class="muted">Showing the busiest {len(shown_principals)} of '
            f"{len(principals)} principals and {len(shown_routes)} of {len(routes)} routes; "
            "access_matrix.csv holds every pair.</p>"
        )
    return (
        '<p class="muted">Each cell: allowed / denied requests; darker is busier, red where '
        "denies outnumber allows.</p>"
        f'<table class="heat"><thead><tr><th>principal \\ route</th>{head}</tr></thead>'
        f"<tbody>{''.join(rows)}</tbody></table>{note}"
    )


def timeline_chart(report: Report) -> str:
    """Policy changes, grant events and break-glass uses on one time axis (inline SVG)."""
    marks: list[tuple[datetime, str, str]] = []
    marks += [
        (c.time, "policy", f"policy {c.action or ''} v{c.from_version} -> v{c.to_version}")
        for c in report.policy_changes
    ]
    marks += [
        (g.time, "grant", f"grant {g.action or ''} {g.grant_id or ''}") for g in report.grant_events
    ]
    marks += [
        (b.time, "break_glass", f"break-glass {b.principal} {b.method} {b.path}")
        for b in report.break_glass_uses
    ]
    if not marks:
        return ""
    width, height, left, right = 960, 120, 110, 20
    start, end = report.window.start, report.window.end
    span = (end - start).total_seconds()
    lanes = {"policy": (30, "#0b57d0"), "grant": (60, "#6a1b9a"), "break_glass": (90, "#c62828")}
    parts = [_svg_open("Timeline of policy changes, grants and break-glass", width, height)]
    for lane, (y, _) in lanes.items():
        parts.append(
            f'<text x="{left - 8}" y="{y + 4}" text-anchor="end">'
            f"{esc(lane.replace('_', '-'))}</text>"
            f'<line x1="{left}" x2="{width - right}" y1="{y}" y2="{y}" stroke="#e3e6ea"/>'
        )
    for moment, lane, text in marks:
        y, colour = lanes[lane]
        x = left + (width - left - right) * (moment - start).total_seconds() / span
        parts.append(
            f'<circle cx="{x:.1f}" cy="{y}" r="5" fill="{colour}">'
            f"<title>{esc(utc_text(moment))} {esc(text)}</title></circle>"
        )
    parts.append(
        f'<text x="{left}" y="{height - 6}">{esc(utc_text(start))}</text>'
        f'<text x="{width - right}" y="{height - 6}" text-anchor="end">{esc(utc_text(end))}</text>'
        "</svg>"
    )
    return "".join(parts)


def _section(anchor: str, title: str, body: Iterable[str]) -> str:
    return f'<section id="{anchor}"><h2>{esc(title)}</h2>{"".join(body)}</section>'


# A table's columns: (header, attribute of each row object).
Columns = Sequence[tuple[str, str]]


def _records(
    items: Sequence[Any], columns: Columns, *, empty: str, numeric: Iterable[str] = ()
) -> str:
    """A table of dataclass ``items``, one column per ``(header, attribute)``."""
    numbers = set(numeric)
    return _table(
        [header for header, _ in columns],
        [[getattr(item, name) for _, name in columns] for item in items],
        empty=empty,
        numeric=[index for index, (_, name) in enumerate(columns) if name in numbers],
    )


def _capped_note(rows: int, csv_name: str) -> str:
    """A link to the CSV holding every row, when the page shows only the first ``MAX_ROWS``."""
    if rows <= MAX_ROWS:
        return ""
    return (
        f'<p class="muted">The newest {MAX_ROWS:,} of {rows:,} are shown; '
        f'<a href="{esc(csv_name)}">{esc(csv_name)}</a> holds all of them.</p>'
    )


def _cards(report: Report) -> str:
    totals = report.requests
    items = [
        ("requests", totals["total"]),
        ("allowed", totals["allow"]),
        ("denied", totals["deny"]),
        ("errors", totals["error"]),
        ("gateway only", totals["gateway_only"]),
        ("principals", len({c.principal for c in report.access_matrix})),
        ("routes", len({c.route for c in report.access_matrix})),
        ("alerts", len(report.alerts)),
        ("break-glass", len(report.break_glass_uses)),
        ("events stored", report.ledger.events),
    ]
    cards = "".join(
        f'<div class="card">{esc(name)}<b>{esc(value)}</b></div>' for name, value in items
    )
    return f'<div class="cards">{cards}</div>'


def _overview(report: Report) -> str:
    return _section(
        "overview",
        "Overview",
        [
            _cards(report),
            f"<h3>Requests over time by decision (per {esc(report.window.bucket)})</h3>",
            _legend(),
            requests_chart(report.requests_over_time, report.window.bucket),
            "<h3>Access matrix: principal \u00d7 route</h3>",
            access_matrix(report.access_matrix),
            "<h3>Decisions by reason</h3>",
            _records(
                report.reasons,
                [("outcome", "outcome"), ("reasons", "reasons"), ("decisions", "count")],
                empty="No decisions in this window.",
                numeric=["count"],
            ),
        ],
    )


def _alerts(report: Report) -> str:
    if not report.alerts:
        return '<p class="muted">No alerts.</p>'
    items = "".join(
        f'<li><span class="sev-{esc(a.severity)}">{esc(a.severity)}</span> '
        f"<b>{esc(a.kind)}</b>: {esc(a.summary)}</li>"
        for a in report.alerts
    )
    return f"<ul>{items}</ul>"


WHO_WHERE: Columns = [("principal", "principal"), ("method", "method"), ("path", "path")]
SOURCE: Columns = [("source ip", "source_ip"), ("user agent", "user_agent")]


def _security(report: Report) -> str:
    top = report.top_denies
    bars = [(f"{d.reason}: {d.principal} on {d.route}", d.requests) for d in top[:15]]
    return _section(
        "security",
        "Security",
        [
            "<h3>Alerts</h3>",
            _alerts(report),
            "<h3>Top denies with reasons</h3>",
            bar_chart("Top denies", bars, COLOURS["deny"]),
            _records(
                top,
                [
                    ("reason", "reason"),
                    ("principal", "principal"),
                    ("route", "route"),
                    ("requests", "requests"),
                    ("first", "first_seen"),
                    ("last", "last_seen"),
                ],
                empty="No denies in this window.",
                numeric=["requests"],
            ),
            "<h3>Recent denies</h3>",
            _capped_note(len(report.recent_denies), "recent_denies.csv"),
            _records(
                report.recent_denies,
                [
                    ("time", "time"),
                    *WHO_WHERE,
                    *SOURCE,
                    ("reasons", "reasons"),
                    ("detail", "detail"),
                    ("request id", "request_id"),
                ],
                empty="No denies in this window.",
            ),
            "<h3>Break-glass uses</h3>",
            _records(
                report.break_glass_uses,
                [
                    ("time", "time"),
                    *WHO_WHERE,
                    ("decision", "decision"),
                    ("status", "status"),
                    ("justification", "justification"),
                    ("request id", "request_id"),
                ],
                empty="No break-glass use in this window.",
            ),
            "<h3>Sensitive routes accessed</h3>",
            _records(
                report.sensitive_access,
                [
                    ("principal", "principal"),
                    ("route", "route"),
                    ("allowed", "count"),
                    ("first", "first_seen"),
                    ("last", "last_seen"),
                ],
                empty="No sensitive route was accessed in this window.",
                numeric=["count"],
            ),
            "<h3>New source addresses and user agents</h3>",
            _records(
                report.new_sources,
                [
                    ("principal", "principal"),
                    ("new", "kind"),
                    ("value", "value"),
                    ("first seen", "first_seen"),
                    ("requests", "requests"),
                    ("new principal", "principal_is_new"),
                ],
                empty="No principal used a new source in this window.",
                numeric=["requests"],
            ),
            "<h3>Anomalies</h3>",
            _records(
                report.anomalies,
                [("time", "time"), *WHO_WHERE, *SOURCE, ("flags", "anomalies")],
                empty="No event carried an anomaly flag in this window.",
            ),
        ],
    )


def _by(counts: Mapping[str, int], header: str, *, empty: str) -> str:
    """A two-column table of ``{name: count}``."""
    return _table((header, "events"), list(counts.items()), empty=empty, numeric=(1,))


def _sessions(report: Report) -> str:
    sessions = report.browser_sessions
    items = [
        ("sign-ins", sessions.sign_ins),
        ("failed sign-ins", sum(sessions.failed_sign_ins.values())),
        ("refreshes", sessions.refreshes),
        ("failed refreshes", sum(sessions.failed_refreshes.values())),
        ("sign-outs", sessions.sign_outs),
        ("revocations", sum(sessions.revocations.values())),
        ("IdP logouts", sessions.idp_logouts),
    ]
    cards = "".join(
        f'<div class="card">{esc(name)}<b>{esc(value)}</b></div>' for name, value in items
    )
    return _section(
        "sessions",
        "Browser sessions",
        [
            f'<div class="cards">{cards}</div>',
            "<h3>Failed sign-ins by reason</h3>",
            _by(sessions.failed_sign_ins, "reason", empty="No sign-in failed in this window."),
            "<h3>Revocations by who revoked</h3>",
            _by(sessions.revocations, "revoked by", empty="No session was revoked in this window."),
            "<h3>Failed refreshes by reason</h3>",
            _by(sessions.failed_refreshes, "reason", empty="No refresh failed in this window."),
            '<p class="muted">From the <code>session</code> events; '
            "<code>gatehouse audit query --named session_story</code> tells one session's "
            "whole story.</p>",
        ],
    )


GRANT_COLUMNS: Columns = [
    ("time", "time"),
    ("action", "action"),
    ("grant", "grant_id"),
    ("requester", "requester"),
    ("by", "actor"),
    ("approver", "approver"),
    ("justification", "justification"),
    ("routes", "routes"),
    ("expires", "expires_at"),
]
_UNSAFE_IN_NAME = re.compile(r"[^A-Za-z0-9._-]")


def report_grant_ids(report: Report) -> list[str]:
    """Every grant the report names (its grant events and the requests made under one)."""
    named = [event.grant_id for event in report.grant_events]
    named += [access.grant_id for access in report.elevated_access]
    return sorted({grant_id for grant_id in named if grant_id})


def evidence_file_name(grant_id: str) -> str:
    """The file a grant's evidence bundle is written to (any id gives a plain, distinct name)."""
    safe = _UNSAFE_IN_NAME.sub("_", grant_id)[:80]
    if safe != grant_id:  # two ids that differ only in what was replaced stay apart
        safe += "-" + hashlib.sha256(grant_id.encode("utf-8", "surrogatepass")).hexdigest()[:12]
    return f"evidence-grant-{safe}.json"


def evidence_command(report: Report, grant_id: str) -> str:
    """The command that writes the evidence bundle of ``grant_id`` over the report's window."""
    window = report.window
    # A refused grant call's id is the client's text: quoted, it stays one argument.
    return (
        f"gatehouse audit evidence --grant {shlex.quote(grant_id)} --from "
        f"{utc_text(window.start)} --to {utc_text(window.end)} --out {evidence_file_name(grant_id)}"
    )


def _evidence_cell(report: Report, grant_id: str | None, links: Mapping[str, str] | None) -> Any:
    """A link to the grant's bundle (relative), else the command that writes one."""
    if not grant_id:
        return None
    if links is not None and grant_id in links:
        href = quote(links[grant_id], safe="/._-")
        return Markup(f'<a href="{esc(href)}">evidence</a>')
    return Markup(f"<code>{esc(evidence_command(report, grant_id))}</code>")


def _compliance(report: Report, evidence: Mapping[str, str] | None = None) -> str:
    ledger = report.ledger
    by_type = ", ".join(f"{kind}: {count:,}" for kind, count in sorted(ledger.by_type.items()))
    return _section(
        "compliance",
        "Compliance",
        [
            "<h3>Controls in force and evidence</h3>",
            _records(
                report.controls,
                [("control", "name"), ("status", "status"), ("evidence", "evidence")],
                empty="No controls could be derived (no events in this window).",
            ),
            "<h3>Policy versions in force</h3>",
            _records(
                report.policy_versions,
                [
                    ("version", "version"),
                    ("checksum", "checksum"),
                    ("decisions", "decisions"),
                    ("first decision", "first_seen"),
                    ("last decision", "last_seen"),
                ],
                empty="No decisions in this window, so no policy version decided anything.",
                numeric=["decisions"],
            ),
            "<h3>Policy changes, grants and break-glass over time</h3>",
            timeline_chart(report),
            "<h3>Policy changes</h3>",
            _records(
                report.policy_changes,
                [
                    ("time", "time"),
                    ("action", "action"),
                    ("from", "from_version"),
                    ("to", "to_version"),
                    ("from checksum", "from_checksum"),
                    ("to checksum", "to_checksum"),
                    ("summary", "summary"),
                    ("operator", "operator"),
                ],
                empty="No policy change in this window.",
            ),
            "<h3>Grant events</h3>",
            _table(
                [header for header, _ in GRANT_COLUMNS] + ["evidence"],
                [
                    [getattr(event, name) for _, name in GRANT_COLUMNS]
                    + [_evidence_cell(report, event.grant_id, evidence)]
                    for event in report.grant_events
                ],
                empty="No grant event in this window.",
            ),
            "<h3>Requests under grants and break-glass</h3>",
            _records(
                report.elevated_access,
                [
                    ("time", "time"),
                    *WHO_WHERE,
                    ("decision", "decision"),
                    ("grant", "grant_id"),
                    ("break-glass", "break_glass"),
                    ("justification", "justification"),
                    ("requested by", "requested_by"),
                    ("approved by", "approved_by"),
                    ("approved", "approved_at"),
                    ("expires", "expires_at"),
                ],
                empty="No request used a grant or break-glass in this window.",
            ),
            "<h3>Ledger coverage</h3>",
            _table(
                ("events in window", "first sequence", "last sequence", "by type"),
                [(ledger.events, ledger.first_sequence, ledger.last_sequence, by_type)],
                empty="",
                numeric=(0, 1, 2),
            ),
            _integrity(report),
        ],
    )


def _integrity(report: Report) -> str:
    """What the ledger verification found for the window (run with the report)."""
    found = report.integrity
    heading = '<h3 id="integrity">Integrity</h3>'
    rerun = (
        f"<p>Run it again with <code>{esc(VERIFY_COMMAND)} --since "
        f"{esc(utc_text(report.window.start))} --until {esc(utc_text(report.window.end))}</code>: "
        "it re-derives the Merkle tree and signed digests from the bucket and names every "
        "finding.</p>"
    )
    if found is None:
        return f"{heading}<p>Not verified with this report.</p>{rerun}"
    if found.error is not None:
        return f'{heading}<p class="notice">Result: not verified: {esc(found.error)}</p>{rerun}'
    checkpoint = "-"
    if found.checkpoint_size is not None:
        checkpoint = f"tree size {found.checkpoint_size:,}, origin {found.checkpoint_origin or '-'}"
    rows = [
        ("result", found.result),
        ("digests checked", f"{found.digests:,}"),
        ("objects, events", f"{found.objects:,} objects, {found.events:,} events"),
        ("tree size", f"{found.tree_size:,}"),
        ("root", found.root or "-"),
        ("newest checkpoint", checkpoint),
        ("cosigned by", ", ".join(found.cosigned_by) or "no trusted witness"),
    ]
    table = _table(("check", "found"), rows, empty="")
    findings = "".join(f"<li>{esc(item)}</li>" for item in found.findings)
    listed = f"<ul>{findings}</ul>" if findings else ""
    return f"{heading}{table}{listed}{rerun}"


ROUTE_COLUMNS: Columns = [
    ("host", "host"),
    ("route", "route"),
    ("requests", "requests"),
    ("allowed", "allowed"),
    ("denied", "denied"),
    ("errors", "errors"),
    ("gateway only", "gateway_only"),
    ("2xx", "status_2xx"),
    ("3xx", "status_3xx"),
    ("4xx", "status_4xx"),
    ("5xx", "status_5xx"),
    ("p50 ms", "latency_p50_ms"),
    ("p95 ms", "latency_p95_ms"),
    ("bytes in", "bytes_in"),
    ("bytes out", "bytes_out"),
]


def _engineering(report: Report) -> str:
    usage = report.route_usage
    return _section(
        "engineering",
        "Engineering: per-route drill-down",
        [
            bar_chart("Requests per route", [(u.route, u.requests) for u in usage[:20]], "#0b57d0"),
            _records(
                usage,
                ROUTE_COLUMNS,
                empty="No route served a request in this window.",
                numeric=[name for _, name in ROUTE_COLUMNS[2:]],
            ),
            '<p class="muted">Status, latency and bytes out are what the client got (API '
            "Gateway's figures when its access-log line is in the trail, else the proxy's); "
            "latency percentiles are approximate, as Athena's approx_percentile.</p>",
        ],
    )


def render_html(report: Report, evidence: Mapping[str, str] | None = None) -> str:
    """The whole page; ``evidence`` links grant ids to their bundles (relative paths)."""
    window = report.window
    cost = report.cost
    scanned = "" if cost.bytes_scanned is None else f", {cost.bytes_scanned:,} bytes scanned"
    dollars = "" if cost.cost_usd is None else f", ${cost.cost_usd:.4f}"
    empty = (
        '<p class="notice">There was no traffic in this window: no request, decision, policy '
        "change or grant event was recorded between these times.</p>"
        if report.empty
        else ""
    )
    title = (
        f"Gatehouse audit report: {report.stage}, "
        f"{utc_text(window.start)} to {utc_text(window.end)}"
    )
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        f'<meta http-equiv="Content-Security-Policy" content="{esc(CSP)}">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{esc(title)}</title><style>{STYLE}</style></head><body>"
        "<header>"
        f"<h1>Gatehouse audit report — stage {esc(report.stage)}</h1>"
        f'<p class="meta">Window {esc(window.start)} (inclusive) to {esc(window.end)} '
        f"(exclusive), UTC. Generated {esc(report.generated_at)} with the {esc(cost.engine)} "
        f"engine ({esc(cost.queries)} queries{esc(scanned)}{esc(dollars)}).</p>"
        '<nav><a href="#overview">Overview</a><a href="#security">Security</a>'
        '<a href="#sessions">Browser sessions</a>'
        '<a href="#compliance">Compliance</a><a href="#engineering">Engineering</a></nav>'
        f"{empty}</header><main>"
        f"{_overview(report)}{_security(report)}{_sessions(report)}{_compliance(report, evidence)}"
        f"{_engineering(report)}"
        "</main></body></html>\n"
    )


def write_html(report: Report, path: Path, evidence: Mapping[str, str] | None = None) -> Path:
    """Write ``report.html``; its path (lone surrogates, which UTF-8 cannot hold, as U+FFFD)."""
    path.write_text(replace_surrogates(render_html(report, evidence)), encoding="utf-8")
    return path
