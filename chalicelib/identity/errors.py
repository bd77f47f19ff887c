"""Exceptions of the identity package."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from chalicelib.reasons import Reason


class IdentityError(Exception):
    """Base class for identity failures."""


class TokenRejected(IdentityError):
    """A bearer token was not accepted.

    Parameters
    ----------
    reason:
        The reason code (closed set, see :mod:`chalicelib.reasons`).
    detail:
        A short human explanation. It never contains the token.
    """

    def __init__(self, reason: Reason, detail: str) -> None:
        self.reason = reason
        self.detail = detail
        super().__init__(f"{reason.value}: {detail}")
