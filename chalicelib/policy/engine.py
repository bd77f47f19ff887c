"""Access decisions: default deny, any matching deny beats every allow.

A :class:`CompiledPolicy` finds the request's route (:mod:`chalicelib.policy.routing`)
and looks only at the rules indexed under it for this principal and this
method (:mod:`chalicelib.policy.rule_index`), however many rules the policy
holds; which rules match is memoised, conditions, grants and break-glass
are evaluated on every request.

Subjects are issuer-qualified: a rule's users, groups, domains and claims
are those of the issuers it lists, or of the stage's *default issuer* (the
first trusted issuer, given to :class:`CompiledPolicy`) when it lists none;
so a second identity provider's principals match only rules that name it,
and a single-issuer policy means what it always meant. Break-glass groups
are the default issuer's.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from chalicelib.policy.document import (
    HTTP_METHODS,
    MAX_GRANT_DURATION_SECONDS,
    PolicyDocument,
    Route,
    Rule,
    claim_key,
)
from chalicelib.policy.routing import RouteTable
from chalicelib.policy.rule_index import RuleIndex
from chalicelib.reasons import Reason

if TYPE_CHECKING:
    from chalicelib.identity import Identity
    from chalicelib.policy.grant import Grant
    from chalicelib.policy.subjects import Namespace, SubjectKey

_MEMO_SIZE = 8192
_REASON_ORDER = {reason: position for position, reason in enumerate(Reason)}


@dataclass(frozen=True, slots=True)
class AccessRequest:
    """What is being asked for. ``path`` is already normalised.

    Attributes
    ----------
    host, method, path:
        Where the request goes.
    source_ip:
        The client address API Gateway saw (for ``source_cidrs``).
    at:
        When, in epoch seconds (for ``hours``, ``max_auth_age`` and grant expiry).
    justification:
        The ``X-Gatehouse-Justification`` header, if sent (for break-glass).
    """

    host: str
    method: str
    path: str
    source_ip: str = ""
    at: float = field(default_factory=time.time)
    justification: str | None = None


@dataclass(frozen=True, slots=True)
class Decision:
    """The outcome of evaluating a policy for one request.

    ``matched_rules`` lists the rules that decided: the matching denies, or
    the matching allows; when access is refused because an allow rule's
    conditions did not hold, those rules (and ``reasons`` names the conditions).
    """

    allowed: bool
    reasons: tuple[Reason, ...]
    matched_rules: tuple[str, ...]
    route: Route | None
    policy_version: int
    policy_checksum: str
    grant: Grant | None = None
    break_glass: bool = False
    justification: str | None = None
    # On a refusal only: the principal's ended grant that would have covered the request.
    ended_grant: Grant | None = None


@dataclass(frozen=True, slots=True)
class Scope:
    """Methods on the paths of one glob: part of what a principal may reach at most."""

    methods: frozenset[str]
    glob: str


@dataclass(frozen=True, slots=True)
class Reach:
    """What a principal may reach at most: every path (break-glass), or these scopes."""

    everything: bool
    scopes: tuple[Scope, ...] = ()


@dataclass(frozen=True, slots=True)
class _PathRules:
    """What one (host, method, path) selects, whoever asks: its route, and which rules match it.

    Memoised apart from who asks, so an unseen principal on a path seen
    before pays for the subject lookups only, not for the route lookup and
    the glob matching.
    """

    route: Route | None
    # The route's rules for the method, by subject key (the index, unfiltered).
    by_subject: Mapping[SubjectKey, Sequence[Rule]]
    # Rule id -> whether its paths match this path; filled as principals meet the rules.
    path_matches: dict[str, bool] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class _Match:
    """The rules whose subjects, action and paths match: the memoised part of a decision."""

    route: Route | None
    denies: tuple[Rule, ...]
    allows: tuple[Rule, ...]
    # Set when the outcome cannot depend on time, source, grants or break-glass.
    decision: Decision | None
    # Decisions already built for this match, by what decided them.
    built: dict[tuple[object, ...], Decision] = field(default_factory=dict)


class CompiledPolicy:
    """A policy document, indexed for fast decisions.

    Parameters
    ----------
    document:
        The validated document.
    version:
        The version number under which it was activated.
    default_issuer:
        The stage's default issuer (its first trusted issuer): users, groups,
        domains and claims that a rule names without ``issuers`` are its, and
        so are the break-glass groups. Trailing slashes and the case of its
        scheme and host do not count.
    """

    def __init__(self, document: PolicyDocument, version: int, *, default_issuer: str) -> None:
        self.document = document
        self.version = version
        self.checksum = document.checksum
        self._routes = RouteTable(document.routes)
        self._rules = RuleIndex(document.rules, default_issuer=default_issuer)
        self._namespaces = self._rules.namespaces
        self.default_issuer = self._rules.default_issuer
        self._order = {rule.id: position for position, rule in enumerate(document.rules)}
        self._memo: dict[tuple[object, ...], _Match] = {}
        self._path_memo: dict[tuple[str, str, str], _PathRules] = {}
        # Claims named by any rule: they are part of who someone is, so of the memo key.
        self.claim_names: tuple[str, ...] = tuple(
            sorted({name for rule in document.rules for name, _ in rule.subjects.claims})
        )

    def route_for(self, host: str, path: str) -> Route | None:
        """The route for a request (see :meth:`RouteTable.route_for`)."""
        return self._routes.route_for(host, path)

    def evaluate(
        self,
        identity: Identity,
        request: AccessRequest,
        grants: Sequence[Grant] = (),
        ended: Sequence[Grant] = (),
    ) -> Decision:
        """Decide whether ``identity`` may make ``request``.

        Parameters
        ----------
        identity:
            The verified principal.
        request:
            The request, its path normalised.
        grants:
            The principal's grants (any state); those in force at ``request.at``
            and covering the request allow it when no rule does.
        ended:
            Grants of the principal's that ended recently (denied, revoked,
            expired). They never allow: a refusal they would have covered
            names the latest of them (with an approved one of ``grants`` past
            its expiry).

        Which rules match depends only on who the principal is (issuer,
        subject, email, groups, the claims rules name) and on host, method
        and path under one immutable policy version, so that part is served
        from a small memo. Conditions, grants and break-glass are evaluated
        on every request: they read the time and the source address.
        """
        match = self._match(identity, request)
        if match.decision is not None:
            return match.decision
        route = match.route
        if route is None:
            return self._decision(False, (Reason.NO_ROUTE,), (), None)
        # The request carries the facts conditions read (time, source): no copy.
        denies = [rule for rule in match.denies if rule.conditions.deny_applies(identity, request)]
        if denies:
            return self._built(match, False, (Reason.DENY_RULE_MATCHED,), denies)
        allows: list[Rule] = []
        unmet: list[Rule] = []
        failures: set[Reason] = set()
        for rule in match.allows:
            failed = rule.conditions.allow_failures(identity, request)
            (unmet if failed else allows).append(rule)
            failures.update(failed)
        if allows:
            return self._built(match, True, (Reason.ALLOW_RULE_MATCHED,), allows)
        elevated = self._elevate(identity, request, route, grants)
        if elevated is not None:
            return elevated
        reasons = tuple(sorted(failures, key=_REASON_ORDER.__getitem__))
        ended_grant = self._ended_grant(identity, request, route, grants, ended)
        if ended_grant is not None:
            # Not memoised: it depends on the principal's grants and the time.
            reason = _ENDED_REASONS[ended_grant.effective_status(request.at)]
            return self._decision(
                False, (*reasons, reason), self._ids(unmet), route, ended_grant=ended_grant
            )
        return self._built(match, False, reasons or (Reason.NO_MATCHING_RULE,), unmet)

    def _built(
        self, match: _Match, allowed: bool, reasons: tuple[Reason, ...], rules: list[Rule]
    ) -> Decision:
        """The decision for ``match``, built once per outcome (decisions are immutable)."""
        key = (allowed, reasons, *(rule.id for rule in rules))
        decision = match.built.get(key)
        if decision is None:
            decision = self._decision(allowed, reasons, self._ids(rules), match.route)
            match.built[key] = decision
        return decision

    def _elevate(
        self, identity: Identity, request: AccessRequest, route: Route, grants: Sequence[Grant]
    ) -> Decision | None:
        """An allow by a grant in force or by break-glass, when the rules did not allow."""
        settings = self.document.grants
        if grants and settings is not None:
            for grant in grants:
                if (
                    grant.principal == (identity.issuer, identity.subject)
                    and grant.in_force_at(request.at)
                    and grant.plausible_under(MAX_GRANT_DURATION_SECONDS)
                    and _within_policy_cap(grant, request.at, settings.max_duration_seconds)
                    and grant.covers(route.id, request.method, request.path)
                ):
                    return self._decision(True, (Reason.GRANT_MATCHED,), (), route, grant=grant)
        if not self._may_break_glass(identity):
            return None
        break_glass = self.document.break_glass
        assert break_glass is not None  # _may_break_glass
        justification = (request.justification or "").strip() or None
        if justification is None and break_glass.require_justification:
            return None
        return self._decision(
            True,
            (Reason.BREAK_GLASS,),
            (),
            route,
            break_glass=True,
            justification=justification,
        )

    def _ended_grant(
        self,
        identity: Identity,
        request: AccessRequest,
        route: Route,
        grants: Sequence[Grant],
        ended: Sequence[Grant],
    ) -> Grant | None:
        """The principal's latest ended grant covering the request (None: there is none).

        Named only on a refusal, so what a refusal says can never widen access:
        an expired grant, one revoked after approval, or one asked for and
        denied. A request withdrawn before any approval never gave access and
        is not named.
        """
        if self.document.grants is None:
            return None
        # A live copy past its expiry, not swept yet, has ended as well.
        unswept = [grant for grant in grants if grant.status == "approved"]
        candidates = [
            grant
            for grant in (*unswept, *ended)
            if grant.principal == (identity.issuer, identity.subject)
            and not grant.in_force_at(request.at)
            and grant.stopped_at(request.at) is not None
            and grant.covers(route.id, request.method, request.path)
        ]
        return max(candidates, key=lambda grant: grant.stopped_at(request.at) or 0.0, default=None)

    def _may_break_glass(self, identity: Identity) -> bool:
        """Whether ``identity`` is in a break-glass group (the default issuer's groups)."""
        break_glass = self.document.break_glass
        return (
            break_glass is not None
            and not break_glass.groups.isdisjoint(identity.groups)
            and self._rules.namespace(identity.issuer).default
        )

    def _match(self, identity: Identity, request: AccessRequest) -> _Match:
        path_rules = self._path_rules(request)
        space = self._namespaces.get(identity.issuer) or self._rules.namespace(identity.issuer)
        key = self._memo_key(identity, request, path_rules, space)
        match = self._memo.get(key)
        if match is None:
            match = self._compute_match(identity, request, path_rules, space)
            if len(self._memo) >= _MEMO_SIZE:
                self._memo.clear()
            self._memo[key] = match
        return match

    def _memo_key(
        self, identity: Identity, request: AccessRequest, path_rules: _PathRules, space: Namespace
    ) -> tuple[object, ...]:
        """Everything the matched rules depend on, and no more.

        The subject and the email enter the key only when a rule of this
        path names this very person; otherwise a principal is matched as
        the profile it shares with many (issuer, email domain, groups, the
        claims rules name), so an unseen member of known groups is a memo hit.
        """
        claims: tuple[object, ...] = ()
        if self.claim_names:
            claims = tuple(_claim_text(identity.claims.get(name)) for name in self.claim_names)
        email = identity.email
        by_subject = path_rules.by_subject
        person: tuple[object, ...] | None = None
        if (space.user, identity.subject) in by_subject or (
            email is not None and (space.email, email.lower()) in by_subject
        ):
            person = (identity.subject, email)
        if email is None:
            domain: str | None = None
        else:
            # As identity_subject_keys derives it: an email without "@" has no domain.
            domain = email.lower().rsplit("@", 1)[1] if "@" in email else None
        return (
            identity.issuer,  # the namespace follows from it
            person,
            email is None,
            domain,
            identity.groups,
            identity.groups_claimed,
            claims,
            request.host,
            request.method,
            request.path,
        )

    def _path_rules(self, request: AccessRequest) -> _PathRules:
        key = (request.host, request.method, request.path)
        found = self._path_memo.get(key)
        if found is None:
            found = self._compute_path_rules(request)
            if len(self._path_memo) >= _MEMO_SIZE:
                self._path_memo.clear()
            self._path_memo[key] = found
        return found

    def _compute_path_rules(self, request: AccessRequest) -> _PathRules:
        route = self.route_for(request.host, request.path)
        if route is None:
            return _PathRules(None, {})
        return _PathRules(route, self._rules.rules_for(route.id, request.method))

    def _compute_match(
        self, identity: Identity, request: AccessRequest, path_rules: _PathRules, space: Namespace
    ) -> _Match:
        route = path_rules.route
        if route is None:
            return _Match(None, (), (), self._decision(False, (Reason.NO_ROUTE,), (), None))
        allows: list[Rule] = []
        denies: list[Rule] = []
        path_matches = path_rules.path_matches
        for rule in self._rules.candidates(identity, path_rules.by_subject, space):
            hit = path_matches.get(rule.id)
            if hit is None:
                hit = path_matches[rule.id] = rule.matches_path(request.path)
            if hit:
                (denies if rule.effect == "deny" else allows).append(rule)
        # The outcome is fixed now only when no matched rule has conditions:
        # otherwise the listed rules (every one that applies) depend on the request.
        decision = None
        if denies and all(rule.conditions.empty for rule in denies):
            ids = self._ids(denies)
            decision = self._decision(False, (Reason.DENY_RULE_MATCHED,), ids, route)
        elif not denies and allows and all(rule.conditions.empty for rule in allows):
            ids = self._ids(allows)
            decision = self._decision(True, (Reason.ALLOW_RULE_MATCHED,), ids, route)
        return _Match(route, tuple(denies), tuple(allows), decision)

    def reach(self, identity: Identity, grants: Sequence[Grant] = ()) -> Reach:
        """A superset of what ``identity`` may do: the allows and grants in force, as globs.

        For an answer API Gateway caches for a whole API (the authorizer turns
        it into IAM resources). Only allows count, over-approximated: a deny
        cannot be expressed without also blocking something another route
        allows. Soundness comes from the proxy, which decides again (and
        audits) every request served from a cached answer. A break-glass
        member may reach anything (with a justification).
        """
        if self._may_break_glass(identity):
            return Reach(everything=True)
        scopes = list(self._grant_scopes(grants))
        seen: set[str] = set()
        space = self._rules.namespace(identity.issuer)
        for route_id in self._rules.route_ids():
            for method in HTTP_METHODS:
                by_subject = self._rules.rules_for(route_id, method)
                for rule in self._rules.candidates(identity, by_subject, space):
                    if rule.id in seen:
                        continue
                    seen.add(rule.id)
                    scopes.extend(self._rule_scopes(rule))
        return Reach(everything=False, scopes=tuple(scopes))

    def _grant_scopes(self, grants: Sequence[Grant]) -> Iterator[Scope]:
        settings = self.document.grants
        if settings is None:
            return
        now = time.time()
        for grant in grants:
            if not (
                grant.in_force_at(now)
                and grant.plausible_under(MAX_GRANT_DURATION_SECONDS)
                and _within_policy_cap(grant, now, settings.max_duration_seconds)
            ):
                continue
            for route_id in grant.routes:
                route = self.document.route(route_id)
                if route is None:
                    continue
                patterns = [glob.pattern for glob in grant.paths]
                for pattern in patterns or [_prefix_glob(route.path_prefix)]:
                    yield Scope(grant.actions, pattern)

    def _rule_scopes(self, rule: Rule) -> Iterator[Scope]:
        if rule.effect != "allow":
            return
        for route_id in rule.routes:
            route = self.document.route(route_id)
            if route is None:
                continue
            patterns = [glob.pattern for glob in rule.paths] or [_prefix_glob(route.path_prefix)]
            for pattern in patterns:
                yield Scope(rule.actions, pattern)

    def _ids(self, rules: list[Rule]) -> tuple[str, ...]:
        return tuple(sorted((rule.id for rule in rules), key=self._order.__getitem__))

    def _decision(
        self,
        allowed: bool,
        reasons: tuple[Reason, ...],
        matched: tuple[str, ...],
        route: Route | None,
        **elevation: object,
    ) -> Decision:
        return Decision(
            allowed=allowed,
            reasons=reasons,
            matched_rules=matched,
            route=route,
            policy_version=self.version,
            policy_checksum=self.checksum,
            **elevation,  # type: ignore[arg-type]
        )


_ENDED_REASONS: dict[str, Reason] = {
    "expired": Reason.GRANT_EXPIRED,
    "revoked": Reason.GRANT_REVOKED,
    "denied": Reason.GRANT_DENIED,
}


def _within_policy_cap(grant: Grant, at: float, max_duration_seconds: int) -> bool:
    """A grant lasts no longer than the policy in force allows, whatever it was approved for.

    Tightening ``max_duration`` shortens grants already approved (to approval +
    the new maximum) rather than leaving them as they were or voiding them.
    """
    return grant.approved_at is not None and at < grant.approved_at + max_duration_seconds


def _claim_text(value: object) -> object:
    """A cheap hashable stand-in for a claim value that keeps ``1``, ``"1"``, ``true`` apart."""
    if value is None or type(value) in (str, int, bool, float):
        return (type(value), value)
    if type(value) is list:
        return tuple(_claim_text(item) for item in value)
    return claim_key(value)


def _prefix_glob(path_prefix: str) -> str:
    return "/**" if path_prefix == "/" else path_prefix.rstrip("/") + "/**"
