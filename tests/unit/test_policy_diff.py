"""``diff_documents``: what ``policy diff`` prints, what ``policy_change`` events
summarise, and order (when it decides, for route ties, and when it only changes the
checksum)."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from chalicelib.policy.diff import diff_documents
from chalicelib.policy.model import parse_policy


def route(route_id: str, host: str = "*", prefix: str = "/") -> dict[str, Any]:
    return {
        "id": route_id,
        "host": host,
        "path_prefix": prefix,
        "upstream": f"http://{route_id}:1",
        "audience": route_id,
    }


def document(*routes: dict[str, Any]) -> dict[str, Any]:
    return {
        "version": 1,
        "routes": list(routes),
        "rules": [
            {"id": "read", "effect": "allow", "routes": [routes[0]["id"]], "actions": ["GET"]},
            {"id": "no-admin", "effect": "deny", "routes": [routes[0]["id"]], "actions": ["*"]},
        ],
    }


def reordered(old: dict[str, Any], section: str) -> dict[str, Any]:
    new = copy.deepcopy(old)
    new[section].reverse()
    return new


@pytest.mark.parametrize(
    ("old", "section", "lines", "decides"),
    [
        (
            document(route("a"), route("b")),
            "routes",
            ["~ route order: b, a (same host and path prefix: the first wins)"],
            True,
        ),
        (
            document(route("a", host="a.example.com"), route("b", host="b.example.com")),
            "routes",
            ["~ order of rules or routes only (every decision stays the same)"],
            False,
        ),
        (
            document(route("a"), route("b", prefix="/b")),
            "routes",
            ["~ order of rules or routes only (every decision stays the same)"],
            False,
        ),
        (
            document(route("a")),
            "rules",
            ["~ order of rules or routes only (every decision stays the same)"],
            False,
        ),
    ],
    ids=["route tie", "routes on other hosts", "routes on other prefixes", "rules"],
)
def test_reordering_is_never_no_change(
    old: dict[str, Any], section: str, lines: list[str], decides: bool
) -> None:
    new = reordered(old, section)
    # The premise: both validate, and they are different versions.
    assert parse_policy(old).checksum != parse_policy(new).checksum

    diff = diff_documents(old, new)

    assert diff.lines() == lines
    assert diff.empty is not decides
    assert diff.order_only is not decides


def test_a_route_tie_reordering_is_in_the_event_summary() -> None:
    old = document(route("a"), route("b"), route("c", host="c.example.com"))

    summary = diff_documents(old, reordered(old, "routes")).summary()

    assert summary["route_order_changed"] == [["b", "a"]]
    assert summary["routes"] == {"added": [], "removed": [], "changed": {}}


def test_a_new_route_in_a_tie_is_an_addition_not_a_reordering() -> None:
    old = document(route("a"))
    new = copy.deepcopy(old)
    new["routes"].insert(0, route("b"))

    diff = diff_documents(old, new)

    assert diff.lines() == ["+ route b"]
    assert "route_order_changed" not in diff.summary()


@pytest.mark.parametrize(
    "old",
    [None, document(route("a"))],
    ids=["first policy", "same document"],
)
def test_no_order_note_without_an_order_change(old: dict[str, Any] | None) -> None:
    diff = diff_documents(old, document(route("a")))

    assert diff.order_only is False
    assert not any("order" in line for line in diff.lines())


# --- the changes each field makes ----------------------------------------------------------


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
