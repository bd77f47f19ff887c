"""Who is who among grant principals: the mailbox an address delivers to, and one person.

An approver may not be the requester, under another account either: two
identities are one person when they share a subject or a verified mailbox
(compared by :func:`mailbox`), and an approval needs both verified emails,
without which that cannot be established.
"""

from __future__ import annotations

import re
import unicodedata
from typing import TYPE_CHECKING

from chalicelib.grants.errors import GrantForbidden

if TYPE_CHECKING:
    from chalicelib.identity import Identity
    from chalicelib.policy.grant import Grant


def mailbox(email: str) -> str | None:
    """The mailbox an address delivers to: ``Erin+x@Example.COM.`` -> ``erin@example.com``.

    The address is NFC-normalised; the local part counts up to its first
    ``+`` (sub-addressing delivers ``erin+anything`` to ``erin``); the domain
    loses a trailing root dot and is compared in its IDNA (``xn--``) form; the
    whole compares case-insensitively; at Gmail, dots in the local part do not
    count and googlemail.com is gmail.com. None when the address is not a plain
    ``local@host`` (quoted local parts, address literals, ``%`` or ``!``
    routing, several ``@``): such an address cannot be compared reliably.
    """
    text = unicodedata.normalize("NFC", email.strip())
    local, at, domain = text.partition("@")
    if not at or not local or not domain or not _PLAIN_LOCAL.fullmatch(local):
        return None
    domain = domain.removesuffix(".")
    try:
        ascii_domain = domain.encode("idna").decode("ascii")
    except UnicodeError:
        return None
    if not _HOST_NAME.fullmatch(ascii_domain):
        return None
    box, domain_name = local.split("+", 1)[0].casefold(), ascii_domain.casefold()
    if domain_name in _DOTLESS_DOMAINS:
        # Gmail ignores dots in the local part and serves googlemail.com as gmail.com.
        box, domain_name = box.replace(".", ""), "gmail.com"
    return f"{box}@{domain_name}"


_DOTLESS_DOMAINS = frozenset({"gmail.com", "googlemail.com"})


# A dot-atom local part (RFC 5322) that may carry non-ASCII letters (RFC 6531), and
# a host name: what one mailbox can be recognised by.
_PLAIN_LOCAL = re.compile(r"[^\s\"@%!\[\]()<>,;:\\.][^\s\"@%!\[\]()<>,;:\\]*")
_HOST_NAME = re.compile(r"(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)*[A-Za-z0-9-]+")


def same_person(grant: Grant, identity: Identity) -> bool:
    """Whether ``identity`` is the requester of ``grant``: the same subject or the same mailbox.

    Two accounts with one verified mailbox are one person.
    """
    if (identity.issuer, identity.subject) == grant.principal:
        return True
    identity_mailbox = mailbox(identity.email) if identity.email else None
    return (
        identity_mailbox is not None
        and grant.email is not None
        and identity_mailbox == mailbox(grant.email)
    )


def check_mailboxes_known(grant: Grant, approver: Identity) -> None:
    """Refuse an approval where either side's verified email is unknown.

    Without both, nothing shows that the two identities are not one person
    with two accounts. (Denying needs no such proof: it grants nothing.)

    Raises
    ------
    GrantForbidden
        When an email is missing or not a plain address.
    """
    if grant.email and approver.email:
        if mailbox(grant.email) is not None and mailbox(approver.email) is not None:
            return
        raise GrantForbidden(
            f"grant {grant.id} cannot be approved: an email of the requester or the approver "
            "is not a plain address (quoted, an address literal or routed), so one person, "
            "one mailbox cannot be established"
        )
    if not grant.email and not approver.email:
        who = "neither its requester nor the approver has"
    elif not grant.email:
        who = "its requester has"
    else:
        who = "the approver has"
    raise GrantForbidden(
        f"grant {grant.id} cannot be approved: {who} no verified email, so one person, "
        "one mailbox cannot be established (a token with a verified email is needed)"
    )
