"""Signing people in with a browser: OIDC authorization code flow with PKCE, and sessions.

The routes live under ``/.gatehouse/`` (:mod:`chalicelib.authenticate.handler`);
the authorizer reads a request's session cookie through
:class:`~chalicelib.authenticate.credentials.SessionCredentials`. Sessions
themselves (cookies, keys, revocations) are :mod:`chalicelib.sessions`.

Exceptions::

    SignInError
     ├── SignInFailed          this sign-in or refresh cannot complete; ``.reason``
     │                         (login_state_mismatch, login_nonce_mismatch, a token
     │                         reason such as bad_signature, ...) is audited
     ├── ProviderUnavailable   the identity provider cannot be reached or answered nonsense
     ├── TokenRequestRefused   the provider's token endpoint refused (``.error``)
     └── LogoutTokenRejected   a back-channel logout token is not acceptable
"""

from chalicelib.authenticate.errors import (
    ProviderUnavailable,
    SignInError,
    SignInFailed,
    TokenRequestRefused,
)

__all__ = ["ProviderUnavailable", "SignInError", "SignInFailed", "TokenRequestRefused"]
