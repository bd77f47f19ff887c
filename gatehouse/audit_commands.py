"""``gatehouse audit ...``: flush the queue into the bucket, show the newest events."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from chalicelib.audit import AuditWriter
from chalicelib.audit.reader import newest_events
from gatehouse.dev.event_source import DrainResult, drain_queue

if TYPE_CHECKING:
    from gatehouse.target import Target


def flush(target: Target) -> DrainResult:
    """Run the audit writer now on everything queued."""
    from chalicelib.ledger import LedgerState

    state = LedgerState(target.client("dynamodb"), target.policy_table)
    writer = AuditWriter(target.client("s3"), target.audit_bucket, state)

    def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
        return writer.handle_sqs_batch(event).as_lambda_response()

    return drain_queue(target.client("sqs"), target.audit_queue_url, handler, region=target.region)


def tail(target: Target, count: int) -> list[dict[str, Any]]:
    """The newest ``count`` stored events, oldest first."""
    return newest_events(target.client("s3"), target.audit_bucket, count)


def format_event(event: dict[str, Any]) -> str:
    """One line per event for humans."""
    principal = event.get("principal") or {}
    who = principal.get("email") or principal.get("subject") or "-"
    if event.get("event_type") in ("policy_change", "grant"):
        return _format_admin_event(event, who)
    decision = event.get("decision") or {}
    resource = event.get("resource") or {}
    outcome = event.get("outcome") or {}
    status = outcome.get("status", "")
    reasons = ",".join(decision.get("reasons") or [])
    flags = ",".join(event.get("anomalies") or [])
    request_id = (event.get("request") or {}).get("id", "")
    return (
        f"{event.get('event_time', '')}  {event.get('event_type', ''):8}  "
        f"{decision.get('outcome', ''):5}  {status!s:>3}  {who:22}  "
        f"{resource.get('method', '')} {resource.get('path', '')}  "
        f"[{reasons}]{'  !' + flags if flags else ''}  request={request_id}"
    )


def _format_admin_event(event: dict[str, Any], who: str) -> str:
    operator = (event.get("aws") or {}).get("caller_arn") or "-"
    if event["event_type"] == "policy_change":
        change = event.get("policy_change") or {}
        what = (
            f"{change.get('action', '')} v{change.get('from_version') or 0} -> "
            f"v{change.get('to_version')}"
        )
    else:
        grant = event.get("grant") or {}
        what = f"{grant.get('action', '')} {grant.get('grant_id', '')}"
    return (
        f"{event.get('event_time', '')}  {event['event_type']:8}  {what}  "
        f"by {who if who != '-' else operator}"
    )


def print_events(events: list[dict[str, Any]], *, as_json: bool) -> None:
    """Print events as NDJSON or as one line each."""
    for event in events:
        print(json.dumps(event, sort_keys=True) if as_json else format_event(event))
