"""Exceptions of the sign-in package (the hierarchy is in the package docstring)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from chalicelib.identity import Identity
    from chalicelib.reasons import Reason


class SignInError(Exception):
    """Base class for sign-in failures."""


class SignInFailed(SignInError):
    """This sign-in (or refresh) cannot complete; ``reason`` says why, for the audit trail.

    ``identity`` is who the provider vouched for, when the failure came after
    the ID token verified (a nonce mismatch, a session too large).
    """

    def __init__(self, reason: Reason, detail: str = "", identity: Identity | None = None) -> None:
        super().__init__(f"{reason.value}: {detail}" if detail else reason.value)
        self.reason = reason
        self.detail = detail
        self.identity = identity


class ProviderUnavailable(SignInError):
    """The identity provider cannot be reached, or answered something unusable."""


class TokenRequestRefused(SignInError):
    """The provider's token endpoint refused the request; ``error`` is its OAuth error code."""

    def __init__(self, error: str) -> None:
        super().__init__(error)
        self.error = error
