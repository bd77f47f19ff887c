"""Errors of the signing package.

::

    CertificateInvalid (ValueError)   a key certificate breaks a rule (says which)
    KeyRegistryError (Exception)      the state table did not take or give the keys

Failing to sign at all is :class:`chalicelib.aws.errors.SigningError`, which
the proxy already turns into a refused, audited request.
"""

from __future__ import annotations


class CertificateInvalid(ValueError):
    """A key certificate that does not vouch for its key."""


class KeyRegistryError(Exception):
    """The signing keys could not be registered or listed."""
