"""Subject index keys: how rules are filed by whom they name, and how a principal looks them up.

A key is a kind and a value (``(SubjectKind.GROUP, "engineering")``). A rule
is filed under one key per subject it names; a principal is looked up under
every key its identity yields; a rule is a candidate when the two meet.
``StrEnum`` members hash and compare as their one-letter strings, so keys
cost what plain string tuples cost.

Issuers. Users, emails, groups, domains and claims are issuer-qualified
(each issuer is a namespace): the kind of a key of the stage's *default*
issuer (the first trusted issuer) is the plain kind, exactly the keys a
single-issuer stage always had, and the kind of any other issuer's key is
``<kind>|<issuer>`` (``("g|https://okta.example.com", "admins")``), the
issuer as :func:`normal_issuer` spells it. No kind contains ``|`` and the default
kinds have nothing after them, so a key names one (kind, issuer, value)
whatever the issuer URL or the value holds. A rule that names users,
groups, domains or claims is filed under the keys of each issuer it lists
(``subjects.issuers``), or of the default issuer when it lists none. A rule
that names issuers alone is filed under ``(ISSUER, issuer)`` (anyone that
issuer signs in), one without subjects under ``ANYONE`` (anyone of any
trusted issuer): neither kind is qualified.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
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
    # token without the claim it matches on. Qualified like the rest: the
    # protection is the named issuer's (another issuer's principal is no
    # member of its groups, claim or not).
    NO_EMAIL = "?e"
    NO_GROUPS = "?g"
    NO_CLAIM = "?c"  # ``name``


# The kind: a SubjectKind (the default issuer's, or unqualified), or "<kind>|<issuer>".
SubjectKey = tuple[str, str]

# Module-level names: looking a member up on the enum class costs more, per key.
ANYONE, USER, EMAIL, GROUP, DOMAIN, ISSUER, CLAIM, NO_EMAIL, NO_GROUPS, NO_CLAIM = SubjectKind
_ANYONE: SubjectKey = (ANYONE, "")
# Between a kind and the issuer it is qualified by; no kind contains it.
QUALIFIER = "|"


def normal_issuer(issuer: str) -> str:
    """The issuer as keys name it: no trailing slashes, scheme and host in lower case.

    Neither makes another issuer: a policy that spells an issuer
    ``https://IdP.example.com/`` names ``https://idp.example.com`` (a deny
    rule must not be dodged by a spelling). The path keeps its case.
    """
    issuer = issuer.rstrip("/")
    scheme, separator, rest = issuer.partition("://")
    if not separator:
        return issuer
    authority, slash, path = rest.partition("/")
    return f"{scheme.lower()}://{authority.lower()}{slash}{path}"


@dataclass(frozen=True, slots=True)
class Namespace:
    """The kinds of one issuer's keys (see the module docstring).

    Attributes
    ----------
    issuer:
        The issuer, without trailing slashes.
    default:
        Whether it is the stage's default issuer (its kinds are the plain ones).
    """

    issuer: str
    default: bool
    user: str
    email: str
    group: str
    domain: str
    claim: str
    no_claim: str
    no_email: SubjectKey
    no_groups: SubjectKey

    @classmethod
    def of(cls, issuer: str, default_issuer: str) -> Namespace:
        """The namespace of ``issuer`` on a stage whose default issuer is ``default_issuer``."""
        issuer = normal_issuer(issuer)
        default = issuer == normal_issuer(default_issuer)

        def kind(plain: SubjectKind) -> str:
            return plain if default else f"{plain}{QUALIFIER}{issuer}"

        return cls(
            issuer=issuer,
            default=default,
            user=kind(USER),
            email=kind(EMAIL),
            group=kind(GROUP),
            domain=kind(DOMAIN),
            claim=kind(CLAIM),
            no_claim=kind(NO_CLAIM),
            no_email=(kind(NO_EMAIL), ""),
            no_groups=(kind(NO_GROUPS), ""),
        )


def rule_subject_keys(rule: Rule, default_issuer: str) -> Iterator[SubjectKey]:
    """Every key ``rule`` is filed under, on a stage whose default issuer is ``default_issuer``."""
    subjects = rule.subjects
    if subjects.anyone:
        yield _ANYONE
        return
    if not subjects.names_principals:
        # Issuers alone: anyone each of them signs in.
        yield from ((ISSUER, normal_issuer(issuer)) for issuer in sorted(subjects.issuers))
        return
    # Issuers qualify the rest: each listed issuer's users, groups, ...; none, the default's.
    for issuer in sorted(subjects.issuers) or (default_issuer,):
        yield from _qualified_rule_keys(rule, Namespace.of(issuer, default_issuer))


def _qualified_rule_keys(rule: Rule, space: Namespace) -> Iterator[SubjectKey]:
    subjects = rule.subjects
    names_email = bool(subjects.domains)
    for user in subjects.users:
        # An entry with "@" names a verified email (case-insensitive), any
        # other entry a subject (exact): a sub never matches an email entry.
        if "@" in user:
            names_email = True
            yield (space.email, user.lower())
        else:
            yield (space.user, user)
    yield from ((space.group, group) for group in subjects.groups)
    yield from ((space.domain, domain) for domain in subjects.domains)
    yield from _rule_claim_keys(rule, space)
    if rule.effect == "deny":
        if names_email:
            yield space.no_email
        if subjects.groups:
            yield space.no_groups


def _rule_claim_keys(rule: Rule, space: Namespace) -> Iterator[SubjectKey]:
    """A claims selector is indexed by its first claim; the rest is checked on lookup."""
    if not rule.subjects.claims:
        return
    name, accepted = rule.subjects.claims[0]
    for value in accepted:
        yield (space.claim, f"{name}={value}")
    if rule.effect == "deny":
        yield (space.no_claim, name)


def identity_subject_keys(identity: Identity, space: Namespace) -> Iterator[SubjectKey]:
    """Every key a principal of ``space`` is looked up under, claims apart.

    ``space`` is the namespace of the principal's issuer; see :func:`identity_claim_keys`.
    """
    yield _ANYONE
    yield (space.user, identity.subject)
    yield (ISSUER, space.issuer)
    if identity.email is not None:
        email = identity.email.lower()
        yield (space.email, email)
        if "@" in email:
            yield (space.domain, email.rsplit("@", 1)[1])
    else:
        yield space.no_email
    if not identity.groups_claimed and not identity.groups:
        yield space.no_groups
    group = space.group
    for name in identity.groups:
        yield (group, name)


def identity_claim_keys(
    identity: Identity, names: tuple[str, ...], space: Namespace
) -> Iterator[SubjectKey]:
    """The keys of the principal's values of the claims ``names`` (the indexed ones)."""
    for name in names:
        value = identity.claims.get(name)
        if value is None:
            yield (space.no_claim, name)
            continue
        for item in value if isinstance(value, list) else (value,):
            yield (space.claim, f"{name}={claim_key(item)}")


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
