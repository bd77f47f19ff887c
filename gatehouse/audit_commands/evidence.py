"""``gatehouse audit evidence|check-evidence``: one file that proves what a question selected.

``evidence`` selects events (by grant, principal, request, or a named query),
proves each in one signed checkpoint and writes the bundle
(:mod:`chalicelib.ledger.evidence`); ``check-evidence`` checks a bundle with
the file alone and the public keys, and says what it proves and what it cannot.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from gatehouse.times import accepted

if TYPE_CHECKING:
    from chalicelib.ledger.evidence import EvidenceCheck, Selection, StoredLine
    from chalicelib.ledger.notes import WitnessKey
    from gatehouse.cli import CliContext
    from gatehouse.report.model import Report
    from gatehouse.target import Target

_FILE = click.Path(path_type=Path, readable=False)


class EvidenceUsageError(ValueError):
    """What the operator asked for cannot be done as asked (exit 2)."""


def witness_keys(vkeys: Sequence[str]) -> list[WitnessKey]:
    """The witness keys of ``vkeys`` (C2SP vkeys), each once.

    Raises
    ------
    EvidenceUsageError
        Naming a vkey that is not a cosigner's key.
    """
    from chalicelib.ledger.notes import NoteError, WitnessKey

    keys: dict[str, WitnessKey] = {}
    for vkey in vkeys:
        try:
            key = WitnessKey.from_vkey(vkey)
        except NoteError as exc:
            raise EvidenceUsageError(f"--witness {vkey!r}: {exc}") from exc
        keys.setdefault(key.vkey(), key)
    return list(keys.values())


def stage_keys(target: Target, extra_witnesses: Sequence[str]) -> dict[str, Any]:
    """The bundle's ``keys``: the stage's public key (JWK, from KMS) and the witnesses known."""
    from chalicelib.aws.signers import KmsSigner
    from gatehouse.audit_commands.stage import digest_key

    jwk = KmsSigner(target.client("kms"), digest_key(target)).jwk()
    known = witness_keys([*target.witness_keys, *extra_witnesses])
    return {"stage": {"jwk": jwk}, "witnesses": [key.vkey() for key in known]}


def query_event_ids(
    target: Target,
    name: str,
    params: dict[str, str],
    window: tuple[str, str],
    engine: str | None = None,
) -> tuple[list[str], str]:
    """The event ids the named query returns (and its SQL), run where ``audit query`` runs it.

    The window fills the query's ``from`` and ``to`` parameters when it
    declares them and they are not given.

    Raises
    ------
    EvidenceUsageError
        When the query returns no ``event_id`` column.
    QueryError
        When it cannot be run.
    """
    from gatehouse.query.command import build_engine
    from gatehouse.query.params import load_named_query

    query = load_named_query(name)
    values = dict(params)
    for param, moment in zip(("from", "to"), window, strict=True):
        if param in query.param_types and param not in values:
            values[param] = moment.replace("T", " ").removesuffix("Z")
    result = build_engine(target, engine, None).run_named(name, values)
    if "event_id" not in result.columns:
        raise EvidenceUsageError(
            f"the query {name} returns no event_id column: its rows cannot be located in "
            "the ledger (choose a query that returns event_id)"
        )
    column = result.columns.index("event_id")
    ids = [str(row[column]) for row in result.rows if row[column] is not None]
    return list(dict.fromkeys(ids)), query.sql


def evidence(
    target: Target,
    selection: Selection,
    *,
    with_range: bool = False,
    witnesses: Sequence[str] = (),
    engine: str | None = None,
) -> dict[str, Any]:
    """The evidence bundle of ``selection`` in ``target``'s ledger.

    Raises
    ------
    NothingSelected, NotYetDigested
        When there is nothing to prove, or not yet under a signed checkpoint.
    EvidenceUsageError
        For a query without an ``event_id`` column, or an unreadable vkey.
    """
    from dataclasses import replace

    from chalicelib.ledger.evidence import EvidenceBuilder
    from gatehouse.audit_commands.stage import ledger_state
    from gatehouse.times import utc_text

    builder = EvidenceBuilder(target.client("s3"), target.audit_bucket, ledger_state(target))
    found: list[StoredLine]
    if selection.offline:
        found = builder.scan(selection)
    else:
        assert selection.query is not None  # a query selection names its query
        ids, sql = query_event_ids(
            target,
            selection.query,
            dict(selection.params),
            (selection.start, selection.end),
            engine,
        )
        selection = replace(selection, sql=sql)
        found = builder.locate(ids)
    from datetime import UTC, datetime

    return builder.build(
        selection,
        found,
        with_range=with_range,
        stage=target.stage,
        keys=stage_keys(target, witnesses),
        created_at=utc_text(datetime.now(UTC)),
    )


def selection_of(
    *,
    grant: str | None,
    principal: str | None,
    request: str | None,
    query: str | None,
    params: Sequence[str],
    start: str,
    end: str,
) -> Selection:
    """The selection the options name (exactly one selector).

    Raises
    ------
    EvidenceUsageError
        For none or several selectors, or --param without --query.
    TimeArgumentError, QueryParamError
        For a window or a parameter that cannot be read.
    """
    from chalicelib.ledger.evidence import QUERY_SELECTOR, Selection
    from gatehouse.query.command import parse_params
    from gatehouse.times import parse_window, utc_text

    given = {
        kind: value
        for kind, value in (
            ("grant", grant),
            ("principal", principal),
            ("request", request),
            (QUERY_SELECTOR, query),
        )
        if value is not None
    }
    if len(given) != 1:
        raise EvidenceUsageError("give exactly one of --grant, --principal, --request, --query")
    if params and query is None:
        raise EvidenceUsageError("--param goes with --query")
    begin, finish = parse_window(start, end, start_option="--from", end_option="--to")
    assert begin is not None and finish is not None  # both options are required
    window = (utc_text(begin), utc_text(finish))
    ((kind, value),) = given.items()
    if kind == QUERY_SELECTOR:
        return Selection(kind, None, *window, query=value, params=parse_params(params))
    return Selection(kind, value, *window)


def grant_bundles(
    target: Target, report: Report, directory: Path, report_directory: Path
) -> dict[str, str]:
    """One bundle per grant of ``report`` written into ``directory``.

    Returns ``{grant id: the bundle's path relative to report_directory}``,
    what :func:`gatehouse.report.write_report` links the grant rows to.

    A grant with nothing to prove (or nothing signed yet) gets no bundle: the
    report shows the command that would write it instead.
    """
    from chalicelib.ledger.evidence import EvidenceError, Selection
    from gatehouse.report.render_html import evidence_file_name, report_grant_ids
    from gatehouse.times import utc_text

    directory.mkdir(parents=True, exist_ok=True)
    window = (utc_text(report.window.start), utc_text(report.window.end))
    written: dict[str, str] = {}
    for grant_id in report_grant_ids(report):
        try:
            bundle = evidence(target, Selection("grant", grant_id, *window))
        except EvidenceError as exc:
            print(f"gatehouse: no evidence for grant {grant_id}: {exc}", file=sys.stderr)
            continue
        path = directory / evidence_file_name(grant_id)
        path.write_text(json.dumps(bundle, indent=2) + "\n")
        written[grant_id] = Path(os.path.relpath(path, report_directory)).as_posix()
    return written


# --- the commands ----------------------------------------------------------------------------


@click.command(
    "evidence",
    short_help="write one self-contained, offline-checkable evidence bundle (JSON)",
)
@click.option("--grant", metavar="ID", help="events naming this grant (elevation or grant)")
@click.option(
    "--principal",
    metavar="P",
    help="events of this principal: its subject, or <issuer>|<subject>",
)
@click.option("--request", metavar="ID", help="events of this request id")
@click.option("--query", metavar="NAME", help="the events a named query returns (event_id)")
@click.option("--param", "params", multiple=True, metavar="K=V", help="a --query parameter")
@click.option("--from", "start", required=True, help=f"window start: {accepted('--from')}")
@click.option("--to", "end", required=True, help="window end (exclusive), as --from")
@click.option("--out", type=_FILE, required=True, help="the bundle file to write")
@click.option(
    "--range",
    "with_range",
    is_flag=True,
    help="also every line between the first and last selected event (proves completeness there)",
)
@click.option("--witness", "witnesses", multiple=True, metavar="VKEY", help="a witness key")
@click.option(
    "--engine",
    type=click.Choice(["athena", "local"]),
    help="where --query runs (default: local on the local stack, athena otherwise)",
)
@click.pass_obj
def evidence_command(
    obj: CliContext,
    *,
    grant: str | None,
    principal: str | None,
    request: str | None,
    query: str | None,
    params: tuple[str, ...],
    start: str,
    end: str,
    out: Path,
    with_range: bool,
    witnesses: tuple[str, ...],
    engine: str | None,
) -> int:
    """Write the events a grant, principal, request or named query selects, each proven.

    Exit status: 0 written; 1 nothing matched, or an event is not under a
    signed checkpoint yet (run `gatehouse audit digest`); 2 refused (options,
    window, a query without event_id); 3 the stage cannot be reached.
    """
    from chalicelib.ledger.errors import LedgerUnavailable
    from chalicelib.ledger.evidence import EvidenceError, spans
    from gatehouse.target import resolve_target
    from gatehouse.terminal import visible

    try:
        selection = selection_of(
            grant=grant,
            principal=principal,
            request=request,
            query=query,
            params=params,
            start=start,
            end=end,
        )
        witness_keys(witnesses)  # an unreadable vkey is refused before any AWS call
        bundle = evidence(
            resolve_target(obj.state_dir),
            selection,
            with_range=with_range,
            witnesses=witnesses,
            engine=engine,
        )
    except EvidenceUsageError as exc:
        print(visible(f"gatehouse: {exc}"), file=sys.stderr)
        return 2
    except EvidenceError as exc:
        print(visible(f"gatehouse: {exc}"), file=sys.stderr)
        return 1
    except LedgerUnavailable as exc:
        print(visible(f"gatehouse: {exc}"), file=sys.stderr)
        return 3
    out.write_text(json.dumps(bundle, indent=2) + "\n")
    positions = [event["leaf_index"] for event in bundle["events"]]
    size = bundle["checkpoint"]["document"]["digest"]["tree"]["size"]
    print(
        f"evidence of {len(positions)} event(s) at position(s) {spans(positions)}, "
        f"under the checkpoint of size {size}, written to {out}"
    )
    return 0


@click.command(
    "check-evidence",
    short_help="check an evidence bundle offline: what it proves and what it cannot",
)
@click.argument("bundle", type=_FILE, help="an evidence bundle, as audit evidence writes it")
@click.option("--public-key", type=_FILE, help="PEM, JWK or JWKS of the stage's key (pinned)")
@click.option("--witness", "witnesses", multiple=True, metavar="VKEY", help="a trusted witness")
@click.option(
    "--require-witnesses",
    type=click.IntRange(min=0),
    default=0,
    metavar="N",
    help="fail unless N pinned (--witness) witnesses cosigned",
)
@click.option("-o", "--output", type=click.Choice(["text", "json"]), default="text", help="output")
def check_evidence_command(
    bundle: Path,
    public_key: Path | None,
    witnesses: tuple[str, ...],
    require_witnesses: int,
    output: str,
) -> int:
    """Check an evidence bundle with the file alone and the public keys (no stage, no AWS).

    Exit status: 0 every check holds; 1 a check fails (each failure named);
    2 the file is not a bundle, or a key given cannot be read.
    """
    from chalicelib.ledger.evidence import NotABundle, check_bundle
    from gatehouse.audit_commands.ledger import UnusableKeyFile, load_public_key
    from gatehouse.terminal import visible

    try:
        document = json.loads(bundle.read_text())
    except ValueError as exc:  # not UTF-8, not JSON
        print(visible(f"gatehouse: {bundle} is not JSON: {exc}"), file=sys.stderr)
        return 2
    try:
        key = load_public_key(public_key.read_bytes()) if public_key is not None else None
        pinned = witness_keys(witnesses)
    except (UnusableKeyFile, EvidenceUsageError) as exc:
        print(visible(f"gatehouse: {exc}"), file=sys.stderr)
        return 2
    try:
        result = check_bundle(
            document, stage_key=key, witness_keys=pinned, require_witnesses=require_witnesses
        )
    except NotABundle as exc:
        print(visible(f"gatehouse: {bundle}: {exc}"), file=sys.stderr)
        return 2
    if output == "json":
        print(json.dumps(result.as_dict(), indent=2))
    else:
        _print_check(result)
    return 0 if result.ok else 1


def _print_check(result: EvidenceCheck) -> None:
    from gatehouse.terminal import visible

    # A bundle is anyone's file: what it says reaches the terminal escaped.
    for failure in result.failures:
        print(visible(f"FAILED: {failure}"))
    for line in result.proves:
        print(visible(f"proves: {line}"))
    for line in result.cannot_prove:
        print(visible(f"cannot prove: {line}"))
    for line in result.unpinned:
        print(visible(f"note: {line}"))
    verdict = "ok" if result.ok else f"FAILED: {len(result.failures)} check(s) do not hold"
    print(verdict)
