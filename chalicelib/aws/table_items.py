"""The state table's values as the stores see them: plain values in, typed reads out.

boto3's ``TypeSerializer``/``TypeDeserializer`` convert between plain values
(``str``, ``int``, ``float``, ``Decimal``) and DynamoDB's typed attribute
values; boto3 is imported on the first conversion, never when this module
is loaded: the authorizer imports the stores on a cold start.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from chalicelib.aws.table_errors import CorruptItem

Item = dict[str, Any]
"""An item or expression values as the stores see them: attribute name -> plain value."""


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
