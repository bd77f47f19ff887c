"""Athena SQL on DuckDB: each correction gives Athena's answer, and is needed.

Every case states the Athena (Trino) answer worked out by hand from Trino's
documented semantics (the comment says why), runs the SQL through
:func:`gatehouse.query.dialect.to_duckdb` on DuckDB, and compares. The second
table runs the same constructs through sqlglot alone and shows DuckDB's
different answer: the correction is necessary, not decoration.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import pytest

from gatehouse.query.dialect import (
    java_replacement_to_re2,
    joda_to_strftime,
    plain_duckdb,
    to_duckdb,
)
from gatehouse.query.errors import NotTranslatable, QueryFailed
from gatehouse.query.local import connect, fetch
from gatehouse.query.params import parse_statement

if TYPE_CHECKING:
    import duckdb


@pytest.fixture(scope="module")
def con() -> Iterator[duckdb.DuckDBPyConnection]:
    connection = connect()
    yield connection
    connection.close()


def corrected(con: duckdb.DuckDBPyConnection, sql: str) -> Any:
    _, rows = fetch(con, to_duckdb(parse_statement(sql)))
    return rows[0][0]


def plain(con: duckdb.DuckDBPyConnection, sql: str) -> Any:
    try:
        _, rows = fetch(con, plain_duckdb(sql))
    except QueryFailed as exc:
        return exc
    return rows[0][0]


T = "TIMESTAMP"
# (Athena SQL, Athena's answer, why)
CASES: list[tuple[str, Any, str]] = [
    # date_diff counts whole units elapsed, truncated toward zero (Joda getDifference).
    (
        f"SELECT date_diff('day', {T} '2026-01-01 23:00:00', {T} '2026-01-02 01:00:00')",
        0,
        "2 h is no whole day",
    ),
    (
        f"SELECT date_diff('hour', {T} '2026-01-01 10:59:00', {T} '2026-01-01 11:01:00')",
        0,
        "2 min is no hour",
    ),
    (
        f"SELECT date_diff('day', {T} '2026-01-02 01:00:00', {T} '2026-01-01 23:00:00')",
        0,
        "truncated toward zero",
    ),
    (
        f"SELECT date_diff('day', {T} '2026-01-01 10:00:00', {T} '2026-01-03 09:59:59')",
        1,
        "1 d 23:59:59",
    ),
    (
        "SELECT date_diff('month', DATE '2026-01-15', DATE '2026-02-14')",
        0,
        "one day short of a month",
    ),
    (
        "SELECT date_diff('month', DATE '2026-01-31', DATE '2026-02-28')",
        1,
        "Joda: month end counts",
    ),
    (
        f"SELECT date_diff('second', {T} '2026-01-01 10:00:00.900', {T} '2026-01-01 10:00:01.100')",
        0,
        "200 ms",
    ),
    # Integer division truncates toward zero; the type stays integer.
    ("SELECT 7 / 2", 3, "int / int"),
    ("SELECT -7 / 2", -3, "toward zero, not floor (-4)"),
    ("SELECT CAST(7 AS bigint) / -2", -3, "bigint"),
    ("SELECT length('abcde') / 2", 2, "a bigint function result"),
    ("SELECT count(*) / 2 FROM (VALUES 1, 2, 3) AS t(x)", 1, "count is bigint"),
    ("SELECT 7 % 3", 1, "modulo"),
    ("SELECT 7.0 / 2", Decimal("3.5"), "decimal(2,1) / integer"),
    ("SELECT 1.0 / 3", Decimal("0.3"), "decimal: scale max(1, 0) = 1, rounded"),
    ("SELECT 2.00 / 3", Decimal("0.67"), "scale 2, half up"),
    ("SELECT CAST(7 AS double) / 2", 3.5, "double division"),
    # json_extract_scalar: NULL for objects, arrays, invalid JSON.
    ("""SELECT json_extract_scalar('{"a":{"b":1}}', '$.a')""", None, "an object is not a scalar"),
    ("""SELECT json_extract_scalar('{"a":[1,2]}', '$.a')""", None, "an array is not a scalar"),
    ("""SELECT json_extract_scalar('{"a":"x"}', '$.a')""", "x", "a string"),
    ("""SELECT json_extract_scalar('{"a":7}', '$.a')""", "7", "a number, as text"),
    ("""SELECT json_extract_scalar('{"a":true}', '$.a')""", "true", "a boolean, as text"),
    ("""SELECT json_extract_scalar('{"a":null}', '$.a')""", None, "JSON null"),
    ("""SELECT json_extract_scalar('not json', '$.a')""", None, "invalid JSON: NULL, not an error"),
    ("""SELECT json_extract('not json', '$.a')""", None, "invalid JSON: NULL, not an error"),
    # regexp_extract: NULL when nothing matches.
    ("SELECT regexp_extract('abc', 'x')", None, "no match"),
    ("SELECT regexp_extract('abc', 'x(y)', 1)", None, "no match, group asked"),
    ("SELECT regexp_extract('a1b22', '\\d+')", "1", "first match"),
    ("SELECT regexp_extract('k=v', '(\\w)=(\\w)', 2)", "v", "group 2"),
    # regexp_replace: Java replacement syntax ($1; \$ is a literal dollar); replaces all.
    ("SELECT regexp_replace('a-b-c', '(\\w)-', '$1+')", "a+b+c", "$1 is group 1, every match"),
    ("SELECT regexp_replace('ab', '(a)', '\\$1')", "$1b", "\\$ is a literal dollar"),
    ("SELECT regexp_replace('ab', 'b', '\\\\')", "a\\", "\\\\ is a literal backslash"),
    ("SELECT regexp_replace('a1b2', '\\d')", "ab", "no replacement: removed"),
    # Joda patterns.
    (
        f"SELECT format_datetime({T} '2026-03-05 07:08:09.123', 'yyyy-MM-dd''T''HH:mm:ss.SSS')",
        "2026-03-05T07:08:09.123",
        "quoted T, millis",
    ),
    (
        f"SELECT format_datetime({T} '2026-03-05 07:08:09', 'd/M/yy h:mm a')",
        "5/3/26 7:08 AM",
        "unpadded fields",
    ),
    (
        f"SELECT format_datetime({T} '2026-03-05 07:08:09', 'EEE, dd MMM yyyy')",
        "Thu, 05 Mar 2026",
        "names",
    ),
    (
        "SELECT parse_datetime('2026-03-05 07:08', 'yyyy-MM-dd HH:mm')",
        datetime(2026, 3, 5, 7, 8, tzinfo=UTC),
        "timestamp with time zone, UTC",
    ),
    # MySQL-style date_format / date_parse (sqlglot maps these; checked here).
    (
        f"SELECT date_format({T} '2026-03-05 07:08:09.123', '%Y-%m-%d %H:%i:%s')",
        "2026-03-05 07:08:09",
        "%i minutes, %s seconds",
    ),
    (
        f"SELECT date_format({T} '2026-03-05 17:08:09', '%e %c %h %p %M %W %T')",
        "5 3 05 PM March Thursday 17:08:09",
        "MySQL letters",
    ),
    (
        "SELECT date_parse('05/03/2026 07:08', '%d/%m/%Y %H:%i')",
        datetime(2026, 3, 5, 7, 8),
        "date_parse",
    ),
    # Other functions whose meaning differs.
    (
        "SELECT array_distinct(ARRAY['b', NULL, 'a', 'b', NULL])",
        ["b", None, "a"],
        "first-seen order, one NULL",
    ),
    ("SELECT array_sort(ARRAY['b', NULL, 'a'])", ["a", "b", None], "NULLs last"),
    ("SELECT contains(ARRAY['a', NULL], 'b')", None, "not found but a NULL could be it"),
    ("SELECT contains(ARRAY['a', NULL], 'a')", True, "found"),
    ("SELECT contains(ARRAY['a'], 'b')", False, "not found, no NULL"),
    ("SELECT split_part('a/b', '/', 5)", None, "no fifth part"),
    ("SELECT split_part('a/b', '/', 2)", "b", "second part"),
    ("SELECT substr('abc', 0)", "", "position 0 is before the string"),
    ("SELECT substr('abcdef', 2, 3)", "bcd", "1-based"),
    ("SELECT count_if(x) FROM (VALUES CAST(NULL AS boolean)) AS t(x)", 0, "a count is never NULL"),
    ("SELECT count_if(x > 1) FILTER (WHERE x > 5) FROM (VALUES 1, 2) AS t(x)", 0, "no row: 0"),
    (
        "SELECT approx_percentile(x, 0.5) FROM (VALUES 10, 10, 10, 100) AS t(x)",
        10,
        "a member value",
    ),
    ("SELECT approx_distinct(x) FROM (VALUES 1, 1, 2, NULL) AS t(x)", 2, "NULL not counted"),
    # Checked and already right in plain sqlglot (kept to pin them).
    ("SELECT cardinality(ARRAY[1, 2])", 2, "array length"),
    ("SELECT element_at(split('a gatehouse/r1', 'gatehouse/'), -1)", "r1", "last element"),
    ("SELECT 'a' || NULL", None, "NULL-propagating concatenation"),
    ("SELECT concat('a', NULL)", None, "concat propagates NULL in Trino"),
    (
        "SELECT hour(from_iso8601_timestamp('2026-03-05T07:08:09.123Z') - INTERVAL '1' MINUTE)",
        7,
        "UTC session",
    ),
    (
        "SELECT CAST(from_iso8601_timestamp('2026-03-05T07:08:09.123Z') AS timestamp)",
        datetime(2026, 3, 5, 7, 8, 9, 123000),
        "UTC wall time",
    ),
    (
        "SELECT from_iso8601_timestamp('2026-03-05T07:08:09Z') >= TIMESTAMP '2026-03-05 07:08:09'",
        True,
        "tz vs naive in UTC",
    ),
    (
        "SELECT date_trunc('week', DATE '2026-03-05')",
        datetime(2026, 3, 2).date(),
        "weeks start Monday",
    ),
    (
        "SELECT CAST(TIMESTAMP '2026-03-05 23:59:59' AS date)",
        datetime(2026, 3, 5).date(),
        "cast to date",
    ),
    (
        "SELECT date_add('month', 1, DATE '2026-01-31')",
        datetime(2026, 2, 28).date(),
        "clamped to month end",
    ),
    (
        "SELECT date_format(TIMESTAMP '2026-03-05 07:00:00' + INTERVAL '1' HOUR, '%Y-%m-%d %H')",
        "2026-03-05 08",
        "interval arithmetic",
    ),
    ("SELECT strpos('a gatehouse/x', 'gatehouse/')", 3, "1-based position"),
    ("SELECT CAST(2.5 AS integer)", 3, "rounds half away from zero"),
]


@pytest.mark.parametrize(("sql", "athena", "why"), CASES, ids=[case[2] for case in CASES])
def test_local_answer_is_athenas(
    con: duckdb.DuckDBPyConnection, sql: str, athena: Any, why: str
) -> None:
    assert corrected(con, sql) == athena, why


# Constructs whose plain sqlglot translation DuckDB answers differently (or refuses).
NEEDED = [
    f"SELECT date_diff('day', {T} '2026-01-01 23:00:00', {T} '2026-01-02 01:00:00')",
    "SELECT -7 / 2",
    "SELECT 1.0 / 3",
    """SELECT json_extract_scalar('{"a":{"b":1}}', '$.a')""",
    """SELECT json_extract_scalar('not json', '$.a')""",
    "SELECT regexp_extract('abc', 'x')",
    "SELECT regexp_replace('a-b-c', '(\\w)-', '$1+')",
    f"SELECT format_datetime({T} '2026-03-05 07:08:09.123', 'yyyy-MM-dd''T''HH:mm:ss.SSS')",
    "SELECT parse_datetime('2026-03-05 07:08', 'yyyy-MM-dd HH:mm')",
    "SELECT array_distinct(ARRAY['b', NULL, 'a', 'b', NULL])",
    "SELECT contains(ARRAY['a', NULL], 'b')",
    "SELECT split_part('a/b', '/', 5)",
    "SELECT substr('abc', 0)",
    "SELECT count_if(x) FROM (VALUES CAST(NULL AS boolean)) AS t(x)",
    "SELECT date_trunc('week', DATE '2026-03-05')",
    "SELECT date_add('month', 1, DATE '2026-01-31')",
]
ATHENA = {sql: answer for sql, answer, _ in CASES}


@pytest.mark.parametrize("sql", NEEDED)
def test_plain_sqlglot_gets_it_wrong(con: duckdb.DuckDBPyConnection, sql: str) -> None:
    answer = plain(con, sql)
    assert (
        isinstance(answer, Exception)
        or answer != ATHENA[sql]
        or type(answer) is not type(ATHENA[sql])
    )


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT 7 / 0",
        "SELECT 7 % 0",
        "SELECT split_part('a/b', '/', 0)",
    ],
)
def test_athena_errors_stay_errors(con: duckdb.DuckDBPyConnection, sql: str) -> None:
    # Trino fails these; DuckDB alone would answer NULL (or count from the end).
    with pytest.raises(QueryFailed):
        corrected(con, sql)


@pytest.mark.parametrize(
    ("sql", "message"),
    [
        ("SELECT x / 2 FROM (SELECT 1 AS x) t JOIN (SELECT 2 AS x) u ON true", "CAST an operand"),
        ("SELECT regexp_replace('a', '(?<n>a)', '${n}')", r"only \$0\.\.\$9"),
        ("SELECT regexp_replace('a', 'a', '$12')", "ambiguous"),
        ("SELECT regexp_replace('a', 'a', col) FROM (SELECT 'x' AS col)", "string literal"),
        ("SELECT format_datetime(TIMESTAMP '2026-01-01 00:00:00', 'GGGG')", "no local equivalent"),
        ("SELECT date_format(TIMESTAMP '2026-01-01 00:00:00', '%D')", "no faithful local twin"),
        ("SELECT date_diff('fortnight', DATE '2026-01-01', DATE '2026-02-01')", "unit"),
    ],
)
def test_untranslatable_is_refused_not_guessed(sql: str, message: str) -> None:
    with pytest.raises(NotTranslatable, match=message):
        to_duckdb(parse_statement(sql))


def test_division_over_table_columns_is_typed_from_the_ddl(con: duckdb.DuckDBPyConnection) -> None:
    # outcome.status is int in the DDL: integer division, as Athena does it.
    sql = "SELECT outcome.status / 100 AS class FROM audit_events"
    assert "//" in to_duckdb(parse_statement(sql))
    sql = "SELECT outcome.latency_ms / 2 AS half FROM audit_events"
    assert "//" not in to_duckdb(parse_statement(sql))


@pytest.mark.parametrize(
    ("joda", "strftime"),
    [
        ("yyyy-MM-dd'T'HH:mm:ss.SSSZ", "%Y-%m-%dT%H:%M:%S.%g%z"),
        ("dd/MMM/yyyy:HH:mm:ss", "%d/%b/%Y:%H:%M:%S"),
        ("'100%' yyyy", "100%% %Y"),
        ("h 'o''clock' ''", "%-I o'clock '"),
    ],
)
def test_joda_patterns(joda: str, strftime: str) -> None:
    assert joda_to_strftime(joda) == strftime


@pytest.mark.parametrize(
    ("java", "re2"),
    [
        ("$1-$2", "\\1-\\2"),
        ("\\$1", "$1"),
        ("a\\\\b", "a\\\\b"),
        ("$0!", "\\0!"),
        ("plain", "plain"),
    ],
)
def test_java_replacements(java: str, re2: str) -> None:
    assert java_replacement_to_re2(java) == re2
