"""What verification finds: each problem a :class:`Finding` of one :class:`FindingKind`.

========================  =======================================================
``bad_signature``         a digest whose signature does not verify
``broken_chain``          a digest that does not name the one before it
``missing_object``        an object (version) a digest names is gone
``altered_object``        an object whose bytes are not the ones digested
``altered_line``          a line that is not an event with a ledger position
``reordered_lines``       lines of an object out of sequence order
``sequence_gap``          sequences missing between or within objects
``duplicate_event``       an event id stored twice
``inconsistent_tree``     a digested tree size or root the lines do not give
``inconsistent_digests``  a digest whose signed tree does not extend the one the
                          digest before it signed (no consistency proof, RFC 9162
                          section 2.1.4, leads from the earlier root to the later)
``truncated_tail``        the anchor knows a digest the bucket does not have, or
                          its current version is older than one it replaced
``hidden_version``        a delete marker or a later version stands in front of a
                          digest or a digested object (queries, which read the
                          current version, would not see what was stored)
``unledgered_object``     an object among the ledger's that no digest names,
                          though the digests already cover its sequences (queries
                          would count its lines; the ledger never had them)
``forked_checkpoint``     a checkpoint signed by the stage's key that no digest in
                          the bucket holds: the stage showed someone (a witness)
                          another history than the bucket's (a split view)
``witness_refused``       a trusted witness refused a checkpoint (a fork, a
                          rollback, a tree that does not extend what it cosigned)
``missing_cosignatures``  fewer trusted witnesses cosigned the newest checkpoint
                          than required (``--require-witnesses``)
========================  =======================================================

The kinds' values are what ``gatehouse audit verify`` prints and its JSON
output carries: they never change meaning.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any


class FindingKind(StrEnum):
    """What a :class:`Finding` is about (the table above); values are stable output."""

    BAD_SIGNATURE = "bad_signature"
    BROKEN_CHAIN = "broken_chain"
    MISSING_OBJECT = "missing_object"
    ALTERED_OBJECT = "altered_object"
    ALTERED_LINE = "altered_line"
    REORDERED_LINES = "reordered_lines"
    SEQUENCE_GAP = "sequence_gap"
    DUPLICATE_EVENT = "duplicate_event"
    INCONSISTENT_TREE = "inconsistent_tree"
    INCONSISTENT_DIGESTS = "inconsistent_digests"
    TRUNCATED_TAIL = "truncated_tail"
    HIDDEN_VERSION = "hidden_version"
    UNLEDGERED_OBJECT = "unledgered_object"
    FORKED_CHECKPOINT = "forked_checkpoint"
    WITNESS_REFUSED = "witness_refused"
    MISSING_COSIGNATURES = "missing_cosignatures"


@dataclass(frozen=True, slots=True)
class Finding:
    """One thing that does not hold."""

    kind: FindingKind
    where: str
    detail: str

    def as_dict(self) -> dict[str, str]:
        return {"kind": str(self.kind), "where": self.where, "detail": self.detail}


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
    # The trusted witnesses that cosigned the newest checkpoint (its size, their names).
    cosigned_size: int | None = None
    cosigned_by: list[str] = field(default_factory=list)
    # Refusals published by witnesses that were not named as trusted.
    untrusted_refusals: int = 0

    @property
    def ok(self) -> bool:
        """True only when nothing was found."""
        return not self.findings

    def add(self, kind: FindingKind, where: str, detail: str) -> None:
        self.findings.append(Finding(FindingKind(kind), where, detail))

    def as_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "digests": self.digests,
            "objects": self.objects,
            "events": self.events,
            "tree_size": self.tree_size,
            "root": self.root,
            "undigested_objects": self.undigested_objects,
            "cosigned_size": self.cosigned_size,
            "cosigned_by": self.cosigned_by,
            "untrusted_refusals": self.untrusted_refusals,
            "seconds": round(self.seconds, 3),
            "findings": [finding.as_dict() for finding in self.findings],
        }
