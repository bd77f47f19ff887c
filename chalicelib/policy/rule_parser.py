"""The ``rules`` section of a policy: effects, subjects, actions, paths and ``when`` conditions.

Anything a rule says that this version cannot enforce is refused, never
ignored: an ignored condition on an allow rule would grant too much, an
ignored subject kind on a deny rule would deny too little. The ``when``
conditions parse themselves (:mod:`chalicelib.policy.criteria`).
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from chalicelib.policy import fields
from chalicelib.policy.conditions import Conditions
from chalicelib.policy.criterion import registered
from chalicelib.policy.document import HTTP_METHODS, Rule, Subjects, claim_key
from chalicelib.policy.globs import InvalidGlob, PathGlob, compile_glob

if TYPE_CHECKING:
    from chalicelib.policy.parse_problems import ProblemList

_CLAIM_NAME = re.compile(r"[A-Za-z0-9_.:/-]{1,128}")
# Registered claims are matched by their own criteria (or never): a rule on
# "exp" or "aud" would be a rule on token mechanics, not on who someone is.
_REGISTERED_CLAIMS = frozenset({"iss", "sub", "aud", "exp", "nbf", "iat", "jti", "auth_time"})
# Claims with a subject kind of their own, which applies their gates: a
# selector on the raw "email" would match an address the IdP never verified.
_SUBJECT_CLAIMS = {
    "email": "users or domains",
    "email_verified": "users or domains",
    "groups": "groups",
}
# The "when" problems a deny rule gets for a condition that cannot sit on one.
_DENY_REFUSAL = "cannot be on a deny rule: {}"


class RuleParser:
    """Parses the rules of one document, recording problems in ``problems``.

    Parameters
    ----------
    problems:
        Where the document's problems are recorded.
    """

    def __init__(self, problems: ProblemList) -> None:
        self._problems = problems

    def rules(self, value: Any, route_ids: set[str]) -> list[Rule]:
        """The valid rules of the ``rules`` list, on the routes ``route_ids``."""
        if value is None:
            return []
        rules = []
        for where, entry in self._problems.entries(value, "rules"):
            rule = self.rule(where, entry, route_ids)
            if rule is not None:
                rules.append(rule)
        return rules

    def rule(self, where: str, entry: dict[str, Any], route_ids: set[str]) -> Rule | None:
        """One rule, or None when it has problems."""
        self._problems.unknown_fields(where, entry, fields.RULE.names)
        before = len(self._problems)
        effect = entry.get("effect")
        if effect not in ("allow", "deny"):
            self._problems.problem(f"{where}.effect", "must be allow or deny")
        routes = self._problems.string_list(entry.get("routes"), f"{where}.routes")
        for route_id in routes:
            if route_id not in route_ids:
                self._problems.problem(f"{where}.routes", f"names unknown route {route_id!r}")
        subjects = self.subjects(entry, f"{where}.subjects")
        actions = self.actions(entry.get("actions"), f"{where}.actions")
        # Deny globs ignore case: many upstreams route /Admin like /admin.
        paths = self.paths(entry.get("paths"), f"{where}.paths", ignore_case=effect == "deny")
        conditions = None
        if "when" in entry:
            conditions = self.conditions(entry["when"], f"{where}.when", deny=effect == "deny")
        if len(self._problems) != before or subjects is None or effect not in ("allow", "deny"):
            return None
        return Rule(
            id=entry["id"],
            effect=effect,
            routes=tuple(routes),
            subjects=subjects,
            actions=actions,
            paths=paths,
            conditions=conditions or Conditions(),
        )

    def conditions(self, value: Any, where: str, *, deny: bool) -> Conditions | None:
        """The ``when`` block: each registered condition parses its own field."""
        if not isinstance(value, dict) or not value:
            self._problems.problem(where, "must be a mapping of at least one condition")
            return None
        criteria = registered()
        self._problems.unknown_fields(where, value, {criterion.name for criterion in criteria})
        settings = {
            criterion.name: criterion.parse(
                value[criterion.name], f"{where}.{criterion.name}", self._problems
            )
            for criterion in criteria
            if criterion.name in value
        }
        if deny:
            # After every field's own problems, as a rule's problems read best.
            for criterion in criteria:
                refusal = criterion.deny_refusal
                if refusal is not None and criterion.imposes(settings.get(criterion.name)):
                    self._problems.problem(
                        f"{where}.{criterion.name}", _DENY_REFUSAL.format(refusal)
                    )
        return Conditions(**settings)

    def subjects(self, entry: dict[str, Any], where: str) -> Subjects | None:
        if "subjects" not in entry:
            return Subjects()
        value = entry["subjects"]
        if not isinstance(value, dict):
            self._problems.problem(where, "must be a mapping")
            return None
        self._problems.unknown_fields(where, value, fields.SUBJECTS.names)
        lists = {
            kind: self._problems.string_list(value.get(kind), f"{where}.{kind}", required=False)
            for kind in ("users", "groups", "domains", "issuers")
        }
        claims = self.claims(value["claims"], f"{where}.claims") if "claims" in value else ()
        if not any(lists.values()) and not claims:
            # An empty (or null) subjects field on an allow rule would mean
            # "everyone"; that must be said by omitting it, never by accident.
            self._problems.problem(
                where, "lists no subject; omit the field to mean anyone signed in"
            )
        return Subjects(
            users=frozenset(lists["users"]),
            groups=frozenset(lists["groups"]),
            domains=frozenset(domain.lower().lstrip("@") for domain in lists["domains"]),
            issuers=frozenset(issuer.rstrip("/") for issuer in lists["issuers"]),
            claims=claims,
        )

    def claims(self, value: Any, where: str) -> tuple[tuple[str, frozenset[str]], ...]:
        if not isinstance(value, dict) or not value:
            self._problems.problem(
                where, "must be a mapping of claim name to value or list of values"
            )
            return ()
        selector = []
        for name, accepted in sorted(value.items(), key=lambda item: str(item[0])):
            at = f"{where}.{name}"
            if not isinstance(name, str) or not _CLAIM_NAME.fullmatch(name):
                self._problems.problem(at, "is not a claim name")
                continue
            if name in _REGISTERED_CLAIMS:
                self._problems.problem(at, "is a registered claim; use users or issuers instead")
                continue
            if name in _SUBJECT_CLAIMS:
                self._problems.problem(
                    at, f"is matched by subjects.{_SUBJECT_CLAIMS[name]}, which check it properly"
                )
                continue
            values = accepted if isinstance(accepted, list) else [accepted]
            if not values or not all(_is_claim_value(v) for v in values):
                self._problems.problem(at, "must be a string, number or boolean, or a list of them")
                continue
            selector.append((name, frozenset(claim_key(v) for v in values)))
        return tuple(selector)

    def actions(self, value: Any, where: str) -> frozenset[str]:
        actions = self._problems.string_list(value, where)
        methods = {action.upper() for action in actions if action != "*"}
        for method in sorted(methods - HTTP_METHODS):
            self._problems.problem(
                where, f"{method!r} is not one of {', '.join(sorted(HTTP_METHODS))} or *"
            )
        if "*" in actions:
            return HTTP_METHODS
        return frozenset(methods & HTTP_METHODS)

    def paths(self, value: Any, where: str, *, ignore_case: bool) -> tuple[PathGlob, ...]:
        globs = []
        for pattern in self._problems.string_list(value, where, required=False):
            try:
                globs.append(compile_glob(pattern, ignore_case=ignore_case))
            except InvalidGlob as exc:
                self._problems.problem(where, str(exc))
        return tuple(globs)


def _is_claim_value(value: object) -> bool:
    return isinstance(value, str | bool) or (isinstance(value, int) and abs(value) < 2**53)
