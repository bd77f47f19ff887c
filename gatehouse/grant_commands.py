"""``gatehouse grant request|approve|deny|revoke|list``.

People act with their own OIDC token (``--token`` or ``GATEHOUSE_TOKEN``),
sent to the stage's grant API (``/.gatehouse/grants`` on the gateway), which
verifies it against the stage's trusted issuers and is the only writer of
grants. Nothing here touches the grant table: an operator's AWS credentials
and clock have no say in who approved what, or when.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import urllib.request
from typing import TYPE_CHECKING, Any

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
    try:
        _act(api, args)
    except _AuditPending as pending:
        print(f"gatehouse: note: {pending}", file=sys.stderr)
    return 0


class _AuditPending(Exception):
    """The API made the change; its audit event is kept for the sweeper to enqueue."""


def _act(api: GrantApiClient, args: argparse.Namespace) -> None:
    if args.grant_command == "request":
        body = {
            "routes": args.route,
            "actions": args.action,
            "paths": args.path,
            "duration": args.duration,
            "justification": args.justification,
        }
        grant = api.call("POST", "", body=body)
        print(f"grant {grant['id']} requested (pending approval)")
    elif args.grant_command == "approve":
        grant = api.call("POST", f"/{_id_segment(args.grant_id)}/approve")
        print(f"grant {grant['id']} approved until {grant['expires_at']}")
    else:
        body = {"reason": args.reason} if args.reason else {}
        grant = api.call("POST", f"/{_id_segment(args.grant_id)}/{args.grant_command}", body=body)
        print(f"grant {grant['id']} {'denied' if args.grant_command == 'deny' else 'revoked'}")


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
        return raw.decode("utf-8", "replace")[:500]
    if isinstance(answer, dict) and isinstance(answer.get("message"), str):
        return str(answer["message"])
    return str(answer)[:500]


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
