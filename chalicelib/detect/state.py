"""Window state: counters, distinct sets, first-seen sets and suppression.

In DynamoDB (the state table, partition ``DETECT``, every item with a TTL), so
it survives restarts and is shared by concurrent writers. Each item:

======================================================  ===============================
sort key                                                attributes
======================================================  ===============================
``COUNT#<rule>#<window>#<subject>``                     ``n`` (count), ``ids`` (event ids)
``DISTINCT#<rule>#<window>#<subject>``                  ``vals`` (distinct values), ``ids``
``SEEN#<rule>#<subject>``                               ``vals`` (values seen)
``SUPPRESS#<rule>#<subject>``                           ``until``, ``alert_id``
``ALERT#<alert id>``                                    ``alert`` (the alert's JSON)
``PENDING#<alert id>``                                  ``alert``, ``since``, ``attempts``,
                                                        ``took``, ``recorded``
======================================================  ===============================

``<window>`` is the window's start (epoch seconds); ``<subject>`` is the
subject itself when short and plain, else its SHA-256.

Exactly once: a counter or a distinct set is only updated while it is below
the threshold (a condition on the ``UpdateItem``), and the update that
returns a total at or above it is the one crossing it: that writer, and no
other, fires. Suppression is a conditional put of the ``SUPPRESS`` item.

At least once: the transaction that claims an alert also writes its
``PENDING`` item (when it was claimed, ``since``, and the delivery attempts
started, ``attempts``), so no alert is ever claimed without one. Each attempt
notes the channels that have the alert (``took``) and whether its event is
enqueued (``recorded``); the item is deleted once every channel has it and
its event is enqueued. Until then the scheduled check finishes the rest, and
only the rest (:func:`chalicelib.detect.checks.resend_pending`). It has no
TTL: an alert is never given up silently.

:class:`MemoryState` has the same semantics, in memory (replays, tests).
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from collections import OrderedDict
from dataclasses import dataclass, replace
from typing import Any, Protocol

from chalicelib.aws.table_errors import WriteRefused
from chalicelib.aws.table_items import deserialize, serialize
from chalicelib.aws.table_layout import DETECT
from chalicelib.detect.errors import DetectionUnavailable

logger = logging.getLogger(__name__)

PARTITION = DETECT.partition
PENDING_PREFIX = "PENDING#"
_PLAIN = re.compile(r"^[A-Za-z0-9 .:@|/_+=-]{1,128}$")
# How long an alert record stays readable by `gatehouse alerts explain`.
ALERT_RECORD_SECONDS = 90 * 86400
_KNOWN_LIMIT = 20000  # first-seen values a container remembers it need not send again


def subject_key(subject: str) -> str:
    """The subject as a sort key part: itself when short and plain, else its SHA-256."""
    if _PLAIN.match(subject) and "#" not in subject:
        return subject
    return "sha256:" + hashlib.sha256(subject.encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class Tally:
    """A window's state after an update: the total and the event ids recorded."""

    total: int
    ids: tuple[str, ...]
    values: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Pending:
    """An alert claimed and not yet known to be delivered."""

    alert: dict[str, Any]
    since: float  # when it was claimed (epoch seconds)
    attempts: int  # delivery attempts started, the claimer's included
    took: frozenset[str] = frozenset()  # the channels that have it
    recorded: bool = False  # its alert event is enqueued
    last_attempt: float | None = None

    @property
    def alert_id(self) -> str:
        """The alert's id."""
        return str(self.alert["alert_id"])


class DetectState(Protocol):
    """Where rules keep their windows (DynamoDB, or memory for replays)."""

    def add_count(
        self,
        rule: str,
        subject: str,
        window: int,
        count: int,
        ids: list[str],
        threshold: int,
        expires_at: int,
    ) -> Tally | None:
        """Add ``count`` to a window; None when the window had reached ``threshold`` already."""
        ...

    def add_distinct(
        self,
        rule: str,
        subject: str,
        window: int,
        values: set[str],
        ids: list[str],
        threshold: int,
        expires_at: int,
    ) -> Tally | None:
        """Add ``values`` to a window's set; None when it had ``threshold`` values already."""
        ...

    def remember(
        self, rule: str, subject: str, values: set[str], expires_at: int
    ) -> set[str] | None:
        """Record ``values``; return those new for the subject (None: the subject was new)."""
        ...

    def claim(
        self, rule: str, subject: str, alert: dict[str, Any], until: float, now: float
    ) -> bool:
        """Record the alert, pending delivery; False while the rule's last alert about
        ``subject`` is suppressed (then nothing is recorded)."""
        ...

    def alert(self, alert_id: str) -> dict[str, Any] | None:
        """A recorded alert."""
        ...

    def pending(self, claimed_before: float, limit: int) -> list[Pending]:
        """At most ``limit`` alerts awaiting delivery, claimed before ``claimed_before``."""
        ...

    def attempt(self, alert_id: str, now: float) -> int | None:
        """Count a delivery attempt of a pending alert: the attempts so far (None: not pending)."""
        ...

    def progress(self, alert_id: str, took: frozenset[str], recorded: bool) -> None:
        """Note what is done for a pending alert: the channels that have it, its event."""
        ...

    def delivered(self, alert_id: str) -> None:
        """Forget a pending alert: every channel has it and its event is enqueued."""
        ...


class DynamoState:
    """:class:`DetectState` in the state table. Every call is one round trip.

    Parameters
    ----------
    dynamodb:
        A low-level boto3 DynamoDB client.
    table:
        The state table's name.
    """

    def __init__(self, dynamodb: Any, table: str) -> None:
        self._dynamodb = dynamodb
        self._table = table
        # (rule, subject, value) this container recorded: not sent again.
        self._known: OrderedDict[tuple[str, str, str], None] = OrderedDict()
        self.calls = 0

    def add_count(
        self,
        rule: str,
        subject: str,
        window: int,
        count: int,
        ids: list[str],
        threshold: int,
        expires_at: int,
    ) -> Tally | None:
        item = self._update(
            f"COUNT#{rule}#{window}#{subject_key(subject)}",
            "ADD n :n, ids :ids SET #ttl = :ttl",
            # Only below the threshold: after the crossing the window is done, and
            # its item stays small however long the burst goes on.
            "attribute_not_exists(n) OR n < :threshold",
            {":n": count, ":ids": set(ids), ":ttl": expires_at, ":threshold": threshold},
            "ALL_NEW",
        )
        if item is None:
            return None
        return Tally(int(item.get("n", 0)), tuple(sorted(item.get("ids", ()))))

    def add_distinct(
        self,
        rule: str,
        subject: str,
        window: int,
        values: set[str],
        ids: list[str],
        threshold: int,
        expires_at: int,
    ) -> Tally | None:
        item = self._update(
            f"DISTINCT#{rule}#{window}#{subject_key(subject)}",
            "ADD vals :vals, ids :ids SET #ttl = :ttl",
            # As for counters: only while fewer than ``threshold`` values are known.
            "attribute_not_exists(vals) OR size(vals) < :threshold",
            {":vals": values, ":ids": set(ids), ":ttl": expires_at, ":threshold": threshold},
            "ALL_NEW",
        )
        if item is None:
            return None
        known = tuple(sorted(item.get("vals", ())))
        return Tally(len(known), tuple(sorted(item.get("ids", ()))), known)

    def remember(
        self, rule: str, subject: str, values: set[str], expires_at: int
    ) -> set[str] | None:
        fresh = {value for value in values if (rule, subject, value) not in self._known}
        if not fresh:
            return set()
        old = self._update(
            f"SEEN#{rule}#{subject_key(subject)}",
            "ADD vals :vals SET #ttl = :ttl",
            None,
            {":vals": fresh, ":ttl": expires_at},
            "UPDATED_OLD",
        )
        for value in fresh:
            self._known[(rule, subject, value)] = None
        while len(self._known) > _KNOWN_LIMIT:
            self._known.popitem(last=False)
        if not old or "vals" not in old:
            return None  # no set before: the subject's history starts here
        return fresh - set(old.get("vals", ()))

    def claim(
        self, rule: str, subject: str, alert: dict[str, Any], until: float, now: float
    ) -> bool:
        record = {
            "pk": PARTITION,
            "sk": f"ALERT#{alert['alert_id']}",
            "alert": json.dumps(alert, separators=(",", ":")),
            "ttl": int(now) + ALERT_RECORD_SECONDS,
        }
        pending = {
            "pk": PARTITION,
            "sk": PENDING_PREFIX + alert["alert_id"],
            "alert": record["alert"],
            "since": now,
            "attempts": 1,  # the claimer's, about to start
            "recorded": False,
        }
        actions: list[dict[str, Any]] = [
            {"Put": {"TableName": self._table, "Item": serialize(record)}},
            {"Put": {"TableName": self._table, "Item": serialize(pending)}},
        ]
        if until > now:
            suppress = {
                "pk": PARTITION,
                "sk": f"SUPPRESS#{rule}#{subject_key(subject)}",
                "until": until,
                "alert_id": alert["alert_id"],
                "ttl": int(until) + 3600,
            }
            actions.append(
                {
                    "Put": {
                        "TableName": self._table,
                        "Item": serialize(suppress),
                        # A repeat is dropped while the last alert's suppression lasts.
                        "ConditionExpression": "attribute_not_exists(sk) OR #until <= :now",
                        "ExpressionAttributeNames": {"#until": "until"},
                        "ExpressionAttributeValues": serialize({":now": now}),
                    }
                }
            )
        try:
            self._call("transact_write_items", TransactItems=actions)
        except WriteRefused as exc:
            if exc.lost_race:
                return False
            raise DetectionUnavailable(f"cannot record alert {alert['alert_id']}: {exc}") from exc
        return True

    def alert(self, alert_id: str) -> dict[str, Any] | None:
        answer = self._call(
            "get_item",
            TableName=self._table,
            Key=serialize({"pk": PARTITION, "sk": f"ALERT#{alert_id}"}),
            ConsistentRead=True,
        )
        item = answer.get("Item")
        if not item:
            return None
        value: dict[str, Any] = json.loads(deserialize(item)["alert"])
        return value

    def pending(self, claimed_before: float, limit: int) -> list[Pending]:
        """One ``Query`` (a page per MB) of the ``PENDING`` items, consistent.

        Raises
        ------
        DetectionUnavailable
            When the table cannot be read, or an item cannot be (named).
        """
        request: dict[str, Any] = {
            "TableName": self._table,
            "KeyConditionExpression": "pk = :pk AND begins_with(sk, :prefix)",
            "FilterExpression": "#since < :before",
            "ExpressionAttributeNames": {"#since": "since"},
            "ExpressionAttributeValues": serialize(
                {":pk": PARTITION, ":prefix": PENDING_PREFIX, ":before": claimed_before}
            ),
            "ConsistentRead": True,
        }
        found: list[Pending] = []
        while True:
            answer = self._call("query", **request)
            for raw in answer.get("Items", []):
                pending = _pending(raw)
                if pending is not None:
                    found.append(pending)
            if "LastEvaluatedKey" not in answer:
                break
            request["ExclusiveStartKey"] = answer["LastEvaluatedKey"]
        return least_recently_tried(found, limit)

    def attempt(self, alert_id: str, now: float) -> int | None:
        try:
            answer = self._call(
                "update_item",
                TableName=self._table,
                Key=serialize({"pk": PARTITION, "sk": PENDING_PREFIX + alert_id}),
                UpdateExpression="ADD #attempts :one SET #last = :now",
                # Delivered (and deleted) since it was read: nothing to send.
                ConditionExpression="attribute_exists(sk)",
                ExpressionAttributeNames={"#attempts": "attempts", "#last": "last_attempt"},
                ExpressionAttributeValues=serialize({":one": 1, ":now": now}),
                ReturnValues="UPDATED_NEW",
            )
        except WriteRefused as exc:
            if exc.lost_race:
                return None
            raise DetectionUnavailable(f"cannot count a delivery of {alert_id}: {exc}") from exc
        return int(deserialize(answer.get("Attributes", {})).get("attempts", 0))

    def progress(self, alert_id: str, took: frozenset[str], recorded: bool) -> None:
        try:
            self._call(
                "update_item",
                TableName=self._table,
                Key=serialize({"pk": PARTITION, "sk": PENDING_PREFIX + alert_id}),
                UpdateExpression="SET #took = :took, #recorded = :recorded",
                # Finished (and deleted) by another run meanwhile: nothing to note.
                ConditionExpression="attribute_exists(sk)",
                ExpressionAttributeNames={"#took": "took", "#recorded": "recorded"},
                ExpressionAttributeValues=serialize({":took": sorted(took), ":recorded": recorded}),
            )
        except WriteRefused as exc:
            if not exc.lost_race:
                raise DetectionUnavailable(f"cannot note pending alert {alert_id}: {exc}") from exc

    def delivered(self, alert_id: str) -> None:
        try:
            self._call(
                "delete_item",
                TableName=self._table,
                Key=serialize({"pk": PARTITION, "sk": PENDING_PREFIX + alert_id}),
            )
        except WriteRefused as exc:  # no condition: only throttling and the like
            raise DetectionUnavailable(f"cannot clear pending alert {alert_id}: {exc}") from exc

    def _update(
        self,
        sort_key: str,
        expression: str,
        condition: str | None,
        values: dict[str, Any],
        returns: str,
    ) -> dict[str, Any] | None:
        request: dict[str, Any] = {
            "TableName": self._table,
            "Key": serialize({"pk": PARTITION, "sk": sort_key}),
            "UpdateExpression": expression,
            "ExpressionAttributeNames": {"#ttl": "ttl"},  # TTL is a reserved word
            "ExpressionAttributeValues": serialize(values),
            "ReturnValues": returns,
        }
        if condition is not None:
            request["ConditionExpression"] = condition
        try:
            answer = self._call("update_item", **request)
        except WriteRefused as exc:
            if exc.lost_race:
                return None
            raise DetectionUnavailable(f"cannot update {sort_key}: {exc}") from exc
        return deserialize(answer.get("Attributes", {}))

    def _call(self, operation: str, **request: Any) -> dict[str, Any]:
        from chalicelib.aws.table import _table_error

        self.calls += 1
        try:
            answer: dict[str, Any] = getattr(self._dynamodb, operation)(**request)
        except Exception as exc:  # botocore raises many types; mapped once, as the table does
            error = _table_error(exc)
            if isinstance(error, WriteRefused):
                raise error from exc
            raise DetectionUnavailable(f"the state table cannot be used: {error}") from exc
        return answer


def _pending(raw: dict[str, Any]) -> Pending | None:
    """The pending alert an item holds; None (logged) for one that cannot be read."""
    from chalicelib.aws.table_errors import CorruptItem

    try:
        item = deserialize(raw)
        alert = json.loads(item["alert"])
        if not isinstance(alert, dict) or not isinstance(alert.get("alert_id"), str):
            raise ValueError("not an alert")
        last = item.get("last_attempt")
        return Pending(
            alert,
            float(item["since"]),
            int(item.get("attempts", 0)),
            frozenset(str(channel) for channel in item.get("took") or ()),
            bool(item.get("recorded", False)),
            None if last is None else float(last),
        )
    except (CorruptItem, KeyError, TypeError, ValueError) as exc:
        # One unreadable item must not hold every other alert back: skipped, loudly.
        sort_key = raw.get("sk", {}).get("S")
        logger.error("pending alert %r cannot be read (%s); delete it by hand", sort_key, exc)
        return None


def least_recently_tried(pending: list[Pending], limit: int) -> list[Pending]:
    """At most ``limit`` of ``pending``, the least recently tried first.

    So alerts that keep failing take their turn with the others rather than
    holding the first places of every run.
    """
    return sorted(pending, key=lambda p: (p.last_attempt or p.since, p.alert_id))[:limit]


class MemoryState:
    """:class:`DetectState` in memory: the same semantics, for replays and tests."""

    def __init__(self) -> None:
        self._counts: dict[tuple[str, str, int], Tally] = {}
        self._seen: dict[tuple[str, str], set[str]] = {}
        self._until: dict[tuple[str, str], float] = {}
        self.alerts: dict[str, dict[str, Any]] = {}
        self.pending_alerts: dict[str, Pending] = {}

    def add_count(
        self,
        rule: str,
        subject: str,
        window: int,
        count: int,
        ids: list[str],
        threshold: int,
        expires_at: int,
    ) -> Tally | None:
        before = self._counts.get((rule, subject, window), Tally(0, ()))
        if before.total >= threshold:
            return None
        after = Tally(before.total + count, tuple(sorted({*before.ids, *ids})))
        self._counts[(rule, subject, window)] = after
        return after

    def add_distinct(
        self,
        rule: str,
        subject: str,
        window: int,
        values: set[str],
        ids: list[str],
        threshold: int,
        expires_at: int,
    ) -> Tally | None:
        before = self._counts.get((rule, subject, window), Tally(0, ()))
        if before.total >= threshold:
            return None
        known = tuple(sorted({*before.values, *values}))
        after = Tally(len(known), tuple(sorted({*before.ids, *ids})), known)
        self._counts[(rule, subject, window)] = after
        return after

    def remember(
        self, rule: str, subject: str, values: set[str], expires_at: int
    ) -> set[str] | None:
        known = self._seen.get((rule, subject))
        self._seen[(rule, subject)] = (known or set()) | values
        return None if known is None else values - known

    def claim(
        self, rule: str, subject: str, alert: dict[str, Any], until: float, now: float
    ) -> bool:
        if self._until.get((rule, subject), 0.0) > now:
            return False
        if until > now:
            self._until[(rule, subject)] = until
        self.alerts[alert["alert_id"]] = alert
        self.pending_alerts[alert["alert_id"]] = Pending(alert, now, 1)
        return True

    def alert(self, alert_id: str) -> dict[str, Any] | None:
        return self.alerts.get(alert_id)

    def pending(self, claimed_before: float, limit: int) -> list[Pending]:
        due = [p for p in self.pending_alerts.values() if p.since < claimed_before]
        return least_recently_tried(due, limit)

    def attempt(self, alert_id: str, now: float) -> int | None:
        before = self.pending_alerts.get(alert_id)
        if before is None:
            return None
        self.pending_alerts[alert_id] = replace(
            before, attempts=before.attempts + 1, last_attempt=now
        )
        return before.attempts + 1

    def progress(self, alert_id: str, took: frozenset[str], recorded: bool) -> None:
        before = self.pending_alerts.get(alert_id)
        if before is not None:
            self.pending_alerts[alert_id] = replace(before, took=took, recorded=recorded)

    def delivered(self, alert_id: str) -> None:
        self.pending_alerts.pop(alert_id, None)
