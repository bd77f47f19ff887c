"""``gatehouse alerts list | test | explain``: the stage's detection rules and their alerts.

``list`` prints the rules (the stage's, or ``--rules FILE``); ``-o json``
prints them as a rules document the functions read
(``GATEHOUSE_DETECTION_RULES``). ``test`` replays the stored events of a
window through the rules, in memory (no AWS writes: no state, no alert), one
ledger object at a time as the writer saw them, and prints what would fire.
``explain`` shows why an alert fired: the rule, its threshold and window, the
events it names, and the query that shows them.

Exit status: 0 done (``test``: nothing would fire); 1 ``test``: something
would fire, ``explain``: no such alert; 2 a rules file, a time or an option
that cannot be used; 3 AWS unavailable.
"""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from gatehouse.errors import InputError, NegativeAnswer, Unavailable
from gatehouse.terminal import visible

if TYPE_CHECKING:
    from chalicelib.detect.alerts import Alert
    from chalicelib.detect.rules import RuleSet
    from gatehouse.cli import CliContext
    from gatehouse.target import Target

_RULES = click.option(
    "--rules",
    "rules_file",
    type=click.Path(path_type=Path, dir_okay=False),
    help="a rules file (YAML or JSON; default: GATEHOUSE_DETECTION_RULES, else the shipped rules)",
)
_OUTPUT = click.option(
    "-o", "--output", type=click.Choice(["table", "json"]), default="table", help="how to print"
)
# Events a replay reads at most: a window that holds more is refused, not cut short.
MAX_REPLAY_EVENTS = 2_000_000


@click.group("alerts")
def alerts() -> None:
    """Detection rules and the alerts they raise (docs/detection.md)."""


def load_rules(rules_file: Path | None) -> RuleSet:
    """The rules of ``--rules``, else of ``GATEHOUSE_DETECTION_RULES``, else the shipped ones.

    Raises
    ------
    InputError
        Listing every problem of the file.
    """
    import os

    from chalicelib.detect.errors import RulesInvalid
    from chalicelib.detect.rules import DEFAULT_RULES_YAML, load_rules_file
    from chalicelib.variables import VARIABLES

    configured = os.environ.get(VARIABLES["DETECTION_RULES"].env, "").strip()
    path = rules_file or (Path(configured) if configured and configured != "off" else None)
    try:
        return load_rules_file(path or DEFAULT_RULES_YAML)
    except RulesInvalid as exc:
        for problem in exc.problems:  # one line each, then the one-line summary
            print(visible(f"{exc.source}: {problem}"), file=sys.stderr)
        raise InputError(
            f"{exc.source} cannot be used ({len(exc.problems)} problem(s) above); fix each and "
            "run `gatehouse alerts list --rules FILE` again"
        ) from exc


@alerts.command("list", short_help="the rules: kind, severity, parameters")
@_RULES
@_OUTPUT
def list_command(rules_file: Path | None, output: str) -> int:
    """Print the rules (``-o json``: a rules document the functions read)."""
    rules = load_rules(rules_file)
    if output == "json":
        print(json.dumps(rules.as_document(), indent=2))
        return 0
    print(f"rules from {rules.source}")
    for rule in rules.rules:
        where = "scheduled" if rule.kind.scheduled else "writer"
        state = "on " if rule.enabled else "off"
        params = ", ".join(
            f"{name}={_param_text(rule.as_document()[name])}"
            for name in (param.name for param in rule.kind.params)
        )
        print(
            visible(
                f"{state} {rule.severity:<8} {rule.name:<24} {rule.kind.name:<22} {where:<9} "
                f"suppress {rule.suppress_seconds}s  {params}"
            )
        )
    return 0


def _param_text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, separators=(",", ":"))


@alerts.command("test", short_help="replay a window's stored events through the rules")
@click.option("--from", "start", required=True, help="window start (inclusive), UTC")
@click.option("--to", "end", required=True, help="window end (exclusive)")
@_RULES
@_OUTPUT
@click.pass_obj
def test_command(
    obj: CliContext, start: str, end: str, rules_file: Path | None, output: str
) -> int:
    """Print what the rules would raise on the window's events (nothing is written)."""
    from gatehouse.target import resolve_target
    from gatehouse.times import parse_window

    begin, finish = parse_window(start, end, start_option="--from", end_option="--to")
    assert begin is not None and finish is not None  # both given
    rules = load_rules(rules_file)
    target = resolve_target(obj.state_dir)
    batches = _stored_batches(target, begin, finish)
    fired = replay(rules, batches, stage=target.stage)
    events = sum(len(batch) for batch in batches)
    if output == "json":
        print(json.dumps([alert.as_json() for alert in fired], indent=2))
    else:
        print(f"{events} event(s) in {len(batches)} object(s), {len(fired)} alert(s) would fire")
        for alert in fired:
            print(visible(alert.line()))
            query = alert.query()
            if query is not None:
                print(visible(f"  evidence: {query['command']}"))
    return 1 if fired else 0


def replay(rules: RuleSet, batches: list[list[dict[str, Any]]], *, stage: str) -> list[Alert]:
    """What ``rules`` raise on ``batches`` (each as the writer saw it), in memory.

    Suppression runs on event time: each batch at its newest event.
    """
    from chalicelib.detect.detector import Detector
    from chalicelib.detect.events import event_epoch
    from chalicelib.detect.state import MemoryState

    clock = [0.0]
    counter = iter(range(1, 1 << 62))
    detector = Detector(
        rules,
        MemoryState(),
        None,
        stage=stage,
        clock=lambda: clock[0],
        new_id=lambda: f"replay-{next(counter)}",
    )
    fired: list[Alert] = []
    for batch in batches:
        times = [moment for moment in map(event_epoch, batch) if moment is not None]
        clock[0] = max(times, default=clock[0])
        fired.extend(detector.run(batch))
    return fired


def _stored_batches(
    target: Target, begin: datetime, finish: datetime
) -> list[list[dict[str, Any]]]:
    """The window's events, one list per ledger object, in ledger order.

    Objects are filed under the hour they were stored, at or after their
    events' time: the hours from the window's start to an hour after its end
    are read, and events outside the window are dropped.
    """
    from chalicelib.audit.reader import read_event_object
    from chalicelib.detect.events import event_epoch
    from chalicelib.ledger.layout import EVENTS_PREFIX

    s3 = target.client("s3")
    paginator = s3.get_paginator("list_objects_v2")
    keys: list[str] = []
    hour = begin.replace(minute=0, second=0, microsecond=0)
    try:
        while hour <= finish + timedelta(hours=1):
            prefix = f"{EVENTS_PREFIX}dt={hour:%Y-%m-%d}/hour={hour:%H}/"
            for page in paginator.paginate(Bucket=target.audit_bucket, Prefix=prefix):
                keys.extend(item["Key"] for item in page.get("Contents", []))
            hour += timedelta(hours=1)
        batches: list[list[dict[str, Any]]] = []
        low, high, total = begin.timestamp(), finish.timestamp(), 0
        for key in sorted(keys, key=_first_sequence):
            events = [
                event
                for event in read_event_object(s3, target.audit_bucket, key)
                if low <= (event_epoch(event) or -1.0) < high
            ]
            total += len(events)
            if total > MAX_REPLAY_EVENTS:
                raise InputError(
                    f"the window holds more than {MAX_REPLAY_EVENTS} events: replay a shorter one"
                )
            if events:
                batches.append(events)
    except (OSError, ValueError) as exc:
        raise Unavailable(f"cannot read the stored events: {exc}") from exc
    return batches


def _first_sequence(key: str) -> int:
    name = key.rsplit("/", 1)[-1]
    head = name.split("-", 1)[0]
    return int(head) if head.isdigit() else -1


@alerts.command("explain", short_help="why an alert fired: rule, threshold, events")
@click.argument(
    "alert_id", help="the alert's id (alert_id in the alert, the event id of its event)"
)
@_RULES
@_OUTPUT
@click.pass_obj
def explain_command(obj: CliContext, alert_id: str, rules_file: Path | None, output: str) -> int:
    """Show the alert ALERT_ID: its rule and threshold, its window and the events it names."""
    from chalicelib.detect.errors import DetectionUnavailable
    from chalicelib.detect.state import ALERT_RECORD_SECONDS, DynamoState
    from gatehouse.target import resolve_target

    target = resolve_target(obj.state_dir)
    try:
        alert = DynamoState(target.client("dynamodb"), target.state_table).alert(alert_id)
    except DetectionUnavailable as exc:
        raise Unavailable(f"cannot read the alert: {exc}") from exc
    if alert is None:
        raise NegativeAnswer(
            f"no alert {alert_id!r} in {target.state_table}: alerts are kept there "
            f"{ALERT_RECORD_SECONDS // 86400} days; an older one is an alert event in the "
            f"ledger (its event_id is the alert id: `gatehouse audit query --named "
            f"events_by_ids --param ids={alert_id} --param from=T --param to=T`)"
        )
    events = _events_named(target, alert)
    rules = load_rules(rules_file)
    rule = rules.get(str(alert.get("rule")))
    if output == "json":
        shown = {"alert": alert, "rule": None if rule is None else rule.as_document()}
        print(json.dumps({**shown, "events": events}, indent=2))
        return 0
    _print_explanation(alert, rule.as_document() if rule else None, events)
    return 0


def _events_named(target: Target, alert: dict[str, Any]) -> list[dict[str, Any]]:
    """The stored events the alert names (read from the window's objects)."""
    ids = set(alert.get("event_ids") or [])
    if not ids:
        return []
    window = alert.get("window") or {}
    begin = datetime.fromisoformat(str(window["from"]).replace("Z", "+00:00")).astimezone(UTC)
    finish = datetime.fromisoformat(str(window["to"]).replace("Z", "+00:00")).astimezone(UTC)
    found = [
        event
        for batch in _stored_batches(target, begin, finish + timedelta(seconds=1))
        for event in batch
        if event.get("event_id") in ids
    ]
    return sorted(found, key=lambda event: (event.get("ledger") or {}).get("sequence", -1))


def _print_explanation(
    alert: dict[str, Any], rule: dict[str, Any] | None, events: list[dict[str, Any]]
) -> None:
    window = alert.get("window") or {}
    lines = [
        f"alert {alert.get('alert_id')} ({alert.get('severity')}), raised {alert.get('raised_at')}",
        f"rule {alert.get('rule')} (kind {alert.get('kind')}): {alert.get('detail')}",
        f"subject {alert.get('subject')}; observed {alert.get('observed')}, "
        f"threshold {alert.get('threshold')}",
        f"window {window.get('from')} .. {window.get('to')} ({window.get('seconds')} s)",
    ]
    if rule is None:
        lines.append("the rule is no longer in the rules (renamed or removed)")
    else:
        lines.append("rule now: " + json.dumps(rule, separators=(",", ":")))
    ids = alert.get("event_ids") or []
    lines.append(f"{len(ids)} event(s) named, {len(events)} found in the ledger:")
    for event in events:
        decision = event.get("decision") or {}
        resource = event.get("resource") or {}
        source = event.get("source") or {}
        lines.append(
            f"  {event.get('event_time')} {event.get('event_id')} {event.get('event_type')} "
            f"{decision.get('outcome', '')} {','.join(decision.get('reasons') or [])} "
            f"{resource.get('method', '')} {resource.get('path', '')} from {source.get('ip')}"
        )
    query = alert.get("query")
    if query:
        lines.append(f"evidence query: {query.get('command')}")
    for line in lines:
        print(visible(line))
