"""The Thrift compact protocol, only as much of it as a Parquet writer needs.

A Parquet file's page headers and its footer (``FileMetaData``) are Thrift
structs in the compact protocol. Writing them needs structs, i32 and i64,
binary (strings) and lists, and nothing of Thrift's reading side, services
or maps: the few lines here instead of a Thrift library keep the Lambda
package small. Field ids, types and the meaning of each struct are those of
``parquet.thrift`` (apache/parquet-format); :mod:`.parquet_writer` builds the
structs.

Encoding, per the compact protocol spec:

- a field header is one byte, ``(id delta << 4) | type``, when the id is 1 to
  15 above the previous field's of the same struct, else the type byte and
  the id as a zigzag varint; a struct ends with a 0 byte;
- i16, i32 and i64 are zigzag varints (ULEB128 of ``(n << 1) ^ (n >> 63)``);
- binary is its length as a varint, then the bytes;
- a list header is ``(size << 4) | element type`` for fewer than 15 elements,
  else ``0xF0 | element type`` and the size as a varint;
- a bool field carries its value in the type nibble (1 true, 2 false).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

# Compact protocol type ids (field headers and list headers).
_TRUE, _FALSE, _I16, _I32, _I64, _BINARY, _LIST, _STRUCT = 1, 2, 4, 5, 6, 8, 9, 12


@dataclass(frozen=True, slots=True)
class I16:
    """A Thrift ``i16``."""

    value: int


@dataclass(frozen=True, slots=True)
class I32:
    """A Thrift ``i32`` (Parquet's enums are i32 too)."""

    value: int


@dataclass(frozen=True, slots=True)
class I64:
    """A Thrift ``i64``."""

    value: int


@dataclass(frozen=True, slots=True)
class Binary:
    """A Thrift ``binary`` or ``string`` (a string as its UTF-8 bytes)."""

    value: bytes


@dataclass(frozen=True, slots=True)
class Bool:
    """A Thrift ``bool`` field."""

    value: bool


@dataclass(frozen=True, slots=True)
class Struct:
    """A Thrift struct: ``(field id, value)`` pairs; a ``None`` value is an unset field.

    Fields are written in ascending id order whatever order they are given in
    (the compact protocol's deltas want that, and readers expect it).
    """

    fields: Sequence[tuple[int, Value | None]]


@dataclass(frozen=True, slots=True)
class List:
    """A Thrift list of one element type: all of ``items`` are I32, Binary or Struct."""

    items: Sequence[I32 | Binary | Struct]


Value = I16 | I32 | I64 | Binary | Bool | Struct | List


def encode(value: Struct) -> bytes:
    """``value`` in the Thrift compact protocol.

    Raises
    ------
    ValueError
        For a list whose elements are not all of one type, or a field id that
        repeats or is not positive.
    """
    out = bytearray()
    _struct(out, value)
    return bytes(out)


def varint(out: bytearray, number: int) -> None:
    """Append ``number`` (>= 0) as ULEB128, as the compact protocol and Parquet's RLE do."""
    while number > 0x7F:
        out.append((number & 0x7F) | 0x80)
        number >>= 7
    out.append(number)


def _zigzag(number: int) -> int:
    # Small magnitudes, either sign, stay short: 0, -1, 1, -2 ... -> 0, 1, 2, 3 ...
    return (number << 1) ^ (number >> 63)


def _type_of(value: Value) -> int:
    if isinstance(value, Bool):
        return _TRUE if value.value else _FALSE
    if isinstance(value, I16):
        return _I16
    if isinstance(value, I32):
        return _I32
    if isinstance(value, I64):
        return _I64
    if isinstance(value, Binary):
        return _BINARY
    if isinstance(value, List):
        return _LIST
    return _STRUCT


def _struct(out: bytearray, value: Struct) -> None:
    last = 0
    for field_id, member in sorted(
        ((field_id, member) for field_id, member in value.fields if member is not None),
        key=lambda pair: pair[0],
    ):
        if field_id <= last:
            raise ValueError(f"Thrift field id {field_id} repeats or is not positive")
        kind = _type_of(member)
        delta = field_id - last
        if delta <= 15:
            out.append((delta << 4) | kind)
        else:
            out.append(kind)
            varint(out, _zigzag(field_id))
        _value(out, member)
        last = field_id
    out.append(0)  # stop


def _value(out: bytearray, value: Value) -> None:
    if isinstance(value, Bool):
        return  # the value is the field header's type
    if isinstance(value, I16 | I32 | I64):
        varint(out, _zigzag(value.value))
    elif isinstance(value, Binary):
        varint(out, len(value.value))
        out += value.value
    elif isinstance(value, List):
        _list(out, value)
    else:
        _struct(out, value)


def _list(out: bytearray, value: List) -> None:
    kinds = {_type_of(item) for item in value.items}
    if len(kinds) > 1:
        raise ValueError("a Thrift list holds elements of one type")
    kind = kinds.pop() if kinds else _STRUCT
    size = len(value.items)
    if size < 15:
        out.append((size << 4) | kind)
    else:
        out.append(0xF0 | kind)
        varint(out, size)
    for item in value.items:
        _value(out, item)
