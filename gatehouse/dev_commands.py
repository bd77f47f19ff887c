"""``gatehouse dev`` (run the local stack) and ``gatehouse dev token``."""

from __future__ import annotations

import argparse
import signal
import threading
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from gatehouse.state import default_state_dir, find_state


def run(args: argparse.Namespace) -> int:
    """Start the stack, print where everything is, and wait for Ctrl-C.

    Raises
    ------
    PolicyFileError
        When ``--policy`` names a file that cannot be read or parsed: checked
        before anything starts, so a typo costs no stack start-up.
    """
    from gatehouse.dev.stack import LocalStack, StackOptions, initial_policy

    if args.policy is not None:
        # Any URL will do here: only the file's reading is checked now.
        initial_policy(args.policy, backend_url="http://127.0.0.1")
    stopping = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stopping.set())
    options = StackOptions(
        state_dir=args.state_dir or default_state_dir(),
        gateway_port=args.port,
        authorizer_ttl_seconds=args.authorizer_ttl,
        policy_file=args.policy,
        metrics=args.metrics,
    )
    stack = LocalStack(options)
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
    print("stopped", flush=True)
    return 0


def print_token(args: argparse.Namespace) -> int:
    """Print a token signed by the running stack's dev issuer."""
    from gatehouse.dev.idp import SigningKey, mint_token

    state = find_state(args.state_dir)
    key_info = state.idp_keys.get(args.alg) or {
        "path": state.idp_private_key_path,
        "kid": state.idp_kid,
    }
    private_key = serialization.load_pem_private_key(
        Path(key_info["path"]).read_bytes(), password=None
    )
    if not isinstance(private_key, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey):
        raise ValueError(f"{key_info['path']} does not hold a signing key")
    token = mint_token(
        SigningKey(args.alg, key_info["kid"], private_key, Path(key_info["path"])),
        issuer=state.issuer,
        audience=args.aud or state.audience,
        subject=args.sub,
        email=args.email,
        groups=[g for g in args.groups.split(",") if g],
        amr=[a for a in args.amr.split(",") if a],
        ttl_seconds=args.ttl,
    )
    print(token)
    return 0
