"""moto's KMS signs ``MessageType=DIGEST`` as AWS does.

AWS KMS signs a ``DIGEST`` message as the hash it is (ECDSA over the given
SHA-256, no second hash). moto ignores ``MessageType`` and hashes the digest
again, so a signature made that way never verifies over the original
message, and any document over KMS's 4,096-byte ``RAW`` limit (a ledger
digest naming many objects) would look forged in the local stack and the
tests. :func:`install` makes moto honour ``DIGEST`` for ECC keys; ``RAW`` is
untouched.
"""

from __future__ import annotations

import base64
import json
from typing import Any

_INSTALLED = False


def install() -> None:
    """Patch moto's KMS ``Sign`` (idempotent)."""
    global _INSTALLED
    if _INSTALLED:
        return
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec, utils
    from moto.kms.responses import KmsResponse

    hash_of = {
        "ECDSA_SHA_256": hashes.SHA256(),
        "ECDSA_SHA_384": hashes.SHA384(),
        "ECDSA_SHA_512": hashes.SHA512(),
    }
    original = KmsResponse.sign

    def sign(self: Any) -> str:
        algorithm = self._get_param("SigningAlgorithm")
        if self._get_param("MessageType") != "DIGEST" or algorithm not in hash_of:
            return str(original(self))
        key_id = self._get_param("KeyId")
        self._validate_key_id(key_id)  # moto's own check: unknown ids and aliases refused
        key = self.kms_backend.describe_key(key_id)
        if algorithm not in (key.signing_algorithms or []):
            from moto.kms.exceptions import ValidationException

            raise ValidationException(f"{algorithm} is not a signing algorithm of this key")
        digest = self._get_param("Message")
        if isinstance(digest, str):  # the JSON protocol carries blobs base64-encoded
            digest = base64.b64decode(digest)
        prehashed = ec.ECDSA(utils.Prehashed(hash_of[algorithm]))
        signature = key.private_key.private_key.sign(digest, prehashed)
        return json.dumps(
            {
                "KeyId": key.arn,
                "Signature": base64.b64encode(signature).decode("ascii"),
                "SigningAlgorithm": algorithm,
            }
        )

    KmsResponse.sign = sign  # type: ignore[method-assign]
    _INSTALLED = True
