"""The policy document's types: routes, rules, subjects and the policy-wide settings.

Built only by the parser (:mod:`chalicelib.policy.parser`), which validates
a whole document first; everything here is immutable and already checked.
Field names are fixed: tools and runbooks rely on them (docs/policy.md).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Literal

from chalicelib.policy.conditions import Conditions
from chalicelib.policy.globs import PathGlob, combine_globs
from chalicelib.policy.paths import fold_case

HTTP_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
SCHEMA_VERSION = 1
MAX_GRANT_DURATION_SECONDS = 7 * 24 * 3600
# Services an AWS route may not call: their answers are credentials that
# would leave Gatehouse's audit (sts, sso, cognito-identity), IAM itself, and
# S3, whose requests this signer does not sign (no x-amz-content-sha256).
REFUSED_AWS_SERVICES = frozenset(
    {"sts", "iam", "sso", "sso-oauth", "cognito-identity", "s3", "s3-object-lambda"}
)
# Gatehouse's own paths (the grant API); never a backend's, whatever the gateway routes.
RESERVED_PREFIX = "/.gatehouse"

Effect = Literal["allow", "deny"]
ClaimValue = str | int | bool


def is_reserved_path(path: str) -> bool:
    """Whether ``path`` is under ``/.gatehouse``, which no route may serve (any letter case)."""
    folded = fold_case(path)
    return folded == RESERVED_PREFIX or folded.startswith(RESERVED_PREFIX + "/")


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


# A last segment's suffixes from its first dot on (".json", ".json.gz", ".a_b/"): what
# format-aware routers strip (Rails takes any [^/.?]+, Spring ".*"). Over-matching
# is the safe direction for a deny.
_FORMAT_SUFFIX = re.compile(r"(?<=[^/.])\.[^/]*/?$")


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
class CorsPolicy:
    """A route's ``cors`` block: which browser origins may call it from a page of theirs.

    Attributes
    ----------
    origins:
        Exact origins (``scheme://host[:port]``, lower case, no default port),
        or ``"*"`` for any origin (never with ``credentials``).
    methods:
        The methods a preflight may ask for.
    headers:
        The request headers a preflight may ask for (lower case).
    max_age:
        How long a browser may cache a preflight's answer (seconds), or None.
    credentials:
        Whether the browser may send cookies and Authorization along.
    """

    origins: frozenset[str]
    methods: frozenset[str]
    headers: frozenset[str] = frozenset()
    max_age: int | None = None
    credentials: bool = False


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
    cors: CorsPolicy | None = None
    identity_headers: bool = False

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

    Users, groups, domains and claims are those of the issuers listed in
    ``issuers``, or of the stage's default issuer when none is: ``issuers``
    qualifies them (``chalicelib.policy.subjects``). Listed alone, ``issuers``
    means anyone those issuers sign in.

    Attributes
    ----------
    users:
        Entries with ``@`` are verified emails (case-insensitive), others subjects (exact).
    groups, domains, issuers:
        Group names, email domains (lower case), issuer URLs (exact, without trailing slashes).
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

    @property
    def names_principals(self) -> bool:
        """True when the rule names users, groups, domains or claims (which issuers qualify)."""
        return bool(self.users or self.groups or self.domains or self.claims)


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
        """Whether the rule's path globs (none means every path) match.

        A deny also matches its paths with format suffixes (``/billing.json``,
        ``/billing.json.gz``): Rails, Spring and others route them like ``/billing``.
        """
        if not self.paths:
            return True
        if self._globs_match(path):
            return True
        if self.effect == "deny":
            stem = _FORMAT_SUFFIX.sub("", path)
            return stem != path and self._globs_match(stem)
        return False

    def _globs_match(self, path: str) -> bool:
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
