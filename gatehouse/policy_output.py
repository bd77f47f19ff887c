"""What the policy commands print: a change, the history, a comparison (table, JSON, CSV rows).

The lines printed for people go through :func:`gatehouse.terminal.visible`:
rule and route ids, globs and principals are read back from stored records,
which whoever could write the table could have filled with terminal escapes.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from chalicelib.policy import (
    PolicyStore,
    parse_policy,
)
from chalicelib.policy.diff import PolicyDiff, diff_documents, show_value
from gatehouse.policy_files import PolicyFileError as PolicyFileError
from gatehouse.policy_files import load_policy_file as load_policy_file
from gatehouse.policy_files import load_policy_file_with_variables
from gatehouse.terminal import visible

if TYPE_CHECKING:
    from chalicelib.policy.admin import ChangeResult
    from chalicelib.policy.store import Activation, PolicyRecord
    from gatehouse.target import Target


def describe_change(result: ChangeResult, source: str) -> list[str]:
    """What an apply or rollback printed."""
    record, activation = result.record, result.activation
    if activation is None:
        return [
            visible(f"{source}: already active as version {record.version} ({record.checksum})")
        ]
    reused = "" if result.created_version else " (an existing version)"
    replaced = (
        f"replacing version {activation.previous_version}"
        if activation.previous_version is not None
        else "the first policy of this stage"
    )
    lines = [
        f"{source}: version {record.version}{reused} active as activation "
        f"{activation.activation}, {replaced} ({record.checksum})"
    ]
    return [visible(line) for line in lines + ["  " + line for line in result.diff.lines()]]


def format_history(activations: Sequence[Activation]) -> list[str]:
    """One line per activation, newest first (its reason last, quoted, when it has one)."""
    lines = []
    for item in activations:
        summary = item.summary or {}
        rules = summary.get("rules", {})
        counts = (
            f"rules +{len(rules.get('added', []))} -{len(rules.get('removed', []))} "
            f"~{len(rules.get('changed', {}))}"
            if rules
            else ""
        )
        why = f"  reason: {json.dumps(item.reason, ensure_ascii=False)}" if item.reason else ""
        lines.append(
            f"#{item.activation:<4} {item.action:8} "
            f"v{item.previous_version or 0} -> v{item.version}  {item.checksum[:19]}  "
            f"{item.activated_at}  {item.activated_by}  {counts}".rstrip()
            + why
        )
    return [visible(line) for line in lines]


def history_json(activations: Sequence[Activation]) -> list[dict[str, Any]]:
    """``policy history -o json``: the activation records, ``reason`` always present."""
    return [{**item.as_dict(), "reason": item.reason} for item in activations]


HISTORY_COLUMNS = (
    "activation", "action", "previous_version", "version", "checksum", "activated_at",
    "activated_by", "reason", "rules_added", "rules_removed", "rules_changed",
    "routes_added", "routes_removed", "routes_changed",
)  # fmt: skip


def history_rows(activations: Sequence[Activation]) -> list[list[Any]]:
    """``policy history -o csv``: one row per activation, counts of what it changed."""
    rows = []
    for item in activations:
        summary = item.summary or {}
        counts = [
            len(summary.get(section, {}).get(kind, ()))
            for section in ("rules", "routes")
            for kind in ("added", "removed", "changed")
        ]
        rows.append(
            [
                item.activation, item.action, item.previous_version, item.version,
                item.checksum, item.activated_at, item.activated_by, item.reason, *counts,
            ]
        )  # fmt: skip
    return rows


# --- diff ------------------------------------------------------------------------------------

DIFF_FORMAT = 1  # the version of the ``policy diff -o json`` shape
DIFF_COLUMNS = ("section", "id", "change", "field", "old", "new")


@dataclass(frozen=True)
class PolicyComparison:
    """A policy file against the stage's active policy."""

    source: str
    checksum: str
    active: PolicyRecord | None
    existing_version: int | None  # the stored version holding this very document, if any
    diff: PolicyDiff

    @property
    def changed(self) -> bool:
        """Whether applying the file would activate another version (what exit status 1 says)."""
        return self.active is None or self.active.checksum != self.checksum


def compare(target: Target, path: Path, variables: Mapping[str, str]) -> PolicyComparison:
    """Validate the file, then compare it with the stage's active policy.

    Raises
    ------
    PolicyFileError, InputError, PolicyInvalid
        When the file cannot be read, a variable is unset, or it does not validate.
    PolicyUnavailable
        When the stage's policy items cannot be read.
    """
    document = load_policy_file_with_variables(path, variables)
    parsed = parse_policy(document, source_name=str(path))
    store = PolicyStore(target.client("dynamodb"), target.state_table)
    active = store.load_active()
    return PolicyComparison(
        source=str(path),
        checksum=parsed.checksum,
        active=active,
        existing_version=store.version_with_checksum(parsed.checksum),
        diff=diff_documents(active.document if active else None, document),
    )


def format_comparison(comparison: PolicyComparison) -> list[str]:
    """``policy diff``: a header naming both sides, then each change, old -> new."""
    active = comparison.active
    if not comparison.changed:
        assert active is not None
        return [visible(f"no changes: {comparison.source} is the active version {active.version}")]
    was = (
        f"active version {active.version} ({active.checksum})"
        if active is not None
        else "no active policy"
    )
    stored = (
        f", stored as version {comparison.existing_version}"
        if comparison.existing_version is not None
        else ""
    )
    lines = [
        f"--- {was}",
        f"+++ {comparison.source} ({comparison.checksum}{stored})",
        *comparison.diff.lines(),
    ]
    return [visible(line) for line in lines]


def comparison_json(comparison: PolicyComparison) -> dict[str, Any]:
    """``policy diff -o json``; its shape is documented in the command's help and docs/policy.md."""
    active = comparison.active
    return {
        "format": DIFF_FORMAT,
        "changed": comparison.changed,
        "active": {"version": active.version, "checksum": active.checksum} if active else None,
        "proposed": {
            "source": comparison.source,
            "checksum": comparison.checksum,
            "version": comparison.existing_version,
        },
        "order_only": comparison.diff.order_only,
        "route_order_changed": [list(ids) for ids in comparison.diff.route_ties_reordered],
        "changes": [entry.as_json() for entry in comparison.diff.changes],
    }


def comparison_rows(comparison: PolicyComparison) -> list[list[str]]:
    """``policy diff -o csv``: one row per changed field (old/new blank when unset)."""

    def cell(value: Any) -> str:
        return "" if value is None else show_value(value)

    rows = []
    for entry in comparison.diff.changes:
        named = [entry.section, entry.id or "", entry.change]
        rows += [[*named, item.field, cell(item.old), cell(item.new)] for item in entry.fields]
    for ids in comparison.diff.route_ties_reordered:
        rows.append(["routes", "", "reordered", "order", "", cell(list(ids))])
    if comparison.diff.order_only:
        rows.append(["document", "", "reordered", "order", "", ""])
    return rows
