"""The policy document: routes and rules (field names fixed by DESIGN.md section 5).

:func:`parse_policy` validates a whole document and reports every problem
with where it is (``rules[eng-read].actions``), so nothing half-valid is ever
stored. Anything this version cannot enforce is refused, never ignored: an
ignored condition on an allow rule would grant too much, an ignored subject
kind on a deny rule would deny too little.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import urlsplit

from chalicelib.policy.errors import PolicyInvalid, PolicyProblem
from chalicelib.policy.globs import InvalidGlob, PathGlob, combine_globs, compile_glob
from chalicelib.policy.paths import AmbiguousPath, normalize_path

HTTP_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
SCHEMA_VERSION = 1

_ID = re.compile(r"[a-z0-9][a-z0-9_.-]{0,63}")
_HOST = re.compile(r"[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*")
_NOT_YET = "is not supported by this version of Gatehouse"

Effect = Literal["allow", "deny"]


@dataclass(frozen=True, slots=True)
class Route:
    """Where requests for a host and path prefix go."""

    id: str
    host: str
    path_prefix: str
    upstream: str
    audience: str
    pass_authorization: bool = False
    sensitive: bool = False

    def covers_path(self, path: str) -> bool:
        """Whether ``path`` is under this route's prefix (on a segment boundary)."""
        prefix = self.path_prefix
        if prefix == "/" or path == prefix:
            return True
        if prefix.endswith("/"):
            return path.startswith(prefix)
        return path.startswith(prefix + "/")


@dataclass(frozen=True, slots=True)
class Subjects:
    """Who a rule applies to; any listed kind may match, none listed means anyone signed in."""

    users: frozenset[str] = frozenset()
    groups: frozenset[str] = frozenset()
    domains: frozenset[str] = frozenset()

    @property
    def anyone(self) -> bool:
        """True when the rule applies to every authenticated principal."""
        return not (self.users or self.groups or self.domains)


@dataclass(frozen=True, slots=True)
class Rule:
    """One allow or deny rule."""

    id: str
    effect: Effect
    routes: tuple[str, ...]
    subjects: Subjects
    actions: frozenset[str]
    paths: tuple[PathGlob, ...] = ()
    path_regex: re.Pattern[str] | None = field(default=None, init=False, compare=False, repr=False)
    segment_globs: tuple[PathGlob, ...] = field(default=(), init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        # One alternation instead of one regex per glob: a rule costs one match.
        # Globs a regex cannot match in linear time are matched segment-wise.
        object.__setattr__(self, "path_regex", combine_globs(self.paths))
        object.__setattr__(self, "segment_globs", tuple(g for g in self.paths if g.regex is None))
        if self.effect == "deny" and "GET" in self.actions:
            # Frameworks answer HEAD with their GET handler: denying GET denies HEAD.
            object.__setattr__(self, "actions", self.actions | {"HEAD"})

    def matches_path(self, path: str) -> bool:
        """Whether the rule's path globs (none means every path) match."""
        if not self.paths:
            return True
        if self.path_regex is not None and self.path_regex.fullmatch(path) is not None:
            return True
        return any(glob.matches(path) for glob in self.segment_globs)


@dataclass(frozen=True, slots=True)
class PolicyDocument:
    """A validated policy document."""

    routes: tuple[Route, ...]
    rules: tuple[Rule, ...]
    checksum: str

    def route(self, route_id: str) -> Route | None:
        """The route with ``route_id``, if any."""
        return next((route for route in self.routes if route.id == route_id), None)


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
    def __init__(self, source_name: str) -> None:
        self.source_name = source_name
        self.problems: list[PolicyProblem] = []

    def problem(self, location: str, message: str) -> None:
        self.problems.append(PolicyProblem(location, message))

    def parse(self, document: Any) -> PolicyDocument | None:
        if not isinstance(document, dict):
            self.problem("", "a policy must be a mapping")
            return None
        self.unknown_fields("", document, {"version", "routes", "rules", "grants", "break_glass"})
        for feature in ("grants", "break_glass"):
            if feature in document:
                self.problem(feature, _NOT_YET)
        version = document.get("version")
        if type(version) is not int or version != SCHEMA_VERSION:
            self.problem("version", f"must be {SCHEMA_VERSION}")
        routes = self.routes(document.get("routes"))
        route_ids = {route.id for route in routes}
        rules = self.rules(document.get("rules"), route_ids)
        return PolicyDocument(
            routes=tuple(routes),
            rules=tuple(rules),
            checksum=document_checksum(document),
        )

    def unknown_fields(self, location: str, mapping: Mapping[str, Any], known: set[str]) -> None:
        for name in sorted(set(mapping) - known, key=str):
            where = f"{location}.{name}" if location else str(name)
            self.problem(where, "unknown field")

    def entries(self, value: Any, location: str) -> list[tuple[str, dict[str, Any]]]:
        """The list's entries that are mappings, each with a location naming its id."""
        if not isinstance(value, list):
            self.problem(location, "must be a list")
            return []
        entries = []
        seen: set[str] = set()
        for index, entry in enumerate(value):
            if not isinstance(entry, dict):
                self.problem(f"{location}[{index}]", "must be a mapping")
                continue
            entry_id = entry.get("id")
            if not isinstance(entry_id, str) or not _ID.fullmatch(entry_id):
                self.problem(f"{location}[{index}].id", "must match [a-z0-9][a-z0-9_.-]*")
                continue
            if entry_id in seen:
                self.problem(f"{location}[{entry_id}]", "duplicate id")
                continue
            seen.add(entry_id)
            entries.append((f"{location}[{entry_id}]", entry))
        return entries

    def routes(self, value: Any) -> list[Route]:
        routes = []
        for where, entry in self.entries(value, "routes"):
            route = self.route(where, entry)
            if route is not None:
                routes.append(route)
        if isinstance(value, list) and not value:
            self.problem("routes", "must name at least one route")
        return routes

    def route(self, where: str, entry: dict[str, Any]) -> Route | None:
        known = {
            "id",
            "host",
            "path_prefix",
            "upstream",
            "audience",
            "pass_authorization",
            "sensitive",
        }
        self.unknown_fields(where, entry, known)
        before = len(self.problems)
        host = entry.get("host", "*")
        if not isinstance(host, str) or not (host == "*" or _HOST.fullmatch(host)):
            self.problem(f"{where}.host", 'must be "*" or a lower-case host name')
        prefix = entry.get("path_prefix", "/")
        if not isinstance(prefix, str) or not _valid_prefix(prefix):
            self.problem(f"{where}.path_prefix", "must be a plain, normalised path starting with /")
        upstream = entry.get("upstream")
        if not isinstance(upstream, str) or not _valid_upstream(upstream):
            self.problem(f"{where}.upstream", "must be an http(s) URL without query or fragment")
        audience = entry.get("audience")
        if not isinstance(audience, str) or not audience:
            self.problem(f"{where}.audience", "must be a non-empty string")
        flags = {name: entry.get(name, False) for name in ("pass_authorization", "sensitive")}
        for name, flag in flags.items():
            if not isinstance(flag, bool):
                self.problem(f"{where}.{name}", "must be true or false")
        if len(self.problems) != before:
            return None
        assert isinstance(upstream, str) and isinstance(audience, str)  # checked above
        return Route(
            id=entry["id"],
            host=host,
            path_prefix=prefix,
            upstream=upstream.rstrip("/"),
            audience=audience,
            pass_authorization=flags["pass_authorization"],
            sensitive=flags["sensitive"],
        )

    def rules(self, value: Any, route_ids: set[str]) -> list[Rule]:
        if value is None:
            return []
        rules = []
        for where, entry in self.entries(value, "rules"):
            rule = self.rule(where, entry, route_ids)
            if rule is not None:
                rules.append(rule)
        return rules

    def rule(self, where: str, entry: dict[str, Any], route_ids: set[str]) -> Rule | None:
        self.unknown_fields(
            where, entry, {"id", "effect", "routes", "subjects", "actions", "paths", "when"}
        )
        before = len(self.problems)
        if "when" in entry:
            self.problem(f"{where}.when", f"conditions {_NOT_YET}")
        effect = entry.get("effect")
        if effect not in ("allow", "deny"):
            self.problem(f"{where}.effect", "must be allow or deny")
        routes = self.string_list(entry.get("routes"), f"{where}.routes")
        for route_id in routes:
            if route_id not in route_ids:
                self.problem(f"{where}.routes", f"names unknown route {route_id!r}")
        subjects = self.subjects(entry, f"{where}.subjects")
        actions = self.actions(entry.get("actions"), f"{where}.actions")
        # Deny globs ignore case: many upstreams route /Admin like /admin.
        paths = self.paths(entry.get("paths"), f"{where}.paths", ignore_case=effect == "deny")
        if len(self.problems) != before or subjects is None or effect not in ("allow", "deny"):
            return None
        return Rule(
            id=entry["id"],
            effect=effect,
            routes=tuple(routes),
            subjects=subjects,
            actions=actions,
            paths=paths,
        )

    def string_list(self, value: Any, where: str, *, required: bool = True) -> list[str]:
        if value is None and not required:
            return []
        if (
            not isinstance(value, list)
            or not value
            or not all(isinstance(v, str) and v for v in value)
        ):
            self.problem(where, "must be a non-empty list of strings")
            return []
        return list(value)

    def subjects(self, entry: dict[str, Any], where: str) -> Subjects | None:
        if "subjects" not in entry:
            return Subjects()
        value = entry["subjects"]
        if not isinstance(value, dict):
            self.problem(where, "must be a mapping")
            return None
        self.unknown_fields(where, value, {"users", "groups", "domains", "claims", "issuers"})
        for kind in ("claims", "issuers"):
            if kind in value:
                self.problem(f"{where}.{kind}", f"matching on {kind} {_NOT_YET}")
        lists = {
            kind: self.string_list(value.get(kind), f"{where}.{kind}", required=False)
            for kind in ("users", "groups", "domains")
        }
        if not any(lists.values()):
            # An empty (or null) subjects field on an allow rule would mean
            # "everyone"; that must be said by omitting it, never by accident.
            self.problem(where, "lists no subject; omit the field to mean anyone signed in")
        return Subjects(
            users=frozenset(lists["users"]),
            groups=frozenset(lists["groups"]),
            domains=frozenset(domain.lower().lstrip("@") for domain in lists["domains"]),
        )

    def actions(self, value: Any, where: str) -> frozenset[str]:
        actions = self.string_list(value, where)
        methods = {action.upper() for action in actions if action != "*"}
        for method in sorted(methods - HTTP_METHODS):
            self.problem(where, f"{method!r} is not one of {', '.join(sorted(HTTP_METHODS))} or *")
        if "*" in actions:
            return HTTP_METHODS
        return frozenset(methods & HTTP_METHODS)

    def paths(self, value: Any, where: str, *, ignore_case: bool) -> tuple[PathGlob, ...]:
        globs = []
        for pattern in self.string_list(value, where, required=False):
            try:
                globs.append(compile_glob(pattern, ignore_case=ignore_case))
            except InvalidGlob as exc:
                self.problem(where, str(exc))
        return tuple(globs)


def _valid_prefix(prefix: str) -> bool:
    if "%" in prefix or "*" in prefix:
        return False
    try:
        return normalize_path(prefix) == prefix
    except AmbiguousPath:
        return False


def _valid_upstream(upstream: str) -> bool:
    if "?" in upstream or "#" in upstream:
        return False  # even empty: the request path would land in the query
    try:
        parts = urlsplit(upstream)
    except ValueError:
        return False
    return (
        parts.scheme in ("http", "https")
        and bool(parts.hostname)
        and not parts.query
        and not parts.fragment
        and "@" not in parts.netloc
    )
