"""The policy parser: validates a whole document and builds its types.

:func:`parse_policy` validates a whole document and reports every problem
with where it is (``rules[eng-read].actions``), so nothing half-valid is ever
stored. Anything this version cannot enforce is refused, never ignored: an
ignored condition on an allow rule would grant too much, an ignored subject
kind on a deny rule would deny too little.

Which fields each object has comes from :mod:`chalicelib.policy.fields`;
the ``when`` conditions parse themselves (:mod:`chalicelib.policy.criteria`).
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from chalicelib.policy import fields
from chalicelib.policy.conditions import Conditions
from chalicelib.policy.criterion import registered
from chalicelib.policy.document import (
    HTTP_METHODS,
    MAX_GRANT_DURATION_SECONDS,
    REFUSED_AWS_SERVICES,
    RESERVED_PREFIX,
    SCHEMA_VERSION,
    AwsUpstream,
    BreakGlass,
    GrantSettings,
    PolicyDocument,
    Route,
    Rule,
    Subjects,
    claim_key,
    is_reserved_path,
)
from chalicelib.policy.durations import parse_duration
from chalicelib.policy.errors import PolicyInvalid, PolicyProblem
from chalicelib.policy.globs import InvalidGlob, PathGlob, compile_glob
from chalicelib.policy.paths import AmbiguousPath, fold_case, normalize_path

_ID = re.compile(r"[a-z0-9][a-z0-9_.-]{0,63}")
_HOST = re.compile(r"[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*")
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
# An AWS upstream: the IAM role the proxy assumes (a role path is allowed;
# names use IAM's character set), the SigV4 signing name of the service, and
# the region, which must belong to the role's partition.
# The role's name must start with gatehouse-upstream-, the only roles the
# functions' IAM policy lets them assume; no wildcard anywhere (IAM's `*`
# matches across `/`, so a path could stand in for a prefix).
UPSTREAM_ROLE_PREFIX = "gatehouse-upstream-"
_ROLE_ARN = re.compile(
    r"arn:(?P<partition>aws|aws-cn|aws-us-gov):iam::\d{12}:role/"
    r"(?:[\x21-\x29\x2b-\x3e\x40-\x7e]{0,510}/)?"
    r"gatehouse-upstream-[\w+=,.@-]{1,45}",
    re.ASCII,
)
_SIGNING_SERVICE = re.compile(r"[a-z][a-z0-9-]{0,30}[a-z0-9]")
_REGION = re.compile(r"[a-z]{2}(?:-[a-z]+){1,2}-\d{1,2}")
# The "when" problems a deny rule gets for a condition that cannot sit on one.
_DENY_REFUSAL = "cannot be on a deny rule: {}"


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
        self.unknown_fields("", document, fields.DOCUMENT.names)
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
            grants=self.grants(document["grants"]) if "grants" in document else None,
            break_glass=(
                self.break_glass(document["break_glass"]) if "break_glass" in document else None
            ),
        )

    def grants(self, value: Any) -> GrantSettings | None:
        if not isinstance(value, dict):
            self.problem("grants", "must be a mapping")
            return None
        self.unknown_fields("grants", value, fields.GRANTS.names)
        groups = self.string_list(value.get("approver_groups"), "grants.approver_groups")
        duration = parse_duration(value.get("max_duration"))
        if duration is None or duration > MAX_GRANT_DURATION_SECONDS:
            self.problem(
                "grants.max_duration",
                'must be a duration like "4h" or "30m" (seconds as a number), at most 7d',
            )
        if not groups or duration is None:
            return None
        return GrantSettings(frozenset(groups), duration)

    def break_glass(self, value: Any) -> BreakGlass | None:
        if not isinstance(value, dict):
            self.problem("break_glass", "must be a mapping")
            return None
        self.unknown_fields("break_glass", value, fields.BREAK_GLASS.names)
        groups = self.string_list(value.get("groups"), "break_glass.groups")
        required = value.get("require_justification", True)
        if not isinstance(required, bool):
            self.problem("break_glass.require_justification", "must be true or false")
            return None
        return BreakGlass(frozenset(groups), required) if groups else None

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
        placed: list[tuple[str, Route]] = []
        for where, entry in self.entries(value, "routes"):
            route = self.route(where, entry)
            if route is not None:
                routes.append(route)
                placed.append((where, route))
        if isinstance(value, list) and not value:
            self.problem("routes", "must name at least one route")
        self.prefixes_differing_only_in_case(placed)
        return routes

    def prefixes_differing_only_in_case(self, placed: list[tuple[str, Route]]) -> None:
        """Prefixes match ignoring case: ``/Reports`` would shadow ``/reports`` silently."""
        seen: dict[tuple[str, str], Route] = {}
        for where, route in placed:
            key = (route.host, fold_case(route.path_prefix))
            first = seen.setdefault(key, route)
            if first is not route and first.path_prefix != route.path_prefix:
                self.problem(
                    f"{where}.path_prefix",
                    f"{route.path_prefix!r} differs from route {first.id!r}'s "
                    f"{first.path_prefix!r} only in letter case; prefixes match ignoring "
                    "case, so only the first would ever be chosen",
                )

    def route(self, where: str, entry: dict[str, Any]) -> Route | None:
        self.unknown_fields(where, entry, fields.ROUTE.names)
        before = len(self.problems)
        host = entry.get("host", "*")
        if not isinstance(host, str) or not (host == "*" or _HOST.fullmatch(host)):
            self.problem(f"{where}.host", 'must be "*" or a lower-case host name')
        prefix = entry.get("path_prefix", "/")
        if not isinstance(prefix, str) or not _valid_prefix(prefix):
            self.problem(f"{where}.path_prefix", "must be a plain, normalised path starting with /")
        elif is_reserved_path(prefix):
            self.problem(f"{where}.path_prefix", f"{RESERVED_PREFIX}/ is Gatehouse's own")
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
        aws = self.aws_route(where, entry, flags["pass_authorization"]) if "aws" in entry else None
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
            aws=aws,
        )

    def aws_route(
        self, where: str, entry: dict[str, Any], pass_authorization: object
    ) -> AwsUpstream | None:
        """The route's ``aws`` block, and what it requires of the rest of the route."""
        upstream = entry.get("upstream")
        if (
            isinstance(upstream, str)
            and _valid_upstream(upstream)
            and not _secure_or_loopback(upstream)
        ):
            self.problem(
                f"{where}.upstream", "must be https for an AWS upstream (http only on loopback)"
            )
        if pass_authorization is True:
            self.problem(
                f"{where}.pass_authorization",
                "cannot be true on an AWS route: Authorization carries the SigV4 signature",
            )
        return self.aws_upstream(entry["aws"], f"{where}.aws")

    def aws_upstream(self, value: Any, where: str) -> AwsUpstream | None:
        if not isinstance(value, dict):
            self.problem(where, "must be a mapping with role_arn, service and region")
            return None
        self.unknown_fields(where, value, fields.AWS.names)
        before = len(self.problems)
        role_arn = value.get("role_arn")
        role = _ROLE_ARN.fullmatch(role_arn) if isinstance(role_arn, str) else None
        if role is None:
            self.problem(
                f"{where}.role_arn",
                "must be an IAM role ARN whose name starts with gatehouse-upstream- (the only "
                "roles the functions may assume), without wildcards, e.g. "
                "arn:aws:iam::123456789012:role/gatehouse-upstream-orders",
            )
        service = value.get("service")
        if not isinstance(service, str) or not _SIGNING_SERVICE.fullmatch(service):
            self.problem(
                f"{where}.service",
                "must be an AWS SigV4 signing name such as execute-api or lambda",
            )
        elif service in REFUSED_AWS_SERVICES:
            self.problem(
                f"{where}.service",
                f"{service} cannot be an upstream: its answers are credentials or it needs a "
                "signer Gatehouse does not have",
            )
        region = value.get("region")
        if not isinstance(region, str) or not _REGION.fullmatch(region):
            self.problem(f"{where}.region", "must be an AWS region such as us-east-1")
        elif role is not None and _partition_of(region) != role["partition"]:
            self.problem(
                f"{where}.region",
                f"is not in the role's partition {role['partition']!r}",
            )
        if len(self.problems) != before:
            return None
        assert isinstance(role_arn, str) and isinstance(service, str)  # checked above
        assert isinstance(region, str)
        return AwsUpstream(role_arn, service, region)

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
        self.unknown_fields(where, entry, fields.RULE.names)
        before = len(self.problems)
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
        conditions = None
        if "when" in entry:
            conditions = self.conditions(entry["when"], f"{where}.when", deny=effect == "deny")
        if len(self.problems) != before or subjects is None or effect not in ("allow", "deny"):
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
            self.problem(where, "must be a mapping of at least one condition")
            return None
        criteria = registered()
        self.unknown_fields(where, value, {criterion.name for criterion in criteria})
        settings = {
            criterion.name: criterion.parse(
                value[criterion.name], f"{where}.{criterion.name}", self
            )
            for criterion in criteria
            if criterion.name in value
        }
        if deny:
            # After every field's own problems, as a rule's problems read best.
            for criterion in criteria:
                refusal = criterion.deny_refusal
                if refusal is not None and criterion.imposes(settings.get(criterion.name)):
                    self.problem(f"{where}.{criterion.name}", _DENY_REFUSAL.format(refusal))
        return Conditions(**settings)

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
        self.unknown_fields(where, value, fields.SUBJECTS.names)
        lists = {
            kind: self.string_list(value.get(kind), f"{where}.{kind}", required=False)
            for kind in ("users", "groups", "domains", "issuers")
        }
        claims = self.claims(value["claims"], f"{where}.claims") if "claims" in value else ()
        if not any(lists.values()) and not claims:
            # An empty (or null) subjects field on an allow rule would mean
            # "everyone"; that must be said by omitting it, never by accident.
            self.problem(where, "lists no subject; omit the field to mean anyone signed in")
        return Subjects(
            users=frozenset(lists["users"]),
            groups=frozenset(lists["groups"]),
            domains=frozenset(domain.lower().lstrip("@") for domain in lists["domains"]),
            issuers=frozenset(issuer.rstrip("/") for issuer in lists["issuers"]),
            claims=claims,
        )

    def claims(self, value: Any, where: str) -> tuple[tuple[str, frozenset[str]], ...]:
        if not isinstance(value, dict) or not value:
            self.problem(where, "must be a mapping of claim name to value or list of values")
            return ()
        selector = []
        for name, accepted in sorted(value.items(), key=lambda item: str(item[0])):
            at = f"{where}.{name}"
            if not isinstance(name, str) or not _CLAIM_NAME.fullmatch(name):
                self.problem(at, "is not a claim name")
                continue
            if name in _REGISTERED_CLAIMS:
                self.problem(at, "is a registered claim; use users or issuers instead")
                continue
            if name in _SUBJECT_CLAIMS:
                self.problem(
                    at, f"is matched by subjects.{_SUBJECT_CLAIMS[name]}, which check it properly"
                )
                continue
            values = accepted if isinstance(accepted, list) else [accepted]
            if not values or not all(_is_claim_value(v) for v in values):
                self.problem(at, "must be a string, number or boolean, or a list of them")
                continue
            selector.append((name, frozenset(claim_key(v) for v in values)))
        return tuple(selector)

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


def _is_claim_value(value: object) -> bool:
    return isinstance(value, str | bool) or (isinstance(value, int) and abs(value) < 2**53)


def _valid_prefix(prefix: str) -> bool:
    if "%" in prefix or "*" in prefix:
        return False
    try:
        return normalize_path(prefix) == prefix
    except AmbiguousPath:
        return False


def _partition_of(region: str) -> str:
    if region.startswith("cn-"):
        return "aws-cn"
    if region.startswith("us-gov-"):
        return "aws-us-gov"
    return "aws"


def _secure_or_loopback(upstream: str) -> bool:
    """https, or http to this machine (the local stack's emulated AWS endpoint)."""
    parts = urlsplit(upstream)
    if parts.scheme == "https":
        return True
    host = parts.hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
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
