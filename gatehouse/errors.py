"""The CLI's errors: one root, one exit status per kind of failure.

Every command of ``gatehouse`` exits with one of these statuses, and says
why in one line on stderr (``gatehouse: <what went wrong and what to do>``);
``gatehouse --debug`` adds the traceback::

    0  done, the answer is positive
    1  the answer is negative: a deny, a finding, a proof that does not hold,
       a refused checkpoint, a non-empty dead-letter queue, a diff with changes
    2  a usage or input error: a flag, a file, a time, a policy, no stage found
    3  a dependency is unavailable: AWS (credentials, network, a service's
       refusal), the local stack's services
    130 interrupted (Ctrl-C)

Exceptions::

    CliError (click.ClickException)
     ├── NegativeAnswer     exit 1
     ├── InputError         exit 2
     └── Unavailable        exit 3
"""

from __future__ import annotations

import sys
from typing import IO, Any

import click

OK = 0
NEGATIVE = 1
INPUT_ERROR = 2
UNAVAILABLE = 3
INTERRUPTED = 130


class CliError(click.ClickException):
    """A command failed in a way the operator should read: one line, its exit status."""

    exit_code = INPUT_ERROR

    def show(self, file: IO[Any] | None = None) -> None:
        from gatehouse.terminal import visible

        # Messages can quote what a client stored (a path, a grant field).
        print(visible(f"gatehouse: {self.message}"), file=file or sys.stderr)


class NegativeAnswer(CliError):
    """The command worked and the answer is no (exit status 1)."""

    exit_code = NEGATIVE


class InputError(CliError):
    """What the operator can fix in the command, its files or its settings (exit status 2)."""

    exit_code = INPUT_ERROR


class Unavailable(CliError):
    """AWS or a service the command needs cannot be used now (exit status 3)."""

    exit_code = UNAVAILABLE
