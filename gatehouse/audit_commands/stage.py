"""What the audit commands read from the stage's description (the ledger table, key, anchor)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from chalicelib.ledger import LedgerState
    from chalicelib.ledger.digest import S3Anchor
    from gatehouse.target import Target


class StageIncomplete(RuntimeError):
    """The stage's description lacks what a command needs (a queue, a key)."""


def ledger_state(target: Target) -> LedgerState:
    """The ledger's state in the stage's table."""
    from chalicelib.ledger import LedgerState

    return LedgerState(target.client("dynamodb"), target.state_table)


def anchor(target: Target) -> S3Anchor | None:
    """The stage's ledger anchor, if it has one."""
    from chalicelib.ledger.digest import S3Anchor

    if not target.ledger_anchor:
        return None
    return S3Anchor.from_uri(target.client("s3"), target.ledger_anchor, target.stage)


def digest_key(target: Target) -> str:
    """The KMS key that signs the stage's ledger digests.

    Raises
    ------
    StageIncomplete
        When the stage names none.
    """
    if not target.digest_key_id:
        raise StageIncomplete(
            "no digest key: set GATEHOUSE_DIGEST_KEY_ID (or start the local stack)"
        )
    return target.digest_key_id
