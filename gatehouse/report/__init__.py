"""``gatehouse audit report``: one run over a window, as JSON, CSV and one HTML page.

:func:`collect_report` runs the report's Athena SQL through any engine with
the query contract's ``run(sql, params)`` (the local DuckDB engine or
Athena) and returns a typed :class:`Report`; :func:`write_report` writes
``report.json``, one CSV per table and ``report.html`` into a directory.

Exceptions::

    ValueError
     └── ReportError        a bad window, or a query's answer the report cannot read
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from gatehouse.report.collect import collect_report
from gatehouse.report.errors import ReportError
from gatehouse.report.model import Report, Window, parse_window


@dataclass(frozen=True, slots=True)
class WrittenReport:
    """The files one report run wrote."""

    directory: Path
    json: Path
    html: Path
    csv: list[Path]


def write_report(
    report: Report, directory: Path, evidence: Mapping[str, str] | None = None
) -> WrittenReport:
    """Write ``report.json``, the CSV tables and ``report.html`` into ``directory``.

    ``evidence`` maps grant ids to their evidence bundles (paths relative to
    ``directory``): the grant rows link them, or show the command that writes one.
    """
    from gatehouse.report.render_csv import write_csv
    from gatehouse.report.render_html import write_html
    from gatehouse.report.render_json import write_json

    directory.mkdir(parents=True, exist_ok=True)
    return WrittenReport(
        directory=directory,
        json=write_json(report, directory / "report.json"),
        html=write_html(report, directory / "report.html", evidence),
        csv=write_csv(report, directory),
    )


__all__ = [
    "Report",
    "ReportError",
    "Window",
    "WrittenReport",
    "collect_report",
    "parse_window",
    "write_report",
]
