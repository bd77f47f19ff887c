"""The published JSON schema and policy reference, generated from the parser's declarations.

``docs/policy.schema.json`` (for operators' editors and CI) and the reference
part of ``docs/policy.md`` (for people: every field, an example each) are
built from the field tables (:mod:`chalicelib.policy.fields`) and the
registry of ``when`` conditions, so neither can drift from what the parser
accepts. In ``docs/policy.md`` only the text between :data:`BEGIN_MARKER`
and :data:`END_MARKER` is generated; the hand-written text around it stays
as written. Regenerate both with::

    .venv/bin/python -m chalicelib.policy.reference

(``--check`` reports stale files instead, exiting 1; a ``docs/policy.md``
without both markers is exit status 2). Not imported by the deployed functions.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from chalicelib.policy.fields import (
    ISSUERS_EXAMPLE,
    ISSUERS_EXAMPLE_NOTES,
    ISSUERS_GUIDE,
    ISSUERS_TITLE,
    SHARED_DEFS,
    Field,
    Section,
    sections,
)

SCHEMA_PATH = Path("docs") / "policy.schema.json"
REFERENCE_PATH = Path("docs") / "policy.md"
_SCHEMA_ID = "https://gatehouse.example/schemas/policy-v1.json"
_COMMAND = "python -m chalicelib.policy.reference"
BEGIN_MARKER = f"<!-- BEGIN generated policy reference: `{_COMMAND}` writes it; do not edit -->"
END_MARKER = "<!-- END generated policy reference -->"


class ReferenceMarkersMissing(ValueError):
    """``docs/policy.md`` lacks a marker, or has them out of order: nowhere to put the reference."""


def policy_schema() -> dict[str, Any]:
    """The JSON schema (draft 2020-12) of a policy document."""
    tables = sections()
    document = tables["document"]
    shared = {name: _object(s, tables) for name, s in tables.items() if s.shared}
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": _SCHEMA_ID,
        "title": "Gatehouse policy document, version 1",
        **_object(document, tables),
        "$defs": {**SHARED_DEFS, **shared},
    }


def schema_text() -> str:
    """:func:`policy_schema` as the committed file holds it."""
    return json.dumps(policy_schema(), indent=2, ensure_ascii=False) + "\n"


def example_document() -> dict[str, Any]:
    """A document made of every field's example (the parser accepts it)."""
    tables = sections()
    return _section_example(tables["document"], tables)


def policy_reference() -> str:
    """The reference in Markdown: every section, every field, an example each.

    What goes between the markers of ``docs/policy.md`` (see :func:`with_reference`).
    """
    tables = sections()
    lines = [
        "## Policy reference",
        "",
        f"Generated from chalicelib/policy/fields.py and the conditions in "
        f"chalicelib/policy/criteria/ by `{_COMMAND}`.",
        "",
        tables["document"].summary,
        "",
        "The JSON schema is in [policy.schema.json](policy.schema.json).",
        "",
        "### A complete example",
        "",
        *_yaml_block(example_document()),
        "",
        f"### {ISSUERS_TITLE}",
        "",
        *_paragraphs(ISSUERS_GUIDE),
        "",
        *_yaml_block(ISSUERS_EXAMPLE),
        "",
        *_paragraphs(ISSUERS_EXAMPLE_NOTES),
    ]
    for section in tables.values():
        lines.extend(_section_reference(section, tables))
    return "\n".join(lines).rstrip("\n") + "\n"


def reference_part(text: str) -> str:
    """The generated part of ``docs/policy.md``'s ``text``: what lies between the markers.

    Raises
    ------
    ReferenceMarkersMissing
        When a marker is missing or repeated, or the end marker comes first.
    """
    return _split(text)[1]


def with_reference(text: str, reference: str) -> str:
    """``text`` (``docs/policy.md``) with ``reference`` between its markers, the rest unchanged.

    Raises
    ------
    ReferenceMarkersMissing
        As :func:`reference_part`.
    """
    before, _, after = _split(text)
    return f"{before}{BEGIN_MARKER}\n{reference}{END_MARKER}{after}"


def _split(text: str) -> tuple[str, str, str]:
    """Before the begin marker, between the markers (its newline left out), after the end one."""
    if text.count(BEGIN_MARKER) != 1 or text.count(END_MARKER) != 1:
        raise ReferenceMarkersMissing(
            f"{REFERENCE_PATH} must hold each of these lines once: {BEGIN_MARKER} {END_MARKER}"
        )
    before, _, rest = text.partition(BEGIN_MARKER)
    inside, found, after = rest.partition(END_MARKER)
    if not found:
        raise ReferenceMarkersMissing(f"{REFERENCE_PATH}: {END_MARKER} comes before {BEGIN_MARKER}")
    return before, inside.removeprefix("\n"), after


def write(root: Path) -> list[Path]:
    """Write both files under ``root`` (the reference between ``docs/policy.md``'s markers).

    A missing ``docs/policy.md`` is written with the markers and the reference only.

    Raises
    ------
    ReferenceMarkersMissing
        When ``docs/policy.md`` exists without its markers (nothing is written).
    """
    generated = _generated(root)
    written = []
    for path, text in generated.items():
        target = root / path
        target.write_text(text, encoding="utf-8")
        written.append(target)
    return written


def stale(root: Path) -> list[Path]:
    """The generated files under ``root`` that differ from what would be generated.

    A ``docs/policy.md`` without its markers is stale.
    """
    out_of_date = []
    for path, expected in _expected(root).items():
        target = root / path
        current = target.read_text(encoding="utf-8") if target.is_file() else None
        if current is None or expected is None or current != expected:
            out_of_date.append(target)
    return out_of_date


def main(argv: Sequence[str] | None = None) -> int:
    """Regenerate the files (or, with ``--check``, report stale ones).

    Exit status: 0 done (or current); 1 ``--check`` found a stale file; 2
    ``docs/policy.md`` has no place for the reference (its markers).
    """
    parser = argparse.ArgumentParser(prog=_COMMAND, description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, default=Path.cwd(), help="the repository root")
    parser.add_argument("--check", action="store_true", help="exit 1 when a file is stale")
    args = parser.parse_args(argv)
    if args.check:
        out_of_date = stale(args.root)
        for path in out_of_date:
            print(f"{path} is stale: run {_COMMAND}", file=sys.stderr)
        return 1 if out_of_date else 0
    try:
        written = write(args.root)
    except ReferenceMarkersMissing as exc:
        print(f"{_COMMAND}: {exc}", file=sys.stderr)
        return 2
    for path in written:
        print(f"wrote {path}")
    return 0


def _expected(root: Path) -> dict[Path, str | None]:
    """What each file should hold (None: ``docs/policy.md`` has no markers to fill)."""
    try:
        return dict(_generated(root))
    except ReferenceMarkersMissing:
        return {SCHEMA_PATH: schema_text(), REFERENCE_PATH: None}


def _generated(root: Path) -> dict[Path, str]:
    reference = root / REFERENCE_PATH
    document = (
        reference.read_text(encoding="utf-8")
        if reference.is_file()
        else f"{BEGIN_MARKER}\n{END_MARKER}\n"
    )
    return {
        SCHEMA_PATH: schema_text(),
        REFERENCE_PATH: with_reference(document, policy_reference()),
    }


# --- schema ------------------------------------------------------------------------------


def _object(section: Section, tables: Mapping[str, Section]) -> dict[str, Any]:
    schema: dict[str, Any] = {"description": section.summary, "type": "object"}
    schema["additionalProperties"] = False
    required = [f.name for f in section.fields if f.required]
    if required:
        schema["required"] = required
    schema.update(section.extra_schema)
    schema["properties"] = {f.name: _field_schema(f, tables) for f in section.fields}
    return schema


def _field_schema(field: Field, tables: Mapping[str, Section]) -> dict[str, Any]:
    if field.schema:
        return {"description": field.summary, **field.schema}
    assert field.section is not None, field.name  # a field has a schema or a section
    return {**_object(tables[field.section], tables), "description": field.summary}


# --- examples ----------------------------------------------------------------------------


def _section_example(section: Section, tables: Mapping[str, Section]) -> dict[str, Any]:
    return {f.name: _field_example(f, tables) for f in section.fields}


def _field_example(field: Field, tables: Mapping[str, Section]) -> object:
    if field.example is not None:
        return field.example
    assert field.section is not None, field.name  # a field has an example or a section
    example = _section_example(tables[field.section], tables)
    # A list of sections (routes, rules) holds one example entry.
    return [example] if field.schema.get("type") == "array" else example


# --- Markdown ----------------------------------------------------------------------------


def _section_reference(section: Section, tables: Mapping[str, Section]) -> list[str]:
    where = f"At `{section.location}`." if section.location else "The top level of a policy file."
    lines = ["", f"### {section.name}", "", f"{where} {section.summary}", ""]
    lines += ["| Field | Value | Required |", "| --- | --- | --- |"]
    for field in section.fields:
        required = "yes" if field.required else _default_text(field)
        lines.append(f"| `{field.name}` | {_type_text(field)} | {required} |")
    for field in section.fields:
        lines += ["", f"#### {section.name}.{field.name}", "", field.summary]
        lines += [f"\n{note}" for note in field.notes]
        lines += ["", *_yaml_block({field.name: _field_example(field, tables)})]
    if section.name == "when":
        lines += ["", *_conditions_table()]
    return lines


def _conditions_table() -> list[str]:
    from chalicelib.policy.criterion import registered

    lines = [
        "When an allow rule's condition does not hold, the decision names its reason code; "
        "a condition the request carries no facts for (no `auth_time`, a source that is "
        "not an address) does not hold for an allow and does not lift a deny.",
        "",
        "| Condition | Reason code | On a deny rule |",
        "| --- | --- | --- |",
    ]
    for criterion in registered():
        on_deny = "yes" if criterion.deny_refusal is None else f"no: {criterion.deny_refusal}"
        lines.append(f"| `{criterion.name}` | `{criterion.reason.value}` | {on_deny} |")
    return lines


def _default_text(field: Field) -> str:
    if "default" in field.schema:
        return f"no (default `{json.dumps(field.schema['default'])}`)"
    return "no"


def _type_text(field: Field) -> str:
    schema = field.schema
    if not schema or (field.section and schema.get("type") == "array"):
        assert field.section is not None, field.name
        kind = "list of" if schema.get("type") == "array" else "mapping:"
        return f"{kind} [{field.section}](#{field.section})"
    return _schema_text(schema)


def _schema_text(schema: Mapping[str, Any]) -> str:
    ref = schema.get("$ref", "")
    named = {
        "#/$defs/strings": "non-empty list of strings",
        "#/$defs/duration": 'duration (seconds, or "90s", "30m", "4h", "1d", "1h30m")',
        "#/$defs/id": "id (`[a-z0-9][a-z0-9_.-]*`, at most 64)",
    }
    if ref:
        return named[ref]
    if "const" in schema:
        return f"`{json.dumps(schema['const'])}`"
    if "enum" in schema:
        return "one of " + ", ".join(f"`{value}`" for value in schema["enum"])
    kind = schema.get("type")
    if kind == "array":
        return "list of " + _schema_text(schema["items"])
    if kind == "object":
        return "mapping"
    return str(kind)


def _paragraphs(paragraphs: Sequence[str]) -> list[str]:
    lines: list[str] = []
    for paragraph in paragraphs:
        lines += [*paragraph.split("\n"), ""]
    return lines[:-1]


def _yaml_block(value: Mapping[str, Any]) -> list[str]:
    return ["```yaml", *_yaml(value, 0), "```"]


def _yaml(value: object, depth: int) -> list[str]:
    """Block YAML for mappings and lists of mappings; JSON (valid YAML) for the rest."""
    pad = "  " * depth
    if isinstance(value, Mapping):
        lines = []
        for key, item in value.items():
            if _is_block(item):
                lines.append(f"{pad}{key}:")
                lines.extend(_yaml(item, depth + 1))
            else:
                lines.append(f"{pad}{key}: {json.dumps(item, ensure_ascii=False)}")
        return lines
    if isinstance(value, list) and _is_block(value):
        lines = []
        for item in value:
            nested = _yaml(item, depth + 1)
            lines.append(f"{pad}- {nested[0].lstrip()}")
            lines.extend(nested[1:])
        return lines
    return [pad + json.dumps(value, ensure_ascii=False)]


def _is_block(value: object) -> bool:
    if isinstance(value, Mapping):
        return bool(value)
    return isinstance(value, list) and any(isinstance(item, Mapping) for item in value)


if __name__ == "__main__":
    sys.exit(main())
