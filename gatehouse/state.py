"""The local stack's state file (``.gatehouse/dev.json``; docs/architecture.md).

Operator commands find a running local stack through it, unless flags or
environment variables point them elsewhere. Without either they look for
``.gatehouse/dev.json`` in the current directory and its parents, up to the
filesystem root or the first directory holding ``.git`` (the project's
root), so that a command run from a subdirectory finds the stack.

Exceptions::

    RuntimeError
     └── NoLocalStack          no state file (operator commands may use a deployed stage)
    InputError (gatehouse.errors)
     └── StaleLocalStack       a state file whose process is gone
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from gatehouse.errors import InputError

STATE_DIR_NAME = ".gatehouse"
STATE_FILE_NAME = "dev.json"
# What the running local stack's background pollers and gateway have counted
# (runs, errors and the last error of each poller; throttled requests).
STATUS_FILE_NAME = "dev-status.json"
STATE_DIR_VARIABLE = "GATEHOUSE_STATE_DIR"


class NoLocalStack(RuntimeError):
    """No running local stack was found."""


class StaleLocalStack(InputError):
    """A state file names a process that is no longer running (exit status 2).

    Raised rather than :class:`NoLocalStack`: a leftover ``dev.json`` is a
    mistake to fix, not a reason to act on a deployed stage instead.
    """


@dataclass(frozen=True)
class DevState:
    """What ``gatehouse dev`` started, and where."""

    gateway_url: str
    aws_endpoint_url: str
    region: str
    issuer: str
    audience: str
    idp_private_key_path: str
    idp_kid: str
    idp_alg: str
    backend_url: str
    audit_bucket: str
    state_table: str
    audit_queue_url: str
    audit_dlq_url: str = ""
    digest_key_id: str = ""
    ledger_anchor: str = ""
    trail_bucket: str = ""  # the emulated CloudTrail trail's files (AWSLogs/...)
    account_id: str = ""
    stage: str = "dev"
    idp_keys: dict[str, dict[str, str]] = field(default_factory=dict)
    pid: int = 0
    # The local witness: its vkey (what verify trusts) and its private key's file.
    witness_keys: list[str] = field(default_factory=list)
    witness_private_key_path: str = ""
    alert_topic_arn: str = ""  # where the stack's writer publishes alerts

    def write(self, path: Path) -> None:
        """Write atomically, so a reader never sees half a file."""
        temporary = path.with_suffix(".tmp")
        temporary.write_text(json.dumps(asdict(self), indent=2) + "\n")
        temporary.replace(path)

    @classmethod
    def read(cls, path: Path) -> DevState:
        """Read a state file.

        Raises
        ------
        NoLocalStack
            When the file does not exist or is not a state file.
        """
        try:
            data: dict[str, Any] = json.loads(path.read_text())
            return cls(**data)
        except FileNotFoundError as exc:
            raise NoLocalStack(
                f"no local stack state at {path}: start one with `gatehouse dev`"
            ) from exc
        except (TypeError, ValueError) as exc:
            raise NoLocalStack(f"{path} is not a Gatehouse state file: {exc}") from exc


def write_status(path: Path, status: dict[str, Any]) -> None:
    """Write the local stack's status file atomically."""
    temporary = path.with_suffix(".tmp-status")
    temporary.write_text(json.dumps(status, indent=2, sort_keys=True) + "\n")
    temporary.replace(path)


def read_status(state_dir: Path | None = None) -> dict[str, Any]:
    """The running local stack's status (empty when it has written none)."""
    path = (state_dir or default_state_dir()) / STATUS_FILE_NAME
    try:
        status: dict[str, Any] = json.loads(path.read_text())
    except (FileNotFoundError, ValueError):
        return {}
    return status


def default_state_dir(start: Path | None = None) -> Path:
    """Where the local stack's state is, when no ``--state-dir`` says.

    ``$GATEHOUSE_STATE_DIR`` when set; else the ``.gatehouse`` directory
    :func:`discover_state_dir` finds from ``start`` (default: the current
    directory); else ``./.gatehouse``.
    """
    configured = os.environ.get(STATE_DIR_VARIABLE)
    if configured:
        return Path(configured)
    return discover_state_dir(start) or Path(STATE_DIR_NAME)


def discover_state_dir(start: Path | None = None) -> Path | None:
    """The nearest ``.gatehouse`` directory holding a ``dev.json``, looking upwards.

    Looks in ``start`` (default: the current directory) and each parent in
    turn, and stops after the filesystem root or the first directory that
    holds ``.git``: a stack of another project above this one is not this
    project's.

    Returns
    -------
    Path or None
        The directory (absolute), or None when none was found.
    """
    directory = (start or Path.cwd()).resolve()
    for candidate in (directory, *directory.parents):
        state_dir = candidate / STATE_DIR_NAME
        if (state_dir / STATE_FILE_NAME).is_file():
            return state_dir
        if (candidate / ".git").exists():
            return None
    return None


def find_state(state_dir: Path | None = None) -> DevState:
    """The running local stack's state.

    Raises
    ------
    NoLocalStack
        When there is no state file (or it is not one).
    StaleLocalStack
        When the state file's process is not running any more.
    """
    path = (state_dir or default_state_dir()) / STATE_FILE_NAME
    state = DevState.read(path)
    if state.pid > 0 and not process_is_running(state.pid):
        raise StaleLocalStack(
            f"the local stack (pid {state.pid}) is not running: start it with "
            f"`gatehouse dev`, or remove {path}"
        )
    return state


def process_is_running(pid: int) -> bool:
    """Whether process ``pid`` exists and has not exited (a zombie counts as exited)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # it exists, under another user
    try:
        # Linux: "pid (name) S ..."; Z is a process that exited but was not reaped.
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat.rpartition(")")[2].split()[:1] != ["Z"]
