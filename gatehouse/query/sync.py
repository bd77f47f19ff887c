"""Fill the local cache from S3: the ledger's objects by version id, the trail's files.

Each object version is downloaded once (the cache name is its key's hash and
its version id, or ETag for an unversioned trail bucket). A ledger key has
one version when the writer made it (it PUTs with If-None-Match); should a
key have more (a later overwrite), the first version is the ledger's and
the one the local engine reads, as ``gatehouse audit verify`` would.

Once the bucket holds digests, an object no digest names is left out when
the digests already cover its sequences (or its key names none): it is not
the ledger's, and ``gatehouse audit verify`` names it ``unledgered_object``.
Objects past the newest digest are read (the next digest will name them).
Digests are read here for the keys they name only; their signatures are
verify's business.
"""

from __future__ import annotations

import json
import re
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from chalicelib.ledger.errors import DigestFormatError
from chalicelib.ledger.layout import DIGESTS_PREFIX, EVENTS_PREFIX, object_first_sequence
from chalicelib.ledger.records import Digest
from gatehouse.progress import Progress, count
from gatehouse.query.dataset import Dataset, Partition, raw_name
from gatehouse.query.errors import CacheSyncError
from gatehouse.query.schema import AUDIT_EVENTS, CLOUDTRAIL_LOGS

# [0-9], not \d: \d also matches other scripts' digits (int() would read "٠٩" as 9).
_EVENT_KEY = re.compile(
    re.escape(EVENTS_PREFIX) + r"dt=([0-9]{4}-[0-9]{2}-[0-9]{2})/hour=([0-9]{2})/[^/]+\.ndjson\.gz"
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
    counts = {"audit_objects": 0, "trail_objects": 0, "downloaded": 0, "unledgered": 0}
    keep: dict[str, dict[str, set[str]]] = {AUDIT_EVENTS: {}, CLOUDTRAIL_LOGS: {}}
    # On a terminal, a counter on stderr while objects are downloaded; quiet otherwise.
    with Progress("query cache") as line:
        _sync(dataset, s3, audit_bucket, trail_bucket, account_id, counts, keep, line)
    # What the buckets no longer hold (another local stack's run) is not queried.
    counts["removed"] = dataset.prune(keep)
    return counts


def _show(line: Progress, counts: dict[str, int]) -> None:
    read = counts["audit_objects"] + counts["trail_objects"]
    line.update(f"{count(read)} objects, {count(counts['downloaded'])} downloaded")


def _sync(
    dataset: Dataset,
    s3: Any,
    audit_bucket: str,
    trail_bucket: str | None,
    account_id: str | None,
    counts: dict[str, int],
    keep: dict[str, dict[str, set[str]]],
    line: Progress,
) -> None:
    try:
        named, covered = _digested(dataset, s3, audit_bucket)
        for key, version in _ledger_versions(s3, audit_bucket, EVENTS_PREFIX):
            match = _EVENT_KEY.fullmatch(key)
            if match is None:
                continue
            if covered and key not in named and not _past(key, covered):
                counts["unledgered"] += 1
                dataset.unledgered.append(key)
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
            _show(line, counts)
        if trail_bucket:
            _sync_trail(dataset, s3, trail_bucket, account_id, counts, keep)
    except (ClientError, BotoCoreError) as exc:
        raise CacheSyncError(f"cannot sync the local query cache from S3: {exc}") from exc


def _sync_trail(
    dataset: Dataset,
    s3: Any,
    trail_bucket: str,
    account_id: str | None,
    counts: dict[str, int],
    keep: dict[str, dict[str, set[str]]],
) -> None:
    """Download the trail's files the cache lacks (by ETag: the trail bucket is not versioned)."""
    prefix = f"AWSLogs/{account_id}/CloudTrail/" if account_id else "AWSLogs/"
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=trail_bucket, Prefix=prefix):
        for item in page.get("Contents", []):
            match = _TRAIL_KEY.fullmatch(item["Key"])
            if match is None:
                continue
            _, region, year, month, day = match.groups()
            partition = Partition((("region", region), ("timestamp", f"{year}/{month}/{day}")))
            counts["trail_objects"] += 1
            name = raw_name(item["Key"], item.get("ETag", "").strip('"') or "none")
            keep[CLOUDTRAIL_LOGS].setdefault(partition.name, set()).add(name)
            if not dataset.has_raw(CLOUDTRAIL_LOGS, partition, name):
                body = s3.get_object(Bucket=trail_bucket, Key=item["Key"])["Body"].read()
                dataset.add_raw(CLOUDTRAIL_LOGS, partition, name, body, item["Key"])
                counts["downloaded"] += 1
            dataset.remember_key(name, item["Key"])


def _digested(dataset: Dataset, s3: Any, bucket: str) -> tuple[frozenset[str], int]:
    """The object keys the digests name, and the largest tree size any of them states.

    Each digest (first version) is read once: what it names is kept in the cache.
    """
    named: set[str] = set()
    covered = 0
    for key, version in _ledger_versions(s3, bucket, DIGESTS_PREFIX):
        memo = dataset.root / "digests" / f"{raw_name(key, version)}.json"
        if memo.exists():
            listed = json.loads(memo.read_text())
        else:
            body = s3.get_object(Bucket=bucket, Key=key, VersionId=version)["Body"].read()
            try:
                digest = Digest.from_document(json.loads(body)["digest"])
            except (ValueError, KeyError, TypeError, DigestFormatError):
                continue  # not a digest: verify says so
            listed = {"keys": [entry.key for entry in digest.objects], "size": digest.tree_size}
            memo.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            memo.write_text(json.dumps(listed))
        named.update(listed["keys"])
        covered = max(covered, int(listed["size"]))
    return frozenset(named), covered


def _past(key: str, covered: int) -> bool:
    """Whether ``key`` names a first sequence the digests do not cover yet."""
    first = object_first_sequence(key)
    return first is not None and first >= covered


def _ledger_versions(s3: Any, bucket: str, prefix: str) -> list[tuple[str, str]]:
    """``(key, version id)`` of each object under ``prefix``: its first version.

    Delete markers are ignored. S3 lists the versions of a key newest first, so
    the last one listed is the first written.
    """
    first: dict[str, str] = {}
    paginator = s3.get_paginator("list_object_versions")
    for page in paginator.paginate(Bucket=bucket, Prefix=prefix):
        for version in page.get("Versions", []):
            first[version["Key"]] = version.get("VersionId") or "null"
    return sorted(first.items())
