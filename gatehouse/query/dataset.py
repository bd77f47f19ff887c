# ruff: noqa: S608 - SQL here names only the DDL's columns and cache paths, quoted
"""The local engine's data: stored-layout objects in a cache, compacted to Parquet, seen as views.

Cache layout (``cache_dir``)::

    raw/audit/<partition>/<sha256(key)[:16]>-<version>.ndjson.gz     ledger objects, as stored
    raw/cloudtrail/<partition>/<sha256(key)[:16]>-<etag>.json.gz       trail files, as delivered
    parquet/audit_events/<partition>.parquet    one file per dt/hour, rows sorted by principal
    parquet/cloudtrail_logs/<partition>.parquet one file per region/day
    parquet/.../<partition>.json                the raw objects a Parquet file was built from,
                                                the columns it has, and what could not be
                                                read of them
    keys/<raw name>                             the S3 key of a synced object (for warnings)
    duckdb-tmp/                                 DuckDB's spill directory

A partition's Parquet file is rebuilt only when the set of its raw objects
changes, or the table's columns do (a column added to the DDL: the manifest
holds :func:`schema_fingerprint`), so a warm cache answers without re-reading
any JSON.

A partition is read by DuckDB's ``read_json`` (fast). Should DuckDB refuse
it (a malformed line, a lone surrogate, a mistyped field, a broken gzip
stream), that partition alone is read again in Python, line by line: text is
repaired (lone surrogates and invalid UTF-8 become U+FFFD), each field is
coerced to its DDL type or null, and what still cannot be read is skipped and
counted (:class:`ReadProblem`), never failing the other partitions. An event
whose ``event_time`` no timestamp cast can read is skipped too (every query
windows on it). The cache is private: directories 0700, files 0600. The views
``audit_events`` and ``cloudtrail_logs`` have the DDL's columns, in its
order and types, then the partition columns (dt, hour / region, timestamp).
"""

from __future__ import annotations

import gzip
import hashlib
import json
import math
import os
import shutil
import tempfile
import zlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
from sqlglot import exp

from gatehouse.query.errors import QueryError
from gatehouse.query.schema import AUDIT_EVENTS, CLOUDTRAIL_LOGS, TableSchema, table_schema
from gatehouse.query.text import clean_surrogates, has_surrogate, visible

# Rows per Parquet row group: small enough that a principal's rows, sorted
# together, fall in few groups; large enough to keep footers small.
ROW_GROUP_SIZE = 16_384
# DuckDB's own limit for one JSON line, kept by the Python reader too.
MAX_LINE_BYTES = 16_777_216
PRIVATE_DIR = 0o700
PRIVATE_FILE = 0o600
# How many object keys a warning names before it says "and N more".
WARNING_KEYS = 10
_INT_RANGES = {
    exp.DataType.Type.TINYINT: 2**7,
    exp.DataType.Type.SMALLINT: 2**15,
    exp.DataType.Type.INT: 2**31,
    exp.DataType.Type.BIGINT: 2**63,
}
_FLOATS = {exp.DataType.Type.DOUBLE, exp.DataType.Type.FLOAT}


@dataclass(frozen=True, slots=True)
class ReadProblem:
    """What could not be read, or was read only with repairs, of one cached object.

    ``skipped`` lines were left out (not JSON, not an object, an unreadable
    ``event_time``); ``repaired`` lines were kept with invalid text replaced
    by U+FFFD or mistyped fields set to null; ``unreadable`` says the object
    (or its end) could not be decompressed at all.
    """

    table: str
    partition: str
    source: str
    skipped: int = 0
    repaired: int = 0
    unreadable: bool = False

    def as_json(self) -> dict[str, Any]:
        """The problem as stored in a partition's manifest."""
        return {
            "table": self.table,
            "partition": self.partition,
            "source": self.source,
            "skipped": self.skipped,
            "repaired": self.repaired,
            "unreadable": self.unreadable,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ReadProblem:
        """A problem from a manifest (written by :meth:`as_json`)."""
        return cls(
            table=str(data["table"]),
            partition=str(data["partition"]),
            source=str(data["source"]),
            skipped=int(data.get("skipped", 0)),
            repaired=int(data.get("repaired", 0)),
            unreadable=bool(data.get("unreadable", False)),
        )


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


def _private_dir(path: Path) -> None:
    """Create ``path`` and each missing parent 0700 (``mkdir(parents=True)`` would use 0777)."""
    if path.is_dir():
        return
    missing = [path, *(parent for parent in path.parents if not parent.exists())]
    for folder in reversed(missing):
        folder.mkdir(mode=PRIVATE_DIR, exist_ok=True)


def _atomic_write(path: Path, data: bytes) -> None:
    _private_dir(path.parent)
    # mkstemp creates the file 0600: never readable by another user.
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
        self.keys = self.root / "keys"
        self.temp = self.root / "duckdb-tmp"
        # Objects the sync left out because no digest names them (see sync.py).
        self.unledgered: list[str] = []
        # The cache holds the whole trail: private to its owner, even if it existed.
        _private_dir(self.root)
        os.chmod(self.root, PRIVATE_DIR)

    # --- raw objects ---------------------------------------------------------------

    def raw_dir(self, table: str, partition: Partition) -> Path:
        """Where the raw objects of one partition live."""
        kind = "audit" if table == AUDIT_EVENTS else "cloudtrail"
        return self.raw / kind / partition.name

    def add_raw(
        self, table: str, partition: Partition, name: str, data: bytes, key: str | None = None
    ) -> Path:
        """Store one raw object (gzip bytes as stored) under ``name``; ``key``: its S3 key."""
        suffix = ".ndjson.gz" if table == AUDIT_EVENTS else ".json.gz"
        path = self.raw_dir(table, partition) / f"{name}{suffix}"
        if not path.exists():
            _atomic_write(path, data)
        if key is not None:
            self.remember_key(name, key)
        return path

    def remember_key(self, name: str, key: str) -> None:
        """Note that raw object ``name`` is S3 ``key`` (warnings name objects by key)."""
        path = self.keys / name
        if not path.exists():
            _atomic_write(path, key.encode("utf-8", "replace"))

    def key_of(self, problem: ReadProblem) -> str:
        """The S3 key of the object a problem is about, else its cache path."""
        path = self.keys / problem.source.split(".", 1)[0]
        if path.is_file():
            return path.read_text("utf-8", "replace")
        kind = "audit" if problem.table == AUDIT_EVENTS else "cloudtrail"
        return f"raw/{kind}/{problem.partition}/{problem.source}"

    def warnings(self, problems: Iterable[ReadProblem]) -> list[str]:
        """Loud, one-line summaries of ``problems`` (keys escaped for a terminal)."""
        problems = list(problems)
        found: list[str] = []
        skipped = [p for p in problems if p.skipped or p.unreadable]
        if skipped:
            lines = sum(p.skipped for p in skipped)
            keys = [
                visible(self.key_of(p)) + (" (unreadable)" if p.unreadable else "") for p in skipped
            ]
            found.append(
                f"{lines} lines in {len(skipped)} objects could not be read: {_listing(keys)}"
            )
        if self.unledgered:
            found.append(
                f"{len(self.unledgered)} objects under the ledger's prefix that no digest names "
                "were left out (gatehouse audit verify names them unledgered_object): "
                f"{_listing([visible(key) for key in self.unledgered])}"
            )
        repaired = [p for p in problems if p.repaired]
        if repaired:
            lines = sum(p.repaired for p in repaired)
            keys = [visible(self.key_of(p)) for p in repaired]
            found.append(
                f"{lines} lines in {len(repaired)} objects were read with repairs (invalid "
                f"text replaced by U+FFFD, mistyped fields set to null): {_listing(keys)}"
            )
        return found

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

    def build(self, connection: duckdb.DuckDBPyConnection) -> list[ReadProblem]:
        """(Re)build the Parquet file of every partition whose raw objects changed.

        Returns what could not be read (or only with repairs) in every
        partition, built now or before. A partition that cannot be built at
        all is left out (and tried again next time); the others are built.
        """
        problems: list[ReadProblem] = []
        for table in (AUDIT_EVENTS, CLOUDTRAIL_LOGS):
            kind = "audit" if table == AUDIT_EVENTS else "cloudtrail"
            for folder in sorted((self.raw / kind).glob("*")) if (self.raw / kind).is_dir() else ():
                sources = sorted(
                    path.name for path in folder.iterdir() if not path.name.startswith(".")
                )
                target = self.parquet / table / f"{folder.name}.parquet"
                manifest = target.with_suffix(".json")
                columns = schema_fingerprint(table)
                stored = _read_manifest(manifest) if target.exists() else None
                if stored is not None and stored[0] == sources and stored[2] == columns:
                    problems += stored[1]
                    continue
                built = self._build_partition(connection, table, folder, sources, target)
                problems += built
                if target.exists():
                    document = {
                        "sources": sources,
                        "columns": columns,
                        "problems": [p.as_json() for p in built],
                    }
                    _atomic_write(manifest, json.dumps(document).encode())
                else:
                    manifest.unlink(missing_ok=True)
        return problems

    def _build_partition(
        self,
        connection: duckdb.DuckDBPyConnection,
        table: str,
        folder: Path,
        sources: list[str],
        target: Path,
    ) -> list[ReadProblem]:
        partition = _parse_partition_name(folder.name, table_schema(table))
        files = [folder / name for name in sources]
        if table == AUDIT_EVENTS:
            try:
                return _audit_parquet(connection, files, partition, target)
            except (duckdb.Error, QueryError):
                pass  # DuckDB refused the partition: read it line by line instead.
            staging = Path(tempfile.mkdtemp(prefix=".staging-", dir=self.root))
            try:
                problems, staged = _stage_audit(files, staging, folder.name)
                try:
                    skipped = _audit_parquet(
                        connection, staged, partition, target, compression="uncompressed"
                    )
                except (duckdb.Error, QueryError):
                    return _partition_lost(table, folder.name, sources, target)
                return _merge(problems, skipped)
            finally:
                shutil.rmtree(staging, ignore_errors=True)
        try:
            return _cloudtrail_parquet(connection, files, partition, target)
        except (duckdb.Error, QueryError):
            return _partition_lost(table, folder.name, sources, target)

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


def _listing(keys: list[str]) -> str:
    shown = ", ".join(keys[:WARNING_KEYS])
    more = len(keys) - WARNING_KEYS
    return shown + (f" and {more} more" if more > 0 else "")


def schema_fingerprint(table: str) -> str:
    """The SHA-256 of a table's columns and types: a Parquet file built for others is stale."""
    columns = "\n".join(
        f"{column.name} {column.duckdb_type}" for column in table_schema(table).all_columns
    )
    return hashlib.sha256(columns.encode()).hexdigest()


def _read_manifest(path: Path) -> tuple[list[str], list[ReadProblem], str | None] | None:
    try:
        document = json.loads(path.read_text())
        return (
            list(document["sources"]),
            [ReadProblem.from_json(item) for item in document.get("problems", [])],
            document.get("columns"),
        )
    except (OSError, ValueError, KeyError, TypeError):
        return None  # absent, or from an older layout: rebuild


def _partition_lost(
    table: str, partition: str, sources: list[str], target: Path
) -> list[ReadProblem]:
    target.unlink(missing_ok=True)
    return [ReadProblem(table, partition, name, unreadable=True) for name in sources]


def _merge(first: list[ReadProblem], second: list[ReadProblem]) -> list[ReadProblem]:
    merged: dict[str, ReadProblem] = {}
    for problem in first + second:
        seen = merged.get(problem.source)
        if seen is None:
            merged[problem.source] = problem
        else:
            merged[problem.source] = ReadProblem(
                seen.table,
                seen.partition,
                seen.source,
                seen.skipped + problem.skipped,
                seen.repaired + problem.repaired,
                seen.unreadable or problem.unreadable,
            )
    return list(merged.values())


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
    _private_dir(target.parent)
    temporary = target.with_name(f".tmp-{target.name}")
    try:
        connection.execute(
            f"COPY ({select}) TO {_sql_string(str(temporary))} "
            f"(FORMAT parquet, COMPRESSION zstd, ROW_GROUP_SIZE {ROW_GROUP_SIZE})"
        )
    except duckdb.Error as exc:
        temporary.unlink(missing_ok=True)
        raise QueryError(f"cannot build the local cache file {target.name}: {exc}") from exc
    os.chmod(temporary, PRIVATE_FILE)
    os.replace(temporary, target)


# Every query windows on from_iso8601_timestamp(event_time), which the local
# engine runs as this cast: a row it cannot read would fail them all.
_BAD_EVENT_TIME = "event_time IS NOT NULL AND TRY_CAST(event_time AS TIMESTAMPTZ) IS NULL"


def _audit_parquet(
    connection: duckdb.DuckDBPyConnection,
    files: list[Path],
    partition: Partition,
    target: Path,
    compression: str = "gzip",
) -> list[ReadProblem]:
    """Build one audit partition with DuckDB; the rows skipped for their event_time.

    Raises
    ------
    duckdb.Error, QueryError
        When DuckDB cannot read a file (the caller falls back to Python).
    """
    schema = table_schema(AUDIT_EVENTS)
    listing = "[" + ", ".join(_sql_string(str(path)) for path in files) + "]"
    staging = "gatehouse_staging"
    connection.execute(
        f"CREATE OR REPLACE TEMP TABLE {staging} AS SELECT * FROM read_json({listing}, "
        f"format='newline_delimited', compression={_sql_string(compression)}, "
        f"columns={_columns_struct(schema)}, maximum_object_size={MAX_LINE_BYTES}, "
        "filename='gatehouse_source')"
    )
    try:
        bad = connection.execute(
            f"SELECT gatehouse_source, count(*) FROM {staging} WHERE {_BAD_EVENT_TIME} "
            "GROUP BY 1 ORDER BY 1"
        ).fetchall()
        select = (
            f"SELECT * EXCLUDE (gatehouse_source), {_partition_columns(partition)} "
            f"FROM {staging} WHERE NOT coalesce({_BAD_EVENT_TIME}, false) "
            # Sorted by principal so that a per-principal query reads few row groups.
            "ORDER BY principal.email, principal.subject, event_time"
        )
        _copy_parquet(connection, select, target)
    finally:
        connection.execute(f"DROP TABLE IF EXISTS {staging}")
    return [
        ReadProblem(AUDIT_EVENTS, partition.name, Path(source).name, skipped=count)
        for source, count in bad
    ]


def _decompress(data: bytes) -> tuple[bytes, bool]:
    """The bytes a gzip object holds, as far as they can be read; and whether all could.

    zlib (not :mod:`gzip`) so that a truncated object still gives up what
    precedes the cut; members follow one another as in ``gzip.decompress``.
    """
    out = bytearray()
    rest = data
    while rest:
        stream = zlib.decompressobj(wbits=31)
        try:
            out += stream.decompress(rest)
        except zlib.error:
            return bytes(out), False
        if not stream.eof:
            return bytes(out), False
        rest = stream.unused_data.lstrip(b"\x00")
    return bytes(out), True


def _stage_audit(
    files: list[Path], staging: Path, partition: str
) -> tuple[list[ReadProblem], list[Path]]:
    """Read each object line by line into clean NDJSON under ``staging`` (same file names)."""
    schema = table_schema(AUDIT_EVENTS)
    problems: list[ReadProblem] = []
    staged: list[Path] = []
    for path in files:
        data, complete = _decompress(path.read_bytes())
        skipped = repaired = 0
        rows: list[str] = []
        for raw_line in data.split(b"\n"):
            if not raw_line.strip():
                continue
            row, altered = _audit_row(raw_line, schema)
            if row is None:
                skipped += 1
                continue
            repaired += altered
            rows.append(json.dumps(row, separators=(",", ":"), allow_nan=False))
        if skipped or repaired or not complete:
            problems.append(
                ReadProblem(AUDIT_EVENTS, partition, path.name, skipped, repaired, not complete)
            )
        # The staged file keeps the raw object's name: problems DuckDB finds name it.
        out = staging / path.name
        out.write_text("".join(line + "\n" for line in rows), encoding="utf-8")
        staged.append(out)
    return problems, staged


def _audit_row(raw_line: bytes, schema: TableSchema) -> tuple[dict[str, Any] | None, bool]:
    """One line as a row of the DDL's columns (None: unreadable) and whether it was repaired."""
    if len(raw_line) > MAX_LINE_BYTES:
        return None, False
    try:
        text = raw_line.decode("utf-8")
        altered = False
    except UnicodeDecodeError:
        text = raw_line.decode("utf-8", "replace")
        altered = True
    try:
        document = json.loads(text)
    except (ValueError, RecursionError):
        return None, False
    if not isinstance(document, dict):
        return None, False
    if _holds_surrogate(document):
        document = clean_surrogates(document)
        altered = True
    changes = _Changes()
    row = {
        column.name: _coerce(document.get(column.name), column.type, changes)
        for column in schema.columns
    }
    return row, altered or changes.count > 0


def _holds_surrogate(value: Any) -> bool:
    if isinstance(value, str):
        return has_surrogate(value)
    if isinstance(value, dict):
        return any(has_surrogate(str(k)) or _holds_surrogate(v) for k, v in value.items())
    if isinstance(value, list):
        return any(_holds_surrogate(item) for item in value)
    return False


class _Changes:
    """Counts the values :func:`_coerce` could not keep."""

    def __init__(self) -> None:
        self.count = 0

    def dropped(self) -> None:
        self.count += 1


def _coerce(value: Any, kind: exp.DataType, changes: _Changes) -> Any:
    """``value`` as the DDL type ``kind`` reads it, or None (counted) when it cannot be."""
    if value is None:
        return None
    result = _coerce_value(value, kind, changes)
    if result is None:
        changes.dropped()
    return result


def _coerce_value(value: Any, kind: exp.DataType, changes: _Changes) -> Any:
    this = kind.this
    if this == exp.DataType.Type.STRUCT:
        if not isinstance(value, dict):
            return None
        return {
            member.name: _coerce(value.get(member.name), member.args["kind"], changes)
            for member in kind.expressions
        }
    if this == exp.DataType.Type.ARRAY:
        if not isinstance(value, list):
            return None
        element = kind.expressions[0]
        element_type = element if isinstance(element, exp.DataType) else element.args["kind"]
        return [_coerce(item, element_type, changes) for item in value]
    if this == exp.DataType.Type.MAP:
        if not isinstance(value, dict):
            return None
        return {str(key): _text(item) for key, item in value.items()}
    return _coerce_scalar(value, this)


def _coerce_scalar(value: Any, this: Any) -> Any:
    if this == exp.DataType.Type.BOOLEAN:
        return value if isinstance(value, bool) else None
    if this in _INT_RANGES:
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        if isinstance(value, bool) or not isinstance(value, int):
            return None
        bound = _INT_RANGES[this]
        return value if -bound <= value < bound else None
    if this in _FLOATS:
        if isinstance(value, bool) or not isinstance(value, int | float):
            return None
        try:
            number = float(value)
        except OverflowError:
            return None
        return number if math.isfinite(number) else None
    # string: a nested value is its JSON text, as the OpenX SerDe hands it over.
    return _text(value)


def _cloudtrail_parquet(
    connection: duckdb.DuckDBPyConnection, files: list[Path], partition: Partition, target: Path
) -> list[ReadProblem]:
    # CloudTrailSerde matches keys case-insensitively and hands nested values of
    # string columns over as JSON text: done here in Python, then typed by DuckDB.
    schema = table_schema(CLOUDTRAIL_LOGS)
    problems: list[ReadProblem] = []
    lines: list[str] = []
    for path in files:
        data, complete = _decompress(path.read_bytes())
        try:
            text, invalid_text = data.decode("utf-8"), False
        except UnicodeDecodeError:
            text, invalid_text = data.decode("utf-8", "replace"), True
        try:
            document = json.loads(text) if complete else None
        except (ValueError, RecursionError):
            document = None
        records = document.get("Records") if isinstance(document, dict) else None
        if not isinstance(records, list):
            problems.append(
                ReadProblem(CLOUDTRAIL_LOGS, partition.name, path.name, unreadable=True)
            )
            continue
        skipped = repaired = 0
        for record in records:
            if not isinstance(record, dict):
                skipped += 1
                continue
            if _holds_surrogate(record):
                record = clean_surrogates(record)
                repaired += 1
            lines.append(json.dumps(cloudtrail_row(record, schema), separators=(",", ":")))
        if invalid_text:
            repaired = max(repaired, 1)
        if skipped or repaired:
            problems.append(
                ReadProblem(CLOUDTRAIL_LOGS, partition.name, path.name, skipped, repaired)
            )
    _private_dir(target.parent)
    with tempfile.NamedTemporaryFile(
        "w", suffix=".ndjson", dir=target.parent.parent, delete=False, encoding="utf-8"
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
    return problems


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
