# ruff: noqa: S608 - SQL here names only the DDL's columns and cache paths, quoted
"""The local engine's data: stored-layout objects in a cache, compacted to Parquet, seen as views.

Cache layout (``cache_dir``)::

    raw/audit/<partition>/<sha256(key)[:16]>-<version>.ndjson.gz     ledger objects, as stored
    raw/cloudtrail/<partition>/<sha256(key)[:16]>-<etag>.json.gz       trail files, as delivered
    parquet/audit_events/<partition>.parquet    one file per dt/hour, rows sorted by principal
    parquet/cloudtrail_logs/<partition>.parquet one file per region/day
    parquet/.../<partition>.json                the raw objects a Parquet file was built from

A partition's Parquet file is rebuilt only when the set of its raw objects
changes, so a warm cache answers without re-reading any JSON. The views
``audit_events`` and ``cloudtrail_logs`` have the DDL's columns, in its
order and types, then the partition columns (dt, hour / region, timestamp).
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import tempfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
from sqlglot import exp

from gatehouse.query.errors import QueryError
from gatehouse.query.schema import AUDIT_EVENTS, CLOUDTRAIL_LOGS, TableSchema, table_schema

# Rows per Parquet row group: small enough that a principal's rows, sorted
# together, fall in few groups; large enough to keep footers small.
ROW_GROUP_SIZE = 16_384


@dataclass(frozen=True, slots=True)
class Partition:
    """One partition of a table: its values (``{"dt": "2026-03-10", "hour": 15}``) and a name."""

    values: tuple[tuple[str, Any], ...]

    @property
    def name(self) -> str:
        """A file-system-safe name: ``dt=2026-03-10_hour=15``."""
        return "_".join(f"{key}={str(value).replace('/', '-')}" for key, value in self.values)


def _sql_string(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _atomic_write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
    with os.fdopen(handle, "wb") as out:
        out.write(data)
    os.replace(temporary, path)


def raw_name(key: str, version: str) -> str:
    """The cache file name of one object version (the key hashed: keys may hold anything)."""
    digest = hashlib.sha256(key.encode()).hexdigest()[:16]
    safe_version = "".join(char if char.isalnum() or char in "-_" else "_" for char in version)
    return f"{digest}-{safe_version[:128]}"


class Dataset:
    """The cache directory: raw objects in, Parquet partitions and DuckDB views out."""

    def __init__(self, cache_dir: Path) -> None:
        self.root = Path(cache_dir)
        self.raw = self.root / "raw"
        self.parquet = self.root / "parquet"

    # --- raw objects ---------------------------------------------------------------

    def raw_dir(self, table: str, partition: Partition) -> Path:
        """Where the raw objects of one partition live."""
        kind = "audit" if table == AUDIT_EVENTS else "cloudtrail"
        return self.raw / kind / partition.name

    def add_raw(self, table: str, partition: Partition, name: str, data: bytes) -> Path:
        """Store one raw object (gzip bytes as stored) under ``name``."""
        suffix = ".ndjson.gz" if table == AUDIT_EVENTS else ".json.gz"
        path = self.raw_dir(table, partition) / f"{name}{suffix}"
        if not path.exists():
            _atomic_write(path, data)
        return path

    def has_raw(self, table: str, partition: Partition, name: str) -> bool:
        """Whether that object version is cached already."""
        suffix = ".ndjson.gz" if table == AUDIT_EVENTS else ".json.gz"
        return (self.raw_dir(table, partition) / f"{name}{suffix}").exists()

    def prune(self, keep: Mapping[str, Mapping[str, set[str]]]) -> int:
        """Delete cached objects (and partitions) the bucket no longer lists; returns how many.

        ``keep`` is ``{table: {partition name: {raw names}}}`` as the last sync saw them.
        """
        removed = 0
        for table in (AUDIT_EVENTS, CLOUDTRAIL_LOGS):
            kind = "audit" if table == AUDIT_EVENTS else "cloudtrail"
            wanted = keep.get(table, {})
            folder_root = self.raw / kind
            for folder in list(folder_root.iterdir()) if folder_root.is_dir() else ():
                names = wanted.get(folder.name, set())
                for path in list(folder.iterdir()):
                    if path.name.split(".", 1)[0] not in names:
                        path.unlink()
                        removed += 1
                if not any(folder.iterdir()):
                    folder.rmdir()
            built = self.parquet / table
            for target in list(built.glob("*.parquet")) if built.is_dir() else ():
                if target.stem not in wanted:
                    target.unlink()
                    target.with_suffix(".json").unlink(missing_ok=True)
        return removed

    # --- Parquet ---------------------------------------------------------------------

    def build(self, connection: duckdb.DuckDBPyConnection) -> None:
        """(Re)build the Parquet file of every partition whose raw objects changed."""
        for table in (AUDIT_EVENTS, CLOUDTRAIL_LOGS):
            kind = "audit" if table == AUDIT_EVENTS else "cloudtrail"
            for folder in sorted((self.raw / kind).glob("*")) if (self.raw / kind).is_dir() else ():
                sources = sorted(
                    path.name for path in folder.iterdir() if not path.name.startswith(".")
                )
                target = self.parquet / table / f"{folder.name}.parquet"
                manifest = target.with_suffix(".json")
                built = target.exists() and manifest.exists()
                if built and json.loads(manifest.read_text()) == sources:
                    continue
                partition = _parse_partition_name(folder.name, table_schema(table))
                files = [folder / name for name in sources]
                if table == AUDIT_EVENTS:
                    _audit_parquet(connection, files, partition, target)
                else:
                    _cloudtrail_parquet(connection, files, partition, target)
                _atomic_write(manifest, json.dumps(sources).encode())

    def create_views(self, connection: duckdb.DuckDBPyConnection) -> None:
        """``audit_events`` and ``cloudtrail_logs`` over the Parquet files (empty when none)."""
        for table in (AUDIT_EVENTS, CLOUDTRAIL_LOGS):
            schema = table_schema(table)
            files = sorted((self.parquet / table).glob("*.parquet"))
            columns = ", ".join(
                f"CAST({_quote(column.name)} AS {column.duckdb_type}) AS {_quote(column.name)}"
                for column in schema.all_columns
            )
            if files:
                listing = "[" + ", ".join(_sql_string(str(path)) for path in files) + "]"
                source = f"read_parquet({listing})"
                connection.execute(
                    f"CREATE OR REPLACE VIEW {table} AS SELECT {columns} FROM {source}"
                )
            else:
                empty = ", ".join(
                    f"CAST(NULL AS {column.duckdb_type}) AS {_quote(column.name)}"
                    for column in schema.all_columns
                )
                connection.execute(f"CREATE OR REPLACE VIEW {table} AS SELECT {empty} WHERE false")


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _parse_partition_name(name: str, schema: TableSchema) -> Partition:
    pairs = dict(part.split("=", 1) for part in name.split("_", len(schema.partitions) - 1))
    values: list[tuple[str, Any]] = []
    for column in schema.partitions:
        text = pairs[column.name]
        if column.type.this == exp.DataType.Type.INT:
            values.append((column.name, int(text)))
        elif column.name == "timestamp":
            values.append((column.name, text.replace("-", "/")))
        else:
            values.append((column.name, text))
    return Partition(tuple(values))


def _columns_struct(schema: TableSchema) -> str:
    return (
        "{"
        + ", ".join(f"{_sql_string(c.name)}: {_sql_string(c.duckdb_type)}" for c in schema.columns)
        + "}"
    )


def _partition_columns(partition: Partition) -> str:
    parts = []
    for key, value in partition.values:
        literal = str(value) if isinstance(value, int) else _sql_string(str(value))
        parts.append(f"{literal} AS {_quote(key)}")
    return ", ".join(parts)


def _copy_parquet(connection: duckdb.DuckDBPyConnection, select: str, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    temporary = target.with_name(f".tmp-{target.name}")
    try:
        connection.execute(
            f"COPY ({select}) TO {_sql_string(str(temporary))} "
            f"(FORMAT parquet, COMPRESSION zstd, ROW_GROUP_SIZE {ROW_GROUP_SIZE})"
        )
    except duckdb.Error as exc:
        raise QueryError(f"cannot build the local cache file {target.name}: {exc}") from exc
    os.replace(temporary, target)


def _audit_parquet(
    connection: duckdb.DuckDBPyConnection, files: list[Path], partition: Partition, target: Path
) -> None:
    schema = table_schema(AUDIT_EVENTS)
    listing = "[" + ", ".join(_sql_string(str(path)) for path in files) + "]"
    select = (
        f"SELECT *, {_partition_columns(partition)} FROM read_json({listing}, "
        f"format='newline_delimited', compression='gzip', columns={_columns_struct(schema)}, "
        "maximum_object_size=16777216) "
        # Sorted by principal so that a per-principal query reads few row groups.
        "ORDER BY principal.email, principal.subject, event_time"
    )
    _copy_parquet(connection, select, target)


def _cloudtrail_parquet(
    connection: duckdb.DuckDBPyConnection, files: list[Path], partition: Partition, target: Path
) -> None:
    # CloudTrailSerde matches keys case-insensitively and hands nested values of
    # string columns over as JSON text: done here in Python, then typed by DuckDB.
    schema = table_schema(CLOUDTRAIL_LOGS)
    lines: list[str] = []
    for path in files:
        try:
            document = json.loads(gzip.decompress(path.read_bytes()))
        except (OSError, ValueError) as exc:
            raise QueryError(
                f"unreadable CloudTrail file in the cache: {path.name}: {exc}"
            ) from exc
        records = document.get("Records") if isinstance(document, dict) else None
        for record in records if isinstance(records, list) else ():
            if isinstance(record, dict):
                lines.append(json.dumps(cloudtrail_row(record, schema), separators=(",", ":")))
    with tempfile.NamedTemporaryFile(
        "w", suffix=".ndjson", dir=target.parent.parent, delete=False
    ) as out:
        out.write("\n".join(lines))
        staging = Path(out.name)
    try:
        select = (
            f"SELECT *, {_partition_columns(partition)} "
            f"FROM read_json({_sql_string(str(staging))}, format='newline_delimited', "
            f"columns={_columns_struct(schema)}) ORDER BY eventtime"
        )
        _copy_parquet(connection, select, target)
    finally:
        staging.unlink(missing_ok=True)


def cloudtrail_row(record: Mapping[str, Any], schema: TableSchema) -> dict[str, Any]:
    """One CloudTrail record shaped by the DDL: keys lower-cased, string columns as JSON text."""
    return {
        column.name: _shape(_get_folded(record, column.name), column.type)
        for column in schema.columns
    }


def _get_folded(record: Mapping[str, Any], name: str) -> Any:
    for key, value in record.items():
        if key.lower() == name:
            return value
    return None


def _shape(value: Any, kind: exp.DataType) -> Any:
    if value is None:
        return None
    if kind.this == exp.DataType.Type.STRUCT:
        if not isinstance(value, dict):
            return None
        return {
            member.name: _shape(_get_folded(value, member.name), member.args["kind"])
            for member in kind.expressions
        }
    if kind.this == exp.DataType.Type.ARRAY:
        element = kind.expressions[0]
        element_type = element if isinstance(element, exp.DataType) else element.args["kind"]
        return [_shape(item, element_type) for item in value] if isinstance(value, list) else None
    if kind.this == exp.DataType.Type.MAP:
        return {str(k): _text(v) for k, v in value.items()} if isinstance(value, dict) else None
    return _text(value)


def _text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    return json.dumps(value, separators=(",", ":"))


def audit_partition(event_time: str) -> Partition:
    """The ``dt``/``hour`` partition the stored layout files an event under (from its time)."""
    day, _, clock = event_time.partition("T")
    return Partition((("dt", day), ("hour", int(clock[:2] or 0))))


def cloudtrail_partition(region: str, event_time: str) -> Partition:
    """The ``region``/``timestamp`` partition of a trail record (``2026/03/10``)."""
    return Partition((("region", region), ("timestamp", event_time[:10].replace("-", "/"))))


def write_records(
    dataset: Dataset, events: Iterable[Mapping[str, Any]], cloudtrail: Iterable[Mapping[str, Any]]
) -> None:
    """Store records as the stack would: one NDJSON.gz per hour, one trail file per region/day."""
    grouped: dict[Partition, list[str]] = {}
    for event in events:
        grouped.setdefault(audit_partition(str(event.get("event_time") or "")), []).append(
            json.dumps(event, separators=(",", ":"))
        )
    for partition, lines in grouped.items():
        data = gzip.compress(("\n".join(lines) + "\n").encode(), compresslevel=1)
        dataset.add_raw(AUDIT_EVENTS, partition, raw_name(partition.name, "records"), data)
    trail: dict[Partition, list[Mapping[str, Any]]] = {}
    for record in cloudtrail:
        partition = cloudtrail_partition(
            str(record.get("awsRegion") or ""), str(record.get("eventTime") or "")
        )
        trail.setdefault(partition, []).append(record)
    for partition, records in trail.items():
        data = gzip.compress(json.dumps({"Records": records}).encode(), compresslevel=1)
        dataset.add_raw(CLOUDTRAIL_LOGS, partition, raw_name(partition.name, "records"), data)
