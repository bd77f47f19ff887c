"""Rules documents: every problem reported at once, one line each, naming rule and field."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from chalicelib.detect.errors import RulesInvalid
from chalicelib.detect.kinds import KINDS
from chalicelib.detect.rules import (
    DEFAULT_RULES_JSON,
    DEFAULT_RULES_YAML,
    default_rules,
    load_rules_file,
    load_rules_text,
    main,
    parse_rules,
)


def rule(**fields: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "name": "burst",
        "enabled": True,
        "severity": "high",
        "kind": "deny_burst_principal",
    }
    base.update(fields)
    return {key: value for key, value in base.items() if value is not None}


def problems(*rules: dict[str, Any], **document: Any) -> list[str]:
    with pytest.raises(RulesInvalid) as caught:
        parse_rules({"version": 1, "rules": list(rules), **document}, "rules.yaml")
    assert caught.value.source == "rules.yaml"
    return caught.value.problems


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        pytest.param(rule(kind="brute_force"), "rule 'burst'.kind: must be one of: ", id="kind"),
        pytest.param(rule(kind=None), "rule 'burst'.kind: must be one of", id="no kind"),
        pytest.param(rule(severity="urgent"), "rule 'burst'.severity: must be one of: low, "
                     "medium, high, critical", id="severity"),
        pytest.param(rule(enabled="yes"), "rule 'burst'.enabled: must be true or false",
                     id="enabled as text"),
        pytest.param(rule(name="two words"), "rules[0].name: must be 1-63 letters", id="name"),
        pytest.param(rule(threshold=0), "rule 'burst'.threshold: must be a whole number 1..1000",
                     id="threshold too low"),
        pytest.param(rule(threshold=2.5), "rule 'burst'.threshold: must be a whole number",
                     id="threshold not whole"),
        pytest.param(rule(threshold=True), "rule 'burst'.threshold: must be a whole number",
                     id="threshold a boolean"),
        pytest.param(rule(window_seconds=5), "rule 'burst'.window_seconds: must be a whole number "
                     "10..86400", id="window too short"),
        pytest.param(rule(window=60), "rule 'burst'.window: unknown field (known: ",
                     id="unknown parameter"),
        pytest.param(rule(suppress_seconds=-1), "rule 'burst'.suppress_seconds: must be a whole "
                     "number", id="suppress negative"),
        pytest.param(rule(kind="first_seen_source", field="cookie"),
                     "rule 'burst'.field: must be one of: source_ip, user_agent", id="choice"),
        pytest.param(rule(kind="grant_misuse", reasons="no_matching_rule"),
                     "rule 'burst'.reasons: must be a list of strings", id="strings"),
        pytest.param(rule(kind="grant_misuse", reasons=["grant_revoked", "grant_revokd"]),
                     "rule 'burst'.reasons: unknown value(s) 'grant_revokd'", id="unknown code"),
        pytest.param(rule(kind="sensitive_off_hours"), "rule 'burst'.hours: is required",
                     id="hours missing"),
        pytest.param(rule(kind="sensitive_off_hours", hours={"tz": "Mars/Olympus"}),
                     "rule 'burst'.hours.tz: must be an IANA time zone", id="hours zone"),
        pytest.param(rule(kind="sensitive_off_hours", hours={"tz": "UTC", "from": 800}),
                     'rule \'burst\'.hours.from: must be a quoted time, e.g. "18:00"',
                     id="hours unquoted"),
        pytest.param("not a mapping", "rules[0]: must be a mapping", id="rule not a mapping"),
    ],
)  # fmt: skip
def test_each_problem_is_one_line_naming_the_rule_and_field(given: Any, expected: str) -> None:
    found = problems(given)
    assert len(found) == 1, found
    assert found[0].startswith(expected), found


def test_every_problem_of_a_document_is_reported_at_once() -> None:
    found = problems(
        rule(severity="urgent", threshold=0),
        rule(name="burst", kind="nope"),
        "x",
        version=2,
        suppress_seconds="long",
        extra=1,
    )
    assert found == [
        "document.extra: unknown field (known: rules, suppress_seconds, version)",
        "version: must be 1",
        "suppress_seconds: must be a whole number 0..31622400",
        "rule 'burst'.severity: must be one of: low, medium, high, critical",
        "rule 'burst'.threshold: must be a whole number 1..1000",
        "rule 'burst'.kind: must be one of: " + ", ".join(sorted(KINDS)),
        "rules[2]: must be a mapping with name, enabled, severity and kind",
    ]


def test_a_name_used_twice_is_a_problem() -> None:
    assert problems(rule(), rule()) == ["rules[1].name: 'burst' is used by an earlier rule"]


@pytest.mark.parametrize(
    ("document", "expected"),
    [
        pytest.param([], ["the document must be a mapping with version and rules"], id="a list"),
        pytest.param({"version": 1}, ["rules: must be a list of rules"], id="no rules"),
    ],
)
def test_a_document_that_is_not_one(document: Any, expected: list[str]) -> None:
    with pytest.raises(RulesInvalid) as caught:
        parse_rules(document, "f")
    assert caught.value.problems == expected


def test_defaults_fill_what_a_rule_leaves_out() -> None:
    (parsed,) = parse_rules({"version": 1, "rules": [rule()]}, "f").rules
    assert dict(parsed.params) == {"threshold": 10, "window_seconds": 60}
    assert parsed.suppress_seconds == 900
    assert (parsed.threshold, parsed.window_seconds) == (10, 60)


def test_suppression_the_rule_then_the_kind_then_the_document() -> None:
    rules = parse_rules(
        {
            "version": 1,
            "suppress_seconds": 120,
            "rules": [
                rule(name="own", suppress_seconds=5),
                rule(name="document"),
                rule(name="refusals", kind="witness_refused"),
            ],
        },
        "f",
    )
    assert [r.suppress_seconds for r in rules.rules] == [5, 120, 366 * 86400]


def test_rules_split_by_where_they_run_and_disabled_ones_run_nowhere() -> None:
    rules = parse_rules(
        {
            "version": 1,
            "rules": [
                rule(name="a"),
                rule(name="b", enabled=False),
                rule(name="c", kind="dead_letters"),
            ],
        },
        "f",
    )
    assert [r.name for r in rules.event_rules] == ["a"]
    assert [r.name for r in rules.scheduled_rules] == ["c"]


def test_the_shipped_rules_cover_every_kind_and_the_json_twin_is_current() -> None:
    shipped = default_rules()
    assert {r.kind.name for r in shipped.rules} == set(KINDS)
    assert all(r.enabled for r in shipped.rules)
    assert main(["--check"]) == 0
    # The YAML operators read and the JSON the functions read are the same rules.
    assert load_rules_file(DEFAULT_RULES_YAML).as_document() == json.loads(
        DEFAULT_RULES_JSON.read_text()
    )


def test_a_rules_document_round_trips_through_its_json(tmp_path: Path) -> None:
    document = default_rules().as_document()
    path = tmp_path / "rules.json"
    path.write_text(json.dumps(document))
    assert load_rules_file(path).as_document() == document


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param("rules: [", "not valid YAML at line 1", id="broken YAML"),
        pytest.param("", "the document must be a mapping", id="empty"),
    ],
)
def test_text_that_is_not_a_document(text: str, expected: str) -> None:
    with pytest.raises(RulesInvalid) as caught:
        load_rules_text(text, "f.yaml")
    assert caught.value.problems[0].startswith(expected), caught.value.problems


def test_a_file_that_cannot_be_read(tmp_path: Path) -> None:
    with pytest.raises(RulesInvalid) as caught:
        load_rules_file(tmp_path / "missing.yaml")
    assert caught.value.problems == ["cannot be read: No such file or directory"]


def test_yaml_and_json_give_the_same_rules() -> None:
    document = {"version": 1, "rules": [rule(threshold=3)]}
    from_yaml = load_rules_text(yaml.safe_dump(document), "y").as_document()
    assert from_yaml == load_rules_text(json.dumps(document), "j").as_document()
