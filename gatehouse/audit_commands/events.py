"""``gatehouse audit tail`` and ``gatehouse audit report``: the stored events, read back.

``tail`` prints the newest stored events that pass its filters (principal,
decision, route, a start time); ``tail --follow`` then keeps printing new
ones as the writer stores them: every :data:`POLL_SECONDS` it lists the
newest hour partition (and any newer), reads the objects it has not read
yet, and prints their events in ledger-sequence order. An object is written
once, so reading each key once prints each event once.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from chalicelib.audit.reader import list_event_objects, newest_events, read_event_object
from chalicelib.ledger.layout import EVENTS_PREFIX
from gatehouse.times import accepted

if TYPE_CHECKING:
    from gatehouse.cli import CliContext
    from gatehouse.report import Window, WrittenReport
    from gatehouse.report.model import Integrity
    from gatehouse.target import Target

# How often ``tail --follow`` looks for new objects.
POLL_SECONDS = 1.0
# How many day partitions ``tail`` reads back when no --since says otherwise.
TAIL_DAYS = 2


@dataclass(frozen=True, slots=True)
class EventFilter:
    """Which stored events ``tail`` prints (every given criterion must hold).

    ``principal`` matches the principal's email (any case) or subject
    (exactly); ``decision`` the decision's outcome (so only decision events
    pass it); ``route`` the route id the event was decided under
    (``resource.route_id``); ``since`` the event's time (inclusive).
    """

    principal: str | None = None
    decision: str | None = None
    route: str | None = None
    since: datetime | None = None

    def __call__(self, event: dict[str, Any]) -> bool:
        return (
            self._principal_matches(event)
            and (
                self.decision is None or _section(event, "decision").get("outcome") == self.decision
            )
            and (self.route is None or _section(event, "resource").get("route_id") == self.route)
            and (self.since is None or _event_moment(event) >= self.since)
        )

    def _principal_matches(self, event: dict[str, Any]) -> bool:
        if self.principal is None:
            return True
        principal = _section(event, "principal")
        email = principal.get("email")
        return principal.get("subject") == self.principal or (
            isinstance(email, str) and email.casefold() == self.principal.casefold()
        )


def _section(event: dict[str, Any], name: str) -> dict[str, Any]:
    section = event.get(name)
    return section if isinstance(section, dict) else {}


def _event_moment(event: dict[str, Any]) -> datetime:
    """The event's time (the epoch's start when it has none a reader can use)."""
    text = event.get("event_time")
    try:
        moment = datetime.fromisoformat(str(text).replace("Z", "+00:00"))
    except ValueError:
        return datetime.min.replace(tzinfo=UTC)
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def sequence(event: dict[str, Any]) -> int:
    """The event's ledger sequence (-1 when the stored line has none)."""
    value = _section(event, "ledger").get("sequence")
    return value if isinstance(value, int) else -1


def tail(target: Target, count: int, matches: EventFilter | None = None) -> list[dict[str, Any]]:
    """The newest ``count`` stored events that pass ``matches``, oldest first."""
    if matches is None or matches == EventFilter():
        return newest_events(target.client("s3"), target.audit_bucket, count)
    return TailReader(target.client("s3"), target.audit_bucket).newest(count, matches)


class TailReader:
    """Reads stored events back, newest objects first, and then what is stored after them.

    Parameters
    ----------
    s3, bucket:
        A client that can list and read the audit bucket, and the bucket.
    now:
        The clock (tests give their own).
    """

    def __init__(
        self, s3: Any, bucket: str, *, now: Callable[[], datetime] = lambda: datetime.now(UTC)
    ) -> None:
        self._s3 = s3
        self._bucket = bucket
        self._now = now
        self._read: set[str] = set()
        self._newest_key = ""

    def newest(self, count: int, matches: EventFilter) -> list[dict[str, Any]]:
        """Up to ``count`` of the newest events that pass ``matches``, in sequence order.

        Every key listed is remembered as read: :meth:`new_events` returns
        only what is stored afterwards.
        """
        found: list[dict[str, Any]] = []
        now = self._now()
        days = TAIL_DAYS
        if matches.since is not None:
            days = max(1, (now.date() - matches.since.date()).days + 1)
        keys = list_event_objects(self._s3, self._bucket, days=days, now=now.timestamp())
        self._read.update(keys)
        self._newest_key = max(keys, default="")
        for key in keys:  # newest first
            if len(found) >= count or _before(key, matches.since):
                break
            found.extend(
                event for event in read_event_object(self._s3, self._bucket, key) if matches(event)
            )
        found.sort(key=sequence)
        return found[-count:] if count > 0 else []

    def new_events(self) -> list[dict[str, Any]]:
        """Every event stored since the last call (or :meth:`newest`), in sequence order."""
        fresh: list[dict[str, Any]] = []
        for key in self._keys_since_newest():
            if key in self._read:
                continue
            self._read.add(key)
            fresh.extend(read_event_object(self._s3, self._bucket, key))
        fresh.sort(key=sequence)
        return fresh

    def _keys_since_newest(self) -> list[str]:
        """Keys in the newest partition read so far and after it, in key order.

        The writer files an object under the hour it stores it, so new objects
        land there or later; the newest partition is listed again whole, so an
        object stored late there (a slower writer) is found too.
        """
        if self._newest_key:
            partition = self._newest_key.rsplit("/", 1)[0] + "/"
        else:
            partition = EVENTS_PREFIX + self._now().strftime("dt=%Y-%m-%d/")
        keys: list[str] = []
        paginator = self._s3.get_paginator("list_objects_v2")
        start = partition[:-1]  # every key of the partition sorts after its name
        for page in paginator.paginate(Bucket=self._bucket, Prefix=EVENTS_PREFIX, StartAfter=start):
            keys.extend(item["Key"] for item in page.get("Contents", []))
        keys.sort()
        if keys:
            self._newest_key = max(self._newest_key, keys[-1])
        return keys


def _before(key: str, since: datetime | None) -> bool:
    """Whether every event of the object ``key`` was stored before ``since`` (less an hour).

    The key's ``dt=``/``hour=`` partition is when the writer stored it: events
    happen shortly before they are stored, never after.
    """
    if since is None:
        return False
    try:
        day = key.split("dt=", 1)[1][:10]
        hour = int(key.split("hour=", 1)[1][:2])
        stored = datetime.fromisoformat(day).replace(hour=hour, tzinfo=UTC)
    except (IndexError, ValueError):
        return False
    return stored + timedelta(hours=1) < since


def follow_events(
    reader: TailReader,
    matches: EventFilter,
    *,
    poll_seconds: float = POLL_SECONDS,
    sleep: Callable[[float], None] = time.sleep,
) -> Iterator[dict[str, Any]]:
    """Every event stored from now on that passes ``matches``, as it is stored (endless)."""
    while True:
        sleep(poll_seconds)
        yield from (event for event in reader.new_events() if matches(event))


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
    from dataclasses import replace

    from gatehouse.progress import Progress
    from gatehouse.query.command import build_engine
    from gatehouse.report import collect_report, write_report

    query_engine = build_engine(target, engine, cache_dir)
    with Progress("report") as line:
        line.update("running the report's queries")
        collected = collect_report(query_engine, window, stage=target.stage)
        line.update("verifying the ledger for the window")
        collected = replace(collected, integrity=window_integrity(target, window))
    links = None
    if evidence_dir is not None:
        from gatehouse.audit_commands.evidence import grant_bundles

        links = grant_bundles(target, collected, evidence_dir, out)
    return write_report(collected, out, links)


def window_integrity(target: Target, window: Window) -> Integrity:
    """What ``audit verify --since FROM --until TO`` finds, for the report's integrity section.

    A verification that cannot run (no key, AWS unavailable) is reported as
    such in the section, not as a failed report.
    """
    from botocore.exceptions import BotoCoreError, ClientError

    from chalicelib.ledger import LedgerUnavailable
    from gatehouse.audit_commands.ledger import verified_nothing, verify, witness_keys
    from gatehouse.audit_commands.stage import StageIncomplete
    from gatehouse.report.model import Integrity

    try:
        found = verify(
            target,
            since=window.start,
            until=window.end,
            witnesses=witness_keys(target, ()),
            # One process: worker start-up would cost more than a window's objects.
            jobs=1 if target.local else None,
        )
    except (StageIncomplete, LedgerUnavailable, ClientError, BotoCoreError) as exc:
        return Integrity(error=str(exc))
    return Integrity(
        ok=found.ok,
        verified_nothing=verified_nothing(found),
        digests=found.digests,
        objects=found.objects,
        events=found.events,
        tree_size=found.tree_size,
        root=found.root,
        findings=[
            f"{finding.kind}: {finding.where}: {finding.detail}" for finding in found.findings
        ],
        checkpoint_size=found.cosigned_size,
        checkpoint_origin=target.ledger_origin,
        cosigned_by=list(found.cosigned_by),
    )


# --- the commands ----------------------------------------------------------------------------


@click.command("tail", short_help="print the newest stored events (--follow: and new ones)")
@click.option(
    "-n", "count", type=click.IntRange(min=0), default=20, show_default=True, help="how many events"
)
@click.option(
    "-f",
    "--follow",
    is_flag=True,
    help="then keep printing new events as they are stored (Ctrl-C ends)",
)
@click.option(
    "--principal", metavar="P", help="only this principal's events: email (any case) or subject"
)
@click.option(
    "--decision", type=click.Choice(["allow", "deny"]), help="only decisions with this outcome"
)
@click.option(
    "--route", metavar="R", help="only events decided under this route id (resource.route_id)"
)
@click.option("--since", metavar="T", help=f"only events at or after T: {accepted('--since')}")
@click.option(
    "-o",
    "--output",
    type=click.Choice(["table", "json"]),
    default=None,
    help="table: one line per event (default); json: one JSON object per line (NDJSON)",
)
@click.option("--json", "as_json", is_flag=True, help="the same as -o json (kept as an alias)")
@click.pass_obj
def tail_command(
    obj: CliContext,
    *,
    count: int,
    follow: bool,
    principal: str | None,
    decision: str | None,
    route: str | None,
    since: str | None,
    output: str | None,
    as_json: bool,
) -> int:
    """Print the newest stored events, oldest first; --follow keeps printing new ones.

    Ctrl-C ends --follow with exit status 130, as it ends every command.
    """
    from gatehouse.target import resolve_target
    from gatehouse.times import parse_time_argument

    as_json = _json_output(output, as_json)
    start = parse_time_argument(since, "--since") if since is not None else None
    matches = EventFilter(principal=principal, decision=decision, route=route, since=start)
    target = resolve_target(obj.state_dir)
    if not follow:
        print_events(tail(target, count, matches), as_json=as_json)
        return 0
    reader = TailReader(target.client("s3"), target.audit_bucket)
    print_events(reader.newest(count, matches), as_json=as_json)
    sys.stdout.flush()
    for event in follow_events(reader, matches):
        print_events([event], as_json=as_json)
        sys.stdout.flush()
    return 0  # not reached: Ctrl-C ends it (exit status 130)


def _json_output(output: str | None, as_json: bool) -> bool:
    """Whether ``-o``/``--json`` ask for JSON (``--json`` is ``-o json``; they must agree)."""
    if as_json and output not in (None, "json"):
        raise click.UsageError(f"--json and -o {output} contradict each other: give one")
    return as_json or output == "json"


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
