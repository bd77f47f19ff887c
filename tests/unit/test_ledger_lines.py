"""Reading a stored line's ledger position: the shortcut never disagrees with a JSON parser."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chalicelib.ledger.verify import _parsed_position, line_position

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

    assert line_position(line) == _parsed_position(line)
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
    assert line_position(line) == _parsed_position(line)
