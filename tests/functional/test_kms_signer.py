"""The KMS signer against moto: RAW up to 4,096 bytes, a SHA-256 DIGEST beyond, both verify."""

from __future__ import annotations

from typing import TYPE_CHECKING

import boto3
import pytest
from botocore.exceptions import ClientError
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from cryptography.hazmat.primitives.serialization import load_der_public_key

from chalicelib.aws.signers import KmsSigner

if TYPE_CHECKING:
    from gatehouse.dev.bootstrap import Resources


@pytest.mark.parametrize("size", [1, 4096, 4097, 200_000])
def test_a_message_of_any_size_is_signed_so_that_it_verifies(aws: Resources, size: int) -> None:
    kms = boto3.client("kms", region_name="us-east-1")
    signer = KmsSigner(kms, aws.digest_key_alias)
    message = bytes(range(256)) * (size // 256) + b"d" * (size % 256)

    raw = signer.sign(message)

    public = load_der_public_key(kms.get_public_key(KeyId=aws.digest_key_alias)["PublicKey"])
    assert isinstance(public, ec.EllipticCurvePublicKey)
    der = encode_dss_signature(int.from_bytes(raw[:32], "big"), int.from_bytes(raw[32:], "big"))
    public.verify(der, message, ec.ECDSA(hashes.SHA256()))
    with pytest.raises(InvalidSignature):
        public.verify(der, message + b"!", ec.ECDSA(hashes.SHA256()))


@pytest.mark.parametrize(
    ("key", "algorithm", "error"),
    [
        ("alias/no-such-key", "ECDSA_SHA_256", "NotFoundException"),
        (None, "ECDSA_SHA_384", "ValidationException"),
    ],
)
def test_a_digest_is_refused_as_aws_refuses_it(
    aws: Resources, key: str | None, algorithm: str, error: str
) -> None:
    kms = boto3.client("kms", region_name="us-east-1")

    with pytest.raises(ClientError) as refused:
        kms.sign(
            KeyId=key or aws.digest_key_alias,
            Message=b"\x00" * 32,
            MessageType="DIGEST",
            SigningAlgorithm=algorithm,
        )

    assert refused.value.response["Error"]["Code"] == error
