"""Exceptions of the audit package."""

from __future__ import annotations


class AuditError(Exception):
    """Base class for audit failures."""


class AuditUnavailable(AuditError):
    """An event could not be enqueued; the request must fail closed."""


class AuditStorageError(AuditError):
    """A batch of events could not be stored in the audit bucket."""
