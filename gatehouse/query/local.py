"""The local engine: Athena SQL on DuckDB, in process, over the stored objects.

The SQL is the Athena SQL of ``infra/athena/queries`` (or typed at the CLI);
:mod:`gatehouse.query.dialect` translates it with the corrections that make
DuckDB answer as Athena would. The data is the same objects Athena reads:
synced from S3 (the ledger's objects by version id, the trail's files) into a
cache and compacted there to Parquet (:mod:`gatehouse.query.dataset`), or,
for tests, records written out in the stored layout (:meth:`LocalEngine.from_records`).
"""

from __future__ import annotations

import shutil
import tempfile
import time
import weakref
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb

from gatehouse.query.dataset import Dataset, write_records
from gatehouse.query.dialect import to_duckdb
from gatehouse.query.errors import QueryFailed
from gatehouse.query.params import (
    bind,
    load_named_query,
    parse_header,
    parse_statement,
    require_query,
)
from gatehouse.query.result import QueryResult
from gatehouse.query.sync import sync_bucket

ENGINE_NAME = "local"


def _sql_string(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def connect(threads: int | None = None) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB connection in Athena's session zone (UTC)."""
    config: dict[str, Any] = {"threads": threads} if threads else {}
    connection = duckdb.connect(":memory:", config=config)
    connection.execute("SET TimeZone='UTC'")
    return connection


def fetch(
    connection: duckdb.DuckDBPyConnection, sql: str
) -> tuple[list[str], list[tuple[Any, ...]]]:
    """Run DuckDB SQL; ``timestamp with time zone`` columns come back as aware UTC datetimes.

    Raises
    ------
    QueryFailed
        When DuckDB refuses or fails the query.
    """
    try:
        relation = connection.sql(sql)
        if relation is None:
            return [], []
        columns = list(relation.columns)
        zoned = [str(kind) == "TIMESTAMP WITH TIME ZONE" for kind in relation.types]
        if any(zoned):
            # Fetched as UTC wall time, then marked UTC (no tz database needed).
            projection = ", ".join(
                f"CAST(#{index + 1} AS TIMESTAMP)" if is_zoned else f"#{index + 1}"
                for index, is_zoned in enumerate(zoned)
            )
            relation = relation.project(projection)
        rows = relation.fetchall()
    except duckdb.Error as exc:
        raise QueryFailed(f"the local engine failed the query: {exc}") from exc
    if any(zoned):
        rows = [
            tuple(
                value.replace(tzinfo=UTC) if is_zoned and isinstance(value, datetime) else value
                for value, is_zoned in zip(row, zoned, strict=True)
            )
            for row in rows
        ]
    return columns, rows


class LocalEngine:
    """Athena SQL answered by DuckDB over a local cache of the stored objects.

    Parameters
    ----------
    cache_dir:
        Where synced objects and their Parquet compaction are kept between runs.
    s3_client:
        A boto3 S3 client for the buckets (None: query the cache as it is).
    audit_bucket:
        The ledger's bucket (objects under ``audit/v1/events/``).
    trail_bucket, account_id:
        The CloudTrail bucket and the account under ``AWSLogs/`` (None: every account).
    """

    name = ENGINE_NAME

    def __init__(
        self,
        cache_dir: Path | str,
        s3_client: Any = None,
        audit_bucket: str | None = None,
        trail_bucket: str | None = None,
        account_id: str | None = None,
        *,
        threads: int | None = None,
    ) -> None:
        self.dataset = Dataset(Path(cache_dir))
        self.synced: dict[str, int] = {}
        if s3_client is not None and audit_bucket:
            self.synced = sync_bucket(
                self.dataset, s3_client, audit_bucket, trail_bucket, account_id
            )
        self._connection = connect(threads)
        # Spill inside the cache: DuckDB would otherwise allow <cwd>/.tmp/ to queries.
        self._connection.execute(
            f"SET temp_directory={_sql_string(str(self.dataset.temp.resolve()))}"
        )
        self.problems = self.dataset.build(self._connection)
        self.warnings: list[str] = self.dataset.warnings(self.problems)
        self.dataset.create_views(self._connection)
        self._lock_down()

    @classmethod
    def from_records(
        cls, events: Iterable[Mapping[str, Any]], cloudtrail: Iterable[Mapping[str, Any]] = ()
    ) -> LocalEngine:
        """An engine over records written out as the stack stores them (for tests).

        ``events`` are audit events as stored (``"ledger"`` included), filed
        under the ``dt``/``hour`` of their ``event_time``; ``cloudtrail`` are
        CloudTrail records, filed under their ``awsRegion`` and day. The
        temporary cache is removed with the engine.
        """
        directory = Path(tempfile.mkdtemp(prefix="gatehouse-query-"))
        write_records(Dataset(directory), events, cloudtrail)
        engine = cls(directory)
        weakref.finalize(engine, shutil.rmtree, directory, ignore_errors=True)
        return engine

    def _lock_down(self) -> None:
        # Queries may read the cache and nothing else on this machine.
        root = str(self.dataset.root.resolve()) + "/"
        self._connection.execute(f"SET allowed_directories=[{_sql_string(root)}]")
        self._connection.execute("SET enable_external_access=false")
        self._connection.execute("SET lock_configuration=true")

    def translate(self, sql: str, params: Mapping[str, str] | None = None) -> str:
        """The DuckDB SQL this engine runs for ``sql`` with ``params`` bound."""
        tree = parse_statement(sql)
        require_query(tree, "the local engine")
        _, declared = parse_header(sql)
        types = {param.name: param.type for param in declared} if declared else None
        return to_duckdb(bind(tree, types, params or {}))

    def run(self, sql: str, params: Mapping[str, str] | None = None) -> QueryResult:
        """Run Athena SQL; params (strings) bind its ``:name`` placeholders.

        Typed by the SQL's ``-- param:`` header when it has one, else as varchar.

        Raises
        ------
        QueryError
            For bad SQL, params, a statement that is not a query, a construct
            that cannot be answered as Athena would, or a failure in DuckDB.
        """
        started = time.perf_counter()
        columns, rows = fetch(self._connection, self.translate(sql, params))
        return QueryResult(
            columns=columns,
            rows=rows,
            engine=self.name,
            bytes_scanned=None,
            cost_usd=None,
            elapsed_s=time.perf_counter() - started,
            warnings=list(self.warnings),
        )

    def run_named(self, name: str, params: Mapping[str, str]) -> QueryResult:
        """Run the named query ``name`` with ``params``."""
        query = load_named_query(name)
        return self.run(query.sql, params)

    def close(self) -> None:
        """Close the DuckDB connection."""
        self._connection.close()
