"""Checking a bundle offline: what it proves, what it cannot, and every failure."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from chalicelib.ledger.evidence.selection import (
    BUNDLE_FORMAT,
    BUNDLE_KIND,
    NotABundle,
    Selection,
    line_matches,
)
from chalicelib.ledger.layout import sequence_of
from chalicelib.ledger.merkle import (
    HASH_SIZE,
    leaf_hash,
    verify_inclusion,
)
from chalicelib.ledger.notes import CheckpointBody, LogKey, NoteError, SignedNote, WitnessKey

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ec import EllipticCurvePublicKey


@dataclass
class EvidenceCheck:
    """What checking a bundle found: what it proves, what it cannot, what failed."""

    proves: list[str] = field(default_factory=list)
    cannot_prove: list[str] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    # Keys taken from the bundle rather than pinned, with what to compare them with.
    unpinned: list[str] = field(default_factory=list)
    positions: list[int] = field(default_factory=list)
    tree_size: int | None = None
    origin: str | None = None
    witnesses: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """Whether every check held."""
        return not self.failures

    def as_dict(self) -> dict[str, Any]:
        """The result as JSON-ready data."""
        return {
            "ok": self.ok,
            "proves": self.proves,
            "cannot_prove": self.cannot_prove,
            "failures": self.failures,
            "unpinned": self.unpinned,
            "positions": self.positions,
            "tree_size": self.tree_size,
            "origin": self.origin,
            "witnesses": self.witnesses,
        }


@dataclass(frozen=True, slots=True)
class _Head:
    origin: str
    size: int
    root: bytes
    note: SignedNote


def stage_key_fingerprint(public_key: EllipticCurvePublicKey) -> str:
    """The RFC 7638 thumbprint of the stage key (its ``kid`` as the stage publishes it)."""
    from chalicelib.aws.signers import jwk_thumbprint
    from chalicelib.identity.keys import public_jwk

    return jwk_thumbprint(public_jwk(public_key, ""))


def check_bundle(
    bundle: object,
    *,
    stage_key: EllipticCurvePublicKey | None = None,
    witness_keys: Sequence[WitnessKey] = (),
    require_witnesses: int = 0,
) -> EvidenceCheck:
    """Check an evidence bundle with nothing but itself and the keys.

    ``stage_key`` and ``witness_keys`` are pinned (given by whoever checks);
    when absent the bundle's own keys are used, and the result says so with
    their fingerprints. ``require_witnesses`` counts pinned witnesses only.

    Raises
    ------
    NotABundle
        When ``bundle`` is not an evidence bundle of this format.
    """
    if not (
        isinstance(bundle, dict)
        and bundle.get("kind") == BUNDLE_KIND
        and isinstance(bundle.get("events"), list)
        and isinstance(bundle.get("checkpoint"), dict)
    ):
        raise NotABundle("not an evidence bundle")
    if bundle.get("format") != BUNDLE_FORMAT:
        raise NotABundle(
            f"an evidence bundle of format {bundle.get('format')!r}, not {BUNDLE_FORMAT}"
        )
    result = EvidenceCheck()
    listed_keys = bundle.get("keys")
    keys: dict[str, Any] = listed_keys if isinstance(listed_keys, dict) else {}
    public_key = stage_key or _bundle_stage_key(keys, result)
    head = _check_checkpoint(bundle["checkpoint"], public_key, result) if public_key else None
    if head is not None:
        result.tree_size, result.origin = head.size, head.origin
        _check_witnesses(head.note, keys, witness_keys, require_witnesses, result)
    selection = _selection(bundle.get("selection"), result)
    events = _check_entries("events", bundle["events"], head, result)
    result.positions = sorted(events)
    if not events:
        result.failures.append("events: the bundle holds no event")
    if selection is not None and selection.offline:
        for name, line in (events[position] for position in sorted(events)):
            if not line_matches(line, selection):
                result.failures.append(f"{name}: the line does not match the selection")
    chosen = bundle.get("range")
    if chosen is not None:
        _check_range(chosen, events, selection, head, result)
    _conclude(bundle, selection, head, chosen is not None, result)
    return result


def _bundle_stage_key(
    keys: Mapping[str, Any], result: EvidenceCheck
) -> EllipticCurvePublicKey | None:
    stage = keys.get("stage")
    try:
        public_key = _load_stage_key(stage)
    except (ValueError, TypeError, KeyError) as exc:
        result.failures.append(f"keys.stage: no P-256 public key (JWK or PEM): {exc}")
        return None
    result.unpinned.append(
        f"stage key taken from the bundle (keys.stage), not pinned: its thumbprint "
        f"{stage_key_fingerprint(public_key)} must be the stage's published key id "
        "(or pass --public-key)"
    )
    return public_key


def _load_stage_key(stage: object) -> EllipticCurvePublicKey:
    from cryptography.hazmat.primitives.asymmetric import ec

    if not isinstance(stage, dict):
        raise ValueError("keys.stage is an object with a jwk or a pem")
    if "jwk" in stage:
        from chalicelib.identity.keys import parse_jwk

        key: Any = parse_jwk({**stage["jwk"], "kid": "ledger", "alg": "ES256"}).public_key
    else:
        from cryptography.hazmat.primitives.serialization import load_pem_public_key

        key = load_pem_public_key(str(stage["pem"]).encode())
    if not isinstance(key, ec.EllipticCurvePublicKey) or key.curve.name != "secp256r1":
        raise ValueError("not a P-256 key")
    return key


def _check_checkpoint(
    checkpoint: dict[str, Any], public_key: EllipticCurvePublicKey, result: EvidenceCheck
) -> _Head | None:
    from chalicelib.ledger.verify import digest_signature

    document = checkpoint.get("document")
    if not isinstance(document, dict) or "checkpoint" not in document:
        result.failures.append("checkpoint.document: not a format-2 digest document")
        return None
    if digest_signature(public_key, document) is None:
        result.failures.append(
            "checkpoint.document: its checkpoint is not signed by the stage key (keys.stage) "
            "or does not name and bind this digest"
        )
        return None
    stored = SignedNote.parse(document["checkpoint"])  # parsed by digest_signature already
    body = CheckpointBody.parse(stored.text)
    try:
        note = SignedNote.parse(str(checkpoint.get("note")))
    except NoteError as exc:
        result.failures.append(f"checkpoint.note: not a signed note: {exc}")
        return None
    if note.text != stored.text:
        result.failures.append("checkpoint.note: its text is not the digest's checkpoint")
        return None
    if LogKey(body.origin, public_key).signed_by(note) is None:
        result.failures.append("checkpoint.note: carries no valid signature of the stage key")
        return None
    return _Head(body.origin, body.tree_size, body.root, note)


def _check_witnesses(
    note: SignedNote,
    keys: Mapping[str, Any],
    pinned: Sequence[WitnessKey],
    required: int,
    result: EvidenceCheck,
) -> None:
    used = list(pinned)
    if not pinned:
        listed = keys.get("witnesses") or []
        for index, vkey in enumerate(listed if isinstance(listed, list) else []):
            try:
                used.append(WitnessKey.from_vkey(str(vkey)))
            except NoteError as exc:
                result.failures.append(f"keys.witnesses[{index}]: {exc}")
        if used:
            vkeys = ", ".join(key.vkey() for key in used)
            result.unpinned.append(
                f"witness keys taken from the bundle (keys.witnesses), not pinned: compare "
                f"{vkeys} with the witnesses' published keys (or pass --witness)"
            )
    for key in used:
        if key.cosigned(note) is not None:
            result.witnesses.append(key.name)
        elif any(line.name == key.name for line in note.signatures):
            where = "the pinned key" if pinned else "keys.witnesses"
            result.failures.append(
                f"checkpoint.note: the cosignature of witness {key.name} does not verify "
                f"with its key ({where})"
            )
    counted = len(result.witnesses) if pinned else 0
    if counted < required:
        result.failures.append(
            f"checkpoint.note: {required} pinned witness cosignature(s) required, {counted} "
            "found (the bundle's own witness keys do not count: pass them with --witness)"
        )


def _selection(value: object, result: EvidenceCheck) -> Selection | None:
    try:
        return Selection.from_json(value)
    except (ValueError, TypeError) as exc:
        result.failures.append(f"selection: {exc}")
        return None


def _check_entries(
    name: str, entries: object, head: _Head | None, result: EvidenceCheck
) -> dict[int, tuple[str, bytes]]:
    """Each entry's line, leaf index and path; ``{position: (field name, line)}``."""
    found: dict[int, tuple[str, bytes]] = {}
    if not isinstance(entries, list):
        result.failures.append(f"{name}: not a list")
        return found
    for index, entry in enumerate(entries):
        where = f"{name}[{index}]"
        parsed = _entry_fields(entry)
        if isinstance(parsed, str):
            result.failures.append(f"{where}: {parsed}")
            continue
        line, position, path = parsed
        sequence = sequence_of(line)
        if sequence != position:
            result.failures.append(
                f"{where}.leaf_index: {position} is not the line's own ledger sequence ({sequence})"
            )
        if head is not None and not verify_inclusion(
            leaf_hash(line), position, head.size, path, head.root
        ):
            result.failures.append(
                f"{where}: the path from its line (leaf {position}) does not lead to the "
                f"checkpoint's root at size {head.size}"
            )
        if position in found:
            result.failures.append(f"{where}.leaf_index: position {position} appears twice")
            continue
        found[position] = (where, line)
    return found


def _entry_fields(entry: object) -> tuple[bytes, int, list[bytes]] | str:
    if not isinstance(entry, dict):
        return "not an object"
    line, position, path = entry.get("line"), entry.get("leaf_index"), entry.get("path")
    if not isinstance(line, str):
        return "line: not text"
    if not isinstance(position, int) or isinstance(position, bool) or position < 0:
        return "leaf_index: not a position"
    if not isinstance(path, list):
        return "path: not a list"
    try:
        nodes = [bytes.fromhex(node) for node in path]
    except (TypeError, ValueError):
        return "path: not hex nodes"
    if any(len(node) != HASH_SIZE for node in nodes):
        return "path: a node is not 32 bytes"
    return line.encode("utf-8", "surrogatepass"), position, nodes


def _check_range(
    chosen: object,
    events: Mapping[int, tuple[str, bytes]],
    selection: Selection | None,
    head: _Head | None,
    result: EvidenceCheck,
) -> None:
    if not isinstance(chosen, dict):
        result.failures.append("range: not an object")
        return
    first, last = chosen.get("first"), chosen.get("last")
    if not isinstance(first, int) or not isinstance(last, int) or first > last:
        result.failures.append("range: first and last are not positions")
        return
    lines = _check_entries("range.lines", chosen.get("lines"), head, result)
    if events and (first, last) != (min(events), max(events)):
        result.failures.append(
            f"range: {first}..{last} is not the first to the last selected event "
            f"({min(events)}..{max(events)})"
        )
    missing = [position for position in range(first, last + 1) if position not in lines]
    outside = sorted(position for position in lines if not first <= position <= last)
    if missing:
        result.failures.append(
            f"range.lines: position(s) {spans(missing)} missing: the range has a gap"
        )
    if outside:
        result.failures.append(f"range.lines: position(s) {spans(outside)} lie outside the range")
    _check_range_answer(lines, events, selection, result)


def _check_range_answer(
    lines: Mapping[int, tuple[str, bytes]],
    events: Mapping[int, tuple[str, bytes]],
    selection: Selection | None,
    result: EvidenceCheck,
) -> None:
    """The range and the events agree, and the selection re-applied picks the events exactly."""
    for position, (where, line) in sorted(events.items()):
        if position in lines and lines[position][1] != line:
            result.failures.append(f"{where}: its line is not the range's line at {position}")
    if selection is None or not selection.offline:
        return
    for position, (where, line) in sorted(lines.items()):
        if position not in events and line_matches(line, selection):
            result.failures.append(
                f"events: the line at position {position} ({where}) matches the selection "
                "but is left out of the events"
            )


def _conclude(
    bundle: Mapping[str, Any],
    selection: Selection | None,
    head: _Head | None,
    ranged: bool,
    result: EvidenceCheck,
) -> None:
    if result.failures:
        return
    assert head is not None
    count = len(result.positions)
    result.proves.append(
        f"these {count} event(s) are in the log at position(s) {spans(result.positions)}"
    )
    cosigned = (
        f" and cosigned by {len(result.witnesses)} witness(es): {', '.join(result.witnesses)}"
        if result.witnesses
        else ", cosigned by no witness known to this check"
    )
    result.proves.append(
        f"the log at size {head.size} was signed by the stage (origin {head.origin}){cosigned}"
    )
    offline = selection is not None and selection.offline
    if ranged and offline:
        first, last = result.positions[0], result.positions[-1]
        result.proves.append(
            f"no event between positions {first} and {last} that the selection matches is "
            "missing from the answer"
        )
        result.cannot_prove.append(
            "completeness before the first and after the last selected event is not proven"
        )
    elif not ranged:
        result.cannot_prove.append(
            "completeness of the answer is proven only within a range: rerun with --range"
        )
    if not offline:
        result.cannot_prove.append(
            "the query itself is not re-run offline: that these are all the events it "
            "selects is not proven"
        )
    if not result.witnesses:
        result.cannot_prove.append(
            "that every reader sees this same log: no trusted witness cosigned the checkpoint"
        )


def spans(positions: Sequence[int]) -> str:
    """``3-5, 9`` for ``[3, 4, 5, 9]``."""
    spans: list[str] = []
    start = previous = None
    for position in [*positions, None]:
        if previous is not None and position == previous + 1:
            previous = position
            continue
        if start is not None:
            spans.append(str(start) if start == previous else f"{start}-{previous}")
        start = previous = position
    return ", ".join(spans)
