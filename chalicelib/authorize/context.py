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
from chalicelib.readable import MAX_JUSTIFICATION, capped

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    from chalicelib.policy import Decision

# Claims travel only when a rule names them, and never beyond this size:
# API Gateway caps the whole authorizer answer at a few kilobytes.
MAX_CLAIMS_JSON = 2048


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
    refusal: str = ""
    elevation: Mapping[str, Any] | None = None


def authorizer_context(
    identity: Identity,
    decision: Decision | None,
    *,
    decision_id: str,
    request_id: str,
    claim_names: Sequence[str] = (),
    refusal: str = "",
) -> dict[str, str | int | bool]:
    """The context map returned with every answer that names a principal.

    ``decision`` is None when the request was refused before the policy was
    consulted (an ambiguous path, named by ``refusal``: the proxy answers it);
    the context is still complete, because a cached answer (TTL > 0) carries
    it to later requests, which the proxy then re-decides. ``claim_names``
    are the claims the policy's rules name; their values travel with the
    principal so that the proxy can re-decide on them.
    """
    context: dict[str, str | int | bool] = {
        "principal": _principal_json(identity, _claims_json(identity, claim_names)),
        "sub": identity.subject,
        "email": identity.email or "",
        "groups": ",".join(sorted(identity.groups)),
        "decision_id": decision_id,
        "decided_for": request_id,
        "policy_version": decision.policy_version if decision else 0,
        "route_id": decision.route.id if decision and decision.route else "",
        "refusal": refusal,
        "grant_id": "",
        "break_glass": False,
    }
    if decision is not None and (decision.grant is not None or decision.break_glass):
        grant = decision.grant
        context["grant_id"] = grant.id if grant else ""
        context["break_glass"] = decision.break_glass
        justification = grant.justification if grant else decision.justification
        context["elevation"] = json.dumps(
            {
                "grant_id": grant.id if grant else None,
                "approver": grant.approver if grant else None,
                # Capped before encoding: a cut JSON text would not parse in the proxy.
                "justification": capped(justification, MAX_JUSTIFICATION),
                "break_glass": decision.break_glass,
            },
            separators=(",", ":"),
        )
    return context


def _claims_json(identity: Identity, names: Sequence[str]) -> str:
    if not names:
        return ""
    claims = {name: identity.claims[name] for name in names if name in identity.claims}
    text = json.dumps(claims, sort_keys=True, separators=(",", ":"))
    # Too large to carry: carry none. The proxy then treats them as absent,
    # which can only make a re-decision stricter (denies on absent claims apply).
    return text if len(text) <= MAX_CLAIMS_JSON else ""


@lru_cache(maxsize=4096)
def _principal_json(identity: Identity, claims_json: str) -> str:
    # The same principal calls again and again; serialise it once. The
    # claims are part of the key: Identity's hash ignores them.
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
        "bsid": identity.browser_session_id,
        "claims": json.loads(claims_json) if claims_json else {},
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
            refusal=str(context.get("refusal") or ""),
            elevation=_elevation(context.get("elevation")),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise MissingContext("the request carries no usable authorizer context") from exc


def _elevation(text: object) -> Mapping[str, Any] | None:
    if not text:
        return None
    value = json.loads(str(text))
    if not isinstance(value, dict):
        raise ValueError("elevation is not an object")
    return value


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
        browser_session_id=principal.get("bsid"),
        claims=_claims(principal.get("claims")),
    )


def _claims(value: object) -> Mapping[str, object]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ValueError("claims is not an object")
    return value
