"""``gatehouse policy validate|apply|diff|history|rollback|explain``.

The lines printed for people go through :func:`gatehouse.terminal.visible`:
rule and route ids, globs, principals and grant approvers are read back from
stored records, which whoever could write the table could have filled with
terminal escapes.
"""

from __future__ import annotations

import ipaddress
import json
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

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


def load_policy(target: Target, version: int | None) -> CompiledPolicy:
    """The active policy, or version ``version`` (decision replay)."""
    store = PolicyStore(target.client("dynamodb"), target.state_table)
    if version is not None:
        return PolicyVersions(store).get(version)
    record = store.load_active()
    if record is None:
        raise PolicyError("no policy has been activated")
    return compile_record(record)


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
