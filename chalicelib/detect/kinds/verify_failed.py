"""``verify_failed``: ``gatehouse audit verify --publish-metric`` found something.

Reads the ``Gatehouse/LedgerVerifyFindings`` metric (dimension ``Stage``) the
verification publishes: any value above 0 within ``lookback_seconds`` (a
finding, or a verification that checked no digest) fires.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from chalicelib.detect.kinds.base import Finding, Param, Probes, RuleKind

LOOKBACK = Param(
    "lookback_seconds", "How far back published verifications are read.", "int", 3900, 300, 86400
)


def check(params: Mapping[str, Any], probes: Probes, now: float) -> list[Finding]:
    """One finding when a verification published since the lookback found anything."""
    value = probes.verify_findings(now - params["lookback_seconds"])
    if value is None or value <= 0:
        return []
    return [Finding("ledger", value, f"ledger verification reported {value:g} finding(s)")]


KIND = RuleKind(
    name="verify_failed",
    style="scheduled",
    summary="A ledger verification (`gatehouse audit verify --publish-metric`) failed.",
    params=(LOOKBACK,),
    example={"lookback_seconds": 3900},
    check=check,
    default_suppress_seconds=3600,
)
