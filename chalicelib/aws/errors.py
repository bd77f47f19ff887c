"""Exceptions of the aws package: an AWS upstream call that cannot be made (fail closed)."""

from __future__ import annotations


class AwsUpstreamError(Exception):
    """The proxy cannot call an AWS upstream; ``status`` and ``client_message`` answer the client.

    Messages name the role and the STS error code, never a credential.
    """

    status = 502
    client_message = "cannot call the AWS upstream"


class RoleUnavailable(AwsUpstreamError):
    """STS could not be reached or did not answer in time (throttled, down, timed out)."""

    status = 503
    client_message = "AWS credentials unavailable"


class RoleRefused(AwsUpstreamError):
    """STS refused to assume the upstream role (trust policy, permissions, validation)."""

    client_message = "AWS upstream role refused"


class SigningFailed(AwsUpstreamError):
    """The upstream request could not be SigV4-signed."""

    client_message = "cannot sign the AWS upstream request"


class SessionTagTooLong(AwsUpstreamError):
    """The principal's groups do not fit in an STS session tag: the session is not opened."""

    client_message = "the principal's groups do not fit in the AWS session tags"


class SigningError(Exception):
    """A P-256 signing key could not sign (or publish its public key)."""
