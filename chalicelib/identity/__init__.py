"""Verifying who the caller is.

Offers :class:`TokenVerifier` (bearer JWT -> :class:`Identity`) backed by a
:class:`JwksCache` of each trusted issuer's signing keys.

Exceptions::

    IdentityError
     └── TokenRejected       the token is not acceptable; ``.reason`` is a Reason
                             code (token_expired, bad_signature, unknown_issuer, ...)
"""

from chalicelib.identity.errors import IdentityError, TokenRejected
from chalicelib.identity.jwks import JwksCache
from chalicelib.identity.model import Identity
from chalicelib.identity.tokens import TokenVerifier

__all__ = ["Identity", "IdentityError", "JwksCache", "TokenRejected", "TokenVerifier"]
