"""IAM policy evaluation, as API Gateway applies an authorizer's policy to a method ARN."""

from __future__ import annotations

import re
from typing import Any


def evaluate_policy(document: dict[str, Any], method_arn: str) -> str | None:
    """``Deny``, ``Allow`` or None (no statement applies) for ``method_arn``.

    Parameters
    ----------
    document:
        The authorizer's ``policyDocument``.
    method_arn:
        The ``execute-api`` ARN of the method called.

    Returns
    -------
    str or None
        ``Deny`` when any statement for ``execute-api:Invoke`` on the ARN
        denies (an explicit deny wins), else ``Allow`` when one allows, else
        None (an implicit deny).
    """
    allowed = False
    for statement in document.get("Statement", []):
        actions = statement.get("Action", [])
        actions = [actions] if isinstance(actions, str) else actions
        if not any(_arn_matches(action, "execute-api:Invoke") for action in actions):
            continue
        resources = statement.get("Resource", [])
        resources = [resources] if isinstance(resources, str) else resources
        if not any(_arn_matches(resource, method_arn) for resource in resources):
            continue
        if statement.get("Effect") == "Deny":
            return "Deny"
        if statement.get("Effect") == "Allow":
            allowed = True
    return "Allow" if allowed else None


def _arn_matches(pattern: str, arn: str) -> bool:
    # IAM wildcards: "*" any run of characters (across ":" and "/"), "?" one.
    regex = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    return re.fullmatch(regex, arn) is not None
