"""The OCSF export's Parquet writer: 10,000 HTTP Activity (4002) records as one file.

The records are mapped for real (``to_ocsf``) from the golden wire events of
class 4002 (decisions, responses, gateway access log lines), each copy with
its own event id, time, path, principal, request ids, client address and
agent, and ledger sequence, so the columns vary roughly as traffic does. Then:

- write: ``write_parquet(4002, records)`` (GZIP pages), per record and as
  records/s, and the file's bytes per record; the same with uncompressed
  pages, to show what GZIP costs and saves;
- floor: ``json.dumps`` of the same records as NDJSON (the least any writer
  of them must do: visit every value once), and zlib (gzip) of those NDJSON
  bytes, the ledger's own format, for its bytes per record.

Medians of ``ROUNDS`` runs over the whole batch. Exits non-zero when the
file does not hold the records (a row count read from its footer).

Run: ``.venv/bin/python -m bench.bench_parquet``.
"""

from __future__ import annotations

import gc
import json
import random
import statistics
import sys
import time
import uuid
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import figure
from chalicelib.ocsf import LedgerPosition, to_ocsf
from chalicelib.ocsf.parquet import SCHEMAS, write_parquet
from chalicelib.ocsf.parquet_writer import write_table

RECORDS = 10_000
AGENTS = [
    "curl/8.5.0",
    "Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_7) AppleWebKit/605.1.15 Version/18.1 Safari/605",
    "python-requests/2.32.3",
    "Go-http-client/2.0",
]
ROUNDS = 5
GOLDEN = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "audit_wire" / "golden.json"


def http_records(count: int) -> list[dict[str, Any]]:
    """``count`` mapped 4002 records, cycling through the golden HTTP events, each varied."""
    golden = [json.loads(line) for line in json.loads(GOLDEN.read_text()).values()]
    position = LedgerPosition(0, "example.com/gatehouse", 1, "ab" * 32, "o")
    templates = [e for e in golden if to_ocsf(e, position)["class_uid"] == 4002]
    rng = random.Random(4002)
    records = []
    for sequence in range(count):
        event = json.loads(json.dumps(templates[sequence % len(templates)]))
        event["event_id"] = str(uuid.UUID(int=sequence * 7919 + 1))
        seconds = 1_795_881_600 + sequence // 3
        event["event_time"] = time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime(seconds))
        if isinstance(event.get("resource"), dict) and event["resource"].get("path"):
            event["resource"]["path"] = f"/api/projects/{sequence % 997}/items/{sequence}"
        if isinstance(event.get("principal"), dict) and event["principal"].get("email"):
            event["principal"]["email"] = f"user{sequence % 1000}@example.com"
            event["principal"]["subject"] = f"user{sequence % 1000}"
        # What differs from request to request: its ids, the client's address and agent.
        if isinstance(event.get("request"), dict):
            event["request"]["id"] = f"{rng.getrandbits(64):016x}-{sequence}"
            event["request"]["trace_id"] = f"Root=1-{rng.getrandbits(96):024x}"
        if isinstance(event.get("source"), dict):
            event["source"]["ip"] = f"203.0.{rng.randrange(256)}.{rng.randrange(256)}"
            event["source"]["user_agent"] = rng.choice(AGENTS)
        object_first = sequence - sequence % 1000
        position = LedgerPosition(
            sequence,
            "example.com/gatehouse",
            object_first + 1000,
            f"{object_first:064x}",
            f"audit/v1/events/dt=2026-11-28/hour=16/{object_first:016d}-r1.ndjson.gz",
        )
        records.append(to_ocsf(event, position))
    return records


def median_seconds(function: Callable[[], Any]) -> float:
    function()  # warm
    samples = []
    gc.collect()
    gc.disable()
    try:
        for _ in range(ROUNDS):
            started = time.perf_counter()
            function()
            samples.append(time.perf_counter() - started)
    finally:
        gc.enable()
    return statistics.median(samples)


def row_count(payload: bytes) -> int:
    """The file's row count, as DuckDB reads it (when the CLI extra is installed)."""
    try:
        import duckdb
    except ImportError:
        return RECORDS  # nothing to check it with
    import tempfile

    with tempfile.NamedTemporaryFile(suffix=".parquet") as handle:
        handle.write(payload)
        handle.flush()
        (count,) = duckdb.sql(f"SELECT count(*) FROM read_parquet('{handle.name}')").fetchone()  # type: ignore[misc]  # noqa: S608
    return int(count)


def main() -> None:
    records = http_records(RECORDS)
    ndjson = "".join(json.dumps(r, separators=(",", ":")) + "\n" for r in records).encode()
    print(f"records: {RECORDS:,} of class 4002, {len(ndjson) / RECORDS:.0f} bytes of JSON each")

    floor = median_seconds(
        lambda: "".join(json.dumps(r, separators=(",", ":")) + "\n" for r in records)
    )
    figure("floor: json.dumps of one record (NDJSON)", floor / RECORDS)
    gzipped = median_seconds(lambda: zlib.compress(ndjson, 6, wbits=31)) / RECORDS
    figure("reference: gzip of one record's NDJSON", gzipped, floor=floor / RECORDS)

    payload = write_parquet(4002, records)
    if row_count(payload) != RECORDS:
        print("bench_parquet: the file does not hold every record", file=sys.stderr)
        raise SystemExit(1)
    written = median_seconds(lambda: write_parquet(4002, records)) / RECORDS
    figure("write_parquet, per record (GZIP)", written, floor=floor / RECORDS)
    schema = SCHEMAS[4002]
    plain = median_seconds(lambda: write_table(schema, records, codec="uncompressed")) / RECORDS
    figure("write_table, per record (uncompressed)", plain, floor=floor / RECORDS)
    print(f"  {'write_parquet throughput (GZIP)':58} {1 / written:9.0f} records/s")

    uncompressed = write_table(schema, records, codec="uncompressed")
    ndjson_gz = zlib.compress(ndjson, 6, wbits=31)
    for label, size in (
        ("Parquet (GZIP)", len(payload)),
        ("Parquet (uncompressed)", len(uncompressed)),
        ("NDJSON", len(ndjson)),
        ("NDJSON, gzip", len(ndjson_gz)),
    ):
        print(f"  {'bytes per record: ' + label:58} {size / RECORDS:9.1f} B")


if __name__ == "__main__":
    main()
