"""``gatehouse audit tail`` and ``gatehouse audit report``: the stored events, read back."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from chalicelib.audit.reader import newest_events

if TYPE_CHECKING:
    from gatehouse.cli import CliContext
    from gatehouse.report import Window, WrittenReport
    from gatehouse.target import Target


def tail(target: Target, count: int) -> list[dict[str, Any]]:
    """The newest ``count`` stored events, oldest first."""
    return newest_events(target.client("s3"), target.audit_bucket, count)


def format_event(event: dict[str, Any]) -> str:
    """One line per event for humans, client text (paths, emails...) shown escaped.

    Paths, subjects and grant ids come from clients: :func:`gatehouse.terminal.visible`
    keeps ESC sequences, ``\\r`` and bidi overrides from rewriting the terminal.
    """
    from gatehouse.terminal import visible

    return visible(_event_line(event))


def _event_line(event: dict[str, Any]) -> str:
    principal = event.get("principal") or {}
    who = principal.get("email") or principal.get("subject") or "-"
    if event.get("event_type") == "session":
        return _session_line(event, who)
    if event.get("event_type") in ("policy_change", "grant", "signing_key"):
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


def _session_line(event: dict[str, Any], who: str) -> str:
    """``signed_in alice@example.com session=... idp=okta`` (with the reason of a failure)."""
    session = event.get("session") or {}
    reason = session.get("reason")
    by = session.get("revoked_by")
    operator = (event.get("aws") or {}).get("caller_arn")
    return (
        f"{event.get('event_time', '')}  session   {session.get('action', ''):14}  {who:22}  "
        f"session={session.get('session_id') or '-'}  idp={session.get('idp') or '-'}"
        + (f"  [{reason}]" if reason else "")
        + (f"  by {operator or by}" if by else "")
    )


def _format_admin_event(event: dict[str, Any], who: str) -> str:
    operator = (event.get("aws") or {}).get("caller_arn") or "-"
    if event["event_type"] == "policy_change":
        change = event.get("policy_change") or {}
        what = (
            f"{change.get('action', '')} v{change.get('from_version') or 0} -> "
            f"v{change.get('to_version')}"
        )
    elif event["event_type"] == "signing_key":
        key = event.get("signing_key") or {}
        what = f"assertion key {key.get('action', '')} {key.get('kid', '')}"
        replaces = key.get("replaces")
        if replaces:
            what += f" (replaces {replaces})"
        return f"{event.get('event_time', '')}  {event['event_type']:8}  {what}"
    else:
        grant = event.get("grant") or {}
        what = f"{grant.get('action', '')} {grant.get('grant_id', '')}"
    return (
        f"{event.get('event_time', '')}  {event['event_type']:8}  {what}  "
        f"by {who if who != '-' else operator}"
    )


def print_events(events: list[dict[str, Any]], *, as_json: bool) -> None:
    """Print events as NDJSON or as one line each (both inert in a terminal).

    ``json.dumps`` escapes every control and non-ASCII character (``ensure_ascii``).
    """
    for event in events:
        print(json.dumps(event, sort_keys=True) if as_json else format_event(event))


def report(
    target: Target,
    window: Window,
    out: Path,
    engine: str | None = None,
    cache_dir: Path | None = None,
    evidence_dir: Path | None = None,
) -> WrittenReport:
    """Run the audit report over ``window`` and write it into ``out`` (JSON, CSV, HTML).

    ``engine`` is ``local`` or ``athena`` (default: local for the local stack);
    ``cache_dir`` is the local engine's cache (default: the one ``audit query`` uses);
    ``evidence_dir``, when given, receives one evidence bundle per grant, which
    the report's grant rows link to.
    """
    from gatehouse.query.command import build_engine
    from gatehouse.report import collect_report, write_report

    query_engine = build_engine(target, engine, cache_dir)
    collected = collect_report(query_engine, window, stage=target.stage)
    links = None
    if evidence_dir is not None:
        from gatehouse.audit_commands.evidence import grant_bundles

        links = grant_bundles(target, collected, evidence_dir, out)
    return write_report(collected, out, links)


# --- the commands ----------------------------------------------------------------------------


@click.command("tail", short_help="print the newest stored events")
@click.option("-n", "count", type=int, default=20, show_default=True, help="how many events")
@click.option("--json", "as_json", is_flag=True, help="one JSON object per line")
@click.pass_obj
def tail_command(obj: CliContext, count: int, as_json: bool) -> int:
    """Print the newest stored events, oldest first."""
    from gatehouse.target import resolve_target

    print_events(tail(resolve_target(obj.state_dir), count), as_json=as_json)
    return 0


@click.command(
    "report",
    short_help="report.json, CSV tables and one self-contained report.html over a window",
)
@click.option(
    "--from",
    "start",
    required=True,
    help="window start (inclusive): ISO 8601 (UTC if no offset) or YYYY-MM-DD",
)
@click.option("--to", "end", required=True, help="window end (exclusive)")
@click.option(
    "--out",
    type=click.Path(path_type=Path, readable=False),
    required=True,
    help="directory to write into",
)
@click.option(
    "--engine",
    type=click.Choice(["local", "athena"]),
    help="default: local when the local stack is running, athena otherwise",
)
@click.option(
    "--evidence",
    "evidence_dir",
    type=click.Path(path_type=Path, file_okay=False, readable=False),
    help="also write one evidence bundle per grant into this directory, linked from the report",
)
@click.pass_obj
def report_command(
    obj: CliContext,
    start: str,
    end: str,
    out: Path,
    engine: str | None,
    evidence_dir: Path | None,
) -> int:
    """Write report.json, CSV tables and one self-contained report.html over a window."""
    from gatehouse.report import parse_window
    from gatehouse.target import resolve_target

    window = parse_window(start, end)  # before any AWS call: a typo fails fast
    written = report(resolve_target(obj.state_dir), window, out, engine, evidence_dir=evidence_dir)
    print(f"report written to {written.directory}: open {written.html}")
    print(f"  {written.json.name} and {len(written.csv)} CSV tables beside it")
    return 0
