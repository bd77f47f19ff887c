"""The tamper-evident ledger over the audit trail.

- :mod:`chalicelib.ledger.layout`: where objects and digests are stored in
  the bucket, the stored line's form, canonical JSON;
- :mod:`chalicelib.ledger.records`: the ledger's records (head, reservation,
  object, digest, checkpoint) and their stored forms;
- :mod:`chalicelib.ledger.merkle`: RFC 9162 Merkle hashing, the compact range
  the writer carries, inclusion and consistency proofs;
- :mod:`chalicelib.ledger.consistency`: consistency proofs between two tree
  sizes of the stored ledger, their document, and its offline check;
- :mod:`chalicelib.ledger.notes`: checkpoints as C2SP signed notes, the stage's
  key and witnesses' keys as note signers;
- :mod:`chalicelib.ledger.digest`: the signed digests, their checkpoints, the anchor;
- :mod:`chalicelib.ledger.cosignatures`: what witnesses published, read back;
- :mod:`chalicelib.ledger.verify` (with ``checks``, ``findings``): verification;
- :mod:`chalicelib.ledger.proof`, :mod:`chalicelib.ledger.evidence`: inclusion
  proofs of one event, and evidence bundles of many, checkable offline;
- :mod:`chalicelib.ledger.state`: where the log stands (sequence, tree,
  reservation, objects, the event index) in DynamoDB, changed only by
  conditional writes.

The exactly-once writer built on them is :class:`chalicelib.audit.AuditWriter`.

Exceptions::

    LedgerError
     ├── LedgerUnavailable   the ledger's state cannot be read or written (retry later)
     ├── LedgerBusy          the head changed under the writer (another writer, a recovery)
     └── LedgerCorrupt       what the bucket holds contradicts the ledger's state
"""

from chalicelib.ledger.errors import LedgerBusy, LedgerCorrupt, LedgerError, LedgerUnavailable
from chalicelib.ledger.records import LedgerHead, ObjectRecord, Reservation
from chalicelib.ledger.state import LedgerState

__all__ = [
    "LedgerBusy",
    "LedgerCorrupt",
    "LedgerError",
    "LedgerHead",
    "LedgerState",
    "LedgerUnavailable",
    "ObjectRecord",
    "Reservation",
]
