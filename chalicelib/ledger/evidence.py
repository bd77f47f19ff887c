"""Evidence bundles: the events a question selected, each proven in one signed checkpoint.

An auditor asks "what did grant G do?" (or principal P, request R, a named
query). ``gatehouse audit evidence`` answers with one JSON file that needs
no AWS access to check::

    {"format": 1, "kind": "gatehouse-evidence", "stage": "prod", "created_at": "...",
     "selection": {"kind": "grant", "value": "01a...", "from": "...Z", "to": "...Z"},
     "events": [{"leaf_index": 41, "line": "{\\"schema_version\\":1,...}", "path": ["<hex>"]}],
     "range": null | {"first": 41, "last": 57, "lines": [<entries as in events>]},
     "checkpoint": {"digest_key": "audit/v1/digests/...", "document": {<as stored>},
                    "note": "<the checkpoint note, with every published cosignature>"},
     "keys": {"stage": {"jwk": {...}}, "witnesses": ["<vkey>", ...]}}

Every path (RFC 9162) leads from a stored line to the root of one
checkpoint's tree: the earliest format-2 digest whose tree holds every
selected event. With a *range*, every line between the first and the last
selected event is there too, so re-applying the selection
(:func:`matches`) to them shows none was left out.

:func:`check_bundle` checks a bundle offline and says what it proves and
what it cannot; :class:`EvidenceBuilder` builds one from the bucket and the
ledger's state (it is handed a boto3 client; this module imports none).

Exceptions::

    ValueError
     └── EvidenceError        no bundle can be built
          ├── NothingSelected the selection matched no stored event
          └── NotYetDigested  an event is under no signed format-2 digest yet
     └── NotABundle           a file that is not an evidence bundle
"""

from __future__ import annotations

import gzip
import hashlib
import json
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from chalicelib.ledger.consistency import Pieces, read_leaves
from chalicelib.ledger.errors import LedgerCorrupt, LedgerUnavailable
from chalicelib.ledger.layout import DIGESTS_PREFIX, line_position, sequence_of
from chalicelib.ledger.merkle import (
    HASH_SIZE,
    CompactRange,
    ProofError,
    leaf_hash,
    split_point,
    verify_inclusion,
)
from chalicelib.ledger.notes import CheckpointBody, LogKey, NoteError, SignedNote, WitnessKey

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ec import EllipticCurvePublicKey

    from chalicelib.ledger.records import ObjectRecord
    from chalicelib.ledger.state import LedgerState

BUNDLE_FORMAT = 1
BUNDLE_KIND = "gatehouse-evidence"
# What selects events by their own fields (re-applied offline), and by a named query (not).
FIELD_SELECTORS = ("grant", "principal", "request")
QUERY_SELECTOR = "query"
# Objects are scanned from a little before the window (writers' clocks differ) to an
# hour after it (the writer stores events shortly after they happen; the named
# queries read the same hour past the window).
CLOCK_SLACK = timedelta(minutes=5)
LATE_WRITES = timedelta(hours=1)
# Nodes at least this wide are remembered once hashed: paths share them, and the
# narrower ones are cheaper to hash again than to keep.
_REMEMBERED_WIDTH = 16


class EvidenceError(ValueError):
    """No bundle can be built (the command says why and exits 1)."""


class NothingSelected(EvidenceError):
    """The selection matched no stored event."""


class NotYetDigested(EvidenceError):
    """A selected event is under no signed format-2 digest yet."""


class NotABundle(ValueError):
    """A document that is not an evidence bundle of a format this version knows."""


# --- the selection and its matcher -----------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Selection:
    """What selected the events: a field selector and its value, or a named query.

    ``start`` and ``end`` bound the window ``[start, end)`` on ``event_time``
    (ISO 8601 UTC text). A query's window is whatever its own parameters say.
    """

    kind: str
    value: str | None
    start: str
    end: str
    query: str | None = None
    params: Mapping[str, str] = field(default_factory=dict)
    sql: str | None = None

    @property
    def offline(self) -> bool:
        """Whether :func:`matches` can re-apply it (a named query is not re-run)."""
        return self.kind in FIELD_SELECTORS

    def to_json(self) -> dict[str, Any]:
        """The ``selection`` member of a bundle."""
        value: dict[str, Any] = {"kind": self.kind, "from": self.start, "to": self.end}
        if self.offline:
            value["value"] = self.value
        else:
            value.update({"query": self.query, "params": dict(self.params), "sql": self.sql})
        return value

    @classmethod
    def from_json(cls, value: object) -> Selection:
        """Parse :meth:`to_json`'s form.

        Raises
        ------
        ValueError
            When it is not a selection (the message names what is wrong).
        """
        if not isinstance(value, dict):
            raise ValueError("not an object")
        kind, start, end = value.get("kind"), value.get("from"), value.get("to")
        if kind not in (*FIELD_SELECTORS, QUERY_SELECTOR):
            raise ValueError(f"unknown kind {kind!r}")
        if not isinstance(start, str) or not isinstance(end, str):
            raise ValueError("from and to are times")
        _moment(start), _moment(end)  # unreadable times are refused here, not at each line
        if kind == QUERY_SELECTOR:
            params = value.get("params") or {}
            if not isinstance(params, dict):
                raise ValueError("params is an object")
            return cls(kind, None, start, end, str(value.get("query")), params, value.get("sql"))
        chosen = value.get("value")
        if not isinstance(chosen, str) or not chosen:
            raise ValueError(f"a {kind} selection names its {kind}")
        return cls(kind, chosen, start, end)


def _moment(text: str) -> datetime:
    moment = datetime.fromisoformat(text)
    if moment.tzinfo is None:
        raise ValueError(f"{text!r} has no UTC offset")
    return moment


def _section(event: Mapping[str, Any], name: str) -> Mapping[str, Any]:
    section = event.get(name)
    return section if isinstance(section, Mapping) else {}


def _names_grant(event: Mapping[str, Any], grant_id: str) -> bool:
    # A request made under the grant names it in ``elevation``; the grant's own
    # lifecycle events (and refused grant API calls) in ``grant``.
    return grant_id in (
        _section(event, "elevation").get("grant_id"),
        _section(event, "grant").get("grant_id"),
    )


def _names_principal(event: Mapping[str, Any], who: str) -> bool:
    principal = _section(event, "principal")
    subject, issuer = principal.get("subject"), principal.get("issuer")
    if not isinstance(subject, str) or not subject:
        return False
    if who == subject:
        return True
    # Issuer-qualified: ``<issuer>|<subject>``, the issuer with or without its slash.
    return isinstance(issuer, str) and who in (
        f"{issuer}|{subject}",
        f"{issuer.rstrip('/')}|{subject}",
    )


def _names_request(event: Mapping[str, Any], request_id: str) -> bool:
    return _section(event, "request").get("id") == request_id


_MATCHERS = {"grant": _names_grant, "principal": _names_principal, "request": _names_request}


def matches(event: Mapping[str, Any], selection: Selection) -> bool:
    """Whether ``selection`` (a field selector) selects ``event``.

    The event's ``event_time`` must lie in ``[start, end)`` and it must name
    the grant (``elevation.grant_id`` or ``grant.grant_id``), the principal
    (``principal.subject``, or ``<issuer>|<subject>``) or the request
    (``request.id``).

    Raises
    ------
    ValueError
        For a query selection: it cannot be re-applied to one event.
    """
    if not selection.offline or selection.value is None:
        raise ValueError("a named query's selection is not re-applied offline")
    moment = event.get("event_time")
    try:
        when = _moment(moment) if isinstance(moment, str) else None
    except ValueError:
        when = None
    if when is None or not _moment(selection.start) <= when < _moment(selection.end):
        return False
    return _MATCHERS[selection.kind](event, selection.value)


def line_matches(line: bytes, selection: Selection) -> bool:
    """:func:`matches` for a stored line (a line that is not a JSON object matches nothing)."""
    try:
        event = json.loads(line)
    except ValueError:
        return False
    return isinstance(event, dict) and matches(event, selection)


# --- inclusion paths in a tree built from pieces ---------------------------------------------


class _RememberingPieces(Pieces):
    """:class:`Pieces` that keep the wider nodes they hash: many paths share them."""

    def __init__(self, pieces: Sequence[tuple[int, bytes]] = ()) -> None:
        super().__init__(pieces)
        self._hashed: dict[tuple[int, int], bytes] = {}

    def root(self, low: int, high: int) -> bytes:
        found = self._hashed.get((low, high))
        if found is None:
            found = super().root(low, high)
            if high - low >= _REMEMBERED_WIDTH:
                self._hashed[(low, high)] = found
        return found


def inclusion_path(pieces: Pieces, index: int, size: int) -> list[bytes]:
    """The audit path (RFC 9162 PATH) of leaf ``index`` in the tree of the first ``size`` leaves.

    Equals :func:`chalicelib.ledger.merkle.inclusion_proof` over the same leaves.

    Raises
    ------
    ProofError
        When ``index`` is not below ``size``, ``size`` is past the pieces, or a
        sibling lies inside a piece.
    """
    if not 0 <= index < size <= pieces.size:
        raise ProofError(f"leaf {index} is not in a tree of {size} (pieces hold {pieces.size})")
    path: list[bytes] = []
    low, high = 0, size
    while high - low > 1:
        k = split_point(high - low)
        if index < low + k:
            path.append(pieces.root(low + k, high))
            high = low + k
        else:
            path.append(pieces.root(low, low + k))
            low += k
    path.reverse()
    return path


# --- building a bundle from the bucket --------------------------------------------------------


@dataclass(frozen=True, slots=True)
class StoredLine:
    """One stored line and its position in the log (its ledger sequence)."""

    sequence: int
    line: bytes


def _entry(stored: StoredLine, pieces: Pieces, size: int) -> dict[str, Any]:
    return {
        "leaf_index": stored.sequence,
        "line": stored.line.decode("utf-8"),
        "path": [node.hex() for node in inclusion_path(pieces, stored.sequence, size)],
    }


class EvidenceBuilder:
    """Finds selected events in the stored ledger and builds their bundle.

    Parameters
    ----------
    s3:
        A boto3 S3 client that can read the audit bucket.
    bucket:
        The audit bucket.
    state:
        The ledger's state (its object records and event index).
    """

    def __init__(self, s3: Any, bucket: str, state: LedgerState) -> None:
        self._s3 = s3
        self._bucket = bucket
        self._state = state
        self._records: list[ObjectRecord] | None = None

    def records(self) -> list[ObjectRecord]:
        """The committed objects, in order (read once)."""
        if self._records is None:
            self._records = self._state.objects()
        return self._records

    def scan(self, selection: Selection) -> list[StoredLine]:
        """The stored lines ``selection`` (a field selector) matches, in log order.

        Only objects written from :data:`CLOCK_SLACK` before the window to
        :data:`LATE_WRITES` after it are read: an event is stored after it
        happens, and soon after.

        Raises
        ------
        LedgerCorrupt, LedgerUnavailable
            When an object is not the one recorded, or cannot be read.
        """
        first = (_moment(selection.start) - CLOCK_SLACK).timestamp()
        last = (_moment(selection.end) + LATE_WRITES).timestamp()
        candidates = [r for r in self.records() if first <= r.written_at < last]
        return [
            stored
            for record, lines in zip(candidates, self._lines(candidates), strict=True)
            for stored in _positioned(record, lines)
            if line_matches(stored.line, selection)
        ]

    def locate(self, event_ids: Sequence[str]) -> list[StoredLine]:
        """The stored lines of ``event_ids``, found through the ledger's event index.

        Raises
        ------
        EvidenceError
            When an event is not in the ledger.
        LedgerCorrupt, LedgerUnavailable
            When its object is not the one recorded, or cannot be read.
        """
        holding: dict[str, ObjectRecord] = {}
        for event_id in dict.fromkeys(event_ids):
            record = self._state.object_holding(event_id)
            if record is None:
                raise EvidenceError(f"event {event_id} is not in the ledger")
            holding[event_id] = record
        objects = list({record.key: record for record in holding.values()}.values())
        wanted = set(holding)
        found: dict[str, StoredLine] = {}
        for record, lines in zip(objects, self._lines(objects), strict=True):
            for stored in _positioned(record, lines):
                held, _ = line_position(stored.line)
                if held is not None and held in wanted and held not in found:
                    found[held] = stored
        missing = sorted(wanted - set(found))
        if missing:
            raise LedgerCorrupt(f"the ledger's index names objects that do not hold {missing[0]}")
        return sorted(found.values(), key=lambda stored: stored.sequence)

    def build(
        self,
        selection: Selection,
        found: Sequence[StoredLine],
        *,
        with_range: bool,
        stage: str,
        keys: Mapping[str, Any],
        created_at: str,
    ) -> dict[str, Any]:
        """The bundle of ``found`` (the selected lines) under one checkpoint.

        Raises
        ------
        NothingSelected
            When ``found`` is empty.
        NotYetDigested
            When no format-2 digest's tree holds the last of them yet.
        LedgerCorrupt, LedgerUnavailable
            When the stored objects contradict the ledger, or cannot be read.
        """
        if not found:
            raise NothingSelected(f"nothing matched the {selection.kind} selection")
        chosen = {stored.sequence: stored for stored in found}
        low, high = min(chosen), max(chosen)
        digest_key, document = self._checkpoint(high + 1)
        tree = document["digest"]["tree"]
        size, head = int(tree["size"]), str(tree["root"])
        pieces, lines = self._tree(low, high, size, keep_lines=with_range)
        if pieces.root(0, size).hex() != head:
            raise LedgerCorrupt(
                f"the stored lines give the tree of {size} another root than {digest_key} "
                "signs: run `gatehouse audit verify`"
            )
        from chalicelib.ledger.cosignatures import cosigned_checkpoint

        note = cosigned_checkpoint(
            self._s3, self._bucket, digest_key, SignedNote.parse(document["checkpoint"])
        )
        positions = sorted(chosen)
        return {
            "format": BUNDLE_FORMAT,
            "kind": BUNDLE_KIND,
            "stage": stage,
            "created_at": created_at,
            "selection": selection.to_json(),
            "events": [_entry(chosen[index], pieces, size) for index in positions],
            "range": (
                {
                    "first": low,
                    "last": high,
                    "lines": [
                        _entry(StoredLine(index, lines[index]), pieces, size)
                        for index in range(low, high + 1)
                    ],
                }
                if with_range
                else None
            ),
            "checkpoint": {
                "digest_key": digest_key,
                "document": document,
                "note": note.serialize(),
            },
            "keys": dict(keys),
        }

    def _tree(
        self, low: int, high: int, size: int, *, keep_lines: bool
    ) -> tuple[Pieces, dict[int, bytes]]:
        """The tree of ``size`` leaves from the frontier before ``low``'s object on.

        The objects holding ``low..high`` are read for their lines (kept when
        asked), the rest up to ``size`` for their leaves only.
        """
        records = self.records()
        before = [record for record in records if record.tree_size <= low]
        frontier = _frontier(before[-1]) if before else []
        pieces = _RememberingPieces(frontier)
        needed = [record for record in records[len(before) :] if record.first_sequence < size]
        if not needed or needed[-1].tree_size != size:
            raise LedgerCorrupt(f"no committed object ends at the signed tree size {size}")
        spanning = [record for record in needed if record.first_sequence <= high]
        lines: dict[int, bytes] = {}
        for record, text in zip(spanning, self._lines(spanning), strict=True):
            for stored in _positioned(record, text):
                pieces.add(1, leaf_hash(stored.line))
                if keep_lines and low <= stored.sequence <= high:
                    lines[stored.sequence] = stored.line
        for leaves in read_leaves(self._s3, self._bucket, needed[len(spanning) :]):
            for leaf in leaves:
                pieces.add(1, leaf)
        if pieces.size != size:
            raise LedgerCorrupt(f"the objects up to the signed tree of {size} hold {pieces.size}")
        return pieces, lines

    def _checkpoint(self, covers: int) -> tuple[str, dict[str, Any]]:
        """The earliest format-2 digest whose tree holds ``covers`` leaves or more."""
        keys: list[tuple[int, str]] = []
        paginator = self._s3.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=self._bucket, Prefix=DIGESTS_PREFIX):
            for item in page.get("Contents", []):
                key = str(item["Key"])
                size = key.removesuffix(".json").rpartition("-")[2]
                if size.isdigit() and int(size) >= covers:
                    keys.append((int(size), key))
        for _, key in sorted(keys):
            raw = self._s3.get_object(Bucket=self._bucket, Key=key)["Body"].read()
            document = json.loads(raw)
            digest = document.get("digest") if isinstance(document, dict) else None
            if (
                isinstance(digest, dict)
                and digest.get("format", 1) >= 2
                and "checkpoint" in document
            ):
                return key, document
        raise NotYetDigested(
            f"the event at position {covers - 1} is under no signed checkpoint yet: run "
            "`gatehouse audit digest` (or wait for the hourly digest), then ask again"
        )

    def _lines(self, records: Sequence[ObjectRecord]) -> Iterator[list[bytes]]:
        """Each object's lines, read by its recorded version and checked against its SHA-256."""
        from chalicelib.ledger.verify import version_kwargs

        for record in records:
            try:
                body = self._s3.get_object(
                    Bucket=self._bucket, Key=record.key, **version_kwargs(record.version_id)
                )["Body"].read()
            except Exception as exc:
                raise LedgerUnavailable(f"cannot read {record.key}: {exc}") from exc
            if hashlib.sha256(body).hexdigest() != record.sha256:
                raise LedgerCorrupt(
                    f"{record.key} is not the object the ledger recorded: run "
                    "`gatehouse audit verify`"
                )
            yield [line for line in gzip.decompress(body).split(b"\n") if line]


def _positioned(record: ObjectRecord, lines: list[bytes]) -> Iterator[StoredLine]:
    """The lines of ``record``, each with its position (checked against the line's own)."""
    if len(lines) != record.count:
        raise LedgerCorrupt(
            f"{record.key} holds {len(lines)} lines, the ledger recorded {record.count}"
        )
    for offset, line in enumerate(lines):
        sequence = record.first_sequence + offset
        if sequence_of(line) != sequence:
            raise LedgerCorrupt(f"the line at position {sequence} in {record.key} says otherwise")
        yield StoredLine(sequence, line)


def _frontier(record: ObjectRecord) -> list[tuple[int, bytes]]:
    try:
        frontier = CompactRange.from_json([list(entry) for entry in record.frontier])
    except ValueError as exc:
        raise LedgerCorrupt(f"the frontier recorded for {record.key}: {exc}") from exc
    if frontier.size != record.tree_size:
        raise LedgerCorrupt(f"the frontier recorded for {record.key} is not its tree's")
    return list(frontier.subtrees)


# --- checking a bundle offline ----------------------------------------------------------------


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
