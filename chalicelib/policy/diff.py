"""What changes between two policy documents, for operators and for the audit trail.

Routes and rules are compared by id; for a changed entry the fields that
differ are named. ``grants`` and ``break_glass`` are compared as blocks.
:attr:`PolicyDiff.changes` says the same field by field, with the old and
the new value of each (nested mappings such as ``subjects`` and ``when`` as
dotted paths, lists as whole values): what ``gatehouse policy diff`` prints.
The audit event keeps :meth:`PolicyDiff.summary`, whose shape is fixed
(the ledger hashes the events it stores).
Rule order never decides, so it is not a change; route order decides
between routes with the same host and path prefix (the first wins), so a
reordering there is one. Two documents that differ only in order still
have different checksums: :attr:`PolicyDiff.order_only` says so, so that
"no changes" is never printed for a document that would become a new version.
"""

from __future__ import annotations

import json
import re
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
class FieldChange:
    """One field of an entry: its dotted path, and its old and new values (None: unset)."""

    field: str
    old: Any
    new: Any


@dataclass(frozen=True)
class EntryChange:
    """One added, removed or changed route, rule or block, field by field.

    ``section`` is ``routes``, ``rules``, a block (``grants``, ``break_glass``)
    or ``document`` (a top-level value such as ``version``); ``id`` is the
    route's or rule's id (None for the others); ``change`` is ``added``,
    ``removed`` or ``changed``. An added entry lists every field with ``old``
    None, a removed one every field with ``new`` None.
    """

    section: str
    id: str | None
    change: str
    fields: tuple[FieldChange, ...]

    def as_json(self) -> dict[str, Any]:
        """The entry as ``policy diff -o json`` prints it."""
        return {
            "section": self.section,
            "id": self.id,
            "change": self.change,
            "fields": [
                {"field": item.field, "old": item.old, "new": item.new} for item in self.fields
            ],
        }


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
    # Every added, removed and changed entry, field by field (see EntryChange).
    changes: tuple[EntryChange, ...] = ()

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
        """Human-readable lines: each change, then the fields it changes, old -> new."""
        lines = []
        for entry in self.changes:
            mark = {"added": "+", "removed": "-"}.get(entry.change, "~")
            name = _ENTRY_NAMES.get(entry.section, entry.section)
            lines.append(f"{mark} {name} {entry.id}" if entry.id else f"{mark} {name}")
            lines += [f"    {_field_line(entry.change, item)}" for item in entry.fields]
        lines += [
            f"~ route order: {', '.join(ids)} (same host and path prefix: the first wins)"
            for ids in self.route_ties_reordered
        ]
        if self.order_only:
            lines.append("~ order of rules or routes only (every decision stays the same)")
        return lines


_ENTRY_NAMES = {"routes": "route", "rules": "rule"}


def _field_line(change: str, item: FieldChange) -> str:
    if change == "added":
        return f"{item.field}: {show_value(item.new)}"
    if change == "removed":
        return f"{item.field}: {show_value(item.old)}"
    return f"{item.field}: {show_value(item.old)} -> {show_value(item.new)}"


# A string printed without quotes: nothing in it that reads as punctuation of
# the line, and not a word or number that would read as another type.
_PLAIN = re.compile(r"[A-Za-z0-9_./:*@+~%?#=&^$-]+")
_NOT_PLAIN = re.compile(r"true|false|null|-?\d+(\.\d+)?")


def show_value(value: Any) -> str:
    """A policy value as one readable line: YAML-like flow, strings quoted only when needed.

    ``None`` (the field is unset) is ``(unset)``; lists are ``[a, b]``.
    """
    if value is None:
        return "(unset)"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        if _PLAIN.fullmatch(value) and not _NOT_PLAIN.fullmatch(value):
            return value
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, list):
        return "[" + ", ".join(show_value(item) for item in value) + "]"
    if isinstance(value, Mapping):
        return "{" + ", ".join(f"{key}: {show_value(item)}" for key, item in value.items()) + "}"
    return json.dumps(value)


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
    return replace(diff, changes=_changes(before, new))


def _changes(old: Mapping[str, Any], new: Mapping[str, Any]) -> tuple[EntryChange, ...]:
    """Routes, then rules, then the other top-level values, in the new document's order."""
    changes = [
        *_entries("routes", old.get("routes") or [], new.get("routes") or []),
        *_entries("rules", old.get("rules") or [], new.get("rules") or []),
    ]
    scalars = []
    for key in [*new, *(key for key in old if key not in new)]:
        if key in ("routes", "rules"):
            continue
        before, after = old.get(key), new.get(key)
        if before == after:
            continue
        if isinstance(before, Mapping | None) and isinstance(after, Mapping | None):
            changes.append(_entry(key, None, before, after))
        else:
            scalars.append(FieldChange(key, before, after))
    if scalars:
        change = (
            "added"
            if all(item.old is None for item in scalars)
            else "removed"
            if all(item.new is None for item in scalars)
            else "changed"
        )
        changes.append(EntryChange("document", None, change, tuple(scalars)))
    return tuple(changes)


def _entries(section: str, old: list[Any], new: list[Any]) -> list[EntryChange]:
    """Added (new order), removed (old order), then changed (new order) entries of a list."""
    old_by_id = {entry.get("id"): entry for entry in old if isinstance(entry, Mapping)}
    new_by_id = {entry.get("id"): entry for entry in new if isinstance(entry, Mapping)}
    added = [key for key in new_by_id if key not in old_by_id]
    removed = [key for key in old_by_id if key not in new_by_id]
    kept = [key for key in new_by_id if key in old_by_id and old_by_id[key] != new_by_id[key]]
    return [
        _entry(section, str(key), old_by_id.get(key), new_by_id.get(key))
        for key in [*added, *removed, *kept]
    ]


def _entry(
    section: str, entry_id: str | None, old: Mapping[str, Any] | None, new: Mapping[str, Any] | None
) -> EntryChange:
    change = "added" if old is None else "removed" if new is None else "changed"
    before = _flatten(old or {})
    after = _flatten(new or {})
    if entry_id is not None:  # the id is the entry's name, not one of its fields
        before.pop("id", None)
        after.pop("id", None)
    paths = [*after, *(path for path in before if path not in after)]
    fields = tuple(
        FieldChange(path, before.get(path), after.get(path))
        for path in paths
        if before.get(path) != after.get(path)
    )
    return EntryChange(section, entry_id, change, fields)


def _flatten(value: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Leaves by dotted path: nested non-empty mappings are walked, anything else is a leaf."""
    leaves: dict[str, Any] = {}
    for key, item in value.items():
        path = f"{prefix}{key}"
        if isinstance(item, Mapping) and item:
            leaves.update(_flatten(item, f"{path}."))
        else:
            leaves[path] = item
    return leaves


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
