"""Exceptions of the policy package."""

from __future__ import annotations

from dataclasses import dataclass


class PolicyError(Exception):
    """Base class for policy failures."""


@dataclass(frozen=True, slots=True)
class PolicyProblem:
    """One validation problem: where in the document, and what is wrong."""

    location: str
    message: str

    def __str__(self) -> str:
        return f"{self.location}: {self.message}" if self.location else self.message


class PolicyInvalid(PolicyError):
    """A policy document failed validation; nothing was applied."""

    def __init__(self, source_name: str, problems: list[PolicyProblem]) -> None:
        self.source_name = source_name
        self.problems = problems
        lines = "\n".join(f"  {source_name}: {problem}" for problem in problems)
        super().__init__(f"{source_name} is not a valid policy:\n{lines}")


class PolicyUnavailable(PolicyError):
    """The active policy could not be loaded (fail closed)."""


class PolicyConflict(PolicyError):
    """Another operator changed the active policy first."""


class PolicyArchiveError(PolicyError):
    """A policy copy in the Object Lock bucket could not be written, or differs from the record."""
