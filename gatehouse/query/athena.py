"""The Athena engine: start, poll, paginate; Athena's string results typed as DuckDB types them.

The SQL Athena runs is the named query's own text with its parameters bound
as typed literals in the sqlglot tree (regenerated in Athena's dialect), run
in the configured workgroup (whose per-query bytes-scanned limit applies)
with the Glue database as the query context.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from gatehouse.query.errors import QueryError, QueryFailed
from gatehouse.query.params import (
    bind,
    load_named_query,
    parse_header,
    parse_statement,
    require_query,
)
from gatehouse.query.result import QueryResult, athena_cost_usd

ENGINE_NAME = "athena"
_DONE = ("SUCCEEDED", "FAILED", "CANCELLED")


def _timestamp(text: str) -> datetime:
    # Athena prints timestamps as 'YYYY-MM-DD HH:MM:SS[.fff]' (and ' UTC' / zone for tz).
    body = text.removesuffix(" UTC")
    value = datetime.fromisoformat(body.strip())
    return value.replace(tzinfo=UTC) if text.endswith(" UTC") else value


def _zoned(text: str) -> datetime:
    head, _, zone = text.rpartition(" ")
    if zone in ("UTC", "Z") or zone.startswith(("+", "-")):
        value = datetime.fromisoformat(head if zone in ("UTC", "Z") else head + zone)
        return value.astimezone(UTC) if value.tzinfo else value.replace(tzinfo=UTC)
    raise ValueError(f"unsupported time zone {zone!r} (set the session zone to UTC)")


def _boolean(text: str) -> bool:
    return text.lower() == "true"


def _array(text: str) -> Any:
    # Athena prints arrays as [a, b]; elements are not quoted, so only JSON-like
    # output (json casts) can be typed further: keep the text otherwise.
    try:
        return json.loads(text)
    except ValueError:
        inner = text[1:-1] if text.startswith("[") and text.endswith("]") else text
        return [] if not inner else [part.strip() for part in inner.split(", ")]


_CONVERTERS: dict[str, Callable[[str], Any]] = {
    "varchar": str,
    "char": str,
    "json": str,
    "boolean": _boolean,
    "tinyint": int,
    "smallint": int,
    "integer": int,
    "bigint": int,
    "double": float,
    "real": float,
    "float": float,
    "decimal": Decimal,
    "date": date.fromisoformat,
    "timestamp": _timestamp,
    "timestamp with time zone": _zoned,
    "array": _array,
}


def convert(value: str | None, athena_type: str) -> Any:
    """One result cell (Athena returns text) as the Python value DuckDB would give."""
    if value is None:
        return None
    kind = athena_type.lower().split("(", 1)[0].strip()
    converter = _CONVERTERS.get(kind)
    if converter is None:
        return value  # row, map, varbinary...: Athena's text as it is
    try:
        return converter(value)
    except (ValueError, ArithmeticError):
        return value


class AthenaEngine:
    """Athena SQL run by Athena.

    Parameters
    ----------
    athena_client:
        A boto3 Athena client.
    workgroup, database:
        The workgroup (its bytes-scanned limit and results location apply) and
        the Glue database holding ``audit_events`` and ``cloudtrail_logs``.
    poll_interval:
        First wait between polls; doubles up to ``max_poll_interval``.
    timeout:
        Seconds before the query is cancelled and :class:`QueryFailed` raised.
    """

    name = ENGINE_NAME

    def __init__(
        self,
        athena_client: Any,
        workgroup: str,
        database: str,
        poll_interval: float = 0.25,
        *,
        max_poll_interval: float = 2.0,
        timeout: float = 600.0,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._athena = athena_client
        self.workgroup = workgroup
        self.database = database
        self.poll_interval = poll_interval
        self.max_poll_interval = max_poll_interval
        self.timeout = timeout
        self._sleep = sleep

    def render(self, sql: str, params: Mapping[str, str] | None = None) -> str:
        """The Athena SQL with ``params`` bound as typed literals."""
        tree = parse_statement(sql)
        require_query(tree, "gatehouse audit query")
        _, declared = parse_header(sql)
        types = {param.name: param.type for param in declared} if declared else None
        return bind(tree, types, params or {}).sql(dialect="athena", pretty=True, comments=False)

    def run(self, sql: str, params: Mapping[str, str] | None = None) -> QueryResult:
        """Run Athena SQL with ``params`` and wait for its rows.

        Raises
        ------
        QueryError
            For bad SQL or params (before anything is sent), a FAILED or
            CANCELLED query (with Athena's reason), a timeout, or an API error.
        """
        started = time.perf_counter()
        text = self.render(sql, params)
        try:
            query_id = self._athena.start_query_execution(
                QueryString=text,
                WorkGroup=self.workgroup,
                QueryExecutionContext={"Database": self.database},
            )["QueryExecutionId"]
            execution = self._wait(query_id, started)
            columns, rows = self._results(query_id)
        except (ClientError, BotoCoreError) as exc:
            raise QueryError(f"Athena refused the request: {exc}") from exc
        scanned = int(execution.get("Statistics", {}).get("DataScannedInBytes") or 0)
        return QueryResult(
            columns=columns,
            rows=rows,
            engine=self.name,
            bytes_scanned=scanned,
            cost_usd=athena_cost_usd(scanned),
            elapsed_s=time.perf_counter() - started,
            query_id=query_id,
        )

    def run_named(self, name: str, params: Mapping[str, str]) -> QueryResult:
        """Run the named query ``name`` with ``params``."""
        return self.run(load_named_query(name).sql, params)

    def _wait(self, query_id: str, started: float) -> dict[str, Any]:
        interval = self.poll_interval
        while True:
            execution = self._athena.get_query_execution(QueryExecutionId=query_id)[
                "QueryExecution"
            ]
            status = execution.get("Status", {})
            state = status.get("State")
            if state == "SUCCEEDED":
                return dict(execution)
            if state in ("FAILED", "CANCELLED"):
                reason = status.get("StateChangeReason") or status.get("AthenaError", {}).get(
                    "ErrorMessage", "no reason given"
                )
                raise QueryFailed(f"Athena query {query_id} {state}: {reason}")
            if time.perf_counter() - started > self.timeout:
                self._athena.stop_query_execution(QueryExecutionId=query_id)
                raise QueryFailed(
                    f"Athena query {query_id} still {state} after {self.timeout:.0f} s: cancelled"
                )
            self._sleep(interval)
            interval = min(interval * 2, self.max_poll_interval)

    def _results(self, query_id: str) -> tuple[list[str], list[tuple[Any, ...]]]:
        columns: list[str] = []
        types: list[str] = []
        rows: list[tuple[Any, ...]] = []
        header_skipped = False
        paginator = self._athena.get_paginator("get_query_results")
        for page in paginator.paginate(QueryExecutionId=query_id):
            result_set = page.get("ResultSet", {})
            if not columns:
                info = result_set.get("ResultSetMetadata", {}).get("ColumnInfo", [])
                columns = [column["Name"] for column in info]
                types = [column.get("Type", "varchar") for column in info]
            for row in result_set.get("Rows", []):
                cells = [cell.get("VarCharValue") for cell in row.get("Data", [])]
                # The first row of the first page repeats the column names.
                if not header_skipped:
                    header_skipped = True
                    if cells == columns:
                        continue
                rows.append(
                    tuple(convert(cell, kind) for cell, kind in zip(cells, types, strict=False))
                )
        return columns, rows
