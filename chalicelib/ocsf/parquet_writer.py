"""A small Parquet writer in pure Python: nested optional structs, lists, string maps.

Written for the OCSF export (:mod:`.parquet`), so that the Lambda function
that exports needs nothing beyond the standard library: no native module, no
layer. It writes what the OCSF schemas use and nothing else:

- types: :data:`STRING` (``BYTE_ARRAY``, logical type STRING, converted type
  UTF8), :data:`INT32`, :data:`INT64`, :data:`BOOLEAN`; :class:`Struct`;
  :class:`ListOf` (the standard three-level LIST:
  ``optional group x (LIST) { repeated group list { optional <t> element } }``);
  :data:`STRING_MAP` (the standard MAP: ``optional group x (MAP) { repeated
  group key_value { required binary key (STRING); optional binary value
  (STRING) } }``). Every column, member and element is optional (nullable).
- layout: ``PAR1``, row groups of at most ``row_group_rows`` rows, one column
  chunk per leaf column and row group, each one data page (v1): repetition and
  definition levels in the RLE/bit-packed hybrid encoding, the values PLAIN,
  the page compressed with GZIP (or not at all); the footer
  (``FileMetaData``) in the Thrift compact protocol (:mod:`.parquet_thrift`),
  with each column chunk's null count, minimum and maximum.

Nested values are shredded into leaf columns as Dremel does (and as the
Parquet spec describes): each leaf value, or each place a value could be and
is not, gets a repetition level (at which repeated ancestor a new element
starts; 0 for a new row) and a definition level (how many of its optional or
repeated ancestors, itself included, are present). So a null struct, a null
list, an empty list and a list holding a null element are all told apart.
"""

from __future__ import annotations

import struct as _binary
import zlib
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from enum import Enum
from itertools import groupby, islice
from typing import Any, Literal

from chalicelib.ocsf import parquet_thrift as thrift

__all__ = [
    "BOOLEAN",
    "INT32",
    "INT64",
    "STRING",
    "STRING_MAP",
    "Codec",
    "ColumnType",
    "ListOf",
    "Primitive",
    "StringMap",
    "Struct",
    "struct",
    "write_table",
]

MAGIC = b"PAR1"
CREATED_BY = "gatehouse"

# parquet.thrift's enums (apache/parquet-format).
_BOOLEAN_TYPE, _INT32_TYPE, _INT64_TYPE, _BYTE_ARRAY_TYPE = 0, 1, 2, 6
_REQUIRED, _OPTIONAL, _REPEATED = 0, 1, 2
_UTF8, _MAP, _LIST = 0, 1, 3  # ConvertedType
_PLAIN, _RLE = 0, 3  # Encoding
_UNCOMPRESSED, _GZIP = 0, 2  # CompressionCodec
_DATA_PAGE = 0  # PageType


class Primitive(Enum):
    """A leaf type; the value is the DuckDB (and Athena-like) name of the type."""

    STRING = "VARCHAR"
    INT32 = "INTEGER"
    INT64 = "BIGINT"
    BOOLEAN = "BOOLEAN"


STRING = Primitive.STRING
INT32 = Primitive.INT32
INT64 = Primitive.INT64
BOOLEAN = Primitive.BOOLEAN


@dataclass(frozen=True, slots=True)
class Struct:
    """A struct: its members in order, ``(name, type)``; a record's member may be missing."""

    fields: tuple[tuple[str, ColumnType], ...]


def struct(**fields: ColumnType) -> Struct:
    """A :class:`Struct` of ``fields``, in the order given."""
    return Struct(tuple(fields.items()))


@dataclass(frozen=True, slots=True)
class ListOf:
    """A list of ``element`` (a JSON array)."""

    element: ColumnType


@dataclass(frozen=True, slots=True)
class StringMap:
    """A map from string keys to string (or null) values (a JSON object of strings)."""


STRING_MAP = StringMap()

ColumnType = Primitive | Struct | ListOf | StringMap
Codec = Literal["gzip", "uncompressed"]


def write_table(
    schema: Mapping[str, ColumnType],
    rows: Iterable[dict[str, Any]],
    *,
    codec: Codec = "gzip",
    row_group_rows: int = 100_000,
) -> bytes:
    """One Parquet file of ``rows`` (JSON-like dicts), with the columns of ``schema``.

    Parameters
    ----------
    schema
        The columns, in order: name to type. Every column is optional.
    rows
        The records. A member that is missing or ``None`` is null, at any
        depth; a list may be empty, and is then not null.
    codec
        How each page is compressed: ``"gzip"`` or ``"uncompressed"``.
    row_group_rows
        The most rows in one row group (at least 1).

    Returns
    -------
    bytes
        The whole file.

    Raises
    ------
    ValueError
        When a value is not of its column's type (``bool`` is not an integer
        here), an integer is out of its type's range, a string is not valid
        Unicode, or a record has a member its schema (or a struct's) lacks:
        the message names the row and the column path.
    """
    if row_group_rows < 1:
        raise ValueError("row_group_rows is at least 1")
    compress = _compressor(codec)
    elements: list[thrift.Struct] = []
    root = _Group("", struct(**schema), depth=(0, 0), elements=elements, root=True)
    out = bytearray(MAGIC)
    groups: list[thrift.Struct] = []
    total = 0
    for batch in _batches(rows, row_group_rows):
        try:
            root.shred(batch, [0] * len(batch), [0] * len(batch))
        except ValueError:
            _refuse_first_wrong_row(schema, batch, total)
            raise
        groups.append(_row_group(out, root.leaves, len(batch), len(groups), codec, compress))
        total += len(batch)
    footer = thrift.encode(
        thrift.Struct(
            [
                (1, thrift.I32(1)),  # version
                (2, thrift.List(elements)),
                (3, thrift.I64(total)),
                (4, thrift.List(groups)),
                (6, thrift.Binary(CREATED_BY.encode())),
                # TypeDefinedOrder for every leaf: min and max compare as the type does
                # (strings as unsigned bytes), so readers may use them.
                (7, thrift.List([_TYPE_DEFINED_ORDER] * len(root.leaves))),
            ]
        )
    )
    out += footer
    out += len(footer).to_bytes(4, "little")
    out += MAGIC
    return bytes(out)


_TYPE_DEFINED_ORDER = thrift.Struct([(1, thrift.Struct([]))])


def _refuse_first_wrong_row(
    schema: Mapping[str, ColumnType], batch: list[dict[str, Any]], first: int
) -> None:
    """Raise for the first row of ``batch`` that cannot be written, naming it.

    A row group is shredded a column at a time, so a refused value is found
    without its row; the rows are tried again one by one (only on this path).
    """
    scratch = _Group("", struct(**schema), depth=(0, 0), elements=[], root=True)
    for offset, row in enumerate(batch):
        try:
            scratch.shred([row], [0], [0])
        except ValueError as exc:
            raise ValueError(f"row {first + offset}: {exc}") from None


def _batches(rows: Iterable[dict[str, Any]], size: int) -> Iterator[list[dict[str, Any]]]:
    iterator = iter(rows)
    while batch := list(islice(iterator, size)):
        yield batch


def _compressor(codec: Codec) -> Any:
    if codec == "gzip":

        def gzip(data: bytes) -> bytes:
            # wbits 31: a gzip member (header and CRC), which is what Parquet's GZIP means.
            packer = zlib.compressobj(6, zlib.DEFLATED, 31)
            return packer.compress(data) + packer.flush()

        return gzip
    if codec == "uncompressed":
        return bytes
    raise ValueError(f"unknown codec {codec!r}: gzip or uncompressed")


# --- schema: each type compiled into nodes that shred values into leaf columns -----------------
#
# Shredding goes a column at a time, not a value at a time: each node is given every
# value of its place in the row group at once, with the repetition level each starts at
# and the definition level its parent reached, and hands its children their lists in
# turn. A null (or absent) value is passed down as None at its parent's level, an empty
# list as None one level deeper, so every leaf below it records the depth where the
# value stopped; the lists are walked by comprehensions rather than a call per value.

_Batch = tuple[list[Any], list[int], list[int]]  # values, repetition levels, parents' levels


class _Leaf:
    """One leaf column: its schema, and the levels and values of the row group being built."""

    __slots__ = (
        "convert",
        "defs",
        "kind",
        "max_def",
        "max_rep",
        "own",
        "path",
        "physical",
        "reps",
        "values",
    )

    def __init__(
        self,
        path: str,
        physical: Sequence[str],
        kind: Primitive,
        *,
        required: bool,
        depth: tuple[int, int],
    ) -> None:
        self.path = path
        self.physical = list(physical)  # path_in_schema: the names of the Parquet groups
        self.own = 0 if required else 1
        self.max_def, self.max_rep = depth[0] + self.own, depth[1]
        self.kind = kind
        self.convert = _CONVERTS[kind]
        self.reps: list[int] = []
        self.defs: list[int] = []
        self.values: list[Any] = []

    def shred(self, values: list[Any], reps: list[int], defs: list[int]) -> None:
        self.reps += reps
        if self.own:
            self.defs += [d if v is None else d + 1 for v, d in zip(values, defs, strict=True)]
        else:
            # Required (a map's key): None only where an ancestor stopped short of it.
            top = self.max_def
            if any(v is None and d == top for v, d in zip(values, defs, strict=True)):
                raise ValueError(f"{self.path}: null where a value is required")
            self.defs += defs
        self.values += self.convert([v for v in values if v is not None], self.path)

    def take(self) -> tuple[list[int], list[int], list[Any]]:
        """The row group's levels and values, and a fresh start for the next one."""
        taken = (self.reps, self.defs, self.values)
        self.reps, self.defs, self.values = [], [], []
        return taken


def _wrong(values: list[Any], path: str, wanted: str, accepted: type) -> ValueError:
    # Only reached when some value is not ``accepted``: name the first such.
    bad = next(v for v in values if type(v) is not accepted)
    return ValueError(f"{path}: expected {wanted}, got {type(bad).__name__}")


def _convert_strings(values: list[Any], path: str) -> list[bytes]:
    if not all(type(v) is str for v in values):
        raise _wrong(values, path, "a string", str)
    try:
        return [v.encode("utf-8") for v in values]
    except UnicodeEncodeError as exc:
        raise ValueError(f"{path}: not valid Unicode ({exc.reason})") from None


def _integers(values: list[Any], path: str, bits: int) -> list[int]:
    # bool is an int to Python, not to JSON or to a typed column.
    if not all(type(v) is int for v in values):
        raise _wrong(values, path, "an integer", int)
    if values:
        low, high = min(values), max(values)
        for value in (low, high):
            if not -(2 ** (bits - 1)) <= value < 2 ** (bits - 1):
                raise ValueError(f"{path}: {value} does not fit in {bits} bits")
    return values


def _convert_int32(values: list[Any], path: str) -> list[int]:
    return _integers(values, path, 32)


def _convert_int64(values: list[Any], path: str) -> list[int]:
    return _integers(values, path, 64)


def _convert_booleans(values: list[Any], path: str) -> list[bool]:
    if not all(type(v) is bool for v in values):
        raise _wrong(values, path, "a boolean", bool)
    return values


_CONVERTS: dict[Primitive, Callable[[list[Any], str], list[Any]]] = {
    STRING: _convert_strings,
    INT32: _convert_int32,
    INT64: _convert_int64,
    BOOLEAN: _convert_booleans,
}
_PHYSICAL = {
    STRING: _BYTE_ARRAY_TYPE,
    INT32: _INT32_TYPE,
    INT64: _INT64_TYPE,
    BOOLEAN: _BOOLEAN_TYPE,
}


class _Node:
    """A struct, list or map: shreds its values into the leaves under it."""

    leaves: list[_Leaf]

    def shred(self, values: list[Any], reps: list[int], defs: list[int]) -> None:
        raise NotImplementedError


_Shredder = _Leaf | _Node


def _compile(
    name: str,
    kind: ColumnType,
    path: str,
    physical: list[str],
    depth: tuple[int, int],
    elements: list[thrift.Struct],
) -> _Shredder:
    """``kind`` as a node (or leaf), its schema elements appended to ``elements``.

    ``depth`` is (definition, repetition) levels of the parent: the most each can be
    where this node starts.
    """
    if isinstance(kind, Primitive):
        elements.append(_element(name, _OPTIONAL, kind))
        return _Leaf(path, [*physical, name], kind, required=False, depth=depth)
    if isinstance(kind, Struct):
        return _Group(name, kind, depth=depth, elements=elements, path=path, physical=physical)
    if isinstance(kind, ListOf):
        return _List(name, kind, path, physical, depth, elements)
    return _Map(name, path, physical, depth, elements)


def _element(
    name: str,
    repetition: int,
    kind: Primitive | None = None,
    *,
    children: int | None = None,
    converted: int | None = None,
    logical: int | None = None,
) -> thrift.Struct:
    """A SchemaElement: a leaf (``kind``) or a group of ``children``."""
    if kind is STRING:
        converted, logical = _UTF8, 1  # LogicalType.STRING
    return thrift.Struct(
        [
            (1, None if kind is None else thrift.I32(_PHYSICAL[kind])),
            (3, thrift.I32(repetition)),
            (4, thrift.Binary(name.encode())),
            (5, None if children is None else thrift.I32(children)),
            (6, None if converted is None else thrift.I32(converted)),
            # LogicalType is a union: the member's id, an empty struct.
            (10, None if logical is None else thrift.Struct([(logical, thrift.Struct([]))])),
        ]
    )


class _Group(_Node):
    """A struct (or, with ``root``, the record itself): each member into its own leaves."""

    def __init__(
        self,
        name: str,
        kind: Struct,
        *,
        depth: tuple[int, int],
        elements: list[thrift.Struct],
        path: str = "",
        physical: Sequence[str] = (),
        root: bool = False,
    ) -> None:
        self.path = path or "the record"
        self.root = root
        if root:  # the schema's root: no repetition (as other writers do), no level of its own
            elements.append(
                thrift.Struct([(4, thrift.Binary(b"schema")), (5, thrift.I32(len(kind.fields)))])
            )
            inner: list[str] = []
            below = depth
        else:
            elements.append(_element(name, _OPTIONAL, children=len(kind.fields)))
            inner = [*physical, name]
            below = (depth[0] + 1, depth[1])
        self.members = [
            (
                member,
                _compile(
                    member, type_, f"{path}.{member}" if path else member, inner, below, elements
                ),
            )
            for member, type_ in kind.fields
        ]
        self.names = frozenset(member for member, _ in self.members)
        self.leaves = [leaf for _, node in self.members for leaf in _leaves_of(node)]

    def shred(self, values: list[Any], reps: list[int], defs: list[int]) -> None:
        names = self.names
        if not all(v is None or (isinstance(v, dict) and names.issuperset(v)) for v in values):
            self._refuse(values)
        if self.root:
            if any(v is None for v in values):
                raise ValueError("a record is an object, not null")
            inner = defs
        else:
            inner = [d if v is None else d + 1 for v, d in zip(values, defs, strict=True)]
        for member, node in self.members:
            node.shred([None if v is None else v.get(member) for v in values], reps, inner)

    def _refuse(self, values: list[Any]) -> None:
        for value in values:
            if value is None:
                continue
            if not isinstance(value, dict):
                raise ValueError(f"{self.path}: expected an object, got {type(value).__name__}")
            unknown = sorted(str(name) for name in value if name not in self.names)
            if unknown:
                raise ValueError(f"{self.path}: no column for member(s) {', '.join(unknown)}")


class _List(_Node):
    """``optional group name (LIST) { repeated group list { optional <t> element } }``."""

    def __init__(
        self,
        name: str,
        kind: ListOf,
        path: str,
        physical: list[str],
        depth: tuple[int, int],
        elements: list[thrift.Struct],
    ) -> None:
        self.path = path
        elements.append(_element(name, _OPTIONAL, children=1, converted=_LIST, logical=3))
        elements.append(_element("list", _REPEATED, children=1))
        # A new element of this list (not the first) starts at this repetition level.
        self.level = depth[1] + 1
        self.element = _compile(
            "element",
            kind.element,
            f"{path}[]",
            [*physical, name, "list"],
            (depth[0] + 2, self.level),
            elements,
        )
        self.leaves = _leaves_of(self.element)

    def shred(self, values: list[Any], reps: list[int], defs: list[int]) -> None:
        items: list[Any] = []
        item_reps: list[int] = []
        item_defs: list[int] = []
        level = self.level
        for value, rep, defined in zip(values, reps, defs, strict=True):
            if not value:
                if value is None:
                    defined -= 1  # null: stops at the parent's level, one less than empty
                elif not isinstance(value, list):
                    raise _not_a_list(self.path, value)
                items.append(None)
                item_reps.append(rep)
                item_defs.append(defined + 1)  # empty: the list is there, no element is
                continue
            if not isinstance(value, list):
                raise _not_a_list(self.path, value)
            items += value
            item_reps.append(rep)
            item_reps += [level] * (len(value) - 1)
            item_defs += [defined + 2] * len(value)
        self.element.shred(items, item_reps, item_defs)


def _not_a_list(path: str, value: Any) -> ValueError:
    return ValueError(f"{path}: expected a list, got {type(value).__name__}")


class _Map(_Node):
    """``optional group name (MAP) { repeated group key_value { required binary key (STRING);
    optional binary value (STRING) } }``."""

    def __init__(
        self,
        name: str,
        path: str,
        physical: list[str],
        depth: tuple[int, int],
        elements: list[thrift.Struct],
    ) -> None:
        self.path = path
        elements.append(_element(name, _OPTIONAL, children=1, converted=_MAP, logical=2))
        elements.append(_element("key_value", _REPEATED, children=2))
        elements.append(_element("key", _REQUIRED, STRING))
        elements.append(_element("value", _OPTIONAL, STRING))
        self.level = depth[1] + 1
        inner, below = [*physical, name, "key_value"], (depth[0] + 2, self.level)
        self.key = _Leaf(f"{path}{{key}}", [*inner, "key"], STRING, required=True, depth=below)
        self.value = _Leaf(f"{path}{{}}", [*inner, "value"], STRING, required=False, depth=below)
        self.leaves = [self.key, self.value]

    def shred(self, values: list[Any], reps: list[int], defs: list[int]) -> None:
        keys: list[Any] = []
        items: list[Any] = []
        pair_reps: list[int] = []
        pair_defs: list[int] = []
        level = self.level
        for value, rep, defined in zip(values, reps, defs, strict=True):
            if value is not None and not isinstance(value, dict):
                raise ValueError(f"{self.path}: expected an object, got {type(value).__name__}")
            if not value:
                # Null: stops at the parent's level; empty: one deeper, no pair.
                keys.append(None)
                items.append(None)
                pair_reps.append(rep)
                pair_defs.append(defined if value is None else defined + 1)
                continue
            keys += value.keys()
            items += value.values()
            pair_reps.append(rep)
            pair_reps += [level] * (len(value) - 1)
            pair_defs += [defined + 2] * len(value)
        self.key.shred(keys, pair_reps, pair_defs)
        self.value.shred(items, pair_reps, pair_defs)


def _leaves_of(node: _Shredder) -> list[_Leaf]:
    return [node] if isinstance(node, _Leaf) else node.leaves


# --- pages and column chunks ---------------------------------------------------------------------


def _row_group(
    out: bytearray, leaves: list[_Leaf], rows: int, ordinal: int, codec: Codec, compress: Any
) -> thrift.Struct:
    """Append each leaf's column chunk (one page) to ``out``; the RowGroup that lists them."""
    start = len(out)
    chunks: list[thrift.Struct] = []
    uncompressed_total = 0
    for leaf in leaves:
        offset = len(out)
        reps, defs, values = leaf.take()
        body = _levels(reps, leaf.max_rep) + _levels(defs, leaf.max_def)
        body += _plain(leaf.kind, values)
        page = compress(body)
        header = thrift.encode(
            thrift.Struct(
                [
                    (1, thrift.I32(_DATA_PAGE)),
                    (2, thrift.I32(len(body))),
                    (3, thrift.I32(len(page))),
                    # DataPageHeader: num_values (levels, nulls included), value encoding,
                    # definition and repetition level encodings.
                    (
                        5,
                        thrift.Struct(
                            [
                                (1, thrift.I32(len(defs))),
                                (2, thrift.I32(_PLAIN)),
                                (3, thrift.I32(_RLE)),
                                (4, thrift.I32(_RLE)),
                            ]
                        ),
                    ),
                ]
            )
        )
        out += header
        out += page
        uncompressed = len(header) + len(body)
        uncompressed_total += uncompressed
        metadata = thrift.Struct(
            [
                (1, thrift.I32(_PHYSICAL[leaf.kind])),
                (2, thrift.List([thrift.I32(_PLAIN), thrift.I32(_RLE)])),
                (3, thrift.List([thrift.Binary(name.encode()) for name in leaf.physical])),
                (4, thrift.I32(_GZIP if codec == "gzip" else _UNCOMPRESSED)),
                (5, thrift.I64(len(defs))),
                (6, thrift.I64(uncompressed)),
                (7, thrift.I64(len(out) - offset)),
                (9, thrift.I64(offset)),  # data_page_offset
                (12, _statistics(leaf.kind, len(defs) - len(values), values)),
            ]
        )
        chunks.append(thrift.Struct([(2, thrift.I64(offset)), (3, metadata)]))
    return thrift.Struct(
        [
            (1, thrift.List(chunks)),
            (2, thrift.I64(uncompressed_total)),
            (3, thrift.I64(rows)),
            (5, thrift.I64(start)),
            (6, thrift.I64(len(out) - start)),
            (7, thrift.I16(ordinal)),
        ]
    )


# Longer strings leave min and max out: a statistic must not double a file's size.
MAX_STATISTIC_BYTES = 64


def _statistics(kind: Primitive, nulls: int, values: list[Any]) -> thrift.Struct:
    """null_count, and min_value / max_value (PLAIN, as the type orders) when any value.

    min and max are left out of a string column whose either is longer than
    :data:`MAX_STATISTIC_BYTES` (readers then read the chunk rather than skip it).
    """
    fields: list[tuple[int, thrift.Value | None]] = [(3, thrift.I64(nulls))]
    if values:
        low, high = min(values), max(values)
        if kind is STRING and max(len(low), len(high)) > MAX_STATISTIC_BYTES:
            return thrift.Struct(fields)
        fields += [
            (5, thrift.Binary(_plain_one(kind, high))),
            (6, thrift.Binary(_plain_one(kind, low))),
        ]
    return thrift.Struct(fields)


def _plain_one(kind: Primitive, value: Any) -> bytes:
    if kind is STRING:
        return bytes(value)  # statistics hold a string's bytes, without PLAIN's length
    if kind is BOOLEAN:
        return b"\x01" if value else b"\x00"
    return _binary.pack("<i" if kind is INT32 else "<q", value)


def _plain(kind: Primitive, values: list[Any]) -> bytes:
    """The non-null values, PLAIN: little-endian ints, length-prefixed bytes, packed bits."""
    if kind is STRING:
        lengths = _binary.pack(f"<{len(values)}I", *map(len, values))
        return b"".join(
            part
            for index, value in enumerate(values)
            for part in (lengths[4 * index : 4 * index + 4], value)
        )
    if kind is INT32:
        return _binary.pack(f"<{len(values)}i", *values)
    if kind is INT64:
        return _binary.pack(f"<{len(values)}q", *values)
    return _pack_bits(values, 1)


def _levels(levels: list[int], most: int) -> bytes:
    """Levels as a data page v1 holds them: a 4-byte length, then the RLE/bit-packed hybrid.

    None at all when ``most`` is 0 (a level that can only be 0 is not written).
    """
    if most == 0:
        return b""
    encoded = _hybrid(levels, most.bit_length())
    return len(encoded).to_bytes(4, "little") + encoded


def _hybrid(levels: list[int], width: int) -> bytes:
    """The RLE/bit-packed hybrid encoding of ``levels`` (each fits in ``width`` bits).

    A run of 8 or more equal levels is one RLE run (a header and the value);
    shorter runs are gathered and bit-packed 8 at a time. A bit-packed run
    holds whole groups of 8, so before an RLE run the gathered levels are
    topped up to a multiple of 8 from that run; only the last group is padded
    (readers stop at the page's value count).
    """
    out = bytearray()
    if not levels:
        return b""
    if levels.count(levels[0]) == len(levels):  # the usual column: one level throughout
        _rle(out, levels[0], len(levels), width)
        return bytes(out)
    gathered: list[int] = []
    for level, run in groupby(levels):
        count = sum(1 for _ in run)
        if count >= 8:
            fill = -len(gathered) % 8
            gathered += [level] * fill
            _bit_packed(out, gathered, width)
            gathered = []
            if count > fill:
                _rle(out, level, count - fill, width)
        else:
            gathered += [level] * count
    _bit_packed(out, gathered, width)
    return bytes(out)


def _rle(out: bytearray, value: int, count: int, width: int) -> None:
    thrift.varint(out, count << 1)
    out += value.to_bytes((width + 7) // 8, "little")


# At most 63 groups of 8 per bit-packed run: its header stays one byte, as other writers keep it.
_MOST_GROUPS = 63


def _bit_packed(out: bytearray, values: list[int], width: int) -> None:
    step = _MOST_GROUPS * 8
    for start in range(0, len(values), step):
        chunk = values[start : start + step]
        groups = (len(chunk) + 7) // 8
        thrift.varint(out, (groups << 1) | 1)
        out += _pack_bits(chunk + [0] * (groups * 8 - len(chunk)), width)


def _pack_bits(values: Sequence[int], width: int) -> bytes:
    """``values`` packed ``width`` bits each, from the least significant bit up."""
    # As one binary numeral, the first value rightmost: linear, where or-ing shifted values
    # into one growing int would be quadratic.
    digits = "".join([format(int(value), f"0{width}b") for value in reversed(values)])
    return int(digits or "0", 2).to_bytes((len(values) * width + 7) // 8, "little")
