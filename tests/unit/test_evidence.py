"""Evidence bundles, pure: paths from pieces, the selection matcher, and every doctored field.

A bundle is built here by hand from a small signed tree (a P-256 stage key,
an Ed25519 witness), so that each check of :func:`check_bundle` can be
shown to refuse exactly the field that was changed.
"""

from __future__ import annotations

import base64
import copy
import json
import random
from collections.abc import Callable
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given, settings
from hypothesis import strategies as st

from chalicelib.aws.signers import LocalSigner
from chalicelib.ledger.consistency import Pieces
from chalicelib.ledger.digest import sign_checkpoint
from chalicelib.ledger.evidence import (
    NotABundle,
    Selection,
    check_bundle,
    inclusion_path,
    matches,
    spans,
    stage_key_fingerprint,
)
from chalicelib.ledger.layout import with_sequence
from chalicelib.ledger.merkle import CompactRange, inclusion_proof, leaf_hash, root
from chalicelib.ledger.notes import LogKey, SignedNote, WitnessSigner
from chalicelib.ledger.records import Digest

ORIGIN = "example.com/gatehouse-unit"
WINDOW = ("2026-12-01T00:00:00Z", "2026-12-02T00:00:00Z")
GRANT = "01a00000-0000-7000-8000-00000000000g"

# --- paths from pieces ----------------------------------------------------------------------


def _leaves(count: int, seed: int) -> list[bytes]:
    rng = random.Random(seed)
    return [leaf_hash(rng.randbytes(8)) for _ in range(count)]


@pytest.mark.parametrize("seed", range(40))
def test_paths_from_a_frontier_and_leaves_equal_the_reference(seed: int) -> None:
    rng = random.Random(seed)
    size = rng.randint(1, 300)
    start = rng.randint(0, size - 1)
    checkpoint = rng.randint(size, size + 40)
    leaves = _leaves(checkpoint, seed)
    frontier = CompactRange()
    for leaf in leaves[:start]:
        frontier.append(leaf)
    pieces = Pieces(frontier.subtrees)
    for leaf in leaves[start:]:
        pieces.add(1, leaf)

    for index in range(start, checkpoint):
        assert inclusion_path(pieces, index, checkpoint) == inclusion_proof(leaves, index)


@settings(max_examples=60, deadline=None)
@given(size=st.integers(1, 200), data=st.data())
def test_a_path_to_a_smaller_tree_than_the_pieces_hold(size: int, data: st.DataObject) -> None:
    leaves = _leaves(size, size)
    tree_size = data.draw(st.integers(1, size))
    index = data.draw(st.integers(0, tree_size - 1))

    assert inclusion_path(Pieces([(1, leaf) for leaf in leaves]), index, tree_size) == (
        inclusion_proof(leaves[:tree_size], index)
    )


def test_no_path_past_the_tree() -> None:
    from chalicelib.ledger.merkle import ProofError

    with pytest.raises(ProofError):
        inclusion_path(Pieces([(1, leaf) for leaf in _leaves(4, 1)]), 4, 4)


def test_spans() -> None:
    assert spans([3, 4, 5, 9, 11, 12]) == "3-5, 9, 11-12"
    assert spans([]) == ""


# --- the matcher ----------------------------------------------------------------------------


def event(**sections: Any) -> dict[str, Any]:
    value: dict[str, Any] = {
        "schema_version": 1,
        "event_id": "e",
        "event_type": "decision",
        "event_time": "2026-12-01T10:00:00.000Z",
        "request": {"id": "req-1"},
        "principal": {"issuer": "https://idp.example.com/", "subject": "erin"},
        "elevation": None,
        "grant": None,
    }
    value.update(sections)
    return value


def selection(kind: str, value: str) -> Selection:
    return Selection(kind, value, *WINDOW)


@pytest.mark.parametrize(
    ("chosen", "candidate", "expected"),
    [
        (selection("grant", GRANT), event(elevation={"grant_id": GRANT}), True),
        (selection("grant", GRANT), event(event_type="grant", grant={"grant_id": GRANT}), True),
        (selection("grant", GRANT), event(elevation={"grant_id": "other"}), False),
        (selection("grant", GRANT), event(), False),
        (selection("principal", "erin"), event(), True),
        (selection("principal", "https://idp.example.com/|erin"), event(), True),
        (selection("principal", "https://idp.example.com|erin"), event(), True),
        (selection("principal", "https://other.example.com|erin"), event(), False),
        (selection("principal", "eri"), event(), False),
        (selection("principal", "erin"), event(principal=None), False),
        (selection("request", "req-1"), event(), True),
        (selection("request", "req-2"), event(), False),
        (selection("request", "req-1"), event(event_time="2026-12-02T00:00:00.000Z"), False),
        (selection("request", "req-1"), event(event_time="2026-11-30T23:59:59.999Z"), False),
        (selection("request", "req-1"), event(event_time="2026-12-01T00:00:00.000Z"), True),
        (selection("request", "req-1"), event(event_time="not a time"), False),
        (selection("request", "req-1"), event(event_time=None), False),
        (selection("request", "req-1"), event(request="req-1"), False),
    ],
    ids=[
        "grant in elevation",
        "grant lifecycle event",
        "another grant",
        "no grant",
        "principal by subject",
        "principal issuer-qualified",
        "principal issuer without its slash",
        "principal of another issuer",
        "principal prefix is not a match",
        "no principal",
        "request id",
        "another request",
        "window end is exclusive",
        "before the window",
        "window start is inclusive",
        "unreadable time",
        "no time",
        "section not an object",
    ],
)
def test_matcher(chosen: Selection, candidate: dict[str, Any], expected: bool) -> None:
    assert matches(candidate, chosen) is expected


def test_a_query_selection_is_not_re_applied() -> None:
    with pytest.raises(ValueError, match="not re-applied"):
        matches(event(), Selection("query", None, *WINDOW, query="q"))


# --- bundles --------------------------------------------------------------------------------

STAGE_KEY = ec.generate_private_key(ec.SECP256R1())
OTHER_KEY = ec.generate_private_key(ec.SECP256R1())
WITNESS = WitnessSigner("witness.example.com/w1", Ed25519PrivateKey.generate())
OTHER_WITNESS = WitnessSigner("witness.example.com/w1", Ed25519PrivateKey.generate())


def lines() -> list[bytes]:
    """Twelve stored lines; positions 2, 5 and 9 are under the grant."""
    found = []
    for position in range(12):
        sections: dict[str, Any] = {"event_id": f"e{position}"}
        if position in (2, 5, 9):
            sections["elevation"] = {"grant_id": GRANT}
        found.append(with_sequence(json.dumps(event(**sections), separators=(",", ":")), position))
    return found


def signed_document(leaves: list[bytes], size: int, key: Any = STAGE_KEY) -> dict[str, Any]:
    tree = CompactRange()
    for leaf in leaves[:size]:
        tree.append(leaf)
    signer = LocalSigner(key)
    digest = Digest(
        stage="unit",
        start=None,
        end="2026-12-01T12:00:00Z",
        tree_size=size,
        root=tree.root().hex(),
        frontier=tuple((s, h.hex()) for s, h in tree.subtrees),
        objects=(),
        previous=None,
        signing_kid=signer.kid,
        origin=ORIGIN,
    ).to_document()
    note = sign_checkpoint(digest, LogKey(ORIGIN, key.public_key()), signer)
    return {"digest": digest, "checkpoint": note.serialize()}


def entry(stored: list[bytes], index: int, size: int) -> dict[str, Any]:
    leaves = [leaf_hash(line) for line in stored[:size]]
    return {
        "leaf_index": index,
        "line": stored[index].decode(),
        "path": [node.hex() for node in inclusion_proof(leaves, index)],
    }


def bundle(*, with_range: bool = True, size: int = 12) -> dict[str, Any]:
    stored = lines()
    document = signed_document([leaf_hash(line) for line in stored], size)
    note = SignedNote.parse(document["checkpoint"])
    note = note.with_signature(WITNESS.cosign(note.text, 1_800_000_000))
    return {
        "format": 1,
        "kind": "gatehouse-evidence",
        "stage": "unit",
        "created_at": "2026-12-01T13:00:00Z",
        "selection": selection("grant", GRANT).to_json(),
        "events": [entry(stored, index, size) for index in (2, 5, 9)],
        "range": (
            {"first": 2, "last": 9, "lines": [entry(stored, i, size) for i in range(2, 10)]}
            if with_range
            else None
        ),
        "checkpoint": {
            "digest_key": "audit/v1/digests/dt=2026-12-01/hour=12/x-0000000000000012.json",
            "document": document,
            "note": note.serialize(),
        },
        "keys": {
            "stage": {"jwk": LocalSigner(STAGE_KEY).jwk()},
            "witnesses": [WITNESS.key.vkey()],
        },
    }


def test_an_untouched_bundle_proves_its_events_and_completeness_in_its_range() -> None:
    result = check_bundle(
        bundle(), stage_key=STAGE_KEY.public_key(), witness_keys=[WITNESS.key], require_witnesses=1
    )

    assert result.failures == []
    assert result.ok
    assert result.positions == [2, 5, 9]
    assert (result.tree_size, result.origin, result.witnesses) == (12, ORIGIN, [WITNESS.name])
    assert result.proves[0] == "these 3 event(s) are in the log at position(s) 2, 5, 9"
    assert f"origin {ORIGIN}" in result.proves[1]
    assert "cosigned by 1 witness(es): witness.example.com/w1" in result.proves[1]
    assert "between positions 2 and 9" in result.proves[2]
    assert result.unpinned == []


def test_without_a_range_completeness_is_not_claimed() -> None:
    result = check_bundle(bundle(with_range=False), stage_key=STAGE_KEY.public_key())

    assert result.ok
    assert any("rerun with --range" in line for line in result.cannot_prove)


def test_keys_from_the_bundle_are_used_and_named_with_their_fingerprints() -> None:
    result = check_bundle(bundle())

    assert result.ok
    thumbprint = stage_key_fingerprint(STAGE_KEY.public_key())
    assert thumbprint == LocalSigner(STAGE_KEY).kid
    assert any("not pinned" in note and thumbprint in note for note in result.unpinned)
    assert any(WITNESS.key.vkey() in note for note in result.unpinned)
    # Witnesses the bundle names itself do not count towards a requirement.
    required = check_bundle(bundle(), require_witnesses=1)
    assert not required.ok
    assert any("pinned witness" in failure for failure in required.failures)


def test_a_query_selection_says_the_query_is_not_re_run() -> None:
    document = bundle()
    document["selection"] = Selection(
        "query", None, *WINDOW, query="policy_changes", params={}, sql="SELECT 1"
    ).to_json()

    result = check_bundle(document, stage_key=STAGE_KEY.public_key())

    assert result.ok
    assert any("query itself is not re-run offline" in line for line in result.cannot_prove)


def _set(path: str, value: Any) -> Callable[[dict[str, Any]], None]:
    def change(document: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        node: Any = document
        for name in parents:
            node = node[int(name)] if name.isdigit() else node[name]
        node[int(last) if last.isdigit() else last] = value(node) if callable(value) else value

    return change


def _edit_line(document: dict[str, Any]) -> None:
    line = document["events"][1]["line"]
    document["events"][1]["line"] = line.replace('"req-1"', '"req-X"')


def _flip_node(document: dict[str, Any]) -> None:
    path = document["events"][0]["path"]
    path[1] = ("0" if path[1][0] != "0" else "1") + path[1][1:]


def _duplicate(document: dict[str, Any]) -> None:
    document["events"].append(copy.deepcopy(document["events"][0]))


def _note_text(change: Callable[[str], str]) -> Callable[[dict[str, Any]], None]:
    def apply(document: dict[str, Any]) -> None:
        stored = document["checkpoint"]["document"]
        stored["checkpoint"] = change(stored["checkpoint"])

    return apply


def _other_size(note: str) -> str:
    head, size, rest = note.split("\n", 2)
    return f"{head}\n{int(size) + 1}\n{rest}"


def _other_root(note: str) -> str:
    head, size, _, rest = note.split("\n", 3)
    other = base64.b64encode(root([leaf_hash(b"x")])).decode()
    return f"{head}\n{size}\n{other}\n{rest}"


def _bad_signature(note: str) -> str:
    text, signatures = note.split("\n\n")
    name, payload = signatures.split(" ", 2)[1:]
    flipped = payload[:10] + ("A" if payload[10] != "A" else "B") + payload[11:]
    return f"{text}\n\n\u2014 {name} {flipped}"


def _cosignature(document: dict[str, Any]) -> None:
    note = SignedNote.parse(document["checkpoint"]["note"])
    forged = OTHER_WITNESS.cosign(note.text, 1_800_000_000)
    genuine = note.signatures[1]
    replaced = type(genuine)(genuine.name, genuine.key_id, forged.signature)
    document["checkpoint"]["note"] = SignedNote(
        note.text, (note.signatures[0], replaced)
    ).serialize()


def _range_gap(document: dict[str, Any]) -> None:
    del document["range"]["lines"][3]


def _left_out(document: dict[str, Any]) -> None:
    del document["events"][1]  # position 5 matches the grant, and is in the range


def _resigned_by(key: Any) -> Callable[[dict[str, Any]], None]:
    def apply(document: dict[str, Any]) -> None:
        stored = lines()
        document["checkpoint"]["document"] = signed_document(
            [leaf_hash(line) for line in stored], 12, key
        )

    return apply


DOCTORED: list[tuple[str, Callable[[dict[str, Any]], None], str]] = [
    ("a line edited", _edit_line, "events[1]: the path from its line"),
    ("a path node", _flip_node, "events[0]: the path from its line"),
    ("a leaf index", _set("events.0.leaf_index", 3), "events[0].leaf_index: 3 is not the line's"),
    ("a position twice", _duplicate, "events[3].leaf_index: position 2 appears twice"),
    ("note size", _note_text(_other_size), "checkpoint.document: its checkpoint is not signed"),
    ("note root", _note_text(_other_root), "checkpoint.document"),
    ("note text", _note_text(lambda n: n.replace(ORIGIN, "evil.example")), "checkpoint.document"),
    ("stage signature", _note_text(_bad_signature), "checkpoint.document"),
    ("digest document", _set("checkpoint.document.digest.stage", "prod"), "checkpoint.document"),
    (
        "the cosigned note's text",
        _set("checkpoint.note", lambda c: c["note"].replace("\n12\n", "\n13\n", 1)),
        "checkpoint.note: its text is not the digest's checkpoint",
    ),
    (
        "a cosignature",
        _cosignature,
        "checkpoint.note: the cosignature of witness witness.example.com/w1 does not verify",
    ),
    (
        "the stage key swapped",
        _set("keys.stage", {"jwk": LocalSigner(OTHER_KEY).jwk()}),
        "(keys.stage)",
    ),
    (
        "a witness key swapped",
        _set("keys.witnesses", [OTHER_WITNESS.key.vkey()]),
        "does not verify with its key (keys.witnesses)",
    ),
    ("a range gap", _range_gap, "range.lines: position(s) 5 missing: the range has a gap"),
    (
        "a matching event left out",
        _left_out,
        "events: the line at position 5 (range.lines[3]) matches the selection but is left out",
    ),
    ("the selection", _set("selection.value", "another-grant"), "events[0]: the line does not"),
    ("a checkpoint by another key", _resigned_by(OTHER_KEY), "checkpoint.document"),
    ("an unreadable selection", _set("selection.kind", "everything"), "selection: unknown kind"),
    ("a path that is not hex", _set("events.2.path", ["zz"]), "events[2]: path: not hex nodes"),
]


@pytest.mark.parametrize(
    ("change", "named"),
    [(change, named) for _, change, named in DOCTORED],
    ids=[name for name, _, _ in DOCTORED],
)
def test_a_doctored_bundle_is_refused_naming_the_field(
    change: Callable[[dict[str, Any]], None], named: str
) -> None:
    document = bundle()
    change(document)

    result = check_bundle(document)

    assert not result.ok
    assert any(named in failure for failure in result.failures), result.failures
    assert result.proves == []


def test_a_pinned_key_refuses_a_bundle_signed_by_another() -> None:
    document = bundle()
    _resigned_by(OTHER_KEY)(document)
    document["keys"]["stage"] = {"jwk": LocalSigner(OTHER_KEY).jwk()}
    # The document verifies with its own (swapped) key; the cosigned note is another's...
    assert check_bundle(document).failures == [
        "checkpoint.note: its text is not the digest's checkpoint"
    ]
    # ...and refused under the pinned one.
    assert not check_bundle(document, stage_key=STAGE_KEY.public_key()).ok


def test_a_pinned_witness_that_did_not_cosign_fails_a_requirement() -> None:
    result = check_bundle(
        bundle(),
        stage_key=STAGE_KEY.public_key(),
        witness_keys=[OTHER_WITNESS.key],
        require_witnesses=1,
    )

    assert not result.ok
    assert any("does not verify" in failure for failure in result.failures)


@pytest.mark.parametrize(
    "document",
    [[], {}, {"kind": "gatehouse-evidence"}, {"kind": "x", "events": [], "checkpoint": {}}],
    ids=["a list", "an empty object", "no events", "another kind"],
)
def test_what_is_not_a_bundle(document: Any) -> None:
    with pytest.raises(NotABundle):
        check_bundle(document)


def test_another_format_is_not_a_bundle() -> None:
    document = bundle()
    document["format"] = 2

    with pytest.raises(NotABundle, match="format 2"):
        check_bundle(document)
