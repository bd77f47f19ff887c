"""Read an operator's policy file (YAML or JSON) so that it means exactly what it says.

YAML and JSON parsers keep the last of two equal keys in a mapping: a rule
written with ``effect: deny`` and, further down, ``effect: allow`` would be
applied as an allow, and a second top-level ``rules:`` would replace every
rule above it, with nothing said. Here a key that repeats in any mapping, at
any depth, is an error naming the file, both lines and the key.

Decisions:

- Keys are equal when a parser or the stored JSON would merge them: by value
  (``1``, ``1.0`` and ``true`` are one Python key) and by their JSON text
  (``1`` and ``"1"``, ``null`` and ``"null"``, ``true`` and ``"true"``).
- A key must be a scalar: a mapping or list used as a key is refused.
- YAML merge keys (``<<: *defaults``) are refused. Their meaning is "the
  mapping's own keys silently override the merged ones", which is the very
  thing this loader exists to prevent, and PyYAML releases differ in which of
  two merged sources wins. Anchors and aliases of whole values
  (``subjects: *engineers``) are fine: an alias is the same value again, and
  a repeated key inside the anchored mapping is refused like any other.

Variables (``policy validate|diff|apply --var NAME=VALUE``): a ``${NAME}`` in
a string value is replaced by the variable's value after the file is parsed,
so a value can never add keys or lines, comments are never read, and errors
keep their line numbers. A ``${NAME}`` that no ``--var`` sets is an error
naming it (nothing is applied with a placeholder left in); ``$${`` is a
literal ``${``. Keys are not substituted: a rule id or a claim name is what
the file says. See :func:`load_policy_file_with_variables`.
"""

from __future__ import annotations

import bisect
import json
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from gatehouse.errors import InputError

_MERGE_TAG = "tag:yaml.org,2002:merge"
# What the JSON walker needs to see: whole strings (so a brace inside one is
# not structure), and the brackets and colons around them.
_JSON_TOKEN = re.compile(r'"(?:[^"\\]|\\.)*"|[{}\[\]:]')


class PolicyFileError(ValueError):
    """The policy file cannot be read or parsed."""


def load_policy_file(path: Path) -> dict[str, Any]:
    """Read a YAML or JSON (``.json``) policy document, refusing duplicate keys.

    Parameters
    ----------
    path
        The operator's policy file.

    Returns
    -------
    dict
        The document, not yet validated (see ``chalicelib.policy.parse_policy``).

    Raises
    ------
    PolicyFileError
        When the file cannot be read, is not YAML/JSON, repeats a key in any
        mapping, uses a YAML merge key or a non-scalar key, or is not a mapping.
    """
    return parse_policy_text(read_policy_text(path), str(path), json_format=is_json(path))


def load_policy_file_with_variables(path: Path, variables: Mapping[str, str]) -> dict[str, Any]:
    """Read a policy file as :func:`load_policy_file`, then fill in its ``${NAME}`` placeholders.

    Parameters
    ----------
    path
        The operator's policy file.
    variables
        Values by name (see :func:`parse_variables`).

    Returns
    -------
    dict
        The document with every placeholder replaced, not yet validated.

    Raises
    ------
    PolicyFileError
        As :func:`load_policy_file`.
    InputError
        When a placeholder names a variable that is not set, or is not ``${NAME}``.
    """
    return substitute_variables(load_policy_file(path), variables, str(path))


_VARIABLE_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
# ``$${`` (an escaped literal), or ``${`` up to the next ``}`` (or the end: unterminated).
_PLACEHOLDER = re.compile(r"\$(\$?)\{([^}]*)(\}?)")


def parse_variables(pairs: Sequence[str]) -> dict[str, str]:
    """``--var NAME=VALUE`` options as a mapping.

    Raises
    ------
    InputError
        When one is not ``NAME=VALUE`` with a valid name, or a name is given twice.
    """
    variables: dict[str, str] = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not _VARIABLE_NAME.fullmatch(name):
            raise InputError(
                f"--var {pair!r} is not NAME=VALUE (a name is letters, digits and _, "
                "not starting with a digit)"
            )
        if name in variables:
            raise InputError(f"--var {name} is given twice")
        variables[name] = value
    return variables


def substitute_variables(
    document: dict[str, Any], variables: Mapping[str, str], source: str
) -> dict[str, Any]:
    """``document`` with each ``${NAME}`` in its string values replaced; ``source`` names it.

    Raises
    ------
    InputError
        When a placeholder names a variable not in ``variables``, is empty,
        is not a valid name, or is not closed; the message says where.
    """
    substituted = _substitute(document, variables, source, "")
    assert isinstance(substituted, dict)
    return substituted


def _substitute(value: Any, variables: Mapping[str, str], source: str, where: str) -> Any:
    if isinstance(value, str):
        return _substitute_text(value, variables, source, where)
    if isinstance(value, list):
        return [
            _substitute(item, variables, source, f"{where}[{_entry_name(item, index)}]")
            for index, item in enumerate(value)
        ]
    if isinstance(value, dict):
        return {
            key: _substitute(item, variables, source, f"{where}.{key}" if where else str(key))
            for key, item in value.items()
        }
    return value


def _entry_name(item: Any, index: int) -> str:
    """How a list entry is named in messages: its id when it has one (as validation does)."""
    if isinstance(item, dict) and isinstance(item.get("id"), str):
        return str(item["id"])
    return str(index)


def _substitute_text(text: str, variables: Mapping[str, str], source: str, where: str) -> str:
    def replace(match: re.Match[str]) -> str:
        escaped, name, closed = match.groups()
        if escaped:
            return "${" + name + closed
        if not closed:
            raise InputError(
                f"{source}: {where}: a '${{' is not closed by '}}' (write $${{ for a literal ${{)"
            )
        if not _VARIABLE_NAME.fullmatch(name):
            raise InputError(
                f"{source}: {where}: ${{{name}}} is not a variable name "
                "(letters, digits and _; write $${ for a literal ${)"
            )
        if name not in variables:
            raise InputError(f"{source}: {where}: ${{{name}}} is not set: pass --var {name}=VALUE")
        return variables[name]

    return _PLACEHOLDER.sub(replace, text)


def is_json(path: Path) -> bool:
    """Whether ``path`` is read as JSON (by its ``.json`` suffix) rather than YAML."""
    return path.suffix.lower() == ".json"


def read_policy_text(path: Path) -> str:
    """The text of a policy file.

    Raises
    ------
    PolicyFileError
        When the file is missing, unreadable or not UTF-8.
    """
    try:
        return path.read_text(encoding="utf-8")
    except OSError as exc:
        raise PolicyFileError(f"{path}: {exc.strerror or exc}") from exc
    except UnicodeDecodeError as exc:
        raise PolicyFileError(
            f"{path}: not UTF-8 text (byte {exc.start}): save the policy as UTF-8"
        ) from exc


def parse_policy_text(text: str, source: str, *, json_format: bool) -> dict[str, Any]:
    """Parse a policy document from ``text``; ``source`` names it in errors.

    Raises
    ------
    PolicyFileError
        As :func:`load_policy_file`, each message on one line.
    """
    document = _parse_json(text, source) if json_format else _parse_yaml(text, source)
    if not isinstance(document, dict):
        raise PolicyFileError(f"{source}: a policy must be a mapping")
    return document


# --- YAML ------------------------------------------------------------------------------------


class _Refused(Exception):
    """A construct the policy loader will not read, at a line of the file."""

    def __init__(self, line: int, message: str) -> None:
        super().__init__(message)
        self.line = line
        self.message = message


class _PolicyLoader(yaml.SafeLoader):
    """A safe loader that refuses duplicate keys, merge keys and non-scalar keys."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        if isinstance(node, yaml.MappingNode):
            self._check_keys(node)
        return super().construct_mapping(node, deep=deep)

    def _check_keys(self, node: yaml.MappingNode) -> None:
        seen: dict[tuple[str, Any], int] = {}
        for key_node, _ in node.value:
            line = key_node.start_mark.line + 1
            if key_node.tag == _MERGE_TAG:
                raise _Refused(
                    line,
                    "merge keys (<<) are not supported in policies (an explicit key would "
                    "silently override a merged one): write the keys out",
                )
            if not isinstance(key_node, yaml.ScalarNode):
                kind = "list" if isinstance(key_node, yaml.SequenceNode) else "mapping"
                raise _Refused(line, f"a key is a {kind}: policy keys are plain names")
            key = self.construct_object(key_node, deep=True)  # type: ignore[no-untyped-call]
            for identity in (("value", key), ("text", _key_text(key))):
                if identity in seen:
                    raise _Refused(
                        line,
                        f"duplicate key {key_node.value!r} (first on line {seen[identity]}): "
                        "only the last would count; remove or rename one",
                    )
            for identity in (("value", key), ("text", _key_text(key))):
                seen[identity] = line


def _key_text(key: Any) -> str:
    """The key as the stored JSON document would spell it."""
    if isinstance(key, str):
        return key
    if key is None or isinstance(key, bool | int | float):
        return json.dumps(key)
    return str(key)


def _parse_yaml(text: str, source: str) -> Any:
    try:
        return yaml.load(text, Loader=_PolicyLoader)  # noqa: S506 - a SafeLoader subclass
    except _Refused as exc:
        raise PolicyFileError(f"{source}:{exc.line}: {exc.message}") from exc
    except yaml.MarkedYAMLError as exc:
        raise PolicyFileError(_yaml_error_line(source, exc)) from exc
    except yaml.YAMLError as exc:
        raise PolicyFileError(f"{source}: not valid YAML: {_one_line(str(exc))}") from exc


def _yaml_error_line(source: str, exc: yaml.MarkedYAMLError) -> str:
    mark = exc.problem_mark or exc.context_mark
    where = f"{source}:{mark.line + 1}" if mark is not None else source
    problem = _one_line(exc.problem or exc.context or "unreadable")
    if exc.context and exc.problem and exc.context_mark is not None:
        # PyYAML's own order: "while parsing X (there)", then what it found.
        problem = f"{_one_line(exc.context)} on line {exc.context_mark.line + 1}: {problem}"
    return f"{where}: not valid YAML: {problem}"


def _one_line(text: str) -> str:
    return " ".join(text.split())


# --- JSON ------------------------------------------------------------------------------------


class _DuplicateMember(Exception):
    """Two members of one JSON object have the same name."""

    def __init__(self, key: str) -> None:
        super().__init__(key)
        self.key = key


def _unique_members(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    document: dict[str, Any] = {}
    for key, value in pairs:
        if key in document:
            raise _DuplicateMember(key)
        document[key] = value
    return document


def _parse_json(text: str, source: str) -> Any:
    try:
        return json.loads(text, object_pairs_hook=_unique_members)
    except _DuplicateMember as exc:
        raise PolicyFileError(_json_duplicate_line(text, source, exc.key)) from exc
    except json.JSONDecodeError as exc:
        raise PolicyFileError(
            f"{source}:{exc.lineno}: not valid JSON: {exc.msg} (column {exc.colno})"
        ) from exc
    except (ValueError, RecursionError) as exc:
        raise PolicyFileError(f"{source}: not valid JSON: {_one_line(str(exc))}") from exc


def _json_duplicate_line(text: str, source: str, key: str) -> str:
    """The error for a repeated member, with the lines the decoder cannot give."""
    found = _first_json_duplicate(text)
    if found is None:  # the decoder saw one, so this is not expected: still refuse
        return f"{source}: duplicate key {key!r}: only the last would count; remove or rename one"
    name, first, again = found
    return (
        f"{source}:{again}: duplicate key {name!r} (first on line {first}): "
        "only the last would count; remove or rename one"
    )


def _first_json_duplicate(text: str) -> tuple[str, int, int] | None:
    """The first repeated member name in document order, with its two lines.

    Only called on text the decoder read up to a duplicate, so every string
    right before a colon is a member name of the innermost open object.
    """
    newlines = [index for index, char in enumerate(text) if char == "\n"]
    objects: list[dict[str, int] | None] = []  # None: an array
    last_string: tuple[str, int] | None = None
    for match in _JSON_TOKEN.finditer(text):
        mark = match.group()
        if mark in ("{", "["):
            objects.append({} if mark == "{" else None)
        elif mark in ("}", "]"):
            if objects:
                objects.pop()
        elif mark == ":":
            members = objects[-1] if objects else None
            if members is not None and last_string is not None:
                name, line = last_string
                if name in members:
                    return name, members[name], line
                members[name] = line
        else:
            line = bisect.bisect_left(newlines, match.start()) + 1
            last_string = (json.loads(mark), line)
    return None
