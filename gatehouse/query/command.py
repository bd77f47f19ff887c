"""``gatehouse audit query``: Athena SQL or a named query, on Athena or locally.

gatehouse audit query (SQL | --named NAME --param k=v ...) [--engine athena|local]
                      [-o table|json|csv] [--list]

A named query's parameters with a default (``--list`` shows them: a window
is the last 24 hours) may be left out; timestamp values are read as every
command reads times (:mod:`gatehouse.times`: ISO 8601, ``-1h``, ``now``...),
and a window whose ``to`` is not after its ``from`` is refused.
"""

from __future__ import annotations

import csv
import io
import json
import os
import sys
from collections.abc import Mapping, Sequence
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

import click

from gatehouse.query.errors import QueryError, QueryParamError
from gatehouse.query.text import visible
from gatehouse.report.render_csv import defuse as defuse_cell

if TYPE_CHECKING:
    from gatehouse.cli import CliContext
    from gatehouse.query.params import NamedQuery
    from gatehouse.query.result import QueryResult
    from gatehouse.target import Target

ENGINE_HELP = (
    "where the SQL runs: 'local' (DuckDB over a cache of the stage's objects, translated "
    "from Athena SQL) or 'athena' (the stage's workgroup; prints bytes scanned and cost to "
    "stderr). Default: local when the local stack is running, athena otherwise"
)


@click.command(
    "query",
    short_help="run Athena SQL or a named query (infra/athena/queries) over the trail",
)
@click.argument("sql", required=False, help="Athena SQL (one read-only query); or use --named")
@click.option("--named", metavar="NAME", help="a named query (see --list)")
@click.option(
    "--param",
    "params",
    multiple=True,
    metavar="K=V",
    help="a parameter value (repeat); timestamps as ISO 8601 (UTC when no offset), "
    "relative (-1h, 30m), now, today or yesterday",
)
@click.option("--engine", type=click.Choice(["athena", "local"]), help=ENGINE_HELP)
@click.option(
    "-o",
    "--output",
    "fmt",
    type=click.Choice(["table", "json", "csv"]),
    default=None,
    help="table (default), json (one array of objects) or csv",
)
@click.option(
    "--format",
    "format_alias",
    type=click.Choice(["table", "json", "csv"]),
    default=None,
    help="the same as -o (kept as an alias)",
)
@click.option(
    "--list", "list_queries", is_flag=True, help="list the named queries and their params"
)
@click.option(
    "--cache-dir",
    type=click.Path(path_type=Path, readable=False),
    help="the local engine's cache (default ~/.cache/gatehouse/query/<audit bucket>)",
)
@click.pass_obj
def query(
    obj: CliContext,
    *,
    sql: str | None,
    named: str | None,
    params: tuple[str, ...],
    engine: str | None,
    fmt: str | None,
    format_alias: str | None,
    list_queries: bool,
    cache_dir: Path | None,
) -> int:
    """Run Athena SQL, or a named query with --named, over audit_events and cloudtrail_logs."""
    if fmt is not None and format_alias is not None and fmt != format_alias:
        raise click.UsageError(f"-o {fmt} and --format {format_alias} contradict each other")
    return run_query_command(
        state_dir=obj.state_dir,
        sql=sql,
        named=named,
        params=params,
        engine=engine,
        fmt=fmt or format_alias or "table",
        list_queries=list_queries,
        cache_dir=cache_dir,
    )


def parse_params(pairs: Sequence[str]) -> dict[str, str]:
    """``["k=v", ...]`` as a dict.

    Raises
    ------
    QueryParamError
        For a pair without ``=`` or a name given twice.
    """
    params: dict[str, str] = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name.strip():
            raise QueryParamError(f"--param {pair!r}: expected NAME=VALUE")
        if name.strip() in params:
            raise QueryParamError(f"--param {name.strip()!r} is given twice")
        params[name.strip()] = value
    return params


def run_query_command(
    *,
    state_dir: Path | None,
    sql: str | None,
    named: str | None,
    params: Sequence[str] = (),
    engine: str | None = None,
    fmt: str = "table",
    list_queries: bool = False,
    cache_dir: Path | None = None,
    out: TextIO | None = None,
    err: TextIO | None = None,
) -> int:
    """Run ``gatehouse audit query``; 0 on success (errors raise :class:`QueryError`)."""
    out = out or sys.stdout
    err = err or sys.stderr
    if list_queries:
        print_named_queries(out)
        return 0
    if bool(sql) == bool(named):
        raise QueryError("give either SQL or --named NAME (see --list)")
    values = parse_params(params)
    from gatehouse.query.params import load_named_query, parse_statement, require_query

    # Refuse what no engine would run before syncing anything or calling AWS.
    statement = load_named_query(named).sql if named else sql
    assert statement is not None  # exactly one of the two, checked above
    require_query(parse_statement(statement))
    if named:
        values = named_values(load_named_query(named), values)
    from gatehouse.target import resolve_target

    target = resolve_target(state_dir)
    runner = build_engine(target, engine, cache_dir)
    result = runner.run_named(named, values) if named else runner.run(sql, values)
    write_result(result, fmt, out)
    for warning in getattr(result, "warnings", ()):
        print(f"warning: {visible(warning)}", file=err)
    if result.bytes_scanned is not None:
        print(
            f"{result.engine}: scanned {result.bytes_scanned:,} bytes, "
            f"cost ${result.cost_usd or 0:.6f} (10 MB minimum), query {result.query_id}, "
            f"{result.elapsed_s:.2f} s",
            file=err,
        )
    else:
        print(f"{result.engine}: {len(result.rows)} rows in {result.elapsed_s:.3f} s", file=err)
    return 0


def default_cache_dir(bucket: str) -> Path:
    """``$XDG_CACHE_HOME/gatehouse/query/<bucket>`` (``~/.cache`` by default)."""
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "gatehouse" / "query" / bucket


def named_values(query: NamedQuery, given: Mapping[str, str]) -> dict[str, str]:
    """``given`` with the defaults of ``query``'s other parameters, timestamps as UTC text.

    Timestamps are read as :mod:`gatehouse.times` reads every time, then
    written as the engines take them (``YYYY-MM-DD HH:MM:SS.fff``).

    Raises
    ------
    QueryParamError
        For a timestamp that cannot be read, or ``to`` not after ``from``.
    """
    from gatehouse.times import TimeArgumentError, parse_time_argument

    values = {
        param.name: param.default
        for param in query.params
        if param.default is not None and param.name not in given
    }
    values.update(given)
    now = datetime.now(UTC)
    moments: dict[str, datetime] = {}
    for param in query.params:
        if param.type != "timestamp" or param.name not in values:
            continue
        try:
            moments[param.name] = parse_time_argument(
                values[param.name], f"--param {param.name}", now=now
            )
        except TimeArgumentError as exc:
            raise QueryParamError(str(exc)) from None
        values[param.name] = moments[param.name].strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]
    start, end = moments.get("from"), moments.get("to")
    if start is not None and end is not None and end <= start:
        raise QueryParamError(
            f"--param to ({values['to']}) must be after --param from ({values['from']}): "
            "the window holds nothing"
        )
    return values


def build_engine(target: Target, engine: str | None, cache_dir: Path | None) -> Any:
    """The engine for ``target``: local when asked or the local stack runs, else Athena.

    Raises
    ------
    QueryError
        When Athena is asked for on the local stack, which has none.
    """
    choice = engine or ("local" if target.local else "athena")
    if choice == "athena" and target.local:
        raise QueryError("the local stack has no Athena: use --engine local")
    if choice == "athena":
        from gatehouse.query.athena import AthenaEngine

        return AthenaEngine(target.client("athena"), target.workgroup, target.database)
    from gatehouse.query.local import LocalEngine

    return LocalEngine(
        cache_dir or default_cache_dir(target.audit_bucket),
        target.client("s3"),
        target.audit_bucket,
        target.trail_bucket,
        target.account_id,
    )


def print_named_queries(out: TextIO) -> None:
    """Each named query: name, description, params."""
    from gatehouse.query.params import named_queries

    for query in named_queries():
        print(f"{query.name}\n    {query.description}", file=out)
        for param in query.params:
            default = "" if param.default is None else f" (default: {param.default or 'empty'})"
            print(f"    --param {param.name}=<{param.type}>  {param.help}{default}", file=out)


def _plain(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat(sep=" ") if isinstance(value, datetime) else value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(item) for item in value]
    return value


def _cell(value: Any) -> str:
    plain = _plain(value)
    if plain is None:
        return ""
    if isinstance(plain, dict | list):
        return json.dumps(plain, separators=(",", ":"))
    if isinstance(plain, bool):
        return "true" if plain else "false"
    return str(plain)


def _csv_cell(value: Any) -> Any:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return value  # a number, negative ones included, is not a formula
    # Control and bidi characters shown as escapes: CSV is read on terminals too.
    return defuse_cell(visible(_cell(value)))


def write_result(result: QueryResult, fmt: str, out: TextIO) -> None:
    """Print ``result`` as an aligned table, JSON (a list of objects) or CSV."""
    if fmt == "json":
        rows = [
            dict(zip(result.columns, (_plain(v) for v in row), strict=True)) for row in result.rows
        ]
        out.write(json.dumps(rows, indent=2) + "\n")
        return
    if fmt == "csv":
        # Cells come from clients: defused so a spreadsheet shows them as text.
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow([defuse_cell(visible(name)) for name in result.columns])
        writer.writerows([_csv_cell(value) for value in row] for row in result.rows)
        out.write(buffer.getvalue())
        return
    out.write(format_table(result.columns, result.rows) + "\n")


def format_table(columns: Sequence[str], rows: Sequence[Sequence[Any]], max_width: int = 60) -> str:
    """An aligned text table; cells longer than ``max_width`` are cut with an ellipsis.

    Control characters (C0, DEL, C1) and bidi controls are shown as escapes
    (``\\x1b``, ``\\u202e``): a value cannot move the cursor, open a link,
    rewrite the line or reorder what the terminal shows.
    """
    columns = [visible(name) for name in columns]
    cells = [[visible(_cell(value)) for value in row] for row in rows]
    cells = [
        [text if len(text) <= max_width else text[: max_width - 1] + "…" for text in row]
        for row in cells
    ]
    widths = [len(name) for name in columns]
    for row in cells:
        widths = [max(width, len(text)) for width, text in zip(widths, row, strict=True)]
    lines = ["  ".join(name.ljust(width) for name, width in zip(columns, widths, strict=True))]
    lines.append("  ".join("-" * width for width in widths))
    lines += [
        "  ".join(text.ljust(width) for text, width in zip(row, widths, strict=True))
        for row in cells
    ]
    lines.append(f"({len(rows)} row{'s' if len(rows) != 1 else ''})")
    return "\n".join(line.rstrip() for line in lines)
