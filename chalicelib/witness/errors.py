"""The witness's exceptions (the tree is in :mod:`chalicelib.witness`)."""

from __future__ import annotations


class WitnessError(Exception):
    """Anything that stops a witness from doing its work."""


class WitnessUnavailable(WitnessError):
    """A log's bucket, the witness's store or its alert topic cannot be used."""


class WitnessStateConflict(WitnessError):
    """Another run of the witness moved its store meanwhile."""


class WitnessSettingsError(WitnessError):
    """The witness's settings are missing or malformed."""
