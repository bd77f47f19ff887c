"""``python -m gatehouse.deploy deploy|destroy|package --stage dev|prod`` (``make deploy``...)."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from gatehouse.deploy.errors import DeployError
from gatehouse.deploy.settings import (
    DEFAULT_BATCHING_WINDOW_SECONDS,
    DEFAULT_EVENTS_PER_OBJECT,
    DIGEST_KEY_POLICIES,
    STAGES,
    StageSettings,
    WriterSource,
)

ROOT = Path(__file__).resolve().parents[2]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m gatehouse.deploy", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    for name, text in (
        ("deploy", "infra stack, Athena stack, chalice deploy, then the wiring"),
        ("destroy", "remove what may be removed; say what Object Lock keeps"),
        ("package", "one CloudFormation template (chalice package --merge-template)"),
    ):
        command = commands.add_parser(name, help=text)
        command.add_argument("--stage", choices=STAGES, required=True)
        command.add_argument("--region", help="default: the AWS CLI's (AWS_REGION, profile)")
        command.add_argument(
            "--events-per-object",
            type=int,
            default=DEFAULT_EVENTS_PER_OBJECT,
            help=f"the writer's SQS batch size, 1000-10000 (default {DEFAULT_EVENTS_PER_OBJECT})",
        )
        command.add_argument(
            "--batching-window",
            type=int,
            default=DEFAULT_BATCHING_WINDOW_SECONDS,
            help=f"seconds to gather a batch, 1-300 (default {DEFAULT_BATCHING_WINDOW_SECONDS})",
        )
        command.add_argument("--retention-days", type=int, help="audit bucket default retention")
        command.add_argument("--alert-email", default="", help="subscribed to the alert topic")
        command.add_argument(
            "--key-admin-role-arn",
            default="",
            help="the break-glass role that alone may change the keys' policies and aliases",
        )
        command.add_argument(
            "--operator-role-arn",
            default="",
            help="the role that may enqueue policy_change events and read the dead letters",
        )
    for name in ("deploy", "package"):
        commands.choices[name].add_argument(
            "--set",
            action="append",
            default=[],
            metavar="NAME=VALUE",
            help="a function environment variable (e.g. GATEHOUSE_TRUSTED_ISSUERS)",
        )
        commands.choices[name].add_argument(
            "--digest-key-policy",
            choices=DIGEST_KEY_POLICIES,
            help=(
                "who the ledger digest key's policy lets sign: narrow (ledger_digest) or legacy "
                "(api_handler too, for a stage whose key policy cannot change); default: narrow "
                "for a new stack, what the existing stack needs otherwise"
            ),
        )
    commands.choices["destroy"].add_argument(
        "--confirm", required=True, help="the stage's name again: destroying is not undone"
    )
    commands.choices["destroy"].add_argument(
        "--force",
        action="store_true",
        help="destroy even though the audit queue or its dead-letter queue holds events",
    )
    commands.choices["package"].add_argument("--out", type=Path, help="default: out/<stage>")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        settings = StageSettings(
            stage=args.stage,
            project_dir=ROOT,
            writer=WriterSource(args.events_per_object, args.batching_window),
            retention_days=args.retention_days,
            alert_email=args.alert_email,
            key_admin_role_arn=args.key_admin_role_arn,
            operator_role_arn=args.operator_role_arn,
            digest_key_policy=getattr(args, "digest_key_policy", None),
        )
        return _run(args, settings)
    except DeployError as exc:
        print(f"gatehouse deploy: {exc}", file=sys.stderr)
        return 1


def _run(args: argparse.Namespace, settings: StageSettings) -> int:
    build_dir = ROOT / ".gatehouse" / "deploy" / settings.stage
    if args.command == "package":
        from gatehouse.deploy.package import package

        region = {} if os.environ.get("AWS_DEFAULT_REGION") else {"AWS_DEFAULT_REGION": "us-east-1"}
        template = package(
            settings,
            args.out or ROOT / "out" / settings.stage,
            overrides=_overrides(args.set),
            env=region,
        )
        print(f"packaged {template}")
        return 0
    import boto3

    session = boto3.session.Session(region_name=args.region)

    def client(service: str) -> object:
        return session.client(service)

    if args.command == "destroy":
        if args.confirm != settings.stage:
            print(f"gatehouse deploy: --confirm must repeat the stage ({settings.stage})")
            return 2
        from gatehouse.deploy.destroy import destroy

        destroy(settings, client, build_dir=build_dir, force=args.force)
        return 0
    from gatehouse.deploy.deploy import deploy

    report = deploy(settings, client, build_dir=build_dir, overrides=_overrides(args.set))
    print(f"deployed {settings.stage}: {report.api_url or '(no API URL recorded)'}")
    return 0


def _overrides(items: Sequence[str]) -> dict[str, str]:
    """``--set NAME=VALUE`` items as a mapping."""
    pairs = [item.split("=", 1) for item in items]
    malformed = [item for item, pair in zip(items, pairs, strict=True) if len(pair) != 2]
    if malformed:
        raise DeployError(f"--set wants NAME=VALUE, got {', '.join(malformed)}")
    return {name: value for name, value in pairs}


if __name__ == "__main__":
    sys.exit(main())
