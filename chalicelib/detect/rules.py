"""Detection rules: the document, its validation, and the rules it yields.

A rules document (YAML for operators, JSON for the functions)::

    version: 1
    suppress_seconds: 900          # optional: repeats of one alert within this are dropped
    rules:
      - name: deny-burst-principal # unique; letters, digits, - and _
        enabled: true
        severity: high             # low | medium | high | critical
        kind: deny_burst_principal # one of chalicelib.detect.kinds.KINDS
        threshold: 20              # the kind's parameters, beside the rule's own fields
        window_seconds: 60
        suppress_seconds: 600      # optional, per rule

Validation reports every problem at once, one line each, naming the rule
and the field (:class:`~chalicelib.detect.errors.RulesInvalid`).

The functions read JSON (PyYAML is not in the Lambda package):
``default_rules.json`` is generated from ``default_rules.yaml``
(``python -m chalicelib.detect.rules [--check]``), and an operator's file is
given to a stage as JSON (``gatehouse alerts list --rules FILE -o json``).
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from chalicelib.detect.errors import RulesInvalid
from chalicelib.detect.kinds import KINDS, Param, RuleKind
from chalicelib.detect.kinds.base import REQUIRED

DEFAULT_RULES_YAML = Path(__file__).with_name("default_rules.yaml")
DEFAULT_RULES_JSON = Path(__file__).with_name("default_rules.json")
SEVERITIES = ("low", "medium", "high", "critical")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,62}$")
_RULE_FIELDS = {"name", "enabled", "severity", "kind", "suppress_seconds", "description"}
MAX_SUPPRESS_SECONDS = 366 * 86400
DEFAULT_SUPPRESS_SECONDS = 900


@dataclass(frozen=True, slots=True)
class Rule:
    """One validated rule: its kind, and every parameter with defaults filled in."""

    name: str
    enabled: bool
    severity: str
    kind: RuleKind
    params: Mapping[str, Any]
    suppress_seconds: int
    description: str = ""

    @property
    def threshold(self) -> int | None:
        """The rule's threshold, for kinds that have one."""
        value = self.params.get("threshold")
        return value if isinstance(value, int) else None

    @property
    def window_seconds(self) -> int | None:
        """The rule's window, for kinds that count in windows."""
        value = self.params.get("window_seconds")
        return value if isinstance(value, int) else None

    def as_document(self) -> dict[str, Any]:
        """The rule as a rules document writes it (hours in their document form)."""
        entry: dict[str, Any] = {
            "name": self.name,
            "enabled": self.enabled,
            "severity": self.severity,
            "kind": self.kind.name,
        }
        for param in self.kind.params:
            value = self.params[param.name]
            entry[param.name] = self.params.get(f"{param.name}__document", value)
        entry["suppress_seconds"] = self.suppress_seconds
        if self.description:
            entry["description"] = self.description
        return {key: value for key, value in entry.items() if not key.endswith("__document")}


@dataclass(frozen=True, slots=True)
class RuleSet:
    """Every rule of one document, in its order."""

    rules: tuple[Rule, ...]
    source: str

    @property
    def event_rules(self) -> tuple[Rule, ...]:
        """Enabled rules the audit writer evaluates on each batch."""
        return tuple(rule for rule in self.rules if rule.enabled and not rule.kind.scheduled)

    @property
    def scheduled_rules(self) -> tuple[Rule, ...]:
        """Enabled rules the scheduled check evaluates."""
        return tuple(rule for rule in self.rules if rule.enabled and rule.kind.scheduled)

    def get(self, name: str) -> Rule | None:
        """The rule named ``name``."""
        return next((rule for rule in self.rules if rule.name == name), None)

    def as_document(self) -> dict[str, Any]:
        """The rules as a document (what ``-o json`` prints, and the functions read)."""
        return {"version": 1, "rules": [rule.as_document() for rule in self.rules]}


class _Problems:
    """Collects problems; the ``Problems`` protocol the policy's ``hours`` parser reports to."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def problem(self, location: str, message: str) -> None:
        self.lines.append(f"{location}: {message}")

    def unknown_fields(self, location: str, mapping: Mapping[str, Any], known: set[str]) -> None:
        for name in sorted(set(mapping) - known, key=str):
            self.problem(f"{location}.{name}", f"unknown field (known: {', '.join(sorted(known))})")

    def string_list(self, value: Any, where: str, *, required: bool = True) -> list[str]:
        if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
            self.problem(where, "must be a list of strings")
            return []
        return list(value)


def parse_rules(document: Any, source: str) -> RuleSet:
    """Validate a rules document (already read from YAML or JSON).

    Raises
    ------
    RulesInvalid
        Listing every problem, each with the rule and field it is about.
    """
    problems = _Problems()
    if not isinstance(document, dict):
        raise RulesInvalid(source, ["the document must be a mapping with version and rules"])
    problems.unknown_fields("document", document, {"version", "rules", "suppress_seconds"})
    if document.get("version") != 1:
        problems.problem("version", "must be 1")
    default_suppress = document.get("suppress_seconds")
    if default_suppress is not None and not _is_int(default_suppress, 0, MAX_SUPPRESS_SECONDS):
        problems.problem("suppress_seconds", f"must be a whole number 0..{MAX_SUPPRESS_SECONDS}")
        default_suppress = None
    entries = document.get("rules")
    if not isinstance(entries, list):
        problems.problem("rules", "must be a list of rules")
        entries = []
    rules: list[Rule] = []
    seen: set[str] = set()
    for index, entry in enumerate(entries):
        rule = _rule(entry, index, default_suppress, problems)
        if rule is None:
            continue
        if rule.name in seen:
            problems.problem(f"rules[{index}].name", f"{rule.name!r} is used by an earlier rule")
        seen.add(rule.name)
        rules.append(rule)
    if problems.lines:
        raise RulesInvalid(source, problems.lines)
    return RuleSet(tuple(rules), source)


def _rule(entry: Any, index: int, default_suppress: Any, problems: _Problems) -> Rule | None:
    where = f"rules[{index}]"
    start = len(problems.lines)
    if not isinstance(entry, dict):
        problems.problem(where, "must be a mapping with name, enabled, severity and kind")
        return None
    name = entry.get("name")
    if isinstance(name, str) and _NAME.match(name):
        where = f"rule {name!r}"
    else:
        problems.problem(f"{where}.name", "must be 1-63 letters, digits, - or _")
    kind_name = entry.get("kind")
    kind = KINDS.get(kind_name) if isinstance(kind_name, str) else None
    if kind is None:
        problems.problem(f"{where}.kind", f"must be one of: {', '.join(sorted(KINDS))}")
    enabled, severity, description = _rule_fields(entry, where, problems)
    suppress = entry.get("suppress_seconds")
    if suppress is not None and not _is_int(suppress, 0, MAX_SUPPRESS_SECONDS):
        problems.problem(
            f"{where}.suppress_seconds", f"must be a whole number 0..{MAX_SUPPRESS_SECONDS}"
        )
        suppress = None
    if kind is None:
        return None
    problems.unknown_fields(where, entry, _RULE_FIELDS | {param.name for param in kind.params})
    params: dict[str, Any] = {}
    for param in kind.params:
        params.update(_param(param, entry, where, problems))
    if len(problems.lines) != start or not isinstance(name, str) or not isinstance(enabled, bool):
        return None
    return Rule(
        name=name,
        enabled=enabled,
        severity=str(severity),
        kind=kind,
        params=params,
        suppress_seconds=int(
            suppress
            if suppress is not None
            else kind.default_suppress_seconds or default_suppress or DEFAULT_SUPPRESS_SECONDS
        ),
        description=description if isinstance(description, str) else "",
    )


def _rule_fields(entry: Mapping[str, Any], where: str, problems: _Problems) -> tuple[Any, Any, Any]:
    """``enabled``, ``severity`` and ``description``, each checked."""
    enabled = entry.get("enabled")
    if not isinstance(enabled, bool):
        problems.problem(f"{where}.enabled", "must be true or false")
    severity = entry.get("severity")
    if severity not in SEVERITIES:
        problems.problem(f"{where}.severity", f"must be one of: {', '.join(SEVERITIES)}")
    description = entry.get("description", "")
    if not isinstance(description, str):
        problems.problem(f"{where}.description", "must be text")
    return enabled, severity, description


def _param(
    param: Param, entry: Mapping[str, Any], where: str, problems: _Problems
) -> dict[str, Any]:
    """``{name: value}`` of one parameter (its default when absent), or ``{}`` after a problem."""
    location = f"{where}.{param.name}"
    if param.name not in entry:
        if param.default is REQUIRED:
            problems.problem(location, f"is required: {param.description}")
            return {}
        return {param.name: param.default}
    value = entry[param.name]
    if param.type in ("int", "float"):
        low = param.low if param.low is not None else float("-inf")
        high = param.high if param.high is not None else float("inf")
        ok = _is_int(value, low, high) if param.type == "int" else _is_number(value, low, high)
        if not ok:
            kind = "a whole number" if param.type == "int" else "a number"
            problems.problem(location, f"must be {kind} {param.low:g}..{param.high:g}")
            return {}
        return {param.name: value}
    if param.type == "bool":
        if not isinstance(value, bool):
            problems.problem(location, "must be true or false")
            return {}
        return {param.name: value}
    if param.type == "choice":
        if value not in param.choices:
            problems.problem(location, f"must be one of: {', '.join(param.choices)}")
            return {}
        return {param.name: value}
    if param.type == "strings":
        return _strings(param, value, location, problems)
    return _hours(value, location, problems, param.name)


def _strings(param: Param, value: Any, location: str, problems: _Problems) -> dict[str, Any]:
    strings = [str(item) for item in problems.string_list(value, location)]
    unknown = [item for item in strings if param.choices and item not in param.choices]
    if unknown:
        # A misspelt code would never match: say so now, not after an alert is missed.
        problems.problem(location, f"unknown value(s) {', '.join(map(repr, unknown))}")
        return {}
    return {param.name: strings}


def _hours(value: Any, location: str, problems: _Problems, name: str) -> dict[str, Any]:
    from chalicelib.policy.criteria.hours import parse as parse_hours

    before = len(problems.lines)
    hours = parse_hours(value, location, problems)
    if hours is None:
        if len(problems.lines) == before:
            problems.problem(location, "must name at least one day")
        return {}
    return {name: hours, f"{name}__document": value}


def _is_int(value: Any, low: float, high: float) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and low <= value <= high


def _is_number(value: Any, low: float, high: float) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and low <= value <= high


def load_rules_text(text: str, source: str) -> RuleSet:
    """Rules from a document's text: JSON, else YAML (when PyYAML is installed: the CLI).

    Raises
    ------
    RulesInvalid
        When the text cannot be read, or its rules are invalid.
    """
    try:
        document = json.loads(text)
    except ValueError:
        try:
            import yaml
        except ImportError:
            raise RulesInvalid(source, ["not JSON (the functions read JSON rules only)"]) from None
        try:
            document = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            at = f" at line {mark.line + 1}" if mark is not None else ""
            raise RulesInvalid(
                source, [f"not valid YAML{at}: {getattr(exc, 'problem', exc)}"]
            ) from None
    return parse_rules(document, source)


def load_rules_file(path: Path) -> RuleSet:
    """Rules from a file.

    Raises
    ------
    RulesInvalid
        When the file cannot be read, or its rules are invalid.
    """
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise RulesInvalid(str(path), [f"cannot be read: {reason}"]) from None
    return load_rules_text(text, str(path))


def default_rules() -> RuleSet:
    """The rules a stage runs when it names none (the shipped ``default_rules.json``)."""
    return load_rules_file(DEFAULT_RULES_JSON)


def _render_default() -> str:
    return json.dumps(load_rules_file(DEFAULT_RULES_YAML).as_document(), indent=2) + "\n"


def main(argv: list[str]) -> int:
    """Regenerate ``default_rules.json`` from ``default_rules.yaml`` (``--check``: compare)."""
    text = _render_default()
    if "--check" in argv:
        if DEFAULT_RULES_JSON.read_text(encoding="utf-8") != text:
            print(f"{DEFAULT_RULES_JSON} is stale: run python -m chalicelib.detect.rules")
            return 1
        return 0
    DEFAULT_RULES_JSON.write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
