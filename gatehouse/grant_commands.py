"""``gatehouse grant request|approve|deny|revoke|list``.

People act with their own OIDC token (``--token`` or ``GATEHOUSE_TOKEN``),
verified against the stage's issuer exactly as the authorizer verifies it;
the AWS caller identity is recorded next to it.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from chalicelib.grants import Grant, GrantDesk, GrantStore
    from chalicelib.identity import Identity
    from gatehouse.target import Target

TOKEN_VARIABLE = "GATEHOUSE_TOKEN"  # noqa: S105 - the name of a variable, not a secret


class GrantCommandError(RuntimeError):
    """A grant command cannot run (no token, an invalid token)."""


def add_grant_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register ``grant`` and its subcommands."""
    grant = commands.add_parser("grant", help="just-in-time access grants")
    actions = grant.add_subparsers(dest="grant_command", required=True)
    request = actions.add_parser("request", help="ask for temporary access (prints the id)")
    request.add_argument("--route", action="append", required=True, help="route id (repeatable)")
    request.add_argument("--path", action="append", default=[], help="path glob (repeatable)")
    request.add_argument(
        "--action", action="append", default=[], help="HTTP method (repeatable; default GET,HEAD)"
    )
    request.add_argument("--duration", required=True, help='e.g. "30m", "2h"')
    request.add_argument("--justification", required=True)
    for name, text in (
        ("approve", "approve a pending grant (approver groups only, never your own)"),
        ("deny", "deny a pending grant"),
        ("revoke", "end a grant now (its requester or an approver)"),
    ):
        sub = actions.add_parser(name, help=text)
        sub.add_argument("grant_id")
        if name != "approve":
            sub.add_argument("--reason")
    listing = actions.add_parser("list", help="recent grants")
    listing.add_argument("--all", action="store_true", help="include ended grants")
    listing.add_argument("--json", action="store_true", help="one JSON array")
    listing.add_argument("-n", type=int, default=50, help="how many")
    for sub in actions.choices.values():
        if sub is not listing:
            sub.add_argument(
                "--token",
                help=f"your OIDC token; - reads it from stdin (default ${TOKEN_VARIABLE}, "
                "which unlike an argument does not show in the process list)",
            )


def run_grant_command(args: argparse.Namespace, target: Target | None = None) -> int:
    """Run one ``grant`` subcommand; return the exit status.

    ``target`` defaults to the stage ``args.state_dir`` (or the environment)
    points at. Refusals raise ``GrantError`` or :class:`GrantCommandError`;
    a change stored but not audited raises ``GrantNotAudited`` (the CLI
    exits non-zero with the grant id: the event is in the log, not the queue).
    """
    from chalicelib.grants import GrantStore

    if target is None:
        from gatehouse.target import resolve_target

        target = resolve_target(getattr(args, "state_dir", None))
    store = GrantStore(target.client("dynamodb"), target.policy_table)
    if args.grant_command == "list":
        return _list(store, include_ended=args.all, as_json=args.json, limit=args.n)
    from_stdin = args.token == "-"  # noqa: S105 - the stdin marker, not a secret
    token = sys.stdin.readline() if from_stdin else args.token
    actor = verify_token(target, token or os.environ.get(TOKEN_VARIABLE))
    desk = grant_desk(target, store)
    if args.grant_command == "request":
        grant = desk.request(
            actor,
            routes=args.route,
            actions=args.action,
            paths=args.path,
            duration=args.duration,
            justification=args.justification,
        )
        print(f"grant {grant.id} requested (pending approval)")
    elif args.grant_command == "approve":
        grant = desk.approve(args.grant_id, actor)
        print(f"grant {grant.id} approved until {_when(grant.expires_at)}")
    elif args.grant_command == "deny":
        grant = desk.deny(args.grant_id, actor, args.reason)
        print(f"grant {grant.id} denied")
    else:
        grant = desk.revoke(args.grant_id, actor, args.reason)
        print(f"grant {grant.id} revoked")
    return 0


def verify_token(target: Target, token: str | None) -> Identity:
    """The verified principal of ``token``.

    Raises
    ------
    GrantCommandError
        When there is no token or it does not verify.
    """
    from chalicelib.identity import JwksCache, TokenRejected, TokenVerifier
    from chalicelib.identity.fetch import http_fetch_json

    if not token:
        raise GrantCommandError(
            f"grant commands need your OIDC token: --token or ${TOKEN_VARIABLE}"
        )
    keys = JwksCache(http_fetch_json(5.0), cooldown_seconds=30.0, max_age_seconds=3600.0)
    verifier = TokenVerifier(target.trusted_issuers, keys)
    try:
        return verifier.verify(token.strip())
    except TokenRejected as exc:
        raise GrantCommandError(
            f"the token was refused: {exc.reason.value} ({exc.detail})"
        ) from exc


def grant_desk(target: Target, store: GrantStore) -> GrantDesk:
    """The grant desk for the target's active policy."""
    from chalicelib.audit import AuditEmitter, SqsAuditSink
    from chalicelib.grants import GrantDesk, GrantInvalid
    from chalicelib.policy import PolicyStore
    from chalicelib.policy.store import compile_record

    record = PolicyStore(target.client("dynamodb"), target.policy_table).load_active()
    if record is None:
        raise GrantInvalid("no policy is active")
    return GrantDesk(
        store,
        compile_record(record).document,
        AuditEmitter(SqsAuditSink(target.client("sqs"), target.audit_queue_url)),
        stage=target.stage,
        operator=target.operator,
    )


def grant_json(grant: Grant, now: float) -> dict[str, Any]:
    """A grant as ``grant list --json`` prints it."""
    return {
        "id": grant.id,
        "status": grant.effective_status(now),
        "issuer": grant.issuer,
        "subject": grant.subject,
        "email": grant.email,
        "routes": list(grant.routes),
        "actions": sorted(grant.actions),
        "paths": [glob.pattern for glob in grant.paths],
        "duration_seconds": grant.duration_seconds,
        "justification": grant.justification,
        "requested_at": _when(grant.requested_at),
        "approver": grant.approver,
        "approved_at": _when(grant.approved_at),
        "expires_at": _when(grant.expires_at),
        "ended_at": _when(grant.ended_at),
        "ended_by": grant.ended_by,
        "first_used_at": _when(grant.first_used_at),
    }


def _list(store: GrantStore, *, include_ended: bool, as_json: bool, limit: int) -> int:
    now = time.time()
    listed = store.list_grants(limit, include_ended=include_ended, at=now)
    grants = [grant_json(grant, now) for grant in listed]
    if as_json:
        print(json.dumps(grants, indent=2))
        return 0
    if not grants:
        print("no grants" if include_ended else "no pending or active grants (--all for ended)")
    for grant in grants:
        who = grant["email"] or grant["subject"]
        scope = f"{','.join(grant['actions'])} {','.join(grant['routes'])}"
        scope += f" {','.join(grant['paths'])}" if grant["paths"] else ""
        print(
            f"{grant['id']}  {grant['status']:8}  {who:24}  {scope}  "
            f"until {grant['expires_at'] or '-'}  {grant['justification']!r}"
        )
    return 0


def _when(moment: float | None) -> str | None:
    if moment is None:
        return None
    return datetime.fromtimestamp(moment, UTC).isoformat(timespec="seconds")
