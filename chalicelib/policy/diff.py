"""What changes between two policy documents, for operators and for the audit trail.

Routes and rules are compared by id; for a changed entry the fields that
differ are named. ``grants`` and ``break_glass`` are compared as blocks.
Rule order never decides, so it is not a change; route order decides
between routes with the same host and path prefix (the first wins), so a
reordering there is one. Two documents that differ only in order still
have different checksums: :attr:`PolicyDiff.order_only` says so, so that
"no changes" is never printed for a document that would become a new version.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from chalicelib.policy.paths import fold_case


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
    # Route ids sharing a host and path prefix whose order changed, in the new order.
    route_ties_reordered: tuple[tuple[str, ...], ...] = ()
    # Nothing that decides changed, but the documents (so their checksums) differ.
    order_only: bool = False

    @property
    def empty(self) -> bool:
        """True when the documents decide every request the same way, section by section."""
        return (
            self.routes.empty
            and self.rules.empty
            and not self.blocks_changed
            and not self.route_ties_reordered
        )

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
        if self.route_ties_reordered:
            summary["route_order_changed"] = [list(ids) for ids in self.route_ties_reordered]
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
        lines += [
            f"~ route order: {', '.join(ids)} (same host and path prefix: the first wins)"
            for ids in self.route_ties_reordered
        ]
        if self.order_only:
            lines.append("~ order of rules or routes only (every decision stays the same)")
        return lines


def diff_documents(old: Mapping[str, Any] | None, new: Mapping[str, Any]) -> PolicyDiff:
    """Compare two (validated) policy documents."""
    before = old or {}
    blocks = tuple(
        block for block in ("grants", "break_glass") if before.get(block) != new.get(block)
    )
    diff = PolicyDiff(
        routes=_section(before.get("routes") or [], new.get("routes") or []),
        rules=_section(before.get("rules") or [], new.get("rules") or []),
        blocks_changed=blocks,
        route_ties_reordered=_route_ties_reordered(
            before.get("routes") or [], new.get("routes") or []
        ),
    )
    if old is not None and diff.empty and dict(old) != dict(new):
        diff = replace(diff, order_only=True)
    return diff


def _route_ties_reordered(old: list[Any], new: list[Any]) -> tuple[tuple[str, ...], ...]:
    """Groups of routes with one host and prefix whose relative order changed."""

    def groups(routes: list[Any]) -> dict[tuple[Any, Any], list[Any]]:
        by_key: dict[tuple[Any, Any], list[Any]] = {}
        for route in routes:
            if isinstance(route, dict):
                prefix = route.get("path_prefix", "/")
                # Prefixes match ignoring case: /Admin and /admin tie.
                folded = fold_case(prefix) if isinstance(prefix, str) else prefix
                key = (route.get("host", "*"), folded)
                by_key.setdefault(key, []).append(route.get("id"))
        return by_key

    before = groups(old)
    reordered = []
    for key, ids in groups(new).items():
        common = [route_id for route_id in ids if route_id in before.get(key, ())]
        was = [route_id for route_id in before.get(key, ()) if route_id in common]
        if len(common) > 1 and common != was:
            reordered.append(tuple(str(route_id) for route_id in common))
    return tuple(reordered)


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
