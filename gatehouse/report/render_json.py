"""The report as one JSON document (``report.json``): everything, machine-readable."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from gatehouse.query.text import clean_surrogates
from gatehouse.report.model import VERIFY_COMMAND, Report, as_plain, utc_text

FORMAT_VERSION = 1


def report_document(report: Report) -> dict[str, Any]:
    """The JSON-ready document of ``report``."""
    return {
        "format_version": FORMAT_VERSION,
        "window": {
            "from": utc_text(report.window.start),
            "to": utc_text(report.window.end),
            "bucket": report.window.bucket,
        },
        "generated_at": utc_text(report.generated_at),
        "stage": report.stage,
        "query_cost": as_plain(report.cost),
        "empty": report.empty,
        "summary": {
            "requests": report.requests,
            "principals": len({cell.principal for cell in report.access_matrix}),
            "routes": len({cell.route for cell in report.access_matrix}),
            "alerts": len(report.alerts),
            "break_glass_uses": len(report.break_glass_uses),
        },
        "security": {
            "alerts": as_plain(report.alerts),
            "recent_denies": as_plain(report.recent_denies),
            "top_denies": as_plain(report.top_denies),
            "break_glass": as_plain(report.break_glass_uses),
            "sensitive_access": as_plain(report.sensitive_access),
            "new_sources": as_plain(report.new_sources),
            "anomalies": as_plain(report.anomalies),
        },
        "compliance": {
            "controls": as_plain(report.controls),
            "policy_versions": as_plain(report.policy_versions),
            "policy_changes": as_plain(report.policy_changes),
            "grant_events": as_plain(report.grant_events),
            "elevated_access": as_plain(report.elevated_access),
            "ledger": as_plain(report.ledger),
            "integrity": None
            if report.integrity is None
            else {"result": report.integrity.result, **as_plain(report.integrity)},
            "verify_with": VERIFY_COMMAND,
        },
        "browser_sessions": as_plain(report.browser_sessions),
        "engineering": {"routes": as_plain(report.route_usage)},
        "requests_over_time": as_plain(report.requests_over_time),
        "access_matrix": as_plain(report.access_matrix),
        "decision_reasons": as_plain(report.reasons),
    }


def write_json(report: Report, path: Path) -> Path:
    """Write ``report.json``; its path (lone surrogates as U+FFFD: the JSON is valid UTF-8)."""
    document = clean_surrogates(report_document(report))
    path.write_text(json.dumps(document, indent=2, sort_keys=False) + "\n", encoding="utf-8")
    return path
