"""The ``gatehouse`` command.

::

    gatehouse dev [--port N] [--authorizer-ttl N] [--policy FILE]   run the local stack
    gatehouse dev token --sub S [--email E] [--groups a,b] [--amr mfa] [--ttl N] [--alg A]
    gatehouse policy validate|diff FILE [--var N=V] [-o ...] | apply FILE --reason T
    gatehouse policy history [-o ...] | rollback VERSION --reason T
    gatehouse policy explain --sub S [--email E] [--groups a,b] [--claims k=v] --method M
                             --host H --path P [--ip IP] [--at TIME] [--version V]
                             (--at evaluates the version in force at TIME)
    gatehouse grant request|show|approve|deny|revoke|list ...     just-in-time access
    gatehouse audit flush | tail [-n N] [--json] | digest | dlq [--redrive]
    gatehouse audit verify [--since T] [--until T] | prove ID | check-proof FILE
    gatehouse audit consistency OLD NEW [--out F] | check-consistency FILE [--public-key K]
    gatehouse audit evidence (--grant ID | --principal P | --request ID | --query NAME)
                             --from T --to T --out F [--range] | check-evidence FILE
    gatehouse witness keygen --name N --out F | run [--bucket B ...] [--every S]
    gatehouse session list [--user S] | revoke ID | revoke --user S | rotate-key
    gatehouse audit query (SQL | --named NAME --param k=v ...) [--engine athena|local]
                          [--format table|json|csv] [--list]
    gatehouse audit report --from T --to T --out DIR [--engine local|athena]
    gatehouse demo                                                   the guided demo

Each command is declared beside its handlers (``gatehouse.dev_commands``,
``gatehouse.policy_commands``, ``gatehouse.grant_commands``,
``gatehouse.audit_commands``, ``gatehouse.query.command``, ``gatehouse.demo``);
this module holds the root group, which imports a command's module only when
that command runs or help lists it.
"""

from __future__ import annotations

import importlib
import sys
from pathlib import Path
from typing import Any, NamedTuple

import click

# Name -> "module:attribute" of its click command, in the order help lists them.
COMMANDS = {
    "dev": "gatehouse.dev_commands:dev",
    "policy": "gatehouse.policy_commands:policy",
    "grant": "gatehouse.grant_commands:grant",
    "session": "gatehouse.session_commands:session",
    "audit": "gatehouse.audit_commands:audit",
    "witness": "gatehouse.witness_commands:witness",
    "alerts": "gatehouse.alerts_commands:alerts",
    "stage": "gatehouse.stage_commands:stage",
    "demo": "gatehouse.demo:demo",
}


class CliContext(NamedTuple):
    """What the root group hands every command as click's context object (``ctx.obj``)."""

    state_dir: Path | None = None


class _Uncaught(Exception):
    """Carries what click's ``main`` would turn into an abort or an exit out of its reach."""

    def __init__(self, original: BaseException) -> None:
        super().__init__(repr(original))
        self.original = original


class _RootGroup(click.Group):
    """Loads each command's module on demand; leaves interrupts and I/O errors to :func:`main`."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        spec = COMMANDS.get(cmd_name)
        if spec is None:
            return None
        module, _, attribute = spec.partition(":")
        command = getattr(importlib.import_module(module), attribute)
        assert isinstance(command, click.Command)
        return command

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (KeyboardInterrupt, EOFError, OSError) as exc:
            # click would print a blank line and abort (or exit 1 on a broken pipe).
            raise _Uncaught(exc) from exc


@click.group(
    "gatehouse",
    cls=_RootGroup,
    invoke_without_command=True,
    context_settings={"help_option_names": ["-h", "--help"]},
)
@click.option(
    "--state-dir",
    type=click.Path(path_type=Path, readable=False),
    help="local stack state directory (default: .gatehouse here or in a parent directory)",
)
@click.option("--debug", is_flag=True, help="on a failure, also print the traceback")
@click.version_option(
    package_name="gatehouse", prog_name="gatehouse", message="%(prog)s %(version)s"
)
@click.pass_context
def root(ctx: click.Context, state_dir: Path | None, debug: bool) -> int | None:
    """Gatehouse operator CLI: the local stack, policies, grants and the audit trail.

    Exit status: 0 done; 1 the answer is negative (a deny, a finding, a proof that
    does not hold, a refused checkpoint, a non-empty dead-letter queue, a diff with
    changes); 2 a usage or input error; 3 a dependency unavailable (AWS, the local
    stack); 130 interrupted.
    """
    ctx.obj = CliContext(state_dir=state_dir)
    if ctx.invoked_subcommand is None:
        click.echo(ctx.get_help())
        return 0
    return None


def main(argv: list[str] | None = None) -> int:
    """Run the command; return the exit status (the scheme is in :mod:`gatehouse.errors`).

    Every failure an operator can cause or meet is one line on stderr,
    ``gatehouse: <what went wrong and what to do>``; ``--debug`` adds the
    traceback. Only a bug in Gatehouse itself propagates.
    """
    from gatehouse.errors import INTERRUPTED

    args = sys.argv[1:] if argv is None else argv
    debug = "--debug" in args[: args.index("--")] if "--" in args else "--debug" in args
    error: BaseException
    try:
        status = root.main(args=args, prog_name="gatehouse", standalone_mode=False)
    except click.ClickException as exc:
        _traceback(exc, debug)
        exc.show()
        return exc.exit_code
    except click.Abort:
        return INTERRUPTED
    except _Uncaught as uncaught:
        error = uncaught.original
    except Exception as exc:
        error = exc
    else:
        return status if isinstance(status, int) else 0
    return _refused(error, debug)


def _traceback(error: BaseException, debug: bool) -> None:
    if debug:
        import traceback

        traceback.print_exception(error, file=sys.stderr)


def _refused(error: BaseException, debug: bool) -> int:
    """The exit status of a known failure (its one line printed); re-raise anything else."""
    from gatehouse.errors import INTERRUPTED, OK
    from gatehouse.terminal import visible

    if isinstance(error, KeyboardInterrupt):
        return INTERRUPTED
    if isinstance(error, BrokenPipeError):
        # The reader went away (`| head`): it has what it wanted. Say nothing more.
        _silence_stdout()
        return OK
    known = _classified(error)
    if known is None:
        raise error
    status, message = known
    _traceback(error, debug)
    # Messages can quote what a client stored (a path, a grant field).
    print(visible(f"gatehouse: {message}"), file=sys.stderr)
    return status


def _silence_stdout() -> None:
    import os

    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass


def _classified(error: BaseException) -> tuple[int, str] | None:
    """``(exit status, message)`` of a failure an operator can meet; None for a bug."""
    from gatehouse.errors import INPUT_ERROR, NEGATIVE, UNAVAILABLE

    if isinstance(
        error, FileNotFoundError | IsADirectoryError | NotADirectoryError | PermissionError
    ):
        # A file or directory an operator named: say which and why.
        return INPUT_ERROR, f"cannot use {error.filename!r}: {error.strerror}"
    aws = _aws_failure(error)
    if aws is not None:
        return UNAVAILABLE, aws
    unavailable, negative, inputs = _known_errors()
    if isinstance(error, unavailable):
        return UNAVAILABLE, str(error)
    if isinstance(error, negative):
        return NEGATIVE, str(error)
    if isinstance(error, inputs):
        return INPUT_ERROR, str(error)
    return None


def _aws_failure(error: BaseException) -> str | None:
    """What to say of an AWS client failure (None: not one)."""
    from botocore import exceptions as aws

    if isinstance(error, aws.NoCredentialsError | aws.PartialCredentialsError):
        return (
            "no AWS credentials: set AWS_PROFILE (or AWS_ACCESS_KEY_ID and "
            "AWS_SECRET_ACCESS_KEY), or start the local stack with `gatehouse dev`"
        )
    if isinstance(error, aws.NoRegionError):
        return "no AWS region: set AWS_REGION (or AWS_DEFAULT_REGION)"
    if isinstance(error, aws.EndpointConnectionError | aws.ConnectTimeoutError):
        return f"cannot reach AWS ({error}): check the network, or that the local stack runs"
    if isinstance(error, aws.ReadTimeoutError):
        return f"AWS did not answer in time ({error}): try again"
    if isinstance(error, aws.ClientError):
        detail = error.response.get("Error", {})
        operation = getattr(error, "operation_name", "a call")
        return (
            f"AWS refused {operation}: {detail.get('Code', '?')}: {detail.get('Message', '')}"
            " (check your credentials' permissions and the stage's settings)"
        )
    if isinstance(error, aws.BotoCoreError):
        return f"AWS client error: {error}"
    return None


def _known_errors() -> tuple[
    tuple[type[Exception], ...], tuple[type[Exception], ...], tuple[type[Exception], ...]
]:
    """The library's exceptions an operator can meet: (unavailable, negative, input)."""
    from chalicelib.audit import AuditError
    from chalicelib.grants import GrantError
    from chalicelib.ledger import LedgerBusy, LedgerCorrupt, LedgerUnavailable
    from chalicelib.ledger.merkle import ProofError
    from chalicelib.policy import PolicyError
    from chalicelib.witness import WitnessError
    from gatehouse.audit_commands import StageIncomplete
    from gatehouse.audit_commands.ledger import UnusableKeyFile
    from gatehouse.grant_commands import GrantCommandError
    from gatehouse.policy_commands import PolicyFileError
    from gatehouse.query.errors import QueryError
    from gatehouse.report import ReportError
    from gatehouse.state import NoLocalStack
    from gatehouse.target import NoTarget
    from gatehouse.times import TimeArgumentError

    unavailable = (LedgerUnavailable, LedgerBusy, AuditError, WitnessError)
    negative = (LedgerCorrupt,)
    inputs = (
        NoLocalStack,
        NoTarget,
        TimeArgumentError,
        StageIncomplete,
        UnusableKeyFile,
        ProofError,
        PolicyError,
        PolicyFileError,
        GrantError,
        GrantCommandError,
        QueryError,
        ReportError,
    )
    return unavailable, negative, inputs


if __name__ == "__main__":
    sys.exit(main())
