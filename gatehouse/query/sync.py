"""Fill the local cache from S3: the ledger's objects by version id, the trail's files.

Each object version is downloaded once (the cache name is its key's hash and
its version id, or ETag for an unversioned trail bucket). A ledger key has
one version when the writer made it (it PUTs with If-None-Match); should a
key have more (a later overwrite), the first version is the ledger's and
the one the local engine reads, as ``gatehouse audit verify`` would.
"""

from __future__ import annotations

import re
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from gatehouse.query.dataset import Dataset, Partition, raw_name
from gatehouse.query.errors import CacheSyncError
from gatehouse.query.schema import AUDIT_EVENTS, CLOUDTRAIL_LOGS

EVENTS_PREFIX = "audit/v1/events/"
# [0-9], not \d: \d also matches other scripts' digits (int() would read "٠٩" as 9).
_EVENT_KEY = re.compile(
    r"audit/v1/events/dt=([0-9]{4}-[0-9]{2}-[0-9]{2})/hour=([0-9]{2})/[^/]+\.ndjson\.gz"
)
_TRAIL_KEY = re.compile(
    r"AWSLogs/(?:o-[a-z0-9]+/)?([0-9]{12})/CloudTrail/([a-z0-9-]+)/"
    r"([0-9]{4})/([0-9]{2})/([0-9]{2})/[^/]+\.json\.gz"
)


def sync_bucket(
    dataset: Dataset,
    s3: Any,
    audit_bucket: str,
    trail_bucket: str | None = None,
    account_id: str | None = None,
) -> dict[str, int]:
    """Download what the cache lacks; returns counts (``audit_objects``, ``downloaded``...).

    Raises
    ------
    CacheSyncError
        When S3 cannot be listed or read.
    """
    counts = {"audit_objects": 0, "trail_objects": 0, "downloaded": 0}
    keep: dict[str, dict[str, set[str]]] = {AUDIT_EVENTS: {}, CLOUDTRAIL_LOGS: {}}
    try:
        for key, version in _ledger_versions(s3, audit_bucket):
            match = _EVENT_KEY.fullmatch(key)
            if match is None:
                continue
            partition = Partition((("dt", match.group(1)), ("hour", int(match.group(2)))))
            counts["audit_objects"] += 1
            name = raw_name(key, version)
            keep[AUDIT_EVENTS].setdefault(partition.name, set()).add(name)
            if not dataset.has_raw(AUDIT_EVENTS, partition, name):
                body = s3.get_object(Bucket=audit_bucket, Key=key, VersionId=version)["Body"].read()
                dataset.add_raw(AUDIT_EVENTS, partition, name, body, key)
                counts["downloaded"] += 1
            dataset.remember_key(name, key)
        if trail_bucket:
            prefix = f"AWSLogs/{account_id}/CloudTrail/" if account_id else "AWSLogs/"
            for page in s3.get_paginator("list_objects_v2").paginate(
                Bucket=trail_bucket, Prefix=prefix
            ):
                for item in page.get("Contents", []):
                    match = _TRAIL_KEY.fullmatch(item["Key"])
                    if match is None:
                        continue
                    _, region, year, month, day = match.groups()
                    partition = Partition(
                        (("region", region), ("timestamp", f"{year}/{month}/{day}"))
                    )
                    counts["trail_objects"] += 1
                    name = raw_name(item["Key"], item.get("ETag", "").strip('"') or "none")
                    keep[CLOUDTRAIL_LOGS].setdefault(partition.name, set()).add(name)
                    if not dataset.has_raw(CLOUDTRAIL_LOGS, partition, name):
                        body = s3.get_object(Bucket=trail_bucket, Key=item["Key"])["Body"].read()
                        dataset.add_raw(CLOUDTRAIL_LOGS, partition, name, body, item["Key"])
                        counts["downloaded"] += 1
                    dataset.remember_key(name, item["Key"])
    except (ClientError, BotoCoreError) as exc:
        raise CacheSyncError(f"cannot sync the local query cache from S3: {exc}") from exc
    # What the buckets no longer hold (another local stack's run) is not queried.
    counts["removed"] = dataset.prune(keep)
    return counts


def _ledger_versions(s3: Any, bucket: str) -> list[tuple[str, str]]:
    """``(key, version id)`` of each ledger object: its first version, delete markers ignored.

    S3 lists the versions of a key newest first, so the last one listed is the first written.
    """
    first: dict[str, str] = {}
    paginator = s3.get_paginator("list_object_versions")
    for page in paginator.paginate(Bucket=bucket, Prefix=EVENTS_PREFIX):
        for version in page.get("Versions", []):
            first[version["Key"]] = version.get("VersionId") or "null"
    return sorted(first.items())
