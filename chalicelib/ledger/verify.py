"""Verify the ledger from the bucket alone (and the public key, and the anchor).

Everything is re-derived: every digest's signature and its link to the one
before; every object the digests name, by version id, against its SHA-256;
every line's sequence and event id; the Merkle tree after every object and
every digest. Each problem is a :class:`Finding` of one kind:

=====================  =======================================================
``bad_signature``      a digest whose signature does not verify
``broken_chain``       a digest that does not name the one before it
``missing_object``     an object (version) a digest names is gone
``altered_object``     an object whose bytes are not the ones digested
``altered_line``       a line that is not an event with a ledger position
``reordered_lines``    lines of an object out of sequence order
``sequence_gap``       sequences missing between or within objects
``duplicate_event``    an event id stored twice
``inconsistent_tree``  a digested tree size or root the lines do not give
``truncated_tail``     the anchor knows a digest the bucket does not have, or
                       its current version is older than one it replaced
``hidden_version``     a delete marker or a later version stands in front of a
                       digest or a digested object (queries, which read the
                       current version, would not see what was stored)
``unledgered_object``  an object among the ledger's that no digest names,
                       though the digests already cover its sequences (queries
                       would count its lines; the ledger never had them)
=====================  =======================================================

Objects past the newest digest are not judged: the next digest will name
them (or show them to be foreign). The report counts them.
"""

from __future__ import annotations

import base64
import json
import os
import re
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from itertools import islice
from multiprocessing import get_all_start_methods, get_context
from typing import TYPE_CHECKING, Any

from chalicelib.ledger.digest import (
    DIGESTS_PREFIX,
    EVENTS_PREFIX,
    FENCE,
    canonical,
    object_first_sequence,
)
from chalicelib.ledger.merkle import CompactRange, leaf_hash
from chalicelib.ledger.reading import LINE_HEAD, ObjectReading, gunzip, read_object, split_lines

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ec import EllipticCurvePublicKey

    from chalicelib.ledger.digest import Checkpoint

FINDING_KINDS = (
    "bad_signature",
    "broken_chain",
    "missing_object",
    "altered_object",
    "altered_line",
    "reordered_lines",
    "sequence_gap",
    "duplicate_event",
    "inconsistent_tree",
    "truncated_tail",
    "hidden_version",
    "unledgered_object",
)


@dataclass(frozen=True, slots=True)
class Finding:
    """One thing that does not hold."""

    kind: str
    where: str
    detail: str

    def as_dict(self) -> dict[str, str]:
        return {"kind": self.kind, "where": self.where, "detail": self.detail}


@dataclass
class Report:
    """What verification found, and what it covered."""

    findings: list[Finding] = field(default_factory=list)
    digests: int = 0
    objects: int = 0
    events: int = 0
    tree_size: int = 0
    root: str = ""
    seconds: float = 0.0
    undigested_objects: int = 0

    @property
    def ok(self) -> bool:
        """True only when nothing was found."""
        return not self.findings

    def add(self, kind: str, where: str, detail: str) -> None:
        assert kind in FINDING_KINDS, kind
        self.findings.append(Finding(kind, where, detail))

    def as_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "digests": self.digests,
            "objects": self.objects,
            "events": self.events,
            "tree_size": self.tree_size,
            "root": self.root,
            "undigested_objects": self.undigested_objects,
            "seconds": round(self.seconds, 3),
            "findings": [finding.as_dict() for finding in self.findings],
        }


def verify_signature(public_key: EllipticCurvePublicKey, document: dict[str, Any]) -> bool:
    """Whether ``document`` (``{"digest", "signature"}``) is signed by ``public_key``."""
    from chalicelib.identity.keys import VerificationKey

    try:
        raw = base64.b64decode(document["signature"], validate=True)
        signed = canonical(document["digest"])
    except (KeyError, ValueError, TypeError):
        return False
    return VerificationKey(kid="ledger", alg="ES256", public_key=public_key).verify(signed, raw)


def version_kwargs(version_id: str | None) -> dict[str, str]:
    """``VersionId=...`` for a boto3 S3 call, when there is a version to name."""
    return {"VersionId": version_id} if version_id else {}


class LedgerVerifier:
    """Re-derives the ledger from the bucket.

    Parameters
    ----------
    s3:
        A boto3 S3 client that can read the audit bucket (all versions).
    bucket:
        The audit bucket.
    public_key:
        The stage's P-256 public key.
    jobs:
        Worker processes that read objects (default: one per CPU); 1 reads
        them in this process.
    """

    def __init__(
        self,
        s3: Any,
        bucket: str,
        public_key: EllipticCurvePublicKey,
        *,
        jobs: int | None = None,
    ) -> None:
        self._s3 = s3
        self._bucket = bucket
        self._public_key = public_key
        self._jobs = max(1, jobs if jobs is not None else (os.cpu_count() or 1))

    def verify(
        self,
        *,
        anchor: Checkpoint | None = None,
        anchor_versions: Sequence[Checkpoint] = (),
        since: str | None = None,
        until: str | None = None,
    ) -> Report:
        """Check every digest (whose period ends within ``since``..``until``, ISO UTC).

        A bounded check starts from the digest before ``since``: its signed
        frontier stands in for every earlier leaf. ``anchor_versions`` (newest
        first, see :meth:`~chalicelib.ledger.digest.S3Anchor.versions`) take
        the place of ``anchor``: the bucket is held to the largest tree any of
        them names, and a current version older than that is itself a finding.
        """
        if anchor_versions:
            anchor = max(anchor_versions, key=lambda checkpoint: checkpoint.tree_size)
        started = time.perf_counter()
        report = Report()
        digests = self._digests(report)
        self._check_chain(digests, report)
        chosen = [
            index
            for index, (_, document) in enumerate(digests)
            if (since is None or document["digest"]["period"]["end"] >= since)
            and (until is None or document["digest"]["period"]["end"] <= until)
        ]
        tree, seen_events = CompactRange(), set[bytes]()
        if chosen and chosen[0] > 0:
            tree = _frontier(digests[chosen[0] - 1][1]["digest"]["tree"], report)
        entries = [
            entry for index in chosen for entry in digests[index][1]["digest"].get("objects", [])
        ]
        with _ObjectFeed(self._object, entries, self._jobs) as feed:
            for index in chosen:
                key, document = digests[index]
                tree = self._check_digest(key, document["digest"], feed, tree, seen_events, report)
                report.digests += 1
        stored = self._versions(EVENTS_PREFIX)
        self._check_current_versions(entries, stored, report)
        self._check_unledgered(digests, stored, report)
        if anchor is not None:
            self._check_anchor(anchor, digests, report)
        if anchor_versions and anchor_versions[0].tree_size < (anchor.tree_size if anchor else 0):
            report.add(
                "truncated_tail",
                "anchor",
                f"its current version names tree size {anchor_versions[0].tree_size}, older "
                f"than the {anchor.tree_size if anchor else 0} of a version it replaced",
            )
        report.tree_size, report.root = tree.size, tree.root().hex()
        report.seconds = time.perf_counter() - started
        return report

    def _digests(self, report: Report) -> list[tuple[str, dict[str, Any]]]:
        """Every digest, read from the version first stored under its key.

        A digest is written once (``If-None-Match``) and locked: a delete
        marker or a later version in front of it is someone hiding it, so it
        is named, and the first version is the one judged.
        """
        found = []
        for key, stored in self._versions(DIGESTS_PREFIX).items():
            if not stored.versions:
                continue  # only delete markers left: the chain names the gap
            if stored.delete_markers or len(stored.versions) > 1:
                report.add(
                    "hidden_version",
                    key,
                    f"{len(stored.versions)} versions and {stored.delete_markers} delete "
                    "markers where one version was written: the first is the one checked",
                )
            first = stored.versions[0]
            body = self._s3.get_object(Bucket=self._bucket, Key=key, **version_kwargs(first))[
                "Body"
            ].read()
            try:
                document = json.loads(body)
                digest = document["digest"]
                size = int(digest["tree"]["size"])
            except (ValueError, KeyError, TypeError):
                report.add("bad_signature", key, "not a digest document")
                continue
            if not verify_signature(self._public_key, document):
                report.add("bad_signature", key, "the signature does not verify")
                continue
            found.append((size, digest["period"]["end"], key, document))
        found.sort(key=lambda entry: (entry[0], entry[1], entry[2]))
        return [(key, document) for _, _, key, document in found]

    def _check_chain(self, digests: list[tuple[str, dict[str, Any]]], report: Report) -> None:
        previous: tuple[str, dict[str, Any]] | None = None
        for key, document in digests:
            named = document["digest"].get("previous")
            if previous is None:
                if named is not None:
                    report.add("broken_chain", key, f"names {named.get('key')}, which is not here")
            else:
                expected = {"key": previous[0], "signature": previous[1]["signature"]}
                if named != expected:
                    report.add(
                        "broken_chain", key, f"does not name {previous[0]} as its predecessor"
                    )
            previous = (key, document)

    def _check_digest(
        self,
        key: str,
        digest: dict[str, Any],
        feed: Iterator[Future[tuple[bytes | None, ObjectReading | None]]],
        tree: CompactRange,
        seen_events: set[bytes],
        report: Report,
    ) -> CompactRange:
        """Check one digest's objects and tree; return the tree to carry on from.

        After an object that is missing or altered, the true leaves are
        unknown: later trees in the digest are not judged, and the next
        digest starts from this one's signed frontier (one finding, not a
        cascade of them).
        """
        intact = True
        for entry in digest.get("objects", []):
            fetched = next(feed)
            checked = self._check_object(
                entry, fetched, tree, seen_events, report, judge_tree=intact
            )
            intact = intact and checked
        stated = digest["tree"]
        if not intact:
            return _frontier(stated, report)
        if tree.size != stated["size"] or tree.root().hex() != stated["root"]:
            report.add(
                "inconsistent_tree",
                key,
                f"signed size {stated['size']} root {stated['root'][:16]}..., the lines give "
                f"size {tree.size} root {tree.root().hex()[:16]}...",
            )
            return _frontier(stated, report)
        return tree

    def _check_object(
        self,
        entry: dict[str, Any],
        fetched: Future[tuple[bytes | None, ObjectReading | None]],
        tree: CompactRange,
        seen_events: set[bytes],
        report: Report,
        *,
        judge_tree: bool,
    ) -> bool:
        """Check one digested object; False when its bytes are not the digested ones."""
        key, version = entry["key"], entry.get("version_id")
        where = f"{key}?versionId={version}"
        first = int(entry["first_sequence"])
        if judge_tree and first != tree.size:
            report.add("sequence_gap", where, f"starts at {first}, the log is at {tree.size}")
        try:
            payload, reading = fetched.result()
        except _ChecksumMismatch:
            report.add("altered_object", where, "its bytes no longer match S3's own checksum")
            return False
        if payload is None or reading is None:
            report.add("missing_object", where, "the version the digest names is gone")
            return False
        report.objects += 1
        intact: bool = reading.sha256 == str(entry["sha256"])
        if not intact:
            report.add("altered_object", where, "its SHA-256 is not the digested one")
        if reading.gzip_error is not None:
            report.add("altered_line", where, f"not gzip any more: {reading.gzip_error}")
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
            _check_lines(where, first, lines, tree, seen_events, report)
        if reading.line_count != int(entry["count"]):
            report.add(
                "sequence_gap", where, f"{reading.line_count} lines, digested {entry['count']}"
            )
        consistent = tree.root().hex() == entry["root"] and tree.size == int(entry["tree_size"])
        if intact and judge_tree and not consistent:
            report.add("inconsistent_tree", where, "the tree after it is not the digested one")
        return intact

    def _check_anchor(
        self, anchor: Checkpoint, digests: list[tuple[str, dict[str, Any]]], report: Report
    ) -> None:
        keys = {key: document for key, document in digests}
        newest = digests[-1][1]["digest"]["tree"]["size"] if digests else 0
        if anchor.key not in keys or anchor.tree_size > newest:
            report.add(
                "truncated_tail",
                anchor.key,
                f"the anchor's checkpoint (tree size {anchor.tree_size}) is not in the bucket, "
                f"whose newest digest covers {newest}",
            )
        elif keys[anchor.key]["signature"] != anchor.signature:
            report.add("truncated_tail", anchor.key, "the anchor's signature differs")

    def _object(self, key: str, version: str | None) -> bytes | None:
        from botocore.exceptions import ClientError, FlexibleChecksumError

        try:
            response = self._s3.get_object(Bucket=self._bucket, Key=key, **version_kwargs(version))
            body: bytes = response["Body"].read()
        except ClientError as exc:
            if exc.response["Error"]["Code"] in ("NoSuchKey", "NoSuchVersion", "404"):
                return None
            raise
        except FlexibleChecksumError as exc:
            raise _ChecksumMismatch(key) from exc
        return body

    def _check_unledgered(
        self,
        digests: list[tuple[str, dict[str, Any]]],
        stored: dict[str, _StoredKey],
        report: Report,
    ) -> None:
        """Name objects under the ledger's prefix that no digest names.

        Anyone who may put objects into the bucket could add one at a new
        key: verification of what the digests name would pass, while Athena
        and the local engine would count its lines. A key the digests do not
        name is fine only as a fence (an abandoned reservation's empty member)
        or when its first sequence lies past the newest digest (not digested yet).
        """
        named = {entry["key"] for _, document in digests for entry in document["digest"]["objects"]}
        digested = max((document["digest"]["tree"]["size"] for _, document in digests), default=0)
        # An object stored well before the newest digest was stored would be in it.
        signed = max(
            (listed.first_stored for listed in self._versions(DIGESTS_PREFIX).values()),
            default="",
        )
        for key, listed in stored.items():
            if key in named or not listed.versions:
                continue
            first = object_first_sequence(key)
            if (
                first is not None
                and first >= digested
                and not _long_before(listed.first_stored, signed)
            ):
                report.undigested_objects += 1
                continue
            for version in listed.versions:
                try:
                    body = self._object(key, version)
                except _ChecksumMismatch:
                    body = b"?"
                if body is not None and body != FENCE:
                    report.add(
                        "unledgered_object",
                        f"{key}?versionId={version}",
                        f"no digest names it, though the digests cover sequences below "
                        f"{digested}: its lines are not the ledger's",
                    )

    def _check_current_versions(
        self, entries: list[dict[str, Any]], stored: dict[str, _StoredKey], report: Report
    ) -> None:
        """Name digested objects whose current version is not the digested one.

        Verification reads each object by the version its digest names, so
        a newer version written over it (or a delete marker) changes nothing
        here, but Athena reads current versions.
        """
        for entry in entries:
            key, version = entry["key"], entry.get("version_id")
            listed = stored.get(key)
            if version is None or listed is None or not listed.versions:
                continue  # missing altogether: the object check names it
            if listed.latest != version:
                report.add(
                    "hidden_version",
                    f"{key}?versionId={version}",
                    f"its current version is {listed.latest or 'a delete marker'}, "
                    "not the digested one: queries would read that instead",
                )

    def _versions(self, prefix: str) -> dict[str, _StoredKey]:
        """Each key under ``prefix`` with its versions (oldest first) and delete markers."""
        found: dict[str, _StoredKey] = {}
        paginator = self._s3.get_paginator("list_object_versions")
        for page in paginator.paginate(Bucket=self._bucket, Prefix=prefix):
            for version in page.get("Versions", []):
                stored = found.setdefault(version["Key"], _StoredKey())
                stored.newest_first.append(str(version["VersionId"]))
                stored.first_stored = _iso(version.get("LastModified"))
                if version.get("IsLatest"):
                    stored.latest = str(version["VersionId"])
            for marker in page.get("DeleteMarkers", []):
                found.setdefault(marker["Key"], _StoredKey()).delete_markers += 1
        return found


# How long a commit may trail its object's PUT (a digest signed in between
# does not name the object yet).
_COMMIT_GRACE_SECONDS = 600


def _iso(moment: Any) -> str:
    """An S3 ``LastModified`` (datetime) as ``YYYY-MM-DDTHH:MM:SSZ`` ("" when absent)."""
    if moment is None:
        return ""
    return str(moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"))


def _long_before(stored: str, signed: str) -> bool:
    """Whether ``stored`` is more than the commit grace before ``signed`` (ISO UTC)."""
    if not stored or not signed:
        return False
    try:
        gap = datetime.fromisoformat(signed) - datetime.fromisoformat(stored)
    except ValueError:
        return False
    return gap.total_seconds() > _COMMIT_GRACE_SECONDS


@dataclass
class _StoredKey:
    """What S3 holds under one key: versions and delete markers."""

    newest_first: list[str] = field(default_factory=list)  # S3 lists a key's versions so
    first_stored: str = ""  # ISO UTC time the oldest version was stored
    delete_markers: int = 0
    latest: str | None = None  # the current version's id; None when it is a delete marker

    @property
    def versions(self) -> list[str]:
        """Version ids, oldest first."""
        return self.newest_first[::-1]


def _check_lines(
    where: str,
    first: int,
    lines: list[bytes],
    tree: CompactRange,
    seen_events: set[bytes],
    report: Report,
) -> None:
    sequences = []
    for number, line in enumerate(lines):
        event_id, sequence = line_position(line)
        if event_id is None or sequence is None:
            report.add("altered_line", f"{where} line {number + 1}", "not a ledger event")
            continue
        sequences.append(sequence)
        # Ids are kept as UTF-8, the form the fast path reads them in.
        raw_id = event_id.encode("utf-8", "surrogatepass")
        if raw_id in seen_events:
            report.add("duplicate_event", f"{where} line {number + 1}", event_id)
        seen_events.add(raw_id)
        tree.append(leaf_hash(line))
        report.events += 1
    expected = list(range(first, first + len(sequences)))
    if sequences != expected:
        if sorted(sequences) == expected:
            report.add("reordered_lines", where, "lines are not in sequence order")
        else:
            missing = sorted(set(expected) - set(sequences))[:5]
            report.add("sequence_gap", where, f"sequences missing or foreign: {missing}")


def _frontier(tree: dict[str, Any], report: Report) -> CompactRange:
    try:
        frontier = CompactRange.from_json(tree.get("frontier") or [])
    except ValueError as exc:
        report.add("inconsistent_tree", "frontier", str(exc))
        return CompactRange()
    if frontier.size != tree["size"] or frontier.root().hex() != tree["root"]:
        report.add("inconsistent_tree", "frontier", "the signed frontier does not give its root")
    return frontier


_HEAD = LINE_HEAD
_TAIL_KEY = b',"ledger":{"sequence":'
_TAIL = re.compile(rb',"ledger":\{"sequence":(0|[1-9][0-9]{0,17})\}\}')


def line_position(line: bytes) -> tuple[str | None, int | None]:
    """The event id and ledger sequence of a stored line (None, None: not a ledger event).

    Lines as the writer stores them are read without a JSON parse: the id
    opens the line (the writer refuses events that do not open that way, so
    the id shown first is the id a parser sees) and the position closes it.
    Any other line is parsed.
    """
    if line.startswith(_HEAD):
        end = line.find(b'"', len(_HEAD))
        tail = _TAIL.fullmatch(line, max(0, line.rfind(_TAIL_KEY)))
        event_id = line[len(_HEAD) : end]
        if tail is not None and end > len(_HEAD) and b"\\" not in event_id:
            return event_id.decode("utf-8", "replace"), int(tail.group(1))
    return _parsed_position(line)


def _parsed_position(line: bytes) -> tuple[str | None, int | None]:
    try:
        event = json.loads(line)
        event_id, sequence = event["event_id"], event["ledger"]["sequence"]
    except (ValueError, KeyError, TypeError):
        return None, None
    if not isinstance(event_id, str) or not isinstance(sequence, int):
        return None, None
    return event_id, sequence


_DOWNLOADS = 8
_AHEAD = 16
# Below this many objects, starting worker processes costs more than it saves.
_POOL_MIN_OBJECTS = 16

_Fetched = tuple[bytes | None, ObjectReading | None]


class _ObjectFeed:
    """Fetches and reads the digested objects ahead of the checks, in their order.

    Downloads run on threads (against S3 they wait on the network); reading
    an object (SHA-256, gunzip, a leaf hash per line) runs on ``jobs``
    worker processes when there are enough objects to pay for starting
    them, else on those threads. The checks themselves, which carry the
    tree and the event ids from one object to the next, stay in order in
    the caller's thread.
    """

    def __init__(
        self,
        fetch: Callable[[str, str | None], bytes | None],
        entries: list[dict[str, Any]],
        jobs: int,
    ) -> None:
        self._fetch = fetch
        self._entries = entries
        self._jobs = jobs
        self._io: ThreadPoolExecutor | None = None
        self._cpu: ProcessPoolExecutor | None = None

    def __enter__(self) -> Iterator[Future[_Fetched]]:
        if self._jobs > 1 and len(self._entries) >= _POOL_MIN_OBJECTS:
            self._cpu = ProcessPoolExecutor(self._jobs, mp_context=get_context(_start_method()))
            # Start every worker now, before this object starts threads.
            self._cpu.submit(int).result()
        self._io = ThreadPoolExecutor(max_workers=_DOWNLOADS, thread_name_prefix="verify")
        return self._ahead(self._io)

    def __exit__(self, *exc_info: object) -> None:
        if self._io is not None:
            self._io.shutdown(cancel_futures=True)
        if self._cpu is not None:
            self._cpu.shutdown(cancel_futures=True)

    def _ahead(self, io: ThreadPoolExecutor) -> Iterator[Future[_Fetched]]:
        entries = iter(self._entries)
        pending = deque(io.submit(self._load, entry) for entry in islice(entries, _AHEAD))
        while pending:
            following = next(entries, None)
            if following is not None:
                pending.append(io.submit(self._load, following))
            yield pending.popleft()

    def _load(self, entry: dict[str, Any]) -> _Fetched:
        payload = self._fetch(entry["key"], entry.get("version_id"))
        if payload is None:
            return None, None
        first = int(entry["first_sequence"])
        if self._cpu is not None:
            return payload, self._cpu.submit(read_object, payload, first).result()
        return payload, read_object(payload, first)


def _start_method() -> str:
    """How to start reading processes.

    Forking is fastest and does not import the caller's ``__main__`` again
    (spawn and forkserver do, which breaks unguarded scripts), but a fork
    taken while another thread holds a lock can leave it held in the child:
    so fork only from a single-threaded process, as the CLI is.
    """
    methods = get_all_start_methods()
    if "fork" in methods and threading.active_count() == 1:
        return "fork"
    return "forkserver" if "forkserver" in methods else "spawn"


class _ChecksumMismatch(Exception):
    """S3 returned bytes that do not match the checksum it stored with them."""
