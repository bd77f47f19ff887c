"""Finding the local stack: from a subdirectory, a stale ``dev.json``, a live one, a taken port."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from gatehouse.cli import main
from gatehouse.dev.stack import LocalStack, PortInUse, StackOptions, bind_gateway
from gatehouse.errors import INPUT_ERROR
from gatehouse.state import (
    STATE_FILE_NAME,
    DevState,
    StaleLocalStack,
    default_state_dir,
    discover_state_dir,
    find_state,
    process_is_running,
)


def _write_state(state_dir: Path, pid: int, gateway_url: str = "http://127.0.0.1:8787") -> Path:
    state_dir.mkdir(parents=True, exist_ok=True)
    state = DevState(
        gateway_url=gateway_url,
        aws_endpoint_url="http://127.0.0.1:1",
        region="us-east-1",
        issuer="http://127.0.0.1:2",
        audience="gatehouse",
        idp_private_key_path=str(state_dir / "missing.pem"),
        idp_kid="kid",
        idp_alg="RS256",
        backend_url="http://127.0.0.1:3",
        audit_bucket="bucket",
        state_table="table",
        audit_queue_url="http://127.0.0.1:1/123456789012/queue",
        pid=pid,
    )
    path = state_dir / STATE_FILE_NAME
    state.write(path)
    return path


def _exited_pid() -> int:
    """The pid of a process that has exited and been reaped."""
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A project root (it holds ``.git``) with a running stack's ``.gatehouse/dev.json``."""
    root = tmp_path / "project"
    (root / ".git").mkdir(parents=True)
    _write_state(root / ".gatehouse", os.getpid())
    return root


def test_a_command_run_from_a_nested_directory_finds_the_projects_stack(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    nested = project / "src" / "deep" / "er"
    nested.mkdir(parents=True)
    monkeypatch.chdir(nested)

    assert default_state_dir() == (project / ".gatehouse").resolve()
    assert find_state().gateway_url == "http://127.0.0.1:8787"


def test_the_nearest_state_wins(project: Path) -> None:
    inner = project / "tools"
    _write_state(inner / ".gatehouse", os.getpid(), gateway_url="http://127.0.0.1:9999")
    start = inner / "sub"
    start.mkdir()

    assert discover_state_dir(start) == (inner / ".gatehouse").resolve()


def test_the_search_stops_at_the_projects_root(tmp_path: Path) -> None:
    # A stack above the project (here, in its parent) is another project's.
    _write_state(tmp_path / ".gatehouse", os.getpid())
    root = tmp_path / "project"
    (root / ".git").mkdir(parents=True)
    (root / "sub").mkdir()

    assert discover_state_dir(root / "sub") is None


def test_without_a_state_file_the_default_is_the_current_directorys(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / ".git").mkdir()
    monkeypatch.chdir(tmp_path)

    assert default_state_dir() == Path(".gatehouse")


def test_the_state_dir_variable_wins_over_the_search(
    project: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(project)
    monkeypatch.setenv("GATEHOUSE_STATE_DIR", str(tmp_path / "elsewhere"))

    assert default_state_dir() == tmp_path / "elsewhere"


def test_a_state_file_of_an_exited_process_is_stale(tmp_path: Path) -> None:
    pid = _exited_pid()
    path = _write_state(tmp_path / "state", pid)

    with pytest.raises(StaleLocalStack) as raised:
        find_state(tmp_path / "state")

    assert raised.value.message == (
        f"the local stack (pid {pid}) is not running: start it with `gatehouse dev`, "
        f"or remove {path}"
    )
    assert raised.value.exit_code == INPUT_ERROR


def test_a_running_process_is_running_and_an_exited_one_is_not() -> None:
    assert process_is_running(os.getpid())
    assert not process_is_running(_exited_pid())


def test_an_operator_command_on_a_stale_stack_says_so_in_one_line_and_exits_2(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / ".git").mkdir()
    pid = _exited_pid()
    path = _write_state(tmp_path / ".gatehouse", pid)
    nested = tmp_path / "a" / "b"
    nested.mkdir(parents=True)
    monkeypatch.chdir(nested)

    # Not a connection error later: the stale file is named before any AWS call.
    assert main(["audit", "dlq"]) == 2

    err = capsys.readouterr().err
    assert err == (
        f"gatehouse: the local stack (pid {pid}) is not running: start it with "
        f"`gatehouse dev`, or remove {path.resolve()}\n"
    )


def test_dev_refuses_to_start_over_a_live_stack(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _write_state(tmp_path / "state", os.getpid(), gateway_url="http://127.0.0.1:41234")

    assert main(["--state-dir", str(tmp_path / "state"), "dev", "--port", "0"]) == 2

    err = capsys.readouterr().err
    assert err.startswith("gatehouse: a local stack is already running from ")
    assert f"(pid {os.getpid()}, gateway http://127.0.0.1:41234)" in err
    assert len(err.splitlines()) == 1


def test_dev_with_a_missing_policy_file_is_one_line_and_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "nope.yaml"

    assert main(["--state-dir", str(tmp_path / "state"), "dev", "--policy", str(missing)]) == 2

    err = capsys.readouterr().err
    assert err.startswith(f"gatehouse: --policy {missing}: no such file")
    assert len(err.splitlines()) == 1
    assert not (tmp_path / "state").exists()  # nothing started


@pytest.fixture
def taken_port() -> Iterator[int]:
    """A port something else listens on (127.0.0.1)."""
    holder = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    holder.bind(("127.0.0.1", 0))
    holder.listen()
    try:
        yield int(holder.getsockname()[1])
    finally:
        holder.close()


def test_a_taken_gateway_port_is_named_with_the_fix(taken_port: int) -> None:
    with pytest.raises(PortInUse) as raised:
        bind_gateway(taken_port)

    assert raised.value.message.startswith(
        f"port {taken_port} (the gateway) is in use: pass --port N (0 picks a free port), "
        "or stop what holds it"
    )
    assert raised.value.exit_code == INPUT_ERROR


def test_the_stack_checks_its_gateway_port_before_starting_anything(
    tmp_path: Path, taken_port: int
) -> None:
    stack = LocalStack(StackOptions(state_dir=tmp_path / "state", gateway_port=taken_port))

    with pytest.raises(PortInUse):
        stack.start()

    assert stack.moto is None  # moto was never started
    assert not (tmp_path / "state" / STATE_FILE_NAME).exists()


def test_dev_on_a_taken_port_is_one_line_and_exit_2(
    tmp_path: Path,
    taken_port: int,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # `gatehouse dev` installs Ctrl-C handlers; keep pytest's own.
    monkeypatch.setattr("signal.signal", lambda *_: None)

    status = main(["--state-dir", str(tmp_path / "state"), "dev", "--port", str(taken_port)])

    assert status == 2
    err = capsys.readouterr().err
    assert err.startswith(f"gatehouse: port {taken_port} (the gateway) is in use")
    assert len(err.splitlines()) == 1
