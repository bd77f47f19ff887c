"""The verifier's checks: what was read, judged, each problem added to a :class:`Report`.

Nothing here reads the bucket: :class:`~chalicelib.ledger.verify.LedgerVerifier`
lists and fetches (objects through :mod:`chalicelib.ledger.feed`) and hands
what it read to these, in digest order. The tree and the set of event ids
carry from one object to the next.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from chalicelib.ledger.consistency import RecordingRange, check_consistent
from chalicelib.ledger.cosignatures import Published, refusal, with_cosignatures
from chalicelib.ledger.errors import ChecksumMismatch
from chalicelib.ledger.findings import FindingKind, Report
from chalicelib.ledger.layout import canonical, digest_stem, line_position
from chalicelib.ledger.merkle import CompactRange, leaf_hash, verify_consistency
from chalicelib.ledger.notes import CheckpointBody, LogKey, NoteError, SignedNote
from chalicelib.ledger.reading import gunzip, split_lines
from chalicelib.ledger.records import DigestLink

if TYPE_CHECKING:
    from concurrent.futures import Future

    from cryptography.hazmat.primitives.asymmetric.ec import EllipticCurvePublicKey

    from chalicelib.ledger.feed import Fetched
    from chalicelib.ledger.notes import WitnessKey
    from chalicelib.ledger.records import Checkpoint, Digest, DigestEntry


@dataclass(frozen=True, slots=True)
class SignedDigest:
    """A digest whose signature verified, with where it is stored and that signature."""

    key: str
    digest: Digest
    signature: str  # what the next digest names it by
    note: str | None = None  # its checkpoint (format 2)


@dataclass
class StoredKey:
    """What S3 holds under one key: versions and delete markers."""

    newest_first: list[str] = field(default_factory=list)  # S3 lists a key's versions so
    first_stored: str = ""  # ISO UTC time the oldest version was stored
    delete_markers: int = 0
    latest: str | None = None  # the current version's id; None when it is a delete marker

    @property
    def versions(self) -> list[str]:
        """Version ids, oldest first."""
        return self.newest_first[::-1]


def check_chain(digests: Sequence[SignedDigest], report: Report) -> None:
    """Name each digest (in tree order) that does not name the one before it."""
    previous: SignedDigest | None = None
    for signed in digests:
        named = signed.digest.previous
        if previous is None:
            if named is not None:
                report.add(
                    FindingKind.BROKEN_CHAIN,
                    signed.key,
                    f"names {named.key}, which is not here",
                )
        elif named != DigestLink(previous.key, previous.signature):
            report.add(
                FindingKind.BROKEN_CHAIN,
                signed.key,
                f"does not name {previous.key} as its predecessor",
            )
        elif signed.digest.consistency is not None and not carried_proof_holds(
            previous.digest, signed.digest
        ):
            report.add(
                FindingKind.INCONSISTENT_DIGESTS,
                signed.key,
                f"the consistency proof it carries does not lead from the tree of "
                f"{previous.digest.tree_size} signed in {previous.key} to its own",
            )
        previous = signed


def carried_proof_holds(earlier: Digest, later: Digest) -> bool:
    """Whether the consistency proof ``later`` carries leads from ``earlier``'s tree to its own."""
    step = later.consistency
    if step is None or step.from_size != earlier.tree_size:
        return False
    try:
        return verify_consistency(
            step.from_size,
            later.tree_size,
            bytes.fromhex(earlier.root),
            bytes.fromhex(later.root),
            [bytes.fromhex(node) for node in step.path],
        )
    except ValueError:
        return False


def check_digest(
    key: str,
    digest: Digest,
    feed: Iterator[Future[Fetched]],
    tree: CompactRange,
    seen_events: set[bytes],
    report: Report,
    *,
    earlier: SignedDigest | None = None,
) -> CompactRange:
    """Check one digest's objects and tree; return the tree to carry on from.

    After an object that is missing or altered, the true leaves are
    unknown: later trees in the digest are not judged, and the next
    digest starts from this one's signed frontier (one finding, not a
    cascade of them).

    ``earlier`` is the digest before this one, whose tree ``tree`` is: when
    the objects are intact, the consistency proof from its signed root to
    this digest's, built from the leaves read, must hold.
    """
    recording = None
    if earlier is not None and earlier.digest.tree_size == tree.size:
        recording = RecordingRange(tree.subtrees)
        tree = recording
    intact = True
    for entry in digest.objects:
        fetched = next(feed)
        checked = check_object(entry, fetched, tree, seen_events, report, judge_tree=intact)
        intact = intact and checked
    if not intact:
        return frontier_tree(digest, report)
    if earlier is not None and recording is not None:
        check_consistent(earlier, key, digest, recording.pieces, report)
        tree = CompactRange(recording.subtrees)  # the pieces are not carried on
    if tree.size != digest.tree_size or tree.root().hex() != digest.root:
        report.add(
            FindingKind.INCONSISTENT_TREE,
            key,
            f"signed size {digest.tree_size} root {digest.root[:16]}..., the lines give "
            f"size {tree.size} root {tree.root().hex()[:16]}...",
        )
        return frontier_tree(digest, report)
    return tree


def check_object(
    entry: DigestEntry,
    fetched: Future[Fetched],
    tree: CompactRange,
    seen_events: set[bytes],
    report: Report,
    *,
    judge_tree: bool,
) -> bool:
    """Check one digested object; False when its bytes are not the digested ones."""
    where = f"{entry.key}?versionId={entry.version_id}"
    first = entry.first_sequence
    if judge_tree and first != tree.size:
        report.add(FindingKind.SEQUENCE_GAP, where, f"starts at {first}, the log is at {tree.size}")
    try:
        payload, reading = fetched.result()
    except ChecksumMismatch:
        report.add(FindingKind.ALTERED_OBJECT, where, "its bytes no longer match S3's own checksum")
        return False
    if payload is None or reading is None:
        report.add(FindingKind.MISSING_OBJECT, where, "the version the digest names is gone")
        return False
    report.objects += 1
    intact: bool = reading.sha256 == entry.sha256
    if not intact:
        report.add(FindingKind.ALTERED_OBJECT, where, "its SHA-256 is not the digested one")
    if reading.gzip_error is not None:
        report.add(FindingKind.ALTERED_LINE, where, f"not gzip any more: {reading.gzip_error}")
        return False
    if (
        reading.subtrees is not None
        and reading.event_ids is not None
        and tree.size == first
        and seen_events.isdisjoint(reading.event_ids)
    ):
        seen_events |= reading.event_ids
        tree.extend_subtrees(reading.subtrees)
        report.events += reading.line_count
    else:
        lines = split_lines(gunzip(payload))
        check_lines(where, first, lines, tree, seen_events, report)
    if reading.line_count != entry.count:
        report.add(
            FindingKind.SEQUENCE_GAP,
            where,
            f"{reading.line_count} lines, digested {entry.count}",
        )
    consistent = tree.root().hex() == entry.root and tree.size == entry.tree_size
    if intact and judge_tree and not consistent:
        report.add(
            FindingKind.INCONSISTENT_TREE, where, "the tree after it is not the digested one"
        )
    return intact


def check_anchor(anchor: Checkpoint, digests: Sequence[SignedDigest], report: Report) -> None:
    """Name an anchor whose checkpoint the bucket's digests do not reach, or do not hold."""
    keys = {signed.key: signed for signed in digests}
    newest = digests[-1].digest.tree_size if digests else 0
    if anchor.key not in keys or anchor.tree_size > newest:
        report.add(
            FindingKind.TRUNCATED_TAIL,
            anchor.key,
            f"the anchor's checkpoint (tree size {anchor.tree_size}) is not in the bucket, "
            f"whose newest digest covers {newest}",
        )
    elif keys[anchor.key].signature != anchor.signature:
        report.add(FindingKind.TRUNCATED_TAIL, anchor.key, "the anchor's signature differs")


def check_current_versions(
    entries: Sequence[DigestEntry], stored: Mapping[str, StoredKey], report: Report
) -> None:
    """Name digested objects whose current version is not the digested one.

    Verification reads each object by the version its digest names, so
    a newer version written over it (or a delete marker) changes nothing
    here, but Athena reads current versions.
    """
    for entry in entries:
        key, version = entry.key, entry.version_id
        listed = stored.get(key)
        if version is None or listed is None or not listed.versions:
            continue  # missing altogether: the object check names it
        if listed.latest != version:
            report.add(
                FindingKind.HIDDEN_VERSION,
                f"{key}?versionId={version}",
                f"its current version is {listed.latest or 'a delete marker'}, "
                "not the digested one: queries would read that instead",
            )


def check_lines(
    where: str,
    first: int,
    lines: list[bytes],
    tree: CompactRange,
    seen_events: set[bytes],
    report: Report,
) -> None:
    """Judge an object line by line (when it is not as the writer stores it), growing ``tree``."""
    sequences = []
    for number, line in enumerate(lines):
        event_id, sequence = line_position(line)
        if event_id is None or sequence is None:
            report.add(FindingKind.ALTERED_LINE, f"{where} line {number + 1}", "not a ledger event")
            continue
        sequences.append(sequence)
        # Ids are kept as UTF-8, the form the fast path reads them in.
        raw_id = event_id.encode("utf-8", "surrogatepass")
        if raw_id in seen_events:
            report.add(FindingKind.DUPLICATE_EVENT, f"{where} line {number + 1}", event_id)
        seen_events.add(raw_id)
        tree.append(leaf_hash(line))
        report.events += 1
    expected = list(range(first, first + len(sequences)))
    if sequences != expected:
        if sorted(sequences) == expected:
            report.add(FindingKind.REORDERED_LINES, where, "lines are not in sequence order")
        else:
            missing = sorted(set(expected) - set(sequences))[:5]
            report.add(FindingKind.SEQUENCE_GAP, where, f"sequences missing or foreign: {missing}")


def frontier_tree(digest: Digest, report: Report) -> CompactRange:
    """The tree a digest's signed frontier gives, to carry on from (empty when it is not one)."""
    try:
        frontier = CompactRange.from_json([list(entry) for entry in digest.frontier])
    except ValueError as exc:
        report.add(FindingKind.INCONSISTENT_TREE, "frontier", str(exc))
        return CompactRange()
    if frontier.size != digest.tree_size or frontier.root().hex() != digest.root:
        report.add(
            FindingKind.INCONSISTENT_TREE, "frontier", "the signed frontier does not give its root"
        )
    return frontier


def check_witnesses(
    public_key: EllipticCurvePublicKey,
    digests: Sequence[SignedDigest],
    found: Sequence[Published],
    witnesses: Sequence[WitnessKey],
    required: int,
    report: Report,
) -> None:
    """Judge what witnesses published against the digests (signed, in tree order).

    - A cosigned checkpoint the stage's key signed must be the checkpoint of
      the digest it is filed under: otherwise the stage signed a history the
      bucket does not hold (``forked_checkpoint``), whoever cosigned it.
    - A refusal signed by a trusted witness is a ``witness_refused``; others
      are counted, not judged (anyone who can write the prefix could forge one).
    - The newest checkpoint must be cosigned by ``required`` trusted witnesses.
    """
    notes = {digest_stem(signed.key): signed.note for signed in digests if signed.note}
    trusted = {witness.key_id.hex(): witness for witness in witnesses}
    for item in found:
        if item.hidden:
            report.add(
                FindingKind.HIDDEN_VERSION,
                item.key,
                "a delete marker or a later version stands in front of what a witness "
                "published: the first is the one checked",
            )
        if item.kind == "cosigned":
            _check_cosigned(public_key, item, notes, report)
            continue
        record = refusal(item.body)
        witness = trusted.get(item.witness_dir)
        if record is None or witness is None or not _refusal_signed(witness, record):
            report.untrusted_refusals += 1
            continue
        detail = record["refusal"]
        report.add(
            FindingKind.WITNESS_REFUSED,
            str(detail.get("digest_key")),
            f"witness {witness.name} refused it on {detail.get('at')}: {detail.get('verdict')}: "
            f"{detail.get('detail')}",
        )
    newest = digests[-1] if digests else None
    if newest is None or newest.note is None:
        cosigners: list[str] = []
    else:
        note = with_cosignatures(SignedNote.parse(newest.note), iter(found), newest.key)
        cosigners = sorted(w.name for w in witnesses if w.cosigned(note) is not None)
        report.cosigned_size = newest.digest.tree_size
    report.cosigned_by = cosigners
    if required > len(cosigners):
        report.add(
            FindingKind.MISSING_COSIGNATURES,
            newest.key if newest else "ledger",
            f"the newest checkpoint is cosigned by {len(cosigners)} of the {required} trusted "
            f"witnesses required ({', '.join(cosigners) or 'none'})",
        )


def _check_cosigned(
    public_key: EllipticCurvePublicKey,
    item: Published,
    notes: Mapping[str, str | None],
    report: Report,
) -> None:
    try:
        note = SignedNote.parse(item.body.decode("utf-8"))
        body = CheckpointBody.parse(note.text)
    except (NoteError, UnicodeDecodeError):
        return  # not signed by anyone we know: nothing to judge
    try:
        signed = LogKey(body.origin, public_key).signed_by(note)
    except NoteError:
        return  # an origin no key can be named by: not the stage's
    if signed is None:
        return
    held = notes.get(item.stem)
    if held is not None and SignedNote.parse(held).text == note.text:
        return
    report.add(
        FindingKind.FORKED_CHECKPOINT,
        item.key,
        f"signed by the stage's key: the tree of {body.tree_size} with root "
        f"{body.root.hex()[:16]}..., which no digest in the bucket holds",
    )


def _refusal_signed(witness: WitnessKey, record: dict[str, Any]) -> bool:
    import base64
    import binascii

    try:
        signature = base64.b64decode(record["signature"], validate=True)
        return witness.signed_record(canonical(record["refusal"]), signature)
    except (KeyError, TypeError, ValueError, binascii.Error):
        return False
