"""``diff_documents``: what ``policy diff`` prints and ``policy_change`` events summarise."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from chalicelib.policy.diff import diff_documents


def base() -> dict[str, Any]:
    return {
        "version": 1,
        "routes": [{"id": "app", "upstream": "http://a:1", "audience": "app"}],
        "rules": [
            {"id": "read", "effect": "allow", "routes": ["app"], "actions": ["GET"]},
            {"id": "no-admin", "effect": "deny", "routes": ["app"], "actions": ["*"]},
        ],
    }


def changed(edit: Any) -> dict[str, Any]:
    document = copy.deepcopy(base())
    edit(document)
    return document


@pytest.mark.parametrize(
    ("edit", "lines"),
    [
        (lambda d: None, []),
        (
            lambda d: d["rules"].append({"id": "new", "effect": "allow", "routes": ["app"]}),
            ["+ rule new"],
        ),
        (lambda d: d["rules"].pop(0), ["- rule read"]),
        (
            lambda d: d["rules"][0].update(actions=["GET", "HEAD"], paths=["/x"]),
            ["~ rule read: actions, paths"],
        ),
        (lambda d: d["routes"][0].update(upstream="http://b:1"), ["~ route app: upstream"]),
        (lambda d: d.update(grants={"approver_groups": ["s"], "max_duration": "1h"}), ["~ grants"]),
        (
            lambda d: (d["rules"].reverse(), d.update(break_glass={"groups": ["oncall"]})),
            ["~ break_glass"],  # reordering rules changes nothing: order does not decide
        ),
    ],
    ids=["same", "rule added", "rule removed", "rule fields", "route", "grants", "break-glass"],
)
def test_lines_name_each_change(edit: Any, lines: list[str]) -> None:
    diff = diff_documents(base(), changed(edit))

    assert diff.lines() == lines
    assert diff.empty is (lines == [])


def test_summary_for_the_audit_event() -> None:
    new = changed(lambda d: (d["rules"].pop(1), d["rules"][0].update(actions=["*"])))

    assert diff_documents(base(), new).summary() == {
        "routes": {"added": [], "removed": [], "changed": {}},
        "rules": {"added": [], "removed": ["no-admin"], "changed": {"read": ["actions"]}},
        "blocks_changed": [],
    }


def test_against_nothing_everything_is_added() -> None:
    diff = diff_documents(None, base())
    assert diff.lines() == ["+ route app", "+ rule read", "+ rule no-admin"]
