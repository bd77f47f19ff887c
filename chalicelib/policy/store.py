"""Policy versions in DynamoDB, and the per-container cache of the active one.

Table layout (partition key ``pk``, sort key ``sk``, both strings)::

    pk="POLICY" sk="VERSION#0000000042"     immutable: version, checksum, document, created_*
    pk="POLICY" sk="CHECKSUM#sha256:..."    content hash -> version (a document is stored once)
    pk="POLICY" sk="ACTIVE"                 the pointer: version, checksum, document, activation
    pk="POLICY" sk="ACTIVATION#0000000007"  one per activation: from/to, who, when, why

The active item repeats the document so the authorizer refreshes with one
``GetItem``. A version and its checksum item are written in one transaction;
an activation moves the pointer and records itself in one transaction,
conditional on the activation counter it replaces: two operators racing
cannot both win, and a counter (unlike a version number, which a rollback
can bring back) cannot be fooled by A -> B -> A.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from chalicelib.policy.engine import CompiledPolicy
from chalicelib.policy.errors import PolicyConflict, PolicyInvalid, PolicyUnavailable
from chalicelib.policy.parser import canonical_json, parse_policy
from chalicelib.refresh import Refreshing

_PK = "POLICY"
_ACTIVE = "ACTIVE"
_VERSION_RACE_RETRIES = 5


def _version_sk(version: int) -> str:
    return f"VERSION#{version:010d}"


def _activation_sk(activation: int) -> str:
    return f"ACTIVATION#{activation:010d}"


def now_text() -> str:
    """Now, as stored in records: RFC 3339 UTC, seconds."""
    return datetime.now(UTC).isoformat(timespec="seconds")


@dataclass(frozen=True, slots=True)
class PolicyRecord:
    """A stored policy version (or the active pointer, which names one).

    ``activation`` is the activation counter on the active pointer, 0 on a version.
    """

    version: int
    checksum: str
    document: dict[str, Any]
    recorded_at: str
    recorded_by: str
    activation: int = 0


@dataclass(frozen=True, slots=True)
class Activation:
    """One activation: which version became active, replacing which, by whom, and why."""

    activation: int
    version: int
    checksum: str
    previous_version: int | None
    previous_checksum: str | None
    action: str
    activated_at: str
    activated_by: str
    summary: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        """The JSON-ready record (archived in the Object Lock bucket)."""
        return {
            "activation": self.activation,
            "version": self.version,
            "checksum": self.checksum,
            "previous_version": self.previous_version,
            "previous_checksum": self.previous_checksum,
            "action": self.action,
            "activated_at": self.activated_at,
            "activated_by": self.activated_by,
            "summary": self.summary,
        }


class PolicyStore:
    """Reads and writes policy versions and activations.

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
        item = self._get(_ACTIVE)
        return None if item is None else _record(item, _ACTIVE)

    def load_version(self, version: int) -> PolicyRecord | None:
        """A stored version, or None when it does not exist."""
        item = self._get(_version_sk(version))
        return None if item is None else _record(item, _version_sk(version))

    def version_with_checksum(self, checksum: str) -> int | None:
        """The version holding exactly this document, if one does."""
        item = self._get(f"CHECKSUM#{checksum}")
        return None if item is None else int(item["version"]["N"])

    def store_version(self, document: dict[str, Any], actor: str) -> tuple[PolicyRecord, bool]:
        """Store ``document`` as a new immutable version unless one already holds it.

        Returns the version and whether this call created it.

        Raises
        ------
        PolicyInvalid
            When the document does not validate (nothing is written).
        """
        parsed = parse_policy(document)
        for _ in range(_VERSION_RACE_RETRIES):
            existing = self.version_with_checksum(parsed.checksum)
            if existing is not None:
                record = self.load_version(existing)
                if record is None:
                    raise PolicyUnavailable(f"checksum item names missing version {existing}")
                return record, False
            version = self._latest_version() + 1
            record = PolicyRecord(version, parsed.checksum, document, now_text(), actor)
            checksum_item = {
                "pk": {"S": _PK},
                "sk": {"S": f"CHECKSUM#{parsed.checksum}"},
                "version": {"N": str(version)},
            }
            try:
                self._transact(
                    [
                        _put(self._table, _item(_version_sk(version), record, "created")),
                        _put(self._table, checksum_item),
                    ]
                )
            except PolicyConflict:
                continue  # another writer took this number (or stored the same document)
            return record, True
        raise PolicyConflict("policy versions are being written concurrently; retry")

    def activate(
        self,
        record: PolicyRecord,
        *,
        actor: str,
        action: str,
        expected: PolicyRecord | None,
        summary: dict[str, Any] | None = None,
        event: Callable[[Activation], dict[str, Any]] | None = None,
    ) -> Activation:
        """Make ``record`` the active version, if ``expected`` is still the active one.

        ``event`` builds the activation's audit event, which is kept on the
        activation record (same transaction) until :meth:`clear_event`: an
        activation cannot happen without its event being durable.

        Raises
        ------
        PolicyConflict
            When another activation happened since ``expected`` was read.
        """
        counter = (expected.activation if expected else 0) + 1
        activation = Activation(
            activation=counter,
            version=record.version,
            checksum=record.checksum,
            previous_version=expected.version if expected else None,
            previous_checksum=expected.checksum if expected else None,
            action=action,
            activated_at=now_text(),
            activated_by=actor,
            summary=summary or {},
        )
        active = PolicyRecord(
            record.version,
            record.checksum,
            record.document,
            activation.activated_at,
            actor,
            activation=counter,
        )
        pointer = _put(self._table, _item(_ACTIVE, active, "activated"), condition=False)
        if expected is None:
            pointer["Put"]["ConditionExpression"] = "attribute_not_exists(sk)"
        else:
            pointer["Put"]["ConditionExpression"] = (
                "activation = :expected OR (attribute_not_exists(activation) AND version = :v)"
            )
            pointer["Put"]["ExpressionAttributeValues"] = {
                ":expected": {"N": str(expected.activation)},
                ":v": {"N": str(expected.version)},
            }
        log = {
            "pk": {"S": _PK},
            "sk": {"S": _activation_sk(counter)},
            "record": {"S": canonical_json(activation.as_dict())},
        }
        if event is not None:
            log["pending_event"] = {"S": canonical_json(event(activation))}
        self._transact([pointer, _put(self._table, log)])
        return activation

    def pending_events(self, limit: int = 10) -> list[tuple[int, dict[str, Any]]]:
        """Audit events of the newest ``limit`` activations not yet known to be enqueued.

        Raises
        ------
        PolicyUnavailable
            When the table cannot be read or an event is corrupt.
        """
        pending = []
        for item in self._query("ACTIVATION#", limit=limit):
            if "pending_event" in item:
                number = int(item["sk"]["S"].removeprefix("ACTIVATION#"))
                try:
                    pending.append((number, json.loads(item["pending_event"]["S"])))
                except ValueError as exc:
                    raise PolicyUnavailable(f"activation {number}'s event is corrupt") from exc
        return sorted(pending, key=lambda entry: entry[0])

    def clear_event(self, activation: int) -> None:
        """Mark activation ``activation``'s event enqueued (drop it from the record).

        Raises
        ------
        PolicyUnavailable
            When the table cannot be written (the event will be enqueued again).
        """
        try:
            self._dynamodb.update_item(
                TableName=self._table,
                Key={"pk": {"S": _PK}, "sk": {"S": _activation_sk(activation)}},
                UpdateExpression="REMOVE pending_event",
            )
        except Exception as exc:
            raise PolicyUnavailable(f"cannot update activation {activation}: {exc}") from exc

    def publish(self, document: dict[str, Any], actor: str) -> PolicyRecord:
        """Store and activate ``document`` in one go (seeding and tests; no archive, no event).

        Operators go through :class:`chalicelib.policy.admin.PolicyAdmin`, which
        also archives the version and audits the change.
        """
        record, _ = self.store_version(document, actor)
        active = self.load_active()
        if active is not None and active.checksum == record.checksum:
            return record
        self.activate(record, actor=actor, action="apply", expected=active)
        return record

    def activations(self, limit: int = 50) -> list[Activation]:
        """The newest ``limit`` activations, newest first."""
        response = self._query("ACTIVATION#", limit=limit)
        activations = []
        for item in response:
            try:
                activations.append(Activation(**json.loads(item["record"]["S"])))
            except (KeyError, TypeError, ValueError) as exc:
                raise PolicyUnavailable(f"activation item {item['sk']['S']} is corrupt") from exc
        return activations

    def _latest_version(self) -> int:
        items = self._query("VERSION#", limit=1)
        return int(items[0]["version"]["N"]) if items else 0

    def _query(self, prefix: str, *, limit: int) -> list[dict[str, Any]]:
        try:
            response = self._dynamodb.query(
                TableName=self._table,
                KeyConditionExpression="pk = :pk AND begins_with(sk, :prefix)",
                ExpressionAttributeValues={":pk": {"S": _PK}, ":prefix": {"S": prefix}},
                ScanIndexForward=False,
                Limit=limit,
                ConsistentRead=True,
            )
        except Exception as exc:
            raise PolicyUnavailable(f"cannot read policy items: {exc}") from exc
        items: list[dict[str, Any]] = response.get("Items", [])
        return items

    def _transact(self, actions: list[dict[str, Any]]) -> None:
        from botocore.exceptions import ClientError

        try:
            self._dynamodb.transact_write_items(TransactItems=actions)
        except ClientError as exc:
            if _lost_race(exc.response):
                raise PolicyConflict(
                    "the policy changed concurrently; look again and retry"
                ) from exc
            raise PolicyUnavailable(f"cannot write the policy: {exc}") from exc
        except Exception as exc:
            raise PolicyUnavailable(f"cannot write the policy: {exc}") from exc

    def _get(self, sk: str) -> dict[str, Any] | None:
        try:
            response = self._dynamodb.get_item(
                TableName=self._table,
                Key={"pk": {"S": _PK}, "sk": {"S": sk}},
                ConsistentRead=True,
            )
        except Exception as exc:  # botocore raises many unrelated types; all mean "unavailable"
            raise PolicyUnavailable(f"cannot read the policy: {exc}") from exc
        item: dict[str, Any] | None = response.get("Item")
        return item


_RACE_REASONS = frozenset({"ConditionalCheckFailed", "TransactionConflict"})


def _lost_race(response: dict[str, Any]) -> bool:
    """Whether a refused write lost to another writer (rather than failed for another reason).

    A cancelled transaction says why per item: a failed condition or a
    concurrent transaction on the same item is a lost race; anything else
    (throttling, validation, capacity) is not, and retrying as if another
    operator had won would hide it.
    """
    code = response.get("Error", {}).get("Code")
    if code == "ConditionalCheckFailedException":
        return True
    if code != "TransactionCanceledException":
        return False
    codes = {reason.get("Code") for reason in response.get("CancellationReasons", ())}
    return bool(codes & _RACE_REASONS) and codes <= _RACE_REASONS | {"None"}


def _record(item: dict[str, Any], sk: str) -> PolicyRecord:
    try:
        return PolicyRecord(
            version=int(item["version"]["N"]),
            checksum=item["checksum"]["S"],
            document=json.loads(item["document"]["S"]),
            recorded_at=item.get("recorded_at", {}).get("S", ""),
            recorded_by=item.get("recorded_by", {}).get("S", ""),
            activation=int(item.get("activation", {}).get("N", "0")),
        )
    except (KeyError, ValueError, TypeError) as exc:
        raise PolicyUnavailable(f"policy item {sk} is corrupt") from exc


def _put(table: str, item: dict[str, Any], *, condition: bool = True) -> dict[str, Any]:
    put: dict[str, Any] = {"TableName": table, "Item": item}
    if condition:
        put["ConditionExpression"] = "attribute_not_exists(sk)"
    return {"Put": put}


def _item(sk: str, record: PolicyRecord, verb: str) -> dict[str, Any]:
    return {
        "pk": {"S": _PK},
        "sk": {"S": sk},
        "version": {"N": str(record.version)},
        "checksum": {"S": record.checksum},
        "document": {"S": canonical_json(record.document)},
        "recorded_at": {"S": record.recorded_at},
        "recorded_by": {"S": record.recorded_by},
        "activation": {"N": str(record.activation)},
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
        self._value = Refreshing(
            self._load,
            unavailable=PolicyUnavailable,
            refresh_seconds=refresh_seconds,
            max_stale_seconds=max_stale_seconds,
            clock=clock,
        )

    def current(self) -> CompiledPolicy:
        """The active policy.

        Raises
        ------
        PolicyUnavailable
            When no policy is active, or none could be loaded recently enough.
        """
        return self._value.get()

    def _load(self, current: CompiledPolicy | None) -> CompiledPolicy:
        record = self._store.load_active()
        if record is None:
            raise PolicyUnavailable("no policy has been activated")
        if current is not None and record.version == current.version:
            return current  # unchanged: keep the compiled index and its memo
        return compile_record(record)


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
