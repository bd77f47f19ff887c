"""The IAM policy a Lambda authorizer returns to API Gateway.

A cached answer covers the whole API: what the policy engine says a principal
may reach at most (:class:`~chalicelib.policy.engine.Reach`, as path globs)
is translated here into ``execute-api`` method ARNs.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from chalicelib.policy.model import HTTP_METHODS

if TYPE_CHECKING:
    from chalicelib.policy.engine import Reach


@dataclass(frozen=True, slots=True)
class Permission:
    """An IAM-expressible superset of what a scope lets a principal do."""

    methods: frozenset[str]
    arn_paths: tuple[str, ...]


def permissions(reach: Reach) -> list[Permission]:
    """The method-ARN permissions covering everything in ``reach``."""
    if reach.everything:
        return [Permission(HTTP_METHODS, ("*",))]
    return [Permission(scope.methods, glob_to_arn_paths(scope.glob)[0]) for scope in reach.scopes]


# API Gateway refuses authorizer policies much above 8 KB; stay well below.
MAX_RESOURCES_PER_EFFECT = 64


@dataclass(frozen=True, slots=True)
class MethodArn:
    """``arn:aws:execute-api:{region}:{account}:{api}/{stage}/{METHOD}/{path}``."""

    base: str
    method: str
    path: str

    @classmethod
    def parse(cls, arn: str) -> MethodArn:
        """Split a method ARN.

        Raises
        ------
        ValueError
            When ``arn`` is not an execute-api method ARN.
        """
        prefix, _, resource = arn.partition(":execute-api:")
        if not resource:
            raise ValueError("not an execute-api ARN")
        parts = resource.split("/", 3)
        if len(parts) < 3:
            raise ValueError("method ARN has no stage and method")
        base = f"{prefix}:execute-api:{parts[0]}/{parts[1]}"
        return cls(base=base, method=parts[2], path=parts[3] if len(parts) > 3 else "")

    def resource(self, method: str, path: str) -> str:
        """The ARN of ``method`` on ``path`` (IAM wildcards allowed) in this API stage."""
        return f"{self.base}/{method}/{path}"

    def __str__(self) -> str:
        return self.resource(self.method, self.path)


def policy_document(allow: Iterable[str], deny: Iterable[str]) -> dict[str, Any]:
    """An ``execute-api:Invoke`` policy; empty effects are omitted."""
    statements = []
    for effect, resources in (("Deny", sorted(set(deny))), ("Allow", sorted(set(allow)))):
        if resources:
            statements.append(
                {"Action": "execute-api:Invoke", "Effect": effect, "Resource": resources}
            )
    return {"Version": "2012-10-17", "Statement": statements}


def whole_api_resources(method_arn: MethodArn, permissions: Iterable[Permission]) -> list[str]:
    """Allow resources covering every route and method in ``permissions``.

    When a principal's permissions would need too many resources, they
    collapse to the whole API: API Gateway then lets the request reach the
    proxy, which re-decides every request served from a cached answer.
    """
    allow: set[str] = set()
    for permission in permissions:
        methods = ["*"] if permission.methods == HTTP_METHODS else sorted(permission.methods)
        for method in methods:
            for path in permission.arn_paths:
                allow.add(method_arn.resource(method, path))
    if len(allow) > MAX_RESOURCES_PER_EFFECT:
        allow = {method_arn.resource("*", "*")}
    return sorted(allow)


def glob_to_arn_paths(pattern: str) -> tuple[tuple[str, ...], bool]:
    """Translate a glob into ``execute-api`` ARN resource paths.

    IAM's ``*`` also crosses ``/``, so a translation may match more than the
    glob. Returns ``(arn_paths, exact)``: the paths (without the leading
    ``/``, as in method ARNs) match a superset of the glob, and ``exact`` says
    whether they match precisely the glob. Only literal paths and a literal
    stem followed by ``/**`` translate exactly.
    """
    body = pattern[1:]
    if body == "**":
        return ("*",), True
    if body.endswith("/**"):
        stem = body[: -len("/**")]
        if not _has_wildcard(stem):
            return (stem, stem + "/*"), True
    elif not _has_wildcard(body):
        return (body, body + "/") if body else (body,), True
    # Anything else: everything from the first wildcard on becomes one IAM "*".
    first = min(index for index in (body.find("*"), body.find("?")) if index >= 0)
    return (body[:first] + "*",), False


def _has_wildcard(text: str) -> bool:
    return "*" in text or "?" in text
