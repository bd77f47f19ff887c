"""Reading a stored line's ledger position: the shortcut never disagrees with a JSON parser."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chalicelib.ledger.layout import line_position, parsed_position

JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=8,
)


def stored(event: dict[str, Any], sequence: int, *, ascii_only: bool = True) -> bytes:
    """The line as the emitter serialises and the writer stores it."""
    body = json.dumps(event, separators=(",", ":"), ensure_ascii=ascii_only)
    return f'{body[:-1]},"ledger":{{"sequence":{sequence}}}}}'.encode()


@settings(max_examples=400, deadline=None)
@given(
    st.text(min_size=1, max_size=40),
    st.dictionaries(st.text(max_size=12), JSON_VALUES, max_size=6),
    st.integers(0, 10**15),
    st.booleans(),
)
def test_the_shortcut_agrees_with_the_parser(
    event_id: str, rest: dict[str, Any], sequence: int, ascii_only: bool
) -> None:
    event = {"schema_version": 1, "event_id": event_id, **rest}
    event.pop("ledger", None)
    line = stored(event, sequence, ascii_only=ascii_only)

    assert line_position(line) == parsed_position(line)
    assert line_position(line) == (event["event_id"], sequence) or "event_id" in rest


@pytest.mark.parametrize(
    "body",
    [
        # A second event_id key: a parser takes the last one, a reader of the prefix the first.
        '{"schema_version":1,"event_id":"a","event_id":"b"}',
        # The same, spelled with an escape.
        '{"schema_version":1,"event_id":"a","event\\u005fid":"b"}',
        # Not in the emitter's order.
        '{"event_id":"a","schema_version":1}',
        '{"schema_version": 1, "event_id": "a"}',
    ],
)
def test_events_a_reader_could_read_two_ways_never_reach_the_ledger(body: str) -> None:
    from chalicelib.audit.writer import message_problem

    _, problem = message_problem(body)

    assert problem is not None
    assert "as emitted" in problem


@pytest.mark.parametrize(
    "line",
    [
        # A position that is not the last member.
        b'{"schema_version":1,"event_id":"a","ledger":{"sequence":1},"ledger":{"sequence":2}}',
        b'{"schema_version":1,"event_id":"a","ledger":{"sequence":01}}',
        b'{"schema_version":1,"event_id":"a\\"b","ledger":{"sequence":1}}',
        b'{"schema_version":1,"event_id":"","ledger":{"sequence":1}}',
        b"not an event",
        b'{"schema_version":1,"event_id":"a"}',
    ],
)
def test_lines_the_shortcut_cannot_read_are_parsed(line: bytes) -> None:
    assert line_position(line) == parsed_position(line)


# --- reading a whole object (what worker processes do) ---------------------------------------


def object_lines(count: int, first: int = 0) -> list[bytes]:
    return [
        stored({"schema_version": 1, "event_id": f"id-{n}", "n": n}, n)
        for n in range(first, first + count)
    ]


def gz(lines: list[bytes]) -> bytes:
    import gzip

    return gzip.compress(b"".join(line + b"\n" for line in lines), mtime=0)


def test_an_object_as_the_writer_stores_it_is_read_in_one_pass() -> None:
    import hashlib

    from chalicelib.ledger.merkle import CompactRange, leaf_hash
    from chalicelib.ledger.reading import read_object

    lines = object_lines(7, first=5)
    payload = gz(lines)

    reading = read_object(payload, 5)

    assert reading.sha256 == hashlib.sha256(payload).hexdigest()
    assert reading.line_count == 7
    assert reading.event_ids == frozenset(f"id-{n}".encode() for n in range(5, 12))
    assert reading.subtrees is not None
    expected, bulk = CompactRange(), CompactRange()
    for n in range(5):
        expected.append(leaf_hash(b"x%d" % n))
        bulk.append(leaf_hash(b"x%d" % n))
    for line in lines:
        expected.append(leaf_hash(line))
    bulk.extend_subtrees(reading.subtrees)
    assert bulk.root() == expected.root()


@pytest.mark.parametrize(
    "change",
    [
        pytest.param(lambda ls: [ls[1], ls[0], *ls[2:]], id="two lines swapped"),
        pytest.param(lambda ls: [ls[0], *ls[2:]], id="a line removed"),
        pytest.param(lambda ls: [*ls, ls[-1]], id="the last line twice"),
        pytest.param(lambda ls: [ls[0], b"not an event", *ls[2:]], id="a line that is no event"),
        pytest.param(
            lambda ls: [ls[0], ls[1].replace(b'"id-1"', b'"id-0"'), *ls[2:]],
            id="an id repeated within the object",
        ),
        pytest.param(
            lambda ls: [ls[0], ls[1].replace(b'"id-1"', b'""'), *ls[2:]], id="an empty id"
        ),
        pytest.param(
            lambda ls: [ls[0], ls[1].replace(b'"id-1"', b'"id\\u002d1"'), *ls[2:]],
            id="an id with an escape",
        ),
        pytest.param(
            lambda ls: [
                ls[0],
                ls[1].replace(b'{"schema_version":1,', b'{"schema_version": 1,'),
                *ls[2:],
            ],
            id="another serialisation",
        ),
        pytest.param(
            lambda ls: [ls[0], ls[1].replace(b'"sequence":1}}', b'"sequence":01}}'), *ls[2:]],
            id="a position with a leading zero",
        ),
    ],
)
def test_anything_else_is_left_to_the_line_by_line_check(change: Any) -> None:
    from chalicelib.ledger.reading import read_object

    reading = read_object(gz(change(object_lines(4))), 0)

    assert reading.subtrees is None
    assert reading.event_ids is None
    assert reading.gzip_error is None


def test_an_object_read_from_the_wrong_position_is_left_to_the_line_by_line_check() -> None:
    from chalicelib.ledger.reading import read_object

    assert read_object(gz(object_lines(3)), 1).subtrees is None


def test_blank_lines_are_not_lines() -> None:
    import gzip

    from chalicelib.ledger.reading import read_object

    lines = object_lines(3)
    payload = gzip.compress(lines[0] + b"\n\n" + lines[1] + b"\n" + lines[2] + b"\n\n", mtime=0)

    reading = read_object(payload, 0)

    assert reading.line_count == 3
    assert reading.subtrees is not None


@pytest.mark.parametrize(
    "payload",
    [
        pytest.param(b"", id="empty"),
        pytest.param(b"plain text", id="not gzip"),
        pytest.param("truncated", id="cut short"),
        pytest.param("trailing", id="garbage after a member"),
        pytest.param("two members", id="two members"),
        pytest.param("empty member", id="an empty member (a fence)"),
    ],
)
def test_gunzip_agrees_with_the_standard_library(payload: Any) -> None:
    import gzip
    import zlib

    from chalicelib.ledger.reading import gunzip

    one, two = gzip.compress(b"a\nb\n", mtime=0), gzip.compress(b"c\n", mtime=0)
    payload = {
        "truncated": one[:-5],
        "trailing": one + b"junk",
        "two members": one + two,
        "empty member": gzip.compress(b"", mtime=0),
    }.get(payload, payload)
    try:
        expected: Any = gzip.decompress(payload)
    except (OSError, EOFError):
        expected = "error"
    try:
        got: Any = gunzip(payload)
    except (zlib.error, EOFError):
        got = "error"

    assert got == expected
