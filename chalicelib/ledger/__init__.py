"""The tamper-evident ledger over the audit trail (issue 4; in progress).

So far: :mod:`chalicelib.ledger.merkle`, the RFC 9162 Merkle log hashing,
inclusion and consistency proofs the ledger's digests are built on.
"""
