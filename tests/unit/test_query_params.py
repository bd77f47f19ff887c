"""Named-query headers and typed parameter binding (gatehouse.query.params)."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlglot import exp

from gatehouse.query import QueryParamError, load_named_query, named_queries
from gatehouse.query.errors import QueryError, QueryNotReadOnly, QuerySyntaxError, UnknownNamedQuery
from gatehouse.query.params import (
    bind,
    parse_header,
    parse_statement,
    read_named_query,
    typed_literal,
)

HEADER = """-- name: sample
-- description: A sample.
-- param: who varchar   Who
-- param: from timestamp  Start
-- param: n integer   How many
SELECT * FROM audit_events WHERE principal.email = :who AND event_time >= :from LIMIT 10
"""


def athena(tree: exp.Expression) -> str:
    return tree.sql(dialect="athena")


def test_header_fields_and_params() -> None:
    fields, params = parse_header(HEADER)
    assert fields == {"name": "sample", "description": "A sample."}
    assert [(p.name, p.type, p.help) for p in params] == [
        ("who", "varchar", "Who"),
        ("from", "timestamp", "Start"),
        ("n", "integer", "How many"),
    ]


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("-- param: x uuid  bad type", "allowed: varchar"),
        ("-- param: 1x varchar", "bad param line"),
        ("-- param: x", "bad param line"),
        ("-- param: x varchar\n-- param: x bigint", "declared twice"),
    ],
)
def test_bad_param_lines_are_refused(line: str, message: str) -> None:
    with pytest.raises(QueryParamError, match=message):
        parse_header(line + "\nSELECT 1")


def test_keyword_placeholders_bind_as_typed_literals() -> None:
    # :from and :to are keywords to sqlglot; they still bind.
    tree = parse_statement("SELECT * FROM t WHERE a >= :from AND a < :to AND b = ':from'")
    bound = bind(
        tree,
        {"from": "timestamp", "to": "timestamp"},
        {"from": "2026-03-10", "to": "2026-03-10T12:30:00.5Z"},
    )
    assert athena(bound) == (
        "SELECT * FROM t WHERE a >= CAST('2026-03-10 00:00:00.000' AS TIMESTAMP) "
        "AND a < CAST('2026-03-10 12:30:00.500' AS TIMESTAMP) AND b = ':from'"
    )


def test_a_value_cannot_change_the_query_shape() -> None:
    tree = parse_statement("SELECT * FROM t WHERE who = :who")
    bound = bind(tree, {"who": "varchar"}, {"who": "x' OR '1'='1"})
    assert athena(bound) == "SELECT * FROM t WHERE who = 'x'' OR ''1''=''1'"
    assert len(list(bound.find_all(exp.Or))) == 0


@pytest.mark.parametrize(
    ("kind", "value", "sql"),
    [
        ("varchar", "alice", "'alice'"),
        ("bigint", "-9223372036854775808", "CAST(-9223372036854775808 AS BIGINT)"),
        ("integer", "+7", "CAST(7 AS INTEGER)"),
        ("double", "1.5", "CAST(1.5 AS DOUBLE)"),
        ("boolean", "TRUE", "TRUE"),
        ("timestamp", "2026-03-10 10:00", "CAST('2026-03-10 10:00:00.000' AS TIMESTAMP)"),
        ("timestamp", "2026-03-10T10:00:01+00:00", "CAST('2026-03-10 10:00:01.000' AS TIMESTAMP)"),
    ],
)
def test_typed_literals(kind: str, value: str, sql: str) -> None:
    assert typed_literal("p", kind, value).sql(dialect="athena") == sql


@pytest.mark.parametrize(
    ("kind", "value", "message"),
    [
        ("integer", "2147483648", "out of range"),
        ("bigint", "1.0", "not an integer"),
        ("bigint", "1; DROP TABLE x", "not an integer"),
        ("double", "nan", "not finite"),
        ("double", "one", "not a number"),
        ("boolean", "yes", "true or false"),
        ("timestamp", "2026-02-30", "day is out of range"),
        ("timestamp", "2026-03-10 10:00:00+02:00", "UTC"),
        ("timestamp", "yesterday", "not 'YYYY-MM-DD"),
        ("timestamp", "2026-03-10 10:00:00.1234", "not 'YYYY-MM-DD"),
        ("varchar", "a\x00b", "NUL"),
    ],
)
def test_ill_typed_values_are_refused(kind: str, value: str, message: str) -> None:
    with pytest.raises(QueryParamError, match=message):
        typed_literal("p", kind, value)


def test_unknown_and_missing_params() -> None:
    tree = parse_statement("SELECT :a, :b")
    with pytest.raises(QueryParamError, match=r"unknown param\(s\) c \(this query takes: a, b\)"):
        bind(tree, {"a": "varchar", "b": "varchar"}, {"a": "1", "b": "2", "c": "3"})
    with pytest.raises(QueryParamError, match=r"missing param\(s\): b"):
        bind(tree, {"a": "varchar", "b": "varchar"}, {"a": "1"})


def test_ad_hoc_placeholders_are_varchar() -> None:
    assert athena(bind(parse_statement("SELECT :a"), None, {"a": "7"})) == "SELECT '7'"


@pytest.mark.parametrize(
    "sql",
    [
        "DROP TABLE audit_events",
        "INSERT INTO t SELECT 1",
        "CREATE TABLE x AS SELECT 1",
        "DELETE FROM t",
    ],
)
def test_statements_that_change_things_are_refused(sql: str) -> None:
    from gatehouse.query.params import require_query

    with pytest.raises(QueryNotReadOnly, match="read-only"):
        require_query(parse_statement(sql))


@pytest.mark.parametrize("sql", ["SELECT 1; SELECT 2", "", "SELEC 1 FROM", "SELECT ?"])
def test_not_one_parsable_statement(sql: str) -> None:
    with pytest.raises(QuerySyntaxError):
        bind(parse_statement(sql), None, {})


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / f"{name}.sql"
    path.write_text(text)
    return path


def test_named_query_files_are_checked(tmp_path: Path) -> None:
    query = read_named_query(write(tmp_path, "sample", HEADER.replace(" LIMIT 10", " LIMIT :n")))
    assert query.param_types == {"who": "varchar", "from": "timestamp", "n": "integer"}
    with pytest.raises(QueryError, match="name must be 'other'"):
        read_named_query(write(tmp_path, "other", HEADER))
    with pytest.raises(QueryParamError, match="never used: n"):
        read_named_query(write(tmp_path, "sample", HEADER))
    undeclared = HEADER.replace("-- param: who varchar   Who\n", "").replace(
        " LIMIT 10", " LIMIT :n"
    )
    with pytest.raises(QueryParamError, match="without a '-- param:' line: who"):
        read_named_query(write(tmp_path, "sample", undeclared))
    with pytest.raises(QueryNotReadOnly):
        read_named_query(
            write(tmp_path, "sample", "-- name: sample\n-- description: d\nDROP TABLE t")
        )


def test_unknown_named_query_lists_the_known_ones(tmp_path: Path) -> None:
    write(tmp_path, "one", "-- name: one\n-- description: d\nSELECT 1")
    with pytest.raises(UnknownNamedQuery, match=r"no named query 'two' \(known: one\)"):
        load_named_query("two", tmp_path)
    with pytest.raises(UnknownNamedQuery):
        load_named_query("../one", tmp_path)
    assert load_named_query("one", tmp_path).sql.endswith("SELECT 1")


def test_every_shipped_named_query_loads() -> None:
    queries = named_queries()
    assert [query.name for query in queries] == sorted(query.name for query in queries)
    for query in queries:
        assert query.description
        assert {param.type for param in query.params} <= {
            "varchar",
            "timestamp",
            "bigint",
            "integer",
            "double",
            "boolean",
        }


@pytest.mark.parametrize(
    ("kind", "value", "message"),
    [
        ("varchar", "a\udc80b", "lone surrogate"),
        ("varchar", "\ud800", "lone surrogate"),
        ("bigint", "\u0661\u0662", "not an integer"),
        ("integer", "\uff11", "not an integer"),
        ("double", "\u0661.5", "not a number"),
        ("double", "1_000", "not a number"),
        ("timestamp", "\uff12\uff10\uff12\uff16-01-01", "not 'YYYY-MM-DD"),
        ("timestamp", "2026-01-01 \u0661\u0660:00", "not 'YYYY-MM-DD"),
    ],
    ids=repr,
)
def test_non_ascii_digits_and_lone_surrogates_are_refused(
    kind: str, value: str, message: str
) -> None:
    with pytest.raises(QueryParamError, match=message):
        typed_literal("p", kind, value)


def test_early_years_are_zero_padded() -> None:
    literal = typed_literal("p", "timestamp", "0001-01-02 03:04:05")
    assert literal.sql(dialect="athena") == "CAST('0001-01-02 03:04:05.000' AS TIMESTAMP)"


def test_sync_key_patterns_take_ascii_digits_only() -> None:
    from gatehouse.query.sync import _EVENT_KEY, _TRAIL_KEY

    assert _EVENT_KEY.fullmatch("audit/v1/events/dt=2026-03-02/hour=09/x.ndjson.gz")
    assert not _EVENT_KEY.fullmatch("audit/v1/events/dt=2026-03-02/hour=\u0660\u0669/x.ndjson.gz")
    assert not _EVENT_KEY.fullmatch("audit/v1/events/dt=\uff12026-03-02/hour=09/x.ndjson.gz")
    trail = "AWSLogs/123456789012/CloudTrail/us-east-1/2026/03/02/x.json.gz"
    assert _TRAIL_KEY.fullmatch(trail)
    assert not _TRAIL_KEY.fullmatch(trail.replace("/02/", "/0\u0662/"))
