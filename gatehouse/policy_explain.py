"""``policy explain``: a request replayed against the policy version in force (or a given one)."""

from __future__ import annotations

import ipaddress
import json
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from chalicelib.authorize.decider import ended_grant_detail
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
)
from chalicelib.policy.in_force import activation_in_force
from chalicelib.policy.store import compile_record
from gatehouse.errors import InputError
from gatehouse.policy_files import PolicyFileError as PolicyFileError
from gatehouse.policy_files import load_policy_file as load_policy_file
from gatehouse.terminal import visible

if TYPE_CHECKING:
    from chalicelib.grants import Grant
    from chalicelib.policy.store import Activation
    from gatehouse.target import Target


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


@dataclass(frozen=True)
class PolicyChoice:
    """Which policy version ``explain`` evaluates, and why.

    ``basis`` is ``version`` (``--version``), ``in_force_at`` (``--at``: the
    version the policy history says was in force then) or ``active`` (neither:
    the active version).
    """

    basis: str
    version: int | None  # None: the active version (read with the policy)
    why: str
    activation: Activation | None = None

    def as_json(self, version: int) -> dict[str, Any]:
        """The choice as ``explain --json`` prints it."""
        return {
            "basis": self.basis,
            "version": version,
            "activation": self.activation.activation if self.activation else None,
            "activated_at": self.activation.activated_at if self.activation else None,
            "why": self.why,
        }


def choose_version(target: Target, version: int | None, at: str | None) -> PolicyChoice:
    """The version ``explain`` evaluates: ``--version``, else the one in force at ``--at``.

    Raises
    ------
    PolicyFileError
        When ``at`` is not a time.
    InputError
        When no activation had happened by ``at``.
    PolicyUnavailable
        When the policy history cannot be read.
    """
    if version is not None:
        return PolicyChoice("version", version, f"--version {version} was asked for")
    if at is None:
        return PolicyChoice("active", None, "the active version (no --at or --version)")
    moment = parse_time(at)
    when = _iso(moment)
    activations = PolicyStore(target.client("dynamodb"), target.state_table).activations(None)
    found = activation_in_force(activations, moment)
    if found is None:
        first = min(activations, key=lambda item: item.activation, default=None)
        since = (
            f"the first activation was at {first.activated_at}"
            if first
            else "no policy has been activated"
        )
        raise InputError(
            f"no policy was in force at {when} ({since}): pass a later --at, "
            "or --version to evaluate a version at that time"
        )
    return PolicyChoice(
        "in_force_at",
        found.version,
        f"in force at {when}: activation #{found.activation} ({found.action} by "
        f"{found.activated_by} at {found.activated_at})",
        found,
    )


def _iso(moment: float) -> str:
    return datetime.fromtimestamp(moment, UTC).isoformat(timespec="seconds")


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
    """The decision ``policy`` makes for ``identity`` and ``request`` (with its grants).

    As the authorizer sees them: each grant by its record (in force or not at
    the request's time), and those that ended within a day before it to name
    a refusal they would have covered.
    """
    from chalicelib.grants.store import ENDED_GRANTS_KEPT_SECONDS

    since = request.at - ENDED_GRANTS_KEPT_SECONDS
    ended = [g for g in grants if g.ended_at is not None and since <= g.ended_at <= request.at]
    return policy.evaluate(identity, request, grants, ended)


def normalised_or_refusal(path: str) -> str | None:
    """The normalised path, or None when it is ambiguous (refused with 400)."""
    try:
        return normalize_path(path)
    except AmbiguousPath:
        return None


def format_decision(
    decision: Decision, request: AccessRequest, choice: PolicyChoice | None = None
) -> list[str]:
    """The decision as printed by ``gatehouse policy explain`` (``choice``: why that version)."""
    verdict = "ALLOW" if decision.allowed else "DENY"
    lines = [
        f"{verdict}  {request.method} {request.host}{request.path}  at {_iso(request.at)}",
        f"  reasons:       {', '.join(reason.value for reason in decision.reasons)}",
        f"  matched rules: {', '.join(decision.matched_rules) or '-'}",
        f"  route:         {decision.route.id if decision.route else '-'}",
        f"  policy:        version {decision.policy_version} ({decision.policy_checksum})",
    ]
    if choice is not None:
        lines.append(f"  version used:  {decision.policy_version}: {choice.why}")
    if decision.grant is not None:
        grant = decision.grant
        lines.append(f"  grant:         {grant.id} approved by {grant.approver}")
    if decision.ended_grant is not None:
        detail = ended_grant_detail(decision.ended_grant, request.at)
        lines.append(f"  ended grant:   {detail} (would have covered this request)")
    if decision.break_glass:
        lines.append(f"  break-glass:   justification {decision.justification!r}")
    return [visible(line) for line in lines]


def decision_json(decision: Decision, choice: PolicyChoice | None = None) -> dict[str, Any]:
    """The decision as ``--json`` prints it (with ``policy_choice`` when ``choice`` is given)."""
    answer = {
        "allowed": decision.allowed,
        "reasons": [reason.value for reason in decision.reasons],
        "matched_rules": list(decision.matched_rules),
        "route": decision.route.id if decision.route else None,
        "policy_version": decision.policy_version,
        "policy_checksum": decision.policy_checksum,
        "grant_id": decision.grant.id if decision.grant else None,
        "break_glass": decision.break_glass,
    }
    if decision.ended_grant is not None:
        answer["ended_grant_id"] = decision.ended_grant.id
    if choice is not None:
        answer["policy_choice"] = choice.as_json(decision.policy_version)
    return answer
