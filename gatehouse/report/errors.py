"""The report package's exceptions."""

from __future__ import annotations


class ReportError(ValueError):
    """A report cannot be made: a bad window, or an answer the report cannot read."""
