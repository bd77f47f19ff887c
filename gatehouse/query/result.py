"""What a query answers, whichever engine ran it."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

# Athena bills $5 per TB scanned, rounded up to the megabyte, at least 10 MB per query.
USD_PER_TB = 5.0
BYTES_PER_MB = 1024**2
MIN_BILLED_BYTES = 10 * BYTES_PER_MB
BYTES_PER_TB = 1024**4


def athena_cost_usd(bytes_scanned: int) -> float:
    """What Athena bills for a query that scanned ``bytes_scanned`` bytes.

    Rounded up to the next megabyte, with a 10 MB minimum per query.
    """
    billed = -(-max(bytes_scanned, 0) // BYTES_PER_MB) * BYTES_PER_MB
    return max(billed, MIN_BILLED_BYTES) * USD_PER_TB / BYTES_PER_TB


@dataclass(frozen=True, slots=True)
class QueryResult:
    """The rows of one query, as Python values, and what running it took.

    ``rows`` hold the Python types DuckDB returns for the Athena types
    (varchar -> str, bigint -> int, timestamp -> naive UTC datetime,
    timestamp with time zone -> aware UTC datetime, double -> float,
    boolean -> bool, array -> list, row/struct -> dict). ``bytes_scanned``
    and ``cost_usd`` are Athena's figures (None on the local engine).
    ``warnings`` say what the engine could not read of the data (the local
    engine's unreadable or repaired lines); the rows are the rest.
    """

    columns: list[str]
    rows: list[tuple[Any, ...]]
    engine: str
    bytes_scanned: int | None = None
    cost_usd: float | None = None
    elapsed_s: float = 0.0
    query_id: str | None = field(default=None, compare=False)
    warnings: list[str] = field(default_factory=list, compare=False)

    def as_dicts(self) -> list[dict[str, Any]]:
        """The rows as ``{column: value}`` dicts (duplicate column names: the last wins)."""
        return [dict(zip(self.columns, row, strict=True)) for row in self.rows]
