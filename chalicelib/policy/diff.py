"""What changes between two policy documents, for operators and for the audit trail.

Routes and rules are compared by id; for a changed entry the fields that
differ are named. ``grants`` and ``break_glass`` are compared as blocks.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class SectionDiff:
    """Added, removed and changed entries of one list section (by id)."""

    added: tuple[str, ...] = ()
    removed: tuple[str, ...] = ()
    changed: dict[str, tuple[str, ...]] = field(default_factory=dict)

    @property
    def empty(self) -> bool:
        """True when nothing changed."""
        return not (self.added or self.removed or self.changed)


@dataclass(frozen=True)
class PolicyDiff:
    """The difference from an old document (None: nothing was active) to a new one."""

    routes: SectionDiff
    rules: SectionDiff
    blocks_changed: tuple[str, ...]

    @property
    def empty(self) -> bool:
        """True when the documents are equivalent section by section."""
        return self.routes.empty and self.rules.empty and not self.blocks_changed

    def summary(self) -> dict[str, Any]:
        """The JSON-ready summary recorded in the ``policy_change`` event."""
        summary: dict[str, Any] = {}
        for name, section in (("routes", self.routes), ("rules", self.rules)):
            summary[name] = {
                "added": list(section.added),
                "removed": list(section.removed),
                "changed": {key: list(fields) for key, fields in section.changed.items()},
            }
        summary["blocks_changed"] = list(self.blocks_changed)
        return summary

    def lines(self) -> list[str]:
        """Human-readable lines, one per change."""
        lines = []
        for name, section in (("route", self.routes), ("rule", self.rules)):
            lines += [f"+ {name} {entry}" for entry in section.added]
            lines += [f"- {name} {entry}" for entry in section.removed]
            lines += [
                f"~ {name} {entry}: {', '.join(fields)}"
                for entry, fields in section.changed.items()
            ]
        lines += [f"~ {block}" for block in self.blocks_changed]
        return lines


def diff_documents(old: Mapping[str, Any] | None, new: Mapping[str, Any]) -> PolicyDiff:
    """Compare two (validated) policy documents."""
    before = old or {}
    blocks = tuple(
        block for block in ("grants", "break_glass") if before.get(block) != new.get(block)
    )
    return PolicyDiff(
        routes=_section(before.get("routes") or [], new.get("routes") or []),
        rules=_section(before.get("rules") or [], new.get("rules") or []),
        blocks_changed=blocks,
    )


def _section(old: list[Any], new: list[Any]) -> SectionDiff:
    old_by_id = {entry["id"]: entry for entry in old if isinstance(entry, dict)}
    new_by_id = {entry["id"]: entry for entry in new if isinstance(entry, dict)}
    changed = {}
    for entry_id in new_by_id.keys() & old_by_id.keys():
        before, after = old_by_id[entry_id], new_by_id[entry_id]
        fields = tuple(
            sorted(
                name for name in before.keys() | after.keys() if before.get(name) != after.get(name)
            )
        )
        if fields:
            changed[entry_id] = fields
    order = list(new_by_id)
    return SectionDiff(
        added=tuple(entry_id for entry_id in order if entry_id not in old_by_id),
        removed=tuple(entry_id for entry_id in old_by_id if entry_id not in new_by_id),
        changed=dict(sorted(changed.items(), key=lambda item: order.index(item[0]))),
    )
