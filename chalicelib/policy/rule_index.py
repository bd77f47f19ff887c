"""The policy's rules indexed by route, method and subject: which rules could apply.

A decision looks only at the rules indexed under this route and method for
one of the principal's subject keys (issuer, subject, email, domain, groups,
or a claim rules name, each qualified by the principal's issuer: see
:mod:`chalicelib.policy.subjects`), however many rules the policy holds.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING

from chalicelib.policy.subjects import (
    Namespace,
    SubjectKey,
    claims_match,
    identity_claim_keys,
    identity_subject_keys,
    normal_issuer,
    rule_subject_keys,
)

if TYPE_CHECKING:
    from chalicelib.identity import Identity
    from chalicelib.policy.document import Rule

# Principals come from the stage's trusted issuers: a handful. The bound is for
# callers that make identities up (offline tools, tests).
_MAX_NAMESPACES = 64


class RuleIndex:
    """Rules by route id, method and subject key, each list in document order.

    Parameters
    ----------
    rules:
        The policy's rules, in document order.
    default_issuer:
        The stage's default issuer: rules that name users, groups, domains or
        claims and no issuer name that issuer's.
    """

    def __init__(self, rules: Sequence[Rule], *, default_issuer: str) -> None:
        self.default_issuer = normal_issuer(default_issuer)
        # route id -> method -> subject key -> rules (in document order)
        self._index: dict[str, dict[str, dict[SubjectKey, list[Rule]]]] = {}
        # Claims rules are indexed by their first claim.
        self._indexed_claims = tuple(
            sorted({rule.subjects.claims[0][0] for rule in rules if rule.subjects.claims})
        )
        # A principal's issuer, as its token names it -> its namespace (read, not
        # written, by the engine: one dict lookup per decision).
        self.namespaces: dict[str, Namespace] = {}
        for rule in rules:
            self._add(rule)

    def _add(self, rule: Rule) -> None:
        keys = list(dict.fromkeys(rule_subject_keys(rule, self.default_issuer)))
        for route_id in rule.routes:
            by_method = self._index.setdefault(route_id, {})
            for method in rule.actions:
                by_subject = by_method.setdefault(method, {})
                for key in keys:
                    by_subject.setdefault(key, []).append(rule)

    def namespace(self, issuer: str) -> Namespace:
        """The namespace of a principal of ``issuer`` (trailing slashes do not count)."""
        space = self.namespaces.get(issuer)
        if space is None:
            space = Namespace.of(issuer, self.default_issuer)
            if len(self.namespaces) >= _MAX_NAMESPACES:
                self.namespaces.clear()
            self.namespaces[issuer] = space
        return space

    def route_ids(self) -> Iterable[str]:
        """The routes that have rules."""
        return self._index.keys()

    def rules_for(self, route_id: str, method: str) -> Mapping[SubjectKey, Sequence[Rule]]:
        """The rules of ``route_id`` for ``method``, by subject key (empty: none)."""
        return self._index.get(route_id, {}).get(method) or {}

    def candidates(
        self,
        identity: Identity,
        by_subject: Mapping[SubjectKey, Sequence[Rule]],
        space: Namespace,
    ) -> list[Rule]:
        """The rules among ``by_subject`` whose subjects name ``identity`` (paths unchecked).

        ``space`` is :meth:`namespace` of the principal's issuer.
        """
        if not by_subject:
            return []
        lookup = by_subject.get
        found: dict[str, Rule] = {}
        for key in identity_subject_keys(identity, space):
            rules = lookup(key)
            if rules:
                for rule in rules:
                    found[rule.id] = rule
        if self._indexed_claims:
            for key in identity_claim_keys(identity, self._indexed_claims, space):
                rules = lookup(key)
                if rules:
                    for rule in rules:
                        if rule.id not in found and claims_match(rule, identity):
                            found[rule.id] = rule
        return list(found.values())
