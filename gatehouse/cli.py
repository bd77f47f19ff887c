"""The ``gatehouse`` command.

::

    gatehouse dev [--port N] [--authorizer-ttl N] [--policy FILE]   run the local stack
    gatehouse dev token --sub S [--email E] [--groups a,b] [--amr mfa] [--ttl N] [--alg A]
    gatehouse policy validate FILE | apply FILE | diff FILE | history | rollback VERSION
    gatehouse policy explain --sub S [--email E] [--groups a,b] [--claims k=v] --method M
                             --host H --path P [--ip IP] [--at TIME] [--version V]
    gatehouse grant request|show|approve|deny|revoke|list ...     just-in-time access
    gatehouse audit flush | tail [-n N] [--json]
    gatehouse audit query (SQL | --named NAME --param k=v ...) [--engine athena|local]
                          [--format table|json|csv] [--list]
    gatehouse audit report --from T --to T --out DIR [--engine local|athena]
    gatehouse demo                                                   the guided demo
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any


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


def _policy_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    policy = commands.add_parser(
        "policy",
        help="validate, apply, inspect and replay policies",
        description="Exit status: 0 done; 1 explain denied; 2 refused or failed, nothing "
        "changed; 3 the policy was activated but its archive copy or audit event was not "
        "written (the message says which).",
    )
    policy_commands = policy.add_subparsers(dest="policy_command", required=True)
    for name, text in (
        ("validate", "check a policy file; change nothing"),
        ("apply", "validate, store, archive and activate (audited)"),
        ("diff", "what applying the file would change"),
    ):
        sub = policy_commands.add_parser(name, help=text)
        sub.add_argument("file", type=Path)
    history = policy_commands.add_parser("history", help="activations, newest first")
    history.add_argument("-n", type=int, default=20, help="how many")
    rollback = policy_commands.add_parser("rollback", help="activate an earlier version again")
    rollback.add_argument("version", type=int)
    explain = policy_commands.add_parser(
        "explain",
        help="the decision for a request, with reasons and matched rules (exit 0 allow, 1 deny)",
    )
    explain.add_argument("--sub", required=True)
    explain.add_argument("--issuer", help="default: the stage's issuer")
    explain.add_argument("--email", help="taken as verified")
    explain.add_argument("--groups", default="", help="comma-separated")
    explain.add_argument("--claims", help="name=value,... or a JSON object")
    explain.add_argument("--amr", default="", help="comma-separated, e.g. pwd,mfa")
    explain.add_argument("--auth-time", help="epoch seconds or ISO 8601 (UTC if no offset)")
    explain.add_argument("--method", required=True)
    explain.add_argument("--host", required=True)
    explain.add_argument("--path", required=True)
    explain.add_argument("--ip", default="", help="source address")
    explain.add_argument(
        "--at", help="when (epoch seconds or ISO 8601, UTC if no offset; default now)"
    )
    explain.add_argument("--justification", help="X-Gatehouse-Justification (break-glass)")
    explain.add_argument("--version", type=int, help="a historical version (decision replay)")
    explain.add_argument("--json", action="store_true")


def _verify_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    from gatehouse.times import accepted

    verify = commands.add_parser(
        "verify",
        help="re-derive the ledger from the bucket; exit 0 only when all holds",
        description="Exit status: 0 every digest checked holds; 1 findings, or nothing was "
        "verified (no digest in the window; --allow-empty accepts that); 2 refused, nothing "
        "checked: a time it cannot read, a window whose end is not after its start, or a "
        "stage description that lacks the bucket or key.",
    )
    verify.add_argument("--since", help=f"first digest period end to check: {accepted('--since')}")
    verify.add_argument("--until", help="last digest period end to check (as --since)")
    verify.add_argument(
        "--allow-empty",
        action="store_true",
        help="exit 0 when no digest was checked (the metric still counts it as a finding)",
    )
    verify.add_argument("--json", action="store_true", help="the report as JSON")
    verify.add_argument(
        "--publish-metric",
        action="store_true",
        help="also put LedgerVerifyFindings (CloudWatch namespace Gatehouse) for the alarm: "
        "the findings, plus 1 when nothing was verified",
    )
    verify.add_argument(
        "--jobs",
        type=_at_least_one,
        help="processes that read objects (default: one per CPU; 1: only this one)",
    )
    verify.add_argument(
        "--public-key",
        type=Path,
        help="PEM, JWK or JWKS of the stage's key (default: read it from KMS)",
    )


def build_parser() -> argparse.ArgumentParser:
    """The argument parser."""
    parser = argparse.ArgumentParser(prog="gatehouse", description="Gatehouse operator CLI")
    parser.add_argument(
        "--state-dir", type=Path, help="local stack state directory (default .gatehouse)"
    )
    commands = parser.add_subparsers(dest="command", required=True)
    _dev_parser(commands)
    _policy_parser(commands)
    from gatehouse.grant_commands import add_grant_parser

    add_grant_parser(commands)
    audit = commands.add_parser("audit", help="the audit trail")
    audit_commands = audit.add_subparsers(dest="audit_command", required=True)
    audit_commands.add_parser("flush", help="run the audit writer now on everything queued")
    tail = audit_commands.add_parser("tail", help="print the newest stored events")
    tail.add_argument("-n", type=int, default=20, help="how many events")
    tail.add_argument("--json", action="store_true", help="one JSON object per line")
    audit_commands.add_parser("digest", help="sign the ledger's next digest now")
    _verify_parser(audit_commands)
    prove = audit_commands.add_parser(
        "prove", help="print the inclusion proof of one event (JSON, checkable offline)"
    )
    prove.add_argument("event_id")
    prove.add_argument("--out", type=Path, help="write the proof here instead of stdout")
    check = audit_commands.add_parser(
        "check-proof", help="check a proof offline, with only the stage's public key"
    )
    check.add_argument("proof", type=Path)
    check.add_argument(
        "--public-key", type=Path, required=True, help="PEM, JWK or JWKS of the stage's key"
    )
    dlq = audit_commands.add_parser(
        "dlq", help="list the messages the writer gave up on (and why); --redrive retries them"
    )
    dlq.add_argument("-n", type=int, default=100, help="at most this many")
    dlq.add_argument("--json", action="store_true", help="one JSON object per line")
    dlq.add_argument("--redrive", action="store_true", help="move them back to the audit queue")
    from gatehouse.query.command import add_query_parser

    add_query_parser(audit_commands)
    report = audit_commands.add_parser(
        "report", help="report.json, CSV tables and one self-contained report.html over a window"
    )
    report.add_argument(
        "--from",
        dest="start",
        required=True,
        help="window start (inclusive): ISO 8601 (UTC if no offset) or YYYY-MM-DD",
    )
    report.add_argument("--to", dest="end", required=True, help="window end (exclusive)")
    report.add_argument("--out", type=Path, required=True, help="directory to write into")
    report.add_argument(
        "--engine",
        choices=("local", "athena"),
        help="default: local when the local stack is running, athena otherwise",
    )
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
        from chalicelib.audit import AuditError
        from chalicelib.grants import GrantError
        from chalicelib.ledger import LedgerError
        from chalicelib.ledger.merkle import ProofError
        from chalicelib.policy import PolicyError
        from gatehouse.audit_commands import StageIncomplete
        from gatehouse.grant_commands import GrantCommandError
        from gatehouse.policy_commands import PolicyFileError
        from gatehouse.query.errors import QueryError
        from gatehouse.report import ReportError
        from gatehouse.state import NoLocalStack
        from gatehouse.target import NoTarget
        from gatehouse.times import TimeArgumentError

        known = (
            NoLocalStack,
            NoTarget,
            TimeArgumentError,
            StageIncomplete,
            LedgerError,
            ProofError,
            PolicyError,
            PolicyFileError,
            GrantError,
            GrantCommandError,
            AuditError,
            QueryError,
            ReportError,
        )
        if isinstance(exc, known):
            from gatehouse.terminal import visible

            # Messages can quote what a client stored (a path, a grant field).
            print(visible(f"gatehouse: {exc}"), file=sys.stderr)
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
    if args.command == "grant":
        from gatehouse.grant_commands import run_grant_command
        from gatehouse.target import resolve_target

        return run_grant_command(args, resolve_target(args.state_dir))
    from gatehouse.demo import run_demo

    return run_demo()


def _policy(args: argparse.Namespace) -> int:
    from chalicelib.policy.admin import PolicyChangeIncomplete
    from gatehouse import policy_commands
    from gatehouse.terminal import visible

    if args.policy_command == "validate":
        document = policy_commands.validate(args.file)
        counts = f"{len(document.routes)} routes, {len(document.rules)} rules"
        print(f"{args.file}: valid ({counts}, {document.checksum})")
        return 0
    from gatehouse.target import resolve_target

    target = resolve_target(args.state_dir)
    if args.policy_command == "explain":
        return _explain(args, target)
    admin = policy_commands.admin(target)
    if args.policy_command == "diff":
        policy_commands.validate(args.file)
        lines = admin.diff(policy_commands.load_policy_file(args.file)).lines()
        print("\n".join(map(visible, lines)) if lines else "no changes")
        return 0
    if args.policy_command == "history":
        print("\n".join(policy_commands.format_history(admin.history(args.n))))
        return 0
    if args.policy_command == "rollback":
        try:
            result = admin.rollback(args.version)
        except PolicyChangeIncomplete as exc:
            print(f"gatehouse: {exc}", file=sys.stderr)
            return 3
        print("\n".join(policy_commands.describe_change(result, f"rollback to {args.version}")))
        return 0
    try:
        result = policy_commands.apply(target, args.file)
    except PolicyChangeIncomplete as exc:
        # Not exit 2: the change is in force, and a script must not retry it as if not.
        print(f"gatehouse: {exc}", file=sys.stderr)
        return 3
    print("\n".join(policy_commands.describe_change(result, str(args.file))))
    return 0


def _explain(args: argparse.Namespace, target: Any) -> int:
    import json

    from chalicelib.grants import GrantStore
    from chalicelib.policy import AccessRequest
    from gatehouse import policy_commands as pc
    from gatehouse.terminal import visible

    issuer = args.issuer or target.issuer
    if not issuer:
        from gatehouse.target import NoTarget

        try:
            issuer = target.trusted_issuers[0].issuer
        except NoTarget as exc:
            raise NoTarget(f"pass --issuer ({exc})") from exc
    auth_time = pc.parse_time(args.auth_time, option="--auth-time") if args.auth_time else None
    identity = pc.explain_identity(
        issuer=issuer,
        subject=args.sub,
        email=args.email,
        groups=[g for g in args.groups.split(",") if g],
        claims=pc.parse_claims(args.claims),
        amr=[m for m in args.amr.split(",") if m],
        auth_time=auth_time,
    )
    path = pc.normalised_or_refusal(args.path)
    if path is None:
        print(visible(f"DENY  {args.method} {args.host}{args.path}"))
        print("  reasons:       ambiguous_path (400)")
        return 1
    request = AccessRequest(
        args.host,
        args.method.upper(),
        path,
        source_ip=pc.parse_source_ip(args.ip),
        at=pc.parse_time(args.at),
        justification=args.justification,
    )
    policy = pc.load_policy(target, args.version)
    store = GrantStore(target.client("dynamodb"), target.state_table)
    grants = store.grants_for_principal(identity.issuer, identity.subject)
    decision = pc.explain(policy, identity, request, grants)
    if args.json:
        print(json.dumps(pc.decision_json(decision), indent=2))
    else:
        print("\n".join(pc.format_decision(decision, request)))
    return 0 if decision.allowed else 1


def _audit(args: argparse.Namespace) -> int:
    from gatehouse import audit_commands
    from gatehouse.target import resolve_target

    if args.audit_command == "check-proof":  # offline: no stage, no AWS
        return _check_proof(audit_commands, args)
    if args.audit_command == "query":
        from gatehouse.query.command import run_query_command

        return run_query_command(args)
    if args.audit_command == "report":
        return _report(audit_commands, args)
    target = resolve_target(args.state_dir)
    if args.audit_command == "prove":
        proof = audit_commands.prove(target, args.event_id)
        text = json.dumps(proof, indent=2)
        if args.out:
            args.out.write_text(text + "\n")
            print(f"proof of {args.event_id} written to {args.out}")
        else:
            print(text)
        return 0
    if args.audit_command == "flush":
        result = audit_commands.flush(target)
        print(f"stored {result.delivered} events; {result.failed} left on the queue for retry")
        return 0 if result.failed == 0 else 1
    if args.audit_command == "dlq":
        return _dead_letters(audit_commands, target, args)
    if args.audit_command == "digest":
        checkpoint = audit_commands.sign_digest(target)
        print(f"signed {checkpoint.key}: tree size {checkpoint.tree_size}, root {checkpoint.root}")
        return 0
    if args.audit_command == "verify":
        return _verify(audit_commands, target, args)
    audit_commands.print_events(audit_commands.tail(target, args.n), as_json=args.json)
    return 0


def _report(audit_commands: Any, args: argparse.Namespace) -> int:
    from gatehouse.report import parse_window
    from gatehouse.target import resolve_target

    window = parse_window(args.start, args.end)  # before any AWS call: a typo fails fast
    written = audit_commands.report(resolve_target(args.state_dir), window, args.out, args.engine)
    print(f"report written to {written.directory}: open {written.html}")
    print(f"  {written.json.name} and {len(written.csv)} CSV tables beside it")
    return 0


def _check_proof(audit_commands: Any, args: argparse.Namespace) -> int:
    from chalicelib.ledger.proof import check_proof

    public_key = audit_commands.load_public_key(args.public_key.read_bytes())
    try:
        proof = json.loads(args.proof.read_text())
    except ValueError as exc:
        print(f"gatehouse: {args.proof} is not JSON: {exc}", file=sys.stderr)
        return 2
    from gatehouse.terminal import visible

    problems = check_proof(proof, public_key)
    if problems:
        for problem in problems:
            # A proof file is anyone's: its text reaches the terminal escaped.
            print(visible(f"INVALID: {problem}"))
        return 1
    print(
        visible(
            f"valid: event at leaf {proof['leaf_index']} of the tree of {proof['tree_size']} "
            f"(root {str(proof['root'])[:16]}...), signed in {proof.get('digest_key')} "
            "(the digest named is not checked: the signature and root are)"
        )
    )
    return 0


def _at_least_one(text: str) -> int:
    try:
        number = int(text)
    except ValueError:
        number = 0
    if number < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number of at least 1")
    return number


def _verify(audit_commands: Any, target: Any, args: argparse.Namespace) -> int:
    from gatehouse.times import parse_window

    # Before any AWS call; an unreadable bound must not quietly check nothing.
    since, until = parse_window(
        args.since, args.until, start_option="--since", end_option="--until"
    )
    report = audit_commands.verify(
        target,
        since=since,
        until=until,
        public_key_file=args.public_key,
        jobs=args.jobs,
    )
    if args.publish_metric:
        audit_commands.publish_verify_metric(target, report)
    empty = audit_commands.verified_nothing(report)
    status = 1 if not report.ok or (empty and not args.allow_empty) else 0
    if args.json:
        # "ok" says no findings; a script must also be able to see that nothing was checked.
        print(json.dumps({**report.as_dict(), "verified_nothing": empty}, indent=2))
    else:
        _print_verify_report(report, target, empty=empty)
    if empty:
        print(_nothing_verified(since, until, allow_empty=args.allow_empty), file=sys.stderr)
    return status


def _nothing_verified(since: Any, until: Any, *, allow_empty: bool) -> str:
    from gatehouse.times import utc_text

    if since is None and until is None:
        where = "the bucket holds no digest that verifies (a new stage's first is signed hourly)"
    else:
        start = utc_text(since) if since is not None else "the first digest"
        end = utc_text(until) if until is not None else "the newest"
        where = f"no digest's period ends in the window {start} .. {end}"
    if allow_empty:
        return f"gatehouse: nothing verified: {where} (accepted: --allow-empty)"
    return (
        f"gatehouse: nothing verified: {where}; widen the window, or pass --allow-empty "
        "where an empty one is expected"
    )


def _print_verify_report(report: Any, target: Any, *, empty: bool) -> None:
    from gatehouse.terminal import visible

    for finding in report.findings:
        # Findings quote what is stored in the bucket, which an attacker may have written.
        print(visible(f"{finding.kind:18} {finding.where}"))
        print(visible(f"{'':18} {finding.detail}"))
    verdict = "NOTHING VERIFIED" if empty else "ok"
    if not report.ok:
        verdict = f"FAILED: {len(report.findings)} findings"
    print(
        f"{verdict}: {report.digests} digests, {report.objects} objects, {report.events} "
        f"events; tree size {report.tree_size}, root {report.root[:16]}... "
        f"({report.seconds:.2f} s)"
    )
    if report.undigested_objects:
        print(
            f"{report.undigested_objects} object(s) stored since the newest digest are not "
            "verified yet: the next digest names them"
        )
    if not target.ledger_anchor:
        print("note: no GATEHOUSE_LEDGER_ANCHOR: deleting the newest digests would go unnoticed")


def _dead_letters(audit_commands: Any, target: Any, args: argparse.Namespace) -> int:
    if args.redrive:
        moved = audit_commands.redrive(target, args.n)
        print(f"moved {moved} messages back to the audit queue")
        return 0
    letters = audit_commands.dead_letters(target, args.n)
    for letter in letters:
        if args.json:
            print(json.dumps(letter.as_json()))
        else:
            from gatehouse.terminal import visible

            print(
                visible(
                    f"{letter.message_id}  tries={letter.receive_count}  sent={letter.sent_at}  "
                    f"event={letter.event_id or '-'}  {letter.problem}"
                )
            )
    if not args.json:
        print(f"{len(letters)} messages in the dead-letter queue")
    # Non-zero while anything waits there: scripts and alarms can tell.
    return 1 if letters else 0


if __name__ == "__main__":
    sys.exit(main())
