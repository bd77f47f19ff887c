"""``gatehouse dev`` (run the local stack) and ``gatehouse dev token``."""

from __future__ import annotations

import signal
import threading
from pathlib import Path
from typing import TYPE_CHECKING

import click
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from gatehouse.errors import InputError
from gatehouse.state import (
    STATE_FILE_NAME,
    DevState,
    NoLocalStack,
    default_state_dir,
    find_state,
    process_is_running,
)

if TYPE_CHECKING:
    from gatehouse.cli import CliContext
    from gatehouse.dev.stack import LocalStack, StackOptions


@click.group(
    "dev",
    invoke_without_command=True,
    short_help="run the local stack in the foreground (Ctrl-C stops it)",
)
@click.option(
    "--port",
    type=click.IntRange(0, 65535),
    default=8787,
    show_default=True,
    help="gateway port (0: any free port)",
)
@click.option(
    "--authorizer-ttl",
    type=int,
    default=0,
    show_default=True,
    help="authorizer result cache TTL, seconds",
)
@click.option(
    "--policy",
    type=click.Path(path_type=Path, readable=False),
    help="initial policy (default: the demo policy)",
)
@click.option("--metrics", is_flag=True, help="print EMF metrics lines")
@click.option("--verbose", is_flag=True, help="also print moto's log line for every AWS call")
@click.pass_context
def dev(
    ctx: click.Context,
    port: int,
    authorizer_ttl: int,
    policy: Path | None,
    metrics: bool,
    verbose: bool,
) -> int | None:
    """Run the local stack in the foreground (Ctrl-C stops it).

    The console shows one line per gateway request (method, path, status,
    decision, reason code, milliseconds) and every background poller's error.
    With a subcommand (dev token), the stack is not started.
    """
    if ctx.invoked_subcommand is not None:
        return None
    obj: CliContext = ctx.obj
    return run(
        state_dir=obj.state_dir,
        port=port,
        authorizer_ttl=authorizer_ttl,
        policy=policy,
        metrics=metrics,
        verbose=verbose,
    )


def run(
    *,
    state_dir: Path | None,
    port: int,
    authorizer_ttl: int,
    policy: Path | None,
    metrics: bool,
    verbose: bool = False,
) -> int:
    """Start the stack, print where everything is, and wait for Ctrl-C.

    Raises
    ------
    InputError
        When ``--policy`` names no file, or a stack already runs from the
        state directory.
    PolicyFileError
        When ``--policy`` names a file that cannot be read or parsed: checked
        before anything starts, so a typo costs no stack start-up.
    PortInUse
        When the gateway's port is taken.
    """
    from gatehouse.dev.console import whole_lines
    from gatehouse.dev.stack import LocalStack, StackOptions, initial_policy

    if policy is not None:
        if not policy.is_file():
            raise InputError(
                f"--policy {policy}: no such file: name a policy file (YAML, or JSON "
                "ending in .json), or leave --policy out for the demo policy"
            )
        # Any URL will do here: only the file's reading is checked now.
        initial_policy(policy, backend_url="http://127.0.0.1")
    state_dir = state_dir or default_state_dir()
    refuse_second_stack(state_dir)
    stopping = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stopping.set())
    options = StackOptions(
        state_dir=state_dir,
        gateway_port=port,
        authorizer_ttl_seconds=authorizer_ttl,
        policy_file=policy,
        metrics=metrics,
        request_console=True,
        verbose=verbose,
    )
    with whole_lines():
        return _serve(LocalStack(options), options, stopping)


def refuse_second_stack(state_dir: Path) -> None:
    """Refuse to start over a live stack's state file (a stale one is replaced).

    Raises
    ------
    InputError
        When ``state_dir``'s ``dev.json`` names a running process.
    """
    path = state_dir / STATE_FILE_NAME
    try:
        live = DevState.read(path)
    except NoLocalStack:
        return  # none, or not a state file: the new stack writes its own
    if live.pid > 0 and process_is_running(live.pid):
        raise InputError(
            f"a local stack is already running from {path} (pid {live.pid}, gateway "
            f"{live.gateway_url}): use it, stop it (Ctrl-C in its console, or kill {live.pid}), "
            "or start another with --state-dir DIR --port 0"
        )


def _serve(stack: LocalStack, options: StackOptions, stopping: threading.Event) -> int:
    state = stack.start()
    try:
        print(
            f"Gatehouse local stack is up (Ctrl-C stops it)\n"
            f"  gateway   {state.gateway_url}\n"
            f"  issuer    {state.issuer}   (audience {state.audience})\n"
            f"  backend   {state.backend_url}\n"
            f"  AWS       {state.aws_endpoint_url}   (moto)\n"
            f"  state     {options.state_dir / 'dev.json'}\n"
            f"Try:\n"
            f"  TOKEN=$(gatehouse dev token --sub alice --email alice@example.com \\\n"
            f"          --groups engineering)\n"
            f'  curl -H "Authorization: Bearer $TOKEN" {state.gateway_url}/api/hello',
            flush=True,
        )
        stopping.wait()
    finally:
        stack.stop()
    print(f"stopped; {_discarded(stack.discarded)}", flush=True)
    return 0


def _discarded(counts: tuple[int, int] | None) -> str:
    """What the stack's queues still held: moto keeps them in memory, so they are gone."""
    if counts is None:
        return "the audit queue could not be read: any events still queued are discarded"
    queued, dead = counts
    if not queued and not dead:
        return "no audit events were still queued"
    text = f"{queued} audit event(s) were still queued"
    if dead:
        text += f" and {dead} in the dead-letter queue"
    return text + ": they are discarded with the stack"


@dev.command("token", short_help="print a token signed by the dev issuer")
@click.option("--sub", required=True, help="the token's subject (sub claim)")
@click.option("--email", help="the email claim")
@click.option("--groups", default="", help="comma-separated group names")
@click.option("--amr", default="", help="comma-separated authentication methods, e.g. pwd,mfa")
@click.option(
    "--ttl",
    type=int,
    default=3600,
    show_default=True,
    help="seconds until exp (negative: already expired)",
)
@click.option(
    "--alg",
    type=click.Choice(["RS256", "ES256"]),
    default="RS256",
    show_default=True,
    help="signing algorithm (the dev issuer holds a key for each)",
)
@click.option("--aud", help="audience (default: the gateway's)")
@click.pass_obj
def print_token(
    obj: CliContext,
    *,
    sub: str,
    email: str | None,
    groups: str,
    amr: str,
    ttl: int,
    alg: str,
    aud: str | None,
) -> int:
    """Print a token signed by the running stack's dev issuer."""
    from gatehouse.dev.idp import SigningKey, mint_token

    state = find_state(obj.state_dir)
    key_info = state.idp_keys.get(alg) or {
        "path": state.idp_private_key_path,
        "kid": state.idp_kid,
    }
    private_key = serialization.load_pem_private_key(
        Path(key_info["path"]).read_bytes(), password=None
    )
    if not isinstance(private_key, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey):
        raise ValueError(f"{key_info['path']} does not hold a signing key")
    token = mint_token(
        SigningKey(alg, key_info["kid"], private_key, Path(key_info["path"])),
        issuer=state.issuer,
        audience=aud or state.audience,
        subject=sub,
        email=email,
        groups=[g for g in groups.split(",") if g],
        amr=[a for a in amr.split(",") if a],
        ttl_seconds=ttl,
    )
    print(token)
    return 0
