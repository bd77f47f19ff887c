"""``gatehouse policy validate|apply|diff|history|rollback|explain``.

The lines printed for people go through :func:`gatehouse.terminal.visible`:
rule and route ids, globs, principals and grant approvers are read back from
stored records, which whoever could write the table could have filled with
terminal escapes.
"""

from __future__ import annotations

import ipaddress
import json
import sys
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from chalicelib.identity import Identity
from chalicelib.policy import (
    AccessRequest,
    AmbiguousPath,
    CompiledPolicy,
    Decision,
    PolicyError,
    PolicyStore,
    PolicyVersions,
    normalize_path,
    parse_policy,
)
from chalicelib.policy.store import compile_record
from gatehouse.policy_files import PolicyFileError as PolicyFileError
from gatehouse.policy_files import load_policy_file as load_policy_file
from gatehouse.terminal import visible

if TYPE_CHECKING:
    from chalicelib.grants import Grant
    from chalicelib.policy import PolicyDocument
    from chalicelib.policy.admin import ChangeResult, PolicyAdmin
    from chalicelib.policy.store import Activation
    from gatehouse.cli import CliContext
    from gatehouse.target import Target


def validate(path: Path) -> PolicyDocument:
    """Validate the file; raise PolicyInvalid listing every problem."""
    return parse_policy(load_policy_file(path), source_name=str(path))


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


def apply(target: Target, path: Path) -> ChangeResult:
    """Validate, store, archive, activate and audit the policy in ``path``."""
    document = load_policy_file(path)
    return admin(target).apply(document, source_name=str(path))


def describe_change(result: ChangeResult, source: str) -> list[str]:
    """What an apply or rollback printed."""
    record, activation = result.record, result.activation
    if activation is None:
        return [
            visible(f"{source}: already active as version {record.version} ({record.checksum})")
        ]
    reused = "" if result.created_version else " (an existing version)"
    replaced = (
        f"replacing version {activation.previous_version}"
        if activation.previous_version is not None
        else "the first policy of this stage"
    )
    lines = [
        f"{source}: version {record.version}{reused} active as activation "
        f"{activation.activation}, {replaced} ({record.checksum})"
    ]
    return [visible(line) for line in lines + ["  " + line for line in result.diff.lines()]]


def format_history(activations: Sequence[Activation]) -> list[str]:
    """One line per activation, newest first."""
    lines = []
    for item in activations:
        summary = item.summary or {}
        rules = summary.get("rules", {})
        counts = (
            f"rules +{len(rules.get('added', []))} -{len(rules.get('removed', []))} "
            f"~{len(rules.get('changed', {}))}"
            if rules
            else ""
        )
        lines.append(
            f"#{item.activation:<4} {item.action:8} "
            f"v{item.previous_version or 0} -> v{item.version}  {item.checksum[:19]}  "
            f"{item.activated_at}  {item.activated_by}  {counts}".rstrip()
        )
    return [visible(line) for line in lines]


# --- explain ---------------------------------------------------------------------------------


def parse_time(text: str | None, *, option: str = "--at") -> float:
    """Epoch seconds from ``None`` (now), an epoch number or an ISO 8601 time (UTC if naive)."""
    if text is None:
        return time.time()
    try:
        return float(text)
    except ValueError:
        pass
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError as exc:
        raise PolicyFileError(
            f"{option} {text!r} is not epoch seconds or an ISO 8601 time"
        ) from exc
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


def parse_source_ip(text: str) -> str:
    """``--ip``: an IPv4 or IPv6 address, or empty (unknown).

    A typo must not turn into a plausible ``source_not_allowed`` denial.
    """
    if not text:
        return ""
    try:
        return str(ipaddress.ip_address(text.strip()))
    except ValueError as exc:
        raise PolicyFileError(f"--ip {text!r} is not an IPv4 or IPv6 address") from exc


def parse_claims(text: str | None) -> dict[str, Any]:
    """``--claims``: a JSON object, or ``name=value,name=value`` (strings)."""
    if not text:
        return {}
    if text.lstrip().startswith("{"):
        try:
            claims = json.loads(text)
        except ValueError as exc:
            raise PolicyFileError(f"--claims is not a JSON object: {exc}") from exc
        if not isinstance(claims, dict):
            raise PolicyFileError("--claims must be a JSON object")
        return claims
    claims = {}
    for pair in text.split(","):
        name, sep, value = pair.partition("=")
        if not sep or not name.strip():
            raise PolicyFileError(f"--claims entry {pair!r} is not name=value")
        claims[name.strip()] = value.strip()
    return claims


def explain_identity(
    *,
    issuer: str,
    subject: str,
    email: str | None,
    groups: Sequence[str],
    claims: dict[str, Any],
    amr: Sequence[str],
    auth_time: float | None,
) -> Identity:
    """The principal to explain a decision for (the email is taken as verified)."""
    return Identity(
        issuer=issuer,
        subject=subject,
        audience="explain",
        expires_at=2**31,
        email=email.lower() if email else None,
        groups=frozenset(groups),
        groups_claimed=True,
        amr=tuple(sorted(set(amr))),
        auth_time=int(auth_time) if auth_time is not None else None,
        claims=dict(claims),
    )


def load_policy(
    target: Target, version: int | None, *, fallback_issuer: str | None = None
) -> CompiledPolicy:
    """The active policy, or version ``version`` (decision replay), as the stage compiles it.

    Its default issuer is the stage's first trusted issuer, as in the functions
    (``fallback_issuer`` when the stage's issuers are not known: see :func:`default_issuer`).
    """
    default = default_issuer(target, fallback_issuer)
    store = PolicyStore(target.client("dynamodb"), target.state_table)
    if version is not None:
        return PolicyVersions(store, default_issuer=default).get(version)
    record = store.load_active()
    if record is None:
        raise PolicyError("no policy has been activated")
    return compile_record(record, default_issuer=default)


def default_issuer(target: Target, fallback: str | None = None) -> str:
    """The stage's default issuer: its first trusted issuer (what unqualified subjects name).

    The local stack's issuer, else the first of ``GATEHOUSE_TRUSTED_ISSUERS``;
    when neither is known, ``fallback`` (the issuer of the principal asked
    about), said on stderr: users, groups, domains and claims that rules name
    without ``issuers`` are then taken as that issuer's.

    Raises
    ------
    NoTarget
        When none is known: a decision cannot be evaluated without it.
    """
    from gatehouse.target import NoTarget

    try:
        return target.trusted_issuers[0].issuer
    except NoTarget as exc:
        if fallback:
            print(
                visible(
                    f"gatehouse: the stage's trusted issuers are unknown ({exc}); taking "
                    f"{fallback} as its default issuer (set GATEHOUSE_TRUSTED_ISSUERS)"
                ),
                file=sys.stderr,
            )
            return fallback
        raise NoTarget(
            f"the stage's default issuer is needed to evaluate its policy ({exc})"
        ) from exc


def explain(
    policy: CompiledPolicy,
    identity: Identity,
    request: AccessRequest,
    grants: Sequence[Grant] = (),
) -> Decision:
    """The decision ``policy`` makes for ``identity`` and ``request`` (with its grants)."""
    return policy.evaluate(identity, request, grants)


def normalised_or_refusal(path: str) -> str | None:
    """The normalised path, or None when it is ambiguous (refused with 400)."""
    try:
        return normalize_path(path)
    except AmbiguousPath:
        return None


def format_decision(decision: Decision, request: AccessRequest) -> list[str]:
    """The decision as printed by ``gatehouse policy explain``."""
    verdict = "ALLOW" if decision.allowed else "DENY"
    at = datetime.fromtimestamp(request.at, UTC).isoformat(timespec="seconds")
    lines = [
        f"{verdict}  {request.method} {request.host}{request.path}  at {at}",
        f"  reasons:       {', '.join(reason.value for reason in decision.reasons)}",
        f"  matched rules: {', '.join(decision.matched_rules) or '-'}",
        f"  route:         {decision.route.id if decision.route else '-'}",
        f"  policy:        version {decision.policy_version} ({decision.policy_checksum})",
    ]
    if decision.grant is not None:
        grant = decision.grant
        lines.append(f"  grant:         {grant.id} approved by {grant.approver}")
    if decision.break_glass:
        lines.append(f"  break-glass:   justification {decision.justification!r}")
    return [visible(line) for line in lines]


def decision_json(decision: Decision) -> dict[str, Any]:
    """The decision as ``--json`` prints it."""
    return {
        "allowed": decision.allowed,
        "reasons": [reason.value for reason in decision.reasons],
        "matched_rules": list(decision.matched_rules),
        "route": decision.route.id if decision.route else None,
        "policy_version": decision.policy_version,
        "policy_checksum": decision.policy_checksum,
        "grant_id": decision.grant.id if decision.grant else None,
        "break_glass": decision.break_glass,
    }


# --- the commands ----------------------------------------------------------------------------

_POLICY_FILE = click.Path(path_type=Path, readable=False)


@click.group(
    "policy",
    short_help="validate, apply, inspect and replay policies",
    help="Validate, apply, inspect and replay policies.\n\n"
    "Exit status: 0 done; 1 explain denied; 2 refused or failed, nothing "
    "changed; 3 the policy was activated but its archive copy or audit event was not "
    "written (the message says which).",
)
def policy() -> None:
    """``gatehouse policy ...``."""


@policy.command("validate", short_help="check a policy file; change nothing")
@click.argument("file", type=_POLICY_FILE, help="the policy file (YAML or JSON)")
def validate_command(file: Path) -> int:
    """Check a policy file; change nothing."""
    document = validate(file)
    counts = f"{len(document.routes)} routes, {len(document.rules)} rules"
    print(f"{file}: valid ({counts}, {document.checksum})")
    return 0


@policy.command("apply", short_help="validate, store, archive and activate (audited)")
@click.argument("file", type=_POLICY_FILE, help="the policy file (YAML or JSON)")
@click.pass_obj
def apply_command(obj: CliContext, file: Path) -> int:
    """Validate, store, archive and activate the policy in FILE (audited)."""
    from chalicelib.policy.admin import PolicyChangeIncomplete
    from gatehouse.target import resolve_target

    target = resolve_target(obj.state_dir)
    admin(target)  # a stage description without the table or queue fails before the file is read
    try:
        result = apply(target, file)
    except PolicyChangeIncomplete as exc:
        # Not exit 2: the change is in force, and a script must not retry it as if not.
        print(f"gatehouse: {exc}", file=sys.stderr)
        return 3
    print("\n".join(describe_change(result, str(file))))
    return 0


@policy.command("diff", short_help="what applying the file would change")
@click.argument("file", type=_POLICY_FILE, help="the policy file (YAML or JSON)")
@click.pass_obj
def diff_command(obj: CliContext, file: Path) -> int:
    """What applying the policy in FILE would change."""
    from gatehouse.target import resolve_target

    policy_admin = admin(resolve_target(obj.state_dir))
    validate(file)
    lines = policy_admin.diff(load_policy_file(file)).lines()
    print("\n".join(map(visible, lines)) if lines else "no changes")
    return 0


@policy.command("history", short_help="activations, newest first")
@click.option("-n", "count", type=int, default=20, show_default=True, help="how many")
@click.pass_obj
def history_command(obj: CliContext, count: int) -> int:
    """Activations, newest first."""
    from gatehouse.target import resolve_target

    print("\n".join(format_history(admin(resolve_target(obj.state_dir)).history(count))))
    return 0


@policy.command("rollback", short_help="activate an earlier version again")
@click.argument("version", type=int, help="the version to activate again")
@click.pass_obj
def rollback_command(obj: CliContext, version: int) -> int:
    """Activate an earlier VERSION again (audited)."""
    from chalicelib.policy.admin import PolicyChangeIncomplete
    from gatehouse.target import resolve_target

    try:
        result = admin(resolve_target(obj.state_dir)).rollback(version)
    except PolicyChangeIncomplete as exc:
        print(f"gatehouse: {exc}", file=sys.stderr)
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
@click.option("--at", help="when (epoch seconds or ISO 8601, UTC if no offset; default now)")
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

    Exit status 0 when the request is allowed, 1 when it is denied.
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
    compiled = load_policy(target, version, fallback_issuer=principal_issuer)
    store = GrantStore(target.client("dynamodb"), target.state_table)
    grants = store.grants_for_principal(identity.issuer, identity.subject)
    decision = explain(compiled, identity, request, grants)
    if as_json:
        print(json.dumps(decision_json(decision), indent=2))
    else:
        print("\n".join(format_decision(decision, request)))
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
