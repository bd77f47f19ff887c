"""The closed set of rule kinds: one small module each, registered here.

A kind says how it is evaluated (its *style*) and what an event contributes:

=============  ============================================================
style          evaluated
=============  ============================================================
``count``      matches counted per subject in fixed windows; fires once when
               the count reaches ``threshold`` (the crossing writer fires)
``distinct``   distinct values (source IPs) per subject and window; fires once
               when ``threshold`` different values were seen
``each``       every match is an alert (repeats suppressed per subject)
``first_seen`` a value (IP, user agent) a known subject was never seen with
``scheduled``  not from events: a scheduled check reads AWS (the dead-letter
               queue, the verify metric, witnesses' refusals)
=============  ============================================================
"""

from __future__ import annotations

from chalicelib.detect.kinds import (
    break_glass,
    dead_letters,
    deny_burst_ip,
    deny_burst_principal,
    first_seen_source,
    grant_misuse,
    revoked_session_used,
    sensitive_off_hours,
    token_many_ips,
    verify_failed,
    witness_refused,
)
from chalicelib.detect.kinds.base import Finding, Match, Param, Probes, RuleKind

KINDS: dict[str, RuleKind] = {
    module.KIND.name: module.KIND
    for module in (
        deny_burst_principal,
        deny_burst_ip,
        token_many_ips,
        break_glass,
        sensitive_off_hours,
        first_seen_source,
        grant_misuse,
        revoked_session_used,
        verify_failed,
        dead_letters,
        witness_refused,
    )
}

__all__ = ["KINDS", "Finding", "Match", "Param", "Probes", "RuleKind"]
