"""Witnesses: independent cosigners of the ledger's checkpoints.

A witness is a separate process, meant to run in another account under
other people's control. On each run it reads the digests a stage signed
since the one it last cosigned, checks each checkpoint's signature and
that the tree only grew (the consistency proof each digest carries), and
cosigns it with its own Ed25519 key (C2SP tlog-cosignature). It remembers
the newest checkpoint it cosigned per log, in its own store, so the log's
operator cannot make it forget. A checkpoint that contradicts what it
cosigned (the same size with another root, a smaller tree, a proof that
does not hold) is refused: the refusal is signed, published next to the
cosignatures, and raised as an alert.

- :mod:`chalicelib.witness.witness`: one run over the logs it watches;
- :mod:`chalicelib.witness.state`: what it cosigned last (DynamoDB, or a file);
- :mod:`chalicelib.witness.settings`: its settings, from the environment;
- :mod:`chalicelib.witness.handler`: the Lambda function's entry point.

Exceptions::

    WitnessError
     ├── WitnessUnavailable   a log's bucket, the store or the alert topic cannot be used
     ├── WitnessStateConflict another run moved the store meanwhile
     └── WitnessSettingsError the settings are missing or malformed
"""

from chalicelib.witness.errors import (
    WitnessError,
    WitnessSettingsError,
    WitnessStateConflict,
    WitnessUnavailable,
)

__all__ = ["WitnessError", "WitnessSettingsError", "WitnessStateConflict", "WitnessUnavailable"]
