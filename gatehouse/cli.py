"""The ``gatehouse`` command.

::

    gatehouse dev [--port N] [--authorizer-ttl N] [--policy FILE]   run the local stack
    gatehouse dev token --sub S [--email E] [--groups a,b] [--amr mfa] [--ttl N] [--alg A]
    gatehouse policy validate FILE | apply FILE
    gatehouse audit flush | tail [-n N] [--json]
    gatehouse demo                                                   the guided demo
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def _dev_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    dev = commands.add_parser("dev", help="run the local stack in the foreground (Ctrl-C stops it)")
    dev.add_argument("--port", type=int, default=8787, help="gateway port (0: any free port)")
    dev.add_argument(
        "--authorizer-ttl", type=int, default=0, help="authorizer result cache TTL, seconds"
    )
    dev.add_argument("--policy", type=Path, help="initial policy (default: the demo policy)")
    dev.add_argument("--metrics", action="store_true", help="print EMF metrics lines")
    dev_commands = dev.add_subparsers(dest="dev_command")
    token = dev_commands.add_parser("token", help="print a token signed by the dev issuer")
    token.add_argument("--sub", required=True)
    token.add_argument("--email")
    token.add_argument("--groups", default="", help="comma-separated group names")
    token.add_argument(
        "--amr", default="", help="comma-separated authentication methods, e.g. pwd,mfa"
    )
    token.add_argument(
        "--ttl", type=int, default=3600, help="seconds until exp (negative: already expired)"
    )
    token.add_argument("--alg", choices=("RS256", "ES256"), default="RS256")
    token.add_argument("--aud", help="audience (default: the gateway's)")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser."""
    parser = argparse.ArgumentParser(prog="gatehouse", description="Gatehouse operator CLI")
    parser.add_argument(
        "--state-dir", type=Path, help="local stack state directory (default .gatehouse)"
    )
    commands = parser.add_subparsers(dest="command", required=True)
    _dev_parser(commands)
    policy = commands.add_parser("policy", help="validate and apply policies")
    policy_commands = policy.add_subparsers(dest="policy_command", required=True)
    for name, text in (
        ("validate", "check a policy file; change nothing"),
        ("apply", "validate, store and activate"),
    ):
        sub = policy_commands.add_parser(name, help=text)
        sub.add_argument("file", type=Path)
    audit = commands.add_parser("audit", help="the audit trail")
    audit_commands = audit.add_subparsers(dest="audit_command", required=True)
    audit_commands.add_parser("flush", help="run the audit writer now on everything queued")
    tail = audit_commands.add_parser("tail", help="print the newest stored events")
    tail.add_argument("-n", type=int, default=20, help="how many events")
    tail.add_argument("--json", action="store_true", help="one JSON object per line")
    commands.add_parser("demo", help="start the local stack, send real traffic, show what happened")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the command; return the exit status."""
    args = build_parser().parse_args(argv)
    try:
        return _dispatch(args)
    except KeyboardInterrupt:
        return 130
    except Exception as exc:
        from chalicelib.policy import PolicyError
        from gatehouse.policy_commands import PolicyFileError
        from gatehouse.state import NoLocalStack
        from gatehouse.target import NoTarget

        if isinstance(exc, NoLocalStack | NoTarget | PolicyError | PolicyFileError):
            print(f"gatehouse: {exc}", file=sys.stderr)
            return 2
        raise


def _dispatch(args: argparse.Namespace) -> int:
    if args.command == "dev":
        from gatehouse import dev_commands

        if args.dev_command == "token":
            return dev_commands.print_token(args)
        return dev_commands.run(args)
    if args.command == "policy":
        return _policy(args)
    if args.command == "audit":
        return _audit(args)
    from gatehouse.demo import run_demo

    return run_demo()


def _policy(args: argparse.Namespace) -> int:
    from gatehouse import policy_commands

    if args.policy_command == "validate":
        document = policy_commands.validate(args.file)
        counts = f"{len(document.routes)} routes, {len(document.rules)} rules"
        print(f"{args.file}: valid ({counts}, {document.checksum})")
        return 0
    from gatehouse.target import resolve_target

    record = policy_commands.apply(resolve_target(args.state_dir), args.file)
    print(f"{args.file}: active as version {record.version} ({record.checksum})")
    return 0


def _audit(args: argparse.Namespace) -> int:
    from gatehouse import audit_commands
    from gatehouse.target import resolve_target

    target = resolve_target(args.state_dir)
    if args.audit_command == "flush":
        result = audit_commands.flush(target)
        print(f"stored {result.delivered} events; {result.failed} left on the queue for retry")
        return 0 if result.failed == 0 else 1
    audit_commands.print_events(audit_commands.tail(target, args.n), as_json=args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
