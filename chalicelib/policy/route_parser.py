"""The ``routes`` section of a policy: hosts, path prefixes, upstreams and AWS upstreams.

A route that cannot be enforced as written is refused: an upstream that is
not a plain http(s) URL, a prefix that is not a normalised path (or is
Gatehouse's own), an AWS upstream whose role Gatehouse may not assume or
whose region is outside the role's partition.
"""

from __future__ import annotations

import ipaddress
import re
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from chalicelib.policy import fields
from chalicelib.policy.document import (
    HTTP_METHODS,
    REFUSED_AWS_SERVICES,
    RESERVED_PREFIX,
    AwsUpstream,
    CorsPolicy,
    Route,
    is_reserved_path,
)
from chalicelib.policy.paths import AmbiguousPath, fold_case, normalize_path

if TYPE_CHECKING:
    from chalicelib.policy.parse_problems import ProblemList

_HOST = re.compile(r"[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*")
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
# A browser's Origin header: scheme://host[:port], lower case, nothing after.
# Browsers leave the default port out, so an origin that names it would
# never match; it is refused rather than silently never used.
_ORIGIN = re.compile(
    r"(?P<scheme>https?)://"
    r"(?P<host>[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*"
    r"|\[[0-9a-f:.]+\])"
    r"(:(?P<port>[1-9][0-9]{0,4}))?",
    re.ASCII,
)
_DEFAULT_PORTS = {"http": "80", "https": "443"}
# An RFC 9110 token, as a header name a preflight may ask for.
_HEADER_NAME = re.compile(r"[!#$%&'*+\-.^`|~0-9A-Za-z]+", re.ASCII)
MAX_CORS_AGE_SECONDS = 86400


class RouteParser:
    """Parses the routes of one document, recording problems in ``problems``.

    Parameters
    ----------
    problems:
        Where the document's problems are recorded.
    """

    def __init__(self, problems: ProblemList) -> None:
        self._problems = problems

    def routes(self, value: Any) -> list[Route]:
        """The valid routes of the ``routes`` list (each invalid one is a problem)."""
        routes = []
        placed: list[tuple[str, Route]] = []
        for where, entry in self._problems.entries(value, "routes"):
            route = self.route(where, entry)
            if route is not None:
                routes.append(route)
                placed.append((where, route))
        if isinstance(value, list) and not value:
            self._problems.problem("routes", "must name at least one route")
        self.prefixes_differing_only_in_case(placed)
        return routes

    def prefixes_differing_only_in_case(self, placed: list[tuple[str, Route]]) -> None:
        """Prefixes match ignoring case: ``/Reports`` would shadow ``/reports`` silently."""
        seen: dict[tuple[str, str], Route] = {}
        for where, route in placed:
            key = (route.host, fold_case(route.path_prefix))
            first = seen.setdefault(key, route)
            if first is not route and first.path_prefix != route.path_prefix:
                self._problems.problem(
                    f"{where}.path_prefix",
                    f"{route.path_prefix!r} differs from route {first.id!r}'s "
                    f"{first.path_prefix!r} only in letter case; prefixes match ignoring "
                    "case, so only the first would ever be chosen",
                )

    def route(self, where: str, entry: dict[str, Any]) -> Route | None:
        """One route, or None when it has problems."""
        self._problems.unknown_fields(where, entry, fields.ROUTE.names)
        before = len(self._problems)
        host = entry.get("host", "*")
        if not isinstance(host, str) or not (host == "*" or _HOST.fullmatch(host)):
            self._problems.problem(f"{where}.host", 'must be "*" or a lower-case host name')
        prefix = entry.get("path_prefix", "/")
        if not isinstance(prefix, str) or not _valid_prefix(prefix):
            self._problems.problem(
                f"{where}.path_prefix", "must be a plain, normalised path starting with /"
            )
        elif is_reserved_path(prefix):
            self._problems.problem(f"{where}.path_prefix", f"{RESERVED_PREFIX}/ is Gatehouse's own")
        upstream = entry.get("upstream")
        if not isinstance(upstream, str) or not _valid_upstream(upstream):
            self._problems.problem(
                f"{where}.upstream", "must be an http(s) URL without query or fragment"
            )
        audience = entry.get("audience")
        if not isinstance(audience, str) or not audience:
            self._problems.problem(f"{where}.audience", "must be a non-empty string")
        flags = {name: entry.get(name, False) for name in ("pass_authorization", "sensitive")}
        for name, flag in flags.items():
            if not isinstance(flag, bool):
                self._problems.problem(f"{where}.{name}", "must be true or false")
        aws = self.aws_route(where, entry, flags["pass_authorization"]) if "aws" in entry else None
        cors = self.cors(entry["cors"], f"{where}.cors") if "cors" in entry else None
        identity_headers = entry.get("identity_headers", False)
        if not isinstance(identity_headers, bool):
            self._problems.problem(f"{where}.identity_headers", "must be true or false")
        if len(self._problems) != before:
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
            cors=cors,
            identity_headers=identity_headers,
        )

    def cors(self, value: Any, where: str) -> CorsPolicy | None:
        """A ``cors`` block: origins, methods, headers, max_age, credentials."""
        if not isinstance(value, dict):
            self._problems.problem(where, "must be a mapping with origins and methods")
            return None
        self._problems.unknown_fields(where, value, fields.CORS.names)
        before = len(self._problems)
        credentials = value.get("credentials", False)
        if not isinstance(credentials, bool):
            self._problems.problem(f"{where}.credentials", "must be true or false")
        origins = self._cors_origins(value.get("origins"), f"{where}.origins", credentials is True)
        methods = self._cors_list(value.get("methods"), f"{where}.methods")
        bad_methods = sorted(m for m in methods if m not in HTTP_METHODS)
        if bad_methods:
            self._problems.problem(
                f"{where}.methods",
                f"{', '.join(map(repr, bad_methods))}: not an HTTP method "
                f"({', '.join(sorted(HTTP_METHODS))}; no wildcard)",
            )
        headers = self._cors_list(value.get("headers", []), f"{where}.headers", empty_ok=True)
        bad_headers = sorted(
            h for h in headers if not _HEADER_NAME.fullmatch(h) or "_" in h or "*" in h
        )
        if bad_headers:
            self._problems.problem(
                f"{where}.headers",
                f"{', '.join(map(repr, bad_headers))}: not a header name (no wildcard, no _)",
            )
        max_age = value.get("max_age")
        if max_age is not None and (
            isinstance(max_age, bool)
            or not isinstance(max_age, int)
            or not 0 <= max_age <= MAX_CORS_AGE_SECONDS
        ):
            self._problems.problem(
                f"{where}.max_age", f"must be whole seconds from 0 to {MAX_CORS_AGE_SECONDS}"
            )
        if len(self._problems) != before:
            return None
        assert isinstance(credentials, bool)  # checked above
        return CorsPolicy(
            origins=frozenset(origins),
            methods=frozenset(methods),
            headers=frozenset(h.lower() for h in headers),
            max_age=max_age,
            credentials=credentials,
        )

    def _cors_list(self, value: Any, where: str, *, empty_ok: bool = False) -> list[str]:
        if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
            self._problems.problem(where, "must be a list of non-empty strings")
            return []
        if not value and not empty_ok:
            self._problems.problem(where, "must name at least one")
        return list(value)

    def _cors_origins(self, value: Any, where: str, credentials: bool) -> list[str]:
        origins = self._cors_list(value, where)
        for origin in origins:
            if origin == "*":
                if credentials:
                    self._problems.problem(
                        where,
                        '"*" cannot be used with credentials: true (browsers refuse it, '
                        "and any site could act with the visitor's credentials); list the origins",
                    )
                elif len(origins) > 1:
                    self._problems.problem(where, '"*" already means every origin: list it alone')
                continue
            match = _ORIGIN.fullmatch(origin)
            if match is None:
                self._problems.problem(
                    where,
                    f"{origin!r} is not an origin: scheme://host[:port] in lower case, "
                    "http or https, no path, no trailing slash",
                )
            elif match["port"] is not None and (
                match["port"] == _DEFAULT_PORTS[match["scheme"]] or int(match["port"]) > 65535
            ):
                self._problems.problem(
                    where,
                    f"{origin!r}: leave out the default port (browsers send the origin "
                    "without it) and use a port up to 65535",
                )
        return origins

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
            self._problems.problem(
                f"{where}.upstream", "must be https for an AWS upstream (http only on loopback)"
            )
        if pass_authorization is True:
            self._problems.problem(
                f"{where}.pass_authorization",
                "cannot be true on an AWS route: Authorization carries the SigV4 signature",
            )
        return self.aws_upstream(entry["aws"], f"{where}.aws")

    def aws_upstream(self, value: Any, where: str) -> AwsUpstream | None:
        """An ``aws`` block: the role to assume, the signing name and the region."""
        if not isinstance(value, dict):
            self._problems.problem(where, "must be a mapping with role_arn, service and region")
            return None
        self._problems.unknown_fields(where, value, fields.AWS.names)
        before = len(self._problems)
        role_arn = value.get("role_arn")
        role = _ROLE_ARN.fullmatch(role_arn) if isinstance(role_arn, str) else None
        if role is None:
            self._problems.problem(
                f"{where}.role_arn",
                "must be an IAM role ARN whose name starts with gatehouse-upstream- (the only "
                "roles the functions may assume), without wildcards, e.g. "
                "arn:aws:iam::123456789012:role/gatehouse-upstream-orders",
            )
        service = value.get("service")
        if not isinstance(service, str) or not _SIGNING_SERVICE.fullmatch(service):
            self._problems.problem(
                f"{where}.service",
                "must be an AWS SigV4 signing name such as execute-api or lambda",
            )
        elif service in REFUSED_AWS_SERVICES:
            self._problems.problem(
                f"{where}.service",
                f"{service} cannot be an upstream: its answers are credentials or it needs a "
                "signer Gatehouse does not have",
            )
        region = value.get("region")
        if not isinstance(region, str) or not _REGION.fullmatch(region):
            self._problems.problem(f"{where}.region", "must be an AWS region such as us-east-1")
        elif role is not None and _partition_of(region) != role["partition"]:
            self._problems.problem(
                f"{where}.region",
                f"is not in the role's partition {role['partition']!r}",
            )
        if len(self._problems) != before:
            return None
        assert isinstance(role_arn, str) and isinstance(service, str)  # checked above
        assert isinstance(region, str)
        return AwsUpstream(role_arn, service, region)


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
