"""Access decisions: default deny, any matching deny beats every allow.

A :class:`CompiledPolicy` indexes rules by route, method and subject, so a
decision looks only at rules that could apply to this principal for this
method, however many rules the policy holds.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

from chalicelib.policy.globs import glob_to_arn_paths
from chalicelib.policy.model import HTTP_METHODS, PolicyDocument, Route, Rule
from chalicelib.reasons import Reason

if TYPE_CHECKING:
    from chalicelib.identity import Identity

_ANYONE = ("*", "")
# Deny rules that name emails/domains (groups) also apply to principals whose
# token carries no verified email (no groups claim): a caller must not escape
# a deny by asking the IdP for a token without the claim it matches on.
_UNKNOWN_EMAIL = ("?e", "")
_UNKNOWN_GROUPS = ("?g", "")
_MEMO_SIZE = 8192
SubjectKey = tuple[str, str]
MemoKey = tuple[str, str, str | None, frozenset[str], bool, "AccessRequest"]


@dataclass(frozen=True, slots=True)
class AccessRequest:
    """What is being asked for. ``path`` is already normalised."""

    host: str
    method: str
    path: str


@dataclass(frozen=True, slots=True)
class Decision:
    """The outcome of evaluating a policy for one request."""

    allowed: bool
    reasons: tuple[Reason, ...]
    matched_rules: tuple[str, ...]
    route: Route | None
    policy_version: int
    policy_checksum: str


@dataclass(frozen=True, slots=True)
class Permission:
    """An IAM-expressible superset of what an allow rule lets a principal do."""

    methods: frozenset[str]
    arn_paths: tuple[str, ...]


class CompiledPolicy:
    """A policy document, indexed for fast decisions.

    Parameters
    ----------
    document:
        The validated document.
    version:
        The version number under which it was activated.
    """

    def __init__(self, document: PolicyDocument, version: int) -> None:
        self.document = document
        self.version = version
        self.checksum = document.checksum
        self._routes_by_host: dict[str, list[Route]] = {}
        for route in document.routes:
            self._routes_by_host.setdefault(route.host, []).append(route)
        for routes in self._routes_by_host.values():
            routes.sort(key=lambda route: len(route.path_prefix), reverse=True)
        # route id -> method -> subject key -> rules (in document order)
        self._index: dict[str, dict[str, dict[SubjectKey, list[Rule]]]] = {}
        self._order = {rule.id: position for position, rule in enumerate(document.rules)}
        self._memo: dict[MemoKey, Decision] = {}
        for rule in document.rules:
            self._add_to_index(rule)

    def _add_to_index(self, rule: Rule) -> None:
        for route_id in rule.routes:
            by_method = self._index.setdefault(route_id, {})
            for method in rule.actions:
                by_subject = by_method.setdefault(method, {})
                for key in _rule_subject_keys(rule):
                    by_subject.setdefault(key, []).append(rule)

    def route_for(self, host: str, path: str) -> Route | None:
        """The route for a request: exact host before ``*``, then longest prefix."""
        bare_host = host.split(":", 1)[0].lower().rstrip(".")
        for candidates in (self._routes_by_host.get(bare_host), self._routes_by_host.get("*")):
            for route in candidates or ():
                if route.covers_path(path):
                    return route
        return None

    def evaluate(self, identity: Identity, request: AccessRequest) -> Decision:
        """Decide whether ``identity`` may make ``request``.

        Decisions are pure functions of what the criteria read (issuer,
        subject, email, groups) and the request under one immutable policy
        version, so repeated ones are served from a small memo, across fresh
        tokens of the same principal too. A criterion that reads anything
        else (another claim, the time of day, the source address) must add it
        to :func:`_memo_key`.
        """
        key = _memo_key(identity, request)
        decision = self._memo.get(key)
        if decision is None:
            decision = self._evaluate(identity, request)
            if len(self._memo) >= _MEMO_SIZE:
                self._memo.clear()
            self._memo[key] = decision
        return decision

    def _evaluate(self, identity: Identity, request: AccessRequest) -> Decision:
        route = self.route_for(request.host, request.path)
        if route is None:
            return self._decision(False, Reason.NO_ROUTE, (), None)
        allows: list[Rule] = []
        denies: list[Rule] = []
        for rule in self._candidates(identity, route.id, request.method):
            if rule.matches_path(request.path):
                (denies if rule.effect == "deny" else allows).append(rule)
        if denies:
            return self._decision(False, Reason.DENY_RULE_MATCHED, self._ids(denies), route)
        if allows:
            return self._decision(True, Reason.ALLOW_RULE_MATCHED, self._ids(allows), route)
        return self._decision(False, Reason.NO_MATCHING_RULE, (), route)

    def permissions(self, identity: Identity) -> list[Permission]:
        """A superset of what ``identity`` may do, as IAM-expressible permissions.

        Used when API Gateway caches the authorizer's answer for a whole API.
        Only allows are listed, over-approximated: method ARNs carry neither
        host nor route, so no deny can be translated without also blocking
        something another route allows. Soundness comes from the proxy, which
        re-decides (and audits) every request served from a cached answer.
        """
        permissions: list[Permission] = []
        seen: set[str] = set()
        for route_id in self._index:
            for method in HTTP_METHODS:
                for rule in self._candidates(identity, route_id, method):
                    if rule.id in seen:
                        continue
                    seen.add(rule.id)
                    permissions.extend(self._rule_permissions(rule))
        return permissions

    def _rule_permissions(self, rule: Rule) -> Iterator[Permission]:
        if rule.effect != "allow":
            return
        for route_id in rule.routes:
            route = self.document.route(route_id)
            if route is None:
                continue
            patterns = [glob.pattern for glob in rule.paths] or [_prefix_glob(route.path_prefix)]
            for pattern in patterns:
                yield Permission(rule.actions, glob_to_arn_paths(pattern)[0])

    def _candidates(self, identity: Identity, route_id: str, method: str) -> list[Rule]:
        by_subject = self._index.get(route_id, {}).get(method)
        if not by_subject:
            return []
        found: dict[str, Rule] = {}
        for key in _identity_subject_keys(identity):
            for rule in by_subject.get(key, ()):
                found[rule.id] = rule
        return list(found.values())

    def _ids(self, rules: list[Rule]) -> tuple[str, ...]:
        return tuple(sorted((rule.id for rule in rules), key=self._order.__getitem__))

    def _decision(
        self, allowed: bool, reason: Reason, matched: tuple[str, ...], route: Route | None
    ) -> Decision:
        return Decision(
            allowed=allowed,
            reasons=(reason,),
            matched_rules=matched,
            route=route,
            policy_version=self.version,
            policy_checksum=self.checksum,
        )


def _memo_key(identity: Identity, request: AccessRequest) -> MemoKey:
    return (
        identity.issuer,
        identity.subject,
        identity.email,
        identity.groups,
        identity.groups_claimed,
        request,
    )


def _prefix_glob(path_prefix: str) -> str:
    return "/**" if path_prefix == "/" else path_prefix.rstrip("/") + "/**"


def _rule_subject_keys(rule: Rule) -> Iterator[SubjectKey]:
    subjects = rule.subjects
    if subjects.anyone:
        yield _ANYONE
        return
    names_email = bool(subjects.domains)
    for user in subjects.users:
        # An entry with "@" names a verified email (case-insensitive), any
        # other entry a subject (exact): a sub never matches an email entry.
        if "@" in user:
            names_email = True
            yield ("e", user.lower())
        else:
            yield ("u", user)
    for group in subjects.groups:
        yield ("g", group)
    for domain in subjects.domains:
        yield ("d", domain)
    if rule.effect == "deny":
        if names_email:
            yield _UNKNOWN_EMAIL
        if subjects.groups:
            yield _UNKNOWN_GROUPS


def _identity_subject_keys(identity: Identity) -> Iterator[SubjectKey]:
    yield _ANYONE
    yield ("u", identity.subject)
    if identity.email is not None:
        email = identity.email.lower()
        yield ("e", email)
        if "@" in email:
            yield ("d", email.rsplit("@", 1)[1])
    else:
        yield _UNKNOWN_EMAIL
    if not identity.groups_claimed and not identity.groups:
        yield _UNKNOWN_GROUPS
    for group in identity.groups:
        yield ("g", group)
