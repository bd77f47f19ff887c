"""Copies of policy versions and activations in the Object Lock audit bucket.

DynamoDB holds what is in force; the bucket holds the proof of what was in
force when: every version document and every activation record, written
once (``If-None-Match: *``) and kept under the bucket's default retention.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from chalicelib.policy.errors import PolicyArchiveError
from chalicelib.policy.parser import canonical_json

if TYPE_CHECKING:
    from chalicelib.policy.store import Activation, PolicyRecord

PREFIX = "policy/v1"


def version_key(version: int) -> str:
    """Where version ``version`` is archived."""
    return f"{PREFIX}/versions/{version:010d}.json"


def activation_key(activation: int) -> str:
    """Where activation ``activation`` is archived."""
    return f"{PREFIX}/activations/{activation:010d}.json"


class PolicyArchive:
    """Writes (never overwrites) policy copies in the audit bucket.

    Raises :class:`PolicyArchiveError` when a copy cannot be written, or when
    a copy already stored under the key says something else than the record
    (a second stage sharing the bucket, a recreated table): the archive must
    never silently "prove" a different document.
    """

    def __init__(self, s3: Any, bucket: str) -> None:
        self._s3 = s3
        self._bucket = bucket

    def put_version(self, record: PolicyRecord) -> str:
        """Archive a version (a no-op if it already is); return its key."""
        body = {
            "version": record.version,
            "checksum": record.checksum,
            "created_at": record.recorded_at,
            "created_by": record.recorded_by,
            "document": record.document,
        }
        return self._put(version_key(record.version), body)

    def put_activation(self, activation: Activation) -> str:
        """Archive an activation record (a no-op if it already is); return its key."""
        return self._put(activation_key(activation.activation), activation.as_dict())

    def missing_activations(self, activations: list[Activation]) -> list[int]:
        """Which of ``activations`` have no archived copy."""
        stored = self._keys(f"{PREFIX}/activations/")
        return [a.activation for a in activations if activation_key(a.activation) not in stored]

    def missing_versions(self, versions: list[int]) -> list[int]:
        """Which of ``versions`` have no archived copy."""
        stored = self._keys(f"{PREFIX}/versions/")
        return [version for version in versions if version_key(version) not in stored]

    def _put(self, key: str, body: dict[str, Any]) -> str:
        from botocore.exceptions import ClientError

        try:
            self._s3.put_object(
                Bucket=self._bucket,
                Key=key,
                Body=canonical_json(body).encode("utf-8"),
                ContentType="application/json",
                ChecksumAlgorithm="SHA256",
                IfNoneMatch="*",
            )
        except ClientError as exc:
            if exc.response["Error"]["Code"] == "PreconditionFailed":
                self._check_same(key, body)  # written before (a retry, a repair): keep the first
                return key
            raise PolicyArchiveError(f"cannot archive {key}: {exc}") from exc
        except Exception as exc:
            raise PolicyArchiveError(f"cannot archive {key}: {exc}") from exc
        return key

    def _check_same(self, key: str, body: dict[str, Any]) -> None:
        try:
            stored = json.loads(self._s3.get_object(Bucket=self._bucket, Key=key)["Body"].read())
        except Exception as exc:
            raise PolicyArchiveError(f"cannot read the archived {key}: {exc}") from exc
        if stored != body:
            raise PolicyArchiveError(
                f"the archived {key} differs from the record in DynamoDB; an archived copy is "
                "never overwritten: find out which one is wrong before changing the policy"
            )

    def _keys(self, prefix: str) -> set[str]:
        # One LIST per 1000 keys instead of one HEAD per record.
        keys: set[str] = set()
        try:
            pages = self._s3.get_paginator("list_objects_v2").paginate(
                Bucket=self._bucket, Prefix=prefix
            )
            for page in pages:
                keys.update(item["Key"] for item in page.get("Contents", ()))
        except Exception as exc:
            raise PolicyArchiveError(f"cannot list {prefix} in the archive: {exc}") from exc
        return keys
