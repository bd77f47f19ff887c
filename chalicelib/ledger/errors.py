"""Exceptions of the ledger package.

::

    LedgerError
     ├── LedgerUnavailable   the ledger's state cannot be read or written (retry later)
     ├── LedgerBusy          the head changed under the writer (another writer, a recovery)
     └── LedgerCorrupt       what the bucket holds contradicts the ledger's state

    ValueError
     └── DigestFormatError   a stored digest document is not a digest
"""

from __future__ import annotations


class LedgerError(Exception):
    """Base class for ledger failures."""


class LedgerUnavailable(LedgerError):
    """The ledger's state cannot be read or written; nothing was committed."""


class LedgerBusy(LedgerError):
    """The ledger head changed since it was read; nothing was committed by this writer."""


class LedgerCorrupt(LedgerError):
    """An object in the bucket contradicts the ledger's state (needs a person)."""


class DigestFormatError(ValueError):
    """A stored digest document is not a digest (the verifier reports it as a finding)."""


class ChecksumMismatch(Exception):
    """S3 returned bytes that do not match the checksum it stored with them."""
