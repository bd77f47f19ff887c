"""``gatehouse policy validate|apply|diff|history|rollback|explain``.

What they print is built in :mod:`gatehouse.policy_output`; ``explain``'s
replay is :mod:`gatehouse.policy_explain`.

The lines printed for people go through :func:`gatehouse.terminal.visible`:
rule and route ids, globs, principals and grant approvers are read back from
stored records, which whoever could write the table could have filled with
terminal escapes.

Every change names its operator (:attr:`gatehouse.target.Target.operator`:
the AWS caller's ARN from STS on a deployed stage, ``local:<user>`` on the
local stack) and, with ``--reason``, why; a deployed stage requires the
reason. ``policy diff`` answers like ``git diff --exit-code``: 1 when
applying the file would change the stage, 0 when not.
"""

from __future__ import annotations

import csv
import io
import json
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from chalicelib.policy import (
    AccessRequest,
    PolicyStore,
    parse_policy,
)
from chalicelib.readable import MAX_JUSTIFICATION, describe_character, unreadable_character
from gatehouse.errors import NEGATIVE, InputError
from gatehouse.policy_explain import (
    choose_version,
    decision_json,
    explain,
    explain_identity,
    format_decision,
    load_policy,
    normalised_or_refusal,
    parse_claims,
    parse_source_ip,
    parse_time,
)
from gatehouse.policy_files import PolicyFileError as PolicyFileError
from gatehouse.policy_files import load_policy_file as load_policy_file
from gatehouse.policy_files import load_policy_file_with_variables, parse_variables
from gatehouse.policy_output import (
    DIFF_COLUMNS,
    HISTORY_COLUMNS,
    compare,
    comparison_json,
    comparison_rows,
    describe_change,
    format_comparison,
    format_history,
    history_json,
    history_rows,
)
from gatehouse.terminal import visible

if TYPE_CHECKING:
    from chalicelib.policy import PolicyDocument
    from chalicelib.policy.admin import ChangeResult, PolicyAdmin
    from gatehouse.cli import CliContext
    from gatehouse.target import Target

# How long a change's reason may be: as long as a break-glass justification.
MAX_REASON = MAX_JUSTIFICATION


def validate(path: Path, variables: Mapping[str, str] | None = None) -> PolicyDocument:
    """Validate the file (its ``${NAME}`` placeholders filled in from ``variables``).

    Raises
    ------
    PolicyFileError
        When the file cannot be read or parsed.
    InputError
        When a placeholder names a variable that is not set.
    PolicyInvalid
        Listing every problem of the document.
    """
    return parse_policy(read_document(path, variables), source_name=str(path))


def read_document(path: Path, variables: Mapping[str, str] | None = None) -> dict[str, Any]:
    """The policy document in ``path`` with its placeholders filled in (not yet validated).

    Raises
    ------
    PolicyFileError, InputError
        As :func:`gatehouse.policy_files.load_policy_file_with_variables`.
    """
    return load_policy_file_with_variables(path, variables or {})


def change_reason(target: Target, reason: str | None) -> str | None:
    """``--reason``, checked: required on a deployed stage, one readable line of text.

    Raises
    ------
    InputError
        When it is missing on a deployed stage, empty, too long, or holds a
        character that would not read as itself in the audit trail.
    """
    if reason is None:
        if target.local:
            return None
        raise InputError(
            f"--reason is required on a deployed stage ({target.stage or 'from GATEHOUSE_*'}): "
            "say why the policy changes, e.g. --reason 'auditors need the Q3 reports'"
        )
    reason = reason.strip()
    if not reason:
        raise InputError("--reason is empty: say why the policy changes")
    if len(reason) > MAX_REASON:
        raise InputError(f"--reason is {len(reason)} characters; at most {MAX_REASON}")
    bad = unreadable_character(reason)
    if bad is not None:
        raise InputError(
            f"--reason holds {describe_character(bad)}, which the audit trail would not show "
            "as itself: write it as one line of plain text"
        )
    return reason


def admin(target: Target) -> PolicyAdmin:
    """Policy administration for the target stage, acting as the AWS caller."""
    from chalicelib.audit import AuditEmitter, SqsAuditSink
    from chalicelib.policy.admin import PolicyAdmin
    from chalicelib.policy.archive import PolicyArchive

    return PolicyAdmin(
        PolicyStore(target.client("dynamodb"), target.state_table),
        PolicyArchive(target.client("s3"), target.audit_bucket),
        AuditEmitter(SqsAuditSink(target.client("sqs"), target.audit_queue_url)),
        stage=target.stage,
        operator=target.operator,
    )


def apply(
    target: Target,
    path: Path,
    *,
    reason: str | None = None,
    variables: Mapping[str, str] | None = None,
) -> ChangeResult:
    """Validate, store, archive, activate and audit the policy in ``path``.

    ``reason`` is recorded on the activation and in its ``policy_change`` event.
    """
    document = read_document(path, variables)
    return admin(target).apply(document, source_name=str(path), reason=reason)


# --- the commands ----------------------------------------------------------------------------

_POLICY_FILE = click.Path(path_type=Path, readable=False)
_VARIABLES = click.option(
    "--var",
    "var",
    multiple=True,
    metavar="NAME=VALUE",
    help="fill in ${NAME} in the file's string values (repeatable; an unset one is an error)",
)
_REASON = click.option(
    "--reason",
    metavar="TEXT",
    help="why, recorded in the policy_change audit event (required on a deployed stage)",
)


_OUTPUT = click.option(
    "-o",
    "--output",
    type=click.Choice(["table", "json", "csv"]),
    default="table",
    show_default=True,
    help="for people (table), or for programs (json, csv)",
)


def _print_csv(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    # Cells are policy and record text: a terminal must not act on what they hold.
    writer.writerows(
        [visible("" if value is None else str(value)) for value in row] for row in rows
    )
    sys.stdout.write(buffer.getvalue())


@click.group(
    "policy",
    short_help="validate, apply, inspect and replay policies",
    help="Validate, apply, inspect and replay policies.\n\n"
    "Exit status: 0 done; 1 explain denied, or diff found changes; 2 refused or failed, "
    "nothing changed; 3 AWS or the local stack is unavailable, or the policy was activated "
    "but its archive copy or audit event was not written (the message says which).",
)
def policy() -> None:
    """``gatehouse policy ...``."""


@policy.command("validate", short_help="check a policy file; change nothing")
@click.argument("file", type=_POLICY_FILE, help="the policy file (YAML or JSON)")
@_VARIABLES
@_OUTPUT
def validate_command(file: Path, var: tuple[str, ...], output: str) -> int:
    """Check a policy file; change nothing.

    -o json prints {"file", "valid", "routes", "rules", "checksum"}; a file
    that does not validate is exit status 2 with every problem on stderr.
    """
    variables = parse_variables(var)
    # The one-argument call is the plain case (and what tests stand in for).
    document = validate(file, variables) if variables else validate(file)
    record = {
        "file": str(file),
        "valid": True,
        "routes": len(document.routes),
        "rules": len(document.rules),
        "checksum": document.checksum,
    }
    if output == "json":
        print(json.dumps(record, indent=2))
    elif output == "csv":
        _print_csv(list(record), [["true" if v is True else v for v in record.values()]])
    else:
        counts = f"{len(document.routes)} routes, {len(document.rules)} rules"
        print(visible(f"{file}: valid ({counts}, {document.checksum})"))
    return 0


@policy.command("apply", short_help="validate, store, archive and activate (audited)")
@click.argument("file", type=_POLICY_FILE, help="the policy file (YAML or JSON)")
@_REASON
@_VARIABLES
@click.pass_obj
def apply_command(obj: CliContext, file: Path, reason: str | None, var: tuple[str, ...]) -> int:
    """Validate, store, archive and activate the policy in FILE (audited).

    The policy_change event names the operator (the AWS caller's ARN; on the
    local stack local:<user>) and --reason, which a deployed stage requires.
    """
    from chalicelib.policy.admin import PolicyChangeIncomplete
    from gatehouse.target import resolve_target

    target = resolve_target(obj.state_dir)
    why = change_reason(target, reason)
    variables = parse_variables(var)
    admin(target)  # a stage description without the table or queue fails before the file is read
    try:
        result = apply(target, file, reason=why, variables=variables)
    except PolicyChangeIncomplete as exc:
        # Not exit 2: the change is in force, and a script must not retry it as if not.
        print(visible(f"gatehouse: {exc}"), file=sys.stderr)
        return 3
    print("\n".join(describe_change(result, str(file))))
    return 0


@policy.command(
    "diff",
    short_help="what applying the file would change (exit 1 when it would)",
    epilog="""\b
-o json prints one object (format 1):
  {"format": 1, "changed": true|false,
   "active": {"version": N, "checksum": "sha256:..."} | null,
   "proposed": {"source": FILE, "checksum": "sha256:...",
                "version": N | null},   (a stored version holding this document)
   "order_only": true|false,            (only the order differs: no decision changes)
   "route_order_changed": [[ROUTE_ID, ...], ...],
   "changes": [{"section": "routes"|"rules"|"grants"|"break_glass"|"document",
                "id": ID | null, "change": "added"|"removed"|"changed",
                "fields": [{"field": "subjects.groups", "old": VALUE | null,
                            "new": VALUE | null}, ...]}, ...]}
-o csv prints section,id,change,field,old,new: one row per field.""",
)
@click.argument("file", type=_POLICY_FILE, help="the policy file (YAML or JSON)")
@_VARIABLES
@_OUTPUT
@click.pass_obj
def diff_command(obj: CliContext, file: Path, var: tuple[str, ...], output: str) -> int:
    """What applying the policy in FILE would change, field by field (old -> new).

    Exit status, as git diff --exit-code: 0 no changes, 1 changes, 2 the file
    or the command is wrong.
    """
    from gatehouse.target import resolve_target

    target = resolve_target(obj.state_dir)
    # Read-only: no audit queue and no caller identity needed, only the state table.
    if not target.state_table:
        raise InputError("the stage's state table is not known: set GATEHOUSE_STATE_TABLE")
    comparison = compare(target, file, parse_variables(var))
    if output == "json":
        print(json.dumps(comparison_json(comparison), indent=2))
    elif output == "csv":
        _print_csv(DIFF_COLUMNS, comparison_rows(comparison))
    else:
        print("\n".join(format_comparison(comparison)))
    return NEGATIVE if comparison.changed else 0


@policy.command("history", short_help="activations, newest first")
@click.option(
    "-n", "count", type=click.IntRange(min=1), default=20, show_default=True, help="how many"
)
@_OUTPUT
@click.pass_obj
def history_command(obj: CliContext, count: int, output: str) -> int:
    """Activations, newest first: who changed the policy, when, from which version, and why."""
    from gatehouse.target import resolve_target

    activations = admin(resolve_target(obj.state_dir)).history(count)
    if output == "json":
        print(json.dumps(history_json(activations), indent=2))
    elif output == "csv":
        _print_csv(HISTORY_COLUMNS, history_rows(activations))
    elif activations:
        print("\n".join(format_history(activations)))
    else:
        print("no policy has been activated")
    return 0


@policy.command("rollback", short_help="activate an earlier version again")
@click.argument("version", type=int, help="the version to activate again")
@_REASON
@click.pass_obj
def rollback_command(obj: CliContext, version: int, reason: str | None) -> int:
    """Activate an earlier VERSION again (audited, with --reason as apply)."""
    from chalicelib.policy.admin import PolicyChangeIncomplete
    from gatehouse.target import resolve_target

    target = resolve_target(obj.state_dir)
    why = change_reason(target, reason)
    try:
        result = admin(target).rollback(version, reason=why)
    except PolicyChangeIncomplete as exc:
        print(visible(f"gatehouse: {exc}"), file=sys.stderr)
        return 3
    print("\n".join(describe_change(result, f"rollback to {version}")))
    return 0


@policy.command(
    "explain",
    short_help="the decision for a request, with reasons and matched rules (exit 0 allow, 1 deny)",
)
@click.option("--sub", required=True, help="the principal's subject")
@click.option("--issuer", help="default: the stage's default issuer (its first trusted issuer)")
@click.option("--email", help="taken as verified")
@click.option("--groups", default="", help="comma-separated")
@click.option("--claims", help="name=value,... or a JSON object")
@click.option("--amr", default="", help="comma-separated, e.g. pwd,mfa")
@click.option("--auth-time", help="epoch seconds or ISO 8601 (UTC if no offset)")
@click.option("--method", required=True, help="the request's HTTP method")
@click.option("--host", required=True, help="the request's Host")
@click.option("--path", required=True, help="the request's path")
@click.option("--ip", default="", help="source address")
@click.option(
    "--at",
    help="when (epoch seconds or ISO 8601, UTC if no offset; default now); without "
    "--version, the version in force at that time is evaluated",
)
@click.option("--justification", help="X-Gatehouse-Justification (break-glass)")
@click.option("--version", type=int, help="a historical version (decision replay)")
@click.option("--json", "as_json", is_flag=True, help="the decision as JSON")
@click.pass_obj
def explain_command(
    obj: CliContext,
    *,
    sub: str,
    issuer: str | None,
    email: str | None,
    groups: str,
    claims: str | None,
    amr: str,
    auth_time: str | None,
    method: str,
    host: str,
    path: str,
    ip: str,
    at: str | None,
    justification: str | None,
    version: int | None,
    as_json: bool,
) -> int:
    """The decision for a request, with reasons and matched rules.

    The version evaluated is --version; else, with --at, the one the policy
    history says was in force at that time; else the active one. The output
    says which and why. Exit status 0 when the request is allowed, 1 when it
    is denied.
    """
    from chalicelib.grants import GrantStore
    from gatehouse.target import resolve_target

    target = resolve_target(obj.state_dir)
    principal_issuer = _explain_issuer(target, issuer)
    authenticated_at = parse_time(auth_time, option="--auth-time") if auth_time else None
    identity = explain_identity(
        issuer=principal_issuer,
        subject=sub,
        email=email,
        groups=[g for g in groups.split(",") if g],
        claims=parse_claims(claims),
        amr=[m for m in amr.split(",") if m],
        auth_time=authenticated_at,
    )
    normalised = normalised_or_refusal(path)
    if normalised is None:
        print(visible(f"DENY  {method} {host}{path}"))
        print("  reasons:       ambiguous_path (400)")
        return 1
    request = AccessRequest(
        host,
        method.upper(),
        normalised,
        source_ip=parse_source_ip(ip),
        at=parse_time(at),
        justification=justification,
    )
    choice = choose_version(target, version, at)
    compiled = load_policy(target, choice.version, fallback_issuer=principal_issuer)
    store = GrantStore(target.client("dynamodb"), target.state_table)
    grants = store.grants_for_principal(identity.issuer, identity.subject)
    decision = explain(compiled, identity, request, grants)
    if as_json:
        print(json.dumps(decision_json(decision, choice), indent=2))
    else:
        print("\n".join(format_decision(decision, request, choice)))
    return 0 if decision.allowed else 1


def _explain_issuer(target: Target, issuer: str | None) -> str:
    """``--issuer``, else the stage's issuer, else its first trusted issuer."""
    chosen = issuer or target.issuer
    if chosen:
        return chosen
    from gatehouse.target import NoTarget

    try:
        return target.trusted_issuers[0].issuer
    except NoTarget as exc:
        raise NoTarget(f"pass --issuer ({exc})") from exc
