"""The ``gatehouse`` command tree: every command, option and argument says what it is for.

Also: bare ``gatehouse`` and ``--help`` print help and exit 0; a usage error
exits 2 with click's message on stderr; importing the CLI loads no command.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import click
import pytest

from gatehouse.cli import COMMANDS, main, root


def _walk(command: click.Command, path: tuple[str, ...]) -> Iterator[tuple[str, click.Command]]:
    yield " ".join(path), command
    if isinstance(command, click.Group):
        context = click.Context(command, info_name=path[-1])
        for name in command.list_commands(context):
            sub = command.get_command(context, name)
            assert sub is not None, f"{' '.join(path)} lists {name} but cannot load it"
            yield from _walk(sub, (*path, name))


COMMAND_TREE = dict(_walk(root, ("gatehouse",)))


def test_the_tree_holds_every_command() -> None:
    assert set(COMMAND_TREE) >= {
        "gatehouse",
        *(f"gatehouse {name}" for name in COMMANDS),
        "gatehouse dev token",
        *(
            f"gatehouse policy {name}"
            for name in ("validate", "apply", "diff", "history", "rollback", "explain")
        ),
        *(
            f"gatehouse grant {name}"
            for name in ("request", "show", "approve", "deny", "revoke", "list")
        ),
        *(
            f"gatehouse audit {name}"
            for name in (
                "flush",
                "tail",
                "digest",
                "verify",
                "prove",
                "check-proof",
                "dlq",
                "query",
                "report",
            )
        ),
    }


@pytest.mark.parametrize("path", sorted(COMMAND_TREE))
def test_every_command_and_parameter_has_help(path: str) -> None:
    command = COMMAND_TREE[path]
    assert (command.help or "").strip(), f"{path} has no help"
    assert command.get_short_help_str().strip(), f"{path} has no short help"
    for parameter in command.params:
        assert isinstance(parameter, click.Option | click.Argument)
        assert (parameter.help or "").strip(), f"{path}: {parameter.name} has no help"


@pytest.mark.parametrize("path", sorted(COMMAND_TREE))
def test_help_works_for_every_command(path: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main([*path.split()[1:], "--help"]) == 0
    out, err = capsys.readouterr()
    assert out.startswith(f"Usage: {path} ")
    assert err == ""


def test_bare_gatehouse_prints_help_and_exits_0(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == 0
    out, err = capsys.readouterr()
    assert out.startswith("Usage: gatehouse ")
    assert all(f"  {name} " in out for name in COMMANDS)
    assert err == ""


def test_help_lists_each_command(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["-h"]) == 0
    short = capsys.readouterr().out
    assert main(["--help"]) == 0
    assert capsys.readouterr().out == short
    assert "--state-dir" in short


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["nonsense"], "No such command 'nonsense'"),
        (["audit", "tail", "--bogus"], "No such option '--bogus'"),
        (["audit", "tail", "-n", "many"], "'many' is not a valid integer"),
        (["dev", "token"], "Missing option '--sub'"),
        (["dev", "token", "--sub", "a", "--alg", "HS256"], "'HS256' is not one of"),
        (["policy", "validate"], "Missing argument 'FILE'"),
        (["audit", "verify", "--jobs", "0"], "'0' is not a whole number of at least 1"),
        (["audit"], "Usage: gatehouse audit"),
    ],
)
def test_a_usage_error_exits_2_with_the_message_on_stderr(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(argv) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert message in err


def test_a_known_refusal_exits_2_with_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = f"{tmp_path}/no-such-policy.yaml"
    assert main(["policy", "validate", missing]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err.startswith("gatehouse: ")
    assert err.count("\n") == 1


def test_an_interrupt_exits_130_quietly(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from gatehouse import policy_commands

    def interrupted(path: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(policy_commands, "validate", interrupted)
    assert main(["policy", "validate", "x.yaml"]) == 130
    assert capsys.readouterr() == ("", "")


def test_an_unknown_exception_propagates(monkeypatch: pytest.MonkeyPatch) -> None:
    from gatehouse import policy_commands

    def broken(path: object) -> None:
        raise RuntimeError("not one of the known refusals")

    monkeypatch.setattr(policy_commands, "validate", broken)
    with pytest.raises(RuntimeError, match="not one of the known refusals"):
        main(["policy", "validate", "x.yaml"])


def test_importing_the_cli_loads_no_command_module() -> None:
    loaded = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys, gatehouse.cli; print(' '.join(sorted(sys.modules)))",
        ],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.split()
    heavy = ("boto3", "botocore", "chalicelib", "cryptography", "gatehouse.")
    assert [name for name in loaded if name.startswith(heavy)] == ["gatehouse.cli"]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (
            ["audit", "check-proof", "/nonexistent-proof", "--public-key", "/nonexistent-key"],
            "gatehouse: cannot use '/nonexistent-key': No such file or directory",
        ),
        (
            ["audit", "check-proof", "/etc/hostname", "--public-key", "/etc/hostname"],
            "gatehouse: the key file holds no P-256 public key (PEM, JWK or JWKS)",
        ),
        (
            ["--state-dir", "/etc/hostname", "audit", "tail"],
            "gatehouse: cannot use '/etc/hostname/dev.json': Not a directory",
        ),
    ],
)
def test_a_file_an_operator_names_wrongly_is_one_line_and_exit_2(
    argv: list[str],
    message: str,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name in [n for n in os.environ if n.startswith("GATEHOUSE_")]:
        monkeypatch.delenv(name)

    assert main(argv) == 2

    err = capsys.readouterr().err
    assert err.startswith(message), err
    assert len(err.strip().splitlines()) == 1
    assert "Traceback" not in err


def test_a_port_outside_the_tcp_range_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["dev", "--port", "-1"]) == 2
    assert "0<=x<=65535" in capsys.readouterr().err
