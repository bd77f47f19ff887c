"""``gatehouse witness keygen|run``: be a witness of a stage's ledger, from anywhere.

A witness is meant to be run by someone other than the stage's operator
(another team, another account, an auditor's laptop or CI job). ``keygen``
makes its Ed25519 key and prints its public key (a C2SP vkey, what
``gatehouse audit verify --witness`` and ``check-evidence`` take). ``run``
reads the stage's new digests, checks each checkpoint, cosigns what extends
what it cosigned before and refuses what does not (see
:mod:`chalicelib.witness.witness`), remembering its last cosigned checkpoint
in a local JSON file.

Without ``--bucket``, ``run`` witnesses the running local stack with the
stack's own witness key and state (what ``gatehouse dev`` runs every two
seconds anyway).

Exit status: 0 nothing refused; 1 a checkpoint was refused; 2 a usage or
input error (a key or file that cannot be used); 3 a dependency unavailable
(the bucket, KMS).
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

import click

from gatehouse.terminal import visible

if TYPE_CHECKING:
    from chalicelib.witness.witness import RunReport, Witness
    from gatehouse.cli import CliContext


class WitnessCommandError(click.ClickException):
    """A dependency is unavailable (the bucket, KMS): ``gatehouse: <message>``, exit 3."""

    exit_code = 3

    def show(self, file: IO[Any] | None = None) -> None:
        print(visible(f"gatehouse: {self.message}"), file=file or sys.stderr)


class WitnessUsageError(WitnessCommandError):
    """What the operator can fix in the command or its files (exit status 2)."""

    exit_code = 2


_FILE = click.Path(path_type=Path, dir_okay=False)


@click.group("witness")
def witness() -> None:
    """Cosign a stage's ledger checkpoints as an independent witness."""


@witness.command("keygen", short_help="make a witness key; print its public key (vkey)")
@click.option("--name", required=True, help="the witness's name, like example.com/w1")
@click.option("--out", type=_FILE, required=True, help="where the private key goes (PEM, 0600)")
def keygen_command(name: str, out: Path) -> int:
    """Make an Ed25519 witness key in OUT and print its vkey (give that to verifiers)."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat

    from chalicelib.ledger.notes import NoteError, WitnessSigner

    private_key = Ed25519PrivateKey.generate()
    try:
        signer = WitnessSigner(name, private_key)
    except NoteError as exc:
        raise WitnessUsageError(f"--name: {exc}") from exc
    pem = private_key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption())
    try:
        descriptor = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError as exc:
        raise WitnessUsageError(f"{out} exists: a witness key is never overwritten") from exc
    except OSError as exc:
        raise WitnessUsageError(f"cannot write {out}: {exc.strerror}") from exc
    with os.fdopen(descriptor, "wb") as file:
        file.write(pem)
    print(signer.key.vkey())
    return 0


@witness.command("run", short_help="cosign the stage's new checkpoints (or refuse them)")
@click.option("--key", type=_FILE, help="the witness's private key (from keygen)")
@click.option("--name", help="the witness's name (as given to keygen)")
@click.option("--state", type=_FILE, help="where the witness remembers what it cosigned (JSON)")
@click.option("--bucket", help="the stage's audit bucket, where its digests are")
@click.option("--publish-bucket", help="where cosignatures go (default: --bucket)")
@click.option("--origin", help="the stage's checkpoint origin (GATEHOUSE_LEDGER_ORIGIN)")
@click.option("--log-key", type=_FILE, help="the stage's ledger public key (PEM, JWK or JWKS)")
@click.option(
    "--every",
    type=click.FloatRange(min=1.0),
    metavar="SECONDS",
    help="keep running, once every SECONDS (Ctrl-C stops)",
)
@click.option(
    "-o", "--output", type=click.Choice(["table", "json"]), default="table", help="how to print"
)
@click.pass_obj
def run_command(
    obj: CliContext,
    *,
    key: Path | None,
    name: str | None,
    state: Path | None,
    bucket: str | None,
    publish_bucket: str | None,
    origin: str | None,
    log_key: Path | None,
    every: float | None,
    output: str,
) -> int:
    """Judge every checkpoint the stage signed since the last one this witness cosigned."""
    built = (
        _local_witness(obj)
        if bucket is None
        else _witness(key, name, state, bucket, publish_bucket, origin, log_key)
    )
    status = 0
    while True:
        report = _run(built)
        _print(report, output)
        status = max(status, 1 if report.refused else 0)
        if every is None:
            return status
        try:
            time.sleep(every)
        except KeyboardInterrupt:
            return status


def _run(built: Witness) -> RunReport:
    from chalicelib.witness.errors import WitnessError

    try:
        return built.run()
    except WitnessError as exc:
        raise WitnessCommandError(str(exc)) from exc


def _print(report: RunReport, output: str) -> None:
    if output == "json":
        print(json.dumps([outcome.as_dict() for outcome in report.outcomes], indent=2))
        return
    for outcome in report.outcomes:
        print(visible(f"{outcome.verdict:15} {outcome.tree_size:>10}  {outcome.digest_key}"))
        if outcome.detail:
            print(f"{'':27}{visible(outcome.detail)}")
    if not report.outcomes:
        print("nothing new to witness")


def _witness(
    key: Path | None,
    name: str | None,
    state: Path | None,
    bucket: str,
    publish_bucket: str | None,
    origin: str | None,
    log_key: Path | None,
) -> Witness:
    import boto3

    from chalicelib.ledger.notes import NoteError, WitnessSigner
    from chalicelib.witness.settings import load_log_key, load_witness_key
    from chalicelib.witness.state import FileWitnessState
    from chalicelib.witness.witness import WatchedLog, Witness

    missing = [
        flag
        for flag, value in (
            ("--key", key),
            ("--name", name),
            ("--state", state),
            ("--origin", origin),
            ("--log-key", log_key),
        )
        if value is None
    ]
    if missing:
        raise WitnessUsageError(f"with --bucket, also give {', '.join(missing)}")
    assert key and name and state and origin and log_key  # for mypy: checked just above
    try:
        private_key = load_witness_key(key.read_bytes())
    except (OSError, ValueError) as exc:
        raise WitnessUsageError(f"--key {key}: not an Ed25519 private key ({exc})") from exc
    try:
        public_key = load_log_key(log_key.read_text())
    except (OSError, ValueError) as exc:
        raise WitnessUsageError(f"--log-key {log_key}: {exc}") from exc
    try:
        signer = WitnessSigner(name, private_key)
    except NoteError as exc:
        raise WitnessUsageError(f"--name: {exc}") from exc
    return Witness(
        signer,
        FileWitnessState(state),
        boto3.client("s3"),
        [WatchedLog(origin, public_key, bucket, publish_bucket)],
        log=lambda _line: None,
    )


def _local_witness(obj: CliContext) -> Witness:
    """The running local stack's witness (its key, its state file)."""
    from chalicelib.ledger.notes import WitnessKey, WitnessSigner
    from chalicelib.witness.settings import load_witness_key
    from chalicelib.witness.state import FileWitnessState
    from chalicelib.witness.witness import WatchedLog, Witness
    from gatehouse.audit_commands.ledger import ledger_public_key
    from gatehouse.dev.witness import STATE_FILE
    from gatehouse.state import NoLocalStack, default_state_dir, find_state
    from gatehouse.target import resolve_target

    state_dir = obj.state_dir or default_state_dir()
    try:
        dev = find_state(state_dir)
    except NoLocalStack as exc:
        raise WitnessUsageError(f"{exc}; or give --bucket and the witness's files") from exc
    if not dev.witness_keys or not dev.witness_private_key_path:
        raise WitnessUsageError("the local stack runs no witness (restart it)")
    target = resolve_target(state_dir)
    name = WitnessKey.from_vkey(dev.witness_keys[0]).name
    private_key = load_witness_key(Path(dev.witness_private_key_path).read_bytes())
    public_key = ledger_public_key(target)
    return Witness(
        WitnessSigner(name, private_key),
        FileWitnessState(state_dir / STATE_FILE),
        target.client("s3"),
        [WatchedLog(target.ledger_origin, public_key, target.audit_bucket)],
        log=lambda _line: None,
    )
