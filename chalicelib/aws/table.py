"""The one DynamoDB table (policy versions, grants, ledger state): values, keys and errors.

Every store of the table goes through :class:`Table`, which

- converts values with boto3's ``TypeSerializer``/``TypeDeserializer``: the
  stores write and read plain ``str``, ``int``, ``float`` and ``Decimal``;
- builds partition and sort keys with one :class:`ItemKind` per kind of
  item, all declared here, so the table's layout is read in one place;
- maps botocore's errors once: a refused condition or a cancelled
  transaction is :class:`WriteRefused` (with each action's cancellation
  reason), an unreadable item :class:`CorruptItem`, anything else
  :class:`TableUnavailable`. The stores turn these into their own errors.

Condition expressions stay with the stores, next to what they guarantee.

boto3 is imported on the first conversion, never when this module is
loaded: the authorizer imports the stores on a cold start.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

Item = dict[str, Any]
"""An item or expression values as the stores see them: attribute name -> plain value."""

_RACE_REASONS = frozenset({"ConditionalCheckFailed", "TransactionConflict"})


class TableError(Exception):
    """The table could not serve a request; ``str()`` is the underlying error's message."""


class TableUnavailable(TableError):
    """The table cannot be read or written (network, throttling, validation, permissions)."""


class WriteRefused(TableError):
    """A conditional write or a transaction was refused.

    ``reasons`` holds a cancelled transaction's reason code per action
    (``"None"`` for an action that was not the cause); a single conditional
    write refused by its condition has ``("ConditionalCheckFailed",)``.
    """

    def __init__(self, message: str, reasons: tuple[str, ...]) -> None:
        super().__init__(message)
        self.reasons = reasons

    @property
    def lost_race(self) -> bool:
        """Whether the write lost to another writer, rather than failed for another reason.

        A failed condition or a concurrent transaction on the same item is a
        lost race; anything else among the reasons (throttling, validation,
        capacity) is not, and retrying as if another writer had won would hide it.
        """
        codes = set(self.reasons)
        return bool(codes & _RACE_REASONS) and codes <= _RACE_REASONS | {"None"}


class CorruptItem(TableError):
    """A stored item (or one of its attributes) cannot be read as its kind requires."""


@dataclass(frozen=True, slots=True)
class ItemKind:
    """How the keys of one kind of item are built.

    Parameters
    ----------
    partition:
        The partition key (``pk``) every item of the kind shares.
    prefix:
        What every sort key (``sk``) of the kind starts with.
    digits:
        For numbered items: the sort key is the number zero-padded to this
        many digits, so that sort-key order is numeric order.
    """

    partition: str
    prefix: str = ""
    digits: int = 0

    def sort_key(self, name: str | int = "") -> str:
        """The sort key of the item ``name`` (a number for numbered kinds)."""
        if self.digits:
            return f"{self.prefix}{int(name):0{self.digits}d}"
        return f"{self.prefix}{name}"

    def key(self, name: str | int = "") -> Item:
        """The primary key of the item ``name``."""
        return {"pk": self.partition, "sk": self.sort_key(name)}

    def name(self, item: Mapping[str, Any]) -> str:
        """The item's name: its sort key without the prefix.

        Raises
        ------
        CorruptItem
            When the item has no text sort key of this kind.
        """
        sk = item.get("sk")
        if not isinstance(sk, str) or not sk.startswith(self.prefix):
            raise CorruptItem(f"item {sk!r} is not a {self.partition} {self.prefix!r} item")
        return sk.removeprefix(self.prefix)

    def number(self, item: Mapping[str, Any]) -> int:
        """A numbered item's number.

        Raises
        ------
        CorruptItem
            When the sort key does not end in a number.
        """
        name = self.name(item)
        if not name.isdigit():
            raise CorruptItem(f"item {item.get('sk')!r} is not numbered")
        return int(name)


# The table's layout: every kind of item in it (infra/ denies writes per partition).
POLICY_VERSION = ItemKind("POLICY", "VERSION#", digits=10)
"""An immutable policy version."""
POLICY_CHECKSUM = ItemKind("POLICY", "CHECKSUM#")
"""A document's checksum -> the version holding it."""
POLICY_ACTIVE = ItemKind("POLICY", "ACTIVE")
"""The pointer to the active version (one item: its name is empty)."""
POLICY_ACTIVATION = ItemKind("POLICY", "ACTIVATION#", digits=10)
"""One activation record per activation."""
GRANT = ItemKind("GRANT")
"""A grant and its whole life, named by grant id."""
GRANT_LIVE = ItemKind("GRANT-LIVE")
"""The copy of an approved grant the authorizer loads."""
GRANT_OUTBOX = ItemKind("GRANT-OUTBOX")
"""A grant lifecycle event not yet known to be enqueued, named by event id."""


def serialize(values: Mapping[str, Any]) -> dict[str, Any]:
    """Plain values -> DynamoDB's typed values (``{"S": ...}``, ``{"N": ...}``).

    A ``float`` is written as the shortest text that reads back as the same
    float (``repr``), so a moment survives the round trip exactly.

    Raises
    ------
    TypeError
        For a value DynamoDB cannot store (a non-finite number, an unsupported type).
    """
    from boto3.dynamodb.types import TypeSerializer

    serializer = TypeSerializer()
    return {name: serializer.serialize(_storable(value)) for name, value in values.items()}


def deserialize(item: Mapping[str, Any]) -> Item:
    """DynamoDB's typed values -> plain values (numbers as ``Decimal``).

    Raises
    ------
    CorruptItem
        When an attribute is not a well-formed typed value, or a number is
        not a finite number.
    """
    from boto3.dynamodb.types import TypeDeserializer

    deserializer = TypeDeserializer()
    plain: Item = {}
    for name, value in item.items():
        try:
            plain[name] = deserializer.deserialize(value)
        except (ArithmeticError, TypeError, ValueError, AttributeError) as exc:
            raise CorruptItem(f"attribute {name!r} cannot be read: {exc}") from exc
        # The deserializer reads "two hours" as NaN rather than refusing it.
        if isinstance(plain[name], Decimal) and not plain[name].is_finite():
            raise CorruptItem(f"attribute {name!r} is not a number")
    return plain


def _storable(value: Any) -> Any:
    if isinstance(value, float):
        if not math.isfinite(value):
            raise TypeError(f"cannot store the number {value!r}")
        return Decimal(repr(value))
    return value


# --- typed reads of a deserialized item ----------------------------------------------------


def text(item: Mapping[str, Any], name: str, default: str | None = None) -> str:
    """Attribute ``name`` as text (``default`` when absent, if given).

    Raises
    ------
    CorruptItem
        When it is missing (and there is no default) or not text.
    """
    value = item.get(name, default)
    if not isinstance(value, str):
        raise CorruptItem(f"attribute {name!r} is not text")
    return value


def optional_text(item: Mapping[str, Any], name: str) -> str | None:
    """Attribute ``name`` as text, or None when absent.

    Raises
    ------
    CorruptItem
        When it is present but not text.
    """
    return None if name not in item else text(item, name)


def integer(item: Mapping[str, Any], name: str, default: int | None = None) -> int:
    """Attribute ``name`` as a whole number (``default`` when absent, if given).

    Raises
    ------
    CorruptItem
        When it is missing (and there is no default) or not a whole number.
    """
    if name not in item and default is not None:
        return default
    value = item.get(name)
    if not isinstance(value, Decimal) or value != value.to_integral_value():
        raise CorruptItem(f"attribute {name!r} is not a whole number")
    return int(value)


def number(item: Mapping[str, Any], name: str) -> float:
    """Attribute ``name`` as a float.

    Raises
    ------
    CorruptItem
        When it is missing or not a number.
    """
    value = item.get(name)
    if not isinstance(value, Decimal):
        raise CorruptItem(f"attribute {name!r} is not a number")
    return float(value)


def optional_number(item: Mapping[str, Any], name: str) -> float | None:
    """Attribute ``name`` as a float, or None when absent.

    Raises
    ------
    CorruptItem
        When it is present but not a number.
    """
    return None if name not in item else number(item, name)


# --- the table -----------------------------------------------------------------------------


class Table:
    """One DynamoDB table, through a low-level boto3 client.

    Reads are strongly consistent: every reader here decides something
    (an authorization, a transition) on what it reads.

    Parameters
    ----------
    dynamodb:
        A low-level boto3 DynamoDB client.
    name:
        The table name.
    """

    def __init__(self, dynamodb: Any, name: str) -> None:
        self._dynamodb = dynamodb
        self.name = name

    def get(self, key: Mapping[str, Any]) -> Item | None:
        """The item under ``key``, or None.

        Raises
        ------
        TableUnavailable
            When the table cannot be read.
        CorruptItem
            When the item cannot be read.
        """
        response = self._call(
            "get_item", TableName=self.name, Key=serialize(key), ConsistentRead=True
        )
        item = response.get("Item")
        return None if item is None else deserialize(item)

    def query(
        self,
        kind: ItemKind,
        *,
        newest_first: bool = False,
        limit: int | None = None,
        filter_expression: str | None = None,
        names: Mapping[str, str] | None = None,
        values: Mapping[str, Any] | None = None,
    ) -> Iterator[Item]:
        """The items of ``kind``, in sort-key order (reversed when ``newest_first``).

        With ``limit``, one request of at most that many items; without it,
        every page. A filter only saves transfer: it applies after ``limit``.

        Raises
        ------
        TableUnavailable
            When the table cannot be read.
        CorruptItem
            When an item cannot be read.
        """
        condition = "pk = :pk"
        key_values: Item = {":pk": kind.partition}
        if kind.prefix:
            condition += " AND begins_with(sk, :prefix)"
            key_values[":prefix"] = kind.prefix
        request: dict[str, Any] = {
            "TableName": self.name,
            "KeyConditionExpression": condition,
            "ExpressionAttributeValues": serialize({**key_values, **(values or {})}),
            "ScanIndexForward": not newest_first,
            "ConsistentRead": True,
        }
        if limit is not None:
            request["Limit"] = limit
        if filter_expression is not None:
            request["FilterExpression"] = filter_expression
        if names:
            request["ExpressionAttributeNames"] = dict(names)
        while True:
            response = self._call("query", **request)
            for item in response.get("Items", []):
                yield deserialize(item)
            last = response.get("LastEvaluatedKey")
            if limit is not None or not last:
                return
            request["ExclusiveStartKey"] = last

    def update(self, key: Mapping[str, Any], expression: str) -> None:
        """Apply ``expression`` (unconditionally) to the item under ``key``.

        Raises
        ------
        TableUnavailable
            When the table cannot be written.
        """
        self._call(
            "update_item", TableName=self.name, Key=serialize(key), UpdateExpression=expression
        )

    def delete(self, key: Mapping[str, Any]) -> None:
        """Delete the item under ``key`` (unconditionally; absent is fine).

        Raises
        ------
        TableUnavailable
            When the table cannot be written.
        """
        self._call("delete_item", TableName=self.name, Key=serialize(key))

    # Actions of a transaction: built here, written together by :meth:`transact`.

    def put(
        self,
        item: Mapping[str, Any],
        *,
        condition: str | None = None,
        values: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        """A transaction action writing ``item`` (which holds its key), if ``condition``."""
        put: dict[str, Any] = {"TableName": self.name, "Item": serialize(item)}
        _conditional(put, condition, None, values)
        return {"Put": put}

    def put_new(self, item: Mapping[str, Any]) -> dict[str, Any]:
        """A transaction action writing ``item`` only where no item is."""
        # No item under the key yet: nothing is ever overwritten.
        return self.put(item, condition="attribute_not_exists(sk)")

    def update_action(
        self,
        key: Mapping[str, Any],
        expression: str,
        *,
        condition: str | None = None,
        names: Mapping[str, str] | None = None,
        values: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        """A transaction action: ``expression`` on the item under ``key``, if ``condition``."""
        update: dict[str, Any] = {
            "TableName": self.name,
            "Key": serialize(key),
            "UpdateExpression": expression,
        }
        _conditional(update, condition, names, values)
        return {"Update": update}

    def delete_action(
        self, key: Mapping[str, Any], *, condition: str | None = None
    ) -> dict[str, Any]:
        """A transaction action deleting the item under ``key``, if ``condition``."""
        delete: dict[str, Any] = {"TableName": self.name, "Key": serialize(key)}
        _conditional(delete, condition, None, None)
        return {"Delete": delete}

    def transact(self, actions: list[dict[str, Any]]) -> None:
        """Write ``actions`` all together, or none of them.

        Raises
        ------
        WriteRefused
            When a condition failed or another transaction held an item
            (``reasons`` says which, per action).
        TableUnavailable
            When the table cannot be written.
        """
        self._call("transact_write_items", TransactItems=actions)

    def _call(self, operation: str, **request: Any) -> dict[str, Any]:
        """Call the client; the one place botocore's errors become this module's."""
        try:
            response: dict[str, Any] = getattr(self._dynamodb, operation)(**request)
        except Exception as exc:  # botocore raises many unrelated types; all mean unavailable
            raise _table_error(exc) from exc
        return response


def _conditional(
    action: dict[str, Any],
    condition: str | None,
    names: Mapping[str, str] | None,
    values: Mapping[str, Any] | None,
) -> None:
    if condition is not None:
        action["ConditionExpression"] = condition
    if names:
        action["ExpressionAttributeNames"] = dict(names)
    if values:
        action["ExpressionAttributeValues"] = serialize(values)


def _table_error(exc: Exception) -> TableError:
    from botocore.exceptions import ClientError  # loaded already: a client exists

    if not isinstance(exc, ClientError):
        return TableUnavailable(str(exc))
    response: dict[str, Any] = dict(exc.response)
    code = response.get("Error", {}).get("Code")
    if code == "ConditionalCheckFailedException":
        return WriteRefused(str(exc), ("ConditionalCheckFailed",))
    if code == "TransactionCanceledException":
        reasons = tuple(
            str(reason.get("Code")) for reason in response.get("CancellationReasons", ())
        )
        return WriteRefused(str(exc), reasons)
    return TableUnavailable(str(exc))
