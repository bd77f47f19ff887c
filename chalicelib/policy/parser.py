"""The policy parser: validates a whole document and builds its types.

:func:`parse_policy` validates a whole document and reports every problem
with where it is (``rules[eng-read].actions``), so nothing half-valid is ever
stored. Anything this version cannot enforce is refused, never ignored: an
ignored condition on an allow rule would grant too much, an ignored subject
kind on a deny rule would deny too little.

Which fields each object has comes from :mod:`chalicelib.policy.fields`;
each section has its parser (:mod:`chalicelib.policy.route_parser`,
:mod:`chalicelib.policy.rule_parser`; ``grants`` and ``break_glass`` are
here), all recording into one :class:`~chalicelib.policy.parse_problems.ProblemList`;
the ``when`` conditions parse themselves (:mod:`chalicelib.policy.criteria`).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any

from chalicelib.policy import fields
from chalicelib.policy.document import (
    MAX_GRANT_DURATION_SECONDS,
    SCHEMA_VERSION,
    BreakGlass,
    GrantSettings,
    PolicyDocument,
)
from chalicelib.policy.durations import parse_duration
from chalicelib.policy.errors import PolicyInvalid
from chalicelib.policy.parse_problems import ProblemList
from chalicelib.policy.route_parser import RouteParser
from chalicelib.policy.rule_parser import RuleParser


def canonical_json(document: Mapping[str, Any]) -> str:
    """The canonical JSON text of a document (sorted keys, no whitespace)."""
    return json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def document_checksum(document: Mapping[str, Any]) -> str:
    """``sha256:<hex>`` of the canonical JSON of ``document``."""
    digest = hashlib.sha256(canonical_json(document).encode("utf-8")).hexdigest()
    return f"sha256:{digest}"


def parse_policy(document: Any, *, source_name: str = "policy") -> PolicyDocument:
    """Validate ``document`` (parsed YAML/JSON) and build a :class:`PolicyDocument`.

    Raises
    ------
    PolicyInvalid
        Listing every problem, each with its location.
    """
    parser = _Parser(source_name)
    policy = parser.parse(document)
    if parser.problems or policy is None:
        raise PolicyInvalid(source_name, parser.problems)
    return policy


class _Parser:
    """The document level: its version, and each section to its own parser."""

    def __init__(self, source_name: str) -> None:
        self.source_name = source_name
        self._problems = ProblemList()
        self.problems = self._problems.problems

    def parse(self, document: Any) -> PolicyDocument | None:
        if not isinstance(document, dict):
            self._problems.problem("", "a policy must be a mapping")
            return None
        self._problems.unknown_fields("", document, fields.DOCUMENT.names)
        version = document.get("version")
        if type(version) is not int or version != SCHEMA_VERSION:
            self._problems.problem("version", f"must be {SCHEMA_VERSION}")
        routes = RouteParser(self._problems).routes(document.get("routes"))
        route_ids = {route.id for route in routes}
        rules = RuleParser(self._problems).rules(document.get("rules"), route_ids)
        return PolicyDocument(
            routes=tuple(routes),
            rules=tuple(rules),
            checksum=document_checksum(document),
            grants=self.grants(document["grants"]) if "grants" in document else None,
            break_glass=(
                self.break_glass(document["break_glass"]) if "break_glass" in document else None
            ),
        )

    def grants(self, value: Any) -> GrantSettings | None:
        if not isinstance(value, dict):
            self._problems.problem("grants", "must be a mapping")
            return None
        self._problems.unknown_fields("grants", value, fields.GRANTS.names)
        groups = self._problems.string_list(value.get("approver_groups"), "grants.approver_groups")
        duration = parse_duration(value.get("max_duration"))
        if duration is None or duration > MAX_GRANT_DURATION_SECONDS:
            self._problems.problem(
                "grants.max_duration",
                'must be a duration like "4h" or "30m" (seconds as a number), at most 7d',
            )
        if not groups or duration is None:
            return None
        return GrantSettings(frozenset(groups), duration)

    def break_glass(self, value: Any) -> BreakGlass | None:
        if not isinstance(value, dict):
            self._problems.problem("break_glass", "must be a mapping")
            return None
        self._problems.unknown_fields("break_glass", value, fields.BREAK_GLASS.names)
        groups = self._problems.string_list(value.get("groups"), "break_glass.groups")
        required = value.get("require_justification", True)
        if not isinstance(required, bool):
            self._problems.problem("break_glass.require_justification", "must be true or false")
            return None
        return BreakGlass(frozenset(groups), required) if groups else None
