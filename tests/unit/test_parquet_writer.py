"""The pure-Python Parquet writer: every file read back by DuckDB and compared, value for value.

Round trips are table-driven over a schema that has every shape the OCSF
schemas use (and a list of lists besides): nulls at every depth, empty and
null lists, lists of structs holding lists, maps, unicode, integer bounds,
booleans, zero rows, many rows (long and short runs of levels, so both the
RLE and the bit-packed halves of the hybrid encoding), several row groups,
both codecs. Random records of the HTTP Activity schema and of that schema
round-trip as a property. Wrong types are refused, naming the column.
"""

from __future__ import annotations

import json
import random
import tempfile
from pathlib import Path
from typing import Any

import duckdb
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chalicelib.ocsf import LedgerPosition, to_ocsf
from chalicelib.ocsf.parquet import SCHEMAS, write_parquet
from chalicelib.ocsf.parquet_writer import (
    BOOLEAN,
    INT32,
    INT64,
    MAX_STATISTIC_BYTES,
    STRING,
    STRING_MAP,
    Codec,
    ColumnType,
    ListOf,
    Primitive,
    Struct,
    struct,
    write_table,
)

SCHEMA: dict[str, ColumnType] = {
    "s": STRING,
    "i": INT32,
    "l": INT64,
    "b": BOOLEAN,
    "tags": ListOf(STRING),
    "nested": struct(name=STRING, inner=struct(n=INT32, flags=ListOf(BOOLEAN))),
    "items": ListOf(struct(uid=STRING, values=ListOf(INT64), sub=struct(x=STRING))),
    "grid": ListOf(ListOf(INT32)),
    "attrs": STRING_MAP,
}
CODECS: list[Codec] = ["gzip", "uncompressed"]
GOLDEN = Path(__file__).resolve().parents[1] / "fixtures" / "audit_wire" / "golden.json"


def read_back(payload: bytes, sql: str = "SELECT * FROM read_parquet(?)") -> list[dict[str, Any]]:
    """The rows of a Parquet file as DuckDB reads them (a struct a dict, a map a dict)."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "t.parquet"
        path.write_bytes(payload)
        connection = duckdb.connect()
        try:
            cursor = connection.execute(sql, [str(path)])
            names = [column[0] for column in cursor.description]
            return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]
        finally:
            connection.close()


def filled(kind: ColumnType, value: Any) -> Any:
    """``value`` as a reader gives it back: every member of a present struct there (null or not)."""
    if value is None or isinstance(kind, Primitive):
        return value
    if isinstance(kind, Struct):
        return {name: filled(member, value.get(name)) for name, member in kind.fields}
    if isinstance(kind, ListOf):
        return [filled(kind.element, item) for item in value]
    return dict(value)


def expected(schema: dict[str, ColumnType], rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [filled(struct(**schema), row) for row in rows]


def round_trip(
    schema: dict[str, ColumnType], rows: list[dict[str, Any]], **options: Any
) -> list[dict[str, Any]]:
    return read_back(write_table(schema, rows, **options))


CASES: dict[str, list[dict[str, Any]]] = {
    "all null, absent or None": [{}, dict.fromkeys(SCHEMA)],
    "nulls at every depth": [
        {"nested": None},
        {"nested": {}},
        {"nested": {"name": None, "inner": None}},
        {"nested": {"inner": {}}},
        {"nested": {"inner": {"n": None, "flags": None}}},
        {"nested": {"name": "x", "inner": {"n": 0, "flags": [None]}}},
    ],
    "empty list, null list, null element, empty string": [
        {"tags": []},
        {"tags": None},
        {"tags": [None]},
        {"tags": [""]},
        {"tags": ["a", None, "", "b"]},
        {"tags": [None, None]},
    ],
    "lists of structs with lists in them": [
        {"items": [{"uid": "a", "values": [1, 2, 3]}, None, {}, {"values": []}]},
        {"items": [{"values": [None]}, {"values": None, "sub": {}}, {"sub": {"x": "y"}}]},
        {"items": []},
        {"items": [None]},
        {"items": None},
        {"items": [{"uid": "only"}]},
    ],
    "lists of lists": [
        {"grid": [[1, 2], [], None, [None, 3]]},
        {"grid": [[]]},
        {"grid": [None]},
        {"grid": []},
        {"grid": None},
    ],
    "maps": [
        {"attrs": {}},
        {"attrs": None},
        {"attrs": {"one": "1"}},
        {"attrs": {"a": "x", "b": None, "c": "", "gatehouse.ledger.root": "ab" * 32}},
        {"attrs": {"ключ": "значение", "": "empty key"}},
    ],
    "unicode and empty strings": [
        {"s": ""},
        {"s": "héllo wörld"},
        {"s": "日本語のテキスト"},
        {"s": "\U0001f986 duck, \u200d joiner, \ufffd replacement"},
        {"s": "nul \x00 inside, tab \t, newline \n"},
        {"s": "x" * 100_000},
    ],
    "integer bounds": [
        {"i": -(2**31), "l": -(2**63)},
        {"i": 2**31 - 1, "l": 2**63 - 1},
        {"i": 0, "l": 0},
        {"i": -1, "l": -1},
        {"i": None, "l": 1_764_346_512_000},
    ],
    "booleans": [{"b": True}, {"b": False}, {"b": None}, {"b": True}] * 5,
    "one full row": [
        {
            "s": "s",
            "i": 7,
            "l": 8,
            "b": False,
            "tags": ["t"],
            "nested": {"name": "n", "inner": {"n": 1, "flags": [True, False, None]}},
            "items": [{"uid": "u", "values": [1, None], "sub": {"x": "x"}}],
            "grid": [[1]],
            "attrs": {"k": "v"},
        }
    ],
    "zero rows": [],
}


@pytest.mark.parametrize("codec", CODECS)
@pytest.mark.parametrize("rows", CASES.values(), ids=CASES.keys())
def test_rows_round_trip_exactly(rows: list[dict[str, Any]], codec: Codec) -> None:
    assert round_trip(SCHEMA, rows, codec=codec) == expected(SCHEMA, rows)


def varied_row(rng: random.Random) -> dict[str, Any]:
    """A row where each column is null, empty or filled at random (short runs of levels)."""

    def maybe(value: Any) -> Any:
        return None if rng.random() < 0.3 else value

    def some(make: Any, most: int = 3) -> list[Any]:
        return [maybe(make()) for _ in range(rng.randint(0, most))]

    return {
        "s": maybe(rng.choice(["", "a", "é", "longer text"])),
        "i": maybe(rng.randint(-(2**31), 2**31 - 1)),
        "l": maybe(rng.randint(-(2**63), 2**63 - 1)),
        "b": maybe(rng.random() < 0.5),
        "tags": maybe(some(lambda: str(rng.random()))),
        "nested": maybe({"inner": maybe({"flags": maybe(some(lambda: rng.random() < 0.5))})}),
        "items": maybe(
            some(lambda: {"uid": maybe("u"), "values": maybe(some(lambda: rng.randint(-5, 5)))})
        ),
        "grid": maybe(some(lambda: maybe(some(lambda: rng.randint(0, 9))))),
        "attrs": maybe({str(k): maybe(str(k)) for k in range(rng.randint(0, 3))}),
    }


@pytest.mark.parametrize("codec", CODECS)
def test_many_rows_with_long_and_short_runs_round_trip(codec: Codec) -> None:
    rng = random.Random(20261208)
    rows = [varied_row(rng) for _ in range(3000)]
    # Long runs too: blocks of all-null rows and of identical rows, of odd lengths, so that
    # RLE runs start inside bit-packed groups of 8.
    rows += (
        [{}] * 1001 + [rows[1]] * 13 + [{"tags": []}] * 9 + [varied_row(rng) for _ in range(977)]
    )
    assert len(rows) == 5000

    assert round_trip(SCHEMA, rows, codec=codec) == expected(SCHEMA, rows)


def test_several_row_groups_read_back_as_one_table_in_order() -> None:
    rng = random.Random(7)
    rows = [varied_row(rng) for _ in range(50)]
    payload = write_table(SCHEMA, rows, row_group_rows=7)

    assert read_back(payload) == expected(SCHEMA, rows)
    groups = read_back(payload, "SELECT DISTINCT row_group_id FROM parquet_metadata(?)")
    assert len(groups) == 8  # 7 of 7 rows, one of 1


def test_the_file_declares_its_columns_the_codec_and_statistics() -> None:
    rows = [{"i": 5, "s": "b", "tags": ["x"]}, {"i": -3, "s": "a"}, {}]
    payload = write_table(SCHEMA, rows)

    assert payload[:4] == payload[-4:] == b"PAR1"
    meta = read_back(payload, "SELECT * FROM parquet_metadata(?)")
    by_path = {row["path_in_schema"]: row for row in meta}
    assert {row["compression"] for row in meta} == {"GZIP"}
    assert (by_path["i"]["stats_min_value"], by_path["i"]["stats_max_value"]) == ("-3", "5")
    assert (by_path["s"]["stats_min_value"], by_path["s"]["stats_max_value"]) == ("a", "b")
    assert by_path["i"]["stats_null_count"] == 1
    assert "tags, list, element" in by_path
    created = read_back(payload, "SELECT created_by FROM parquet_file_metadata(?)")
    assert created == [{"created_by": "gatehouse"}]
    # A reader filtering on the statistics still finds each row.
    assert read_back(payload, "SELECT i FROM read_parquet(?) WHERE s = 'a'") == [{"i": -3}]


def test_long_strings_keep_no_min_and_max_and_the_row_group_its_ordinal() -> None:
    long = "z" * 100_000
    payload = write_table(SCHEMA, [{"s": long}, {"s": "a"}], row_group_rows=1, codec="uncompressed")
    just_over = write_table(SCHEMA, [{"s": "z" * (MAX_STATISTIC_BYTES + 1)}])

    meta = read_back(payload, "SELECT * FROM parquet_metadata(?)")
    strings = [row for row in meta if row["path_in_schema"] == "s"]
    # The group holding the long string has no min or max; the other has both.
    assert [(row["stats_min_value"], row["stats_max_value"]) for row in strings] == [
        (None, None),
        ("a", "a"),
    ]
    assert len(payload) < len(long) + 10_000  # the value once, not three times
    [over] = [row for row in read_back(just_over, "SELECT * FROM parquet_metadata(?)")
              if row["path_in_schema"] == "s"]  # fmt: skip
    assert over["stats_max_value"] is None
    assert read_back(payload, "SELECT s FROM read_parquet(?) WHERE s = 'a'") == [{"s": "a"}]


def duckdb_type(kind: ColumnType) -> str:
    if isinstance(kind, Primitive):
        return kind.value
    if isinstance(kind, Struct):
        members = ", ".join(f'"{name}" {duckdb_type(member)}' for name, member in kind.fields)
        return f"STRUCT({members})"
    if isinstance(kind, ListOf):
        return f"{duckdb_type(kind.element)}[]"
    return "MAP(VARCHAR, VARCHAR)"


@pytest.mark.parametrize("class_uid", sorted(SCHEMAS))
def test_every_class_file_has_exactly_the_declared_columns_even_when_empty(class_uid: int) -> None:
    schema = SCHEMAS[class_uid]
    declared = ", ".join(f'"{name}" {duckdb_type(kind)}' for name, kind in schema.items())
    connection = duckdb.connect()
    try:
        connection.execute(f"CREATE TABLE declared ({declared})")
        want = connection.execute("DESCRIBE declared").fetchall()
    finally:
        connection.close()

    for rows in ([], [{"class_uid": class_uid}]):
        described = read_back(write_parquet(class_uid, rows), "DESCRIBE FROM read_parquet(?)")
        got = [(row["column_name"], row["column_type"]) for row in described]
        assert got == [(row[0], row[1]) for row in want]


def golden_records() -> dict[int, list[dict[str, Any]]]:
    by_class: dict[int, list[dict[str, Any]]] = {}
    for sequence, line in enumerate(json.loads(GOLDEN.read_text()).values()):
        position = LedgerPosition(sequence, "example.com/log", sequence + 1, "ab" * 32, "obj")
        record = to_ocsf(json.loads(line), position)
        by_class.setdefault(record["class_uid"], []).append(record)
    return by_class


def test_every_golden_record_of_every_class_round_trips_exactly() -> None:
    by_class = golden_records()
    assert set(by_class) == set(SCHEMAS)
    for class_uid, records in by_class.items():
        schema = SCHEMAS[class_uid]
        assert read_back(write_parquet(class_uid, records)) == expected(schema, records)


def test_write_parquet_refuses_an_unknown_class_another_class_and_an_unknown_member() -> None:
    record = golden_records()[4002][0]
    with pytest.raises(KeyError):
        write_parquet(9999, [record])
    with pytest.raises(ValueError, match="of class 3002"):
        write_parquet(3002, [record])
    # A member the schema lacks is refused, never dropped from the file.
    with pytest.raises(ValueError, match=r"row 1: http_request: no column for member\(s\) body"):
        write_parquet(4002, [record, {**record, "http_request": {"body": "x"}}])
    with pytest.raises(ValueError, match=r"row 0: the record: no column for member\(s\) extra"):
        write_parquet(4002, [{**record, "extra": 1}])


WRONG: dict[str, tuple[Any, str]] = {
    "int for a string": ({"s": 1}, "s: expected a string, got int"),
    "bool for an int": ({"i": True}, "i: expected an integer, got bool"),
    "float for a bigint": ({"l": 1.5}, "l: expected an integer, got float"),
    "string for an int": ({"i": "1"}, "i: expected an integer, got str"),
    "int32 too big": ({"i": 2**31}, "i: 2147483648 does not fit in 32 bits"),
    "int32 too small": ({"i": -(2**31) - 1}, "i: -2147483649 does not fit in 32 bits"),
    "int64 too big": ({"l": 2**63}, "l: 9223372036854775808 does not fit in 64 bits"),
    "int for a boolean": ({"b": 1}, "b: expected a boolean, got int"),
    "string for a list": ({"tags": "abc"}, "tags: expected a list, got str"),
    "wrong element": ({"tags": [1]}, r"tags\[\]: expected a string, got int"),
    "list for a struct": ({"nested": []}, "nested: expected an object, got list"),
    "unknown struct member": ({"nested": {"oops": 1}}, r"nested: no column for member\(s\) oops"),
    "unknown column": ({"unknown": 1}, r"the record: no column for member\(s\) unknown"),
    "deep wrong type": (
        {"items": [{"values": [1, "x"]}]},
        r"items\[\]\.values\[\]: expected an integer, got str",
    ),
    "deep unknown member": ({"nested": {"inner": {"m": 1}}}, r"nested\.inner: no column .* m"),
    "list for a map": ({"attrs": ["k"]}, "attrs: expected an object, got list"),
    "int map value": ({"attrs": {"k": 1}}, r"attrs\{\}: expected a string, got int"),
    "lone surrogate": ({"s": "\ud800"}, "s: not valid Unicode"),
    "not an object": ("row", "the record: expected an object, got str"),
    "null record": (None, "a record is an object, not null"),
}


@pytest.mark.parametrize(("row", "message"), WRONG.values(), ids=WRONG.keys())
def test_a_value_of_the_wrong_type_is_refused_naming_row_and_column(row: Any, message: str) -> None:
    with pytest.raises(ValueError, match=f"^row 1: {message}"):
        write_table(SCHEMA, [{}, row])


def test_options_are_checked() -> None:
    with pytest.raises(ValueError, match="row_group_rows"):
        write_table(SCHEMA, [], row_group_rows=0)
    with pytest.raises(ValueError, match="unknown codec"):
        write_table(SCHEMA, [], codec="zstd")  # type: ignore[arg-type]


# Any Unicode text Parquet can hold as UTF-8 (no lone surrogates).
_TEXT = st.text(st.characters(blacklist_categories=("Cs",)), max_size=12)


def values_of(kind: ColumnType) -> st.SearchStrategy[Any]:
    """Any value of ``kind`` (or null); a struct's members may be missing."""
    if kind is STRING:
        value: st.SearchStrategy[Any] = _TEXT
    elif kind is INT32:
        value = st.integers(-(2**31), 2**31 - 1)
    elif kind is INT64:
        value = st.integers(-(2**63), 2**63 - 1)
    elif kind is BOOLEAN:
        value = st.booleans()
    elif isinstance(kind, Struct):
        value = st.fixed_dictionaries({}, optional={n: values_of(m) for n, m in kind.fields})
    elif isinstance(kind, ListOf):
        value = st.lists(values_of(kind.element), max_size=3)
    else:
        value = st.dictionaries(_TEXT, st.none() | _TEXT, max_size=3)
    return st.none() | value


def rows_of(schema: dict[str, ColumnType]) -> st.SearchStrategy[list[dict[str, Any]]]:
    row = st.fixed_dictionaries({}, optional={n: values_of(m) for n, m in schema.items()})
    return st.lists(row, max_size=12)


@settings(max_examples=60, deadline=None)
@given(rows=rows_of(SCHEMAS[4002]), codec=st.sampled_from(CODECS))
def test_random_http_activity_records_round_trip(rows: list[dict[str, Any]], codec: Codec) -> None:
    assert round_trip(SCHEMAS[4002], rows, codec=codec) == expected(SCHEMAS[4002], rows)


@settings(max_examples=60, deadline=None)
@given(rows=rows_of(SCHEMA))
def test_random_records_of_every_shape_round_trip(rows: list[dict[str, Any]]) -> None:
    assert round_trip(SCHEMA, rows) == expected(SCHEMA, rows)
