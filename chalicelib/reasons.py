"""The closed set of reason codes carried by every access decision.

Codes are for queries and alerts; free text (``detail``) is for humans. A code
never changes meaning once released: add new codes, never repurpose old ones.
"""

from __future__ import annotations

from enum import StrEnum


class Reason(StrEnum):
    """Why a request was allowed or denied."""

    # Allowed.
    ALLOW_RULE_MATCHED = "allow_rule_matched"
    GRANT_MATCHED = "grant_matched"
    BREAK_GLASS = "break_glass"

    # Denied by policy.
    DENY_RULE_MATCHED = "deny_rule_matched"
    NO_MATCHING_RULE = "no_matching_rule"
    NO_ROUTE = "no_route"
    AMBIGUOUS_PATH = "ambiguous_path"
    # The request names another method than its own (a ``_method`` parameter).
    AMBIGUOUS_REQUEST = "ambiguous_request"

    # An allow rule matched but one of its conditions did not hold.
    MFA_REQUIRED = "mfa_required"
    AUTH_TOO_OLD = "auth_too_old"
    SOURCE_NOT_ALLOWED = "source_not_allowed"
    OUTSIDE_HOURS = "outside_hours"

    # Credentials could not be established (HTTP 401).
    MISSING_CREDENTIALS = "missing_credentials"
    MALFORMED_TOKEN = "malformed_token"
    TOKEN_TOO_LARGE = "token_too_large"
    UNSUPPORTED_ALGORITHM = "unsupported_algorithm"
    ALGORITHM_MISMATCH = "algorithm_mismatch"
    UNKNOWN_ISSUER = "unknown_issuer"
    UNKNOWN_KEY = "unknown_key"
    BAD_SIGNATURE = "bad_signature"
    MISSING_CLAIM = "missing_claim"
    INVALID_CLAIM = "invalid_claim"
    WRONG_AUDIENCE = "wrong_audience"
    TOKEN_EXPIRED = "token_expired"
    TOKEN_NOT_YET_VALID = "token_not_yet_valid"

    # Gatehouse could not decide (fail closed, HTTP 5xx).
    ISSUER_UNAVAILABLE = "issuer_unavailable"
    POLICY_UNAVAILABLE = "policy_unavailable"
    NO_IDENTITY_CONTEXT = "no_identity_context"

    @property
    def is_ambiguous(self) -> bool:
        """True when the request cannot be decided as sent (answered with 400)."""
        return self in (Reason.AMBIGUOUS_PATH, Reason.AMBIGUOUS_REQUEST)

    @property
    def is_decision_failure(self) -> bool:
        """True when Gatehouse could not decide (answered with 5xx, fail closed)."""
        return self in (
            Reason.ISSUER_UNAVAILABLE,
            Reason.POLICY_UNAVAILABLE,
            Reason.NO_IDENTITY_CONTEXT,
        )

    @property
    def is_credential_failure(self) -> bool:
        """True when the caller failed to authenticate (answered with 401)."""
        return self in _CREDENTIAL_FAILURES


_CREDENTIAL_FAILURES = frozenset(
    {
        Reason.MISSING_CREDENTIALS,
        Reason.MALFORMED_TOKEN,
        Reason.TOKEN_TOO_LARGE,
        Reason.UNSUPPORTED_ALGORITHM,
        Reason.ALGORITHM_MISMATCH,
        Reason.UNKNOWN_ISSUER,
        Reason.UNKNOWN_KEY,
        Reason.BAD_SIGNATURE,
        Reason.MISSING_CLAIM,
        Reason.INVALID_CLAIM,
        Reason.WRONG_AUDIENCE,
        Reason.TOKEN_EXPIRED,
        Reason.TOKEN_NOT_YET_VALID,
    }
)
