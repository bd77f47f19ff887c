"""Policy versions in DynamoDB, and the per-container cache of the active one.

Table layout (partition key ``pk``, sort key ``sk``, both strings)::

    pk="POLICY" sk="VERSION#0000000042"  immutable: version, checksum, document, created_*
    pk="POLICY" sk="ACTIVE"              the pointer: version, checksum, document, activated_*

The active item repeats the document so the authorizer refreshes with one
``GetItem``. Versions are written with ``attribute_not_exists`` and the
pointer moves with a condition on the version it replaces, so two operators
racing cannot both win.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from chalicelib.policy.engine import CompiledPolicy
from chalicelib.policy.errors import PolicyConflict, PolicyInvalid, PolicyUnavailable
from chalicelib.policy.model import canonical_json, parse_policy

_PK = "POLICY"
_ACTIVE = "ACTIVE"


def _version_sk(version: int) -> str:
    return f"VERSION#{version:010d}"


@dataclass(frozen=True, slots=True)
class PolicyRecord:
    """A stored policy version."""

    version: int
    checksum: str
    document: dict[str, Any]
    recorded_at: str
    recorded_by: str


class PolicyStore:
    """Reads and writes policy versions.

    Parameters
    ----------
    dynamodb:
        A low-level boto3 DynamoDB client.
    table:
        The policy table name.
    """

    def __init__(self, dynamodb: Any, table: str) -> None:
        self._dynamodb = dynamodb
        self._table = table

    def load_active(self) -> PolicyRecord | None:
        """The active policy, or None when none was ever activated.

        Raises
        ------
        PolicyUnavailable
            When DynamoDB cannot be read or the item is corrupt.
        """
        return self._get(_ACTIVE)

    def load_version(self, version: int) -> PolicyRecord | None:
        """A stored version, or None when it does not exist."""
        return self._get(_version_sk(version))

    def publish(self, document: dict[str, Any], actor: str) -> PolicyRecord:
        """Validate, store as the next version, and activate ``document``.

        Raises
        ------
        PolicyInvalid
            When the document does not validate (nothing is written).
        PolicyConflict
            When another writer activated a version concurrently.
        """
        parsed = parse_policy(document)
        active = self.load_active()
        version = self._latest_version() + 1
        now = datetime.now(UTC).isoformat(timespec="seconds")
        record = PolicyRecord(version, parsed.checksum, document, now, actor)
        item = _item(_version_sk(version), record, "created")
        self._write(item, "attribute_not_exists(sk)", {})
        expected = {":expected": {"N": str(active.version)}} if active else {}
        condition = "version = :expected" if active else "attribute_not_exists(sk)"
        self._write(_item(_ACTIVE, record, "activated"), condition, expected)
        return record

    def _latest_version(self) -> int:
        try:
            response = self._dynamodb.query(
                TableName=self._table,
                KeyConditionExpression="pk = :pk AND begins_with(sk, :prefix)",
                ExpressionAttributeValues={":pk": {"S": _PK}, ":prefix": {"S": "VERSION#"}},
                ScanIndexForward=False,
                Limit=1,
                ConsistentRead=True,
            )
        except Exception as exc:
            raise PolicyUnavailable(f"cannot read policy versions: {exc}") from exc
        items = response.get("Items", [])
        return int(items[0]["version"]["N"]) if items else 0

    def _write(self, item: dict[str, Any], condition: str, values: dict[str, Any]) -> None:
        from botocore.exceptions import ClientError

        kwargs: dict[str, Any] = {
            "TableName": self._table,
            "Item": item,
            "ConditionExpression": condition,
        }
        if values:
            kwargs["ExpressionAttributeValues"] = values
        try:
            self._dynamodb.put_item(**kwargs)
        except ClientError as exc:
            if exc.response["Error"]["Code"] == "ConditionalCheckFailedException":
                raise PolicyConflict("the active policy changed concurrently; retry") from exc
            raise PolicyUnavailable(f"cannot write the policy: {exc}") from exc

    def _get(self, sk: str) -> PolicyRecord | None:
        try:
            response = self._dynamodb.get_item(
                TableName=self._table, Key={"pk": {"S": _PK}, "sk": {"S": sk}}
            )
        except Exception as exc:  # botocore raises many unrelated types; all mean "unavailable"
            raise PolicyUnavailable(f"cannot read the policy: {exc}") from exc
        item = response.get("Item")
        if item is None:
            return None
        try:
            return PolicyRecord(
                version=int(item["version"]["N"]),
                checksum=item["checksum"]["S"],
                document=json.loads(item["document"]["S"]),
                recorded_at=item.get("recorded_at", {}).get("S", ""),
                recorded_by=item.get("recorded_by", {}).get("S", ""),
            )
        except (KeyError, ValueError, TypeError) as exc:
            raise PolicyUnavailable(f"policy item {sk} is corrupt") from exc


def _item(sk: str, record: PolicyRecord, verb: str) -> dict[str, Any]:
    return {
        "pk": {"S": _PK},
        "sk": {"S": sk},
        "version": {"N": str(record.version)},
        "checksum": {"S": record.checksum},
        "document": {"S": canonical_json(record.document)},
        "recorded_at": {"S": record.recorded_at},
        "recorded_by": {"S": record.recorded_by},
        "verb": {"S": verb},
    }


def compile_record(record: PolicyRecord) -> CompiledPolicy:
    """Parse and index a stored policy.

    Raises
    ------
    PolicyUnavailable
        When the stored document no longer validates or its checksum differs.
    """
    try:
        document = parse_policy(record.document, source_name=f"policy version {record.version}")
    except PolicyInvalid as exc:
        raise PolicyUnavailable(str(exc)) from exc
    if document.checksum != record.checksum:
        raise PolicyUnavailable(f"policy version {record.version} does not match its checksum")
    return CompiledPolicy(document, record.version)


class ActivePolicy:
    """The active policy as one container sees it, refreshed on a bound.

    A new active version is noticed within ``refresh_seconds``. When a refresh
    fails, the last good policy keeps serving for at most ``max_stale_seconds``
    after its last successful load; after that every decision fails closed.
    """

    def __init__(
        self,
        store: PolicyStore,
        *,
        refresh_seconds: float,
        max_stale_seconds: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._store = store
        self._refresh = refresh_seconds
        self._max_stale = max_stale_seconds
        self._clock = clock
        self._policy: CompiledPolicy | None = None
        self._loaded_at: float | None = None
        self._checked_at: float | None = None
        self._lock = threading.Lock()

    def current(self) -> CompiledPolicy:
        """The active policy.

        Raises
        ------
        PolicyUnavailable
            When no policy is active, or none could be loaded recently enough.
        """
        now = self._clock()
        policy, checked_at = self._policy, self._checked_at
        if policy is not None and checked_at is not None and now - checked_at < self._refresh:
            return policy
        with self._lock:
            return self._reload(now)

    def _reload(self, now: float) -> CompiledPolicy:
        if (
            self._policy is not None
            and self._checked_at is not None
            and now - self._checked_at < self._refresh
        ):
            return self._policy  # another thread refreshed while we waited
        try:
            record = self._store.load_active()
            if record is None:
                raise PolicyUnavailable("no policy has been activated")
            if self._policy is None or record.version != self._policy.version:
                self._policy = compile_record(record)
            self._loaded_at = self._checked_at = now
            return self._policy
        except PolicyUnavailable:
            stale_ok = self._loaded_at is not None and now - self._loaded_at < self._max_stale
            if self._policy is not None and stale_ok:
                return self._policy
            raise


class PolicyVersions:
    """Immutable policy versions, cached for the life of the container."""

    def __init__(self, store: PolicyStore) -> None:
        self._store = store
        self._cache: dict[int, CompiledPolicy] = {}

    def get(self, version: int) -> CompiledPolicy:
        """The compiled policy ``version``.

        Raises
        ------
        PolicyUnavailable
            When the version does not exist or cannot be loaded.
        """
        cached = self._cache.get(version)
        if cached is not None:
            return cached
        record = self._store.load_version(version)
        if record is None:
            raise PolicyUnavailable(f"policy version {version} does not exist")
        compiled = compile_record(record)
        if len(self._cache) > 16:
            self._cache.clear()
        self._cache[version] = compiled
        return compiled
