"""The OCSF package's errors (see :mod:`chalicelib.ocsf`)."""

from __future__ import annotations


class OcsfError(Exception):
    """Root of the OCSF package's errors."""


class NotMappable(OcsfError):
    """A line that is not a stored audit event (no event id, type, time or ledger sequence)."""


class ExportUnavailable(OcsfError):
    """The ledger's state, a bucket or the export cursor cannot be used now (retry later)."""
