"""Records made to fit their class's Parquet schema, nothing lost (``fit_record``).

A stored event may carry any JSON its emitter sent; the continuous export must
write every record, not stop at the first value its column cannot hold. What
does not fit is null in its column and kept, as JSON, in ``unmapped``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from chalicelib.ocsf.common import LedgerPosition
from chalicelib.ocsf.mapping import to_ocsf
from chalicelib.ocsf.parquet import SCHEMAS, UNFIT_PREFIX, fit_record, write_parquet
from tests.unit.test_parquet_writer import read_back

GOLDEN = Path(__file__).resolve().parents[1] / "fixtures" / "audit_wire" / "golden.json"
POSITION = LedgerPosition(41, "example.com/log", 64, "ab" * 32, "audit/v1/events/k.ndjson.gz")


def mapped(kind: str, change: dict[str, Any] | None = None) -> dict[str, Any]:
    """The golden ``kind`` event, changed at dotted paths, mapped to OCSF."""
    event = json.loads(json.loads(GOLDEN.read_text())[kind])
    for dotted, value in (change or {}).items():
        *parents, name = dotted.split(".")
        place = event
        for parent in parents:
            place = place.setdefault(parent, {})
        place[name] = value
    return to_ocsf(event, POSITION)


def golden_kinds() -> list[str]:
    return sorted(json.loads(GOLDEN.read_text()))


@pytest.mark.parametrize("kind", golden_kinds())
def test_a_record_the_mapping_wrote_fits_as_it_is(kind: str) -> None:
    record = mapped(kind)

    assert fit_record(record["class_uid"], record) == record


HOSTILE = {
    "number as text": ({"time": "1765180800000"}, "time", '"1765180800000"'),
    "text as number": ({"message": 42}, "message", "42"),
    "bool as number": ({"severity_id": True}, "severity_id", "true"),
    "past int32": ({"activity_id": 2**31}, "activity_id", str(2**31)),
    "past int64": ({"metadata": {"sequence": 2**63}}, "metadata.sequence", str(2**63)),
    "list where a struct is": ({"metadata": ["x"]}, "metadata", '["x"]'),
    "struct where a list is": (
        {"metadata": {"profiles": {"a": 1}}},
        "metadata.profiles",
        '{"a": 1}',
    ),
    "element of the wrong type": (
        {"metadata": {"profiles": ["ok", 3]}},
        "metadata.profiles[1]",
        "3",
    ),
    "member the schema lacks": ({"surprise": {"x": 1}}, "surprise", '{"x": 1}'),
    "nested member the schema lacks": (
        {"metadata": {"product": {"colour": "red"}}},
        "metadata.product.colour",
        '"red"',
    ),
}


@pytest.mark.parametrize(("change", "path", "kept"), HOSTILE.values(), ids=HOSTILE.keys())
def test_what_does_not_fit_is_null_in_its_column_and_kept_in_unmapped(
    change: dict[str, Any], path: str, kept: str
) -> None:
    record = mapped("decision")
    record.update({name: _merged(record.get(name), value) for name, value in change.items()})

    fitted = fit_record(record["class_uid"], record)

    assert fitted["unmapped"][UNFIT_PREFIX + path] == kept
    # It writes, and reads back with the value kept where a SIEM finds it.
    [row] = read_back(write_parquet(record["class_uid"], [fitted]))
    assert row["unmapped"][UNFIT_PREFIX + path] == kept
    assert row["type_uid"] == record["type_uid"]  # the rest is as mapped


def _merged(old: Any, new: Any) -> Any:
    if isinstance(old, dict) and isinstance(new, dict):
        return {**old, **{k: _merged(old.get(k), v) for k, v in new.items()}}
    return new


def test_text_and_map_keys_are_made_valid_unicode() -> None:
    record = mapped("decision")
    record["message"] = "bad \ud800 text"
    record["unmapped"] = {**(record.get("unmapped") or {}), "key \udc80": "value \ud800", "n": 5}

    fitted = fit_record(record["class_uid"], record)

    assert fitted["message"] == "bad \ufffd text"
    assert fitted["unmapped"]["key \ufffd"] == "value \ufffd"
    assert fitted["unmapped"]["n"] == "5"  # a map holds text: the JSON of the value
    [row] = read_back(write_parquet(record["class_uid"], [fitted]))
    assert row["message"] == "bad \ufffd text"


def test_every_class_has_a_schema_to_fit() -> None:
    with pytest.raises(KeyError):
        fit_record(9999, {})
    assert sorted(SCHEMAS) == [2004, 3002, 3004, 4002]
