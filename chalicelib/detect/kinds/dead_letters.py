"""``dead_letters``: audit events wait on the dead-letter queue (the writer gave up on them)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from chalicelib.detect.kinds.base import Finding, Param, Probes, RuleKind

THRESHOLD = Param("threshold", "How many waiting messages fire.", "int", 1, 1, 100000)


def check(params: Mapping[str, Any], probes: Probes, now: float) -> list[Finding]:
    """One finding while the dead-letter queue holds ``threshold`` messages or more."""
    waiting = probes.dead_letters()
    if waiting < params["threshold"]:
        return []
    return [
        Finding(
            "audit-dlq",
            waiting,
            f"{waiting} audit event(s) on the dead-letter queue: `gatehouse audit dlq` says why",
        )
    ]


KIND = RuleKind(
    name="dead_letters",
    style="scheduled",
    summary="The audit dead-letter queue is not empty.",
    params=(THRESHOLD,),
    example={"threshold": 1},
    check=check,
    default_suppress_seconds=3600,
)
