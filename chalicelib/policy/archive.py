"""Copies of policy versions and activations in the Object Lock audit bucket.

DynamoDB holds what is in force; the bucket holds the proof of what was in
force when: every version document and every activation record, written
once (``If-None-Match: *``) and kept under the bucket's default retention.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from chalicelib.policy.errors import PolicyUnavailable
from chalicelib.policy.model import canonical_json

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
    """Writes (never overwrites) policy copies in the audit bucket."""

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
        return [a.activation for a in activations if not self._exists(activation_key(a.activation))]

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
                return key  # written before (a retry): objects are immutable, keep the first
            raise PolicyUnavailable(f"cannot archive {key}: {exc}") from exc
        except Exception as exc:
            raise PolicyUnavailable(f"cannot archive {key}: {exc}") from exc
        return key

    def _exists(self, key: str) -> bool:
        from botocore.exceptions import ClientError

        try:
            self._s3.head_object(Bucket=self._bucket, Key=key)
        except ClientError as exc:
            if exc.response["Error"]["Code"] in ("404", "NoSuchKey", "NotFound"):
                return False
            raise PolicyUnavailable(f"cannot read {key}: {exc}") from exc
        return True
