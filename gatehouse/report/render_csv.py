"""The report as CSV files, one per table, safe to open in a spreadsheet.

Cell values come from audit events and so from clients. A spreadsheet runs a
cell that starts with ``=``, ``+``, ``-`` or ``@`` (and, in some, a tab or
carriage return) as a formula: ``=HYPERLINK(...)`` in a User-Agent would
become a live link in an auditor's workbook. Spreadsheets also skip leading
blanks and quotes before looking (`` =1+1``, ``"=1+1``, ``\u3000=1+1``) and
some read the full-width U+FF1D, U+FF0B, U+FF0D, U+FF20 as ``=+-@``. Such text cells get a
leading apostrophe, which spreadsheets show as text. Numbers are written as
numbers. Text is written as UTF-8 with lone surrogates (which UTF-8 cannot
hold) replaced by U+FFFD, so a hostile value cannot stop a file half-written.
"""

from __future__ import annotations

import csv
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

from gatehouse.query.text import replace_surrogates
from gatehouse.report import model
from gatehouse.report.model import Report, as_plain

FORMULA_TRIGGERS = ("=", "+", "-", "@", "\t", "\r")
# Characters that may stand before a formula character and still let it run.
_LEADING = " \t\r\n\u3000\"'"
_FORMULA_CHARACTERS = frozenset("=+-@\uff1d\uff0b\uff0d\uff20")

Table = tuple[Sequence[str], Iterable[Sequence[Any]]]


def defuse(value: Any) -> Any:
    """``value`` as a CSV cell: text that a spreadsheet would evaluate is made inert."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return value
    text = replace_surrogates(str(value))
    stripped = text.lstrip(_LEADING)
    if text.startswith(FORMULA_TRIGGERS) or (stripped and stripped[0] in _FORMULA_CHARACTERS):
        return "'" + text
    return text


def write_table(path: Path, header: Sequence[str], rows: Iterable[Sequence[Any]]) -> None:
    """Write one CSV file (RFC 4180 quoting, ``\\r\\n`` line ends), every cell defused."""
    with path.open("w", newline="", encoding="utf-8", errors="replace") as stream:
        writer = csv.writer(stream)
        writer.writerow([defuse(name) for name in header])
        for row in rows:
            writer.writerow([defuse(as_plain(cell)) for cell in row])


def _records(items: Sequence[Any], names: Sequence[str]) -> Table:
    return names, ([getattr(item, name) for name in names] for item in items)


def _requests(report: Report) -> Table:
    header = ("bucket_start", "allow", "deny", "error", "gateway_only", "total")
    rows = (
        [b.start, b.allow, b.deny, b.error, b.gateway_only, b.total]
        for b in report.requests_over_time
    )
    return header, rows


def _session_counts(report: Report) -> Table:
    names = tuple(model.SessionCount.__dataclass_fields__)
    return _records(report.browser_sessions.counts, names)


def _plain(attribute: str, kind: type) -> Callable[[Report], Table]:
    names = tuple(kind.__dataclass_fields__)  # type: ignore[attr-defined]
    return lambda report: _records(getattr(report, attribute), names)


# File name -> the function that lays out its table.
TABLES: dict[str, Callable[[Report], Table]] = {
    "requests_over_time.csv": _requests,
    "access_matrix.csv": _plain("access_matrix", model.MatrixCell),
    "decision_reasons.csv": _plain("reasons", model.ReasonCount),
    "top_denies.csv": _plain("top_denies", model.DenyGroup),
    "recent_denies.csv": _plain("recent_denies", model.DenyEvent),
    "policy_versions.csv": _plain("policy_versions", model.PolicyVersionInForce),
    "policy_changes.csv": _plain("policy_changes", model.PolicyChange),
    "grant_events.csv": _plain("grant_events", model.GrantEvent),
    "grants_and_break_glass.csv": _plain("elevated_access", model.ElevatedAccess),
    "sensitive_access.csv": _plain("sensitive_access", model.SensitiveAccess),
    "new_sources.csv": _plain("new_sources", model.NewSource),
    "anomalies.csv": _plain("anomalies", model.AnomalyEvent),
    "route_usage.csv": _plain("route_usage", model.RouteUsage),
    "browser_sessions.csv": _session_counts,
    "alerts.csv": _plain("alerts", model.Alert),
}


def write_csv(report: Report, directory: Path) -> list[Path]:
    """Write every table of ``report`` into ``directory``; the paths written."""
    written = []
    for name, layout in TABLES.items():
        header, rows = layout(report)
        path = directory / name
        write_table(path, header, rows)
        written.append(path)
    return written
