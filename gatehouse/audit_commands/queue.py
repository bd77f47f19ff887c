"""``gatehouse audit flush`` and ``gatehouse audit dlq``: the audit queue and its dead letters."""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import click

from chalicelib.audit import AuditWriter
from gatehouse.audit_commands.stage import StageIncomplete, ledger_state
from gatehouse.dev.event_source import DrainResult, drain_queue

if TYPE_CHECKING:
    from chalicelib.detect.detector import Detector
    from gatehouse.cli import CliContext
    from gatehouse.target import Target


def flush(
    target: Target,
    progress: Callable[[int], None] | None = None,
    *,
    detector: Detector | None = None,
) -> DrainResult:
    """Run the audit writer now on everything queued (``progress``: events stored so far).

    ``detector`` runs the event rules on each batch committed, as the stage's
    own writer does: what the CLI stores is checked like everything else.
    """
    writer = AuditWriter(
        target.client("s3"),
        target.audit_bucket,
        ledger_state(target),
        after_commit=None if detector is None else detector.after_commit,
    )

    def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
        return writer.handle_sqs_batch(event).as_lambda_response()

    return drain_queue(
        target.client("sqs"),
        target.audit_queue_url,
        handler,
        region=target.region,
        progress=progress,
    )


@dataclass(frozen=True)
class DeadLetter:
    """One message the writer gave up on, and why it could not be stored."""

    message_id: str
    receive_count: int
    sent_at: str
    event_id: str | None
    problem: str
    preview: str
    receipt_handle: str = field(repr=False)

    def as_json(self) -> dict[str, Any]:
        return {
            "message_id": self.message_id,
            "receive_count": self.receive_count,
            "sent_at": self.sent_at,
            "event_id": self.event_id,
            "problem": self.problem,
            "preview": self.preview,
        }


class NoDeadLetterQueue(StageIncomplete):
    """The stage names no dead-letter queue."""


def dead_letters(target: Target, limit: int = 100) -> list[DeadLetter]:
    """Up to ``limit`` messages in the audit DLQ, left there (visible again at once).

    Raises
    ------
    NoDeadLetterQueue
        When the target has no DLQ URL.
    """
    from chalicelib.audit.writer import message_problem

    queue = _dlq_url(target)
    sqs = target.client("sqs")
    found: dict[str, DeadLetter] = {}
    while len(found) < limit:
        received = sqs.receive_message(
            QueueUrl=queue,
            MaxNumberOfMessages=min(10, limit - len(found)),
            VisibilityTimeout=30,  # hidden while listed, so each is seen once
            AttributeNames=["ApproximateReceiveCount", "SentTimestamp"],
        ).get("Messages", [])
        if not received:
            break
        for message in received:
            body = message.get("Body", "")
            event_id, problem = message_problem(body)
            attributes = message.get("Attributes", {})
            sent = int(attributes.get("SentTimestamp", "0")) / 1000
            found[message["MessageId"]] = DeadLetter(
                message_id=message["MessageId"],
                receive_count=int(attributes.get("ApproximateReceiveCount", "0")),
                sent_at=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(sent)),
                event_id=event_id,
                problem=problem or "valid event (the writer could not store it in time)",
                preview=body[:120],
                receipt_handle=message["ReceiptHandle"],
            )
    for letter in found.values():  # listing is not taking: visible again now
        sqs.change_message_visibility(
            QueueUrl=queue, ReceiptHandle=letter.receipt_handle, VisibilityTimeout=0
        )
    return list(found.values())


def redrive(target: Target, limit: int = 100) -> int:
    """Move up to ``limit`` messages from the DLQ back to the audit queue; how many moved.

    Each is sent first and deleted second: a failure in between leaves it in
    both queues, and the ledger stores its event once.
    """
    queue = _dlq_url(target)
    sqs = target.client("sqs")
    moved = 0
    while moved < limit:
        received = sqs.receive_message(
            QueueUrl=queue, MaxNumberOfMessages=min(10, limit - moved), VisibilityTimeout=30
        ).get("Messages", [])
        if not received:
            break
        for message in received:
            sqs.send_message(QueueUrl=target.audit_queue_url, MessageBody=message["Body"])
            sqs.delete_message(QueueUrl=queue, ReceiptHandle=message["ReceiptHandle"])
            moved += 1
    return moved


def _dlq_url(target: Target) -> str:
    if not target.audit_dlq_url:
        raise NoDeadLetterQueue(
            "no dead-letter queue: set GATEHOUSE_AUDIT_DLQ_URL (or start the local stack)"
        )
    return target.audit_dlq_url


def stage_detector(target: Target) -> Detector | None:
    """The stage's event rules with its alert channels, as its writer runs them.

    None when ``GATEHOUSE_DETECTION_RULES`` is ``off``.

    Raises
    ------
    InputError
        When the rules file has problems (each printed).
    """
    import os

    from chalicelib.audit import AuditEmitter, SqsAuditSink
    from chalicelib.detect.alerts import AlertChannels
    from chalicelib.detect.detector import Detector
    from chalicelib.detect.state import DynamoState
    from chalicelib.variables import VARIABLES
    from gatehouse.alerts_commands import load_rules

    if os.environ.get(VARIABLES["DETECTION_RULES"].env, "").strip() == "off":
        return None
    channels = AlertChannels(
        target.client("sns"),
        target.alert_topic_arn,
        target.client("events"),
        target.alert_event_bus,
        AuditEmitter(SqsAuditSink(target.client("sqs"), target.audit_queue_url)),
    )
    return Detector(
        load_rules(None),
        DynamoState(target.client("dynamodb"), target.state_table),
        channels,
        stage=target.stage,
    )


# --- the commands ----------------------------------------------------------------------------


@click.command("flush", short_help="run the audit writer now on everything queued")
@click.pass_obj
def flush_command(obj: CliContext) -> int:
    """Run the audit writer now on everything queued.

    Exit status 1 when some events were left on the queue for retry.
    """
    from gatehouse.progress import Progress, count
    from gatehouse.target import resolve_target

    target = resolve_target(obj.state_dir)
    detector = stage_detector(target)
    # A counter on a terminal; nothing when stderr is piped.
    with Progress("flush") as line:
        result = flush(
            target,
            lambda stored: line.update(f"{count(stored)} events stored"),
            detector=detector,
        )
    print(f"stored {result.delivered} events; {result.failed} left on the queue for retry")
    return 0 if result.failed == 0 else 1


@click.command(
    "dlq",
    short_help="list the messages the writer gave up on (and why); --redrive retries them",
)
@click.option("-n", "limit", type=int, default=100, show_default=True, help="at most this many")
@click.option(
    "-o",
    "--output",
    type=click.Choice(["table", "json", "csv"]),
    default=None,
    help="table: one line per message and a count (default); json: one JSON object per "
    "line (NDJSON); csv: a header and one row per message",
)
@click.option("--json", "as_json", is_flag=True, help="the same as -o json (kept as an alias)")
@click.option("--redrive", "move", is_flag=True, help="move them back to the audit queue")
@click.pass_obj
def dlq_command(
    obj: CliContext, *, limit: int, output: str | None, as_json: bool, move: bool
) -> int:
    """List the messages the writer gave up on, and why; --redrive retries them.

    Exit status 1 while anything waits in the dead-letter queue (when listing).
    """
    from gatehouse.target import resolve_target

    if as_json and output not in (None, "json"):
        raise click.UsageError(f"--json and -o {output} contradict each other: give one")
    fmt = "json" if as_json else output or "table"
    target = resolve_target(obj.state_dir)
    if move:
        moved = redrive(target, limit)
        print(f"moved {moved} messages back to the audit queue")
        return 0
    letters = dead_letters(target, limit)
    _print_letters(letters, fmt)
    # Non-zero while anything waits there: scripts and alarms can tell.
    return 1 if letters else 0


# The columns of ``dlq -o csv`` (the members of ``-o json``).
_LETTER_COLUMNS = ("message_id", "receive_count", "sent_at", "event_id", "problem", "preview")


def _print_letters(letters: list[DeadLetter], fmt: str) -> None:
    """The dead letters as ``fmt`` (table, json or csv); client text shown inert."""
    from gatehouse.terminal import visible

    if fmt == "json":
        for letter in letters:
            print(json.dumps(letter.as_json()))
        return
    if fmt == "csv":
        import csv

        from gatehouse.report.render_csv import defuse

        writer = csv.writer(sys.stdout, lineterminator="\n")
        writer.writerow(_LETTER_COLUMNS)
        for letter in letters:
            row = letter.as_json()
            writer.writerow(
                [
                    defuse(visible(str(row[name]))) if row[name] is not None else ""
                    for name in _LETTER_COLUMNS
                ]
            )
        return
    for letter in letters:
        print(
            visible(
                f"{letter.message_id}  tries={letter.receive_count}  sent={letter.sent_at}  "
                f"event={letter.event_id or '-'}  {letter.problem}"
            )
        )
    print(f"{len(letters)} messages in the dead-letter queue")
