"""What every section parser of a policy shares: the list of problems, and common shapes.

The parser never stops at the first problem: each section parser records
what is wrong here, with where it is (``rules[eng-read].actions``), and the
document is refused when the list is not empty. :class:`ProblemList` is also
what the ``when`` conditions parse with
(:class:`chalicelib.policy.criterion.Problems`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from chalicelib.policy.errors import PolicyProblem

_ID = re.compile(r"[a-z0-9][a-z0-9_.-]{0,63}")


class ProblemList:
    """The problems found in one document so far, in the order found."""

    def __init__(self) -> None:
        self.problems: list[PolicyProblem] = []

    def __len__(self) -> int:
        return len(self.problems)

    def problem(self, location: str, message: str) -> None:
        """Record one problem at ``location``."""
        self.problems.append(PolicyProblem(location, message))

    def unknown_fields(self, location: str, mapping: Mapping[str, Any], known: set[str]) -> None:
        """Record every key of ``mapping`` not in ``known``."""
        for name in sorted(set(mapping) - known, key=str):
            where = f"{location}.{name}" if location else str(name)
            self.problem(where, "unknown field")

    def entries(self, value: Any, location: str) -> list[tuple[str, dict[str, Any]]]:
        """The list's entries that are mappings, each with a location naming its id.

        Entries that are not mappings, or whose ``id`` is missing, malformed
        or a duplicate, are problems and left out.
        """
        if not isinstance(value, list):
            self.problem(location, "must be a list")
            return []
        entries = []
        seen: set[str] = set()
        for index, entry in enumerate(value):
            if not isinstance(entry, dict):
                self.problem(f"{location}[{index}]", "must be a mapping")
                continue
            entry_id = entry.get("id")
            if not isinstance(entry_id, str) or not _ID.fullmatch(entry_id):
                self.problem(f"{location}[{index}].id", "must match [a-z0-9][a-z0-9_.-]*")
                continue
            if entry_id in seen:
                self.problem(f"{location}[{entry_id}]", "duplicate id")
                continue
            seen.add(entry_id)
            entries.append((f"{location}[{entry_id}]", entry))
        return entries

    def string_list(self, value: Any, where: str, *, required: bool = True) -> list[str]:
        """``value`` as a non-empty list of non-empty strings, or [] and a problem."""
        if value is None and not required:
            return []
        if (
            not isinstance(value, list)
            or not value
            or not all(isinstance(v, str) and v for v in value)
        ):
            self.problem(where, "must be a non-empty list of strings")
            return []
        return list(value)
