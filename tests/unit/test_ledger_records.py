"""The digest record: the stored form unchanged, and malformed documents refused."""

from __future__ import annotations

import json
from typing import Any

import pytest

from chalicelib.ledger.errors import DigestFormatError
from chalicelib.ledger.layout import canonical, line_position, with_sequence
from chalicelib.ledger.records import Digest, DigestEntry, DigestLink

# A digest as the digest writer has always stored it (its signature covers these bytes).
STORED = (
    '{"format":1,"objects":[{"count":2,"first_sequence":0,"key":"audit/v1/events/'
    'dt=2027-01-15/hour=08/0000000000000000-r1.ndjson.gz","root":"' + "ab" * 32 + '",'
    '"sha256":"' + "cd" * 32 + '","tree_size":2,"version_id":null}],'
    '"period":{"end":"2027-01-15T09:00:00Z","start":"2027-01-15T08:00:00Z"},'
    '"previous":{"key":"audit/v1/digests/x.json","signature":"c2ln"},'
    '"signing_key":{"alg":"ES256","kid":"k1"},"stage":"dev",'
    '"tree":{"frontier":[[2,"' + "ab" * 32 + '"]],"root":"' + "ab" * 32 + '","size":2}}'
)


def test_a_stored_digest_reads_and_writes_back_byte_for_byte() -> None:
    digest = Digest.from_document(json.loads(STORED))
    assert digest.objects == (
        DigestEntry(
            "audit/v1/events/dt=2027-01-15/hour=08/0000000000000000-r1.ndjson.gz",
            None,
            "cd" * 32,
            0,
            2,
            2,
            "ab" * 32,
        ),
    )
    assert digest.previous == DigestLink("audit/v1/digests/x.json", "c2ln")
    assert canonical(digest.to_document()).decode() == STORED


def test_absent_objects_previous_and_frontier_read_as_none() -> None:
    document: dict[str, Any] = json.loads(STORED)
    del document["objects"], document["previous"], document["tree"]["frontier"]
    digest = Digest.from_document(document)
    assert (digest.objects, digest.previous, digest.frontier) == ((), None, ())


@pytest.mark.parametrize(
    "change",
    [
        lambda d: d.pop("tree"),
        lambda d: d["tree"].update(size="2"),
        lambda d: d["period"].pop("end"),
        lambda d: d["objects"][0].pop("sha256"),
        lambda d: d["objects"][0].update(version_id=7),
        lambda d: d.update(previous="x"),
        lambda d: d["tree"].update(frontier=[[2]]),
        lambda d: d.update(objects={}),
    ],
)
def test_a_malformed_digest_is_refused_with_a_digest_format_error(change: Any) -> None:
    document = json.loads(STORED)
    change(document)
    with pytest.raises(DigestFormatError):
        Digest.from_document(document)


def test_not_an_object_is_refused() -> None:
    with pytest.raises(DigestFormatError):
        Digest.from_document([])


def test_a_stored_line_carries_its_position_last() -> None:
    line = with_sequence('{"schema_version":1,"event_id":"e1","n":1}\n', 42)
    assert line == b'{"schema_version":1,"event_id":"e1","n":1,"ledger":{"sequence":42}}'
    assert line_position(line) == ("e1", 42)
