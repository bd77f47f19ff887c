"""Delegated assertion keys: short-lived keys in memory, certified once by KMS.

- :mod:`.certificate` the certificate format, :func:`certify` and :func:`check_certificate`
- :mod:`.delegated`   :class:`DelegatedKeys`: make, certify, register, record, rotate
- :mod:`.registry`    the state table's record of every live key (the JWKS reads it)
- :mod:`.errors`      :class:`CertificateInvalid`, :class:`KeyRegistryError`
"""

from chalicelib.signing.certificate import KeyCertificate, certify, check_certificate
from chalicelib.signing.errors import CertificateInvalid, KeyRegistryError

__all__ = [
    "CertificateInvalid",
    "KeyCertificate",
    "KeyRegistryError",
    "certify",
    "check_certificate",
]
