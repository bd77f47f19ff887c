"""``witness_refused``: a witness refused a checkpoint (``audit/v1/witness/<key id>/refused/``)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from chalicelib.detect.kinds.base import Finding, Probes, RuleKind


def check(params: Mapping[str, Any], probes: Probes, now: float) -> list[Finding]:
    """One finding per published refusal (each alerts once: suppression is per refusal)."""
    return [
        Finding(key, 1, f"a witness refused a checkpoint: s3 object {key}", evidence=(key,))
        for key in probes.witness_refusals()
    ]


KIND = RuleKind(
    name="witness_refused",
    style="scheduled",
    summary="A witness published a refusal of one of the ledger's checkpoints.",
    params=(),
    example={},
    check=check,
    # A refusal stays published for ever: alert once a year at most for each.
    default_suppress_seconds=366 * 86400,
)
