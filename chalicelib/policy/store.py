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
from typing import TYPE_CHECKING, Any

from chalicelib.aws.table import Table
from chalicelib.aws.table_errors import CorruptItem, TableError, WriteRefused
from chalicelib.aws.table_items import Item, integer, text
from chalicelib.aws.table_layout import (
    POLICY_ACTIVATION,
    POLICY_ACTIVE,
    POLICY_CHECKSUM,
    POLICY_VERSION,
    ItemKind,
)
from chalicelib.policy.engine import CompiledPolicy
from chalicelib.policy.errors import PolicyConflict, PolicyInvalid, PolicyUnavailable
from chalicelib.policy.parser import canonical_json, parse_policy
from chalicelib.refresh import Refreshing

if TYPE_CHECKING:
    from chalicelib.policy.document import PolicyDocument

_VERSION_RACE_RETRIES = 5


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
    reason: str | None = None  # the operator's words (``--reason``)

    def as_dict(self) -> dict[str, Any]:
        """The JSON-ready record (archived in the Object Lock bucket)."""
        record: dict[str, Any] = {
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
        # Only when given: a record written without one keeps the form it was archived in.
        if self.reason is not None:
            record["reason"] = self.reason
        return record


class PolicyStore:
    """Reads and writes policy versions and activations.

    Parameters
    ----------
    dynamodb:
        A low-level boto3 DynamoDB client.
    table:
        The state table name.
    """

    def __init__(self, dynamodb: Any, table: str) -> None:
        self._table = Table(dynamodb, table)

    def load_active(self) -> PolicyRecord | None:
        """The active policy, or None when none was ever activated.

        Raises
        ------
        PolicyUnavailable
            When DynamoDB cannot be read or the item is corrupt.
        """
        item = self._get(POLICY_ACTIVE.key())
        return None if item is None else _record(item)

    def load_version(self, version: int) -> PolicyRecord | None:
        """A stored version, or None when it does not exist.

        Raises
        ------
        PolicyUnavailable
            When DynamoDB cannot be read or the item is corrupt.
        """
        item = self._get(POLICY_VERSION.key(version))
        return None if item is None else _record(item)

    def version_with_checksum(self, checksum: str) -> int | None:
        """The version holding exactly this document, if one does.

        Raises
        ------
        PolicyUnavailable
            When DynamoDB cannot be read or the item is corrupt.
        """
        item = self._get(POLICY_CHECKSUM.key(checksum))
        if item is None:
            return None
        try:
            return integer(item, "version")
        except CorruptItem as exc:
            raise PolicyUnavailable(f"policy item {item.get('sk')} is corrupt") from exc

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
            checksum_item = {**POLICY_CHECKSUM.key(parsed.checksum), "version": version}
            try:
                # Both new (put_new): the number is this writer's, and the
                # document is stored once, or neither item is written.
                self._transact(
                    [
                        self._table.put_new(_item(POLICY_VERSION.key(version), record, "created")),
                        self._table.put_new(checksum_item),
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
        reason: str | None = None,
    ) -> Activation:
        """Make ``record`` the active version, if ``expected`` is still the active one.

        ``event`` builds the activation's audit event, which is kept on the
        activation record (same transaction) until :meth:`clear_event`: an
        activation cannot happen without its event being durable. ``reason``
        is the operator's reason for the change, kept on the activation record.

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
            reason=reason,
        )
        active = PolicyRecord(
            record.version,
            record.checksum,
            record.document,
            activation.activated_at,
            actor,
            activation=counter,
        )
        pointer_item = _item(POLICY_ACTIVE.key(), active, "activated")
        if expected is None:
            # No pointer yet: the first activation happens once.
            pointer = self._table.put_new(pointer_item)
        else:
            # The pointer is still the one ``expected`` read (its counter; a
            # pointer written before counters existed, by its version).
            pointer = self._table.put(
                pointer_item,
                condition=(
                    "activation = :expected OR (attribute_not_exists(activation) AND version = :v)"
                ),
                values={":expected": expected.activation, ":v": expected.version},
            )
        log: Item = {
            **POLICY_ACTIVATION.key(counter),
            "record": canonical_json(activation.as_dict()),
        }
        if event is not None:
            log["pending_event"] = canonical_json(event(activation))
        # The activation number is new: one record per activation, never overwritten.
        self._transact([pointer, self._table.put_new(log)])
        return activation

    def pending_events(self, limit: int = 10) -> list[tuple[int, dict[str, Any]]]:
        """Audit events of the newest ``limit`` activations not yet known to be enqueued.

        Raises
        ------
        PolicyUnavailable
            When the table cannot be read or an event is corrupt.
        """
        pending = []
        for item in self._query(POLICY_ACTIVATION, limit=limit):
            if "pending_event" in item:
                try:
                    number = POLICY_ACTIVATION.number(item)
                except CorruptItem as exc:
                    raise PolicyUnavailable(f"activation item {item.get('sk')} is corrupt") from exc
                try:
                    pending.append((number, json.loads(text(item, "pending_event"))))
                except (CorruptItem, ValueError) as exc:
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
            self._table.update(POLICY_ACTIVATION.key(activation), "REMOVE pending_event")
        except TableError as exc:
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

    def activations(self, limit: int | None = 50) -> list[Activation]:
        """The newest ``limit`` activations (every one when None), newest first."""
        activations = []
        for item in self._query(POLICY_ACTIVATION, limit=limit):
            try:
                activations.append(Activation(**json.loads(text(item, "record"))))
            except (CorruptItem, TypeError, ValueError) as exc:
                raise PolicyUnavailable(f"activation item {item.get('sk')} is corrupt") from exc
        return activations

    def _latest_version(self) -> int:
        items = self._query(POLICY_VERSION, limit=1)
        if not items:
            return 0
        try:
            return integer(items[0], "version")
        except CorruptItem as exc:
            raise PolicyUnavailable(f"policy item {items[0].get('sk')} is corrupt") from exc

    def _query(self, kind: ItemKind, *, limit: int | None) -> list[Item]:
        """The newest ``limit`` items of ``kind`` (every one when None)."""
        try:
            return list(self._table.query(kind, newest_first=True, limit=limit))
        except CorruptItem as exc:
            raise PolicyUnavailable(f"a policy item is corrupt: {exc}") from exc
        except TableError as exc:
            raise PolicyUnavailable(f"cannot read policy items: {exc}") from exc

    def _transact(self, actions: list[dict[str, Any]]) -> None:
        try:
            self._table.transact(actions)
        except WriteRefused as exc:
            if exc.lost_race:
                raise PolicyConflict(
                    "the policy changed concurrently; look again and retry"
                ) from exc
            raise PolicyUnavailable(f"cannot write the policy: {exc}") from exc
        except TableError as exc:
            raise PolicyUnavailable(f"cannot write the policy: {exc}") from exc

    def _get(self, key: Item) -> Item | None:
        try:
            return self._table.get(key)
        except CorruptItem as exc:
            raise PolicyUnavailable(f"policy item {key['sk']} is corrupt") from exc
        except TableError as exc:
            raise PolicyUnavailable(f"cannot read the policy: {exc}") from exc


def _record(item: Item) -> PolicyRecord:
    try:
        return PolicyRecord(
            version=integer(item, "version"),
            checksum=text(item, "checksum"),
            document=json.loads(text(item, "document")),
            recorded_at=text(item, "recorded_at", ""),
            recorded_by=text(item, "recorded_by", ""),
            activation=integer(item, "activation", 0),
        )
    except (CorruptItem, ValueError) as exc:
        raise PolicyUnavailable(f"policy item {item.get('sk')} is corrupt") from exc


def _item(key: Item, record: PolicyRecord, verb: str) -> Item:
    return {
        **key,
        "version": record.version,
        "checksum": record.checksum,
        "document": canonical_json(record.document),
        "recorded_at": record.recorded_at,
        "recorded_by": record.recorded_by,
        "activation": record.activation,
        "verb": verb,
    }


def parse_record(record: PolicyRecord) -> PolicyDocument:
    """Parse a stored policy (what :func:`compile_record` indexes).

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
    return document


def compile_record(record: PolicyRecord, *, default_issuer: str) -> CompiledPolicy:
    """Parse and index a stored policy for a stage whose default issuer is ``default_issuer``.

    Raises
    ------
    PolicyUnavailable
        When the stored document no longer validates or its checksum differs.
    """
    return CompiledPolicy(parse_record(record), record.version, default_issuer=default_issuer)


class ActivePolicy:
    """The active policy as one container sees it, refreshed on a bound.

    A new active version is noticed within ``refresh_seconds``. When a refresh
    fails, the last good policy keeps serving for at most ``max_stale_seconds``
    after its last successful load; after that every decision fails closed.
    ``default_issuer`` is the stage's first trusted issuer (see :class:`CompiledPolicy`).
    """

    def __init__(
        self,
        store: PolicyStore,
        *,
        default_issuer: str,
        refresh_seconds: float,
        max_stale_seconds: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._store = store
        self._default_issuer = default_issuer
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
        return compile_record(record, default_issuer=self._default_issuer)


class PolicyVersions:
    """Immutable policy versions, cached for the life of the container.

    ``default_issuer`` is the stage's first trusted issuer (see :class:`CompiledPolicy`).
    """

    def __init__(self, store: PolicyStore, *, default_issuer: str) -> None:
        self._store = store
        self._default_issuer = default_issuer
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
        compiled = compile_record(record, default_issuer=self._default_issuer)
        if len(self._cache) > 16:
            self._cache.clear()
        self._cache[version] = compiled
        return compiled
