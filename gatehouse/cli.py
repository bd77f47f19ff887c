"""The ``gatehouse`` command.

::

    gatehouse dev [--port N] [--authorizer-ttl N] [--policy FILE]   run the local stack
    gatehouse dev token --sub S [--email E] [--groups a,b] [--amr mfa] [--ttl N] [--alg A]
    gatehouse policy validate FILE | apply FILE | diff FILE | history | rollback VERSION
    gatehouse policy explain --sub S [--email E] [--groups a,b] [--claims k=v] --method M
                             --host H --path P [--ip IP] [--at TIME] [--version V]
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
    help="local stack state directory (default .gatehouse)",
)
@click.pass_context
def root(ctx: click.Context, state_dir: Path | None) -> int | None:
    """Gatehouse operator CLI: the local stack, policies, grants and the audit trail."""
    ctx.obj = CliContext(state_dir=state_dir)
    if ctx.invoked_subcommand is None:
        click.echo(ctx.get_help())
        return 0
    return None


def main(argv: list[str] | None = None) -> int:
    """Run the command; return the exit status.

    0 done; 2 a usage error (click's message on stderr) or a known refusal
    (``gatehouse: <message>`` on stderr); 130 interrupted; other statuses as
    each command documents. Unknown exceptions propagate.
    """
    error: BaseException
    try:
        status = root.main(args=argv, prog_name="gatehouse", standalone_mode=False)
    except click.ClickException as exc:
        exc.show()
        return exc.exit_code
    except click.Abort:
        return 130
    except _Uncaught as uncaught:
        error = uncaught.original
    except Exception as exc:
        error = exc
    else:
        return status if isinstance(status, int) else 0
    return _refused(error)


def _refused(error: BaseException) -> int:
    """130 for an interrupt, 2 (and the message) for a known refusal; re-raise anything else."""
    if isinstance(error, KeyboardInterrupt):
        return 130
    if isinstance(
        error, FileNotFoundError | IsADirectoryError | NotADirectoryError | PermissionError
    ):
        # A file or directory an operator named: say which and why, no traceback.
        print(f"gatehouse: cannot use {error.filename!r}: {error.strerror}", file=sys.stderr)
        return 2
    if isinstance(error, _known_errors()):
        from gatehouse.terminal import visible

        # Messages can quote what a client stored (a path, a grant field).
        print(visible(f"gatehouse: {error}"), file=sys.stderr)
        return 2
    raise error


def _known_errors() -> tuple[type[Exception], ...]:
    from chalicelib.audit import AuditError
    from chalicelib.grants import GrantError
    from chalicelib.ledger import LedgerError
    from chalicelib.ledger.merkle import ProofError
    from chalicelib.policy import PolicyError
    from gatehouse.audit_commands import StageIncomplete
    from gatehouse.audit_commands.ledger import UnusableKeyFile
    from gatehouse.grant_commands import GrantCommandError
    from gatehouse.policy_commands import PolicyFileError
    from gatehouse.query.errors import QueryError
    from gatehouse.report import ReportError
    from gatehouse.state import NoLocalStack
    from gatehouse.target import NoTarget
    from gatehouse.times import TimeArgumentError

    return (
        NoLocalStack,
        NoTarget,
        TimeArgumentError,
        StageIncomplete,
        UnusableKeyFile,
        LedgerError,
        ProofError,
        PolicyError,
        PolicyFileError,
        GrantError,
        GrantCommandError,
        AuditError,
        QueryError,
        ReportError,
    )


if __name__ == "__main__":
    sys.exit(main())
