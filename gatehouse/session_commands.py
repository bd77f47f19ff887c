"""``gatehouse session list|revoke|rotate-key``: browser sessions of a stage.

They act on the stage :func:`gatehouse.target.resolve_target` finds (a running
local stack, else the ``GATEHOUSE_*`` variables), with the operator's AWS
credentials:

- ``list`` reads the ``SESSION`` partition of the state table;
- ``revoke`` writes a ``SESSION-REVOKED`` item only (the table's resource
  policy lets no one but the proxy touch the ``SESSION`` items, nor update or
  delete a revocation): every container refuses the session within
  ``GATEHOUSE_SESSION_REVOCATION_REFRESH_SECONDS``. Each revocation is
  audited, naming the operator (the AWS caller's ARN);
- ``rotate-key`` puts a new cookie key first in the stage's session-keys
  secret (``GATEHOUSE_SESSION_KEYS_SECRET``, else ``gatehouse/<stage>/session-keys``),
  creating it when missing.

An operator's mistakes (an unknown session, no stage, no secret, AWS saying
no) are one line on stderr: exit status 2 for what the operator can fix in
the command or its settings, 1 when AWS or the audit queue failed.
Everything printed from the table goes through :func:`gatehouse.terminal.visible`.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import IO, TYPE_CHECKING, Any

import click

from gatehouse.terminal import visible

if TYPE_CHECKING:
    from chalicelib.sessions import SessionStore, StoredSession
    from gatehouse.cli import CliContext
    from gatehouse.target import Target

SECRET_VARIABLE = "GATEHOUSE_SESSION_KEYS_SECRET"  # noqa: S105 - a variable's name
_REASON_LIMIT = 500


class SessionCommandError(click.ClickException):
    """A session command failed (AWS, the audit queue): ``gatehouse: <message>``, exit 1."""

    exit_code = 1

    def show(self, file: IO[Any] | None = None) -> None:
        print(visible(f"gatehouse: {self.message}"), file=file or sys.stderr)


class SessionUsageError(SessionCommandError):
    """What the operator can fix in the command or its settings (exit status 2)."""

    exit_code = 2


@click.group("session", short_help="browser sessions: list, revoke, rotate the cookie key")
def session() -> None:
    """Browser sessions of the stage: list them, revoke them, rotate the cookie key."""


@session.command("list", short_help="live sessions (newest first)")
@click.option("--user", "subject", help="only this subject's sessions")
@click.option("--issuer", help="only sessions of this issuer (its short name or URL)")
@click.option(
    "-n", "count", type=click.IntRange(1), default=100, show_default=True, help="how many"
)
@click.option("--json", "as_json", is_flag=True, help="one JSON array")
@click.pass_obj
def list_command(
    obj: CliContext, *, subject: str | None, issuer: str | None, count: int, as_json: bool
) -> int:
    """Live sessions: signed in, not ended, not revoked."""
    with _failures():
        target = _target(obj)
        found = _matching(_store(target).live(limit=1_000_000), subject, issuer)[:count]
    if as_json:
        click.echo(json.dumps([_as_json(s) for s in found], ensure_ascii=True, indent=2))
        return 0
    if not found:
        click.echo("no live sessions")
        return 0
    for stored in found:
        click.echo(_describe(stored))
    return 0


@session.command("revoke", short_help="revoke a session, or every session of a user")
@click.argument(
    "session_id", required=False, help="the session's id (as `gatehouse session list` shows it)"
)
@click.option("--user", "subject", help="revoke every live session of this subject")
@click.option("--issuer", help="with --user: the subject's issuer (short name or URL)")
@click.option("--reason", help="why (recorded in the audit trail)")
@click.pass_obj
def revoke_command(
    obj: CliContext,
    *,
    session_id: str | None,
    subject: str | None,
    issuer: str | None,
    reason: str | None,
) -> int:
    """Revoke SESSION_ID, or with --user every live session of that person.

    Containers refuse a revoked session within the stage's revocation refresh
    (GATEHOUSE_SESSION_REVOCATION_REFRESH_SECONDS). Each revocation is audited.
    """
    if (session_id is None) == (subject is None):
        raise click.UsageError("name a SESSION_ID or --user SUBJECT (one of them)")
    if issuer is not None and subject is None:
        raise click.UsageError("--issuer goes with --user")
    if reason is not None and len(reason) > _REASON_LIMIT:
        raise click.UsageError(f"--reason is at most {_REASON_LIMIT} characters")
    with _failures():
        target = _target(obj)
        store = _store(target)
        if session_id is not None:
            stored = store.get(session_id)
            if stored is None:
                raise SessionUsageError(
                    f"no session {session_id[:64]!r} on stage {target.stage or '?'}: "
                    "`gatehouse session list` shows the live ones"
                )
            sessions = [stored]
        else:
            assert subject is not None
            sessions = _principal_sessions(store, subject, issuer)
        for stored in sessions:
            _revoke(target, store, stored, reason)
    return 0


@session.command("rotate-key", short_help="seal new cookies with a new key")
@click.option(
    "--keep",
    type=click.IntRange(1, 20),
    default=3,
    show_default=True,
    help="keys kept, the new one included (cookies sealed by older ones stop opening)",
)
@click.pass_obj
def rotate_key_command(obj: CliContext, *, keep: int) -> int:
    """Put a new key first in the stage's session-keys secret (created when missing).

    Containers seal with it once they re-read the secret (within 5 minutes);
    cookies sealed by the keys kept stay valid.
    """
    from chalicelib.sessions import rotate_session_keys

    with _failures():
        target = _target(obj)
        secret_id = session_keys_secret(target)
        key = rotate_session_keys(target.client("secretsmanager"), secret_id, keep=keep)
    click.echo(visible(f"key {key.key_id} added to {secret_id} (keeping the {keep} newest keys)"))
    return 0


# --- helpers ---------------------------------------------------------------------------------


def session_keys_secret(target: Target) -> str:
    """The stage's session-keys secret: ``$GATEHOUSE_SESSION_KEYS_SECRET``, else the convention.

    Raises
    ------
    SessionCommandError
        When neither the variable nor the stage's name is known.
    """
    configured = os.environ.get(SECRET_VARIABLE, "").strip()
    if configured:
        return configured
    if not target.stage:
        raise SessionUsageError(
            f"set {SECRET_VARIABLE} (or GATEHOUSE_STAGE, for gatehouse/<stage>/session-keys)"
        )
    return f"gatehouse/{target.stage}/session-keys"


# TODO(session-event): build_admin_event("session", ...) once the audit schema has the type.
def session_revocation_event(
    *, stage: str, operator: str, stored: StoredSession, reason: str | None
) -> dict[str, Any]:
    """The audit event of an operator's revocation of ``stored`` (``reason``: their words)."""
    from chalicelib.audit.schema import build_session_event
    from chalicelib.audit.sections import SessionSection
    from chalicelib.identity import Identity
    from chalicelib.reasons import Reason

    principal = Identity(
        issuer=stored.issuer,
        subject=stored.subject,
        audience=stored.client_id,
        expires_at=stored.expires_at,
        email=stored.email,
        session_id=stored.idp_session_id,
        browser_session_id=stored.session_id,
    )
    section = SessionSection(
        "revoked",
        stored.session_id,
        stored.idp,
        Reason.SESSION_REVOKED.value,
        "operator",
        stored.expires_at,
        reason,
    )
    return build_session_event(section, stage=stage, identity=principal, operator=operator)


def _revoke(target: Target, store: SessionStore, stored: StoredSession, reason: str | None) -> None:
    from chalicelib.audit import AuditEmitter, AuditError, SqsAuditSink
    from chalicelib.reasons import Reason

    if stored.revoked:
        click.echo(
            visible(
                f"session {stored.session_id} was already revoked by {stored.revoked_by} "
                f"at {_time(stored.revoked_at)}"
            )
        )
        return
    operator = target.operator
    store.revoke(
        stored.session_id,
        by=operator,
        reason=Reason.SESSION_REVOKED,
        expires_at=stored.expires_at,
        mark_session=False,  # only the proxy writes SESSION items (infra/gatehouse.yaml)
    )
    event = session_revocation_event(
        stage=target.stage, operator=operator, stored=stored, reason=reason
    )
    try:
        AuditEmitter(SqsAuditSink(target.client("sqs"), target.audit_queue_url)).emit(event)
    except AuditError as exc:
        raise SessionCommandError(
            f"session {stored.session_id} is revoked, but its audit event was not enqueued "
            f"({exc}); the event is in this command's log output: keep it"
        ) from exc
    click.echo(visible(f"session {stored.session_id} of {stored.subject} ({stored.idp}) revoked"))


def _principal_sessions(
    store: SessionStore, subject: str, issuer: str | None
) -> list[StoredSession]:
    found = _matching(store.live(limit=1_000_000), subject, issuer)
    issuers = sorted({s.issuer for s in found})
    if len(issuers) > 1:
        raise SessionUsageError(
            f"{subject!r} has sessions with {len(issuers)} issuers ({', '.join(issuers)}): "
            "name one with --issuer"
        )
    if not found:
        click.echo(visible(f"no live sessions of {subject!r}"))
    return found


def _matching(
    sessions: list[StoredSession], subject: str | None, issuer: str | None
) -> list[StoredSession]:
    return [
        s
        for s in sessions
        if (subject is None or s.subject == subject)
        and (issuer is None or issuer in (s.issuer, s.idp))
    ]


def _target(obj: CliContext) -> Target:
    from gatehouse.target import resolve_target

    target = resolve_target(obj.state_dir)
    if not target.state_table:
        raise SessionUsageError(
            "no state table: set GATEHOUSE_STATE_TABLE (or start `gatehouse dev`)"
        )
    return target


def _store(target: Target) -> SessionStore:
    from chalicelib.aws.table import Table
    from chalicelib.sessions import SessionKeySource, SessionStore

    # Listing and revoking seal and open nothing: the secret is never read.
    keys = SessionKeySource(lambda: target.client("secretsmanager"), "unused")
    return SessionStore(Table(target.client("dynamodb"), target.state_table), keys)


@contextmanager
def _failures() -> Iterator[None]:
    """The library's and AWS's errors as one line each (exit 1); a missing stage exits 2."""
    from botocore.exceptions import BotoCoreError, ClientError

    from chalicelib.sessions import SessionError

    try:
        yield
    except SessionError as exc:
        raise SessionCommandError(str(exc)) from exc
    except ClientError as exc:
        code = exc.response.get("Error", {}).get("Code", "")
        hint = " (check your AWS credentials and role)" if "Denied" in code else ""
        raise SessionCommandError(f"AWS refused: {exc}{hint}") from exc
    except BotoCoreError as exc:
        raise SessionCommandError(f"AWS cannot be reached: {exc}") from exc


def _describe(stored: StoredSession) -> str:
    return visible(
        f"{stored.session_id}  {stored.idp}  {stored.subject}  {stored.email or '-'}  "
        f"signed in {_time(stored.signed_in_at)}  ends {_time(stored.expires_at)}"
    )


def _as_json(stored: StoredSession) -> dict[str, Any]:
    return {
        "session_id": stored.session_id,
        "issuer": stored.issuer,
        "idp": stored.idp,
        "subject": stored.subject,
        "email": stored.email,
        "signed_in_at": _time(stored.signed_in_at),
        "expires_at": _time(stored.expires_at),
        "has_refresh_token": stored.has_refresh_token,
    }


def _time(epoch: int | None) -> str:
    if epoch is None:
        return "-"
    return datetime.fromtimestamp(epoch, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
