"""Every command, with no stack, a stale stack, or bad input: one line, a documented status.

The matrix is built from the command tree itself, so a command added later
is in it. Each leaf command runs in-process with its required parameters
filled with values no command accepts, under three stages:

- **missing**: no local stack and no ``GATEHOUSE_*`` settings;
- **stale**: a ``.gatehouse/dev.json`` whose process is gone;
- **unreachable**: a deployed stage's settings pointing at a port nothing listens on.

Whatever the command, it must end with a status of the scheme (1, 2 or 3:
the inputs are wrong or the stage is absent, so never 0), print no
traceback, and say why on its last line of stderr.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import click
import pytest

from gatehouse.cli import main
from tests.unit.test_cli_commands import COMMAND_TREE

# They start servers (the local stack, the demo) rather than act on a stage.
SERVERS = {"gatehouse dev", "gatehouse demo"}
# They act on no stage, and any name and new file will do (alerts list reads a rules file).
STAGELESS = {"gatehouse witness keygen", "gatehouse alerts list"}
LEAVES = sorted(
    path
    for path, command in COMMAND_TREE.items()
    if not isinstance(command, click.Group) and path not in SERVERS | STAGELESS
)


def bogus_args(command: click.Command) -> list[str]:
    """The command's required parameters, each given a value nothing accepts."""
    args: list[str] = []
    for parameter in command.params:
        if isinstance(parameter, click.Argument):
            args += ["no-such-thing"] * (parameter.nargs if parameter.nargs > 0 else 1)
        elif isinstance(parameter, click.Option) and parameter.required:
            args += [parameter.opts[0], "no-such-thing"]
    return args


@pytest.fixture
def no_settings(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    for name in list(os.environ):
        if name.startswith("GATEHOUSE_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.chdir(tmp_path)
    return tmp_path


def stage_dir(kind: str, root: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    state_dir = root / "state"
    state_dir.mkdir()
    if kind == "stale":
        (state_dir / "dev.json").write_text(
            json.dumps(
                {
                    "gateway_url": "http://127.0.0.1:9",
                    "aws_endpoint_url": "http://127.0.0.1:9",
                    "region": "us-east-1",
                    "issuer": "http://127.0.0.1:9/idp",
                    "audience": "gatehouse",
                    "idp_private_key_path": str(root / "missing.pem"),
                    "idp_kid": "k",
                    "idp_alg": "RS256",
                    "backend_url": "http://127.0.0.1:9",
                    "audit_bucket": "b",
                    "state_table": "t",
                    "audit_queue_url": "http://127.0.0.1:9/q",
                    "pid": 2**22 + 12345,  # above Linux's pid_max default: never running
                }
            )
        )
    elif kind == "unreachable":
        for name, value in {
            "GATEHOUSE_AUDIT_BUCKET": "gatehouse-test-audit",
            "GATEHOUSE_STATE_TABLE": "gatehouse-test-state",
            "GATEHOUSE_AUDIT_QUEUE_URL": "http://127.0.0.1:9/123456789012/q",
            "GATEHOUSE_STAGE": "test",
            "GATEHOUSE_AWS_ENDPOINT_URL": "http://127.0.0.1:9",
            "GATEHOUSE_DIGEST_KEY_ID": "alias/gatehouse-test-digest",
            "GATEHOUSE_GATEWAY_URL": "http://127.0.0.1:9",
        }.items():
            monkeypatch.setenv(name, value)
    return state_dir


@pytest.mark.parametrize("stage", ["missing", "stale", "unreachable"])
@pytest.mark.parametrize("path", LEAVES)
def test_every_command_fails_in_one_line_with_a_documented_status(
    path: str,
    stage: str,
    no_settings: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    state_dir = stage_dir(stage, no_settings, monkeypatch)
    words = path.split()[1:]
    args = ["--state-dir", str(state_dir), *words, *bogus_args(COMMAND_TREE[path])]

    status = main(args)

    err = capsys.readouterr().err
    assert "Traceback" not in err, f"{args}: {err}"
    assert status in (1, 2, 3), f"{args} exited {status}: {err}"
    last = err.strip().splitlines()[-1] if err.strip() else ""
    assert last.startswith(("gatehouse:", "Error:", "FAILED", "INVALID")), f"{args}: {err!r}"


def test_a_closed_pipe_ends_quietly() -> None:
    # `gatehouse ... | head -1`: the reader leaves after one line.
    reader = subprocess.Popen(["head", "-c", "1"], stdin=subprocess.PIPE, stdout=subprocess.DEVNULL)
    writer = subprocess.run(
        [sys.executable, "-m", "gatehouse.cli", "audit", "query", "--list"],
        stdout=reader.stdin,
        stderr=subprocess.PIPE,
        timeout=60,
        check=False,
    )
    assert reader.stdin is not None
    reader.stdin.close()
    reader.wait(timeout=10)

    assert "Traceback" not in writer.stderr.decode(), writer.stderr.decode()
    assert writer.returncode == 0


def test_debug_shows_the_traceback_with_the_same_status(
    no_settings: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["--state-dir", str(no_settings / "none"), "audit", "tail"]
    plain = main(args)
    plain_err = capsys.readouterr().err

    debugged = main(["--debug", *args])
    debug_err = capsys.readouterr().err

    assert plain == debugged == 2
    assert "Traceback" not in plain_err
    assert "Traceback (most recent call last)" in debug_err
    assert debug_err.strip().splitlines()[-1] == plain_err.strip()


def test_version_and_bare_help(capsys: pytest.CaptureFixture[str]) -> None:
    from importlib.metadata import version

    assert main(["--version"]) == 0
    assert capsys.readouterr().out.strip() == f"gatehouse {version('gatehouse')}"
    assert main([]) == 0
    assert "Usage: gatehouse" in capsys.readouterr().out
