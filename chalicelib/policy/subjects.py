"""Subject index keys: how rules are filed by whom they name, and how a principal looks them up.

A key is a :class:`SubjectKind` and a value (``(SubjectKind.GROUP, "engineering")``).
A rule is filed under one key per subject it names; a principal is looked
up under every key its identity yields; a rule is a candidate when the two
meet. ``StrEnum`` members hash and compare as their one-letter strings, so
keys cost what plain string tuples cost.
"""

from __future__ import annotations

from collections.abc import Iterator
from enum import StrEnum
from typing import TYPE_CHECKING

from chalicelib.policy.document import claim_key

if TYPE_CHECKING:
    from chalicelib.identity import Identity
    from chalicelib.policy.document import Rule


class SubjectKind(StrEnum):
    """What a subject index key names."""

    ANYONE = "*"
    USER = "u"  # a subject (``sub``), exact
    EMAIL = "e"  # a verified email, lower case
    GROUP = "g"
    DOMAIN = "d"  # an email domain, lower case
    ISSUER = "i"
    CLAIM = "c"  # ``name=<canonical value>``
    # Deny rules that name emails/domains (groups, a claim) also apply to
    # principals whose token carries no verified email (no groups claim, not
    # that claim): a caller must not escape a deny by asking the IdP for a
    # token without the claim it matches on.
    NO_EMAIL = "?e"
    NO_GROUPS = "?g"
    NO_CLAIM = "?c"  # ``name``


SubjectKey = tuple[SubjectKind, str]

# Module-level names: looking a member up on the enum class costs more, per key.
ANYONE, USER, EMAIL, GROUP, DOMAIN, ISSUER, CLAIM, NO_EMAIL, NO_GROUPS, NO_CLAIM = SubjectKind
_ANYONE: SubjectKey = (ANYONE, "")
_NO_EMAIL: SubjectKey = (NO_EMAIL, "")
_NO_GROUPS: SubjectKey = (NO_GROUPS, "")


def rule_subject_keys(rule: Rule) -> Iterator[SubjectKey]:
    """Every key ``rule`` is filed under."""
    subjects = rule.subjects
    if subjects.anyone:
        yield _ANYONE
        return
    names_email = bool(subjects.domains)
    for user in subjects.users:
        # An entry with "@" names a verified email (case-insensitive), any
        # other entry a subject (exact): a sub never matches an email entry.
        if "@" in user:
            names_email = True
            yield (EMAIL, user.lower())
        else:
            yield (USER, user)
    yield from ((GROUP, group) for group in subjects.groups)
    yield from ((DOMAIN, domain) for domain in subjects.domains)
    yield from ((ISSUER, issuer) for issuer in subjects.issuers)
    yield from _rule_claim_keys(rule)
    if rule.effect == "deny":
        if names_email:
            yield _NO_EMAIL
        if subjects.groups:
            yield _NO_GROUPS


def _rule_claim_keys(rule: Rule) -> Iterator[SubjectKey]:
    """A claims selector is indexed by its first claim; the rest is checked on lookup."""
    if not rule.subjects.claims:
        return
    name, accepted = rule.subjects.claims[0]
    for value in accepted:
        yield (CLAIM, f"{name}={value}")
    if rule.effect == "deny":
        yield (NO_CLAIM, name)


def identity_subject_keys(identity: Identity) -> Iterator[SubjectKey]:
    """Every key a principal is looked up under, claims apart (:func:`identity_claim_keys`)."""
    yield _ANYONE
    yield (USER, identity.subject)
    yield (ISSUER, identity.issuer.rstrip("/"))
    if identity.email is not None:
        email = identity.email.lower()
        yield (EMAIL, email)
        if "@" in email:
            yield (DOMAIN, email.rsplit("@", 1)[1])
    else:
        yield _NO_EMAIL
    if not identity.groups_claimed and not identity.groups:
        yield _NO_GROUPS
    for group in identity.groups:
        yield (GROUP, group)


def identity_claim_keys(identity: Identity, names: tuple[str, ...]) -> Iterator[SubjectKey]:
    """The keys of the principal's values of the claims ``names`` (the indexed ones)."""
    for name in names:
        value = identity.claims.get(name)
        if value is None:
            yield (NO_CLAIM, name)
            continue
        for item in value if isinstance(value, list) else (value,):
            yield (CLAIM, f"{name}={claim_key(item)}")


def claims_match(rule: Rule, identity: Identity) -> bool:
    """Whether every claim the rule names matches (for a deny, or is absent)."""
    for name, accepted in rule.subjects.claims:
        value = identity.claims.get(name)
        if value is None:
            if rule.effect == "deny":
                continue
            return False
        items = value if isinstance(value, list) else (value,)
        if not any(claim_key(item) in accepted for item in items):
            return False
    return True
