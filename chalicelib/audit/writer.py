"""The audit writer: queue messages -> NDJSON.gz objects in the Object Lock bucket.

Objects live under a Hive-style, time-partitioned key so Athena can prune by
day and hour::

    audit/v1/events/dt=2026-11-28/hour=15/20261128T153012.123Z-<uuid7>.ndjson.gz

Every PUT carries ``ChecksumAlgorithm="SHA256"`` (a lock-enabled bucket
refuses a PUT without a checksum) and never sets retention itself: the
bucket's default retention applies to each new version.
"""

from __future__ import annotations

import gzip
import json
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from chalicelib.audit.errors import AuditStorageError
from chalicelib.audit.schema import epoch_millis, uuid7

EVENTS_PREFIX = "audit/v1/events/"


@dataclass(frozen=True, slots=True)
class StoredObject:
    """One object the writer stored."""

    key: str
    version_id: str | None
    event_count: int
    size: int


@dataclass(frozen=True, slots=True)
class BatchResult:
    """What became of one SQS batch."""

    stored: StoredObject | None
    failed_message_ids: tuple[str, ...]

    def as_lambda_response(self) -> dict[str, Any]:
        """The partial-batch response understood by the SQS event source mapping."""
        return {"batchItemFailures": [{"itemIdentifier": mid} for mid in self.failed_message_ids]}


def object_key(epoch_seconds: float) -> str:
    """The key of a new object written at ``epoch_seconds``."""
    whole, millis = divmod(epoch_millis(epoch_seconds), 1000)
    moment = time.gmtime(whole)
    stamp = time.strftime("%Y%m%dT%H%M%S", moment) + f".{millis:03d}Z"
    partition = time.strftime("dt=%Y-%m-%d/hour=%H", moment)
    return f"{EVENTS_PREFIX}{partition}/{stamp}-{uuid7()}.ndjson.gz"


class AuditWriter:
    """Stores batches of serialised events.

    Parameters
    ----------
    s3:
        A boto3 S3 client.
    bucket:
        The Object Lock audit bucket.
    """

    def __init__(self, s3: Any, bucket: str) -> None:
        self._s3 = s3
        self._bucket = bucket

    def store(self, lines: Sequence[str]) -> StoredObject:
        """Write ``lines`` (one JSON event each) as one object.

        Raises
        ------
        AuditStorageError
            When the object could not be written.
        """
        payload = gzip.compress(("\n".join(lines) + "\n").encode("utf-8"), compresslevel=6, mtime=0)
        key = object_key(time.time())
        try:
            response = self._s3.put_object(
                Bucket=self._bucket,
                Key=key,
                Body=payload,
                ContentType="application/x-ndjson",
                ContentEncoding="gzip",
                ChecksumAlgorithm="SHA256",
            )
        except Exception as exc:  # any botocore failure means the batch is not stored
            raise AuditStorageError(f"cannot store {key}: {exc}") from exc
        return StoredObject(key, response.get("VersionId"), len(lines), len(payload))

    def handle_sqs_batch(self, event: dict[str, Any]) -> BatchResult:
        """Store the valid messages of an SQS event; report the rest as failures.

        A message that is not one JSON object is reported as failed, so SQS
        retries it and finally moves it to the dead-letter queue instead of
        the writer dropping it.
        """
        lines: list[str] = []
        accepted: list[str] = []
        failed: list[str] = []
        for record in event.get("Records", []):
            message_id = record.get("messageId", "")
            body = record.get("body", "")
            if _is_event_line(body):
                lines.append(body)
                accepted.append(message_id)
            else:
                failed.append(message_id)
        if not lines:
            return BatchResult(None, tuple(failed))
        try:
            stored = self.store(lines)
        except AuditStorageError:
            return BatchResult(None, tuple(failed + accepted))
        return BatchResult(stored, tuple(failed))


def _is_event_line(body: str) -> bool:
    if "\n" in body:
        return False
    try:
        value = json.loads(body)
    except ValueError:
        return False
    return isinstance(value, dict) and "event_id" in value
