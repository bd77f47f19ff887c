"""Reading an operator's policy file: a repeated key anywhere is refused, with its lines.

YAML and JSON parsers keep the last of two equal keys, so a rule saying
``effect: deny`` and then ``effect: allow`` would be applied as an allow.
Every case here goes through :func:`load_policy_file` on a real file.
"""

from __future__ import annotations

import json
import re
import textwrap
from pathlib import Path
from typing import Any

import pytest
import yaml

from gatehouse.policy_files import PolicyFileError, load_policy_file

RULE_WITH_TWO_EFFECTS = """\
version: 1
rules:
  - id: no-billing
    effect: deny
    paths: ["/api/billing/**"]
    effect: allow
"""


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


def refusal(path: Path) -> str:
    with pytest.raises(PolicyFileError) as refused:
        load_policy_file(path)
    message = str(refused.value)
    assert "\n" not in message  # one line on stderr, never a dump
    return message


def test_the_hazard_a_plain_yaml_parser_silently_turns_the_deny_into_an_allow() -> None:
    assert yaml.safe_load(RULE_WITH_TWO_EFFECTS)["rules"][0]["effect"] == "allow"


# --- YAML: refused ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "line", "key", "first"),
    [
        (RULE_WITH_TWO_EFFECTS, 6, "effect", 4),
        ("version: 1\nrules: []\nroutes: []\nrules: []\n", 4, "rules", 2),
        (
            """\
            rules:
              - id: a
                subjects:
                  groups: [eng]
                  users: [alice]
                  groups: [everyone]
            """,
            6,
            "groups",
            4,
        ),
        (
            """\
            rules:
              - id: a
                when:
                  mfa: true
                  source_cidrs: [10.0.0.0/8]
                  mfa: false
            """,
            6,
            "mfa",
            4,
        ),
        (
            """\
            rules:
              - id: a
                when:
                  hours:
                    - {tz: UTC, days: [mon], from: "09:00", to: "17:00", to: "23:59"}
            """,
            5,
            "to",
            5,
        ),
        (
            """\
            routes:
              - id: orders
                aws:
                  role_arn: arn:aws:iam::123456789012:role/a
                  region: us-east-1
                  role_arn: arn:aws:iam::123456789012:role/b
            """,
            6,
            "role_arn",
            4,
        ),
        ("rules:\n  - id: a\n    'effect': deny\n    \"effect\": allow\n", 4, "effect", 3),
    ],
    ids=[
        "in-a-rule",
        "top-level",
        "in-subjects-in-a-list-item",
        "in-when",
        "in-a-flow-mapping-in-a-list-in-when",
        "in-a-route",
        "quoted-differently",
    ],
)
def test_a_repeated_yaml_key_at_any_depth_is_refused_naming_file_lines_and_key(
    tmp_path: Path, text: str, line: int, key: str, first: int
) -> None:
    path = write(tmp_path, "policy.yaml", text)

    assert refusal(path) == (
        f"{path}:{line}: duplicate key {key!r} (first on line {first}): "
        "only the last would count; remove or rename one"
    )


@pytest.mark.parametrize(
    ("keys", "shown"),
    [
        (("1", '"1"'), "'1'"),
        (('"1"', "1"), "'1'"),
        (("true", '"true"'), "'true'"),
        (("true", "True"), "'True'"),
        (("null", '"null"'), "'null'"),
        (("~", "null"), "'null'"),
        (("1", "1.0"), "'1.0'"),
        (("1", "true"), "'true'"),
    ],
    ids=[
        "int-then-string",
        "string-then-int",
        "bool-then-string",
        "two-spellings-of-true",
        "null-then-string",
        "two-spellings-of-null",
        "int-then-float",
        "one-and-true-are-one-python-key",
    ],
)
def test_keys_that_differ_only_by_type_are_one_key(
    tmp_path: Path, keys: tuple[str, str], shown: str
) -> None:
    # The stored document is JSON: 1 and "1" would be one member there, and 1,
    # 1.0 and true are already one key of a Python dict.
    path = write(tmp_path, "policy.yaml", f"claims:\n  {keys[0]}: a\n  {keys[1]}: b\n")

    assert refusal(path).startswith(f"{path}:3: duplicate key {shown} (first on line 2)")


def test_a_repeated_key_inside_an_anchored_mapping_is_refused_once_where_it_is_written(
    tmp_path: Path,
) -> None:
    path = write(
        tmp_path,
        "policy.yaml",
        """\
        shared: &contractors
          groups: [contractors]
          groups: [everyone]
        rules:
          - id: a
            subjects: *contractors
          - id: b
            subjects: *contractors
        """,
    )

    assert refusal(path).startswith(f"{path}:3: duplicate key 'groups' (first on line 2)")


@pytest.mark.parametrize(
    "text",
    [
        """\
        base: &deny {effect: deny, routes: [demo]}
        rules:
          - <<: *deny
            id: a
        """,
        """\
        base: &deny {effect: deny}
        rules:
          - id: a
            <<: *deny
            effect: allow
        """,
        """\
        a: &a {effect: deny}
        b: &b {effect: allow}
        rules:
          - <<: [*a, *b]
        """,
    ],
    ids=["merge-alone", "explicit-key-overriding-a-merged-one", "two-merged-sources"],
)
def test_yaml_merge_keys_are_refused_with_what_to_do(tmp_path: Path, text: str) -> None:
    path = write(tmp_path, "policy.yaml", text)
    line = next(n for n, row in enumerate(textwrap.dedent(text).splitlines(), 1) if "<<" in row)

    assert refusal(path) == (
        f"{path}:{line}: merge keys (<<) are not supported in policies (an explicit key "
        "would silently override a merged one): write the keys out"
    )


@pytest.mark.parametrize(
    ("text", "kind"),
    [("? [a, b]\n: x\n", "list"), ("? {a: b}\n: x\n", "mapping"), ("rules:\n  [a]: x\n", "list")],
    ids=["list-key", "mapping-key", "nested-flow-list-key"],
)
def test_a_key_that_is_not_a_scalar_is_refused(tmp_path: Path, text: str, kind: str) -> None:
    path = write(tmp_path, "policy.yaml", text)

    assert f"a key is a {kind}: policy keys are plain names" in refusal(path)


# --- YAML: still read ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("effect: 1\nEffect: 2\n'effect ': 3\n", {"effect": 1, "Effect": 2, "effect ": 3}),
        (
            "rules:\n  - {id: a, effect: deny}\n  - {id: b, effect: allow}\n",
            {"rules": [{"id": "a", "effect": "deny"}, {"id": "b", "effect": "allow"}]},
        ),
        ("id: a\nsubjects:\n  id: b\n", {"id": "a", "subjects": {"id": "b"}}),
        (
            'claims:\n  "1": a\n  "1.0": b\n  "01": c\n',
            {"claims": {"1": "a", "1.0": "b", "01": "c"}},
        ),
        (
            "shared: &eng {groups: [eng]}\nrules:\n  - subjects: *eng\n  - subjects: *eng\n",
            {
                "shared": {"groups": ["eng"]},
                "rules": [{"subjects": {"groups": ["eng"]}}, {"subjects": {"groups": ["eng"]}}],
            },
        ),
        ("'<<': quoted\n", {"<<": "quoted"}),
    ],
    ids=[
        "case-and-space-differ",
        "same-key-in-sibling-items",
        "same-key-at-two-depths",
        "strings-that-look-like-one-number",
        "an-alias-used-twice",
        "a-quoted-<<-is-a-plain-key",
    ],
)
def test_distinct_keys_that_look_alike_are_read(
    tmp_path: Path, text: str, expected: dict[str, Any]
) -> None:
    assert load_policy_file(write(tmp_path, "policy.yaml", text)) == expected


# --- JSON ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "line", "key", "first"),
    [
        ('{"version": 1,\n "rules": [],\n "rules": [{"id": "a"}]}', 3, "rules", 2),
        (
            '{"rules": [\n  {"id": "a",\n   "effect": "deny",\n   "effect": "allow"}\n]}',
            4,
            "effect",
            3,
        ),
        (
            '{"rules": [{"id": "a"},\n  {"id": "b", "when": {"mfa": true,\n    "mfa": false}}]}',
            3,
            "mfa",
            2,
        ),
        ('{"effect": "deny",\n "\\u0065ffect": "allow"}', 2, "effect", 1),
        (
            '{"note": "{\\"effect\\": 1}",\n "rules": [{"effect": "deny"}, {"effect": "allow"}],\n'
            ' "effect": "deny",\n "effect": "allow"}',
            4,
            "effect",
            3,
        ),
    ],
    ids=[
        "top-level",
        "in-a-rule",
        "in-when-in-the-second-list-item",
        "escaped-spelling-of-the-same-name",
        "braces-in-strings-and-sibling-objects-do-not-confuse-the-lines",
    ],
)
def test_a_repeated_json_member_is_refused_naming_file_lines_and_key(
    tmp_path: Path, text: str, line: int, key: str, first: int
) -> None:
    path = write(tmp_path, "policy.json", text)

    assert refusal(path) == (
        f"{path}:{line}: duplicate key {key!r} (first on line {first}): "
        "only the last would count; remove or rename one"
    )


def test_json_objects_with_the_same_names_at_other_places_are_read(tmp_path: Path) -> None:
    document = {
        "id": "top",
        "rules": [{"id": "a", "when": {"id": 1}}, {"id": "b", "Id": 2}],
        "routes": {"rules": {"rules": []}},
    }
    path = write(tmp_path, "policy.json", json.dumps(document, indent=2))

    assert load_policy_file(path) == document


# --- files that cannot be read ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("policy.yaml", "rules: [\n", "policy.yaml:2: not valid YAML: while parsing a flow"),
        ("policy.yaml", "a: 1\n---\nb: 2\n", "policy.yaml:2: not valid YAML: expected a single"),
        ("policy.yaml", "a:\n\tb: 1\n", "policy.yaml:2: not valid YAML: found character '\\t'"),
        ("policy.yaml", "- a\n- b\n", "policy.yaml: a policy must be a mapping"),
        ("policy.yaml", "", "policy.yaml: a policy must be a mapping"),
        ("policy.json", '{"a": 1,}', "policy.json:1: not valid JSON: Expecting property name"),
        ("policy.json", "[]", "policy.json: a policy must be a mapping"),
        ("policy.yaml", b"a: \xff\n", "policy.yaml: not UTF-8 text (byte 3): save the policy"),
    ],
    ids=[
        "yaml-syntax",
        "two-yaml-documents",
        "tab-indent",
        "yaml-list",
        "empty",
        "json-syntax",
        "json-list",
        "not-utf8",
    ],
)
def test_an_unreadable_file_is_one_line_naming_the_file_and_line(
    tmp_path: Path, name: str, content: str | bytes, message: str
) -> None:
    path = tmp_path / name
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content)

    assert refusal(path).startswith(f"{tmp_path}/{message}")


@pytest.mark.parametrize(
    ("name", "message"),
    [("missing.yaml", "No such file or directory"), (".", "Is a directory")],
    ids=["missing", "a-directory"],
)
def test_a_file_that_cannot_be_opened_is_named(tmp_path: Path, name: str, message: str) -> None:
    path = tmp_path / name

    assert refusal(path) == f"{path}: {message}"


# --- ${NAME} variables (--var NAME=VALUE) -----------------------------------------------------

DEMO_POLICY = Path(__file__).resolve().parents[2] / "gatehouse" / "dev" / "demo-policy.yaml"


def substituted(value: Any, **variables: str) -> Any:
    from gatehouse.policy_files import substitute_variables

    return substitute_variables({"value": value}, variables, "p.yaml")["value"]


@pytest.mark.parametrize(
    ("value", "variables", "expected"),
    [
        ("${URL}", {"URL": "http://b:1"}, "http://b:1"),
        ("${URL}/aws", {"URL": "http://b:1"}, "http://b:1/aws"),
        ("${A}-${B}", {"A": "x", "B": "y"}, "x-y"),
        (["${G}", "ops"], {"G": "eng"}, ["eng", "ops"]),
        ({"groups": ["${G}"]}, {"G": "eng"}, {"groups": ["eng"]}),
        ("$${URL}", {}, "${URL}"),
        ("cost: $5", {}, "cost: $5"),
        ("${URL}", {"URL": "${OTHER}"}, "${OTHER}"),
        (3, {"URL": "x"}, 3),
        (True, {}, True),
    ],
    ids=[
        "whole value", "part of a value", "two", "in a list", "nested", "escaped",
        "a dollar alone", "a value is not substituted again", "a number", "a bool",
    ],
)  # fmt: skip
def test_placeholders_are_filled_in(value: Any, variables: dict[str, str], expected: Any) -> None:
    assert substituted(value, **variables) == expected


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("${URL}", "p.yaml: value: ${URL} is not set: pass --var URL=VALUE"),
        (["a", "${G}"], "p.yaml: value[1]: ${G} is not set: pass --var G=VALUE"),
        ("${}", "p.yaml: value: ${} is not a variable name"),
        ("${1X}", "p.yaml: value: ${1X} is not a variable name"),
        ("${URL", "p.yaml: value: a '${' is not closed by '}'"),
    ],
    ids=["unset", "unset in a list", "empty", "not a name", "not closed"],
)
def test_a_placeholder_that_cannot_be_filled_is_an_input_error_saying_where(
    value: Any, message: str
) -> None:
    from gatehouse.errors import InputError

    with pytest.raises(InputError) as refused:
        substituted(value)
    assert str(refused.value).startswith(message)
    assert refused.value.exit_code == 2


def test_keys_are_never_substituted() -> None:
    from gatehouse.policy_files import substitute_variables

    document = substitute_variables({"${K}": "${K}"}, {"K": "v"}, "p.yaml")

    assert document == {"${K}": "v"}


def test_an_unset_variable_names_the_rule_it_is_in(tmp_path: Path) -> None:
    from gatehouse.errors import InputError
    from gatehouse.policy_files import load_policy_file_with_variables

    path = write(
        tmp_path,
        "p.yaml",
        """\
        version: 1
        rules:
          - id: eng
            subjects: {groups: ["${TEAM}"]}
        """,
    )

    with pytest.raises(
        InputError, match=r"p\.yaml: rules\[eng\]\.subjects\.groups\[0\]: \$\{TEAM\}"
    ):
        load_policy_file_with_variables(path, {})


def test_comments_are_not_read_for_placeholders(tmp_path: Path) -> None:
    from gatehouse.policy_files import load_policy_file_with_variables

    path = write(tmp_path, "p.yaml", "# ${NOT_A_VARIABLE} in a comment\nversion: 1\n")

    assert load_policy_file_with_variables(path, {}) == {"version": 1}


@pytest.mark.parametrize(
    ("pairs", "expected"),
    [
        ([], {}),
        (["URL=http://b:1"], {"URL": "http://b:1"}),
        (["A=x=y"], {"A": "x=y"}),
        (["EMPTY="], {"EMPTY": ""}),
    ],
    ids=["none", "one", "value with =", "empty value"],
)
def test_var_options_parse(pairs: list[str], expected: dict[str, str]) -> None:
    from gatehouse.policy_files import parse_variables

    assert parse_variables(pairs) == expected


@pytest.mark.parametrize(
    ("pairs", "message"),
    [
        (["URL"], "--var 'URL' is not NAME=VALUE"),
        (["=x"], "--var '=x' is not NAME=VALUE"),
        (["1A=x"], "--var '1A=x' is not NAME=VALUE"),
        (["A=x", "A=y"], "--var A is given twice"),
    ],
    ids=["no =", "no name", "not a name", "twice"],
)
def test_bad_var_options_are_input_errors(pairs: list[str], message: str) -> None:
    from gatehouse.errors import InputError
    from gatehouse.policy_files import parse_variables

    with pytest.raises(InputError, match=re.escape(message)):
        parse_variables(pairs)


def test_the_demo_policy_validates_with_its_one_variable_and_not_without() -> None:
    from chalicelib.policy import parse_policy
    from gatehouse.errors import InputError
    from gatehouse.policy_files import load_policy_file_with_variables

    document = load_policy_file_with_variables(
        DEMO_POLICY, {"BACKEND_URL": "http://127.0.0.1:8788"}
    )

    parse_policy(document)
    assert "${" not in json.dumps(document)
    with pytest.raises(InputError, match=r"routes\[demo\]\.upstream: \$\{BACKEND_URL\} is not set"):
        load_policy_file_with_variables(DEMO_POLICY, {})
