"""The local query engine and the bytes Athena would scan, over one day of 1,000,000 events.

Generates a day of audit events shaped as the stack writes them (decision and
response events, ~1,000 principals, NDJSON.gz objects of 1,000 lines under
dt=/hour= partitions), builds the local engine's cache (Parquet per hour,
sorted by principal), then times a per-principal one-day query:

* cold: a new engine (new DuckDB connection) on the built cache, first run;
* warm: the same query again on that engine (median);
* floor: DuckDB's ``count(*)`` over the same Parquet files, same run.

Then what Athena would scan for that query, from the real files, scaled to
10,000,000 events/day:

(a) the ledger's own layout: every NDJSON.gz object of the day (JSON has no
    column pruning; the principal is in every object);
(b) a compacted layout: one Parquet file per dt, sorted by principal email,
    row groups of ``--row-group`` rows. Athena reads the footer and, of the
    row groups whose principal.email min/max cover the principal, only the
    column chunks the query touches. Scaled: bytes per row of those chunks x
    the rows of the row groups the principal's 10,000 events/day span.

Run: ``.venv/bin/python -m bench.bench_query [--events N] [--row-group N]``.
"""

# ruff: noqa: S608 - the SQL here is built from the bench's own file paths and constants
from __future__ import annotations

import argparse
import gzip
import json
import math
import random
import shutil
import statistics
import tempfile
import time
from pathlib import Path

from chalicelib.ledger.layout import EVENTS_PREFIX
from gatehouse.query.dataset import Dataset, Partition, raw_name
from gatehouse.query.local import LocalEngine, connect
from gatehouse.query.schema import AUDIT_EVENTS

DAY = "2026-03-10"
PRINCIPALS = 1_000
OBJECT_LINES = 1_000
TARGET_EVENTS_PER_DAY = 10_000_000
QUERY = """-- param: email varchar  the principal
-- param: day varchar  the day (dt)
SELECT event_time, event_type, request.id AS request_id, resource.method, resource.path,
       decision.outcome, outcome.status
FROM audit_events
WHERE dt = :day AND principal.email = :email
ORDER BY event_time, event_type"""
# The leaf columns that query reads (Parquet column chunks), for the Athena estimate.
QUERY_COLUMNS = (
    "event_time",
    "event_type",
    "request.id",
    "resource.method",
    "resource.path",
    "decision.outcome",
    "outcome.status",
    "principal.email",
)
ROUTES = ["orders", "billing", "reports", "admin", "search"]


def _event_line(
    rng: random.Random, seq: int, second: float, who: int, request: int, kind: str
) -> str:
    ms = int(second * 1000)
    hh, rest = divmod(ms, 3_600_000)
    mm, rest = divmod(rest, 60_000)
    ss, milli = divmod(rest, 1000)
    route = ROUTES[who % len(ROUTES)]
    method = "GET" if request % 4 else "POST"
    deny = request % 17 == 0
    event = {
        "schema_version": 1,
        "event_id": f"0190{seq:028x}",
        "event_type": kind,
        "event_time": f"{DAY}T{hh:02d}:{mm:02d}:{ss:02d}.{milli:03d}Z",
        "stage": "prod",
        "request": {
            "id": f"req-{request:09d}",
            "extended_id": f"ext-{request:09d}",
            "lambda_request_id": f"lam-{seq:012d}",
            "trace_id": f"Root=1-{request:024x}",
            "decision_id": f"dec-{request:09d}",
        },
        "principal": {
            "issuer": "https://idp.example.com",
            "subject": f"sub-{who:06d}",
            "email": f"user{who:04d}@example.com",
            "groups": ["engineering", f"team-{who % 40}"],
            "amr": ["pwd", "mfa"],
            "auth_time": 1_773_100_000,
            "client_id": "gatehouse",
            "session_id": f"s-{who}-{request % 7}",
            "token_id": f"t-{request:09d}",
            "token_expires_at": 1_773_200_000,
        },
        "source": {
            "ip": f"10.{who % 250}.{request % 250}.{who % 200 + 1}",
            "user_agent": "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 Chrome/131.0",
        },
        "resource": {
            "host": "api.example.com",
            "method": method,
            "path": f"/api/{route}/{request % 5000}",
            "query": None,
            "route_id": route,
            "upstream": f"https://{route}.internal.example.com",
            "sensitive": route == "admin",
        },
        "action": "read" if method == "GET" else "write",
        "decision": {
            "outcome": "deny" if deny else "allow",
            "reasons": ["no_matching_rule" if deny else "allow_rule_matched"],
            "matched_rules": [] if deny else [f"{route}-rw"],
            "policy_version": 42,
            "policy_checksum": "9f2c4e1ab3",
            "decided_by": "authorizer",
            "cached": request % 3 == 0,
            "detail": None,
        },
        "outcome": None
        if kind == "decision"
        else {
            "status": 200 if rng.random() > 0.02 else 502,
            "bytes_in": 0 if method == "GET" else 512,
            "bytes_out": rng.randrange(200, 20_000),
            "latency_ms": round(rng.uniform(5, 300), 3),
            "upstream_latency_ms": round(rng.uniform(3, 250), 3),
            "error": None,
        },
        "elevation": None,
        "aws": None,
        "anomalies": [],
        "policy_change": None,
        "grant": None,
        "ledger": {"sequence": seq},
    }
    return json.dumps(event, separators=(",", ":"))


def generate(dataset: Dataset, events: int, seed: int = 7) -> tuple[int, Path]:
    """Write ``events`` events of one day as ledger objects; returns (compressed bytes, raw dir)."""
    rng = random.Random(seed)
    requests = events // 2
    spacing = 86_400 / requests
    lines: list[str] = []
    compressed = 0
    seq = 0
    hour_of_batch = 0

    def flush() -> None:
        nonlocal compressed, lines
        if not lines:
            return
        data = gzip.compress(("\n".join(lines) + "\n").encode(), compresslevel=6)
        compressed += len(data)
        partition = Partition((("dt", DAY), ("hour", hour_of_batch)))
        key = f"{EVENTS_PREFIX}dt={DAY}/hour={hour_of_batch:02d}/{seq:016d}.ndjson.gz"
        dataset.add_raw(AUDIT_EVENTS, partition, raw_name(key, "v1"), data)
        lines = []

    for request in range(requests):
        second = request * spacing
        hour = int(second // 3600)
        if hour != hour_of_batch:
            flush()
            hour_of_batch = hour
        who = rng.randrange(PRINCIPALS)
        for kind, offset in (("decision", 0.005), ("response", 0.025)):
            lines.append(
                _event_line(rng, seq, min(second + offset, 86_399.999), who, request, kind)
            )
            seq += 1
        if len(lines) >= OBJECT_LINES:
            flush()
    flush()
    return compressed, dataset.raw


def line(label: str, seconds: float, floor: float | None = None, budget: str = "") -> None:
    """One timing figure in ms, its ratio to the floor, and its budget."""
    ratio = f"  {seconds / floor:6.1f}x floor" if floor else ""
    print(f"  {label:46} {seconds * 1e3:8.1f} ms{ratio}   {budget}".rstrip(), flush=True)


def timed(function: object, repeat: int = 1) -> tuple[float, object]:
    samples, result = [], None
    for _ in range(repeat):
        started = time.perf_counter()
        result = function()  # type: ignore[operator]
        samples.append(time.perf_counter() - started)
    return statistics.median(samples), result


def compacted_estimate(
    directory: Path, row_group: int, email: str, events: int
) -> dict[str, float]:
    """Layout (b): one Parquet per day sorted by principal; what Athena reads for ``email``."""
    connection = connect()
    parquet = directory / "day.parquet"
    sources = sorted(str(path) for path in (directory / "parquet" / AUDIT_EVENTS).glob("*.parquet"))
    listing = "[" + ", ".join(f"'{path}'" for path in sources) + "]"
    connection.execute(
        f"COPY (SELECT * FROM read_parquet({listing}) ORDER BY principal.email, event_time) "
        f"TO '{parquet}' (FORMAT parquet, COMPRESSION zstd, ROW_GROUP_SIZE {row_group})"
    )
    meta = connection.execute(
        "SELECT row_group_id, row_group_num_rows, path_in_schema, stats_min_value, "
        f"stats_max_value, total_compressed_size FROM parquet_metadata('{parquet}')"
    ).fetchall()
    file_size = parquet.stat().st_size
    paths = {column: column.replace(".", ", ") for column in QUERY_COLUMNS}
    wanted = set(paths.values())
    groups: dict[int, dict[str, int]] = {}
    covering: set[int] = set()
    rows_per_group: dict[int, int] = {}
    for group, rows, path, low, high, size in meta:
        rows_per_group[group] = rows
        if path in wanted:
            groups.setdefault(group, {})[path] = size
        if path == paths["principal.email"] and low is not None and low <= email <= high:
            covering.add(group)
    total_rows = sum(rows_per_group.values())
    read_bytes = sum(sum(groups[group].values()) for group in covering)
    read_rows = sum(rows_per_group[group] for group in covering)
    bytes_per_row = sum(sum(columns.values()) for columns in groups.values()) / total_rows
    # The footer: what the file holds beyond its column chunks (metadata, magic).
    chunks = sum(row[5] for row in meta)
    footer_bytes = max(file_size - chunks, 0)
    principal_rows_at_target = TARGET_EVENTS_PER_DAY / PRINCIPALS
    groups_at_target = math.ceil(principal_rows_at_target / row_group) + 1  # straddles a boundary
    scaled = (
        groups_at_target * row_group * bytes_per_row + footer_bytes * TARGET_EVENTS_PER_DAY / events
    )
    connection.close()
    return {
        "file_bytes": file_size,
        "row_groups": len(rows_per_group),
        "covering_groups": len(covering),
        "read_bytes": read_bytes + footer_bytes,
        "read_rows": read_rows,
        "bytes_per_row": bytes_per_row,
        "scaled_bytes": scaled,
        "groups_at_target": groups_at_target,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--row-group", type=int, default=100_000)
    parser.add_argument("--keep", type=Path, help="keep the cache here (default: a temp dir)")
    args = parser.parse_args()
    directory = args.keep or Path(tempfile.mkdtemp(prefix="gatehouse-bench-query-"))
    try:
        dataset = Dataset(directory)
        print(
            f"query bench: {args.events:,} events, {PRINCIPALS:,} principals, one day", flush=True
        )
        seconds, result = timed(lambda: generate(dataset, args.events))
        compressed = result[0]  # type: ignore[index]
        print(
            f"  generated the ledger objects              {seconds:8.2f} s   "
            f"{compressed / 1e6:8.1f} MB NDJSON.gz"
        )
        seconds, _ = timed(lambda: LocalEngine(directory).close())
        print(f"  built the cache (NDJSON.gz -> Parquet)    {seconds:8.2f} s   (once per version)")
        email, params = "user0421@example.com", {"email": "user0421@example.com", "day": DAY}

        def cold() -> int:
            engine = LocalEngine(directory)
            rows = len(engine.run(QUERY, params).rows)
            engine.close()
            return rows

        cold_s, rows = timed(cold, repeat=3)
        engine = LocalEngine(directory)
        engine.run(QUERY, params)
        warm_s, _ = timed(lambda: engine.run(QUERY, params), repeat=7)
        files = sorted(str(p) for p in (directory / "parquet" / AUDIT_EVENTS).glob("*.parquet"))
        listing = "[" + ", ".join(f"'{path}'" for path in files) + "]"
        floor_connection = connect()
        floor_s, _ = timed(
            lambda: floor_connection.execute(
                f"SELECT count(*) FROM read_parquet({listing})"
            ).fetchall(),
            repeat=7,
        )
        scan_s, _ = timed(
            lambda: floor_connection.execute(
                f"SELECT count(*) FROM read_parquet({listing}) WHERE principal.email = '{email}'"
            ).fetchall(),
            repeat=7,
        )
        budget = "budget <= 1000 ms"
        line(f"per-principal day query, cold ({rows} rows)", cold_s, floor_s, budget)
        line("per-principal day query, warm", warm_s, floor_s, budget)
        line("floor: DuckDB count(*) over the Parquet", floor_s)
        line("plain DuckDB filter on principal.email", scan_s, floor_s)
        raw_scaled = compressed * TARGET_EVENTS_PER_DAY / args.events
        print(f"  Athena bytes for that query at {TARGET_EVENTS_PER_DAY / 1e6:.0f}M events/day:")
        print(
            f"    (a) ledger layout, NDJSON.gz, whole day:  {raw_scaled / 1e6:8.1f} MB   "
            f"(${raw_scaled / 2**40 * 5:.4f}/query)   goal <= 10 MB"
        )
        for row_group in sorted({args.row_group, 50_000, 200_000}):
            estimate = compacted_estimate(directory, row_group, email, args.events)
            print(
                f"    (b) Parquet/dt sorted by email, {row_group // 1000:3d}k-row groups: "
                f"{estimate['scaled_bytes'] / 1e6:6.2f} MB   "
                f"(here: {estimate['covering_groups']:.0f} of "
                f"{estimate['row_groups']:.0f} groups, {estimate['read_bytes'] / 1e6:.2f} MB read; "
                f"{estimate['bytes_per_row']:.1f} B/row of the query's columns; at 10M: "
                f"{estimate['groups_at_target']:.0f} groups)"
            )
        engine.close()
    finally:
        if args.keep is None:
            shutil.rmtree(directory, ignore_errors=True)


if __name__ == "__main__":
    main()
