"""The authorizer context: what the authorizer tells the proxy about a request.

API Gateway copies the authorizer's ``context`` map into the proxy event's
``requestContext.authorizer`` (values become strings) and into access logs
(``$context.authorizer.<key>``). Flat keys serve the logs; ``principal`` is
the full identity as JSON for the proxy.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from chalicelib.identity import Identity

if TYPE_CHECKING:
    from collections.abc import Mapping

    from chalicelib.policy import Decision


class MissingContext(ValueError):
    """The proxy event carries no usable authorizer context."""


@dataclass(frozen=True, slots=True)
class GrantedAccess:
    """What the authorizer decided, as read back by the proxy."""

    identity: Identity
    decision_id: str
    decided_for: str
    policy_version: int
    route_id: str


def authorizer_context(
    identity: Identity, decision: Decision | None, *, decision_id: str, request_id: str
) -> dict[str, str | int | bool]:
    """The context map returned with every answer that names a principal.

    ``decision`` is None when the request was refused before the policy was
    consulted (an ambiguous path); the context is still complete, because a
    cached answer (TTL > 0) carries it to later requests, which the proxy then
    re-decides.
    """
    return {
        "principal": _principal_json(identity),
        "sub": identity.subject,
        "email": identity.email or "",
        "groups": ",".join(sorted(identity.groups)),
        "decision_id": decision_id,
        "decided_for": request_id,
        "policy_version": decision.policy_version if decision else 0,
        "route_id": decision.route.id if decision and decision.route else "",
    }


@lru_cache(maxsize=4096)
def _principal_json(identity: Identity) -> str:
    # The same principal calls again and again; serialise it once.
    principal = {
        "iss": identity.issuer,
        "sub": identity.subject,
        "aud": identity.audience,
        "exp": identity.expires_at,
        "email": identity.email,
        "groups": sorted(identity.groups),
        "groups_claimed": identity.groups_claimed,
        "amr": list(identity.amr),
        "auth_time": identity.auth_time,
        "iat": identity.issued_at,
        "client_id": identity.client_id,
        "sid": identity.session_id,
        "jti": identity.token_id,
    }
    return json.dumps(principal, separators=(",", ":"))


def granted_access(context: Mapping[str, Any]) -> GrantedAccess:
    """Read the authorizer context of a proxy event.

    Raises
    ------
    MissingContext
        When the context is absent or incomplete (the route has no authorizer).
    """
    try:
        identity = _identity_from_principal(context["principal"])
        return GrantedAccess(
            identity=identity,
            decision_id=str(context["decision_id"]),
            decided_for=str(context["decided_for"]),
            policy_version=int(context["policy_version"]),
            route_id=str(context["route_id"]),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise MissingContext("the request carries no usable authorizer context") from exc


@lru_cache(maxsize=4096)
def _identity_from_principal(principal_json: str) -> Identity:
    # One principal makes many requests: parse its JSON once.
    principal = json.loads(principal_json)
    return Identity(
        issuer=principal["iss"],
        subject=principal["sub"],
        audience=principal["aud"],
        expires_at=int(principal["exp"]),
        email=principal.get("email"),
        groups=frozenset(principal.get("groups") or ()),
        groups_claimed=principal.get("groups_claimed") is True,
        amr=tuple(principal.get("amr") or ()),
        auth_time=principal.get("auth_time"),
        issued_at=principal.get("iat"),
        client_id=principal.get("client_id"),
        session_id=principal.get("sid"),
        token_id=principal.get("jti"),
    )
