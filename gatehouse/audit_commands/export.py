"""``gatehouse audit export``: a window's stored events, one per line, as OCSF or as stored.

It reads the committed ledger objects that can hold events of the window
(those written since the window's start, less a clock skew allowance: an
event is stored after it happens, but a redriven one may be stored much
later), checks each against the SHA-256 the ledger recorded, and writes
every event whose ``event_time`` is in ``[from, to)``, in ledger order:

- ``--format ocsf``: the OCSF record (:mod:`chalicelib.ocsf`), carrying its
  ledger sequence and the tree head it is included under (``docs/ocsf.md``);
- ``--format ndjson``: the stored line itself, byte for byte (what the
  ledger hashes).

Progress goes to stderr only when stderr is a terminal.
"""

from __future__ import annotations

import contextlib
import json
import sys
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

import click

from gatehouse.times import accepted

if TYPE_CHECKING:
    from chalicelib.ledger.records import ObjectRecord
    from gatehouse.cli import CliContext
    from gatehouse.target import Target

# An object written this long before the window's start may still hold its first events
# (the writer's clock and the producers' may differ a little).
CLOCK_SKEW_SECONDS = 300
FORMATS = ("ocsf", "ndjson")


class ObjectAltered(RuntimeError):
    """A stored object is not the one the ledger committed (``audit verify`` says more)."""


def window_objects(target: Target, start: datetime) -> list[ObjectRecord]:
    """The committed objects that can hold events from ``start`` on, in ledger order.

    Raises
    ------
    LedgerUnavailable
        When the ledger's state cannot be read.
    """
    from gatehouse.audit_commands.stage import ledger_state

    earliest = start.timestamp() - CLOCK_SKEW_SECONDS
    return [record for record in ledger_state(target).objects() if record.written_at >= earliest]


def object_lines(s3: Any, bucket: str, record: ObjectRecord) -> list[bytes]:
    """The stored lines of ``record``'s object, by version, checked against its SHA-256.

    Raises
    ------
    ObjectAltered
        When the bytes are not the ones the ledger committed.
    """
    import hashlib

    from chalicelib.ledger.reading import gunzip, split_lines
    from chalicelib.ledger.verify import version_kwargs

    body = s3.get_object(Bucket=bucket, Key=record.key, **version_kwargs(record.version_id))[
        "Body"
    ].read()
    if hashlib.sha256(body).hexdigest() != record.sha256:
        raise ObjectAltered(
            f"{record.key} is not the object the ledger committed: run `gatehouse audit verify`"
        )
    return split_lines(gunzip(body))


def exported_lines(
    target: Target, start: datetime, end: datetime, output_format: str
) -> Iterator[str]:
    """Each exported record of ``[start, end)`` as one line of text (without its newline).

    Raises
    ------
    LedgerUnavailable, ObjectAltered, botocore errors
        When the ledger or an object cannot be read, or an object was altered.
    """
    from chalicelib.ocsf import LedgerPosition
    from chalicelib.ocsf.mapping import to_ocsf_line
    from gatehouse.progress import Progress, count

    s3 = target.client("s3")
    origin = target.ledger_origin
    objects = window_objects(target, start)
    exported = 0
    with Progress("export") as progress:
        for number, record in enumerate(objects, 1):
            progress.update(f"object {count(number)} of {count(len(objects))}, {exported} records")
            for offset, line in enumerate(object_lines(s3, target.audit_bucket, record)):
                if not _in_window(line, start, end):
                    continue
                exported += 1
                if output_format == "ndjson":
                    yield line.decode("utf-8")
                    continue
                position = LedgerPosition(
                    record.first_sequence + offset,
                    origin,
                    record.tree_size,
                    record.root,
                    record.key,
                )
                mapped = to_ocsf_line(line, position)
                yield json.dumps(mapped, ensure_ascii=False, separators=(",", ":"))


def _in_window(line: bytes, start: datetime, end: datetime) -> bool:
    from chalicelib.ocsf.common import epoch_millis

    try:
        moment = epoch_millis(str(json.loads(line)["event_time"])) / 1000
    except (ValueError, KeyError, TypeError):
        return False  # not an event a window can hold; `audit verify` names such lines
    return start.timestamp() <= moment < end.timestamp()


@click.command("export", short_help="a window's stored events as OCSF or NDJSON, one per line")
@click.option(
    "--format",
    "output_format",
    type=click.Choice(FORMATS),
    default="ocsf",
    show_default=True,
    help="ocsf: OCSF 1.7.0 records (docs/ocsf.md); ndjson: the stored lines as they are",
)
@click.option("--from", "start", required=True, help=f"window start: {accepted('--from')}")
@click.option("--to", "end", required=True, help="window end (exclusive), as --from")
@click.option("--out", default="-", show_default=True, help="the file to write (-: stdout)")
@click.pass_obj
def export_command(obj: CliContext, *, output_format: str, start: str, end: str, out: str) -> int:
    """Write every stored event of the window, one per line, in ledger order.

    Exit status: 0 written (an empty window writes nothing); 1 a stored object
    is not what the ledger committed; 2 a window or file that cannot be used;
    3 the stage cannot be reached.
    """
    from botocore.exceptions import BotoCoreError, ClientError

    from chalicelib.ledger.errors import LedgerUnavailable
    from chalicelib.ocsf import NotMappable
    from gatehouse.errors import InputError, NegativeAnswer, Unavailable
    from gatehouse.target import resolve_target
    from gatehouse.times import TimeArgumentError, parse_window

    try:
        begin, finish = parse_window(start, end, start_option="--from", end_option="--to")
    except TimeArgumentError as exc:
        raise InputError(str(exc)) from exc
    assert begin is not None and finish is not None  # both options are required
    target = resolve_target(obj.state_dir)
    try:
        with _opened(out) as stream:
            written = 0
            for text in exported_lines(target, begin, finish, output_format):
                stream.write(text + "\n")
                written += 1
    except OSError as exc:
        raise InputError(f"cannot write {out}: {exc.strerror or exc}") from exc
    except (ObjectAltered, NotMappable) as exc:
        raise NegativeAnswer(str(exc)) from exc
    except (LedgerUnavailable, BotoCoreError, ClientError) as exc:
        raise Unavailable(f"cannot read the audit trail: {exc}") from exc
    if out != "-":
        print(f"{written} {output_format} record(s) written to {out}")
    return 0


def _opened(out: str) -> contextlib.AbstractContextManager[IO[str]]:
    """``out`` opened for text: stdout (left open) for ``-``."""
    if out == "-":
        return contextlib.nullcontext(sys.stdout)
    return Path(out).open("w", encoding="utf-8")
