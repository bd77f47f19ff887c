"""The verified identity of a caller."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class Identity:
    """Who made a request, as established from a verified token.

    Attributes
    ----------
    issuer, subject:
        ``iss`` and ``sub``; together they name the principal.
    audience:
        The configured audience that the token's ``aud`` matched.
    expires_at:
        ``exp`` (seconds since the epoch).
    email:
        Lower-cased ``email``, absent when the issuer says it is unverified.
    groups:
        Group names from the issuer's groups claim.
    groups_claimed:
        Whether the token carried the groups claim at all (an empty list is
        a statement; a missing claim is not, and deny rules treat it so).
    amr:
        Authentication methods (``amr``), e.g. ``("pwd", "mfa")``.
    session_id:
        The identity provider's session (``sid``), when its token names one.
    browser_session_id:
        Gatehouse's own browser session the request came with (None for a
        bearer token): every decision made under a session names it.
    claims:
        The verified claims, for criteria that look at other claims.
    """

    issuer: str
    subject: str
    audience: str
    expires_at: int
    email: str | None = None
    groups: frozenset[str] = frozenset()
    groups_claimed: bool = True
    amr: tuple[str, ...] = ()
    auth_time: int | None = None
    issued_at: int | None = None
    client_id: str | None = None
    session_id: str | None = None
    token_id: str | None = None
    browser_session_id: str | None = None
    claims: Mapping[str, object] = field(default_factory=dict, compare=False, repr=False)

    @property
    def email_domain(self) -> str | None:
        """The domain part of the verified email, if any."""
        if self.email is None or "@" not in self.email:
            return None
        return self.email.rsplit("@", 1)[1]
