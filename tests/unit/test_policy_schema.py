"""The published schema and reference are generated from the parser's declarations.

``docs/policy.schema.json`` and the reference part of ``docs/policy.md`` come
from the field tables and the registry of ``when`` conditions (``python -m
chalicelib.policy.reference``), so they cannot disagree with the parser; these
tests keep the committed files current and the declared examples honest.
"""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema

from chalicelib.policy import parse_policy
from chalicelib.policy.criterion import registered
from chalicelib.policy.reference import (
    REFERENCE_PATH,
    SCHEMA_PATH,
    example_document,
    policy_reference,
    policy_schema,
    reference_part,
    schema_text,
    stale,
)

ROOT = Path(__file__).resolve().parents[2]
REGENERATE = "regenerate with: .venv/bin/python -m chalicelib.policy.reference"


def test_the_committed_schema_is_the_generated_one() -> None:
    assert (ROOT / SCHEMA_PATH).read_text(encoding="utf-8") == schema_text(), REGENERATE


def test_the_committed_reference_is_the_generated_one() -> None:
    committed = (ROOT / REFERENCE_PATH).read_text(encoding="utf-8")

    assert reference_part(committed) == policy_reference(), REGENERATE


def test_check_mode_finds_nothing_stale_here_and_a_stale_copy_elsewhere(tmp_path: Path) -> None:
    (tmp_path / "docs").mkdir()
    (tmp_path / SCHEMA_PATH).write_text("{}\n", encoding="utf-8")

    assert stale(ROOT) == []
    assert stale(tmp_path) == [tmp_path / SCHEMA_PATH, tmp_path / REFERENCE_PATH]


def test_the_generated_schema_is_a_valid_draft_2020_12_schema() -> None:
    jsonschema.Draft202012Validator.check_schema(policy_schema())


def test_the_documented_example_passes_the_schema_and_the_parser() -> None:
    document = example_document()
    validator = jsonschema.Draft202012Validator(policy_schema())

    assert list(validator.iter_errors(document)) == []
    parse_policy(document)


def test_every_registered_condition_is_in_the_schema_and_the_reference() -> None:
    when = policy_schema()["$defs"]["rule"]["properties"]["when"]["properties"]
    reference = policy_reference()

    assert list(when) == [criterion.name for criterion in registered()]
    for criterion in registered():
        assert f"#### when.{criterion.name}" in reference
        assert f"`{criterion.reason.value}`" in reference


def test_the_schema_file_is_json_that_round_trips() -> None:
    text = (ROOT / SCHEMA_PATH).read_text(encoding="utf-8")

    assert json.loads(text) == policy_schema()
