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

    # A CORS preflight (OPTIONS with Origin and Access-Control-Request-Method) to a
    # route with a ``cors`` block: decided by Gatehouse itself, without credentials,
    # and never forwarded upstream.
    CORS_PREFLIGHT_ALLOWED = "cors_preflight_allowed"
    CORS_ORIGIN_NOT_ALLOWED = "cors_origin_not_allowed"
    CORS_METHOD_NOT_ALLOWED = "cors_method_not_allowed"
    CORS_HEADERS_NOT_ALLOWED = "cors_headers_not_allowed"

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

    # Denied, and the principal holds a grant covering the request that has ended
    # (remembered for a day): someone acting on access they no longer have.
    GRANT_EXPIRED = "grant_expired"
    GRANT_REVOKED = "grant_revoked"
    GRANT_DENIED = "grant_denied"  # the grant was asked for and refused

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
    # A browser session cookie that cannot be used (also HTTP 401; a browser
    # navigating is sent to sign in instead).
    SESSION_INVALID = "session_invalid"  # tampered, truncated, or sealed by an unknown key
    SESSION_EXPIRED = "session_expired"  # past its absolute lifetime
    SESSION_IDLE = "session_idle"  # unused for longer than the idle limit
    SESSION_REVOKED = "session_revoked"  # logged out, revoked by an operator or by the IdP
    SESSION_REFRESH_REQUIRED = "session_refresh_required"  # claims due to be asked for again

    # Browser sign-in failed (recorded in ``session`` events, never a decision).
    LOGIN_EXPIRED = "login_expired"  # no (or an unusable, or an old) sign-in attempt cookie
    LOGIN_STATE_MISMATCH = "login_state_mismatch"
    LOGIN_NONCE_MISMATCH = "login_nonce_mismatch"
    LOGIN_IDP_ERROR = "login_idp_error"  # the IdP answered with an error
    LOGIN_CODE_REJECTED = "login_code_rejected"  # the token endpoint refused the code
    LOGIN_SESSION_TOO_LARGE = "login_session_too_large"  # the claims do not fit in a cookie

    # Gatehouse could not decide (fail closed, HTTP 5xx).
    ISSUER_UNAVAILABLE = "issuer_unavailable"
    POLICY_UNAVAILABLE = "policy_unavailable"
    NO_IDENTITY_CONTEXT = "no_identity_context"
    SESSIONS_UNAVAILABLE = "sessions_unavailable"  # session keys or revocations unreadable

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
            Reason.SESSIONS_UNAVAILABLE,
        )

    @property
    def is_cors_preflight(self) -> bool:
        """True for the decision on a CORS preflight (allowed or refused)."""
        return self in _CORS_PREFLIGHT

    @property
    def is_credential_failure(self) -> bool:
        """True when the caller failed to authenticate (answered with 401)."""
        return self in _CREDENTIAL_FAILURES

    @property
    def is_session_failure(self) -> bool:
        """True when a session cookie was presented and cannot be used (a new sign-in helps)."""
        return self in _SESSION_FAILURES


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
        Reason.SESSION_INVALID,
        Reason.SESSION_EXPIRED,
        Reason.SESSION_IDLE,
        Reason.SESSION_REVOKED,
        Reason.SESSION_REFRESH_REQUIRED,
    }
)
_CORS_PREFLIGHT = frozenset(
    {
        Reason.CORS_PREFLIGHT_ALLOWED,
        Reason.CORS_ORIGIN_NOT_ALLOWED,
        Reason.CORS_METHOD_NOT_ALLOWED,
        Reason.CORS_HEADERS_NOT_ALLOWED,
    }
)
_SESSION_FAILURES = frozenset(
    {
        Reason.SESSION_INVALID,
        Reason.SESSION_EXPIRED,
        Reason.SESSION_IDLE,
        Reason.SESSION_REVOKED,
        Reason.SESSION_REFRESH_REQUIRED,
    }
)
