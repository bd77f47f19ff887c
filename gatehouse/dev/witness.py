"""The local stack's witness: a cosigner with its own key and memory, as one would run elsewhere.

In AWS a witness runs in another account (:mod:`chalicelib.witness`); here it
runs beside the stack, in its own thread, with a key made at each start
(the stack's moto starts empty, so there is nothing for an older witness to
remember) and its memory in ``.gatehouse/witness-state.json``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from chalicelib.ledger.notes import WitnessSigner
from chalicelib.witness.state import FileWitnessState
from chalicelib.witness.witness import WatchedLog, Witness

LOCAL_WITNESS_NAME = "witness.localhost/gatehouse-dev"
KEY_FILE = "witness-ed25519.pem"
STATE_FILE = "witness-state.json"


@dataclass(frozen=True, slots=True)
class LocalWitness:
    """The local witness, its public key (a vkey) and where its private key is."""

    witness: Witness
    vkey: str
    key_path: Path


def start_local_witness(
    state_dir: Path, s3: Any, kms: Any, *, bucket: str, digest_key: str, origin: str
) -> LocalWitness:
    """A new witness for the stack's ledger: a fresh key, an empty memory."""
    from cryptography.hazmat.primitives.asymmetric.ec import EllipticCurvePublicKey
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    from cryptography.hazmat.primitives.serialization import (
        Encoding,
        NoEncryption,
        PrivateFormat,
        load_der_public_key,
    )

    private_key = Ed25519PrivateKey.generate()
    key_path = state_dir / KEY_FILE
    pem = private_key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption())
    key_path.unlink(missing_ok=True)
    descriptor = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "wb") as file:
        file.write(pem)
    (state_dir / STATE_FILE).unlink(missing_ok=True)
    public_key = load_der_public_key(kms.get_public_key(KeyId=digest_key)["PublicKey"])
    if not isinstance(public_key, EllipticCurvePublicKey):
        raise RuntimeError("the local stack's ledger key is not a P-256 key")
    signer = WitnessSigner(LOCAL_WITNESS_NAME, private_key)
    witness = Witness(
        signer,
        FileWitnessState(state_dir / STATE_FILE),
        s3,
        [WatchedLog(origin, public_key, bucket)],
        # Cosignatures every few seconds would drown the console: refusals only.
        log=lambda line: print(line, flush=True) if line.startswith("ERROR") else None,
    )
    return LocalWitness(witness, signer.key.vkey(), key_path)
