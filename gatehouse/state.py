"""The local stack's state file (``.gatehouse/dev.json``; docs/architecture.md).

Operator commands find a running local stack through it, unless flags or
environment variables point them elsewhere.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

STATE_FILE_NAME = "dev.json"
# What the running local stack's background pollers and gateway have counted
# (runs, errors and the last error of each poller; throttled requests).
STATUS_FILE_NAME = "dev-status.json"
STATE_DIR_VARIABLE = "GATEHOUSE_STATE_DIR"


class NoLocalStack(RuntimeError):
    """No running local stack was found."""


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


def default_state_dir() -> Path:
    """``$GATEHOUSE_STATE_DIR`` or ``./.gatehouse``."""
    return Path(os.environ.get(STATE_DIR_VARIABLE) or ".gatehouse")


def find_state(state_dir: Path | None = None) -> DevState:
    """The running local stack's state."""
    return DevState.read((state_dir or default_state_dir()) / STATE_FILE_NAME)
