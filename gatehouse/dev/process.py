"""``gatehouse dev`` as a separate process, as a user runs it (used by the demo and e2e tests)."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from gatehouse.state import STATE_FILE_NAME, DevState

PROJECT_DIR = Path(__file__).resolve().parents[2]


class StackStartFailed(RuntimeError):
    """``gatehouse dev`` exited or stayed silent before writing its state file."""


@dataclass
class DevProcess:
    """A running ``gatehouse dev`` and where its log and state go."""

    process: subprocess.Popen[bytes]
    state_dir: Path
    log_path: Path

    @property
    def state_file(self) -> Path:
        """The ``dev.json`` this process writes when ready."""
        return self.state_dir / STATE_FILE_NAME

    def log_tail(self, lines: int = 40) -> str:
        """The last lines of the stack's output."""
        try:
            text = self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])

    def wait_for_state(self, timeout_seconds: float) -> DevState:
        """Poll (bounded) until the state file appears.

        Raises
        ------
        StackStartFailed
            When the process exits first or the deadline passes; the message
            carries the log's tail.
        """
        deadline = time.monotonic() + timeout_seconds
        while True:
            if self.state_file.exists():
                return DevState.read(self.state_file)
            code = self.process.poll()
            if code is not None:
                raise StackStartFailed(
                    f"`gatehouse dev` exited {code} before it was ready:\n{self.log_tail()}"
                )
            if time.monotonic() > deadline:
                waited = f"{timeout_seconds:.0f} s"
                raise StackStartFailed(
                    f"`gatehouse dev` was not ready within {waited}:\n{self.log_tail()}"
                )
            time.sleep(0.1)

    def interrupt(self, timeout_seconds: float) -> int | None:
        """Ctrl-C the stack and wait; kill it if it does not stop in time.

        Returns the exit status after the interrupt, or None when it had to be killed.
        """
        if self.process.poll() is not None:
            return self.process.returncode
        self.process.send_signal(signal.SIGINT)
        try:
            return self.process.wait(timeout=timeout_seconds)
        except subprocess.TimeoutExpired:
            self.kill()
            return None

    def kill(self) -> None:
        """Stop the process unconditionally."""
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait()


def start_dev_process(
    state_dir: Path, *dev_arguments: str, environment: Mapping[str, str] | None = None
) -> DevProcess:
    """Start ``gatehouse dev --port 0`` with its output in ``state_dir``."""
    state_dir.mkdir(parents=True, exist_ok=True)
    log_path = state_dir / "gatehouse-dev.log"
    command = [
        sys.executable, "-m", "gatehouse.cli", "--state-dir", str(state_dir),
        "dev", "--port", "0", *dev_arguments,
    ]  # fmt: skip
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            command,
            cwd=PROJECT_DIR,
            env=dict(environment) if environment is not None else None,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # a Ctrl-C at the terminal must not reach it twice
        )
    return DevProcess(process, state_dir, log_path)
