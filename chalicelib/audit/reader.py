"""Reading stored audit events back from the bucket."""

from __future__ import annotations

import gzip
import json
import time
from typing import Any

from chalicelib.ledger.layout import EVENTS_PREFIX


def list_event_objects(
    s3: Any, bucket: str, *, days: int = 2, now: float | None = None
) -> list[str]:
    """Keys of event objects in the last ``days`` day partitions, newest first."""
    moment = time.time() if now is None else now
    keys: list[str] = []
    paginator = s3.get_paginator("list_objects_v2")
    for offset in range(days):
        day = time.strftime("%Y-%m-%d", time.gmtime(moment - offset * 86400))
        for page in paginator.paginate(Bucket=bucket, Prefix=f"{EVENTS_PREFIX}dt={day}/"):
            keys.extend(item["Key"] for item in page.get("Contents", []))
    # Keys embed the write time after the partition, so they sort by time.
    return sorted(keys, reverse=True)


def read_event_object(s3: Any, bucket: str, key: str) -> list[dict[str, Any]]:
    """The events stored in one object, in stored order."""
    body = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
    text = gzip.decompress(body).decode("utf-8")
    # Split on "\n" only: splitlines() also splits inside values on U+2028 and
    # friends, which JSON leaves unescaped.
    return [json.loads(line) for line in text.split("\n") if line]


def newest_events(s3: Any, bucket: str, limit: int, *, days: int = 2) -> list[dict[str, Any]]:
    """Up to ``limit`` of the newest stored events, oldest first."""
    events: list[dict[str, Any]] = []
    for key in list_event_objects(s3, bucket, days=days):
        events.extend(reversed(read_event_object(s3, bucket, key)))
        if len(events) >= limit:
            break
    newest = events[:limit]
    newest.sort(key=lambda event: (event.get("event_time", ""), event.get("event_id", "")))
    return newest
