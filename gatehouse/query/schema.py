"""The tables' columns, read from the Athena DDL files (the single source of the local views).

``infra/athena/tables/<table>.sql`` is parsed with sqlglot (Athena dialect);
the local engine builds its views with these columns and types, and the
dialect layer types columns with them (integer division needs to know).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from pathlib import Path

import sqlglot
from sqlglot import exp

from gatehouse.query.errors import QueryError

ROOT = Path(__file__).resolve().parents[2]
TABLES_DIR = ROOT / "infra" / "athena" / "tables"
AUDIT_EVENTS = "audit_events"
CLOUDTRAIL_LOGS = "cloudtrail_logs"


@dataclass(frozen=True, slots=True)
class Column:
    """One column: its name and its type as sqlglot reads the DDL."""

    name: str
    type: exp.DataType

    @property
    def duckdb_type(self) -> str:
        """The type in DuckDB's spelling (``STRUCT("id" TEXT, ...)``)."""
        return self.type.sql(dialect="duckdb", identify=True)


@dataclass(frozen=True, slots=True)
class TableSchema:
    """The data columns and the partition columns of one table, in DDL order."""

    name: str
    columns: tuple[Column, ...]
    partitions: tuple[Column, ...]

    @property
    def all_columns(self) -> tuple[Column, ...]:
        """Data columns then partition columns, as Athena lists them."""
        return self.columns + self.partitions

    def sqlglot_mapping(self) -> dict[str, str]:
        """``{column: type}`` for :class:`sqlglot.schema.MappingSchema`."""
        return {column.name: column.type.sql(dialect="duckdb") for column in self.all_columns}


def parse_ddl(text: str) -> TableSchema:
    """The schema of one ``CREATE EXTERNAL TABLE`` statement.

    Raises
    ------
    QueryError
        When the text is not a single CREATE TABLE with typed columns.
    """
    try:
        statement = sqlglot.parse_one(text, read="athena")
    except sqlglot.errors.ParseError as exc:
        raise QueryError(f"a table DDL sqlglot cannot read: {exc}") from exc
    if not isinstance(statement, exp.Create) or not isinstance(statement.this, exp.Schema):
        raise QueryError("a table DDL must be one CREATE EXTERNAL TABLE statement")
    partitions: tuple[Column, ...] = ()
    partitioned = statement.find(exp.PartitionedByProperty)
    if partitioned is not None:
        partitions = tuple(_column(node) for node in partitioned.this.expressions)
    return TableSchema(
        name=statement.this.this.name,
        columns=tuple(_column(node) for node in statement.this.expressions),
        partitions=partitions,
    )


def _column(node: exp.Expression) -> Column:
    kind = node.args.get("kind")
    if not isinstance(kind, exp.DataType):
        raise QueryError(f"column {node.name!r} of a table DDL has no type")
    return Column(node.name, kind)


@cache
def table_schema(name: str) -> TableSchema:
    """The schema of ``audit_events`` or ``cloudtrail_logs``, from its DDL file."""
    path = TABLES_DIR / f"{name}.sql"
    if not path.is_file():
        raise QueryError(f"no table DDL {path}")
    schema = parse_ddl(path.read_text(encoding="utf-8"))
    if schema.name != name:
        raise QueryError(f"{path.name} creates {schema.name!r}, expected {name!r}")
    return schema


def sqlglot_schema() -> dict[str, dict[str, str]]:
    """Both tables, as a sqlglot schema mapping."""
    return {name: table_schema(name).sqlglot_mapping() for name in (AUDIT_EVENTS, CLOUDTRAIL_LOGS)}
