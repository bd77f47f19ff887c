"""``gatehouse audit ...``: the audit queue, the stored events, the signed ledger, queries.

- :mod:`.queue`: ``flush`` (run the writer now), ``dlq`` (dead letters, redrive);
- :mod:`.events`: ``tail`` (newest events), ``report`` (a window's report);
- :mod:`.ledger`: ``digest``, ``verify``, ``keys``, ``prove``, ``check-proof``, ``consistency``,
  ``check-consistency``;
- :mod:`.evidence`: ``evidence`` (a bundle of events proven in one checkpoint),
  ``check-evidence`` (offline);
- :mod:`.export`: ``export`` (a window's events as OCSF or NDJSON, one per line);
- :mod:`gatehouse.query.command`: ``query``.
"""

from __future__ import annotations

import click

from gatehouse.audit_commands.events import (
    format_event,
    print_events,
    report,
    report_command,
    tail,
    tail_command,
)
from gatehouse.audit_commands.evidence import check_evidence_command, evidence_command
from gatehouse.audit_commands.export import export_command
from gatehouse.audit_commands.ledger import (
    VERIFY_METRIC_NAME,
    VERIFY_METRIC_NAMESPACE,
    check_consistency_command,
    check_proof_command,
    consistency,
    consistency_command,
    digest_command,
    keys_command,
    load_public_key,
    prove,
    prove_command,
    publish_verify_metric,
    sign_digest,
    verified_nothing,
    verify,
    verify_command,
    verify_metric_value,
)
from gatehouse.audit_commands.queue import (
    DeadLetter,
    NoDeadLetterQueue,
    dead_letters,
    dlq_command,
    flush,
    flush_command,
    redrive,
)
from gatehouse.audit_commands.stage import StageIncomplete
from gatehouse.query.command import query as query_command

__all__ = [
    "VERIFY_METRIC_NAME",
    "VERIFY_METRIC_NAMESPACE",
    "DeadLetter",
    "NoDeadLetterQueue",
    "StageIncomplete",
    "audit",
    "consistency",
    "dead_letters",
    "flush",
    "format_event",
    "load_public_key",
    "print_events",
    "prove",
    "publish_verify_metric",
    "redrive",
    "report",
    "sign_digest",
    "tail",
    "verified_nothing",
    "verify",
    "verify_metric_value",
]


@click.group("audit", short_help="the audit trail")
def audit() -> None:
    """The audit trail: the queue, the stored events, the signed ledger, queries."""


for _command in (
    flush_command,
    tail_command,
    digest_command,
    verify_command,
    keys_command,
    prove_command,
    check_proof_command,
    consistency_command,
    check_consistency_command,
    evidence_command,
    check_evidence_command,
    export_command,
    dlq_command,
    query_command,
    report_command,
):
    audit.add_command(_command)
