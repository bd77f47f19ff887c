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

import json
import os
import sys
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import click

from gatehouse.terminal import visible

if TYPE_CHECKING:
    from chalicelib.identity import Identity
    from gatehouse.cli import CliContext
    from gatehouse.target import Target

TOKEN_VARIABLE = "GATEHOUSE_TOKEN"  # noqa: S105 - the name of a variable, not a secret


class GrantCommandError(RuntimeError):
    """A grant command cannot run or was refused (no token, the API said no, no API)."""


_TOKEN_HELP = (
    f"your OIDC token; - reads it from stdin (default ${TOKEN_VARIABLE}, "
    "which unlike an argument does not show in the process list)"
)
_token_option = click.option("--token", help=_TOKEN_HELP)
_grant_id_argument = click.argument("grant_id", help="the grant's id (as request printed it)")


@click.group("grant", short_help="just-in-time access grants")
def grant() -> None:
    """Just-in-time access grants, through the stage's grant API with your OIDC token."""


@grant.command("request", short_help="ask for temporary access (prints the id)")
@click.option("--route", "routes", multiple=True, required=True, help="route id (repeatable)")
@click.option("--path", "paths", multiple=True, help="path glob (repeatable)")
@click.option(
    "--action",
    "actions",
    multiple=True,
    help="HTTP method (repeatable; default GET,HEAD)",
)
@click.option("--duration", required=True, help='e.g. "30m", "2h"')
@click.option("--justification", required=True, help="why (shown to approvers, audited)")
@_token_option
@click.option(
    "-o",
    "--output",
    type=click.Choice(["table", "json"]),
    default="table",
    help="table: one line (default); json: the new grant as the API returns it",
)
@click.pass_obj
def request_command(
    obj: CliContext,
    *,
    routes: tuple[str, ...],
    paths: tuple[str, ...],
    actions: tuple[str, ...],
    duration: str,
    justification: str,
    token: str | None,
    output: str,
) -> int:
    """Ask for temporary access; prints the new grant's id."""
    api = grant_api(obj, token)
    body = {
        "routes": list(routes),
        "actions": list(actions),
        "paths": list(paths),
        "duration": duration,
        "justification": justification,
    }
    with _audit_pending_noted():
        requested = api.call("POST", "", body=body)
        if output == "json":
            _print_json(requested)
        else:
            _say(f"grant {requested['id']} requested (pending approval)")
    return 0


@grant.command("show", short_help="show one grant's scope (approvers: any; others: their own)")
@_grant_id_argument
@_token_option
@click.option(
    "-o",
    "--output",
    type=click.Choice(["table", "json"]),
    default="table",
    help="table: the scope, one path glob per line (default); json: the grant as the API "
    "returns it",
)
@click.pass_obj
def show_command(obj: CliContext, grant_id: str, token: str | None, output: str) -> int:
    """Show one grant's scope (approvers: any grant; others: their own)."""
    found = fetch_grant(grant_api(obj, token), grant_id)
    if output == "json":
        _print_json(found)
    else:
        _say(*describe_grant(found))
    return 0


@grant.command("approve", short_help="show a pending grant's scope, ask, approve (never your own)")
@_grant_id_argument
@click.option(
    "--yes",
    "-y",
    is_flag=True,
    help="approve the scope shown without asking (needed when stdin is not a terminal)",
)
@_token_option
@click.option(
    "-o",
    "--output",
    type=click.Choice(["table", "json"]),
    default="table",
    help="table: one line (default); json: the approved grant as the API returns it (the "
    "scope is then shown on stderr)",
)
@click.pass_obj
def approve_command(
    obj: CliContext, grant_id: str, yes: bool, token: str | None, output: str
) -> int:
    """Show a pending grant's scope, ask, and approve it (never your own).

    Exit status 1 when the answer is not yes (nothing changed).
    """
    api = grant_api(obj, token)
    with _audit_pending_noted():
        return _approve(api, grant_id, assume_yes=yes, as_json=output == "json")
    return 0


@grant.command("deny", short_help="deny a pending grant")
@_grant_id_argument
@click.option("--reason", help="why (kept with the grant, audited)")
@_token_option
@click.pass_obj
def deny_command(obj: CliContext, grant_id: str, reason: str | None, token: str | None) -> int:
    """Deny a pending grant."""
    return _end(grant_api(obj, token), "deny", grant_id, reason)


@grant.command("revoke", short_help="end a grant now (its requester or an approver)")
@_grant_id_argument
@click.option("--reason", help="why (kept with the grant, audited)")
@_token_option
@click.pass_obj
def revoke_command(obj: CliContext, grant_id: str, reason: str | None, token: str | None) -> int:
    """End a grant now (its requester or an approver)."""
    return _end(grant_api(obj, token), "revoke", grant_id, reason)


@grant.command("list", short_help="recent grants")
@click.option("--all", "include_ended", is_flag=True, help="include ended grants")
@click.option(
    "-o",
    "--output",
    type=click.Choice(["table", "json", "csv"]),
    default=None,
    help="table: one line per grant (default); json: one JSON array of the grants as the "
    "API returns them; csv: a header and one row per grant",
)
@click.option("--json", "as_json", is_flag=True, help="the same as -o json (kept as an alias)")
@click.option("-n", "count", type=int, default=50, show_default=True, help="how many")
@_token_option
@click.pass_obj
def list_command(
    obj: CliContext,
    *,
    include_ended: bool,
    output: str | None,
    as_json: bool,
    count: int,
    token: str | None,
) -> int:
    """Recent grants: pending and active ones, or every one with --all."""
    if as_json and output not in (None, "json"):
        raise click.UsageError(f"--json and -o {output} contradict each other: give one")
    api = grant_api(obj, token)
    query = {"limit": str(count), "all": "1" if include_ended else "0"}
    grants = api.call("GET", "", query=query)
    if output == "csv":
        _list_csv(grants)
        return 0
    return _list(grants, include_ended=include_ended, as_json=as_json or output == "json")


def grant_api(obj: CliContext, token: str | None, target: Target | None = None) -> GrantApiClient:
    """A client of the grant API of ``target`` (default: the stage ``obj.state_dir`` or the
    environment points at), acting with ``token`` (``-``: read from stdin; default
    ``$GATEHOUSE_TOKEN``).

    Raises
    ------
    GrantCommandError
        When there is no token, or the stage's API URL is missing or not https.
    """
    if target is None:
        from gatehouse.target import resolve_target

        target = resolve_target(obj.state_dir)
    from_stdin = token == "-"  # noqa: S105 - the stdin marker, not a secret
    given = sys.stdin.readline() if from_stdin else token
    given = (given or os.environ.get(TOKEN_VARIABLE) or "").strip()
    if not given:
        raise GrantCommandError(
            f"grant commands need your OIDC token: --token or ${TOKEN_VARIABLE}"
        )
    return GrantApiClient(_api_url(target), given)


@contextmanager
def _audit_pending_noted() -> Iterator[None]:
    """A change whose audit event is still on its way (the API's 202) succeeds with a note:
    the stage's sweeper enqueues that event."""
    try:
        yield
    except _AuditPending as pending:
        print(f"gatehouse: note: {visible(str(pending))}", file=sys.stderr)


def _end(api: GrantApiClient, action: str, grant_id: str, reason: str | None) -> int:
    """``deny`` or ``revoke`` the grant."""
    body = {"reason": reason} if reason else {}
    with _audit_pending_noted():
        ended = api.call("POST", f"/{_id_segment(grant_id)}/{action}", body=body)
        _say(f"grant {ended['id']} {'denied' if action == 'deny' else 'revoked'}")
        if action == "revoke":
            _say(revocation_bound_text(ended))
    return 0


def revocation_bound_text(answer: dict[str, Any]) -> str:
    """When a revocation is in force, as the stage's grant API computed it from its settings.

    Decisions read live grants from a per-container cache (no AWS call per
    request), so a revoked grant may still be honoured until each deciding
    container's next refresh (docs: ``chalicelib/grants/cache.py``).
    """
    within = answer.get("in_effect_within_seconds")
    at_most = answer.get("in_effect_within_seconds_at_most")
    if not isinstance(within, int | float) or not isinstance(at_most, int | float):
        return (
            "in effect within the stage's grant refresh (GATEHOUSE_POLICY_REFRESH_SECONDS, "
            "10 s unless set; this stage's API did not say)"
        )
    return (
        f"in effect within {within:g} s: the grant cache refresh "
        f"(GATEHOUSE_POLICY_REFRESH_SECONDS; the authorizer cache adds nothing, cached answers "
        f"are decided again); at most {at_most:g} s while the grant table cannot be read"
    )


class _AuditPending(Exception):
    """The API made the change; its audit event is kept for the sweeper to enqueue."""


def _approve(api: GrantApiClient, grant_id: str, *, assume_yes: bool, as_json: bool = False) -> int:
    """Show the grant's scope, ask on the terminal (unless ``assume_yes``), then approve.

    With ``as_json`` the scope goes to stderr and the approved grant, as JSON, to stdout.

    Raises
    ------
    GrantCommandError
        When the grant cannot be shown, stdin is no terminal and ``assume_yes``
        is false, or the API refuses the approval.
    """
    grant = fetch_grant(api, grant_id)
    _say(*describe_grant(grant), file=sys.stderr if as_json else None)
    if not assume_yes:
        who = grant.get("email") or grant.get("subject")
        if not _confirmed(f"approve grant {grant['id']} for {who}, exactly as shown above? [y/N] "):
            print(f"grant {visible(grant_id)} not approved: nothing changed", file=sys.stderr)
            return 1
    approved = api.call("POST", f"/{_id_segment(grant_id)}/approve")
    if as_json:
        _print_json(approved)
    else:
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


def _say(*lines: str, file: Any = None) -> None:
    """Print client text for people: each line through :func:`visible`."""
    for line in lines:
        print(visible(line), file=file)


def _print_json(answer: Any) -> None:
    """The API's answer as JSON (``ensure_ascii`` writes control and bidi characters escaped)."""
    print(json.dumps(answer, indent=2))


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


# The columns of ``grant list -o csv``; lists are joined with spaces.
_CSV_COLUMNS = (
    "id",
    "status",
    "issuer",
    "subject",
    "email",
    "routes",
    "actions",
    "paths",
    "duration_seconds",
    "justification",
    "requested_at",
    "approver",
    "approved_at",
    "expires_at",
)


def _list_csv(grants: list[dict[str, Any]]) -> None:
    """The grants as CSV, client text shown inert and defused for spreadsheets."""
    import csv

    from gatehouse.report.render_csv import defuse

    writer = csv.writer(sys.stdout, lineterminator="\n")
    writer.writerow(_CSV_COLUMNS)
    for found in grants:
        cells = []
        for name in _CSV_COLUMNS:
            value = found.get(name)
            if isinstance(value, list):
                value = " ".join(str(item) for item in value)
            cells.append(defuse(visible(str(value))) if isinstance(value, str) else defuse(value))
        writer.writerow(cells)
