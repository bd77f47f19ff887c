"""``gatehouse grant request|show|approve|deny|revoke|list``.

People act with their own OIDC token (``--token`` or ``GATEHOUSE_TOKEN``),
sent to the stage's grant API (``/.gatehouse/grants`` on the gateway), which
verifies it against the stage's trusted issuers and is the only writer of
grants. Nothing here touches the grant table: an operator's AWS credentials
and clock have no say in who approved what, or when.

Everything a grant holds came from a client. Printed for people, each line
goes through :func:`gatehouse.terminal.visible` (control, bidi and zero-width
characters shown as escapes); ``--json`` output is JSON with every non-ASCII
character escaped. ``approve`` shows the grant's exact scope, one path glob
per line, and asks before acting (``--yes`` to act without asking).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import urllib.request
from typing import TYPE_CHECKING, Any

from gatehouse.terminal import visible

if TYPE_CHECKING:
    from chalicelib.identity import Identity
    from gatehouse.target import Target

TOKEN_VARIABLE = "GATEHOUSE_TOKEN"  # noqa: S105 - the name of a variable, not a secret


class GrantCommandError(RuntimeError):
    """A grant command cannot run or was refused (no token, the API said no, no API)."""


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
        ("show", "show one grant's scope (approvers: any; others: their own)"),
        ("approve", "show a pending grant's scope, ask, approve (never your own)"),
        ("deny", "deny a pending grant"),
        ("revoke", "end a grant now (its requester or an approver)"),
    ):
        sub = actions.add_parser(name, help=text)
        sub.add_argument("grant_id")
        if name in ("deny", "revoke"):
            sub.add_argument("--reason")
    actions.choices["approve"].add_argument(
        "--yes",
        "-y",
        action="store_true",
        help="approve the scope shown without asking (needed when stdin is not a terminal)",
    )
    listing = actions.add_parser("list", help="recent grants")
    listing.add_argument("--all", action="store_true", help="include ended grants")
    listing.add_argument("--json", action="store_true", help="one JSON array")
    listing.add_argument("-n", type=int, default=50, help="how many")
    for sub in actions.choices.values():
        sub.add_argument(
            "--token",
            help=f"your OIDC token; - reads it from stdin (default ${TOKEN_VARIABLE}, "
            "which unlike an argument does not show in the process list)",
        )


def run_grant_command(args: argparse.Namespace, target: Target | None = None) -> int:
    """Run one ``grant`` subcommand through the stage's grant API; return the exit status.

    ``target`` defaults to the stage ``args.state_dir`` (or the environment)
    points at. Refusals raise :class:`GrantCommandError` with the API's reason.
    A change whose audit event is still on its way (the API's 202) succeeds
    with a note on stderr: the stage's sweeper enqueues that event.
    """
    if target is None:
        from gatehouse.target import resolve_target

        target = resolve_target(getattr(args, "state_dir", None))
    from_stdin = args.token == "-"  # noqa: S105 - the stdin marker, not a secret
    token = sys.stdin.readline() if from_stdin else args.token
    token = (token or os.environ.get(TOKEN_VARIABLE) or "").strip()
    if not token:
        raise GrantCommandError(
            f"grant commands need your OIDC token: --token or ${TOKEN_VARIABLE}"
        )
    api = GrantApiClient(_api_url(target), token)
    if args.grant_command == "list":
        query = {"limit": str(args.n), "all": "1" if args.all else "0"}
        return _list(api.call("GET", "", query=query), include_ended=args.all, as_json=args.json)
    if args.grant_command == "show":
        _say(*describe_grant(fetch_grant(api, args.grant_id)))
        return 0
    try:
        return _act(api, args)
    except _AuditPending as pending:
        print(f"gatehouse: note: {visible(str(pending))}", file=sys.stderr)
    return 0


class _AuditPending(Exception):
    """The API made the change; its audit event is kept for the sweeper to enqueue."""


def _act(api: GrantApiClient, args: argparse.Namespace) -> int:
    if args.grant_command == "request":
        body = {
            "routes": args.route,
            "actions": args.action,
            "paths": args.path,
            "duration": args.duration,
            "justification": args.justification,
        }
        grant = api.call("POST", "", body=body)
        _say(f"grant {grant['id']} requested (pending approval)")
    elif args.grant_command == "approve":
        return _approve(api, args.grant_id, assume_yes=args.yes)
    else:
        body = {"reason": args.reason} if args.reason else {}
        grant = api.call("POST", f"/{_id_segment(args.grant_id)}/{args.grant_command}", body=body)
        _say(f"grant {grant['id']} {'denied' if args.grant_command == 'deny' else 'revoked'}")
    return 0


def _approve(api: GrantApiClient, grant_id: str, *, assume_yes: bool) -> int:
    """Show the grant's scope, ask on the terminal (unless ``assume_yes``), then approve.

    Raises
    ------
    GrantCommandError
        When the grant cannot be shown, stdin is no terminal and ``assume_yes``
        is false, or the API refuses the approval.
    """
    grant = fetch_grant(api, grant_id)
    _say(*describe_grant(grant))
    if not assume_yes:
        who = grant.get("email") or grant.get("subject")
        if not _confirmed(f"approve grant {grant['id']} for {who}, exactly as shown above? [y/N] "):
            print(f"grant {visible(grant_id)} not approved: nothing changed", file=sys.stderr)
            return 1
    approved = api.call("POST", f"/{_id_segment(grant_id)}/approve")
    _say(f"grant {approved['id']} approved until {approved['expires_at']}")
    return 0


def _confirmed(question: str) -> bool:
    """Ask ``question`` on the terminal; whether the answer was yes.

    Raises
    ------
    GrantCommandError
        When stdin is not a terminal: nobody would have read the scope.
    """
    if sys.stdin is None or not sys.stdin.isatty():
        raise GrantCommandError(
            "grant approve asks for confirmation on a terminal and stdin is not one: "
            "review the scope above and pass --yes to approve it without asking"
        )
    print(visible(question), end="", file=sys.stderr, flush=True)
    return sys.stdin.readline().strip().lower() in ("y", "yes")


def fetch_grant(api: GrantApiClient, grant_id: str) -> dict[str, Any]:
    """The grant ``grant_id`` as the API shows it to the caller.

    Returns
    -------
    dict[str, Any]
        The grant as ``grant list --json`` prints it (client text unescaped).

    Raises
    ------
    GrantCommandError
        When the API refuses, or has no such grant the caller may see.
    """
    answer = api.call("GET", "", query={"id": grant_id, "all": "1"})
    # Filtered here too: a stage from before ``?id=`` answers with its whole list.
    found = [g for g in answer if isinstance(g, dict) and g.get("id") == grant_id]
    if not found:
        raise GrantCommandError(
            f"no grant {visible(grant_id)} that you may see "
            "(approvers see every grant, others their own)"
        )
    return found[0]


def describe_grant(grant: dict[str, Any]) -> list[str]:
    """A grant's exact scope for a person deciding on it, one path glob per line.

    Parameters
    ----------
    grant:
        The grant as the API answers it.

    Returns
    -------
    list[str]
        The lines, client text still raw: print each through :func:`visible`.
    """
    from chalicelib.grants.lifecycle import format_duration

    requester = f"{grant['issuer']}|{grant['subject']}"
    email = grant.get("email") or "no verified email"
    paths = grant.get("paths") or []
    lines = [
        f"grant {grant['id']}  ({grant['status']})",
        f"  requester:      {requester} ({email})",
        f"  routes:         {', '.join(grant['routes'])}",
        f"  methods:        {', '.join(grant['actions'])}",
        "  paths:" + ("" if paths else "          (none: every path of these routes)"),
        *(f"    {pattern}" for pattern in paths),
        f"  duration:       {format_duration(int(grant['duration_seconds']))} from approval",
        f"  requested at:   {grant['requested_at']}",
        f"  justification:  {grant['justification']}",
    ]
    if grant.get("approver"):
        lines.append(f"  approver:       {grant['approver']} at {grant.get('approved_at')}")
    if grant.get("expires_at"):
        lines.append(f"  expires at:     {grant['expires_at']}")
    return lines


def _say(*lines: str) -> None:
    """Print client text for people: each line through :func:`visible`."""
    for line in lines:
        print(visible(line))


class GrantApiClient:
    """Calls the stage's grant API (``/.gatehouse/grants``) with the caller's token.

    Parameters
    ----------
    base_url:
        The gateway's URL (the stage's API endpoint).
    token:
        The caller's OIDC token; sent as a Bearer token, never printed.
    timeout:
        Seconds for the whole exchange.
    """

    def __init__(self, base_url: str, token: str, timeout: float = 30.0) -> None:
        import urllib.parse

        parts = urllib.parse.urlsplit(base_url)
        loopback = parts.hostname in ("127.0.0.1", "localhost", "::1")
        if parts.scheme != "https" and not (parts.scheme == "http" and loopback):
            # The token would cross the network in the clear.
            raise GrantCommandError(f"the grant API must be https (got {base_url!r})")
        self._base = base_url.rstrip("/") + "/.gatehouse/grants"
        self._token = token
        self._timeout = timeout

    def call(
        self,
        method: str,
        suffix: str,
        *,
        body: dict[str, Any] | None = None,
        query: dict[str, str] | None = None,
    ) -> Any:
        """One API call; the decoded JSON answer.

        Raises
        ------
        GrantCommandError
            When the API refuses (with its reason) or cannot be reached.
        """
        import urllib.error
        import urllib.parse
        import urllib.request

        url = self._base + suffix + (f"?{urllib.parse.urlencode(query)}" if query else "")
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(url, data=data, method=method)  # noqa: S310 - https or the local stack
        request.add_header("Authorization", f"Bearer {self._token}")
        request.add_header("Accept", "application/json")
        if data is not None:
            request.add_header("Content-Type", "application/json")
        opener = urllib.request.build_opener(_NoRedirects)
        try:
            with opener.open(request, timeout=self._timeout) as response:
                status, answer = response.status, json.loads(response.read())
        except urllib.error.HTTPError as exc:
            with exc:  # the error holds the connection
                raise GrantCommandError(f"refused ({exc.code}): {_message(exc.read())}") from None
        except (urllib.error.URLError, OSError, ValueError) as exc:
            raise GrantCommandError(f"cannot reach the grant API at {self._base}: {exc}") from exc
        if status == 202:
            raise _AuditPending(answer.get("message", "the audit event is pending"))
        return answer


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    """Refuses every redirect: urllib would resend the bearer token to wherever it points."""

    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


def _message(raw: bytes) -> str:
    try:
        answer = json.loads(raw)
    except ValueError:
        return visible(raw.decode("utf-8", "replace")[:500])
    if isinstance(answer, dict) and isinstance(answer.get("message"), str):
        return visible(str(answer["message"]))
    return visible(str(answer)[:500])


def _api_url(target: Target) -> str:
    if not target.gateway_url:
        raise GrantCommandError(
            "grant commands go through the stage's API: set GATEHOUSE_GATEWAY_URL to its URL"
        )
    return target.gateway_url


def _id_segment(grant_id: str) -> str:
    import urllib.parse

    return urllib.parse.quote(grant_id, safe="")


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


def _list(grants: list[dict[str, Any]], *, include_ended: bool, as_json: bool) -> int:
    if as_json:
        # ensure_ascii (the default) writes control and bidi characters as \uNNNN.
        print(json.dumps(grants, indent=2))
        return 0
    if not grants:
        print("no grants" if include_ended else "no pending or active grants (--all for ended)")
    for grant in grants:
        who = grant["email"] or grant["subject"]
        scope = f"{','.join(grant['actions'])} {','.join(grant['routes'])}"
        scope += f" {','.join(grant['paths'])}" if grant["paths"] else " (every path)"
        _say(
            f"{grant['id']}  {grant['status']:8}  {who:24}  {scope}  "
            f"until {grant['expires_at'] or '-'}  {grant['justification']!r}"
        )
    return 0
