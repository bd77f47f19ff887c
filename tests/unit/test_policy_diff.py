"""``diff_documents``: what ``policy diff`` prints, what ``policy_change`` events
summarise, and order (when it decides, for route ties, and when it only changes the
checksum); each change field by field, with its old and its new value."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from chalicelib.policy.diff import EntryChange, FieldChange, diff_documents, show_value
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

    assert diff.lines() == [
        "+ route b",
        "    host: *",
        "    path_prefix: /",
        "    upstream: http://b:1",
        "    audience: b",
    ]
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
            ["+ rule new", "    effect: allow", "    routes: [app]"],
        ),
        (
            lambda d: d["rules"].pop(0),
            ["- rule read", "    effect: allow", "    routes: [app]", "    actions: [GET]"],
        ),
        (
            lambda d: d["rules"][0].update(actions=["GET", "HEAD"], paths=["/x"]),
            ["~ rule read", "    actions: [GET] -> [GET, HEAD]", "    paths: (unset) -> [/x]"],
        ),
        (
            lambda d: d["routes"][0].update(upstream="http://b:1"),
            ["~ route app", "    upstream: http://a:1 -> http://b:1"],
        ),
        (
            lambda d: d.update(grants={"approver_groups": ["s"], "max_duration": "1h"}),
            ["+ grants", "    approver_groups: [s]", "    max_duration: 1h"],
        ),
        (
            lambda d: (d["rules"].reverse(), d.update(break_glass={"groups": ["oncall"]})),
            # Reordering rules changes nothing: order does not decide.
            ["+ break_glass", "    groups: [oncall]"],
        ),
    ],
    ids=["same", "rule added", "rule removed", "rule fields", "route", "grants", "break-glass"],
)
def test_lines_show_each_change_old_and_new(edit: Any, lines: list[str]) -> None:
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

    assert [line for line in diff.lines() if not line.startswith(" ")] == [
        "+ route app",
        "+ rule read",
        "+ rule no-admin",
        "+ document",
    ]
    assert {entry.change for entry in diff.changes} == {"added"}
    assert all(item.old is None for entry in diff.changes for item in entry.fields)


# --- field by field: the changes `policy diff -o json` prints ------------------------------


def with_when(rule: dict[str, Any], **when: Any) -> dict[str, Any]:
    return {**rule, "when": when}


@pytest.mark.parametrize(
    ("edit", "changes"),
    [
        (lambda d: None, []),
        (
            lambda d: d["rules"].append({"id": "new", "effect": "deny", "routes": ["app"]}),
            [
                EntryChange(
                    "rules",
                    "new",
                    "added",
                    (FieldChange("effect", None, "deny"), FieldChange("routes", None, ["app"])),
                )
            ],
        ),
        (
            lambda d: d["rules"].pop(1),
            [
                EntryChange(
                    "rules",
                    "no-admin",
                    "removed",
                    (
                        FieldChange("effect", "deny", None),
                        FieldChange("routes", ["app"], None),
                        FieldChange("actions", ["*"], None),
                    ),
                )
            ],
        ),
        (
            lambda d: d["rules"][0].update(effect="deny"),
            [EntryChange("rules", "read", "changed", (FieldChange("effect", "allow", "deny"),))],
        ),
        (
            lambda d: d["rules"][0].update(subjects={"groups": ["eng"], "users": ["u1"]}),
            [
                EntryChange(
                    "rules",
                    "read",
                    "changed",
                    (
                        FieldChange("subjects.groups", None, ["eng"]),
                        FieldChange("subjects.users", None, ["u1"]),
                    ),
                )
            ],
        ),
        (
            lambda d: d["rules"].__setitem__(0, with_when(d["rules"][0], mfa=True)),
            [EntryChange("rules", "read", "changed", (FieldChange("when.mfa", None, True),))],
        ),
        (
            lambda d: d["routes"][0].pop("audience"),
            [EntryChange("routes", "app", "changed", (FieldChange("audience", "app", None),))],
        ),
        (lambda d: d["rules"].reverse(), []),
        (
            lambda d: (d["rules"].reverse(), d["rules"][0].update(actions=["GET", "POST"])),
            [
                EntryChange(
                    "rules",
                    "no-admin",
                    "changed",
                    (FieldChange("actions", ["*"], ["GET", "POST"]),),
                )
            ],
        ),
        (
            lambda d: d.update(version=2),
            [EntryChange("document", None, "changed", (FieldChange("version", 1, 2),))],
        ),
    ],
    ids=[
        "same",
        "rule added",
        "rule removed",
        "field changed",
        "nested fields added",
        "condition added",
        "field removed",
        "rules reordered",
        "reordered and changed",
        "top-level value",
    ],
)
def test_changes_field_by_field(edit: Any, changes: list[EntryChange]) -> None:
    assert list(diff_documents(base(), changed(edit)).changes) == changes


def test_a_changed_condition_shows_only_the_leaf_that_changed() -> None:
    hours = {"tz": "Europe/Berlin", "days": ["mon"], "from": "08:00", "to": "18:00"}
    old = changed(lambda d: d["rules"].__setitem__(0, with_when(d["rules"][0], hours=hours)))
    new = copy.deepcopy(old)
    new["rules"][0]["when"]["hours"]["to"] = "20:00"

    assert diff_documents(old, new).lines() == [
        "~ rule read",
        "    when.hours.to: 18:00 -> 20:00",
    ]


def test_the_json_form_of_a_change_is_plain_data() -> None:
    new = changed(lambda d: d["rules"][0].update(actions=["GET", "HEAD"]))

    (entry,) = diff_documents(base(), new).changes

    assert entry.as_json() == {
        "section": "rules",
        "id": "read",
        "change": "changed",
        "fields": [{"field": "actions", "old": ["GET"], "new": ["GET", "HEAD"]}],
    }


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        (None, "(unset)"),
        (True, "true"),
        (3, "3"),
        ("orders.example.com", "orders.example.com"),
        ("/api/**", "/api/**"),
        ("two words", '"two words"'),
        ("", '""'),
        ("true", '"true"'),
        ("42", '"42"'),
        ("a, b", '"a, b"'),
        (["GET", "HEAD"], "[GET, HEAD]"),
        ({"level": 3}, "{level: 3}"),
    ],
    ids=[
        "unset", "bool", "int", "host", "glob", "spaces", "empty", "a string true",
        "a string number", "a comma", "list", "mapping",
    ],
)  # fmt: skip
def test_values_read_as_what_they_are(value: Any, shown: str) -> None:
    assert show_value(value) == shown
