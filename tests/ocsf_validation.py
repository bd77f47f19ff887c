"""Validating OCSF records against the OCSF schema, offline (pydantic-ocsf's bundled 1.7.0).

``pydantic-ocsf`` ships the OCSF schema of each release (1.0.0 to 1.7.0) and
builds a pydantic model of every class from it: required attributes, types
and enum values are checked by the model. Its models allow unknown members,
so :func:`validate_record` also walks the record and fails on any member the
class (or, at the top, a profile the record declares) does not define, and
checks the profile attributes' types and enums with the schema's own objects
and dictionary.
"""

from __future__ import annotations

import json
import types
import typing
from pathlib import Path
from typing import Any

import ocsf
from ocsf.v1_7_0 import events as ocsf_events
from ocsf.v1_7_0 import objects as ocsf_objects
from pydantic import BaseModel

SCHEMA_VERSION = "1.7.0"
SCHEMA_FILE = Path(ocsf.__file__).parent / "schemas" / "v1_7_0.json"
CLASSES: dict[int, type[BaseModel]] = {
    4002: ocsf_events.HttpActivity,
    3002: ocsf_events.Authentication,
    3004: ocsf_events.EntityManagement,
    2004: ocsf_events.DetectionFinding,
}


def _schema() -> dict[str, Any]:
    schema = json.loads(SCHEMA_FILE.read_text())
    assert schema["version"] == SCHEMA_VERSION
    return typing.cast("dict[str, Any]", schema)


_SCHEMA = _schema()
_DICTIONARY: dict[str, Any] = _SCHEMA["dictionary"]["attributes"]
_OBJECTS: dict[str, Any] = _SCHEMA["objects"]


def _enum(name: str) -> set[int]:
    return {int(key) for key in _DICTIONARY[name]["enum"]}


# The profile attributes Gatehouse emits (host, security_control) and their checks.
PROFILE_ATTRIBUTES: dict[str, dict[str, Any]] = {
    "host": {"actor": ocsf_objects.Actor},
    "security_control": {
        "action_id": _enum("action_id"),
        "action": str,
        "disposition_id": _enum("disposition_id"),
        "disposition": str,
        "firewall_rule": ocsf_objects.FirewallRule,
    },
}


def validate_record(record: dict[str, Any]) -> list[str]:
    """Every way ``record`` breaks OCSF 1.7.0 (none: it conforms)."""
    model = CLASSES.get(record.get("class_uid"))  # type: ignore[arg-type]
    if model is None:
        return [f"class_uid {record.get('class_uid')} is not one Gatehouse emits"]
    problems: list[str] = []
    try:
        model.model_validate(_without_string_enums(record, problems))
    except Exception as exc:  # pydantic's ValidationError, each problem listed
        problems.append(str(exc))
    profiles = record.get("metadata", {}).get("profiles", [])
    allowed: dict[str, Any] = {}
    for profile in profiles:
        if profile not in PROFILE_ATTRIBUTES:
            problems.append(f"profile {profile!r} is not one this validator checks")
        allowed.update(PROFILE_ATTRIBUTES.get(profile, {}))
    for name, value in record.items():
        if name in model.model_fields and name not in allowed:
            problems.extend(_unknown_members(model.model_fields[name].annotation, value, name))
        elif name in allowed:
            problems.extend(_profile_problems(name, allowed[name], value))
        else:
            problems.append(f"{name}: not an attribute of {model.__name__} or its profiles")
    return problems


def _without_string_enums(record: dict[str, Any], problems: list[str]) -> dict[str, Any]:
    """``record`` without ``http_request.http_method``, checked here against the schema.

    OCSF 1.7.0 declares ``http_method`` a string whose values are an enum
    keyed by the method names; pydantic-ocsf 3.0.0 builds every enum as an
    integer enum and would refuse every method. So that attribute is checked
    against the schema's own enum, and the model checks the rest.
    """
    request = record.get("http_request")
    if not isinstance(request, dict) or "http_method" not in request:
        return record
    methods = set(_OBJECTS["http_request"]["attributes"]["http_method"]["enum"])
    if request["http_method"] not in methods:
        problems.append(f"http_request.http_method: {request['http_method']!r} not in {methods}")
    rest = {name: value for name, value in request.items() if name != "http_method"}
    return {**record, "http_request": rest}


def _profile_problems(name: str, check: Any, value: Any) -> list[str]:
    if isinstance(check, set):
        return [] if value in check else [f"{name}: {value!r} is not one of {sorted(check)}"]
    if check is str:
        return [] if isinstance(value, str) else [f"{name}: not a string"]
    try:
        check.model_validate(value)
    except Exception as exc:
        return [f"{name}: {exc}"]
    return _unknown_members(check, value, name)


def _models_in(annotation: Any) -> list[type[BaseModel]]:
    found: list[type[BaseModel]] = []
    pending = [annotation]
    while pending:
        kind = pending.pop()
        if isinstance(kind, type) and issubclass(kind, BaseModel):
            found.append(kind)
        elif isinstance(kind, types.UnionType) or typing.get_origin(kind) is not None:
            pending.extend(typing.get_args(kind))
    return found


def _unknown_members(annotation: Any, value: Any, path: str) -> list[str]:
    """Members of ``value`` (at ``path``) that its declared object does not define."""
    if path == "unmapped":
        return []  # OCSF's place for what is not mapped: any member
    if isinstance(value, list):
        return [
            problem
            for index, item in enumerate(value)
            for problem in _unknown_members(annotation, item, f"{path}[{index}]")
        ]
    models = _models_in(annotation)
    if not isinstance(value, dict) or not models:
        return []
    model = models[0]
    fields = {field.alias or name: field for name, field in model.model_fields.items()}
    fields.update(model.model_fields)
    problems = []
    for name, member in value.items():
        if name not in fields:
            problems.append(f"{path}.{name}: not an attribute of {model.__name__}")
        else:
            problems.extend(_unknown_members(fields[name].annotation, member, f"{path}.{name}"))
    return problems
