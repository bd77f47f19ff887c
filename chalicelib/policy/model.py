"""The policy document: routes and rules (field names fixed by DESIGN.md section 5).

:func:`parse_policy` validates a whole document and reports every problem
with where it is (``rules[eng-read].actions``), so nothing half-valid is ever
stored. Anything this version cannot enforce is refused, never ignored: an
ignored condition on an allow rule would grant too much, an ignored subject
kind on a deny rule would deny too little.
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from chalicelib.policy.cidrs import CidrSet, InvalidCidr
from chalicelib.policy.conditions import Conditions
from chalicelib.policy.errors import PolicyInvalid, PolicyProblem
from chalicelib.policy.globs import InvalidGlob, PathGlob, combine_globs, compile_glob
from chalicelib.policy.hours import DAY_NAMES, Hours, InvalidHours, parse_clock
from chalicelib.policy.paths import AmbiguousPath, fold_case, normalize_path

HTTP_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
SCHEMA_VERSION = 1

_ID = re.compile(r"[a-z0-9][a-z0-9_.-]{0,63}")
_HOST = re.compile(r"[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*")
_DURATION = re.compile(r"(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?")
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
MAX_GRANT_DURATION_SECONDS = 7 * 24 * 3600
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
# Services an AWS route may not call: their answers are credentials that
# would leave Gatehouse's audit (sts, sso, cognito-identity), IAM itself, and
# S3, whose requests this signer does not sign (no x-amz-content-sha256).
REFUSED_AWS_SERVICES = frozenset(
    {"sts", "iam", "sso", "sso-oauth", "cognito-identity", "s3", "s3-object-lambda"}
)
_REGION = re.compile(r"[a-z]{2}(?:-[a-z]+){1,2}-\d{1,2}")
# Gatehouse's own paths (the grant API); never a backend's, whatever the gateway routes.
RESERVED_PREFIX = "/.gatehouse"

Effect = Literal["allow", "deny"]
ClaimValue = str | int | bool


def is_reserved_path(path: str) -> bool:
    """Whether ``path`` is under ``/.gatehouse``, which no route may serve (any letter case)."""
    folded = fold_case(path)
    return folded == RESERVED_PREFIX or folded.startswith(RESERVED_PREFIX + "/")


def parse_duration(value: object) -> int | None:
    """Seconds from ``3600``, ``"90s"``, ``"30m"``, ``"4h"``, ``"1d"``, ``"1h30m"``; else None."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value if value > 0 else None
    if not isinstance(value, str) or not value:
        return None
    match = _DURATION.fullmatch(value)
    if match is None or not any(match.groups()):
        return None
    days, hours, minutes, seconds = (int(part or 0) for part in match.groups())
    total = ((days * 24 + hours) * 60 + minutes) * 60 + seconds
    return total if total > 0 else None


def claim_key(value: object) -> str:
    """The canonical text of a claim value, so ``1``, ``"1"`` and ``true`` stay distinct.

    The JSON text; plain strings, booleans and integers skip the encoder (it
    runs per claim on every new principal).
    """
    kind = type(value)
    if kind is str:
        text = str(value)
        if text.isascii() and text.isprintable() and '"' not in text and "\\" not in text:
            return f'"{text}"'
    elif kind is bool:
        return "true" if value else "false"
    elif kind is int:
        return str(value)
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


@dataclass(frozen=True, slots=True)
class AwsUpstream:
    """A route's AWS upstream: requests are SigV4-signed with a per-principal STS session.

    Attributes
    ----------
    role_arn:
        The IAM role assumed (with the principal as ``SourceIdentity``).
    service:
        The SigV4 signing name (``execute-api``, ``lambda``, ...).
    region:
        The signing region.
    """

    role_arn: str
    service: str
    region: str


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
    aws: AwsUpstream | None = None

    def covers_path(self, path: str) -> bool:
        """Whether ``path`` is under this route's prefix (on a segment boundary, any case)."""
        prefix = fold_case(self.path_prefix)
        path = fold_case(path)
        if prefix == "/" or path == prefix:
            return True
        if prefix.endswith("/"):
            return path.startswith(prefix)
        return path.startswith(prefix + "/")


@dataclass(frozen=True, slots=True)
class Subjects:
    """Who a rule applies to; any listed kind may match, none listed means anyone signed in.

    Attributes
    ----------
    users:
        Entries with ``@`` are verified emails (case-insensitive), others subjects (exact).
    groups, domains, issuers:
        Group names, email domains (lower case), issuer URLs (exact).
    claims:
        Claim name -> accepted values (canonical text, see :func:`claim_key`).
        Every named claim must match (a selector); a claim matches when its
        value, or one element of its list value, is accepted.
    """

    users: frozenset[str] = frozenset()
    groups: frozenset[str] = frozenset()
    domains: frozenset[str] = frozenset()
    issuers: frozenset[str] = frozenset()
    claims: tuple[tuple[str, frozenset[str]], ...] = ()

    @property
    def anyone(self) -> bool:
        """True when the rule applies to every authenticated principal."""
        return not (self.users or self.groups or self.domains or self.issuers or self.claims)


@dataclass(frozen=True, slots=True)
class GrantSettings:
    """The policy's ``grants`` block: who approves just-in-time access, for how long at most."""

    approver_groups: frozenset[str]
    max_duration_seconds: int


@dataclass(frozen=True, slots=True)
class BreakGlass:
    """The policy's ``break_glass`` block."""

    groups: frozenset[str]
    require_justification: bool = True


@dataclass(frozen=True, slots=True)
class Rule:
    """One allow or deny rule."""

    id: str
    effect: Effect
    routes: tuple[str, ...]
    subjects: Subjects
    actions: frozenset[str]
    paths: tuple[PathGlob, ...] = ()
    conditions: Conditions = field(default_factory=Conditions)
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
        if self.path_regex is not None:
            folded = fold_case(path) if self.effect == "deny" else path  # deny globs ignore case
            if self.path_regex.fullmatch(folded) is not None:
                return True
        return any(glob.matches(path) for glob in self.segment_globs)


@dataclass(frozen=True, slots=True)
class PolicyDocument:
    """A validated policy document."""

    routes: tuple[Route, ...]
    rules: tuple[Rule, ...]
    checksum: str
    grants: GrantSettings | None = None
    break_glass: BreakGlass | None = None

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
        self.unknown_fields("grants", value, {"approver_groups", "max_duration"})
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
        self.unknown_fields("break_glass", value, {"groups", "require_justification"})
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
            "aws",
        }
        self.unknown_fields(where, entry, known)
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
        self.unknown_fields(where, value, {"role_arn", "service", "region"})
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
        self.unknown_fields(
            where, entry, {"id", "effect", "routes", "subjects", "actions", "paths", "when"}
        )
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
        conditions = self.conditions(entry["when"], f"{where}.when") if "when" in entry else None
        if effect == "deny" and conditions is not None:
            self.session_conditions_on_deny(conditions, f"{where}.when")
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

    def session_conditions_on_deny(self, conditions: Conditions, where: str) -> None:
        # "Deny when the session has MFA" (or is fresh) would shut out the
        # strongest sessions and let weaker ones through: the opposite of
        # what anyone writing it means. They describe what an allow requires.
        hint = "it would deny the stronger sessions; require it on the allow rules instead"
        if conditions.mfa:
            self.problem(f"{where}.mfa", f"cannot be on a deny rule: {hint}")
        if conditions.max_auth_age is not None:
            self.problem(f"{where}.max_auth_age", f"cannot be on a deny rule: {hint}")

    def conditions(self, value: Any, where: str) -> Conditions | None:
        if not isinstance(value, dict) or not value:
            self.problem(where, "must be a mapping of at least one condition")
            return None
        self.unknown_fields(where, value, {"mfa", "max_auth_age", "source_cidrs", "hours"})
        mfa = value.get("mfa", False)
        if not isinstance(mfa, bool):
            self.problem(f"{where}.mfa", "must be true or false")
        max_auth_age = None
        if "max_auth_age" in value:
            max_auth_age = parse_duration(value["max_auth_age"])
            if max_auth_age is None:
                self.problem(
                    f"{where}.max_auth_age", 'must be seconds (a number) or a duration like "1h"'
                )
        cidrs = None
        if "source_cidrs" in value:
            texts = self.string_list(value["source_cidrs"], f"{where}.source_cidrs")
            try:
                cidrs = CidrSet.parse(texts) if texts else None
            except InvalidCidr as exc:
                self.problem(f"{where}.source_cidrs", str(exc))
        hours = self.hours(value["hours"], f"{where}.hours") if "hours" in value else None
        return Conditions(
            mfa=mfa is True, max_auth_age=max_auth_age, source_cidrs=cidrs, hours=hours
        )

    def clock(self, value: Any, where: str, *, end_of_day: bool) -> int | None:
        if not isinstance(value, str):
            # YAML 1.1 reads an unquoted 18:00 as the number 1080.
            self.problem(where, 'must be a quoted time, e.g. "18:00"')
            return None
        try:
            return parse_clock(value, allow_end_of_day=end_of_day)
        except InvalidHours as exc:
            self.problem(where, str(exc))
            return None

    def hours(self, value: Any, where: str) -> Hours | None:
        if not isinstance(value, dict):
            self.problem(where, "must be a mapping with tz, days, from, to")
            return None
        self.unknown_fields(where, value, {"tz", "days", "from", "to"})
        zone = _zone(value.get("tz"))
        if zone is None:
            self.problem(f"{where}.tz", "must be an IANA time zone such as Europe/Berlin")
        days = self.string_list(value.get("days", list(DAY_NAMES)), f"{where}.days")
        day_numbers = {DAY_NAMES.index(day) for day in days if day in DAY_NAMES}
        if len(day_numbers) != len(set(days)):
            self.problem(f"{where}.days", f"must name days among {', '.join(DAY_NAMES)}")
        start = self.clock(value.get("from", "00:00"), f"{where}.from", end_of_day=False)
        end = self.clock(value.get("to", "24:00"), f"{where}.to", end_of_day=True)
        if start is None or end is None:
            return None
        if start == end:
            self.problem(where, "from and to are equal; omit both to mean the whole day")
            return None
        if zone is None or not day_numbers:
            return None
        return Hours(zone, frozenset(day_numbers), start, end)

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


def _zone(name: object) -> ZoneInfo | None:
    if not isinstance(name, str) or not name or name.startswith(("/", ".")) or ".." in name:
        return None
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return None


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
